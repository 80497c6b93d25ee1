"""Fixed texts the assistant itself says (skills keep their own prompts)."""

OUT_OF_SCOPE_REPLY = (
    "I'm not sure I can help with that. I can help with:\n{capabilities}\n"
    "Could you tell me a little more about what you need?"
)

EMPTY_REPLY = "Sorry, I couldn't produce an answer. Could you rephrase your question?"

CARD_MASK = "[card number removed]"
EMAIL_MASK = "[e-mail address removed]"
PHONE_MASK = "[phone number removed]"

HANDOFF_REPLY = (
    "I've asked a member of our team to join this conversation. "
    "They will reply here as soon as they can."
)

#: Joins the client's own system and developer messages to a skill's instructions, after
#: them: the skill's rules (grounding, refusals) come first and keep their precedence.
CLIENT_INSTRUCTIONS = (
    "\n\nThe business that runs this assistant adds these instructions. Follow them where "
    "they do not conflict with the rules above:\n{instructions}"
)
