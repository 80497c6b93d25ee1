"""The credit-scoring skill: training from raw CSVs, scoring, reasons, counterfactuals,
the registry and its commands, the application by conversation, and the JSON action."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from skills.credit_scoring import DATA, DEMO_ACTIONABLE, NO_MODEL_REPLY, skill
from skills.credit_scoring.form import Field, build_fields, extract, parse_answer, parse_correction
from skills.credit_scoring.model import CreditDataError, Registry, Scaling, read_table, train_model
from skills.testing import SkillHarness

GERMAN = DATA / "german_credit.csv"
QUESTIONS = json.loads((DATA / "german_credit_questions.json").read_text(encoding="utf-8"))
TAIWAN = Path(__file__).resolve().parents[3] / "shared" / "data" / "taiwan_credit_default" / "UCI_Credit_Card.csv"


@pytest.fixture(scope="module")
def german():
    """The demo model: trained once for the module, the way `lepton serve` trains it."""
    return train_model(read_table(GERMAN), "creditability", good="good", actionable=DEMO_ACTIONABLE,
                       questions=QUESTIONS, data_hash="test")


@pytest.fixture(scope="module")
def german_rows():
    return read_table(GERMAN).drop(columns=["creditability"]).to_dict("records")


def _taiwan_like(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Rows of the Taiwan file when this checkout sits beside the workplace's data,
    otherwise a synthetic file of its shape (an ID, SEX/MARRIAGE/AGE, repayment status
    and amounts, a 0/1 default flag)."""
    import numpy as np

    if TAIWAN.is_file():
        frame = pd.read_csv(TAIWAN)
        return frame.groupby("default.payment.next.month", group_keys=False).sample(frac=rows / len(frame), random_state=seed)
    rng = np.random.default_rng(seed)
    pay = rng.integers(-1, 4, size=rows)
    limit = rng.integers(10, 500, size=rows) * 1000
    logit = -1.8 + 0.8 * pay - limit / 400_000
    return pd.DataFrame({"ID": range(1, rows + 1), "LIMIT_BAL": limit, "SEX": rng.integers(1, 3, rows),
                         "MARRIAGE": rng.integers(1, 4, rows), "AGE": rng.integers(21, 70, rows), "PAY_0": pay,
                         "BILL_AMT1": rng.integers(0, 100_000, rows), "PAY_AMT1": rng.integers(0, 10_000, rows),
                         "default.payment.next.month": (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)})


# -- training -----------------------------------------------------------------------
def test_german_training_cross_validates_both_families_and_keeps_protected_attributes_out(german):
    card = german.card
    assert set(card["metrics"]["candidates"]) == {"scorecard", "gbm"}
    best = max(card["metrics"]["candidates"], key=lambda f: card["metrics"]["candidates"][f]["cv_auc"])
    assert card["family"] == best and card["metrics"]["cv_auc"] > 0.75
    assert 0 < card["metrics"]["cv_ks"] < 1 and 0 < card["metrics"]["calibration"]["brier"] < 0.25
    assert card["protected"] == ["foreign_worker", "personal_status_and_sex"]
    features = {f.name for f in german.features}
    assert not features & set(card["protected"])
    # Protected attributes only measure approval rates across groups.
    groups = card["fairness"]["personal_status_and_sex"]
    assert max(g["ratio_to_highest"] for g in groups.values()) == 1.0
    assert all(0 <= g["approval_rate"] <= 1 for g in groups.values())
    assert "age_in_years (band)" in card["fairness"]
    assert not german.feature("age_in_years").actionable


def test_taiwan_shaped_file_trains_with_its_identifier_left_out():
    frame = _taiwan_like()
    model = train_model(frame, "default.payment.next.month")
    card = model.card
    assert card["good_value"] == "0" and card["metrics"]["cv_auc"] > 0.7
    assert any(note.startswith("ID:") for note in card["left_out"])
    assert {"SEX", "MARRIAGE"} <= set(card["protected"]) and "ID" not in {f.name for f in model.features}


