"""The skill's commands, mounted by the ``lepton`` CLI as ``lepton finnews …``:

    lepton finnews train TRAIN.csv [--valid VALID.csv] [--method finetune|linear] [--epochs N] [--tenant T] [--json]
    lepton finnews ingest FEED.csv|FEED.jsonl [--tenant T] [--json]
    lepton finnews mood COMPANY [--days N] [--tenant T] [--json]
    lepton finnews models [--tenant T] [--json]

Models and headlines live in the tenant's folder of the skill
(``DATA_DIR/skills/finance_news/tenants/<tenant>/``). Files are checked whole
before anything is written: a bad file prints one line and exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

from skills import ActionCall
from skills.cli_types import TENANT

from .feed import FeedError, read_feed
from .model import METHODS, SentimentDataError, TrainConfig, evaluate, read_labelled, train_model
from .mood import LABELS, MAX_DAYS, render

if TYPE_CHECKING:  # pragma: no cover
    from . import FinanceNewsSkill

__all__ = ["finnews_commands"]

#: Headlines classified per batch when ingesting (progress is shown per batch).
INGEST_BATCH = 256


def _file_hash(path: Path) -> str:
    from skills.util import file_hash

    return file_hash(path)


def finnews_commands(skill: "FinanceNewsSkill") -> click.Group:
    @click.group("finnews", help="Financial-news monitoring: train the headline sentiment model, ingest feeds, "
                                 "ask the mood on a company.")
    def group() -> None:
        pass

    def tenant_of(tenant: str | None) -> tuple[object, str]:
        env = skill.cli_env()
        return env, tenant or env.default_tenant

    @group.command("train", help="""Train the tenant's headline sentiment model and make it active.

TRAIN.csv has a header with `text` and `label` columns (label 0 bearish, 1 bullish, 2 neutral, or those names).
--valid scores the new model on a held-out file (it is never used to tune anything); without it the figures are
those of a tenth of TRAIN held out inside training.

finetune (default) fine-tunes the sentence encoder shipped with Lepton, keeping the epoch best on the held-out
tenth, blended with the linear model when that helps there; linear is TF-IDF plus frozen sentence embeddings into
a linear SVM, cross-validated on TRAIN: faster, a little less accurate.

Example: lepton finnews train sent_train.csv --valid sent_valid.csv --json
""")
    @click.argument("train_file", metavar="TRAIN.csv", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--valid", "valid_file", metavar="VALID.csv", type=click.Path(path_type=Path, dir_okay=False),
                  help="Held-out labelled headlines to report accuracy and macro-F1 on.")
    @click.option("--method", type=click.Choice(METHODS), default="finetune", show_default=True)
    @click.option("--epochs", type=click.IntRange(1, 20), default=TrainConfig.epochs, show_default=True,
                  help="Fine-tuning epochs (the best on the held-out tenth is kept).")
    @click.option("--tenant", type=TENANT, help="Tenant the model belongs to (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with accuracy and macro_f1.")
    def train(train_file: Path, valid_file: Path | None, method: str, epochs: int, tenant: str | None,
              as_json: bool) -> None:
        env, tenant_id = tenant_of(tenant)
        progress: Callable[[str], None] = lambda m: click.echo(m, err=True)  # noqa: E731
        try:
            texts, labels = read_labelled(train_file)
            valid = read_labelled(valid_file) if valid_file is not None else None
            config = TrainConfig(method=method, epochs=epochs)
            model = train_model(texts, labels, config, source=train_file.name, data_hash=_file_hash(train_file),
                                progress=progress)
            if valid is not None:
                metrics = {**evaluate(model, *valid), "evaluated_on": valid_file.name}
            else:
                metrics = _holdout_figures(model, texts, labels)
            model.card["metrics"] = metrics
            path = skill.models(env, tenant_id).save(model)
        except (SentimentDataError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        m = model.card["metrics"]
        if as_json:
            click.echo(json.dumps({"version": model.version, "tenant": tenant_id, "method": method,
                                   "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "f1": m["f1"],
                                   "evaluated_on": m["evaluated_on"], "rows": m["rows"], "train_rows": len(texts),
                                   "train_seconds": model.card["train_seconds"], "path": str(path), "active": True}))
            return
        click.echo(f"{m['evaluated_on']}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
                   f"({m['rows']} headlines; F1 " + ", ".join(f"{k} {v:.3f}" for k, v in m["f1"].items()) + ")")
        click.echo(f"Saved {model.version} ({method}, {model.card['train_seconds']} s) and made it active: {path}")

    @group.command("ingest", help="""Classify a feed's headlines and add them to the tenant's store.

