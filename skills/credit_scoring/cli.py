"""The credit-scoring skill's commands, mounted by the ``lepton`` CLI as ``lepton credit …``:

    lepton credit train DATA.csv --target COL [--good VALUE] [--protected COL,...] [--drop COL,...]
                        [--actionable COL,...] [--questions FILE] [--cutoff PD] [--bad-cost X]
                        [--base-score N --base-odds N --pdo N] [--out NAME] [--tenant T] [--json]
    lepton credit list [--tenant T] [--json]
    lepton credit activate NAME [--tenant T]
    lepton credit card [NAME] [--tenant T]

Models live in the tenant's folder of the skill (``DATA_DIR/skills/credit_scoring/
tenants/<tenant>/models/<version>/``), each with its model card; a running server
uses a newly activated one from the next message on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skills.cli_types import TENANT

from .model import CreditDataError, Registry, Scaling, describe, file_hash, read_table, train_model

if TYPE_CHECKING:  # pragma: no cover
    from . import CreditScoringSkill

__all__ = ["credit_commands"]


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def credit_commands(skill: "CreditScoringSkill") -> click.Group:
    @click.group("credit", help="The credit-scoring skill: train, list and activate a tenant's credit models.")
    def group() -> None:
        pass

    def registry(tenant: str | None) -> Registry:
        env = skill.cli_env()
        return skill.registry(env, tenant or env.default_tenant)

    @group.command("train", help="""Train a credit model from a CSV of past applications and their outcomes.

Columns are read as they come: numbers are numeric, a few distinct texts are categories; identifiers, empty and
constant columns are left out. Protected attributes (sex, marital status, nationality, ... by column name, and
--protected) are never features: they only measure approval rates across groups in the model card. A WoE scorecard
and a monotone gradient-boosting model are 5-fold cross-validated; the better one is fitted on all rows, saved with
its model card and made the tenant's active model.

Example: lepton credit train germancredit.csv --target creditability --good good --json
""")
    @click.argument("data", type=click.Path(path_type=Path, dir_okay=False))
    @click.option("--target", required=True, help="The outcome column.")
    @click.option("--good", help="The target value meaning a good outcome (default: 'good', or 0 for a 0/1 default flag).")
    @click.option("--protected", help="More protected columns, comma-separated (never features).")
    @click.option("--drop", help="Columns to leave out, comma-separated (identifiers, free text).")
    @click.option("--actionable", help="Columns an applicant can change, comma-separated: counterfactuals use only "
                  "these (default: every feature but age). Protected columns and age never are.")
    @click.option("--questions", "questions_file", type=click.Path(path_type=Path, dir_okay=False),
                  help="JSON: how the chat asks for each column (label, question, unit, choices, synonyms).")
    @click.option("--cutoff", type=float, help="Decline above this probability of default (default: the "
                  "lowest-cost cut-off on the cross-validated predictions).")
    @click.option("--bad-cost", type=click.FloatRange(min=0.01), default=5.0, show_default=True,
                  help="Cost of approving a bad applicant relative to declining a good one (for the default cut-off).")
    @click.option("--base-score", type=float, default=600.0, show_default=True, help="Score at the base odds.")
    @click.option("--base-odds", type=click.FloatRange(min=0.01), default=50.0, show_default=True,
                  help="Good:bad odds that score the base score.")
    @click.option("--pdo", type=click.FloatRange(min=0.01), default=20.0, show_default=True,
                  help="Points to double the odds.")
    @click.option("--out", "name", help="Model name (default: credit-<date>-<time>-<data hash>).")
    @click.option("--tenant", type=TENANT, help="Tenant the model belongs to (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object (the model card).")
    def train(data: Path, target: str, good: str | None, protected: str | None, drop: str | None,
              actionable: str | None, questions_file: Path | None, cutoff: float | None, bad_cost: float,
              base_score: float, base_odds: float, pdo: float, name: str | None, tenant: str | None,
              as_json: bool) -> None:
        store = registry(tenant)
        try:
            questions = None
            if questions_file is not None:
                try:
                    questions = json.loads(questions_file.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise CreditDataError(f"--questions {questions_file}: not a readable JSON file ({exc})") from None
                if not isinstance(questions, dict):
                    raise CreditDataError(f"--questions {questions_file}: a JSON object of column -> question is needed")
            if name is not None and (store.models / name).exists():
                raise CreditDataError(f"a model named {name!r} already exists for this tenant")
            frame = read_table(data)
            model = train_model(
                frame, target, good=good, protected=_names(protected), drop=_names(drop),
                actionable=_names(actionable) if actionable is not None else None, cutoff_pd=cutoff,
                bad_cost=bad_cost, scaling=Scaling(base_score, base_odds, pdo), data_hash=file_hash(data),
                source=data.name, questions=questions,
                progress=None if as_json else (lambda m: click.echo(m, err=True)),
            )
            if name is not None:
                model.version = model.card["version"] = name
            path = store.save(model)
        except CreditDataError as exc:
            raise click.ClickException(str(exc)) from None
        card = {**model.card, "path": str(path), "active": True}
        if as_json:
            click.echo(json.dumps({**card, "cv_auc": card["metrics"]["cv_auc"]}, default=str))
            return
        m = card["metrics"]
        for note in card["left_out"]:
            click.echo(f"left out {note}")
        click.echo(f"protected (not features): {', '.join(card['protected']) or 'none'}")
        for family, r in m["candidates"].items():
            click.echo(f"{family}: cross-validated AUC {r['cv_auc']}, KS {r['cv_ks']} ({r['seconds']} s)")
        click.echo(f"Saved {card['version']} ({card['family']}, AUC {m['cv_auc']}, KS {m['cv_ks']}, Brier "
                   f"{m['calibration']['brier']}; cut-off PD {card['cutoff_pd']} = {card['cutoff_score']} points, "
                   f"{card['train_seconds']} s) and made it active: {path}")

    @group.command("list", help="The tenant's credit models, oldest first; * marks the active one.")
    @click.option("--tenant", type=TENANT, help="Tenant (default: the keyless tenant).")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def list_models(tenant: str | None, as_json: bool) -> None:
        store = registry(tenant)
        active = store.active_version()
        cards = store.cards()
        if not cards and not as_json:
            click.echo("no credit models for this tenant; train one with `lepton credit train`")
        for card in cards:
            if as_json:
                click.echo(json.dumps({"version": card["version"], "active": card["version"] == active,
                                       "family": card["family"], "cv_auc": card["metrics"]["cv_auc"],
                                       "created": card["created"]}))
            else:
                click.echo(("* " if card["version"] == active else "  ") + describe(card))

    @group.command("activate", help="Make NAME the tenant's active credit model.")
    @click.argument("name")
    @click.option("--tenant", type=TENANT, help="Tenant (default: the keyless tenant).")
    def activate(name: str, tenant: str | None) -> None:
        try:
            registry(tenant).activate(name)
        except CreditDataError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{name} is now the active credit model")

    @group.command("card", help="Print a model card as JSON (default: the active model's).")
    @click.argument("name", required=False)
    @click.option("--tenant", type=TENANT, help="Tenant (default: the keyless tenant).")
    def card(name: str | None, tenant: str | None) -> None:
        store = registry(tenant)
        version = name or store.active_version()
        found = [c for c in store.cards() if c["version"] == version]
        if not found:
            raise click.ClickException(f"no model {version!r} for this tenant" if version else
                                       "this tenant has no active credit model")
        click.echo(json.dumps(found[0], indent=2, default=str))

    return group