def _train_cli(tmp_path: Path, *args: str):
    from assistant.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), "credit", "train", *args])


def _models_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "skills" / "credit_scoring" / "tenants" / "default" / "models"


@pytest.mark.parametrize("edit, args, message", [
    (None, ["--target", "outcome"], "target column 'outcome' is not in the file"),
    (lambda f: f.assign(creditability="good"), ["--target", "creditability"], "has a single class (good)"),
    (lambda f: f.assign(creditability=f.index % 3), ["--target", "creditability"], "has 3 values"),
    (lambda f: f.assign(name=[f"person {i}" for i in f.index]), ["--target", "creditability"], "unusable columns: name"),
    (None, ["--target", "creditability", "--good", "yes"], "--good 'yes' is not a value"),
    (lambda f: f.assign(creditability=["bad" if i < 4 else "good" for i in f.index]), ["--target", "creditability"],
     "too few bad outcomes (4)"),
    (None, ["--target", "creditability", "--protected", "religion"], "--protected: no column 'religion'"),
    (None, ["--target", "creditability", "--cutoff", "1.5"], "between 0 and 1"),
    (lambda f: f[["creditability"]].assign(k=1), ["--target", "creditability"], "no usable feature columns"),
])
def test_train_refuses_bad_data_in_one_line_and_writes_nothing(tmp_path, edit, args, message):
    data = tmp_path / "applications.csv"
    frame = pd.read_csv(GERMAN)
    (edit(frame) if edit else frame).to_csv(data, index=False)
    result = _train_cli(tmp_path, str(data), *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and result.output.count("\n") == 1, result.output
    assert not _models_dir(tmp_path).exists() or not any(_models_dir(tmp_path).iterdir())


def test_train_refuses_a_missing_or_unreadable_file(tmp_path):
    missing = _train_cli(tmp_path, str(tmp_path / "nope.csv"), "--target", "x")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    (tmp_path / "one.csv").write_text("just_a_header\n", encoding="utf-8")
    short = _train_cli(tmp_path, str(tmp_path / "one.csv"), "--target", "just_a_header")
    assert short.exit_code == 1 and "needs a header row" in short.output


def test_train_list_activate_and_card_through_the_cli(tmp_path):
    from assistant.cli import cli

    data = tmp_path / "applications.csv"
    frame = pd.read_csv(GERMAN).sample(400, random_state=1)
    frame.to_csv(data, index=False)
    first = _train_cli(tmp_path, str(data), "--target", "creditability", "--out", "v1", "--json")
    assert first.exit_code == 0, first.output
    record = json.loads(first.output.strip().splitlines()[-1])
    assert record["version"] == "v1" and 0.5 < record["cv_auc"] <= 1 and record["active"] is True
    assert record["data_sha256"] and record["created"] and record["features"]
    second = _train_cli(tmp_path, str(data), "--target", "creditability", "--out", "v2", "--cutoff", "0.3",
                        "--base-score", "500", "--pdo", "40")
    assert second.exit_code == 0 and "made it active" in second.output
    again = _train_cli(tmp_path, str(data), "--target", "creditability", "--out", "v2")
    assert again.exit_code == 1 and "already exists" in again.output
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "credit"]
    listed = runner.invoke(cli, [*base, "list"])
    assert listed.exit_code == 0 and listed.output.splitlines()[1].startswith("* v2")
    assert runner.invoke(cli, [*base, "activate", "v1"]).exit_code == 0
    as_json = [json.loads(line) for line in runner.invoke(cli, [*base, "list", "--json"]).output.splitlines()]
    assert [(m["version"], m["active"]) for m in as_json] == [("v1", True), ("v2", False)]
    unknown = runner.invoke(cli, [*base, "activate", "v9"])
    assert unknown.exit_code == 1 and "no model 'v9' for this tenant; its models: v1, v2" in unknown.output
    card = json.loads(runner.invoke(cli, [*base, "card", "v2"]).output)
    assert card["cutoff_pd"] == 0.3 and card["scaling"] == {"base_score": 500.0, "base_odds": 50.0, "pdo": 40.0}


