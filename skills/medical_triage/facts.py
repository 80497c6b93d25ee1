"""What a message says about the patient, read with fixed rules: the triage intake's facts.

:func:`read_facts` turns one message into :class:`Facts` — age, who the patient
is, pregnancy, temperature, how long and how suddenly, how severe, the findings
(symptoms and signs, each either present or denied) and long-term conditions.
:meth:`Facts.merge` adds a follow-up message's facts to the conversation's, so
"It is 39.5 now" or "no rash" update the intake kept in the skill's state
instead of the whole conversation being read again.

Findings are concepts (``fever``, ``chest_pain``, ``one_sided_weakness``, ...)
matched by patterns over plain words and clinical terms alike, so "my dad can't
lift his arm" and "right-sided weakness" are the same finding. A finding after a
negation in the same clause ("no rash", "denies fever", "without chest pain")
is recorded as denied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Facts", "read_facts", "FINDINGS", "CONDITIONS"]


def _r(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


# -- findings --------------------------------------------------------------------------
#: Concept -> pattern. Patterns are written for first-person speech and clinical notes.
FINDINGS: dict[str, re.Pattern[str]] = {
    "fever": _r(r"\b(?:(?<!hay )fevers?|febrile|pyrexi\w*|high temp(?:erature)?|temperature(?! of 3[0-7])|feel(?:s|ing)? "
                r"(?:hot|feverish)|chills|rigou?rs|shivering)\b"),
    "cough": _r(r"\bcough\w*\b"),
    "productive_cough": _r(r"\b(?:productive (?:cough|of)|coughing up|sputum|phlegm|purulent)\b"),
    "runny_nose": _r(r"\b(?:runny nose|rhinorrh\w+|nasal (?:congestion|discharge)|blocked nose|stuffy nose|"
                     r"congestion|sneez\w+|nasal itching)\b"),
    "sore_throat": _r(r"\b(?:sore throat|throat (?:is )?(?:sore|pain|hurts)|pharyngitis|tonsillitis)\b"),
    "swallowing": _r(r"\b(?:difficulty swallowing|(?:can'?t|cannot|unable to|hard to|trouble|painful to|struggling to|hurts to) swallow\w*|"
                     r"dysphagia)\b"),
    "drooling_stridor": _r(r"\b(?:drooling|stridor|noisy breathing)\b"),
    "breathless": _r(r"\b(?:short(?:ness)? of breath|breathless\w*|dyspno?ea|dyspnea|difficulty breathing|"
                     r"trouble breathing|struggling to breathe|(?:can'?t|cannot) (?:catch my |get my )?breath\w*|"
                     r"hard to breathe|out of breath|breathing (?:is |has been |was )?(?:getting )?(?:worse|bad|difficult|"
                     r"laboured|labored|hard))\b"),
    "wheeze": _r(r"\bwheez\w*\b"),
    "severe_breathing": _r(r"\b(?:(?:can'?t|cannot|unable to) (?:breathe|speak in full sentences|talk)|gasping|"
                           r"blue lips|lips (?:are |turning )?blue|cyanos\w+|struggling to breathe|"
                           r"respiratory distress|breathing (?:is )?very fast|silent chest|"
                           r"(?:inhaler|reliever|nebuli[sz]er) (?:isn'?t|is not|not|doesn'?t|does not) (?:helping|working|help))\b"),
    "chest_pain": _r(r"\b(?:chest (?:pain|pressure|tightness|discomfort|hurts|is tight|feels tight)|"
                     r"pain in (?:my |the |his |her )?chest|substernal|retrosternal|angina|"
                     r"tight(?:ness)? (?:in|across) (?:my |the |his |her )?chest|crushing)\b"),
    "pain_radiating_arm_jaw": _r(r"\b(?:(?:radiat\w+|spread\w*|going|moving) (?:down |up |in)?(?:to |into )?"
                                 r"(?:my |the |his |her )?(?:left )?(?:arm|jaw|neck|shoulder)|"
                                 r"(?:left )?arm (?:is )?(?:numb|tingl\w+|heavy))\b"),
    "sweating": _r(r"\b(?:sweat(?:ing|y)?|diaphore\w+|clammy|cold sweat)\b"),
    "pleuritic": _r(r"\b(?:worse(?:ns)? (?:on|when|with) (?:deep )?(?:inspiration|breathing in|breathing|"
                    r"a deep breath)|hurts (?:when|to) (?:i )?breathe)\b"),
    "palpitations": _r(r"\b(?:palpitations?|heart (?:is )?(?:racing|pounding|fluttering)|irregular heartbeat)\b"),
    "faint": _r(r"\b(?:fainted|fainting|felt faint|feel(?:s|ing)? faint|passed out|collaps\w+|blacked out|syncop\w+|lost consciousness)\b"),
    "unresponsive": _r(r"\b(?:unresponsive|unconscious|won'?t wake|can'?t (?:be )?wake|not waking|hard to wake|"
                       r"difficult to wake)\b"),
    "confusion": _r(r"\b(?:confus\w+|disorient\w+|altered mental|somnolent|drowsy|very sleepy|not making sense|"
                    r"delirious|acting strange\w*|doesn'?t know where)\b"),
    "one_sided_weakness": _r(r"\b(?:(?:right|left|one)[- ]sided? weakness|weakness (?:on|of) (?:one|the (?:right|left)) "
                             r"side|hemipare\w+|face (?:is )?(?:droop\w*|drooping|fallen)|facial droop|droopy face|"
                             r"(?:can'?t|cannot|unable to) (?:lift|raise|move) (?:my |his |her |their |one )?"
                             r"(?:left |right )?(?:arm|leg)|(?:arm|leg) (?:went|gone|is) (?:weak|limp|dead)|"
                             r"numb(?:ness)? (?:on|down) one side)\b"),
    "speech_difficulty": _r(r"\b(?:slurr\w+|difficulty (?:speaking|talking)|(?:can'?t|cannot) (?:speak|talk|"
                            r"get (?:my|his|her) words out)|trouble (?:speaking|talking)|aphasi\w+|"
                            r"words (?:are )?(?:jumbled|slurred|garbled)|comprehending language)\b"),
    "headache": _r(r"\b(?:headaches?|migraines?|head (?:hurts|pain|is pounding))\b"),
    "thunderclap": _r(r"\b(?:worst headache|thunderclap|sudden(?:ly)? (?:and )?severe headache|headache .{0,20}"
                      r"(?:came on|started) (?:suddenly|all at once))\b"),
    "neck_stiffness": _r(r"\b(?:stiff neck|neck (?:is )?stiff\w*|neck stiffness|can'?t (?:bend|touch) "
                         r"(?:my |his |her )?chin|nuchal rigidity|meningism\w*)\b"),
    "photophobia": _r(r"\b(?:photophobi\w+|light hurts|(?:sensitive|sensitivity) to light|bright lights? hurts?)\b"),
    "rash": _r(r"\b(?:rash\w*|spots(?! of (?:fresh )?blood)|hives|blotch\w*|maculopapular|petechi\w+|purpur\w+|vesic\w+|blisters?)\b"),
    "non_blanching_rash": _r(r"\b(?:non[- ]?blanching|(?:doesn'?t|does not|won'?t) fade (?:under|when)|"
                             r"(?<!palate )petechi\w+(?! (?:on|of) the (?:soft |hard )?palate)|purpur\w+)\b"),
    "rash_one_side": _r(r"\b(?:(?:one|right|left)[- ]side\w* of (?:my |his |her |the )?(?:chest|back|body|face)|"
                        r"band of|dermatom\w+|burning (?:and aching )?pain)\b"),
    "abdominal_pain": _r(r"\b(?:abdominal pain|abdomen (?:is )?(?:pain|tender|hurts)|stomach (?:pain|ache|hurts|cramps)|"
                         r"stomachache|belly (?:pain|ache|hurts)|tummy (?:pain|ache|hurts)|pain in (?:my |the |his |her )?"
                         r"(?:stomach|belly|tummy|abdomen)|epigastric|upper abdominal|(?:lower right|right lower) (?:side|abdomen|belly|"
                         r"quadrant|tummy))\b"),
    "rigid_abdomen": _r(r"\b(?:guarding|rigid (?:abdomen|belly|stomach)|abdomen (?:is )?(?:tense|rigid|hard)|"
                        r"rebound|peritoni\w+|no bowel sounds)\b"),
    "flank_pain": _r(r"\b(?:flank pain|(?:left|right)[- ]sided flank|pain in (?:my |the |his |her )?(?:(?:left|right) )?"
                     r"(?:side|loin)|(?:left|right) side pain|loin pain|"
                     r"radiating (?:down )?(?:toward|to|into) (?:the |his |her |my )?groin)\b"),
    "vomiting": _r(r"\b(?:vomit\w*|throwing up|threw up|being sick|nause\w+|sick to (?:my|his|her) stomach)\b"),
    "vomiting_blood": _r(r"\b(?:vomit\w* (?:up )?blood|blood in (?:my |his |her )?vomit|haematemesis|hematemesis|"
                         r"coffee[- ]ground)\b"),
    "diarrhoea": _r(r"\b(?:diarrh?o?e?a\w*|loose stools?|watery stools?|runs)\b"),
    "blood_in_stool": _r(r"\b(?:bloody (?:stools?|diarrh\w+)|became bloody|blood in (?:my |his |her |the )?(?:stool|poo|"
                         r"diaper|nappy)|(?:black|tarry) stools?|melaena|melena|rectal bleeding|bleeding from "
                         r"(?:my |the )?(?:bottom|rectum)|spots of (?:fresh )?blood)\b"),
    "dehydration": _r(r"\b(?:(?:is|seems|looks|getting|very|severely|signs of) dehydrat\w+|(?:not|won'?t|isn'?t|hasn'?t been) (?:drinking|keeping (?:fluids|anything) "
                      r"down)|can'?t keep (?:any )?(?:fluids|water|anything) down|no wet (?:nappies|diapers)|"
                      r"not (?:peeing|weeing|urinating)|sunken (?:eyes|fontanelle))\b"),
    "urinary": _r(r"\b(?:painful urination|(?:burns|stings|hurts) when (?:i )?(?:pee|wee|urinate)|dysuria|"
                  r"(?:urgent|frequent) (?:need to )?urinat\w+|urinating (?:more|often)|more frequent urination|"
                  r"urinary tract|uti|cystitis)\b"),
    "blood_in_urine": _r(r"\b(?:blood in (?:my |his |her )?(?:urine|pee|wee)|haematuria|hematuria)\b"),
    "back_pain": _r(r"\b(?:back pain|backache|lower back|low back|lumbar|lbp|(?:my |his |her )?back (?:hurts|is sore))\b"),
    "neuro_deficit_leg": _r(r"\b(?:foot drop|leg (?:weakness|numbness)|leg (?:feels |is |has gone |went )?"
                            r"(?:numb|weak)|numb (?:leg|foot)|weak(?:ness in)? (?:my |his |her )?"
                            r"(?:leg|foot)|tingling (?:down|in) (?:my |his |her )?leg)\b"),
    "cauda_equina": _r(r"\b(?:saddle (?:an(?:a)?esthesia|numbness)|numb(?:ness)? (?:around|between) (?:my |the )?"
                       r"(?:bottom|genitals|groin)|(?:lost|loss of) (?:bladder|bowel) control|incontinen\w+|"
                       r"can'?t (?:pee|urinate|control (?:my )?bladder))\b"),
    "leg_swelling_one": _r(r"\b(?:unilateral leg|(?:one|right|left) (?:leg|calf) (?:is )?(?:swollen|swelling|painful)|"
                           r"(?:swollen|swelling (?:of|in)) (?:my |the |his |her )?(?:right |left |one )?(?:calf|leg)|"
                           r"calf (?:pain|swelling|is swollen))\b"),
    "red_hot_skin": _r(r"\b(?:cellulitis|spreading redness|redness of the skin|skin (?:is |looks )?(?:red|hot)|"
                       r"(?:red|erythematous),? (?:and )?(?:hot|warm|edematous|oedematous|swollen)|"
                       r"(?:hot|warm|swollen),? (?:and )?red)\b"),
    "red_eye": _r(r"\b(?:red (?:eyes?|irritated)|eyes? (?:is |are )?(?:red|pink|bloodshot)|conjunctiv\w+|pink ?eye|"
                  r"eyes? (?:are |is )?(?:stuck|crusted)|discharge from (?:both |my |his |her )?eyes?|eye itching)\b"),
    "eyelid_swelling": _r(r"\b(?:stye|swollen (?:right |left )?(?:eye|eyelid)|eyelid (?:is )?(?:swollen|lump|bump))\b"),
    "vision_change": _r(r"\b(?:(?:loss|change|changes) (?:of|in) (?:vision|sight)|blurred vision|(?:can'?t|cannot) see|"
                        r"double vision|vision (?:loss|change)|flashing lights)\b"),
    "ear_pain": _r(r"\b(?:ear ?ache|ear (?:pain|infection|hurts)|pulling (?:at )?(?:his |her )?ears?|otitis|"
                   r"tympanic membrane)\b"),
    "poor_feeding": _r(r"\b(?:not (?:eating|feeding|drinking)(?: well)?|won'?t (?:eat|feed|drink)|off (?:his|her) food|"
                       r"poor feeding|refus\w+ (?:food|feeds|to eat))\b"),
    "frequent_stools": _r(r"\b(?:(?:[6-9]|\d\d|six|seven|eight|nine|ten) times (?:a|per|in a|in the last) (?:day|24))"),
    "facial_pain": _r(r"\b(?:facial pain|pain (?:in|around) (?:my |the )?(?:face|cheeks?|sinuses)|maxillary tenderness|"
                      r"sinus pain)\b"),
    "allergy_pattern": _r(r"\b(?:hay ?fever|sneez\w+|itchy eyes|eye itching|nasal itching|allerg\w+)\b"),
    "mouth_ulcer": _r(r"\b(?:mouth ulcer\w*|canker sores?|aphthous|ulcers? in (?:my |his |her )?mouth|"
                      r"mouth ulceration)\b"),
    "genital_itch": _r(r"\b(?:vaginal (?:itching|discharge|itch|pruritus)|thrush|yeast infection|itching down there)\b"),
    "constipation": _r(r"\b(?:constipat\w+|hard stools?|straining|(?:can'?t|difficulty|delay in) (?:passing|pass) "
                       r"(?:stools?|poo))\b"),
    "itchy_skin": _r(r"\b(?:itchy|itching|dry,? (?:itchy )?skin|eczema|scaly)\b"),
    "dizziness": _r(r"\b(?:dizz\w+|vertigo|spinning|light[- ]?headed)\b"),
    "joint_pain": _r(r"\b(?:joint pain|arthralgi\w+|athralgi\w+|aching joints)\b"),
    "muscle_spasm_jaw": _r(r"\b(?:lock ?jaw|trismus|(?:can'?t|cannot) open (?:my |his |her )?mouth|muscle spasms?|"
                           r"stiff(?:ness)? of (?:the )?jaw)\b"),
    "wound": _r(r"\b(?:cut (?:my|his|her|on)|cut himself|cut herself|wound|puncture|stepped on a nail|laceration|"
                r"bitten by|dog bite)\b"),
    "heavy_bleeding": _r(r"\b(?:won'?t stop bleeding|(?:bleeding|blood) (?:is )?(?:pouring|spurting|everywhere)|"
                         r"heavy bleeding|bleeding heavily|lots of blood)\b"),
    "jaundice": _r(r"\b(?:jaundice\w*|yellow (?:skin|eyes)|(?:skin|eyes) (?:are |is |look |turning )?yellow|"
                   r"(?:scleral )?icterus)\b"),
    "swelling_face_tongue": _r(r"\b(?:(?:tongue|throat|lips?) (?:is |are )?(?:swelling|swollen)|swollen (?:tongue|throat)|"
                               r"face (?:is )?swelling|throat (?:is )?closing|anaphyla\w+|angioedema)\b"),
    "sting_bite": _r(r"\b(?:stung|sting|insect bite|bee|wasp)\b"),
    "travel_tropics": _r(r"\b(?:travel\w* (?:in|to|from|back from) (?:central america|south america|africa|asia|india|"
                         r"the tropics|abroad)|malaria|mosquito(?:es)?|(?:returned|came back|come back|got back|been back|back) from "
                         r"(?:africa|asia|india|abroad|central america|south america|the tropics|(?:a )?(?:trip|holiday) "
                         r"(?:to|in) (?:africa|asia|india))|(?:been|went) to (?:africa|india|asia))\b"),
    "head_injury": _r(r"\b(?:hit (?:my|his|her|their) head|head injury|bumped (?:my|his|her) head|fell on (?:my|his|her) "
                      r"head|banged (?:my|his|her) head)\b"),
    "seizure": _r(r"\b(?:seizures?|(?:had|having|has) an? fit|fitting|convuls\w+)\b"),
    "overdose": _r(r"\b(?:overdos\w+|too many (?:pills|tablets)|swallowed (?:pills|tablets|bleach)|poison\w*|"
                   r"additional \d+ ?mg)\b"),
    "limp_floppy": _r(r"\b(?:floppy|limp|(?:not|isn'?t) (?:responding|feeding)|won'?t feed|high[- ]pitched cry|"
                      r"weak cry)\b"),
    "limb_pain": _r(r"\b(?:(?:knee|ankle|wrist|shoulder|hip|elbow|foot|feet|hand|leg|arm|finger|toe)s? (?:pain|aches?|"
                    r"hurts?|is (?:sore|swollen|painful))|(?:twisted|sprained|pulled|strained) (?:my |his |her )?\w+|"
                    r"(?:pain|ache) in (?:my |his |her )?(?:knee|ankle|wrist|shoulder|hip|elbow|foot|hand|leg|arm))\b"),
    "other_complaint": _r(r"\b(?:pain\w*|aches?|aching|hurts?|sore|swollen|swelling|lump|bump|itch\w*|burn(?:ed|t|s)?|"
                          r"bleed\w*|bruis\w+|injur\w+|unwell|ill|sick|tired|exhausted|numb\w*|tingl\w+|"
                          r"head lice|lice|heartburn|indigestion|insomnia|can'?t sleep)\b"),
    "worse_at_night": _r(r"\b(?:wakes? (?:him|her|me|them) (?:up )?at night|worse at night|waking (?:me|him|her) "
                         r"(?:up|at night))\b"),
}

#: Long-term conditions and states that change urgency.
CONDITIONS: dict[str, re.Pattern[str]] = {
    "asthma": _r(r"\basthma\w*\b"),
    "copd": _r(r"\b(?:copd|emphysema|chronic (?:obstructive|bronchitis))\b"),
    "heart_disease": _r(r"\b(?:heart (?:disease|failure|condition|attack)|chf|angina|atrial fibrillation|"
                        r"coronary|stent)\b"),
    "diabetes": _r(r"\bdiabet\w+\b"),
    "immunosuppressed": _r(r"\b(?:chemo\w*|immunosuppress\w+|immunocompromis\w+|transplant|on steroids|hiv|"
                           r"cancer treatment|no spleen)\b"),
    "recent_hospital_or_surgery": _r(r"\b(?:recent (?:hospitali[sz]ation|surgery|operation)|(?:after|since) (?:my |an? |"
                                     r"the )?(?:operation|surgery)|just had (?:an? )?(?:operation|surgery)|"
                                     r"long[- ]haul flight|bed ?bound|immobil\w+)\b"),
    "incomplete_tetanus": _r(r"\b(?:not (?:had|having received) (?:a )?(?:complete )?tetanus|tetanus (?:shot|jab|"
                             r"vaccin\w+|immunis\w+) (?:is )?(?:not|out of date)|never had (?:a )?tetanus|"
                             r"incomplete tetanus)\b"),
}

_NEGATION = _r(r"\b(?:no|not|never|denies|denied|deny|without|negative for|absence of|free of|isn'?t|aren'?t|"
               r"wasn'?t|doesn'?t have|don'?t have|haven'?t had|hasn'?t had|nor|or)\b[^.;:!?]*$")
_CLAUSE_BREAK = _r(r"[.;:!?]|\bbut\b|\bhowever\b|\bthough\b|\band (?:now|then|has|is|she|he|i)\b")


def _negated(text: str, start: int) -> bool:
    """Whether a negation opens the clause the match at ``start`` is in (within a few words)."""
    head = text[max(0, start - 150):start]
    breaks = list(_CLAUSE_BREAK.finditer(head))
    if breaks:
        head = head[breaks[-1].end():]
    found = _NEGATION.search(head)
    if not found:
        return False
    # "or" only continues a negation opened earlier in the clause ("no fever or rash")
    if found.group(0).lower().startswith("or"):
        return bool(re.search(r"\b(?:no|not|denies|without|never)\b", head, re.I))
    return True


# -- numbers -------------------------------------------------------------------------
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                 "several": 3, "a few": 3, "few": 3, "couple of": 2, "a couple of": 2}
_NUM = r"(\d+(?:\.\d+)?|a few|a couple of|couple of|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|" \
       r"twelve|fifteen|twenty|several|few)"
_UNIT_DAYS = {"minute": 1 / 1440, "min": 1 / 1440, "hour": 1 / 24, "hr": 1 / 24, "day": 1, "night": 1, "week": 7,
              "wk": 7, "month": 30, "year": 365, "yr": 365}
_UNIT = r"(minute|min|hour|hr|day|night|week|wk|month|year|yr)s?"


def _number(text: str) -> float:
    text = text.lower()
    return float(_WORD_NUMBERS[text]) if text in _WORD_NUMBERS else float(text)


_AGE = [
    (_r(r"\b(\d{1,3})[- ](?:year|yr)s?[- ]old\b"), 1.0),
    (_r(r"\b(\d{1,2})[- ]months?[- ]old\b"), 1 / 12),
    (_r(r"\b(\d{1,2})[- ]weeks?[- ]old\b"), 1 / 52),
    (_r(r"\b(?:i'?m|i am|aged?|age)\s+(\d{1,3})\b(?!\s*(?:weeks?|days?|months?|%|degrees|°))"), 1.0),
    (_r(r"\b(?:he|she|they)(?:'s| is| are)\s+(\d{1,3})\b(?!\s*(?:weeks?|days?|months?|%|degrees|°|\.\d))"), 1.0),
    (_r(r"\b(\d{1,3})\s*(?:yo|y/o|y\.o\.)\b"), 1.0),
    (_r(r"\bin (?:my|his|her) (\d)0s\b"), 10.0),
]
_AGE_WORDS = [
    (_r(r"\b(?:newborn|new-born|neonate)\b"), 0.05, "child"),
    (_r(r"\b(?:my|our|the) (?:baby|infant)\b|\bbaby (?:boy|girl)\b"), 0.5, "child"),
    (_r(r"\btoddler\b"), 2.0, "child"),
]
_CHILD = _r(r"\b(?:my|our) (?:son|daughter|child|kid|boy|girl|baby|toddler|little one)\b|\b(?:child|boy|girl|toddler|"
            r"infant|baby)\b")
_OTHER = _r(r"\b(?:my|our) (?:dad|father|mum|mom|mother|husband|wife|partner|friend|grandma|grandmother|grandpa|"
            r"grandfather|brother|sister|neighbou?r|colleague)\b")
_PREGNANT = _r(r"\b(?:i'?m|i am|she'?s|she is|currently|am)?\s*(?:\d+ weeks? )?pregnan\w+\b")
_NOT_PREGNANT = _r(r"\b(?:not|never been) pregnant\b")
_TEMP_C = _r(r"\b(3[5-9](?:\.\d)?|4[0-3](?:\.\d)?)\s*(?:°|degrees|deg)?\s*c\b")
_TEMP_F = _r(r"\b(9[5-9](?:\.\d)?|10[0-8](?:\.\d)?)\s*(?:°|degrees|deg)?\s*f\b")
_TEMP_BARE = _r(r"(?:temp\w*|fever|it'?s|it is|reading|thermometer|to|of|at|as high as|now)\D{0,12}?"
                r"\b(3[5-9]\.\d|4[0-2](?:\.\d)?|3[89]|9[5-9]\.\d|10[0-7](?:\.\d)?)\b(?!\s*(?:years?|months?|weeks?|days?|"
                r"hours?|%|mg|kg|times))")
_DURATION = _r(r"\b(?:for|since|over|past|last|about|around|of|x)?\s*(?:the\s+)?(?:last|past)?\s*" + _NUM +
               r"[- ]" + _UNIT + r"(?![- ](?:old|pack))(?:[- ](?:history|duration))?\b")
_SINCE = [
    (_r(r"\bsince (?:last night|this morning|today|earlier today|an hour ago)|\bthis morning\b|\btoday\b|"
        r"over the last several hours|(?:a few|several) hours\b|\bhours? ago\b|\bjust now\b|"
        r"\bminutes? ago\b|\bovernight\b"), 0.3),
    (_r(r"\bsince yesterday\b|\byesterday\b|\blast night\b"), 1.0),
    (_r(r"\bsince (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\bthe other day\b"), 3.0),
    (_r(r"\blast week\b|\bsince last week\b"), 7.0),
    (_r(r"\bthis week\b|\bevery (?:night|day|morning|evening)\b|\bkeeps? (?:coming|happening)\b"), 3.0),
    (_r(r"\bfor (?:ages|months|years)\b|\bsince (?:childhood|(?:his |her |my )?early school\w*)\b|\bchronic\b|"
        r"\brecurrent\b|\bon and off\b|\byear-round\b"), 120.0),
]
_SUDDEN = _r(r"\b(?:sudden\w*|abrupt\w*|acute(?:ly)? onset|all of a sudden|out of nowhere|came on (?:fast|quickly)|"
             r"acute onset)\b")
_WORSENING = _r(r"\b(?:worsening|getting worse|progressive\w*|increasing\w*|worse and worse|keeps getting worse|"
                 r"not improving|worse over)\b")
_SEVERE = _r(r"\b(?:severe\w*|excruciating|unbearable|agony|agonising|agonizing|worst|terrible|extreme\w*|writhing|"
             r"(?:[7-9]|10)\s*(?:/|out of)\s*10|intense)\b")
_MILD = _r(r"\b(?:mild\w*|slight\w*|a (?:little|bit)|minor|low[- ]grade|(?:[1-3])\s*(?:/|out of)\s*10)\b")


@dataclass
class Facts:
    """The triage intake so far (JSON-serialisable through :meth:`to_state`)."""

    age: float | None = None
    subject: str | None = None  # "self", "child" or "other"
    pregnant: bool | None = None
    temperature_c: float | None = None
    duration_days: float | None = None
    sudden: bool = False
    worsening: bool = False
    severity: str | None = None  # "severe", "mild" or None
    present: set[str] = field(default_factory=set)
    denied: set[str] = field(default_factory=set)
    conditions: set[str] = field(default_factory=set)

    # -- state ---------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {"age": self.age, "subject": self.subject, "pregnant": self.pregnant,
                "temperature_c": self.temperature_c, "duration_days": self.duration_days, "sudden": self.sudden,
                "worsening": self.worsening, "severity": self.severity, "present": sorted(self.present),
                "denied": sorted(self.denied), "conditions": sorted(self.conditions)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> "Facts":
        state = state or {}
        return cls(age=state.get("age"), subject=state.get("subject"), pregnant=state.get("pregnant"),
                   temperature_c=state.get("temperature_c"), duration_days=state.get("duration_days"),
                   sudden=bool(state.get("sudden")), worsening=bool(state.get("worsening")),
                   severity=state.get("severity"), present=set(state.get("present", [])),
                   denied=set(state.get("denied", [])), conditions=set(state.get("conditions", [])))

    def merge(self, newer: "Facts") -> "Facts":
        """These facts updated by a later message's: what it states replaces, what it denies is denied."""
        present = (self.present - newer.denied) | newer.present
        denied = (self.denied - newer.present) | newer.denied
        return Facts(
            age=newer.age if newer.age is not None else self.age,
            subject=newer.subject or self.subject,
            pregnant=newer.pregnant if newer.pregnant is not None else self.pregnant,
            temperature_c=newer.temperature_c if newer.temperature_c is not None else self.temperature_c,
            duration_days=newer.duration_days if newer.duration_days is not None else self.duration_days,
            sudden=self.sudden or newer.sudden, worsening=self.worsening or newer.worsening,
            severity=newer.severity or self.severity, present=present, denied=denied,
            conditions=self.conditions | newer.conditions)

    # -- reading ---------------------------------------------------------------------
    def has(self, *names: str) -> bool:
        return any(n in self.present for n in names)

    @property
    def fever(self) -> bool:
        if self.temperature_c is not None:
            return self.temperature_c >= 38.0
        return "fever" in self.present

    @property
    def is_child(self) -> bool:
        return self.age is not None and self.age < 16 or (self.age is None and self.subject == "child")


