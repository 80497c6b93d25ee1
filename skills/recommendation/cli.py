"""The recommendation skill's commands:

    lepton recommend train --interactions FILE.csv [--catalog FILE.csv] [--tenant T] [--json]
    lepton eval recommend --interactions FILE.csv --split-date YYYY-MM-DD [--catalog FILE.csv] [--json]

Column names default to the UCI Online Retail layout and can be changed with the
``--*-col`` options. The trained recommender replaces the tenant's previous one
(``DATA_DIR/skills/recommendation/tenants/<tenant>/recommender/``); a running
server uses it from the next message on.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from skills.cli_types import TENANT

from .data import CatalogColumns, Columns, RecommendDataError, derive_catalog, load_catalog, load_interactions

if TYPE_CHECKING:  # pragma: no cover
    from . import RecommendationSkill

__all__ = ["recommend_commands", "eval_recommend"]


def _data_options(command: Callable) -> Callable:
    """The options that name an export's files and columns."""
    options = [
        click.option("--interactions", required=True, type=click.Path(path_type=Path, dir_okay=False),
                     help="CSV of purchases (one row per order line)."),
        click.option("--catalog", type=click.Path(path_type=Path, dir_okay=False),
                     help="CSV of items (id, title, price, category); default: titles and median prices from the purchases."),
        *[click.option(f"--{role}-col", f"{role}_col", default=getattr(Columns(), role), show_default=True,
                       help=f"Interactions: the {role} column.") for role in ("user", "item", "time", "quantity", "price",
                                                                            "order", "title")],
        *[click.option(f"--catalog-{role}-col", f"catalog_{role}_col", default=getattr(CatalogColumns(), role),
                       show_default=True, help=f"Catalogue: the {role} column.") for role in ("item", "title", "price",
                                                                                             "category")],
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        columns = Columns(**{role: kwargs.pop(f"{role}_col") for role in ("user", "item", "time", "quantity", "price",
                                                                          "order", "title")})
        catalog_columns = CatalogColumns(**{role: kwargs.pop(f"catalog_{role}_col")
                                            for role in ("item", "title", "price", "category")})
        try:
            cleaned = load_interactions(kwargs.pop("interactions"), columns)
            catalog_file = kwargs.pop("catalog")
            catalog = load_catalog(catalog_file, catalog_columns) if catalog_file else derive_catalog(cleaned.frame)
            return command(cleaned=cleaned, catalog=catalog, **kwargs)
        except RecommendDataError as exc:
            raise click.ClickException(str(exc)) from None

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def _dropped(report: dict[str, int]) -> str:
    parts = [f"{v} {k.replace('_', ' ')}" for k, v in report.items() if k not in ("rows", "kept", "users", "items") and v]
    return f"read {report['rows']} rows, kept {report['kept']} ({report['users']} customers, {report['items']} items); " \
           f"dropped: {', '.join(parts) or 'nothing'}"


def recommend_commands(skill: "RecommendationSkill") -> click.Group:
    @click.group("recommend", help="The recommendation skill: train a tenant's recommender from its sales export.")
    def group() -> None:
        pass

    @group.command("train", help="""Train the tenant's recommender from a sales export (and optionally its catalogue).

Cleans the export (cancellations, returns, missing customers, non-product codes such as postage, duplicates) and reports
what it dropped, then learns co-purchases (EASE), repeat purchases and title similarity, ranked by a model learned from
the export's last 30 days. The new model replaces the tenant's current one.

Example: lepton recommend train --interactions online_retail.csv.gz --json
""")
    @_data_options
    @click.option("--tenant", type=TENANT, help="Tenant the recommender belongs to (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object (the model card).")
    def train(cleaned, catalog, tenant: str | None, as_json: bool) -> None:  # noqa: ANN001
        from .model import train_recommender

        env = skill.cli_env()
        if not as_json:
            click.echo(_dropped(cleaned.report), err=True)
        model = train_recommender(cleaned.frame, catalog, data_hash=_frame_hash(cleaned.frame), source=cleaned.source,
                                  progress=None if as_json else (lambda m: click.echo(m, err=True)))
        model.card["cleaning"] = cleaned.report
        path = skill.store(env, tenant or env.default_tenant).save(model)
        if as_json:
            click.echo(json.dumps({**model.card, "path": str(path)}, default=str))
        else:
            click.echo(f"Saved {model.version}: {model.card['items']} items, {model.card['users']} customers, "
                       f"ranker {model.card['ranker']}, {model.card['train_seconds']} s -> {path}")

    return group


def _frame_hash(frame) -> str:  # noqa: ANN001
    import hashlib

    import pandas as pd

    return hashlib.sha256(pd.util.hash_pandas_object(frame[["user", "item", "time"]], index=False).values.tobytes()).hexdigest()


@click.command("recommend", help="""Measure the recommender against baselines on a time split.

Trains on the interactions before --split-date; for every customer who bought on both sides, ranks all items and compares
the top 10 with what they bought from that date on: HR@10, Recall@10 and NDCG@10 over all items and over items new to
the customer, next to popularity, repeat-purchase and item-kNN baselines from the same run. Nothing is saved.

Example: lepton eval recommend --interactions online_retail.csv.gz --split-date 2011-11-09 --json
""")
@_data_options
@click.option("--split-date", required=True, type=click.DateTime(formats=["%Y-%m-%d"]), help="First day of the test period.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
def eval_recommend(cleaned, catalog, split_date, as_json: bool) -> None:  # noqa: ANN001
    import pandas as pd

    from .model import evaluate

    if not as_json:
        click.echo(_dropped(cleaned.report), err=True)
    try:
        report = evaluate(cleaned.frame, catalog, pd.Timestamp(split_date),
                          progress=None if as_json else (lambda m: click.echo(m, err=True)))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    report["cleaning"] = cleaned.report
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['test_users']} customers, {report['items']} items, split {report['split_date']}")
    rows = [("hybrid", {k: report[k] for k in report if k.startswith(("hr@", "recall@", "ndcg@"))}), *report["baselines"].items()]
    click.echo(f"{'':12} {'HR@10':>7} {'R@10':>7} {'NDCG@10':>8} | new: {'HR@10':>7} {'R@10':>7} {'NDCG@10':>8}")
    for name, m in rows:
        click.echo(f"{name:12} {m['hr@10']:7.4f} {m['recall@10']:7.4f} {m['ndcg@10']:8.4f} |      "
                   f"{m['hr@10_new']:7.4f} {m['recall@10_new']:7.4f} {m['ndcg@10_new']:8.4f}")
    click.echo(f"trained in {report['train_seconds']} s; ranking all items p50/p95 "
               f"{report['rank_all_ms']['p50']}/{report['rank_all_ms']['p95']} ms; five suggestions with reasons "
               f"p50/p95 {report['recommend_ms']['p50']}/{report['recommend_ms']['p95']} ms")