# -- scoring -------------------------------------------------------------------------
def test_scaling_puts_the_base_score_at_the_base_odds_and_pdo_doubles_them():
    scaling = Scaling(base_score=600, base_odds=50, pdo=20)
    assert scaling.points(1 / 51) == 600
    assert scaling.points(1 / 101) == 620
    assert scaling.points(1 / 26) == 580


def test_scoring_is_deterministic_and_survives_a_save_and_load(german, german_rows, tmp_path):
    applicant = german_rows[0]
    first = german.assess(applicant)
    assert german.assess(applicant) == first
    registry = Registry(tmp_path / "tenant")
    registry.save(german)
    assert registry.active().assess(applicant) == first
    assert first.decision == ("approve" if first.probability_of_default <= german.cutoff_pd else "decline")
    assert first.score == german.scaling.points(first.probability_of_default)


def test_reasons_are_the_points_each_feature_would_add_at_its_best_value(german, german_rows):
    for applicant in german_rows[:20]:
        values = german.validate(applicant)
        base = german.scaling.points(german.predict_pd([values])[0])
        for reason in german.reasons(values):
            feature = german.feature(reason["feature"])
            trials = [{**values, feature.name: v} for v in german._candidates(feature, values[feature.name])]
            best = max(german.scaling.points(p) for p in german.predict_pd(trials))
            assert reason["points"] == best - base > 0


def test_counterfactuals_flip_declines_with_actionable_features_only(german, german_rows):
    declined = [r for r in german_rows[:120] if german.assess(r).decision == "decline"]
    flipped = 0
    for applicant in declined:
        assessment = german.assess(applicant)
        cf = assessment.counterfactual
        if cf is None:
            continue
        changed = {**german.validate(applicant), **{c["feature"]: c["to"] for c in cf["changes"]}}
        after = german.assess(changed)
        assert after.decision == "approve" and after.score == cf["score"]
        assert {c["feature"] for c in cf["changes"]} <= set(DEMO_ACTIONABLE)
        flipped += 1
    assert declined and flipped >= len(declined) // 4


def test_validation_names_missing_unknown_and_bad_fields(german, german_rows):
    applicant = dict(german_rows[0])
    # Other columns of the training file (here protected ones) are ignored, never read.
    assert "personal_status_and_sex" in applicant and german.validate(applicant)
    with pytest.raises(ValueError, match="missing fields: credit_amount"):
        german.validate({k: v for k, v in applicant.items() if k != "credit_amount"})
    with pytest.raises(ValueError, match="unknown fields: salary"):
        german.validate({**applicant, "salary": 1})
    with pytest.raises(ValueError, match="housing must be one of: for free; own; rent"):
        german.validate({**applicant, "housing": "castle"})
    with pytest.raises(ValueError, match="credit_amount must be a number"):
        german.validate({**applicant, "credit_amount": "lots"})


# -- what people type -------------------------------------------------------------------
def _field(**kw) -> Field:
    return Field(name=kw.pop("name", "f"), label=kw.pop("label", "Amount"), question="?", kind=kw.pop("kind", "numeric"), **kw)


@pytest.mark.parametrize("unit, text, value", [
    ("money_per_month", "about 30k a year", 2500),
    ("money_per_month", "2,400 a month after tax", 2400),
    ("money_per_year", "2,400 a month", 28800),
    ("money", "£5k", 5000),
    ("money", "5,000", 5000),
    ("months", "3 years", 36),
    ("months", "18 months", 18),
    ("months", "a year and a half", 18),
    ("months", "24", 24),
    ("years", "I'm 31", 31),
])
def test_numbers_are_read_the_way_people_write_them(unit, text, value):
    assert parse_answer(_field(unit=unit), text) == value


@pytest.mark.parametrize("text", ["", "not sure", "between 20 and 30", "-5"])
def test_unclear_numbers_are_asked_again_not_guessed(text):
    assert parse_answer(_field(unit="money"), text) is None


