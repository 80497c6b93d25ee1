"""Credit scoring: a tenant's trained model decides; the conversation collects the application.

The decision is never the language model's. A tenant trains a model on its own
past applications (``lepton credit train``, :mod:`.model`); the active one
decides: probability of default, points score, approve or decline against the
cut-off, the reasons that lowered the score and, for a decline, the smallest
change to actionable features that would reach the cut-off.

In a conversation the skill asks, one question at a time, for the fields the
active model reads (:mod:`.form` parses the answers: "about 30k a year", "3
years", "I rent"), picks up what the first message already says ("borrow 5000
over 3 years"), shows a summary to confirm or correct, and then gives the
decision in fixed text built from the computed score, reasons and change only.
With the ``explain_with_model`` option on, the model adds a short explanation
under a prompt that lists only those reasons; it is off by default because a
small model invents factors. The decision, score and reasons are in the
response's ``lepton`` object (``credit_decision``, ``credit_score``,
``credit_reasons``) and in the audit log. A tenant with no trained model is told
so and offered a person.

Integrators call the same model as JSON: ``POST /v1/skills/credit_scoring/score``
(``fields`` lists what it reads).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field as PydanticField

from ..base import ActionCall, Decision, Skill, SkillAction, SkillContext, SkillEnv, SkillReply
from .form import Field, build_fields, extract, is_no, is_yes, parse_answer, parse_correction, shown
from .model import Assessment, CreditModel, Registry

__all__ = ["skill", "CreditScoringSkill", "NO_MODEL_REPLY", "DEMO_VERSION"]

SYSTEM_PROMPT = (
    "You help customers apply for credit. Collect the applicant's details one question at a "
    "time: amount, purpose, duration, income, employment and existing debts. Do not promise "
    "approval; the decision is made by the lender's scoring model."
)

EXAMPLES = [
    "I want to apply for a loan",
    "Can I borrow 5000 pounds to buy a car?",
    "Would I be approved for a personal loan?",
    "What credit limit could I get?",
    "How much can I borrow with my salary?",
    "I'd like to apply for a mortgage",
    "Am I eligible for financing on a new kitchen?",
    "My loan application was rejected, why?",
    "What affects my chances of getting credit?",
    "I need a loan of 12000 over 3 years",
    "Can I get a loan if I'm self-employed?",
    "How is my credit score calculated?",
    "What would improve my chances of approval?",
    "I want to finance a used car with monthly payments",
    "Can I get credit with a low income?",
    "Do I qualify for a loan with existing debts?",
    "I need to borrow money to consolidate my debts",
    "What interest rate would I get on a loan?",
    "Can you check if I'm creditworthy?",
    "I want to increase my credit limit",
    "Apply for a business loan of 20k",
    "how long does a loan decision take",
    "I have bad credit history, can I still borrow?",
    "I'm a student, can I get a small loan?",
    "What documents do I need for a loan application?",
    "Can I pay for this in instalments on credit?",
    "Is my application likely to be accepted?",
    "I'd like to take out a loan for my wedding",
    "How much would I repay each month on a 10000 loan?",
    "I want a credit assessment",
    "Will missing a payment last year affect my loan application?",
    "Can I borrow against my salary until payday?",
    "I need 3000 for home repairs, can you lend it?",
    "What's the maximum loan amount for someone earning 30k?",
    "Why was my credit application declined?",
]

#: Said when the tenant has no trained model: no guess, a person instead.
NO_MODEL_REPLY = ("This lender has not set up automated credit assessments here yet, so I can't assess an "
                  "application. Would you like me to connect you with a person?")
DEMO_VERSION = "demo-german-credit"
DATA = Path(__file__).parent / "data"
#: The demo model's actionable features: what an applicant can change in the application itself.
DEMO_ACTIONABLE = ("credit_amount", "duration_in_month", "installment_rate_in_percentage_of_disposable_income",
                   "other_installment_plans")
RESTART = re.compile(r"\b(start (?:again|over)|new application|apply again|another application|restart)\b", re.I)
CANCEL = re.compile(r"^\W*(?:cancel|stop|never ?mind|forget it|quit)\b", re.I)
EXPLAIN_PROMPT = (
    "You explain a lender's automated credit decision to the applicant in at most two short, plain "
    "sentences. The decision was {decision}. Mention only these factors, which lowered the score: "
    "{reasons}. Do not mention any other factor, do not promise or predict approval, do not give advice "
    "beyond the factors listed."
)


class CreditScoringSkill(Skill):
    def setup(self, env: SkillEnv) -> None:
        """Options: ``explain_with_model`` (bool), let the model add a short explanation
        of the computed reasons after the fixed decision text."""
        super().setup(env)
        self._registries: dict[str, Registry] = {}
        self.explain_with_model = bool(env.options.get("explain_with_model", False))

    def registry(self, env: SkillEnv, tenant_id: str) -> Registry:
        found = self._registries.get(tenant_id)
        if found is None:
            found = self._registries[tenant_id] = Registry(env.tenant_dir(tenant_id))
        return found

    # -- the conversation --------------------------------------------------------
    def respond(self, ctx: SkillContext) -> SkillReply:
        model = self.registry(ctx.env, ctx.tenant_id).active()
        if model is None:
            ctx.say(NO_MODEL_REPLY)
            return SkillReply(NO_MODEL_REPLY, {"credit_model": None}, declined=True, state={})
        fields = build_fields(model.used, model.card.get("questions", {}))
        state = dict(ctx.state)
        text = ctx.user_message
        if state.get("model") != model.version or (state.get("stage") == "decided" and RESTART.search(text)):
            state = {}
        if state and CANCEL.match(text):
            return self._say(ctx, "I've cancelled the application; nothing was assessed. Ask me any time to start again.",
                             {}, {"credit_stage": "cancelled"})
        if state.get("stage") == "decided":
            return self._say(ctx, self._decision_text(model, fields, state["values"], state["assessment"])
                             + "\n\nSay \"new application\" to start again.", state, self._extras(model, state))
        if state.get("stage") == "confirm":
            return self._confirm(ctx, model, fields, state)
        return self._collect(ctx, model, fields, state)

    def continues(self, tenant_id: str, state: Mapping[str, Any], message: str) -> bool:
        """An application in progress keeps a message that answers its question (or
        confirms, corrects or cancels it), whatever the router makes of it."""
        stage = state.get("stage")
        if stage not in ("collect", "confirm"):
            return False
        model = self.registry(self.env, tenant_id).active()
        if model is None or state.get("model") != model.version:
            return False
        if CANCEL.match(message):
            return True
        fields = build_fields(model.used, model.card.get("questions", {}))
        if stage == "confirm":
            return is_yes(message) or is_no(message) or parse_correction(fields, message) is not None
        asking = next((f for f in fields if f.name == state.get("asking")), None)
        return asking is not None and parse_answer(asking, message) is not None

    def _say(self, ctx: SkillContext, text: str, state: dict, extras: dict) -> SkillReply:
        ctx.say(text)
        return SkillReply(text, extras, state=state)

    def _collect(self, ctx: SkillContext, model: CreditModel, fields: list[Field], state: dict) -> SkillReply:
        text = ctx.user_message
        values = dict(state.get("values", {}))
        lines: list[str] = []
        if not state:
            lines.append(f"I can check an application with this lender's scoring model. I need {len(fields)} "
                         "details, and you can correct any of them before it decides.")
        asking = next((f for f in fields if f.name == state.get("asking")), None)
        if asking is not None:
            value = parse_answer(asking, text)
            problem = _out_of_range(asking, value)
            if value is None or problem:
                lines.append(problem or f"Sorry, I didn't catch that. {asking.hint()}")
                lines.append(asking.prompt())
                return self._say(ctx, "\n\n".join(lines), {**state, "values": values},
                                 {"credit_stage": "collecting", "credit_asking": asking.name})
            values[asking.name] = value
        picked = {k: v for k, v in extract(fields, text, values).items()
                  if not _out_of_range(next(f for f in fields if f.name == k), v)}
        if picked:
            values.update(picked)
            noted = ", ".join(f"{f.label.lower()} {shown(f, picked[f.name])}" for f in fields if f.name in picked)
            lines.append(f"Noted: {noted}.")
        missing = [f for f in fields if f.name not in values]
        if missing:
            nxt = missing[0]
            lines.append(f"({len(fields) - len(missing) + 1} of {len(fields)}) {nxt.prompt()}")
            new_state = {"model": model.version, "stage": "collect", "values": values, "asking": nxt.name}
            return self._say(ctx, "\n\n".join(lines), new_state, {"credit_stage": "collecting", "credit_asking": nxt.name})
        new_state = {"model": model.version, "stage": "confirm", "values": values}
        lines.append(_summary(fields, values))
        return self._say(ctx, "\n\n".join(lines), new_state, {"credit_stage": "confirming"})

    def _confirm(self, ctx: SkillContext, model: CreditModel, fields: list[Field], state: dict) -> SkillReply:
        text = ctx.user_message
        values = dict(state["values"])
        if is_yes(text):
            return self._decide(ctx, model, fields, values)
        correction = parse_correction(fields, text)
        if correction is None:
            ask = ("Which line should I change? Write its number and the new value, e.g. \"2: 24 months\"."
                   if is_no(text) else
                   "Please reply \"yes\" to get the decision, or correct a line, e.g. \"2: 24 months\".")
            return self._say(ctx, ask, state, {"credit_stage": "confirming"})
        f, value = correction
        problem = _out_of_range(f, value)
        if value is None or problem:
            return self._say(ctx, f"{problem or 'I could not read the new ' + f.label.lower() + '. ' + f.hint()}\n\n"
                             f"{f.prompt()}\n\nWrite it as \"{fields.index(f) + 1}: <new value>\".",
                             state, {"credit_stage": "confirming"})
        values[f.name] = value
        return self._say(ctx, f"Changed {f.label.lower()} to {shown(f, value)}.\n\n{_summary(fields, values)}",
                         {**state, "values": values}, {"credit_stage": "confirming"})

    def _decide(self, ctx: SkillContext, model: CreditModel, fields: list[Field], values: dict) -> SkillReply:
        assessment = model.assess(values)
        record = _assessment_record(assessment)
        state = {"model": model.version, "stage": "decided", "values": values, "assessment": record}
        text = self._decision_text(model, fields, values, record)
        ctx.say(text)
        if self.explain_with_model and assessment.reasons:
            labels = {f.name: f.label for f in fields}
            reasons = "; ".join(f"{labels.get(r['feature'], r['feature'])} ({shown_value(fields, r['feature'], r['value'])})"
                                for r in assessment.reasons)
            prompt = [{"role": "system", "content": EXPLAIN_PROMPT.format(decision=assessment.decision, reasons=reasons)},
                      {"role": "user", "content": "Why?"}]
            ctx.say("\n\n")
            text += "\n\n" + ctx.generate(prompt, max_tokens=90, temperature=0.2)
        decision = _decision_record(model, values, assessment)
        return SkillReply(text, self._extras(model, state), state=state, decisions=[decision])

    def _extras(self, model: CreditModel, state: Mapping[str, Any]) -> dict[str, Any]:
        a = state["assessment"]
        return {"credit_stage": "decided", "credit_decision": a["decision"], "credit_score": a["score"],
                "credit_cutoff_score": a["cutoff_score"], "credit_probability_of_default": a["probability_of_default"],
                "credit_reasons": a["reasons"], "credit_counterfactual": a["counterfactual"], "credit_model": model.version}

    def _decision_text(self, model: CreditModel, fields: list[Field], values: Mapping, a: Mapping) -> str:
        labels = {f.name: f.label for f in fields}
        verdict = "approve" if a["decision"] == "approve" else "decline"
        lines = [f"The lender's scoring model's decision: {verdict}. Your score is {a['score']} "
                 f"(applications from {a['cutoff_score']} are approved)."]
        if a["reasons"]:
            lines.append("What lowered your score most:")
            for n, r in enumerate(a["reasons"], start=1):
                lines.append(f"{n}. {labels.get(r['feature'], r['feature'])}: "
                             f"{shown_value(fields, r['feature'], r['value'])} (-{r['points']} points)")
        cf = a.get("counterfactual")
        if verdict == "decline" and cf:
            changes = " and ".join(f"{labels.get(c['feature'], c['feature']).lower()} "
                                   f"{shown_value(fields, c['feature'], c['to'])} instead of "
                                   f"{shown_value(fields, c['feature'], c['from'])}" for c in cf["changes"])
            lines.append(f"The smallest change that would reach the cut-off: {changes} (score {cf['score']}).")
        elif verdict == "decline":
            lines.append("No change to the application alone would reach the cut-off.")
        if verdict == "approve":
            lines.append("This is an automated assessment, not a binding offer: the lender confirms the final terms.")
        else:
            lines.append("Would you like me to connect you with a person to talk it through?")
        return "\n".join(lines)

    # -- integrators' JSON --------------------------------------------------------
    def actions(self) -> list[SkillAction]:
        return [
            SkillAction("score", ScoreInput, ScoreOutput, self._score_action,
                        "Score one application with the tenant's active credit model (decision, score, reasons, "
                        "counterfactual); the decision is written to the audit log."),
            SkillAction("fields", FieldsInput, FieldsOutput, self._fields_action,
                        "The fields the tenant's active credit model reads, with their types and allowed values."),
        ]

    def _model_for(self, call: ActionCall, version: str | None) -> CreditModel:
        registry = self.registry(call.env, call.tenant_id)
        model = registry.load(version) if version else registry.active()
        if model is None:
            raise ValueError("this tenant has no active credit model; train one with `lepton credit train`")
        return model

    def _score_action(self, call: ActionCall, body: "ScoreInput") -> "ScoreOutput":
        model = self._model_for(call, body.model)
        values = model.validate(body.applicant)
        assessment = model.assess(values)
        if call.env.audit is not None:
            call.env.audit(call.tenant_id, self.name, _decision_record(model, values, assessment))
        return ScoreOutput(**_assessment_record(assessment), model=model.version)

    def _fields_action(self, call: ActionCall, body: "FieldsInput") -> "FieldsOutput":
        model = self._model_for(call, body.model)
        form = {f.name: f for f in build_fields(model.used, model.card.get("questions", {}))}
        return FieldsOutput(model=model.version, fields=[
            FieldInfo(name=f.name, kind=f.kind, label=form[f.name].label, question=form[f.name].question,
                      values=f.values or None, min=f.low if f.kind == "numeric" else None,
                      max=f.high if f.kind == "numeric" else None, actionable=f.actionable)
            for f in model.used])

    # -- commands and the demo ------------------------------------------------------
    def commands(self):  # noqa: ANN201 - click.Group
        from .cli import credit_commands

        return credit_commands(self)

    def prepare_demo(self, env: SkillEnv, progress: Callable[[str], None] | None = None) -> bool:
        """Train the default tenant's demo model on the bundled German credit file, once."""
        import json

        from .model import file_hash, read_table, train_model

        registry = self.registry(env, env.default_tenant)
        if registry.active_version() is not None or (registry.models / DEMO_VERSION).exists():
            return False
        if progress:
            progress("Training the demo credit model on the bundled German credit file (once)...")
        path = DATA / "german_credit.csv"
        model = train_model(read_table(path), "creditability", good="good", actionable=DEMO_ACTIONABLE,
                            data_hash=file_hash(path), source="bundled: Statlog German Credit (CC BY 4.0)",
                            questions=json.loads((DATA / "german_credit_questions.json").read_text(encoding="utf-8")))
        model.version = model.card["version"] = DEMO_VERSION
        registry.save(model)
        return True


