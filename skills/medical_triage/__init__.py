"""Medical triage Q&A: how urgent a health problem is and where to seek care.

In this version it answers through the model under its system prompt; the
deterministic red-flag rules and triage classifier build on this contract.
"""

from ..base import Skill

__all__ = ["skill"]

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

skill = Skill(
    name="medical_triage",
    description="Helps decide how urgently to seek care for symptoms (emergency, urgent, routine, self-care).",
    examples=EXAMPLES,
    system_prompt=SYSTEM_PROMPT,
)
