"""The ``lepton`` command line: a root group whose commands are all plugged in.

    lepton serve                      start the API server and demo page (server/)
    lepton chat                       chat in the terminal (embedded, or --url to a server)
    lepton skills list                installed skills, their commands and actions
    lepton skills new NAME --path DIR a new skill's plugin package: skill, tests, README
    lepton models prepare             convert the embedded model once, ahead of first use
    lepton ingest PATH...             add documents to a knowledge collection
    lepton eval routing|retrieval|safety   measure the router, retrieval, the safety guard
    lepton keys …                     public widget keys (server/)
    lepton finetune …                 prepare data, train/evaluate/export LoRA adapters (finetune/)
    lepton audit export               a tenant's audit log as JSON lines
    lepton db status|migrate|migrate-from-sqlite   the records database (SQLite or PostgreSQL)
    lepton <skill group> …            a skill's own commands, e.g. lepton customer-service …

The core's command groups come from the ``lepton.commands`` entry-point group
(pyproject.toml) and skills' groups from ``Skill.commands()``, so this module
imports no package above it. An entry-point name ``group.command`` adds a command
to another group (``eval.retrieval``). A command that fails to load is logged and
left out, never fatal. Every command honours --data-dir / LEPTON_DATA_DIR and gets
its settings with ``assistant.cli_support.pass_settings``. A user error prints one
line starting with "Error:" and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from .cli_support import state_of
from .errors import LeptonError

__all__ = ["cli", "main", "COMMANDS_GROUP"]

#: Entry-point group of the core's command groups.
COMMANDS_GROUP = "lepton.commands"

log = logging.getLogger(__name__)


class LeptonGroup(click.Group):
    """Finds commands when they are asked for: core ones by entry point, then skills' groups."""

    def _core(self) -> dict[str, list]:
        """Top-level name -> its entry points (the group itself first, then ``name.sub`` ones)."""
        found: dict[str, list] = {}
        for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: (e.name.count("."), e.name)):
            found.setdefault(ep.name.split(".")[0], []).append(ep)
        return found

    def _load_core(self, name: str) -> click.Command | None:
        command = None
        for ep in self._core().get(name, []):
            try:
                loaded = ep.load()
                if not isinstance(loaded, click.Command):
                    raise TypeError(f"{ep.value} is a {type(loaded).__name__}, not a click command")
                if "." not in ep.name:
                    command = loaded
                elif isinstance(command, click.Group):
                    command.add_command(loaded, ep.name.split(".", 1)[1])
                else:
                    raise TypeError(f"there is no command group {name!r} to add it to")
            except Exception as exc:  # a plugin's bug: log, skip, carry on
                log.warning("skipping command %r (%s): %s: %s", ep.name, ep.value, type(exc).__name__, exc)
        return command

    def _skill_groups(self, ctx: click.Context) -> dict[str, click.Command]:
        """Each loaded skill's command group, by the group's name (never one of the core's)."""
        if "skill_groups" not in ctx.meta:
            from skills import load_skills

            groups: dict[str, click.Command] = {}
            core = self._core()
            for skill in load_skills(state_of(ctx).settings.skills).skills.values():
                try:
                    group = skill.commands()
                except Exception as exc:  # noqa: BLE001 - a plugin's bug
                    log.warning("skill %r: its commands could not be made: %s: %s", skill.name, type(exc).__name__, exc)
                    continue
                if group is None:
                    continue
                if group.name in core or group.name in groups:
                    log.warning("skill %r: command group %r is taken; not mounted", skill.name, group.name)
                    continue
                groups[group.name] = group
            ctx.meta["skill_groups"] = groups
        return ctx.meta["skill_groups"]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._core(), *self._skill_groups(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._core():
            return self._load_core(name)
        return self._skill_groups(ctx).get(name)


@click.group(cls=LeptonGroup,
             help="Lepton Assistant: a self-hostable assistant with plugin skills.\n\n"
                  "Set LEPTON_DATA_DIR (or --data-dir) to choose where its state lives.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory (LEPTON_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Log what the assistant does.")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # What lepton writes (the database, Chroma, models, adapters, exports) holds customers'
    # data: readable by this user only, whatever the shell's umask.
    os.umask(0o077)
    state_of(ctx)  # settings are validated before any command runs


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit code 1 (2 for usage)."""
    try:
        cli.main(args=argv, prog_name="lepton", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (LeptonError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
