"""The customer-service skill's own commands, mounted by the ``lepton`` CLI as
``lepton customer-service …``:

    lepton customer-service train-intents --data FILE [--tenant T] [--actions FILE]
    lepton customer-service eval-intents --train FILE --test FILE

They reach the skill's folders through its environment (``Skill.cli_env``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skills.cli_types import TENANT

from .intents import (
    IntentDataError,
    actions_path,
    intents_path,
    load_actions,
    load_intent_csv,
    save_actions,
    train_intents,
    validate_actions,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..base import Skill

__all__ = ["intent_commands"]

def _load(path: Path) -> tuple[list[str], list[str]]:
    try:
        return load_intent_csv(path)
    except IntentDataError as exc:
        raise click.ClickException(str(exc)) from None


def intent_commands(skill: "Skill") -> click.Group:
    """The ``customer-service`` command group of ``skill``."""

    @click.group("customer-service", help="The customer-service skill: intent classifiers and their actions.")
    def group() -> None:
        pass

    group.add_command(_train_command(skill))
    group.add_command(eval_intents)
    return group


def _train_command(skill: "Skill") -> click.Command:
    @click.command(
        "train-intents",
        help="""Train the tenant's intent classifier from a CSV of text,label rows.

The regularisation and the weight of the sentence embeddings are chosen by 5-fold cross-validation on FILE; the model is
saved in the tenant's folder of the skill (DATA_DIR/skills/customer_service/tenants/<tenant>/intents.pkl) with its labels
and training record. A running server uses it from the next message on.

With --actions, a JSON object gives some intents an action: {"lost_card": {"handoff": true}} hands such
conversations to a person, {"card_arrival": {"reply": "Cards arrive in 5 days."}} answers with that text.

Example: lepton customer-service train-intents --data banking77/train.csv
""",
    )
    @click.option("--data", "data", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="CSV with a header: text,label (a 'category' column also works).")
    @click.option("--tenant", type=TENANT, help="Tenant the classifier belongs to (default: the keyless tenant).")
    @click.option("--actions", "actions_file", type=click.Path(dir_okay=False, path_type=Path),
                  help="JSON: intent -> {\"reply\": text} or {\"handoff\": true}.")
    @click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the training record.")
    def train(data: Path, tenant: str | None, actions_file: Path | None, as_json: bool) -> None:
        env = skill.cli_env()
        folder = env.tenant_dir(tenant or env.default_tenant)
        texts, labels = _load(data)
        actions = None
        if actions_file is not None:  # checked before the (long) training, saved after it
            try:
                actions = validate_actions(load_actions(actions_file), sorted(set(labels)))
            except IntentDataError as exc:
                raise click.ClickException(str(exc)) from None
        if not as_json:
            click.echo(f"Training on {len(texts)} examples, {len(set(labels))} labels (cross-validating C)...")
        try:
            classifier = train_intents(texts, labels, source=str(data))
        except IntentDataError as exc:
            raise click.ClickException(str(exc)) from None
        path = classifier.save(intents_path(folder))
        record = {**classifier.metadata, "path": str(path)}
        if actions is not None:
            record["actions"] = str(save_actions(actions_path(folder), actions))
        if as_json:
            click.echo(json.dumps(record))
        else:
            best = f"C={record['C']},weight={record['embedding_weight']}"
            click.echo(f"Saved {path} ({best}, cross-validated accuracy "
                       f"{record['cv_accuracy'].get(best, float('nan')):.4f}, {record['train_seconds']} s).")

    return train


@click.command(
    "eval-intents",
    help="""Train an intent classifier on one CSV and report its accuracy on another.

Nothing is saved. Hyper-parameters are chosen on TRAIN only.

Example: lepton customer-service eval-intents --train banking77/train.csv --test banking77/test.csv --json
""",
)
@click.option("--train", "train", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Training CSV.")
@click.option("--test", "test", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Test CSV.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
def eval_intents(train: Path, test: Path, as_json: bool) -> None:
    train_texts, train_labels = _load(train)
    test_texts, test_labels = _load(test)
    try:
        classifier = train_intents(train_texts, train_labels, source=str(train))
    except IntentDataError as exc:
        raise click.ClickException(str(exc)) from None
    started = time.perf_counter()
    accuracy = classifier.accuracy(test_texts, test_labels)
    unseen = sorted(set(test_labels) - set(classifier.labels))
    report = {
        "accuracy": round(accuracy, 4),
        "test_examples": len(test_texts),
        "predict_seconds": round(time.perf_counter() - started, 3),
        "unseen_test_labels": unseen,
        **{k: v for k, v in classifier.metadata.items() if k not in ("trained_at", "python", "source")},
    }
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(f"accuracy {report['accuracy']:.4f} on {len(test_texts)} test examples "
                   f"(C={report['C']}, embedding weight {report['embedding_weight']}, trained in {report['train_seconds']} s)")
        if unseen:
            click.echo(f"labels in the test file never seen in training: {', '.join(unseen)}")
