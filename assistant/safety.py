"""The safety guard: a message about suicide, self-harm, an overdose taken or a
medical emergency gets a fixed answer at once, on every turn, whatever skill or
model name it arrives with and whether or not a person has the conversation.

The guard is deterministic rules first: every rule is a readable pattern with an
id, the rules are versioned (``RULES_VERSION``, written with each decision to the
audit log), and a tenant can read exactly why a message was answered this way.
Crisis language is too varied for patterns alone ("I'm so tired of living"), so a
message no rule matches goes to a small classifier (:class:`SafetyGuard`): a
logistic regression over the router's sentence embedding of the message, trained
at start-up on the bundled examples (``assistant/data/safety_examples.jsonl``),
answering only above a probability chosen by cross-validation. The LLM is never
part of it. The rules look for what a
person says about themselves or someone with them ("I want to end my life", "my
dad can't lift his arm and his speech is slurred"); figurative language ("this
bug is killing me", "I could murder a pizza", "dying to know") does not match,
and a negation just before a finding ("I'm not suicidal", "no chest pain")
cancels it. Where the rules are in doubt they answer: a false alarm costs a
fixed paragraph, a miss can cost a life.

Sources of the emergency signs: NHS, "When to call 999" (nhs.uk/nhs-services/
urgent-and-emergency-care-services/when-to-call-999/); the FAST stroke signs (NHS,
"Stroke: symptoms"); NHS, "Anaphylaxis: symptoms"; NHS, "Heart attack: symptoms";
NICE CKS "Suicide and self-harm" for what counts as a statement of intent.

The fixed replies name an emergency number and, for a crisis, a crisis line. They
come from ``CONTACTS`` by locale, overridable per tenant or locale with the
``safety_contacts`` setting (see :func:`contacts_for`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

__all__ = [
    "SafetyFinding",
    "SafetyGuard",
    "RULES",
    "RULES_VERSION",
    "CONTACTS",
    "DEFAULT_LOCALE",
    "check",
    "contacts_for",
    "safety_reply",
]

Level = Literal["crisis", "emergency"]

#: Changes whenever a rule, the examples or the classifier's threshold change; recorded
#: with every safety decision.
RULES_VERSION = "safety-2026-12-04.7"
#: The classifier's training examples: {"text", "label": crisis|emergency|none} per line.
EXAMPLES_PATH = Path(__file__).with_name("data") / "safety_examples.jsonl"
#: The classifier answers when its probability of crisis or emergency reaches this
#: (chosen by 5-fold cross-validation on the examples and by its false alarms on
#: ordinary customer messages: benchmarks/tune_safety.py).
CLASSIFIER_THRESHOLD = 0.85

DEFAULT_LOCALE = "en-GB"

#: Emergency number and crisis line per locale (what the fixed replies name).
CONTACTS: dict[str, dict[str, str]] = {
    "en-GB": {"emergency_number": "999", "crisis_line": "Samaritans on 116 123 (free, any time)"},
    "en-IE": {"emergency_number": "112 or 999", "crisis_line": "Samaritans on 116 123 (free, any time)"},
    "en-US": {"emergency_number": "911", "crisis_line": "the 988 Suicide & Crisis Lifeline (call or text 988)"},
    "en-CA": {"emergency_number": "911", "crisis_line": "the 9-8-8 Suicide Crisis Helpline (call or text 988)"},
    "en-AU": {"emergency_number": "000", "crisis_line": "Lifeline on 13 11 14"},
    "de-DE": {"emergency_number": "112", "crisis_line": "TelefonSeelsorge on 0800 111 0 111"},
    "fr-FR": {"emergency_number": "15 or 112", "crisis_line": "the 3114 (numéro national de prévention du suicide)"},
    # A locale not listed here: the European and GSM emergency number, and a directory of lines.
    "*": {"emergency_number": "your local emergency number (112 in Europe, 911 in North America)",
          "crisis_line": "a crisis line near you (findahelpline.com lists them by country)"},
}

CRISIS_REPLY = (
    "I'm really sorry you're going through this. You don't have to face it alone. "
    "If you might act on these thoughts or are in danger now, call {emergency_number}. "
    "You can talk to someone right now: {crisis_line}. "
    "If you can, tell someone you trust how you are feeling."
)

EMERGENCY_REPLY = (
    "This sounds like a medical emergency. Call {emergency_number} now, or ask someone near you "
    "to call. Don't wait for a reply here. Stay on the line: the call handler will tell you "
    "what to do until help arrives."
)


@dataclass(frozen=True)
class Rule:
    id: str
    level: Level
    pattern: re.Pattern[str]
    #: Some signs count only together with another (chest pain with a red flag).
    requires: re.Pattern[str] | None = None
    #: Innocent phrases that contain the sign: a match inside one of them does not count
    #: ("the page is unresponsive", "the seller is not responding", "the last level is
    #: suicide"). Each names its subject next to the words, so a person's emergency
    #: told near such a word ("he collapsed in the shop") still counts.
    unless: re.Pattern[str] | None = None


@dataclass(frozen=True)
class SafetyFinding:
    level: Level
    rule: str
    #: The words that matched, for the audit log.
    matched: str


def _r(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_SELF = r"(?:myself|my\s*self|himself|herself|themselves|themself|my\s+own\s+life)"
_NOT = r"(?:can'?t|cannot|can\s+not|isn'?t|is\s+not|aren'?t|not|won'?t|stopped|has\s+stopped|struggling\s+to|trouble|hard\s+to)"
#: Things (not people) that can be "unresponsive" or "collapse".
_THINGS = (r"(?:site|website|page|pages|app|editor|button|buttons|menu|menus|screen|browser|layout|design|template|"
           r"server|computer|laptop|phone|tablet|program|software|link|form|checkout|store|shop|seller|support|team|"
           r"company|agent|touchscreen|keyboard|mouse|printer|sales|prices?|market|stocks?|shares?|sections?|gallery|"
           r"video|game|network|wifi|router|system|it|sites|apps|everything|nobody|no\s+one|they|customer\s+service|"
           r"process|processes|script|service|database|db|tab|window|device|machine|bot|chatbot|widget|plugin|account|"
           r"portal|dashboard|terminal|console|api|camera|tv|remote|controller|port|container|pod|job|thread|query)")
#: Animals: their emergencies are for a vet, not for the guard's emergency reply.
_ANIMALS = (r"(?:cat|cats|kitten|dog|dogs|puppy|rabbit|hamster|guinea\s+pig|bird|parrot|budgie|horse|pony|fish|"
            r"tortoise|pet|pets)")
_INTENT = r"(?:want|wanna|going|gonna|plan(?:ning)?|ready|about|decided|deserve|need|wish|think(?:ing)?\s+(?:of|about)|tempted)"
#: What was taken, in an overdose rule: medicines, or all of a supply.
_TAKEN = (r"\b(?:pills|tablets|overdose|paracetamol|acetaminophen|ibuprofen|sleeping|painkillers|meds|medication"
          r"|the\s+(?:whole|entire)\s+(?:bottle|packet|box)|all\s+(?:of\s+)?(?:my|the|her|his|their))")
#: Taking it, after an overdose rule's subject: "took ... all my pills", "swallowed the whole bottle".
_SWALLOWED = rf"(?:took|taken|swallowed|overdosed|od'?d)\b.{{0,40}}?{_TAKEN}"

#: A dose as prescribed or on the packet ("I took two paracetamol for my headache"): not an overdose.
_ORDINARY_DOSE = _r(
    r"\b(?:i|i'?ve|i\s+have|i\s+just|she|he|they|my\s+\w+)\s+(?:just\s+|have\s+|has\s+)?(?:took|taken|swallowed|had)\s+"
    r"(?:a|an|one|two|2|a\s+couple\s+of|(?:my|his|her|their)\s+(?:usual|normal|daily|morning|evening|prescribed))\s+"
    r"(?:(?!packets?|bottles?|box(?:es)?|strips?|lots|loads|handfuls?)\w+\s+){0,2}?"
    r"(?:pills?|tablets?|paracetamol|acetaminophen|ibuprofen|painkillers?|meds|medication|dose)\b")

RULES: tuple[Rule, ...] = (
    # -- crisis: suicidal intent, self-harm, an overdose taken --------------------
    Rule("suicide_self", "crisis", _r(
        rf"\b(?:kill(?:ing)?|hang(?:ing)?|shoot(?:ing)?|drown(?:ing)?|poison(?:ing)?|off(?:ing)?)\s+{_SELF}"
        r"|\btake\s+(?:my|his|her|their)\s+(?:own\s+)?life\b")),
    Rule("end_life", "crisis", _r(
        r"\bend(?:ing)?\s+(?:my|his|her|their)\s+(?:own\s+)?life\b|\bend(?:ing)?\s+it\s+all\b"
        rf"|\b(?:{_INTENT}|decided)\s+(?:to\s+)?end(?:ing)?\s+(?:things|everything)\b(?!\s+(?:with|between)\b)"
        rf"|\b{_INTENT}\s+(?:to\s+)?end(?:ing)?\s+it\b(?!\s+(?:with|between)\b)")),
    Rule("want_to_die", "crisis", _r(
        rf"\b{_INTENT}\s+(?:to\s+)?die\b(?!\s+(?:of|from|laughing|for|on|my|his|her|the|it|them|a)\b)"
        r"|\bwish\s+i\s+(?:was|were)\s+dead\b|\bbetter\s+off\s+(?:dead|without\s+me)\b"
        r"|\b(?:want|wish|hope)\b.{0,30}\b(?:never|not)\s+wake\s+up\b(?!\s+(?:until|till|before|early|late|at|in)\b)"
        r"|\b(?:nobody|no\s+one)\s+(?:would|will)\s+(?:care|miss\s+me|notice)\s+if\s+i\s+(?:died|was\s+gone|were\s+gone)")),
    Rule("no_will_to_live", "crisis", _r(
        r"\b(?:don'?t|do\s+not|no\s+longer)\s+want\s+to\s+(?:live|be\s+alive|be\s+here|exist|wake\s+up)\b"
        r"|\bno\s+(?:reason|point)\s+(?:to|in)\s+(?:keep\s+|carry\s+on\s+|go\s+on\s+)?(?:live|living|go(?:ing)?\s+on|be(?:ing)?\s+alive)\b"
        r"|\b(?:reason|point)\s+(?:to|in)\s+(?:keep|keeping|carry\s+on|go\s+on)\s+living\b"
        r"|\b(?:life|living)\s+(?:is\s+not|isn'?t|is\s+no\s+longer|stopped\s+being|not)\s+worth\s+(?:living|it)\b"
        r"|\bcan'?t\s+go\s+on\s+(?:living|like\s+this|any\s*more)\b"
        r"|\b(?:want|wish)\s+to\s+(?:stop\s+existing|not\s+exist|disappear\s+forever|cease\s+to\s+exist)\b")),
    Rule("passive_ideation", "crisis", _r(
        r"\bbetter\s+(?:off\s+)?without\s+me\b"
        r"|\b(?:happier|better)\s+if\s+i\s+(?:was|were|wasn'?t|weren'?t)\s+(?:gone|dead|here|around|alive)\b"
        r"|\bcan'?t\s+(?:live|go\s+on|carry\s+on|keep\s+going|cope)\s+(?:living\s+)?(?:like\s+this|any\s*(?:more|longer))"
        r"|\bcan'?t\s+carry\s+on\s+living\b"
        r"|\b(?:won'?t|will\s+not|not\s+going\s+to)\s+be\s+(?:alive|around\s+(?:much\s+)?(?:longer|any\s*more)|"
        r"here\s+(?:much\s+longer|any\s*more))\b"
        r"|\b(?:decided|made\s+up\s+my\s+mind|made\s+my\s+decision|my\s+mind\s+is\s+made\s+up)\b.{0,40}"
        r"\b(?:not\s+(?:going\s+to\s+)?|won'?t\s+|will\s+not\s+)be\s+(?:here|around|alive)\b"
        r"(?!\s+(?:for|when|at|to|on|in|during|between|while)\b)")),
    Rule("lethal_dose", "crisis", _r(
        r"\b(?:lethal|fatal|deadly)\s+(?:dose|amount)\b"
        r"|\bhow\s+(?:much|many)\b.{0,50}\b(?:would|will|to|it\s+takes?\s+to)\s+(?:kill\s+(?:me|myself|a\s+person)|"
        r"die|be\s+(?:fatal|lethal)|not\s+wake\s+up|never\s+wake\s+up)\b")),
    Rule("suicidal", "crisis", _r(r"\bsuicid(?:e|al)\b(?!\s+(?:squad|doors?|bomb\w*|mission|run|prevention\s+(?:policy|training)))"),
         unless=_r(r"\b(?:level|levels|boss|stage|mode|difficulty|mission|route|run|move|play|plan|idea)\s+(?:is|was|are|were)\s+"
                   r"(?:\w+\s+)?suicid(?:e|al)\b")),
    Rule("self_harm", "crisis", _r(
        rf"\b(?:cut|cutting|burn(?:ed|t|ing)?|hurt|hurting|harm|harming|hit(?:ting)?|starve|starving)\s+{_SELF}\b|\bself[-\s]?harm"
        r"|\b(?:cut|cutting|burn(?:ed|t|ing)?|scratch(?:ed|ing)?|slash(?:ed|ing)?)\s+my\s+(?:arms?|wrists?|thighs?|legs?|skin|stomach)\b"
        r"|\b(?:do|doing)\s+something\s+(?:stupid\s+)?to\s+myself\b"
        r"|\b(?:started|starting|begun|began|back\s+to|gone\s+back\s+to|relapsed\s+into)\s+"
        r"(?:cutting|self[-\s]?harming|harming\s+myself|hurting\s+myself|burning\s+myself)\b(?!\s+(?:costs?|prices?|back|down)\b)"
        r"|\b(?:cutting|self[-\s]?harming)\s+again\b"
        r"|\b(?:hit(?:ting)?|bang(?:ing)?|punch(?:ing)?|smash(?:ing)?)\s+(?:my\s+head|myself|(?:the\s+)?walls?)\b"
        r".{0,40}\b(?:until|till|til)\s+(?:it|they|i|my\s+\w+)\s+(?:bleeds?|bled|bleeding|bruise[sd]?)\b"),
         # An accident told as one ("I cut myself shaving") is not self-harm.
         unless=_r(r"\b(?:cut|burn(?:ed|t)?)\s+myself\s+(?:while\s+|when\s+)?(?:shaving|cooking|chopping|slicing|"
                   r"gardening|ironing|baking|by\s+accident|accidentally|on\s+(?:a|the|some)\b)"
                   r"|\baccidentally\s+(?:cut|burn(?:ed|t)?)\s+myself\b")),
    Rule("at_a_height", "crisis", _r(
        r"\bi'?m\s+(?:standing|sitting|stood|sat|up|out|now)?\s*(?:on|at)\s+(?:the\s+|a\s+)?(?:edge|ledge|roof|rooftop|"
        r"bridge|cliff|railings?|tracks|balcony\s+rail\w*)\b"),
         requires=_r(r"\bright\s+now\b|\bnot\s+coming\s+(?:down|back|home)\b|\bgoodbye\b|\bjump\w*|\bthis\s+is\s+it\b"
                     r"|\blast\s+time\b|\bcan'?t\s+do\s+this\b|\bend\s+it\b")),
    Rule("crash_on_purpose", "crisis", _r(
        rf"\b{_INTENT}\s+to\s+(?:crash|drive)\s+(?:my|the)\s+car\s+(?:into|off|on|at)\b")),
    Rule("jump", "crisis", _r(rf"\b{_INTENT}\s+to\s+jump\s+(?:off|from|in\s+front)\b"
                              rf"|\b{_INTENT}\s+to\s+(?:step|walk|throw\s+myself|lie\s+down)\s+in\s+front\s+of\s+"
                              r"(?:a|the|an)\s+(?:next\s+|oncoming\s+)?(?:train|bus|lorry|truck|car|tram)\b")),
    # A means at hand, in the first person: a loaded gun, a noose or rope made ready.
    Rule("means_at_hand", "crisis", _r(
        r"\b(?:gun|pistol|rifle|shotgun|revolver)\s+(?:is\s+)?(?:loaded|to\s+my\s+head|in\s+my\s+mouth)\b"
        r"|\bloaded\s+(?:the|my|a|his|dad'?s)\s+(?:gun|pistol|rifle|shotgun|revolver)\b"
        r"|\b(?:noose|rope)\s+(?:is\s+)?(?:ready|tied|set\s+up|up)\b|\b(?:tied|made|got|have)\s+(?:a|the|my)\s+noose\b")),
    Rule("jump_from_height", "crisis", _r(rf"\b{_INTENT}\s+(?:to\s+)?jump\b"),
         requires=_r(r"\b(?:edge|roof|bridge|ledge|balcony|cliff|window|tower|platform|train|tracks)\b")),
    Rule("car_exhaust", "crisis", _r(
        r"\b(?:in|inside)\s+(?:the|my)\s+car\b.{0,50}\b(?:engine\s+(?:running|on)|exhaust|hose(?:pipe)?)\b"
        r"|\bgarage\b.{0,40}\bengine\s+(?:running|on)\b|\bengine\s+(?:running|on)\b.{0,40}\bgarage\b")),
    Rule("suicide_note", "crisis", _r(
        r"\b(?:written|wrote|writing|left|leaving)\s+(?:a\s+|my\s+)?(?:suicide|goodbye)\s+(?:note|notes|letters?|messages?)\b")),
    Rule("overdose_taken", "crisis", _r(
        rf"\b(?:i|i'?ve|i\s+have|i\s+just)\s+(?:just\s+|have\s+)?{_SWALLOWED}"
        r"|\b(?:i|i'?ve)\s+(?:just\s+)?overdosed\b"
        rf"|\b(?:{_INTENT}|i'?ll|i\s+will)\s+(?:to\s+)?(?:take\s+an\s+)?overdose\b|\btake\s+an\s+overdose\b"),
         unless=_ORDINARY_DOSE),
    # -- medical emergencies -------------------------------------------------------
    # Someone else's overdose or swallowed medicine is a poisoning: call emergency services
    # now (NHS "Poisoning": call 999 if someone has taken something and is unwell or
    # unresponsive; a child who swallowed tablets needs urgent help even when well).
    Rule("overdose_other", "emergency", _r(
        rf"\b(?:she|he|they|my\s+\w+)\s+(?:just\s+|has\s+|have\s+)?{_SWALLOWED}"
        r"|\b(?:she|he|they|my\s+\w+)\s+(?:just\s+|has\s+|have\s+)?overdosed\b"),
         unless=_ORDINARY_DOSE),
    Rule("not_breathing", "emergency", _r(
        rf"\b{_NOT}\s+(?:breath(?:e|ing)|get(?:ting)?\s+(?:any\s+)?(?:air|breath)|catch\s+(?:my|his|her|their)\s+breath)\b"
        r"|\bturning\s+(?:blue|grey|gray)\b|\b(?:blue|grey)\s+lips\b|\blips\s+(?:are|look|turning|went)\s+(?:blue|grey|gray)"
        r"|\bgasping\s+for\s+(?:air|breath)\b"),
         unless=_r(rf"\b(?:{_THINGS}|{_ANIMALS})\s+(?:\w+\s+){{0,3}}?{_NOT}\s+breath(?:e|ing)\b")),
    Rule("unresponsive", "emergency", _r(
        r"\b(?:unconscious|won'?t\s+wake\s+up|not\s+waking\s+up|can'?t\s+wake\s+(?:him|her|them)\b"
        r"|passed\s+out\s+and|not\s+moving\s+and|floppy)")),
    # Words that also describe software, shops and people who don't answer e-mails.
    Rule("unresponsive_person", "emergency", _r(
        r"\b(?:unresponsive|(?:is|isn'?t|not)\s+responding\b|won'?t\s+respond\b|(?:isn'?t|not)\s+responsive\b"
        r"|collapsed)"),
         unless=_r(
             rf"\b{_THINGS}\s+(?:\w+\s+){{0,2}}?(?:is|are|was|were|has|have|keeps?|became|becomes|gets?|got|seems?|"
             r"went|goes|just|still|totally|completely|now|won'?t|doesn'?t|didn'?t|can'?t|stopped)?\s*(?:been\s+)?"
             r"(?:not\s+|n'?t\s+)?(?:unresponsive|"
             r"responding|respond|responsive|collapsed)"
             rf"|\bunresponsive\s+(?:\w+\s+)?{_THINGS}"
             r"|\b(?:(?:is|isn'?t|not|won'?t)\s+)?(?:responding|respond|responsive)\s+(?:to\s+)?(?:my\s+|the\s+|any\s+|our\s+)?(?:e-?mails?|messages?|"
             r"texts?|pings?|requests?|tickets?|complaints?|enquir(?:y|ies)|inquir(?:y|ies))\b"
             r"|\b(?:isn'?t|not)\s+responsive\b(?=.{0,30}\b(?:mobile|desktop|screens?|devices?|browsers?)\b)"
             r"|,\s+but\s+it'?s\s+not\s+responsive")),
    Rule("choking", "emergency", _r(r"\b(?:is|he'?s|she'?s|i'?m|baby\s+is)\s+choking\b|\bchoking\s+on\b(?!.{0,20}laugh)"),
         unless=_r(rf"\b(?:{_THINGS}|{_ANIMALS}|plants?|weeds?)\s+(?:is|are|was|were|keeps?)?\s*choking\b"
                   r"|\b(?:(?:i'?m|i\s+am|he'?s|she'?s|we'?re|is|are)\s+)?choking\s+on\s+(?:the\s+|your\s+|these\s+|those\s+|my\s+)?"
                   r"(?:price|prices|cost|costs|bill|bills|"
                   r"fees?|charges?|words|tears|emotion)\b")),
    Rule("chest_pain_red_flags", "emergency",
         _r(r"\b(?:chest|heart)\s+(?:pain|pains|pressure|tightness|is\s+tight|hurts|feels\s+(?:tight|heavy|crushed|like))"
            r"|\b(?:crushing|tight|heavy|squeezing|severe)\s+(?:pain\s+in\s+(?:my|his|her)\s+chest|chest)"
            r"|\b(?:pain|pressure|weight|tightness|ache)\s+(?:in|on|across)\s+(?:my|his|her|the)\s+chest\b"),
         requires=_r(r"\b(?:arm|jaw|neck|back|shoulder|sweat\w*|clammy|short(?:ness)?\s+of\s+breath|breathless|"
                     r"can'?t\s+breathe|nause\w*|sick|vomit\w*|faint\w*|dizzy|crushing|heavy|squeezing|spreading|"
                     r"radiat\w*|grey|gray|elephant|weight|really\s+bad\w*|severe)")),
    Rule("heart_attack", "emergency", _r(
        r"\b(?:i'?m|i\s+am|he'?s|she'?s|is|think\s+i'?m|think\s+(?:he|she)'?s|might\s+be)\s+having\s+(?:a\s+)?heart\s+attack\b")),
    Rule("stroke_signs", "emergency", _r(
        r"\b(?:face|mouth|smile)\s+(?:is\s+|has\s+|went\s+|has\s+gone\s+)?(?:drooping|droops|drooped|droopy|dropped|fallen|"
        r"lopsided|sagging|sagged)"
        r"|\bone\s+side\s+of\s+(?:my|his|her|their)\s+face\b(?:.{0,20}\b(?:dropp|droop|fall|numb|weak))"
        r"|\bslurr(?:ed|ing)\s+(?:speech|(?:my|his|her|their)\s+words|words)|\bspeech\s+is\s+slurred\b"
        r"|\b(?:can'?t|cannot|unable\s+to)\s+(?:lift|raise|move)\s+(?:my|his|her|their|one)\s+(?:left\s+|right\s+)?(?:arm|leg)\b"
        r"|\bsudden\w*\s+(?:numbness|weakness|paralysis)\b|\bsudden(?:ly)?\s+(?:can'?t|cannot)\s+(?:speak|talk|move)\b"
        r"|\b(?:numb|weak|weakness)\s+(?:down|on|in)\s+one\s+side\b"
        r"|\b(?:i'?m|he'?s|she'?s|is|think\s+(?:i'?m|he'?s|she'?s))\s+having\s+a\s+stroke\b")),
    Rule("anaphylaxis", "emergency",
         _r(r"\b(?:throat|tongue|lips?|face|mouth)\s+(?:is\s+|are\s+|feels\s+)?(?:swell\w*|swollen|closing|tight)"
            r"|\banaphyla\w*"),
         requires=_r(r"\banaphyla\w*|\b(?:sting|stung|allerg\w*|peanut\w*|nuts?|ate|eat\w*|bee|wasp|medicine|"
                     r"tablet|injection|breath\w*|swallow\w*|wheez\w*|hives|shellfish|shrimp|prawns?)")),
    Rule("severe_bleeding", "emergency", _r(
        r"\b(?:bleeding|blood)\s+(?:heavily|badly|a\s+lot|everywhere|won'?t\s+stop|will\s+not\s+stop|is\s+pouring|is\s+spurting)"
        r"|\b(?:won'?t|will\s+not|can'?t|cannot)\s+stop\s+(?:the\s+)?bleeding\b|\bspurting\s+blood\b"
        r"|\bblood\s+(?:is\s+)?(?:pouring|gushing|spurting)\b|\b(?:a\s+lot|lots)\s+of\s+blood\b"
        r"|\bbleeding\s+heavily\b"
        r"|\b(?:vomiting|throwing\s+up|coughing\s+up)\s+(?:lots\s+of\s+|a\s+lot\s+of\s+)?blood\b")),
    Rule("fitting", "emergency", _r(
        r"\b(?:he|she|they|he'?s|she'?s|they'?re|baby|son|daughter|child|kid|toddler|husband|wife|partner|dad|mum|"
        r"mom|father|mother|brother|sister|friend|grandma|grandad|grandpa)\b.{0,25}?\b(?:fitting|seizing|convulsing)\b"
        r"(?!\s+(?:a|an|the|new|well|nicely|perfectly|in|into|right|properly|out|up|together)\b)")),
    Rule("seizure", "emergency", _r(
        r"\b(?:seizure|fit|convulsion)s?\b.{0,30}\b(?:won'?t\s+stop|not\s+stopp\w*|more\s+than\s+(?:5|five)\s+minutes|"
        r"first\s+(?:time|ever)|(?:ten|10|\d{2})\s+minutes)|\b(?:having|is\s+having)\s+(?:a\s+)?(?:seizure|fit|convulsions?)\b")),
    Rule("poisoning", "emergency", _r(
        r"\bswallowed\s+(?:a\s+|some\s+|the\s+|two\s+|\d+\s+)?(?:button\s+|coin\s+|small\s+|tiny\s+)?batter(?:y|ies)\b"
        r"|\b(?:drank|drunk|swallowed|ate|eaten)\s+(?:some\s+)?(?:bleach|poison|drain\s+cleaner|antifreeze|weed\s*killer|"
        r"dishwasher\s+tablets?|laundry\s+pods?|washing\s+pods?)")),
    Rule("thunderclap_headache", "emergency", _r(
        r"\bworst\s+headache\s+(?:of|in)\s+(?:my|his|her|their)\s+life\b|\bthunderclap\s+headache\b"
        r"|\bworst\s+headache\s+(?:i'?ve|i\s+have|he'?s|she'?s|they'?ve)\s+ever\s+(?:had|felt)\b"
        r"|\bsudden(?:ly)?\s+(?:a\s+)?(?:very\s+)?severe\s+headache\b")),
    Rule("meningitis_signs", "emergency", _r(r"\bstiff\s+neck\b|\bneck\s+is\s+stiff\b"),
         requires=_r(r"\b(?:fever|temperature|headache|rash|light\s+hurts|photophob\w*|vomit\w*|drowsy)")),
    Rule("major_trauma", "emergency", _r(
        r"\b(?:car\s+crash|car\s+accident|crashed\s+(?:my|the)\s+car|hit\s+by\s+a\s+(?:car|bus|van|lorry|truck)"
        r"|knocked\s+(?:down|over)\s+by|stabbed|been\s+shot|fell\s+from\s+(?:a|the)\s+(?:roof|ladder|window|height)"
        r"|fell\s+off\s+(?:a|the)\s+(?:roof|ladder))\b")),
    Rule("pregnancy_bleeding", "emergency", _r(r"\bpregnant\b"),
         requires=_r(r"\bbleeding\s+(?:heavily|a\s+lot|badly)|\bheavy\s+bleeding|\bsevere\s+(?:pain|cramps)\b")),
)

_NEGATION = re.compile(r"\b(?:not|no|never|n't|without|denies|deny|isn'?t|aren'?t|wasn'?t)\W+(?:\w+\W+){0,2}$", re.I)
#: Idioms that use the guard's words figuratively; removed before the rules run.
_FIGURATIVE = re.compile(
    r"\b(?:dying|dyin)\s+(?:to|for|of)\b|\bto\s+die\s+for\b|\bdie\s+(?:of|from)\s+(?:laughter|laughing|embarrassment|"
    r"boredom|shame|cuteness)\b|\b(?:could|would)\s+(?:murder|kill)\s+(?:a|an|for|some)\b"
    r"|(?<!would\s)(?<!will\s)(?<!\bto\s)\bkill(?:ing)?\s+(?:me|it|time|the\s+(?:process|job|task|app|server|lights|"
    r"engine|mood))\b"
    r"|\b(?:scared|bored|worried)\s+to\s+death\b",
    re.I,
)


def _negated(text: str, start: int) -> bool:
    return bool(_NEGATION.search(text[max(0, start - 30):start]))


def check(text: str) -> SafetyFinding | None:
    """The first rule that fires on ``text`` (crisis rules before emergency ones), or None."""
    cleaned = _FIGURATIVE.sub(" ", text.replace("’", "'"))
    for rule in RULES:
        for match in rule.pattern.finditer(cleaned):
            if _negated(cleaned, match.start()):
                continue
            if rule.requires is not None and not rule.requires.search(cleaned):
                continue
            if rule.unless is not None and any(
                    u.start() <= match.start() and match.end() <= u.end() for u in rule.unless.finditer(cleaned)):
                continue
            return SafetyFinding(rule.level, rule.id, match.group(0))
    return None


def contacts_for(tenant_id: str, locale: str | None, overrides: Mapping[str, Mapping[str, str]],
                 default_locale: str = DEFAULT_LOCALE) -> dict[str, str]:
    """The contacts a reply names, from the most specific source that has them:

    1. ``overrides[tenant_id]`` (the ``safety_contacts`` setting, by tenant);
    2. the request's locale (``lepton.locale``; ``default_locale`` when it gives none),
       first in ``overrides``, then in ``CONTACTS``, by full tag then language
       ("en-GB", then "en");
    3. ``CONTACTS["*"]``: wording that names no country's number.

    A partial entry keeps the other field from the next source down."""
    chosen = dict(CONTACTS["*"])
    name = locale or default_locale
    for table in (CONTACTS, overrides):
        for key in (name, name.split("-")[0]):
            if key in table:
                chosen.update(table[key])
                break
    chosen.update(overrides.get(tenant_id, {}))
    return chosen


def safety_reply(level: Level, contacts: Mapping[str, str]) -> str:
    return (CRISIS_REPLY if level == "crisis" else EMERGENCY_REPLY).format(**contacts)


LABELS = ("crisis", "emergency", "none")


def evaluate(rows: list[dict], guard: "SafetyGuard | None" = None) -> dict:
    """Run the guard on labelled rows ``{"text", "label": crisis|emergency|none}``.

    Recall per level counts a message caught at the right level; ``caught_any_level``
    also counts one answered with the other fixed reply (a crisis taken for an
    emergency still gets an emergency number). ``false_alarm_rate`` is the share of
    ``none`` rows the guard answered."""
    confusion = {gold: {got: 0 for got in LABELS} for gold in LABELS}
    misses: list[dict] = []
    for i, row in enumerate(rows):
        gold = row.get("label")
        if gold not in LABELS or not isinstance(row.get("text"), str):
            raise ValueError(f"row {i + 1}: needs a text and a label among {', '.join(LABELS)}")
        finding = guard.check(row["text"]) if guard is not None else check(row["text"])
        got = finding.level if finding else "none"
        confusion[gold][got] += 1
        if got != gold:
            misses.append({"text": row["text"], "label": gold, "got": got, "rule": finding.rule if finding else None})
    report: dict = {"rows": len(rows), "rules_version": RULES_VERSION, "classifier": guard is not None,
                    "confusion": confusion}
    for level in ("crisis", "emergency"):
        total = sum(confusion[level].values())
        report[f"{level}_recall"] = round(confusion[level][level] / total, 4) if total else None
    flagged = sum(confusion[g][got] for g in ("crisis", "emergency") for got in ("crisis", "emergency"))
    urgent = sum(sum(confusion[g].values()) for g in ("crisis", "emergency"))
    report["caught_any_level"] = round(flagged / urgent, 4) if urgent else None
    quiet = sum(confusion["none"].values())
    report["false_alarm_rate"] = round((quiet - confusion["none"]["none"]) / quiet, 4) if quiet else None
    report["errors"] = misses
    return report


def read_examples(path: Path = EXAMPLES_PATH) -> list[dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def fit_classifier(vectors: np.ndarray, labels: list[str]) -> Any:
    """The logistic regression over unit-length sentence embeddings (fixed solver, no randomness)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000).fit(vectors, labels)


