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
