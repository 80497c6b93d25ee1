"""``lepton eval``: measure components on labelled data. ``routing`` is here; other
packages add theirs through ``eval.<name>`` entry points (``eval.retrieval``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli_support import pass_settings, with_overrides

__all__ = ["eval_group"]


@click.group("eval", help="Measure components on labelled data.")
def eval_group() -> None:
    pass


@eval_group.command("routing", help="Route labelled messages and report accuracy.\n\n"
                    'FILE is JSONL: {"text": ..., "skill": <skill name or out_of_scope>} per line.\n\n'
                    "Example: lepton eval routing routing_eval.jsonl --json")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@click.option("--threshold", type=float, help="Override the router threshold.")
@pass_settings
def eval_routing(settings, file: Path, as_json: bool, threshold: float | None) -> None:
    from ..routing_eval import evaluate_routing, format_report, read_labelled

    rows = read_labelled(file)
    report = evaluate_routing(with_overrides(settings, router_threshold=threshold), rows)
    click.echo(json.dumps(report) if as_json else format_report(report))


@eval_group.command("safety", help="Run the safety guard on labelled messages; report recall and false alarms.\n\n"
                    'FILE is JSONL: {"text": ..., "label": "crisis"|"emergency"|"none"} per line. The guard is the '
                    "server's: its rules, then its classifier on the router's embedding.\n\n"
                    "Example: lepton eval safety benchmarks/data/safety_holdout.jsonl --json")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rules-only", is_flag=True, help="Leave the classifier out.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@pass_settings
def eval_safety(settings, file: Path, rules_only: bool, as_json: bool) -> None:
    from ..routing_eval import read_labelled
    from ..safety import SafetyGuard, evaluate

    rows = read_labelled(file, "label")
    guard = None
    if not rules_only:
        from retrieval.query_encoder import load_query_encoder

        encoder = load_query_encoder(settings.embedding_model, int8=settings.router_int8)  # the server's encoder
        guard = SafetyGuard(lambda texts: encoder.encode(texts, normalize_embeddings=True))
    try:
        report = evaluate(rows, guard)
    except ValueError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['rows']} messages, {report['rules_version']}, "
               + ("rules only" if rules_only else "rules and classifier"))
    for level in ("crisis", "emergency"):
        click.echo(f"{level:<10} recall {report[level + '_recall']}")
    click.echo(f"caught at any level {report['caught_any_level']}; false alarms {report['false_alarm_rate']}")
    for miss in report["errors"]:
        click.echo(f"  {miss['label']} -> {miss['got']} ({miss['rule']}): {miss['text']}")