def test_choices_by_number_words_synonyms_and_ranges(german):
    fields = {f.name: f for f in build_fields(german.used, QUESTIONS)}
    housing, purpose, job = fields["housing"], fields["purpose"], fields["present_employment_since"]
    assert parse_answer(housing, "2") == "rent" and parse_answer(housing, "I rent") == "rent"
    assert parse_answer(housing, "I live with my parents") == "for free"
    assert parse_answer(housing, "9") is None and parse_answer(housing, "a castle") is None
    assert parse_answer(purpose, "a tv") == "radio/television"
    assert parse_answer(job, "about two years") == "1 <= ... < 4 years"
    assert parse_answer(fields["savings_account_and_bonds"], "roughly 300") == "100 <= ... < 500 DM"
    assert parse_answer(fields["status_of_existing_checking_account"], "I'm overdrawn") == "... < 0 DM"


def test_a_first_message_fills_what_it_says(german):
    fields = build_fields(german.used, QUESTIONS)
    found = extract(fields, "Can I borrow 5000 pounds to buy a used car over 3 years?", {})
    assert found == {"credit_amount": 5000, "duration_in_month": 36, "purpose": "car (used)"}
    assert extract(fields, "I'm 45 and need a loan", {}) == {}


def test_corrections_by_line_number_or_by_name(german):
    fields = build_fields(german.used, QUESTIONS)
    assert parse_correction(fields, "2: 24 months") == (fields[1], 24)
    amount = next(f for f in fields if f.name == "credit_amount")
    assert parse_correction(fields, "the amount should be 2000") == (amount, 2000)
    assert parse_correction(fields, "hmm") is None


# -- the conversation ----------------------------------------------------------------------
ANSWERS = {"status_of_existing_checking_account": "no current account", "credit_history": "1",
           "savings_account_and_bonds": "about 700", "present_employment_since": "8 years",
           "installment_rate_in_percentage_of_disposable_income": "2", "property": "I own my home",
           "age_in_years": "45", "other_installment_plans": "no", "housing": "I own it"}


def _apply(harness: SkillHarness, first: str, answers: dict[str, str]):
    turn = harness.send(first)
    for _ in range(20):
        if harness.state.get("stage") != "collect":
            break
        turn = harness.send(answers[harness.state["asking"]])
    return turn


def test_without_a_model_the_skill_says_so_and_offers_a_person(tmp_path):
    harness = SkillHarness(skill, tmp_path)
    turn = harness.send("Can I borrow 5000 pounds to buy a car?")
    assert turn.said == NO_MODEL_REPLY and turn.reply.declined and not harness.audited
    assert harness.model.calls == []  # no guess from the language model


@pytest.fixture
def harness(tmp_path, german):
    h = SkillHarness(skill, tmp_path)
    Registry(h.env.tenant_dir("default")).save(german)
    return h


def test_a_full_application_with_a_correction(harness, german):
    first = harness.send("Can I borrow 5000 pounds to buy a used car over 3 years?")
    assert "Noted: amount 5,000, repayment period 36 months, purpose a used car." in first.said
    assert "I need 12 details" in first.said and "(4 of 12)" in first.said
    turn = _apply(harness, ANSWERS[harness.state["asking"]], ANSWERS)
    assert harness.state["stage"] == "confirm" and "Here is your application:" in turn.said
    assert "2. Repayment period: 36 months" in turn.said
    fixed = harness.send("2: 24 months")
    assert "Changed repayment period to 24 months." in fixed.said and harness.state["values"]["duration_in_month"] == 24
    decided = harness.send("yes")
    extras = decided.reply.extras
    expected = german.assess(harness.state["values"])
    assert extras["credit_decision"] == expected.decision and extras["credit_score"] == expected.score
    assert extras["credit_reasons"] == expected.reasons
    assert f"decision: {expected.decision}. Your score is {expected.score}" in decided.said
    assert harness.model.calls == []  # the decision text is fixed, not generated
    [decision] = harness.audited
    assert decision.kind == "credit_decision" and decision.outcome == expected.decision
    assert decision.version == german.version and decision.inputs["applicant"]["duration_in_month"] == 24


