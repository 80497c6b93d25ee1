"""The skill contract, as a skill author uses it: the test harness, state across
turns, typed control results, generation options, decisions, the environment."""

from __future__ import annotations

import pytest

from skills import Decision, Skill, SkillContext, SkillReply, load_skills
from skills.testing import ScriptedModel, SkillHarness


class Intake(Skill):
    """Asks for a name, then an order number, remembering the first answer in its state."""

    def respond(self, ctx: SkillContext) -> SkillReply:
        if "name" not in ctx.state:
            ctx.say("Thanks. What is your order number?")
            return SkillReply("Thanks. What is your order number?", state={"name": ctx.user_message})
        text = ctx.generate([{"role": "system", "content": f"Customer {ctx.state['name']}"},
                             {"role": "user", "content": ctx.user_message}],
                            max_tokens=12, temperature=0.3, stop=["\n\n"])
        return SkillReply(text, {"order": ctx.user_message}, state={},
                          decisions=[Decision("order_lookup", "found", {"order": ctx.user_message}, version="v1")])


def intake() -> Intake:
    return Intake(name="intake", description="Collects an order number.", system_prompt="",
                  examples=["my order", "order status", "where is my order"])


def test_state_comes_back_next_turn_and_an_empty_state_clears_it(tmp_path):
    model = ScriptedModel(["Order 42 ships today.\n\nAnything else?"])
    harness = SkillHarness(intake(), tmp_path, model=model)
    first = harness.send("Ada")
    assert first.said == "Thanks. What is your order number?" and harness.state == {"name": "Ada"}
    second = harness.send("42")
    # The model saw the remembered name, and the skill's own generation options.
    assert model.calls[0]["messages"][0]["content"] == "Customer Ada"
    assert (model.calls[0]["max_tokens"], model.calls[0]["temperature"], model.calls[0]["stop"]) == (12, 0.3, ["\n\n"])
    assert second.said == "Order 42 ships today." and second.reply.extras == {"order": "42"}
    assert harness.state == {}
    assert harness.audited == [Decision("order_lookup", "found", {"order": "42"}, version="v1")]


@pytest.mark.parametrize("extras,field", [({"declined": True}, "declined"), ({"handoff": "intent"}, "handoff"),
                                          ({"safety": "crisis"}, "safety"), ({"skill": "x"}, "skill")])
def test_control_signals_are_typed_fields_not_magic_extras(extras, field):
    with pytest.raises(ValueError, match=f"may not set {field}.*typed fields"):
        SkillReply("text", extras)


def test_a_reply_refuses_state_that_cannot_be_stored_and_an_unknown_safety_level():
    with pytest.raises(ValueError, match="JSON-serialisable"):
        SkillReply("x", state={"when": object()})
    with pytest.raises(ValueError, match="'crisis', 'emergency' or None"):
        SkillReply("x", safety="panic")


def test_every_load_gives_a_fresh_skill_so_setup_state_is_never_shared(tmp_path):
    first = load_skills(["customer_service"]).skills["customer_service"]
    second = load_skills(["customer_service"]).skills["customer_service"]
    assert first is not second
    SkillHarness(first, tmp_path / "a")  # the harness sets up a copy of its own
    with pytest.raises(RuntimeError, match="before setup"):
        first.env
    harness = SkillHarness(second, tmp_path / "b", options={"sources": 2})
    assert harness.skill.sources == 2 and harness.skill.env.data_dir == tmp_path / "b" / "skills" / "customer_service"


def test_a_bad_option_fails_setup_with_a_message_that_says_what_to_change(tmp_path):
    with pytest.raises(ValueError, match="sources must be a whole number from 1 to 10, not 99"):
        SkillHarness(load_skills(["customer_service"]).skills["customer_service"], tmp_path, options={"sources": 99})
    with pytest.raises(ValueError, match="answer must be one of extractive, generated, not 'poem'"):
        SkillHarness(load_skills(["customer_service"]).skills["customer_service"], tmp_path, options={"answer": "poem"})


def test_tenant_folders_hold_any_tenant_id_and_never_escape(tmp_path):
    env = SkillHarness(intake(), tmp_path).env
    assert env.tenant_dir("acme") == env.data_dir / "tenants" / "acme"
    assert env.tenant_dir("Acme Corp/../x") == env.data_dir / "tenants" / "Acme%20Corp%2F..%2Fx"
    with pytest.raises(ValueError):
        env.tenant_dir("..")


def test_the_default_reply_uses_the_model_under_the_system_prompt(tmp_path):
    skill = Skill(name="faq", description="FAQ", system_prompt="Be brief.", examples=["a", "b", "c"])
    model = ScriptedModel(["Open 9-5."])
    turn = SkillHarness(skill, tmp_path, model=model).send("when are you open?")
    assert turn.said == "Open 9-5." and turn.reply.state is None
    assert model.calls[0]["messages"] == [{"role": "system", "content": "Be brief."},
                                          {"role": "user", "content": "when are you open?"}]


def test_customer_service_without_a_knowledge_store_answers_with_the_model(tmp_path):
    cs = load_skills(["customer_service"]).skills["customer_service"]
    turn = SkillHarness(cs, tmp_path, model=ScriptedModel(["We can help."])).send("Where is my parcel?")
    assert turn.said == "We can help." and not turn.reply.declined


def test_the_worked_example_of_docs_writing_a_skill_runs_as_written(tmp_path, monkeypatch):
    """The guide's skill and its test, executed from the page itself."""
    import re
    import sys
    import types
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "writing-a-skill.md").read_text()
    skill_code, test_code = re.findall(r"```python\n(.*?)```", page, re.S)
    module = types.ModuleType("returns_desk")
    exec(compile(skill_code, "returns_desk.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "returns_desk", module)
    scope: dict = {}
    exec(compile(test_code, "test_returns_desk.py", "exec"), scope)
    scope["test_a_worn_item_is_refused_and_audited"](tmp_path)
    verdict = module.skill.actions()[0].run(None, module.Check(reason="too small"))
    assert verdict == module.Verdict(accepted=True)
