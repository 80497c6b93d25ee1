"""``lepton eval``: measure components on labelled data. ``routing`` is here; other
packages add theirs through ``eval.<name>`` entry points (``eval.retrieval``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skills.cli_types import TENANT

from ..cli_support import pass_settings, with_overrides

__all__ = ["eval_group"]


@click.group("eval", help="Measure components on labelled data.")
def eval_group() -> None:
    pass


@eval_group.command("routing", help="Route labelled messages and dialogues and report accuracy per turn.\n\n"
                    'FILE is JSONL, a line per message, {"text": ..., "skill": <skill name or out_of_scope>}, '
                    'or per dialogue, {"turns": [{"text": ..., "skill": ...}, ...]}: each turn is labelled with '
                    "the skill that should answer it given the conversation so far, and routed as the server "
                    "routes it (the conversation's current skill, the tenant's knowledge).\n\n"
                    "Example: lepton eval routing benchmarks/data/dialogues_test.jsonl --json")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@click.option("--threshold", type=float, help="Override the router threshold.")
@click.option("--switch", type=click.FloatRange(0, 1), help="Override router_switch_threshold.")
@click.option("--leave", type=click.FloatRange(0, 1), help="Override router_leave_threshold.")
@click.option("--knowledge-threshold", type=click.FloatRange(0, 1), help="Override router_knowledge_threshold.")
@click.option("--tenant", "-t", type=TENANT, default=None, help="Whose knowledge and data skills routing consults (default: "
              "the default tenant, with the demo help centre as `lepton serve` loads it).")
@click.option("--no-knowledge", is_flag=True, help="Route without the tenant's knowledge.")
@click.option("--no-context", is_flag=True, help="Route every turn on its own, as if it opened a conversation.")
@pass_settings
def eval_routing(settings, file: Path, as_json: bool, threshold: float | None, switch: float | None,
                 leave: float | None, knowledge_threshold: float | None, tenant: str | None,
                 no_knowledge: bool, no_context: bool) -> None:
    from ..routing_eval import evaluate_routing, format_report, read_dialogues

    dialogues = read_dialogues(file)
    settings = with_overrides(settings, router_threshold=threshold, router_switch_threshold=switch,
                              router_leave_threshold=leave, router_knowledge_threshold=knowledge_threshold)
    report = evaluate_routing(settings, dialogues, tenant=tenant, use_knowledge=not no_knowledge,
                              use_context=not no_context)
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
