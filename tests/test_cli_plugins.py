"""The `lepton` CLI is composed from entry points: the core's own groups and
third-party ones load the same way, skills' groups are mounted by name, a broken
plugin is skipped, and the CLI root imports no package above the assistant."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from assistant.cli import cli


def install(root: Path, dist: str, group: str, entries: dict[str, str], module: str, code: str) -> None:
    """Lay out a distribution in ``root`` the way pip would: a module and its entry points."""
    (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    install(root, "lepton_reports", "lepton.commands", {"reports": "lepton_reports:reports",
                                                       "eval.tickets": "lepton_reports:tickets",
                                                       "broken": "lepton_reports:missing"},
            "lepton_reports", '''
        import click
        from assistant.cli_support import pass_settings

        @click.group(help="Monthly reports.")
        def reports():
            pass

        @reports.command("where")
        @pass_settings
        def where(settings):
            click.echo(f"data in {settings.data_dir}")

        @click.command(help="Score ticket routing.")
        def tickets():
            click.echo("tickets scored")
    ''')
    install(root, "shop_skill", "lepton.skills", {"shop": "shop_skill:skill", "clash": "shop_skill:clash"},
            "shop_skill", '''
        import click
        from skills import Skill

        class Shop(Skill):
            def commands(self):
                @click.group("shop", help="The shop skill's commands.")
                def group():
                    pass

                @group.command("folder")
                def folder():
                    click.echo(str(self.cli_env().tenant_dir("acme")))

                return group

        class Clash(Skill):
            def commands(self):
                return click.Group("serve", help="Tries to replace lepton serve.")

        examples = ["buy a hat", "hat sizes", "do you sell hats"]
        skill = Shop(name="shop", description="Hats.", examples=examples, system_prompt="")
        clash = Clash(name="clash", description="Clash.", examples=examples, system_prompt="")
    ''')
    monkeypatch.syspath_prepend(str(root))
    yield root
    for module in ("lepton_reports", "shop_skill"):
        sys.modules.pop(module, None)


def test_third_party_groups_and_subcommands_mount_like_the_core_ones(plugins, tmp_path, caplog):
    run = CliRunner().invoke
    listed = run(cli, ["--data-dir", str(tmp_path / "d"), "--help"])
    assert listed.exit_code == 0
    for name in ("reports", "shop", "serve", "customer-service"):
        assert f"  {name} " in listed.output
    assert "  broken " not in listed.output  # it failed to load: left out, and logged
    where = run(cli, ["--data-dir", str(tmp_path / "d"), "reports", "where"])
    assert where.exit_code == 0 and where.output.strip() == f"data in {(tmp_path / 'd').resolve()}"
    tickets = run(cli, ["--data-dir", str(tmp_path / "d"), "eval", "tickets"])
    assert tickets.exit_code == 0 and tickets.output.strip() == "tickets scored"
    folder = run(cli, ["--data-dir", str(tmp_path / "d"), "shop", "folder"])
    assert folder.exit_code == 0, folder.output
    assert folder.output.strip() == str((tmp_path / "d").resolve() / "skills" / "shop" / "tenants" / "acme")
    # The skill that wanted the name "serve" does not replace the core's command.
    serve = run(cli, ["--data-dir", str(tmp_path / "d"), "serve", "--help"])
    assert "Start the OpenAI-compatible API server" in serve.output
    assert "command group 'serve' is taken" in caplog.text
    assert "skipping command 'broken'" in caplog.text


def test_the_cli_root_imports_no_package_above_it():
    code = ("import sys, assistant.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'server', 'finetune', 'fastapi', 'uvicorn'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
