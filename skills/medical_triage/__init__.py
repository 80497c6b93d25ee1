"""Medical triage: how urgently to seek care, decided by clinical rules, never by the LLM.

A conversation is an intake kept in the skill's state (:mod:`.facts`): each
message adds to what is known — age, symptoms and signs (stated or denied),
when it started, how severe it is, temperature, pregnancy, long-term
conditions — so follow-ups such as "it's 39.5 now" or "no rash" stay in the
intake. The decision (:mod:`.rules`) is one of four levels, from versioned
rules that each name their clinical source:

- **emergency** — told at once, with the emergency number for the user's locale;
  no question is asked first;
- otherwise the skill asks for what is missing and would change the level (age,
  when it started, the red flags of the symptom, pregnancy), a few questions at
  most, over at most two turns, then advises **urgent** (today), **routine**
  (within days) or **self-care** (with what to watch for).

The advice is fixed text chosen by the decision; every reply ends with a
disclaimer. The level and the rules that fired are in ``lepton``
(``triage_level``, ``triage_rules``) and in the audit log. Questions about
prescription doses, and requests for a diagnosis, are declined with a referral.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..base import Decision, Skill, SkillContext, SkillReply
from ..util import citation_entry
from .facts import Facts, read_facts
from .rules import RULES_VERSION, decide, rule

__all__ = ["skill", "TriageSkill", "DISCLAIMER", "DATA", "QUESTIONS", "MEDLINEPLUS", "medlineplus_documents"]

DATA = Path(__file__).parent / "data"
#: MedlinePlus health-topic summaries (U.S. National Library of Medicine, public domain).
MEDLINEPLUS = DATA / "medlineplus_topics.jsonl.gz"
#: A topic is shown only when the description is at least this similar to it (dense cosine).
MIN_TOPIC_SCORE = 0.5

SYSTEM_PROMPT = (
    "You help people decide how urgently to seek medical care. Ask for age, symptoms, when "
    "they started and how severe they are. Never present a diagnosis as certain. If anything "
    "suggests an emergency (chest pain, trouble breathing, stroke signs, heavy bleeding), tell "
    "them to call emergency services now. End with: This is not medical advice."
)

EXAMPLES = [
    "I have had a headache for three days",
    "my chest hurts when I breathe in",
    "I have a fever of 39 and a sore throat",
    "My son has a rash all over his arms",
    "I keep feeling dizzy when I stand up",
    "I twisted my ankle and it is swollen",
    "I've been coughing for two weeks, should I see a doctor?",
    "my stomach has been hurting since last night",
    "I think I have the flu, what should I do?",
    "I cut my finger and it won't stop bleeding",
    "My baby has diarrhoea and won't drink",
    "I'm short of breath after climbing stairs",
    "I have a lump on my neck",
    "my back pain is getting worse",
    "I feel numbness in my left arm",
    "is it serious if my eye is red and painful?",
    "I was stung by a bee and my face is swelling",
    "I have been vomiting all morning",
    "My mother is confused and slurring her words",
    "I burned my hand on the stove",
    "I have a really bad earache",
    "do I need to go to A&E for a high temperature?",
    "I get heart palpitations at night",
    "my knee hurts when I walk",
    "I've had blood in my urine",
    "I feel anxious and can't sleep",
    "My daughter hit her head and is very sleepy",
    "I have a sore throat and swollen glands",
    "how urgent is pain in the lower right side of my belly?",
    "I have a migraine with flashing lights",
    "I think my wrist might be broken",
    "I have itchy red spots on my legs",
    "my toddler has a temperature and a cough",
    "I've lost my sense of taste and smell",
    "I keep getting nosebleeds",
    "I've got a painful tooth and my jaw is swollen",
    "should I see a doctor about chest tightness?",
    "I'm pregnant and having cramps",
]

DISCLAIMER = ("This is general guidance from a set of clinical rules, not a diagnosis or medical advice. "
              "If you are worried, contact a doctor or pharmacist.")

#: The advice for each level (``{emergency_number}`` is the user's locale's).
ADVICE = {
    "emergency": ("This could be an emergency. Call {emergency_number} now, or go to the nearest emergency "
                  "department. Don't wait for more advice here."),
    "urgent": ("Please get medical help today: ask your GP surgery for an urgent appointment, or use an urgent care "
               "service or your health service's non-emergency line (NHS 111 in the UK). If it gets worse before "
               "then, call {emergency_number}."),
    "routine": ("Please book an appointment with a GP or another clinician in the next few days. Get help sooner "
                "if it gets worse or new symptoms appear."),
    "self_care": ("This can usually be looked after at home: rest, drink plenty of fluids, and a pharmacist can "
                  "suggest remedies. Get medical help if it gets worse, lasts longer than you'd expect, or new "
                  "symptoms appear — and call {emergency_number} for difficulty breathing, chest pain, confusion "
                  "or a rash that does not fade under a pressed glass."),
}
LEVEL_NAMES = {"emergency": "Emergency", "urgent": "Urgent — be seen today", "routine": "See a clinician within days",
               "self_care": "Self-care"}


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    #: The fact a bare answer fills ("34", "since Monday"), if any.
    expecting: str | None = None
    #: Findings a "no" denies; a "yes" records ``reported:<id>``, which the rule
    #: ``reported_red_flag`` treats as an emergency (see :mod:`.rules`).
    flags: tuple[str, ...] = ()


QUESTIONS = {
    "age": Question("age", "How old is the person who is unwell?", "age"),
    "duration": Question("duration", "When did it start?", "duration"),
    "temperature": Question("temperature", "Do you know the temperature (for example 38.5)?", "temperature"),
    "fever_flags": Question("fever_flags", "Is there a stiff neck, dislike of bright light, a rash that does not fade "
                            "when a glass is pressed on it, or unusual drowsiness or confusion?",
                            flags=("neck_stiffness", "photophobia", "non_blanching_rash", "confusion")),
    "chest_flags": Question("chest_flags", "Does the pain spread to the arm, jaw or neck, or come with sweating, "
                            "feeling sick or breathlessness?",
                            flags=("pain_radiating_arm_jaw", "sweating", "vomiting", "breathless")),
    "headache_flags": Question("headache_flags", "Did the headache start suddenly and severely, or is there a fever, "
                               "a stiff neck, weakness or confusion?",
                               flags=("thunderclap", "neck_stiffness", "one_sided_weakness", "confusion")),
    "abdomen_flags": Question("abdomen_flags", "Is the pain severe or getting worse, or is there vomiting of blood, "
                              "black stools or a high temperature?", flags=("vomiting_blood",)),
    "breathing_flags": Question("breathing_flags", "Is it hard to speak in full sentences, or are the lips turning "
                                "blue?", flags=("severe_breathing",)),
    "child_flags": Question("child_flags", "Is the child floppy, hard to wake, not drinking, or passing much less "
                            "urine than usual?", flags=("limp_floppy", "dehydration", "poor_feeding")),
    "pregnant": Question("pregnant", "Could you be pregnant?", "pregnant"),
}
MAX_ROUNDS = 2
PER_ROUND = 2

#: A bare answer to the last questions (a sentence with details is read for its facts instead).
YES = re.compile(r"^\W*(?:yes|yeah|yep|yup|i think so|(?:she|he|it|there) (?:is|does)|correct)(?:\W+(?:to (?:all|both|"
                 r"some|one) of (?:those|them)|all of them|both|please|i think))?\W*$", re.I)
NO = re.compile(r"^\W*(?:no|nope|nah|not really|none|neither|nothing like that|(?:she|he|it|there) (?:isn'?t|doesn'?t))"
                r"(?:\W+(?:to (?:all|both|any) of (?:those|them)|none of (?:those|them|that)|none|thanks?|thank you|"
                r"nothing like that))?\W*$", re.I)
DOSING = re.compile(
    r"\b(?:how (?:much|many)|what (?:dose|dosage)|dosage|dose|doses|how often can (?:i|he|she|they) (?:take|have|give)|"
    r"can i (?:take|give) (?:\d|more|another|double)|maximum (?:dose|amount)|mg of|milligrams?)\b", re.I)
DIAGNOSIS = re.compile(
    r"\b(?:do i have|have i got|does (?:he|she|my \w+) have|is (?:it|this) (?:cancer|a tumou?r|covid|meningitis|"
    r"sepsis|a stroke|a heart attack|appendicitis|serious)|diagnos\w+|what (?:do i have|is wrong with me|illness|"
    r"disease)|what'?s wrong with (?:me|him|her))\b", re.I)
DOSING_REPLY = ("I can't advise on medicine doses: the right dose depends on the medicine, the person and their other "
                "medicines. Please ask a pharmacist, the prescriber, or check the leaflet that came with it. If someone "
                "may have taken too much, call {emergency_number} now.")
DIAGNOSIS_REPLY = ("I can't diagnose what it is — only a clinician who examines you can. What I can do is help you "
                   "decide how urgently to be seen: tell me the symptoms, how long they have lasted and the age of the "
                   "person who is unwell.")


def medlineplus_documents(limit: int | None = None) -> list:
    """The bundled MedlinePlus topics as documents (one per topic, linked to its page)."""
    import gzip
    import json

    from retrieval import Document

    docs = []
    with gzip.open(MEDLINEPLUS, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            # The opening paragraph says what the topic is, and is what a reply quotes; one
            # chunk per topic keeps the demo's first start short.
            opening = row["summary_text"].strip().split("\n")[0][:600]
            docs.append(Document.from_text(row["url"], row["title"], opening,
                                           {"url": row["url"], "publisher": "MedlinePlus (U.S. National Library "
                                                                            "of Medicine)"}))
            if limit is not None and len(docs) >= limit:
                break
    return docs


def _first_sentences(text: str, limit: int = 2) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return " ".join(sentences[:limit])


def _summary(facts: Facts) -> dict[str, Any]:
    """What the decision was based on, for the audit log: no free text."""
    return {k: v for k, v in facts.to_state().items() if v not in (None, [], False)}


class TriageSkill(Skill):
    def demo_documents(self) -> list:
        """The demo tenant's ``medical`` collection: the bundled MedlinePlus topics."""
        return medlineplus_documents()

    def continues(self, tenant_id: str, state: Mapping[str, Any], message: str) -> bool:
        """An intake in progress (or just advised on) keeps a message that adds a fact or
        answers its question ("It is 39.5 now", "no rash", "she's 4", "yes")."""
        if state.get("stage") not in ("intake", "advised"):
            return False
        if state.get("stage") == "intake" and (YES.match(message) or NO.match(message)):
            return True
        facts = read_facts(message, expecting=state.get("expecting"))
        return bool(facts.present or facts.denied or facts.age is not None or facts.temperature_c is not None
                    or facts.duration_days is not None or facts.pregnant is not None)

    # -- a turn -------------------------------------------------------------------------
    def respond(self, ctx: SkillContext) -> SkillReply:
        text = ctx.user_message
        state = dict(ctx.state)
        number = ctx.emergency_number
        if DOSING.search(text) and not read_facts(text).present:
            return self._fixed(ctx, DOSING_REPLY.format(emergency_number=number), state, refusal="dosing")
        new = read_facts(text, expecting=state.get("expecting") if state.get("stage") == "intake" else None)
        self._answer_flags(state, text, new)
        facts = Facts.from_state(state.get("facts")).merge(new)
        if DIAGNOSIS.search(text) and not facts.present:
            return self._fixed(ctx, DIAGNOSIS_REPLY, state, refusal="diagnosis")
        if not facts.present and not state.get("facts"):
            return self._fixed(ctx, "Tell me what symptoms you (or the person you're asking for) have, how long they "
                                    "have had them, and their age, and I'll help you decide how urgently to get care.",
                               state, refusal=None)
        decision = decide(facts)
        asked = list(state.get("asked", []))
        rounds = int(state.get("rounds", 0))
        prefix = DIAGNOSIS_REPLY.split(" — ")[0] + ". " if DIAGNOSIS.search(text) else ""
        if decision.level != "emergency" and state.get("stage") != "advised" and rounds < MAX_ROUNDS:
            missing = [q for q in self._missing(facts) if q.id not in asked][:PER_ROUND]
            if missing:
                question = " ".join(q.text for q in missing)
                reply = f"{prefix}To judge how urgent this is: {question}"
                new_state = {"stage": "intake", "facts": facts.to_state(), "asked": asked + [q.id for q in missing],
                             "rounds": rounds + 1, "expecting": missing[0].expecting,
                             "flags": [q.id for q in missing if q.flags]}
                ctx.say(reply)
                return SkillReply(reply, {"triage_stage": "intake", "triage_questions": [q.id for q in missing]},
                                  state=new_state)
        return self._advise(ctx, facts, decision, prefix, asked, rounds)

    def _advise(self, ctx: SkillContext, facts: Facts, decision, prefix: str, asked: list, rounds: int) -> SkillReply:
        reasons = "; ".join(rule(r).description for r in decision.rules if r != "no_red_flags")
        advice = ADVICE[decision.level].format(emergency_number=ctx.emergency_number)
        why = f" (Why: {reasons}.)" if reasons else ""
        about, citations = ("", []) if decision.level == "emergency" else self._about(ctx, facts)
        reply = f"{prefix}{LEVEL_NAMES[decision.level]}. {advice}{why}{about}\n\n{DISCLAIMER}"
        ctx.say(reply)
        sources = [rule(r).source for r in decision.rules if r != "no_red_flags"]
        record = Decision("triage_level", {"level": decision.level},
                          inputs={"rules": list(decision.rules), "fired": list(decision.fired),
                                  "facts": _summary(facts)}, version=decision.version)
        extras = {"triage_level": decision.level, "triage_rules": list(decision.rules), "triage_sources": sources,
                  "triage_rules_version": RULES_VERSION}
        if citations:
            extras["citations"] = citations
        return SkillReply(reply, extras,
                          safety="emergency" if decision.level == "emergency" else None,
                          state={"stage": "advised", "facts": facts.to_state(), "asked": asked, "rounds": rounds,
                                 "level": decision.level},
                          decisions=[record])

    @staticmethod
    def _about(ctx: SkillContext, facts: Facts) -> tuple[str, list[dict[str, Any]]]:
        """A cited extract of the health topic nearest to what the user described, from the
        tenant's ``medical`` collection (none when it is missing or nothing is close)."""
        if not ctx.can_retrieve:
            return "", []
        from retrieval import RetrievalError

        # what the user said, and the findings read from it in plain words ("urinary", "sore throat")
        said = " ".join(m["content"] for m in ctx.messages if m["role"] == "user")[-800:]
        described = f"{said} {' '.join(sorted(f.replace('_', ' ') for f in facts.present if ':' not in f))}"
        try:
            hits = ctx.retrieve(described, k=1, mode="dense")
        except RetrievalError:
            return "", []
        if not hits or hits[0].score < MIN_TOPIC_SCORE:
            return "", []
        hit = hits[0]
        text = _first_sentences(hit.text.split("\n", 1)[-1] if hit.text.startswith(hit.citation.title) else hit.text)
        return f"\n\nAbout {hit.citation.title} (MedlinePlus): {text} [1]", [citation_entry(1, hit)]

    @staticmethod
    def _fixed(ctx: SkillContext, text: str, state: dict, refusal: str | None) -> SkillReply:
        reply = f"{text}\n\n{DISCLAIMER}"
        ctx.say(reply)
        extras: dict[str, Any] = {"triage_level": None}
        if refusal:
            extras["triage_refusal"] = refusal
        return SkillReply(reply, extras, state=state or None)

    @staticmethod
    def _answer_flags(state: Mapping[str, Any], text: str, new: Facts) -> None:
        """A bare yes/no to the last turn's red-flag questions: "no" denies their flags,
        "yes" reports them (an emergency: better a call too many than one too few)."""
        if state.get("stage") != "intake":
            return
        for question_id in state.get("flags", []):
            question = QUESTIONS[question_id]
            if NO.match(text):
                new.denied |= set(question.flags) - new.present
            elif YES.match(text):
                new.present.add(f"reported:{question_id}")

    @staticmethod
    def _missing(facts: Facts) -> list[Question]:
        """What is unknown and would change the level, most important first."""
        wanted = []
        if facts.age is None:
            wanted.append("age")
        if facts.fever and facts.temperature_c is None:
            wanted.append("temperature")
        checks = [("fever", "fever_flags"), ("chest_pain", "chest_flags"), ("headache", "headache_flags"),
                  ("abdominal_pain", "abdomen_flags"), ("breathless", "breathing_flags")]
        for finding, question in checks:
            if (facts.fever if finding == "fever" else facts.has(finding)) and not (
                    set(QUESTIONS[question].flags) <= (facts.present | facts.denied)):
                wanted.append(question)
        if facts.is_child and facts.age is not None and facts.age < 5 and facts.fever:
            wanted.append("child_flags")
        if facts.duration_days is None and not facts.sudden:
            wanted.append("duration")
        if facts.has("abdominal_pain") and facts.pregnant is None and facts.subject == "self" and (
                facts.age is None or 12 <= facts.age <= 55):
            wanted.append("pregnant")
        return [QUESTIONS[q] for q in wanted]


skill = TriageSkill(
    name="medical_triage",
    description="Helps decide how urgently to seek care for symptoms (emergency, urgent, routine, self-care).",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
    collection="medical",
)