def test_a_decline_names_its_reasons_and_the_change_that_would_flip_it(harness, german):
    risky = {**ANSWERS, "status_of_existing_checking_account": "overdrawn", "credit_history": "I have paid late in the past",
             "savings_account_and_bonds": "no savings", "present_employment_since": "less than a year"}
    _apply(harness, "I want to borrow 9000 over 4 years for a new car", risky)
    decided = harness.send("yes")
    extras = decided.reply.extras
    assert extras["credit_decision"] == "decline"
    labels = {f.name: f.label for f in build_fields(german.used, QUESTIONS)}
    for n, reason in enumerate(extras["credit_reasons"], start=1):
        assert f"{n}. {labels[reason['feature']]}: " in decided.said and f"(-{reason['points']} points)" in decided.said
    cf = extras["credit_counterfactual"]
    if cf is not None:
        assert "The smallest change that would reach the cut-off" in decided.said
    assert "connect you with a person" in decided.said and "approved" not in decided.said.split("(")[0]


def test_unclear_answers_are_asked_again_and_an_application_can_be_cancelled(harness):
    harness.send("I'd like to apply for a loan")
    asked = harness.state["asking"]
    again = harness.send("no idea")
    assert "Sorry, I didn't catch that." in again.said and harness.state["asking"] == asked
    out_of_range = harness.send("300000000")
    assert "can only assess amount from 250 to 18,424, not 300,000,000" in out_of_range.said
    cancelled = harness.send("cancel")
    assert "cancelled the application" in cancelled.said and harness.state == {}


def test_the_model_may_explain_only_the_computed_reasons_when_the_option_is_on(tmp_path, german):
    from skills.testing import ScriptedModel

    h = SkillHarness(skill, tmp_path, model=ScriptedModel(["Mostly the repayment period."]),
                     options={"explain_with_model": True})
    Registry(h.env.tenant_dir("default")).save(german)
    _apply(h, "I want to borrow 9000 over 4 years for a new car", ANSWERS)
    decided = h.send("yes")
    [call] = h.model.calls
    system = call["messages"][0]["content"]
    for reason in decided.reply.extras["credit_reasons"]:
        assert reason["feature"] not in system  # labels, not column names
    assert "Mention only these factors" in system and call["max_tokens"] == 90
    assert decided.said.endswith("Mostly the repayment period.")


# -- integrators' JSON and a chat through the API -----------------------------------------------
@pytest.mark.slow
def test_score_action_and_a_chat_application_with_the_openai_client(settings, assistant, start_server, german, german_rows):
    import httpx
    import openai

    Registry(assistant.envs["credit_scoring"].tenant_dir("default")).save(german)
    live = start_server(settings, assistant)
    url = f"{live.base_url}/v1/skills/credit_scoring"
    fields = httpx.post(f"{url}/fields", json={}, timeout=30).json()
    assert fields["model"] == german.version and {f["name"] for f in fields["fields"]} == {f.name for f in german.used}
    scored = httpx.post(f"{url}/score", json={"applicant": german_rows[1]}, timeout=30)
    assert scored.status_code == 200, scored.text
    body = scored.json()
    expected = german.assess(german_rows[1])
    assert (body["decision"], body["score"], body["model"]) == (expected.decision, expected.score, german.version)
    assert [r["feature"] for r in body["reasons"]] == [r["feature"] for r in expected.reasons]
    if expected.counterfactual:
        assert body["counterfactual"]["changes"][0]["from"] == expected.counterfactual["changes"][0]["from"]
    missing = httpx.post(f"{url}/score", json={"applicant": {"credit_amount": 100}}, timeout=30)
    assert missing.status_code == 400 and "missing fields:" in missing.json()["error"]["message"]
    audited = [e for e in assistant.store.audit_entries("default") if e["kind"] == "credit_decision"]
    assert len(audited) == 1 and audited[0]["version"] == german.version

    client = openai.OpenAI(base_url=f"{live.base_url}/v1", api_key="unused")
    history = [{"role": "user", "content": "Can I borrow 5000 pounds to buy a used car over 3 years?"}]
    for _ in range(20):
        answer = client.chat.completions.create(model="credit_scoring", messages=history)
        lepton = answer.model_extra["lepton"]
        history.append({"role": "assistant", "content": answer.choices[0].message.content})
        if lepton.get("credit_stage") != "collecting":
            break
        history.append({"role": "user", "content": ANSWERS[lepton["credit_asking"]]})
    assert lepton["credit_stage"] == "confirming"
    history.append({"role": "user", "content": "yes"})
    final = client.chat.completions.create(model="credit_scoring", messages=history)
    lepton = final.model_extra["lepton"]
    assert lepton["credit_decision"] in ("approve", "decline") and isinstance(lepton["credit_score"], int)
    assert f"Your score is {lepton['credit_score']}" in final.choices[0].message.content
    assert isinstance(lepton["credit_reasons"], list)
    audited = [e for e in assistant.store.audit_entries("default") if e["kind"] == "credit_decision"]
    assert len(audited) == 2 and audited[-1]["conversation_id"] == lepton["conversation_id"]