def read_facts(text: str, *, expecting: str | None = None) -> Facts:
    """The facts one message states. ``expecting`` names the fact the last question asked
    for ("age", "duration", "temperature"), so a bare answer ("34", "two days") is read as it."""
    facts = Facts()
    lowered = text.lower()
    for name, pattern in FINDINGS.items():
        for match in pattern.finditer(text):
            (facts.denied if _negated(text, match.start()) else facts.present).add(name)
    # a finding both stated and denied in one message ("no fever now, but fever last night"): stated wins
    facts.denied -= facts.present
    if re.search(r"\bafebrile\b|\bno (?:temperature|fever)\b|\b(?:fevers?|temperature)\b[^.;]{0,60}\b(?:have|has) "
                 r"(?:now )?(?:resolved|gone|settled|gone down)\b", lowered):
        facts.present.discard("fever")
        facts.denied.add("fever")
    for name, pattern in CONDITIONS.items():
        for match in pattern.finditer(text):
            if not _negated(text, match.start()):
                facts.conditions.add(name)
    # age and who the patient is
    for pattern, scale in _AGE:
        if match := pattern.search(text):
            facts.age = round(float(match.group(1)) * scale + (5.0 if scale == 10.0 else 0.0), 2)
            break
    if facts.age is None:
        for pattern, age, subject in _AGE_WORDS:
            if pattern.search(text):
                facts.age, facts.subject = age, subject
                break
    if expecting == "age" and facts.age is None:
        if match := re.search(r"\b(\d{1,3})\b(?!\s*(?:°|degrees|\.\d))", text):
            facts.age = float(match.group(1))
            if months := re.search(r"\b(\d{1,2})\s*months?\b", text, re.I):
                facts.age = round(float(months.group(1)) / 12, 2)
    if facts.subject is None:
        if _CHILD.search(text) or (facts.age is not None and facts.age < 16):
            facts.subject = "child"
        elif _OTHER.search(text):
            facts.subject = "other"
        elif re.search(r"\b(?:i|i'?m|i'?ve|me|my)\b", lowered):
            facts.subject = "self"
    if _NOT_PREGNANT.search(text):
        facts.pregnant = False
    elif re.search(r"\bpregnan", lowered):
        facts.pregnant = True
    if expecting == "pregnant" and facts.pregnant is None:
        if re.match(r"\s*(?:yes|yeah|yep|i am|i'm)\b", lowered):
            facts.pregnant = True
        elif re.match(r"\s*(?:no|nope|not)\b", lowered):
            facts.pregnant = False
    # temperature
    if match := _TEMP_C.search(text):
        facts.temperature_c = float(match.group(1))
    elif match := _TEMP_F.search(text):
        facts.temperature_c = round((float(match.group(1)) - 32) * 5 / 9, 1)
    elif (match := _TEMP_BARE.search(text)) or (expecting == "temperature" and
                                                (match := re.search(r"\b(3[5-9](?:\.\d)?|4[0-2](?:\.\d)?|"
                                                                    r"9[5-9](?:\.\d)?|10[0-7](?:\.\d)?)\b", text))):
        value = float(match.group(1))
        facts.temperature_c = value if value < 50 else round((value - 32) * 5 / 9, 1)
    if facts.temperature_c is not None:  # a measured temperature decides whether there is a fever
        if facts.temperature_c >= 38.0:
            facts.present.add("fever")
            facts.denied.discard("fever")
        else:
            facts.denied.add("fever")
            facts.present.discard("fever")
    # duration and onset
    durations = []
    for match in _DURATION.finditer(text):
        unit = match.group(2).lower().rstrip("s")
        durations.append(_number(match.group(1)) * _UNIT_DAYS[unit])
    if not durations:
        for pattern, days in _SINCE:
            if pattern.search(text):
                durations.append(days)
                break
    if expecting == "duration" and not durations:
        if match := re.search(r"\b" + _NUM + r"\b", lowered):
            durations.append(_number(match.group(1)))
    if durations:  # the first one given is the complaint's ("3 days of cough, smoker for 40 years")
        facts.duration_days = round(durations[0], 3)
    facts.sudden = bool(_SUDDEN.search(text))
    facts.worsening = bool(_WORSENING.search(text))
    if _SEVERE.search(text) and not _negated(text, _SEVERE.search(text).start()):
        facts.severity = "severe"
    elif _MILD.search(text):
        facts.severity = "mild"
    return facts
