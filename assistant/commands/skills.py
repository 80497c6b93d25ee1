"""``lepton skills``: installed skills, what each adds (commands, actions), plugins that
failed to load; and a tenant's data skills (``create``, ``delete``), made with no code
from routing examples, instructions and documents (``assistant.tenant_skills``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from skills.cli_types import TENANT

from ..cli_support import pass_settings, state_of

__all__ = ["skills"]


@click.group(help="Installed skills, and skills a tenant makes from its own data.")
def skills() -> None:
    pass


@skills.command("list", help="List installed skills and a tenant's data skills; plugins that failed to load "
                             "are reported, not fatal.")
@click.option("--tenant", "-t", type=TENANT, default=None, help="Whose data skills to list (default: the default tenant).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_settings
def skills_list(settings, tenant: str | None, as_json: bool) -> None:
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
    tenant = tenant or settings.default_tenant
    data = {r["name"]: {"description": r["description"], "examples": len(r["examples"]),
                        "collection": r["collection"], "tenant": tenant, "data_skill": True}
            for r in state_of(click.get_current_context()).store().data_skills(tenant)}
    if as_json:
        click.echo(json.dumps({"skills": described, "data_skills": data, "failed": loaded.failures}))
        return
    for name, info in described.items():
        extras = [e for e in [info["commands"], *info["actions"]] if e]
        click.echo(f"{name:<20} {info['description']}" + (f"  [{'; '.join(extras)}]" if extras else ""))
    for name, info in data.items():
        click.echo(f"{name:<20} {info['description']}  [data skill of tenant {tenant}"
                   + (f"; documents in {info['collection']}" if info["collection"] else "") + "]")
    for name, reason in loaded.failures.items():
        click.echo(f"warning: skill plugin {name!r} was skipped: {reason}", err=True)


@skills.command("create", help="""Make a skill from data, with no code: routing examples, instructions and,
optionally, documents it answers from with citations (like customer service).

It belongs to one tenant, is listed in that tenant's /v1/models and is routed to
from the next message on (no restart). EXAMPLES is a text file with one message
per line (or .jsonl / .csv with a "text" field), at least 5 of them.

\b
Example:
  lepton skills create returns --description "Questions about returns and refunds" \\
      --examples returns-examples.txt --knowledge policies/ --tenant acme
""")
@click.argument("name")
@click.option("--description", required=True, help="One line: what the skill helps with (shown to users).")
@click.option("--examples", "examples_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Messages the skill should take, one per line (.txt), or .jsonl/.csv with a text field.")
@click.option("--prompt", default=None, help="The skill's instructions to the model.")
@click.option("--prompt-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read the instructions from this file.")
@click.option("--knowledge", multiple=True, type=click.Path(path_type=Path),
              help="A folder or file of documents to answer from (repeatable).")
@click.option("--tenant", "-t", type=TENANT, default=None, help="Tenant (default: the default tenant).")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object.")
@pass_settings
def create(settings, name, description, examples_file, prompt, prompt_file, knowledge, tenant, as_json) -> None:
    from skills import installed_names
    from skills.data_skill import read_examples

    from ..tenant_skills import DataSkillError, create_data_skill

    if prompt is not None and prompt_file is not None:
        raise click.UsageError("give --prompt or --prompt-file, not both")
    try:
        examples = read_examples(examples_file)
        if prompt_file is not None:
            prompt = prompt_file.read_text(encoding="utf-8")
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DataSkillError(str(exc) if isinstance(exc, ValueError) else f"cannot read {prompt_file}: {exc}") from None
    tenant = tenant or settings.default_tenant
    created = create_data_skill(settings, state_of(click.get_current_context()).store(), tenant, name,
                                description=description, examples=examples, prompt=prompt,
                                knowledge=list(knowledge), installed=installed_names())
    if as_json:
        click.echo(json.dumps({"name": created.name, "tenant": created.tenant_id, "examples": created.examples,
                               "collection": created.collection, "chunks": created.chunks}))
        return
    where = (f", answering from {created.chunks} chunk(s) in collection {created.collection!r}"
             if created.collection else ", answering with the model (no documents)")
    click.echo(f"skill {name!r} created for tenant {tenant!r}: {created.examples} routing examples{where}. "
               "It is routed to from the next message on.")


@skills.command("delete", help="Remove a tenant's data skill with its document collection and adapters.")
@click.argument("name")
@click.option("--tenant", "-t", type=TENANT, default=None, help="Tenant (default: the default tenant).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def delete(settings, name, tenant, yes) -> None:
    from ..tenant_skills import delete_data_skill, require_data_skill

    tenant = tenant or settings.default_tenant
    store = state_of(click.get_current_context()).store()
    require_data_skill(store, tenant, name)
    if not yes:
        click.confirm(f"Delete skill {name!r} of tenant {tenant!r}, its documents and its adapters?", abort=True)
    deleted = delete_data_skill(settings, store, tenant, name)
    click.echo(f"skill {name!r} deleted from tenant {tenant!r} ({deleted.chunks} chunk(s) and "
               f"{len(deleted.adapters)} adapter(s) removed)")