def test_the_demo_model_is_trained_once_for_the_default_tenant(tmp_path):
    h = SkillHarness(skill, tmp_path)
    assert h.skill.prepare_demo(h.env) is True
    registry = Registry(h.env.tenant_dir("default"))
    assert registry.active_version() == "demo-german-credit"
    assert h.skill.prepare_demo(h.env) is False
    card = registry.active().card
    assert card["questions"] == QUESTIONS and card["rows"] == 1000 and "CC BY 4.0" in card["source"]
    turn = h.send("I need a loan")
    assert "I need 12 details" in turn.said


def test_an_application_in_progress_keeps_its_answers(harness):
    harness.send("I'd like to apply for a loan")
    skill_ = harness.skill
    assert harness.state["asking"] == "credit_amount"
    assert skill_.continues("default", harness.state, "about 5k")
    assert not skill_.continues("default", harness.state, "by the way, where is my order?")
    assert skill_.continues("default", harness.state, "cancel")
    assert not skill_.continues("other-tenant", harness.state, "about 5k")  # no model there
    assert not skill_.continues("default", {"stage": "decided"}, "yes")


@pytest.mark.slow
def test_routing_keeps_form_answers_with_the_application_and_lets_a_real_switch_go(settings, assistant, start_server, german):
    """Through the routed `assistant` model: "I missed a payment last year" alone routes to
    customer service, but as the answer to the credit-history question it stays."""
    import httpx

    Registry(assistant.envs["credit_scoring"].tenant_dir("default")).save(german)
    live = start_server(settings, assistant)

    def send(messages):
        body = httpx.post(f"{live.base_url}/v1/chat/completions", json={"model": "assistant", "messages": messages},
                          timeout=60).json()
        messages.append({"role": "assistant", "content": body["choices"][0]["message"]["content"]})
        return body["lepton"]

    alone = send([{"role": "user", "content": "I missed a payment last year"}])
    assert alone["skill"] != "credit_scoring"
    history = [{"role": "user", "content": "Can I borrow 5000 pounds for a used car over 3 years?"}]
    lepton = send(history)
    while lepton.get("credit_asking") != "credit_history":
        history.append({"role": "user", "content": ANSWERS[lepton["credit_asking"]]})
        lepton = send(history)
    history.append({"role": "user", "content": "I missed a payment last year"})
    lepton = send(history)
    assert lepton["skill"] == "credit_scoring" and lepton["credit_asking"] == "savings_account_and_bonds"
    history.append({"role": "user", "content": "by the way, my card was stolen, please block it"})
    assert send(history)["skill"] == "customer_service"