A feed is a CSV with a header, or JSON lines, with fields time (ISO 8601 or Unix seconds), headline and source
(url optional). Headlines already stored (same time, text and source) are skipped.

Example: lepton finnews ingest news-2026-12-01.jsonl --tenant acme
""")
    @click.argument("feed", metavar="FEED.csv|FEED.jsonl", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--tenant", type=TENANT, help="Tenant whose store gets the headlines (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def ingest(feed: Path, tenant: str | None, as_json: bool) -> None:
        env, tenant_id = tenant_of(tenant)
        try:
            headlines = read_feed(feed)
            model = skill.models(env, tenant_id).active()
            if model is None:
                raise SentimentDataError(f"tenant {tenant_id!r}: " + _no_model())
            results: list[tuple[str, float]] = []
            with click.progressbar(length=len(headlines), label="classifying", file=sys.stderr,
                                   hidden=as_json) as bar:
                for start in range(0, len(headlines), INGEST_BATCH):
                    chunk = headlines[start:start + INGEST_BATCH]
                    results += model.predict([h.headline for h in chunk])
                    bar.update(len(chunk))
            added = skill.headlines(env, tenant_id).add(headlines, results, model.version)
        except (FeedError, SentimentDataError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
        counts = {label: sum(1 for r in results if r[0] == label) for label in LABELS}
        report = {"tenant": tenant_id, "read": len(headlines), "added": added, "skipped": len(headlines) - added,
                  "counts": counts, "model": model.version}
        if as_json:
            click.echo(json.dumps(report))
            return
        click.echo(f"{len(headlines)} headlines read, {added} added, {len(headlines) - added} already stored; "
                   + ", ".join(f"{k} {v}" for k, v in counts.items()) + f" (model {model.version})")

    @group.command("mood", help="""The mood on a company in the tenant's headlines, as the chat answers it.

Example: lepton finnews mood Tesla --days 30
""")
    @click.argument("company")
    @click.option("--days", type=click.IntRange(1, MAX_DAYS), default=None, help="Window in days (default: the "
                  "skill's default_days option, 7).")
    @click.option("--tenant", type=TENANT, help="Tenant (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (as the sentiment action returns).")
    def mood(company: str, days: int | None, tenant: str | None, as_json: bool) -> None:
        env, tenant_id = tenant_of(tenant)
        summary, stored = skill.mood(env, tenant_id, company, days or skill.default_days)
        if as_json:
            from . import SentimentInput

            out = skill._sentiment_action(ActionCall(tenant_id, env), SentimentInput(company=company, days=summary.days))
            click.echo(out.model_dump_json())
            return
        click.echo(render(summary, skill.shown, stored))

    @group.command("models", help="The tenant's sentiment models, oldest first; * marks the active one.")
    @click.option("--tenant", type=TENANT, help="Tenant (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def models(tenant: str | None, as_json: bool) -> None:
        env, tenant_id = tenant_of(tenant)
        store = skill.models(env, tenant_id)
        active = store.active_version()
        cards = store.cards()
        if not cards and not as_json:
            click.echo("no sentiment models for this tenant; train one with `lepton finnews train TRAIN.csv`")
        for card in cards:
            m = card.get("metrics", {})
            row = {"version": card["version"], "active": card["version"] == active, "method": card.get("method"),
                   "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"), "evaluated_on": m.get("evaluated_on"),
                   "created": card.get("created")}
            if as_json:
                click.echo(json.dumps(row))
            else:
                click.echo(("* " if row["active"] else "  ") + f"{row['version']}  {row['method']}  accuracy "
                           f"{row['accuracy']} macro-F1 {row['macro_f1']} on {row['evaluated_on']}")

    return group


def _no_model() -> str:
    from . import NO_MODEL

    return NO_MODEL


def _holdout_figures(model, texts, labels):  # noqa: ANN001, ANN202
    """Without --valid: the fine-tuned model's figures on the tenth training held out, or the
    linear model's cross-validated figures on the training file."""
    details = model.card["details"]
    if "finetune" in details:
        import numpy as np

        from .model import _stratified_split

        _, held = _stratified_split(np.asarray(labels), model.card["config"]["holdout"], model.card["config"]["seed"])
        return {**evaluate(model, [texts[i] for i in held], [labels[i] for i in held]),
                "evaluated_on": "the tenth of the training file held out"}
    return {**details["linear"]["cv_figures"], "evaluated_on": "cross-validation on the training file"}
