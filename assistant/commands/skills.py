"""``lepton skills list``: installed skills, what each adds (commands, actions), and
plugins that failed to load."""

from __future__ import annotations

import json

import click

from ..cli_support import pass_settings

__all__ = ["skills"]


@click.group(help="Installed skills.")
def skills() -> None:
    pass


@skills.command("list", help="List installed skills; plugins that failed to load are reported, not fatal.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_settings
def skills_list(settings, as_json: bool) -> None:
    from skills import load_skills

    loaded = load_skills(settings.skills)
    described = {}
    for name, skill in loaded.skills.items():
        group = skill.commands()
        described[name] = {
            "description": skill.description,
            "examples": len(skill.examples),
            "collection": skill.collection,
            "commands": f"lepton {group.name}" if group is not None else None,
            "actions": [f"POST /v1/skills/{name}/{action.name}" for action in skill.actions()],
        }
    if as_json:
        click.echo(json.dumps({"skills": described, "failed": loaded.failures}))
        return
    for name, info in described.items():
        extras = [e for e in [info["commands"], *info["actions"]] if e]
        click.echo(f"{name:<20} {info['description']}" + (f"  [{'; '.join(extras)}]" if extras else ""))
    for name, reason in loaded.failures.items():
        click.echo(f"warning: skill plugin {name!r} was skipped: {reason}", err=True)