def shown_value(fields: list[Field], name: str, value: Any) -> str:
    for f in fields:
        if f.name == name:
            return shown(f, value)
    return str(value)


def _out_of_range(f: Field, value: Any) -> str | None:
    if value is None or f.kind != "numeric" or f.low is None or f.high is None:
        return None
    if f.low <= value <= f.high:
        return None
    low, high = (int(f.low), int(f.high)) if f.integer else (f.low, f.high)
    return (f"This lender's model can only assess {f.label.lower()} from {shown(f, low)} to {shown(f, high)}, "
            f"not {shown(f, value)}.")


def _summary(fields: list[Field], values: Mapping[str, Any]) -> str:
    lines = ["Here is your application:"]
    lines += [f"{n}. {f.label}: {shown(f, values[f.name])}" for n, f in enumerate(fields, start=1)]
    lines.append("Is this right? Reply \"yes\" to get the decision, or correct a line, e.g. \"2: 24 months\".")
    return "\n".join(lines)


def _assessment_record(a: Assessment) -> dict[str, Any]:
    return {"decision": a.decision, "probability_of_default": a.probability_of_default, "score": a.score,
            "cutoff_score": a.cutoff_score, "reasons": a.reasons, "counterfactual": a.counterfactual}


def _decision_record(model: CreditModel, values: Mapping[str, Any], a: Assessment) -> Decision:
    return Decision("credit_decision", a.decision,
                    {"applicant": dict(values), "score": a.score, "probability_of_default": a.probability_of_default,
                     "cutoff_score": a.cutoff_score, "reasons": a.reasons, "counterfactual": a.counterfactual},
                    version=model.version)


class ScoreInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    applicant: dict[str, Any] = PydanticField(
        description="The application: one value per field the model reads (see the fields action); "
        "categories as the training file wrote them. Other columns of the training file are ignored.")
    model: str | None = PydanticField(default=None, description="A model version; default: the tenant's active one.")


class Reason(BaseModel):
    feature: str
    value: Any
    points: int = PydanticField(description="Points the score would gain with this feature's best value.")


class Change(BaseModel):
    feature: str
    from_: Any = PydanticField(alias="from")
    to: Any
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class Counterfactual(BaseModel):
    changes: list[Change]
    probability_of_default: float
    score: int


class ScoreOutput(BaseModel):
    decision: str = PydanticField(description="'approve' or 'decline' against the model's cut-off.")
    probability_of_default: float
    score: int
    cutoff_score: int
    reasons: list[Reason] = PydanticField(description="The features that lowered the score most, largest first.")
    counterfactual: Counterfactual | None = PydanticField(
        description="For a decline: the smallest change to actionable features that reaches the cut-off.")
    model: str


class FieldsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = None


class FieldInfo(BaseModel):
    name: str
    kind: str
    label: str
    question: str
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    actionable: bool


class FieldsOutput(BaseModel):
    model: str
    fields: list[FieldInfo]


skill = CreditScoringSkill(
    name="credit_scoring",
    description="Takes loan and credit applications and explains the scoring model's decision.",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)
