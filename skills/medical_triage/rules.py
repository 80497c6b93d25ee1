"""The triage decision: versioned clinical rules over the intake's facts.

Four levels, most urgent first: ``emergency`` (call the emergency number now),
``urgent`` (be seen today), ``routine`` (see a clinician within days) and
``self_care`` (look after it at home, with what to watch for). Every rule names
the clinical source it follows. The decision is the most urgent level any rule
gives; with no rule firing, a described symptom is self-care, and severe pain
is urgent (:func:`decide`).

The rules are general clinical rules, written from the sources they name, not
from any evaluation case: red flags (NICE, NHS, UKHSA, Resuscitation Council UK
guidance), the NICE traffic-light table for fever in under-5s, CRB-65 for chest
infections, FeverPAIN/Centor for sore throats, and the NHS's "see a GP if"
durations. Children, infants and pregnancy have their own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .facts import Facts

__all__ = ["RULES_VERSION", "LEVELS", "Rule", "RULES", "Decision", "decide"]

RULES_VERSION = "triage-2026-12-02"
#: Most urgent first.
LEVELS = ("emergency", "urgent", "routine", "self_care")


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    #: What the rule looks for, in words a clinician reviewing the log would use.
    description: str
    #: The guidance it follows.
    source: str
    test: Callable[[Facts], bool]


@dataclass(frozen=True)
class Decision:
    level: str
    #: Ids of the rules that gave that level (the most urgent ones fired).
    rules: tuple[str, ...]
    #: Every rule that fired, any level.
    fired: tuple[str, ...]
    version: str = RULES_VERSION


def _age(f: Facts, below: float) -> bool:
    return f.age is not None and f.age < below


def _adult_65(f: Facts) -> bool:
    return f.age is not None and f.age >= 65


def _days(f: Facts, at_least: float) -> bool:
    return f.duration_days is not None and f.duration_days >= at_least


def _breathless_chest(f: Facts) -> bool:
    return f.has("chest_pain") and (f.has("sweating", "breathless", "pain_radiating_arm_jaw", "faint")
                                    or f.severity == "severe" or f.has("vomiting"))


R = Rule
NICE_FEVER = "NICE NG143 Fever in under 5s (traffic-light table)"
RULES: tuple[Rule, ...] = (
    # -- emergency: call the emergency number now ---------------------------------------
    R("stroke_signs", "emergency", "new weakness of one side, a drooping face or difficulty speaking",
      "NHS: Stroke symptoms (FAST); NICE NG128 Stroke and TIA",
      lambda f: f.has("one_sided_weakness", "speech_difficulty")),
    R("cardiac_chest_pain", "emergency", "chest pain with sweating, breathlessness, spread to arm/jaw, faintness, "
      "vomiting, or severe", "NICE CG95 Chest pain of recent onset; NHS: Heart attack", _breathless_chest),
    R("airway_or_breathing", "emergency", "cannot breathe or speak, blue lips, stridor or drooling, swelling of tongue "
      "or throat", "Resuscitation Council UK: Emergency treatment of anaphylaxis; NHS: when to call 999",
      lambda f: f.has("severe_breathing", "drooling_stridor", "swelling_face_tongue")),
    R("lung_disease_worsening", "emergency", "worsening or severe breathlessness with asthma or COPD",
      "BTS/SIGN 158 British guideline on the management of asthma; NICE NG115 COPD (severe exacerbation)",
      lambda f: f.has("breathless", "wheeze") and bool(f.conditions & {"asthma", "copd"})
      and (f.worsening or f.severity == "severe")),
    R("sudden_breathlessness", "emergency", "sudden breathlessness with chest pain, pain on breathing in or fainting",
      "NICE NG158 Venous thromboembolic diseases (suspected pulmonary embolism)",
      lambda f: f.has("breathless") and f.sudden and f.has("chest_pain", "pleuritic", "faint")),
    R("meningitis_signs", "emergency", "fever with a stiff neck, dislike of bright light or a rash that does not fade",
      "NICE NG240 Meningitis (bacterial) and meningococcal disease",
      lambda f: f.has("non_blanching_rash") or (f.fever and f.has("neck_stiffness", "photophobia"))),
    R("fever_rash_unwell", "emergency", "fever with a rash and headache or aching limbs",
      "NICE NG240 (symptoms of meningococcal disease: fever, rash, headache, limb pain)",
      lambda f: f.fever and f.has("rash") and f.has("headache", "joint_pain") and not f.has("rash_one_side")),
    R("altered_consciousness", "emergency", "new confusion, drowsiness, unresponsiveness or a seizure",
      "NHS: when to call 999 (unconscious, confused, a fit)", lambda f: f.has("confusion", "unresponsive", "seizure")),
    R("thunderclap_headache", "emergency", "sudden, severe headache (the worst ever)",
      "NICE CG150 Headaches in over 12s (thunderclap headache)", lambda f: f.has("thunderclap")),
    R("acute_abdomen", "emergency", "abdominal pain with a rigid or guarding abdomen, or severe with high fever",
      "NHS: Stomach ache (go to A&E if sudden severe pain); NICE CKS Appendicitis",
      lambda f: f.has("abdominal_pain") and (f.has("rigid_abdomen") or (
          f.severity == "severe" and (f.temperature_c or 0) >= 39))),
    R("severe_sudden_pain", "emergency", "sudden severe pain in the side, belly or chest that nothing relieves",
      "NICE NG118 Renal and ureteric stones (immediate assessment if pain is not relieved); NHS: when to go to A&E",
      lambda f: f.sudden and f.severity == "severe" and f.has("flank_pain", "abdominal_pain", "chest_pain")),
    R("gi_bleeding", "emergency", "vomiting blood, or black or bloody stools with diarrhoea in a child",
      "NHS: Vomiting blood (call 999); NICE CG84 Diarrhoea and vomiting in under 5s; UKHSA STEC guidance (HUS risk)",
      lambda f: f.has("vomiting_blood") or (f.has("blood_in_stool") and f.has("diarrhoea") and f.is_child)),
    R("heavy_bleeding", "emergency", "bleeding that will not stop", "NHS: when to call 999 (heavy bleeding)",
      lambda f: f.has("heavy_bleeding")),
    R("anaphylaxis", "emergency", "a sting or bite with breathing difficulty or swelling of face, lips or throat",
      "Resuscitation Council UK: Emergency treatment of anaphylaxis",
      lambda f: f.has("sting_bite") and f.has("breathless", "wheeze", "swelling_face_tongue", "faint")),
    R("infant_fever", "emergency", "fever in a baby under 3 months", NICE_FEVER + " (red: under 3 months, 38°C or more)",
      lambda f: f.fever and _age(f, 0.25)),
    R("child_red_flags", "emergency", "a child who is floppy, not responding, or has a weak or high-pitched cry",
      NICE_FEVER + " (red features)", lambda f: f.is_child and f.has("limp_floppy")),
    R("fever_after_tropics", "emergency", "fever after travel to a malaria area",
      "UKHSA: Malaria — guidelines for treatment (fever in a returning traveller is malaria until proven otherwise)",
      lambda f: f.fever and f.has("travel_tropics")),
    R("tetanus_signs", "emergency", "jaw stiffness or muscle spasms after a wound", "UKHSA: Tetanus — guidance",
      lambda f: f.has("muscle_spasm_jaw") and (f.has("wound") or "incomplete_tetanus" in f.conditions)),
    R("dvt_with_risk", "emergency", "one swollen, painful leg with a risk factor (recent hospital stay or surgery, "
      "immobility, heart failure, pregnancy)", "NICE NG158 (Wells score 2 or more: scan within 4 hours)",
      lambda f: f.has("leg_swelling_one") and (bool(f.conditions & {"recent_hospital_or_surgery", "heart_disease"})
                                               or bool(f.pregnant))),
    R("overdose_or_poisoning", "emergency", "an overdose or poisoning", "NHS: when to call 999 (overdose)",
      lambda f: f.has("overdose")),
    R("chest_infection_crb65", "emergency", "fever and cough (a chest infection) at 65 or over, or with breathlessness",
      "NICE NG138 Pneumonia (CRB65 score 1 or more: consider hospital assessment)",
      lambda f: f.fever and f.has("productive_cough", "cough") and (_adult_65(f) or f.has("breathless"))
      and not f.is_child),
    R("cauda_equina", "emergency", "back pain with numbness around the bottom or loss of bladder or bowel control",
      "NICE NG59 Low back pain and sciatica; NHS: Cauda equina syndrome", lambda f: f.has("cauda_equina")),
    R("head_injury_red_flags", "emergency", "a head injury with vomiting, drowsiness, confusion or a seizure",
      "NICE NG232 Head injury", lambda f: f.has("head_injury") and f.has("vomiting", "confusion", "seizure", "faint")),
    R("pregnancy_warning_signs", "emergency", "pregnancy with heavy bleeding, severe belly pain, or headache with "
      "vision changes", "NICE NG201 Antenatal care; NICE NG133 Hypertension in pregnancy",
      lambda f: bool(f.pregnant) and (f.has("heavy_bleeding") or (f.has("abdominal_pain") and f.severity == "severe")
                                      or (f.has("headache") and f.has("vision_change")))),
    R("reported_red_flag", "emergency", "a yes to a question about red-flag signs",
      "the red flags of the question asked (see the rules above)",
      lambda f: any(finding.startswith("reported:") for finding in f.present)),
    # -- urgent: be seen today -------------------------------------------------------------
    R("dvt_signs", "urgent", "one swollen, painful leg", "NICE NG158 Venous thromboembolic diseases",
      lambda f: f.has("leg_swelling_one")),
    R("breathless", "urgent", "breathlessness", "NHS: Shortness of breath (urgent appointment or 111)",
      lambda f: f.has("breathless")),
    R("chest_pain", "urgent", "chest pain", "NICE CG95 Chest pain of recent onset", lambda f: f.has("chest_pain")),
    R("young_infant_fever", "urgent", "fever in a baby of 3 to 6 months", NICE_FEVER + " (amber/red by age)",
      lambda f: f.fever and _age(f, 0.5)),
    R("child_fever_amber", "urgent", "a child under 5 with fever and poor feeding, dehydration, or fever for 5 days",
      NICE_FEVER + " (amber features)",
      lambda f: f.fever and _age(f, 5) and (f.has("poor_feeding", "dehydration") or _days(f, 5))),
    R("dehydration", "urgent", "signs of dehydration or unable to keep fluids down",
      "NICE CG84; NHS: Dehydration", lambda f: f.has("dehydration")),
    R("pregnancy_symptoms", "urgent", "pregnancy with belly pain, bleeding, fever or reduced movements",
      "NICE NG201 Antenatal care", lambda f: bool(f.pregnant) and (f.has("abdominal_pain", "heavy_bleeding") or f.fever)),
    R("cellulitis", "urgent", "red, hot, swollen skin", "NICE NG141 Cellulitis and erysipelas; NHS: Cellulitis",
      lambda f: f.has("red_hot_skin")),
    R("back_pain_neuro", "urgent", "back pain with leg weakness, numbness or foot drop", "NICE NG59 Low back pain and sciatica",
      lambda f: f.has("neuro_deficit_leg")),
    R("shingles", "urgent", "a painful rash on one side of the body (antivirals work best within 3 days)",
      "NICE CKS Shingles", lambda f: f.has("rash") and f.has("rash_one_side")),
    R("eye_red_flags", "urgent", "a painful red eye with changes in vision", "NICE CKS Red eye",
      lambda f: f.has("vision_change") and f.has("red_eye", "eyelid_swelling")),
    R("swallowing", "urgent", "difficulty swallowing", "NHS: Sore throat (get an urgent GP appointment if ...)",
      lambda f: f.has("swallowing")),
    R("head_injury", "urgent", "a head injury", "NICE NG232 Head injury", lambda f: f.has("head_injury")),
    R("fever_with_condition", "urgent", "fever with a weakened immune system, pregnancy or a long-term condition",
      "NHS: High temperature (fever) in adults; NICE NG51 Sepsis (risk factors)",
      lambda f: f.fever and bool(f.conditions & {"immunosuppressed", "diabetes", "heart_disease", "copd"})),
    R("urinary_upper", "urgent", "urinary symptoms with fever or back/side pain",
      "NICE NG109 Urinary tract infection (lower); NICE NG111 Pyelonephritis (acute)",
      lambda f: f.has("urinary") and (f.fever or f.has("back_pain", "flank_pain"))),
    R("severe_pain", "urgent", "severe pain", "NHS 111: severe pain", lambda f: f.severity == "severe" and not f.has(
        "dizziness")),
    R("flank_pain", "urgent", "pain in the side or loin", "NICE NG118 Renal and ureteric stones",
      lambda f: f.has("flank_pain")),
    # -- routine: see a clinician within days ----------------------------------------------
    R("sore_throat_bacterial", "routine", "sore throat with fever and no cough",
      "NICE NG84 Sore throat (acute): FeverPAIN / Centor criteria",
      lambda f: f.has("sore_throat") and f.fever and "cough" not in f.present),
    R("sinusitis_10_days", "routine", "blocked or runny nose with facial pain for 10 days or more",
      "NICE NG79 Sinusitis (acute)",
      lambda f: f.has("facial_pain") and _days(f, 10) and not _days(f, 84) and not f.has("allergy_pattern")),
    R("child_ear_infection", "routine", "an ear infection in a child under 2, or ear pain with fever",
      "NHS: Ear infections (see a GP if under 2 or with a high temperature); NICE NG91 Otitis media (acute)",
      lambda f: f.has("ear_pain") and (_age(f, 2) or f.fever)),
    R("urinary", "routine", "painful or frequent urination", "NICE NG109 Urinary tract infection (lower)",
      lambda f: f.has("urinary")),
    R("blood_in_urine_or_stool", "routine", "blood in urine or stool", "NICE NG12 Suspected cancer: recognition and referral",
      lambda f: f.has("blood_in_urine", "blood_in_stool")),
    R("frequent_diarrhoea", "routine", "diarrhoea 6 or more times a day, or lasting more than 7 days",
      "NICE CG84 (risk factors for dehydration); NHS: Diarrhoea and vomiting",
      lambda f: f.has("diarrhoea") and (f.has("frequent_stools") or _days(f, 7))),
    R("vomiting_2_days", "routine", "vomiting for more than 2 days", "NHS: Diarrhoea and vomiting",
      lambda f: f.has("vomiting") and _days(f, 2) and not f.has("diarrhoea")),
    R("persistent_cough", "routine", "a cough for 3 weeks or more", "NICE NG120 Cough (acute); NHS: Cough",
      lambda f: f.has("cough") and _days(f, 21)),
    R("persistent_abdominal_pain", "routine", "belly pain that keeps coming back for 3 weeks or more, or wakes at night",
      "NICE CG184 Dyspepsia; NICE NG12", lambda f: f.has("abdominal_pain") and (_days(f, 21) or f.has("worse_at_night"))),
    R("persistent_back_pain", "routine", "back pain for 6 weeks or more", "NICE NG59 Low back pain and sciatica",
      lambda f: f.has("back_pain") and _days(f, 42) and not _days(f, 730)),
    R("recurrent_vertigo", "routine", "dizziness or spinning that comes back", "NHS: Vertigo (see a GP if it keeps coming back)",
      lambda f: f.has("dizziness") and (f.sudden or f.severity == "severe" or _days(f, 2))),
    R("fever_5_days", "routine", "fever for 5 days or more in an adult or older child",
      "NHS: High temperature (fever) in adults (lasted 5 days or more)",
      lambda f: f.fever and _days(f, 5) and not _age(f, 5)),
    R("mouth_ulcer_3_weeks", "routine", "a single mouth ulcer lasting 3 weeks or more", "NHS: Mouth ulcers",
      lambda f: f.has("mouth_ulcer") and _days(f, 21) and not _days(f, 100)),
    R("palpitations", "routine", "palpitations", "NHS: Heart palpitations", lambda f: f.has("palpitations")),
)

_ORDER = {level: n for n, level in enumerate(LEVELS)}


def decide(facts: Facts) -> Decision:
    """The level for these facts, and the rules behind it."""
    fired = [rule for rule in RULES if rule.test(facts)]
    if fired:
        best = min(_ORDER[rule.level] for rule in fired)
        level = LEVELS[best]
        return Decision(level, tuple(r.id for r in fired if r.level == level), tuple(r.id for r in fired))
    return Decision("self_care", ("no_red_flags",), ())


def rule(rule_id: str) -> Rule:
    return next(r for r in RULES if r.id == rule_id)
