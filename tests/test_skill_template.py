"""`lepton skills new`: a new skill's package that installs and passes its own tests as written;
a bad name, a taken name or a folder in the way is one line and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib

import pytest

from assistant.cli import main

FILES = ["pyproject.toml", "README.md", "lepton_skill_faq_desk/__init__.py", "tests/test_faq_desk.py"]


def lepton_new(tmp_path, capsys, *args):
    """Run `lepton skills new ...` in this process: (exit code, stdout, stderr)."""
    try:
        main(["--data-dir", str(tmp_path / "data"), "skills", "new", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_skeleton_is_written_into_an_empty_folder(tmp_path, capsys):
    target = tmp_path / "work" / "faq"
    target.mkdir(parents=True)
    code, out, err = lepton_new(tmp_path, capsys, "faq_desk", "--path", str(target),
                                "--description", 'Answers "quick" questions about the shop.')
    assert code == 0, err
    assert [name for name in tree(target) if (target / name).is_file()] == sorted(FILES)
    assert os.listdir(tmp_path / "work") == ["faq"]  # no staging folder is left beside it
    for name in FILES:
        assert str(target / name) in out
    project = tomllib.loads((target / "pyproject.toml").read_text())
    assert project["project"]["name"] == "lepton-skill-faq-desk"
    assert project["project"]["dependencies"] == ["lepton-assistant"]
    assert project["project"]["description"] == 'Answers "quick" questions about the shop.'
    assert project["project"]["entry-points"]["lepton.skills"] == {"faq_desk": "lepton_skill_faq_desk:skill"}
    assert project["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    source = (target / "lepton_skill_faq_desk" / "__init__.py").read_text()
    compile(source, "__init__.py", "exec")
    assert "class FaqDeskSkill(Skill):" in source and 'name="faq_desk"' in source
    assert "SkillHarness" in (target / "tests" / "test_faq_desk.py").read_text()


def test_the_folder_defaults_to_the_distribution_name(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = lepton_new(tmp_path, capsys, "opening_hours_")
    assert code == 0, err
    project = tomllib.loads((tmp_path / "lepton-skill-opening-hours" / "pyproject.toml").read_text())
    assert project["project"]["name"] == "lepton-skill-opening-hours"
    assert project["project"]["description"] == "Answers common questions about opening hours."


@pytest.mark.parametrize("name,message", [
    ("FAQ", "'FAQ' is not a skill name"),
    ("faq-desk", "'faq-desk' is not a skill name"),
    ("f", "'f' is not a skill name"),
    ("9lives", "'9lives' is not a skill name"),
    ("a" * 50, "is not a skill name"),
    ("faq\n", "is not a skill name"),
    ("safety", "'safety' is reserved"),
    ("assistant", "'assistant' is reserved"),
    ("customer_service", "a skill named 'customer_service' is installed already"),
])
def test_a_bad_or_taken_name_is_one_line_and_writes_nothing(tmp_path, capsys, name, message):
    code, out, err = lepton_new(tmp_path, capsys, name, "--path", str(tmp_path / "new"))
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], err
    assert out == ""
    assert not (tmp_path / "new").exists()


def test_a_folder_in_the_way_or_a_bad_description_is_one_line_and_writes_nothing(tmp_path, capsys):
    work = tmp_path / "work"
    busy = work / "busy"
    busy.mkdir(parents=True)
    (busy / "notes.txt").write_text("mine")
    (work / "file").write_text("mine")
    before = tree(work)
    for args, message in [
        (["--path", str(busy)], f"{busy} is not empty"),
        (["--path", str(work / "file")], f"{work / 'file'} is not a folder"),
        (["--path", str(work / "file" / "a" / "pkg")], f"{work / 'file'} is not a folder"),
        (["--path", str(work / "new"), "--description", "two\nlines"], "must be one line"),
        (["--path", str(work / "new"), "--description", "  "], "must be one line"),
    ]:
        code, out, err = lepton_new(tmp_path, capsys, "faq_desk", *args)
        lines = err.strip().splitlines()
        assert code != 0 and len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], (args, err)
        assert out == "" and tree(work) == before, args
    assert (busy / "notes.txt").read_text() == "mine"


def test_missing_parent_folders_are_made_and_removed_again_on_failure(tmp_path, capsys, monkeypatch):
    from assistant.commands import skill_template

    # The second file cannot be written: its folder would be the first file.
    monkeypatch.setattr(skill_template, "render_skeleton",
                        lambda name, description: {"pyproject.toml": "", "pyproject.toml/x": ""})
    code, _, err = lepton_new(tmp_path, capsys, "faq_desk", "--path", str(tmp_path / "a" / "b" / "pkg"))
    assert code == 1 and err.startswith("Error: cannot write ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists()
    monkeypatch.undo()
    code, _, err = lepton_new(tmp_path, capsys, "faq_desk", "--path", str(tmp_path / "a" / "b" / "pkg"))
    assert code == 0, err
    assert (tmp_path / "a" / "b" / "pkg" / "pyproject.toml").is_file()


@pytest.mark.slow
def test_the_generated_package_installs_passes_its_tests_and_is_listed(tmp_path, capsys):
    package = tmp_path / "lepton-skill-faq-desk"
    description = 'Answers "quick" questions about the café.'
    code, _, err = lepton_new(tmp_path, capsys, "faq_desk", "--path", str(package), "--description", description)
    assert code == 0, err
    site = tmp_path / "site"  # not the shared environment: other tests would see the skill there
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(site), "LEPTON_DATA_DIR": str(tmp_path / "data")}

    def run(*args):
        return subprocess.run([sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)

    installed = run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(package))
    assert installed.returncode == 0, installed.stderr
    tests = run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests"))
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout
    listed = run("-m", "assistant", "skills", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    report = json.loads(listed.stdout.strip().splitlines()[-1])
    assert report["skills"]["faq_desk"]["description"] == description
    assert report["skills"]["faq_desk"]["examples"] >= 5
    assert "faq_desk" not in report["failed"]
