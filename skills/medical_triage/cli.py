"""``lepton eval triage FILE.jsonl [--json]``: the triage rules against labelled cases.

Each line is ``{"case_description": "...", "urgency_level": "em" | "ne" | "sc"}`` (the
layout of the Semigran et al. 2015 vignettes). A case is read as one message, with no
questions asked: what it does not say counts as absent. Levels map em = emergency,
ne = urgent or routine, sc = self-care.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

__all__ = ["eval_triage", "evaluate_cases", "GROUPS"]

GROUPS = ("em", "ne", "sc")
_GROUP_OF = {"emergency": "em", "urgent": "ne", "routine": "ne", "self_care": "sc"}


def _read_cases(path: Path) -> list[dict[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    cases = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"{path}:{number} is not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("case_description"), str) \
                or row.get("urgency_level") not in GROUPS:
            raise click.ClickException(f'{path}:{number} needs "case_description" (text) and "urgency_level" '
                                       f'(one of {", ".join(GROUPS)})')
        cases.append(row)
    if not cases:
        raise click.ClickException(f"{path} holds no cases")
    return cases


def evaluate_cases(cases: list[dict[str, str]]) -> dict[str, Any]:
    """Accuracy, the confusion matrix (expected -> given) and emergency under-triage."""
    from .facts import read_facts
    from .rules import RULES_VERSION, decide

    confusion = {want: {got: 0 for got in GROUPS} for want in GROUPS}
    levels = {level: 0 for level in _GROUP_OF}
    misses = []
    for n, case in enumerate(cases):
        decision = decide(read_facts(case["case_description"]))
        got = _GROUP_OF[decision.level]
        levels[decision.level] += 1
        confusion[case["urgency_level"]][got] += 1
        if got != case["urgency_level"]:
            misses.append({"case": n + 1, "expected": case["urgency_level"], "level": decision.level,
                           "rules": list(decision.rules)})
    correct = sum(confusion[g][g] for g in GROUPS)
    emergencies = sum(confusion["em"].values())
    under = confusion["em"]["ne"] + confusion["em"]["sc"]
    return {"cases": len(cases), "accuracy": round(correct / len(cases), 4), "emergency_cases": emergencies,
            "emergency_under_triage": under, "confusion": confusion, "levels": levels, "misses": misses,
            "rules_version": RULES_VERSION,
            "per_group_accuracy": {g: round(confusion[g][g] / max(sum(confusion[g].values()), 1), 4) for g in GROUPS}}


@click.command("triage", help="""Measure the triage rules on labelled cases (JSONL).

Each line: {"case_description": "...", "urgency_level": "em"|"ne"|"sc"}. em = emergency, ne = urgent or routine,
sc = self-care. Reports accuracy, the confusion matrix and emergency_under_triage (em cases given a lower level).

Example: lepton eval triage semigran_vignettes.jsonl --json
""")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
def eval_triage(file: Path, as_json: bool) -> None:
    if not file.is_file():
        raise click.ClickException(f"{file} does not exist")
    report = evaluate_cases(_read_cases(file))
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['cases']} cases, rules {report['rules_version']}: accuracy {report['accuracy']:.3f}, "
               f"emergencies under-triaged {report['emergency_under_triage']} of {report['emergency_cases']}")
    click.echo("expected \\ given   " + "  ".join(f"{g:>4}" for g in GROUPS))
    for want in GROUPS:
        click.echo(f"{want:17}  " + "  ".join(f"{report['confusion'][want][g]:4d}" for g in GROUPS))
    for miss in report["misses"]:
        click.echo(f"case {miss['case']}: expected {miss['expected']}, gave {miss['level']} ({', '.join(miss['rules'])})")