def classify(model: Any, vector: np.ndarray, threshold: float = CLASSIFIER_THRESHOLD) -> Level | None:
    """The level the classifier gives one embedding, or None below ``threshold``.

    Applies the fitted weights with numpy (a softmax of the class scores), as
    ``predict_proba`` would, without scikit-learn's per-call input checks."""
    scores = np.asarray(vector, dtype=np.float64) @ model.coef_.T + model.intercept_
    scores = np.exp(scores - scores.max())
    probabilities = dict(zip(model.classes_, scores / scores.sum()))
    level = max(("crisis", "emergency"), key=lambda name: probabilities.get(name, 0.0))
    return level if probabilities.get(level, 0.0) >= threshold else None


class SafetyGuard:
    """The rules, then the classifier on the message's embedding.

    ``embed(texts)`` returns unit-length vectors (the router's encoder:
    ``EmbeddingRouter.embed``), so the message a turn routes is embedded once."""

    def __init__(self, embed: Any, examples: list[dict[str, str]] | None = None,
                 threshold: float = CLASSIFIER_THRESHOLD):
        rows = examples if examples is not None else read_examples()
        self._embed = embed
        self.threshold = threshold
        self.model = fit_classifier(embed([r["text"] for r in rows]), [r["label"] for r in rows])

    def check(self, text: str, vector: np.ndarray | None = None) -> SafetyFinding | None:
        """``check(text)`` by the rules; if none fires, the classifier on ``vector``
        (the text's embedding, computed here when not given)."""
        finding = check(text)
        if finding is not None:
            return finding
        if vector is None:
            vector = self._embed([text])[0]
        level = classify(self.model, vector, self.threshold)
        return SafetyFinding(level, f"classifier_{level}", text[:80]) if level else None
