"""Skills load through the lepton.skills entry-point group, the built-ins included;
a broken plugin is reported and skipped, never fatal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from skills import Skill, load_skills

BUILT_INS = {"customer_service", "medical_triage", "credit_scoring", "recommendation"}


def make_plugins(root: Path) -> Path:
    """Install two plugin distributions into ``root`` the way pip would lay them out:
    a working third-party skill and one whose module raises on import."""
    (root / "shop_faq_skill.py").write_text(textwrap.dedent('''
        from skills import Skill
        skill = Skill(
            name="shop_faq",
            description="Answers questions about the shop's opening hours.",
            examples=["when are you open", "what are your opening hours", "are you open on sunday"],
            system_prompt="You answer questions about opening hours.",
        )
    '''))
    (root / "broken_skill.py").write_text("raise RuntimeError('plugin bug: missing config file')\n")
    for dist, name, target in [("shop_faq_skill", "shop_faq", "shop_faq_skill:skill"),
                               ("broken_skill", "broken", "broken_skill:skill")]:
        info = root / f"{dist}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[lepton.skills]\n{name} = {target}\n")
    return root


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    root = make_plugins(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for module in ("shop_faq_skill", "broken_skill"):
        sys.modules.pop(module, None)


def test_built_in_skills_load_through_entry_points():
    loaded = load_skills()
    assert BUILT_INS <= set(loaded.skills)
    for skill in loaded.skills.values():
        assert isinstance(skill, Skill) and skill.description and len(skill.examples) >= 3


def test_third_party_skill_loads_and_broken_one_is_skipped(plugins, caplog):
    loaded = load_skills()
    assert "shop_faq" in loaded.skills
    assert BUILT_INS <= set(loaded.skills)
    assert "broken" not in loaded.skills
    assert "plugin bug: missing config file" in loaded.failures["broken"]
    assert "skipping skill plugin 'broken'" in caplog.text


def test_allow_list_restricts_which_skills_load(plugins):
    loaded = load_skills(["customer_service", "shop_faq", "not_installed"])
    assert set(loaded.skills) == {"customer_service", "shop_faq"}
    assert loaded.failures == {"not_installed": "not installed"}


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "Bad Name"}, "must be 2-49 characters"),
    ({"name": "assistant"}, "reserved"),
    ({"examples": ["one"]}, "at least 3 routing examples"),
])
def test_skill_contract_is_validated(kwargs, message):
    fields = dict(name="ok_skill", description="d", examples=["a", "b", "c"], system_prompt="p")
    with pytest.raises(ValueError, match=message):
        Skill(**{**fields, **kwargs})


@pytest.mark.slow
def test_cli_lists_plugins_and_warns_about_the_broken_one(tmp_path):
    (tmp_path / "site").mkdir()
    root = make_plugins(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(root), "LEPTON_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "assistant", "skills", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert set(names) >= BUILT_INS | {"shop_faq"} and "broken" not in names
    assert "skill plugin 'broken' was skipped: RuntimeError: plugin bug" in result.stderr


@pytest.mark.slow
def test_server_with_a_broken_plugin_still_serves_the_others(tmp_path, model_path, llm, plugins, start_server):
    import openai

    from assistant import Assistant, Settings

    settings = Settings(data_dir=tmp_path / "data", model=model_path)
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    api = openai.OpenAI(base_url=live.base_url + "/v1", api_key="x")
    ids = {m.id for m in api.models.list().data}
    assert ids >= {"assistant", "shop_faq"} | BUILT_INS and "broken" not in ids
    reply = api.chat.completions.create(model="assistant", max_tokens=4,
                                        messages=[{"role": "user", "content": "are you open on saturdays?"}])
    assert reply.model_extra["lepton"]["skill"] == "shop_faq"
    assistant.close()
