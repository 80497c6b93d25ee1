"""Medical triage: the intake across turns, the rule-based decision, the safety cases,
the eval command, and a multi-turn intake through the API with the openai client."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from skills.medical_triage import DATA, DISCLAIMER, skill
from skills.medical_triage.cli import eval_triage
from skills.medical_triage.facts import read_facts
from skills.medical_triage.rules import LEVELS, RULES, decide
from skills.testing import SkillHarness


@pytest.fixture
def triage(tmp_path):
    return SkillHarness(skill, tmp_path, emergency_number="999")


def test_every_rule_names_its_source_and_a_known_level():
    assert len({r.id for r in RULES}) == len(RULES)
    assert all(r.source and r.description and r.level in LEVELS for r in RULES)


@pytest.mark.parametrize("message, level", [
    ("my dad can't lift his arm", "emergency"),
    ("right-sided weakness and difficulty speaking", "emergency"),
    ("I have crushing chest pain and my left arm is numb", "emergency"),
    ("My 2 month old has a temperature of 38.2", "emergency"),  # under 3 months: any fever
    ("my 4 month old has a fever", "urgent"),  # 3 to 6 months
    ("my 4 year old has a temperature of 38.2 but is drinking normally", "self_care"),
    ("I'm pregnant and I have a fever", "urgent"),
    ("I'm pregnant and have a bad headache and blurred vision", "emergency"),
    ("I have a sore throat, no fever", "self_care"),
    ("I have a sore throat and a temperature of 38.6 and no cough", "routine"),
    ("I've had a cough for a month", "routine"),
])
def test_the_decision_follows_the_clinical_rules(message, level):
    assert decide(read_facts(message)).level == level


def test_figurative_or_denied_findings_do_not_count():
    facts = read_facts("no fever, no rash and no stiff neck; I have hay fever")
    assert not facts.fever and {"rash", "neck_stiffness"} <= facts.denied


def test_an_emergency_is_told_at_once_without_questions(triage):
    turn = triage.send("I have crushing chest pain and my left arm is numb")
    assert turn.said.startswith("Emergency. This could be an emergency. Call 999 now")
    assert turn.reply.extras["triage_level"] == "emergency" and turn.reply.safety == "emergency"
    assert turn.reply.extras["triage_rules"] == ["cardiac_chest_pain"]
    assert turn.said.endswith(DISCLAIMER)
    (decision,) = triage.audited
    assert decision.kind == "triage_level" and decision.outcome == {"level": "emergency"}
    assert decision.inputs["rules"] == ["cardiac_chest_pain"] and decision.version


def test_the_intake_asks_only_what_is_missing_and_keeps_follow_ups(triage):
    first = triage.send("I have had a fever since yesterday")
    assert first.reply.extras["triage_stage"] == "intake"
    assert first.reply.extras["triage_questions"] == ["age", "temperature"]
    assert skill.continues("default", triage.state, "It is 39.5 now")  # stays with triage, whatever the router says
    second = triage.send("It is 39.5 now")
    assert triage.state["facts"]["temperature_c"] == 39.5 and triage.state["facts"]["duration_days"] == 1.0
    assert second.reply.extras["triage_questions"] == ["fever_flags"]  # age was asked once already
    third = triage.send("no")  # a bare no denies the red flags just asked about
    assert third.reply.extras["triage_level"] == "self_care"
    assert {"neck_stiffness", "photophobia", "non_blanching_rash", "confusion"} <= set(triage.state["facts"]["denied"])
    # After the advice a new fact still counts: the level is decided again.
    later = triage.send("now she has a stiff neck")
    assert later.reply.extras["triage_level"] == "emergency"
    assert not skill.continues("default", {}, "It is 39.5 now")  # no intake: the router decides


def test_yes_to_a_red_flag_question_is_an_emergency(triage):
    asked = triage.send("My 3 year old has a temperature of 38.9")
    assert asked.reply.extras["triage_questions"] == ["fever_flags", "child_flags"]
    turn = triage.send("yes")
    assert turn.reply.extras["triage_level"] == "emergency"
    assert turn.reply.extras["triage_rules"] == ["reported_red_flag"]


def test_questions_stop_after_two_rounds(triage):
    triage.send("I have a headache")
    triage.send("not sure")
    turn = triage.send("I don't know")
    assert turn.reply.extras["triage_level"] in LEVELS


def test_dosing_and_diagnosis_are_declined_with_a_referral(triage):
    dosing = triage.send("How much amoxicillin can I give my son?")
    assert dosing.reply.extras == {"triage_level": None, "triage_refusal": "dosing"}
    assert "ask a pharmacist, the prescriber" in dosing.said and "call 999" in dosing.said
    diagnosis = triage.send("Do I have cancer?")
    assert diagnosis.reply.extras["triage_refusal"] == "diagnosis"
    assert "only a clinician who examines you can" in diagnosis.said
    assert triage.model.calls == []  # the LLM is never asked


@pytest.mark.parametrize("name", ["first_person_cases.jsonl", "first_person_holdout.jsonl"])
def test_eval_command_on_the_bundled_first_person_cases(name):
    result = CliRunner().invoke(eval_triage, [str(DATA / name), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["emergency_under_triage"] == 0 and report["accuracy"] >= 0.9
    assert set(report["confusion"]) == {"em", "ne", "sc"} and report["cases"] >= 30
    text = CliRunner().invoke(eval_triage, [str(DATA / name)])
    assert "accuracy" in text.output and "expected \\ given" in text.output


@pytest.mark.parametrize("content, message", [
    ("", "holds no cases"),
    ("not json\n", ":1 is not JSON"),
    ('{"case_description": "x", "urgency_level": "urgent"}\n', 'needs "case_description" (text) and "urgency_level"'),
])
def test_eval_command_refuses_bad_files_in_one_line(tmp_path, content, message):
    path = tmp_path / "cases.jsonl"
    path.write_text(content)
    result = CliRunner().invoke(eval_triage, [str(path)])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    missing = CliRunner().invoke(eval_triage, [str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 1 and "does not exist" in missing.output


@pytest.mark.slow
def test_a_multi_turn_intake_through_the_api(live):
    import openai

    client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="unused")
    history = [{"role": "user", "content": "I have had a fever since yesterday"}]
    first = client.chat.completions.create(model="assistant", messages=history)
    lepton = first.model_extra["lepton"]
    assert lepton["skill"] == "medical_triage" and lepton["triage_stage"] == "intake"
    # The client resends the whole history, as OpenAI clients do; the follow-up stays in the intake.
    history += [{"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "It is 39.5 now"}]
    second = client.chat.completions.create(model="assistant", messages=history)
    assert second.model_extra["lepton"]["skill"] == "medical_triage"
    history += [{"role": "assistant", "content": second.choices[0].message.content},
                {"role": "user", "content": "I'm 34, no stiff neck, no rash, no confusion and light is fine"}]
    third = client.chat.completions.create(model="assistant", messages=history)
    lepton = third.model_extra["lepton"]
    assert lepton["skill"] == "medical_triage" and lepton["triage_level"] in ("self_care", "routine")
    assert third.choices[0].message.content.endswith(DISCLAIMER)
    emergency = client.chat.completions.create(
        model="medical_triage", messages=[{"role": "user", "content": "I came back from Africa last week and have a fever"}],
        extra_body={"lepton": {"locale": "en-US"}})
    lepton = emergency.model_extra["lepton"]
    # Not a case for the safety guard's patterns: the triage rules find the emergency, and
    # name the number of the user's locale.
    assert lepton["triage_level"] == "emergency" and lepton["triage_rules"] == ["fever_after_tropics"]
    assert lepton["safety"] == "emergency"
    assert "Call 911 now" in emergency.choices[0].message.content


@pytest.fixture(scope="module")
def medical(tmp_path_factory):
    """A real Chroma store holding a few of the bundled MedlinePlus topics."""
    from retrieval import KnowledgeStore, Retriever, ensure_collection

    from skills.medical_triage import medlineplus_documents

    store = KnowledgeStore(path=tmp_path_factory.mktemp("medical") / "chroma")
    wanted = {"Cough", "Sore Throat", "Urinary Tract Infections", "Fever", "Headache", "Back Pain", "Pinkeye"}
    topics = [d for d in medlineplus_documents() if d.title in wanted]
    assert len(topics) == len(wanted)
    assert ensure_collection(store, "default", "medical", lambda: topics, progress=None).chunks == len(wanted)
    assert ensure_collection(store, "default", "medical", lambda: topics, progress=None) is None  # once
    searcher = Retriever(store)
    return lambda tenant_id, collection, query, *, k=5, mode="hybrid": searcher.search(query, collection, tenant_id,
                                                                                         k=k, mode=mode)


def test_advice_quotes_the_nearest_health_topic_with_its_citation(tmp_path, medical):
    h = SkillHarness(skill, tmp_path, retrieve=medical)
    h.send("I've had a cough for four weeks now")
    turn = h.send("I'm 50")
    assert turn.reply.extras["triage_level"] == "routine"
    (citation,) = turn.reply.extras["citations"]
    assert citation["title"] == "Cough" and citation["url"] == "https://medlineplus.gov/cough.html"
    assert "About Cough (MedlinePlus): Coughing is a reflex" in turn.said and "[1]" in turn.said
    # An emergency is not delayed by reading: no topic is quoted.
    emergency = SkillHarness(skill, tmp_path / "e", retrieve=medical).send("crushing chest pain, I'm sweating")
    assert emergency.reply.extras["triage_level"] == "emergency" and "citations" not in emergency.reply.extras


def test_the_demo_tenant_gets_the_medlineplus_topics(settings, llm, monkeypatch):
    from assistant import Assistant
    from skills.medical_triage import medlineplus_documents

    docs = medlineplus_documents()
    assert len(docs) == 981 and all(d.metadata["url"].startswith("https://medlineplus.gov/") for d in docs)
    demo = Assistant.from_settings(settings.model_copy(update={"demo_knowledge": True, "demo_skills": False}), llm=llm)
    try:
        monkeypatch.setattr(demo, "ensure_demo_knowledge", lambda progress=None: False)  # not the help centre here
        triage = demo.skills["medical_triage"]
        assert triage.collection == "medical" and len(triage.demo_documents()) == 981
        monkeypatch.setattr(triage, "demo_documents", lambda: docs[:3])  # a short first start for the test
        demo.ensure_demo_data(progress=None)
        assert demo.knowledge.store.count("medical", "default") == 3
    finally:
        demo.close()
