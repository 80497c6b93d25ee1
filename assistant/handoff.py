"""Human handoff: when a conversation goes to a person, and how they are told.

A conversation becomes ``handoff: pending`` when

- the user asks for a person ("can I talk to a human?", the widget's "talk to a
  person" button, which sends ``lepton.handoff: true``, or "yes" right after the
  assistant offered a person);
- the user is angry (one message with a strong frustration signal) or complains
  twice in a row (two consecutive messages with a frustration signal);
- the assistant failed twice in a row (the skill declined or the message was
  out of scope in two consecutive turns).

The ``reason`` in API responses and webhooks is ``requested``, ``angry``,
``repeated_complaint``, ``repeated_failure``, or what a skill asked for (the
customer-service skill's tenant intents: ``intent``).

From then on the assistant stays silent in that conversation: user messages are
stored and forwarded to the webhook, and agents answer through the admin API
until they release it. Every rule here is deterministic and lists the words that
triggered it, so a decision can be audited and tested.

The frustration signal is a lexicon score, not a trained model: customer
messages are short, the vocabulary of anger is small and well known, and a
tenant can read exactly why a conversation was escalated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import HandoffStateError, InvalidRequest

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = [
    "Frustration",
    "HandoffService",
    "WebhookNotifier",
    "frustration",
    "is_affirmative",
    "wants_person",
    "ANGRY_SCORE",
]

log = logging.getLogger(__name__)

_PERSON = (
    r"(?:human(?:\s+being)?|person|people|agent|representative|rep|operator|someone|somebody|"
    r"staff|employee|advisor|adviser|manager|supervisor|team\s+member|customer\s+service)s?"
)
_REQUEST_PATTERNS = [
    # "talk to a human", "speak with a real person", "chat with one of your agents"
    rf"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a|an|the|your|some|one\s+of\s+your)?\s*"
    rf"(?:real|actual|live|human|proper)?\s*{_PERSON}\b",
    # "connect me to an agent", "transfer me", "put me through to someone"
    r"\b(?:connect|transfer|put)\s+me\s+(?:to|with|through)\b",
    r"\btransfer\s+me\b",
    # "a real person please", "live agent", "human support"
    r"\b(?:real|live|actual)\s+(?:person|human|agent|people)\b",
    r"\bhuman\s+(?:agent|support|help|being)\b",
    # "I want a human", "get me an agent", "need a person"
    rf"\b(?:want|need|get\s+me|give\s+me|ask\s+for|request)\s+(?:a|an|to\s+talk\s+to\s+a)?\s*"
    rf"(?:real\s+|live\s+)?(?:human|person|agent|representative|operator)\b",
    # a message that is only "agent" / "human please" / "representative!"
    r"^\s*(?:an?\s+)?(?:human|agent|operator|representative|person)(?:\s+please)?\s*[.!?]*\s*$",
    r"\bescalate\b",
]
_REQUEST = re.compile("|".join(f"(?:{p})" for p in _REQUEST_PATTERNS), re.IGNORECASE)

_AFFIRMATIVE = re.compile(
    r"^\s*(?:yes|yeah|yep|yup|sure|ok|okay|please|please do|do it|go ahead|that would be great|y)"
    r"(?:\s*(?:,|please|thanks|thank you|do|!|\.))*\s*[.!]*\s*$",
    re.IGNORECASE,
)


def wants_person(text: str) -> bool:
    """Does the message ask to be put through to a person?"""
    return bool(_REQUEST.search(text))


def is_affirmative(text: str) -> bool:
    """A bare "yes" (or "sure", "please do", ...), as an answer to an offer."""
    return bool(_AFFIRMATIVE.match(text))


# -- frustration --------------------------------------------------------------

#: Words of complaint (1 point each).
_NEGATIVE = {
    "annoyed", "annoying", "awful", "bad", "broken", "complain", "complaint", "disappointed",
    "disappointing", "fed up", "frustrated", "frustrating", "horrible", "joke", "lied", "lies",
    "never again", "not happy", "poor", "rubbish", "sick of", "still waiting", "terrible",
    "unhappy", "upset", "waste", "wrong", "again and again", "third time", "second time",
    "nobody", "no one", "ignored", "ignoring", "mad",
}
#: Words of anger (2 points each).
_STRONG = {
    "furious", "livid", "scam", "scammers", "disgrace", "disgraceful", "outrageous", "appalling",
    "pathetic", "unacceptable", "hate", "worst", "incompetent", "useless", "ridiculous", "fraud",
    "lawyer", "sue", "sued", "legal action", "ombudsman", "thieves", "stealing", "robbed",
    "disgusting", "shambles",
}
#: Profanity (2 points each); matched as whole words, so "hello" is not "hell".
_PROFANE = {"damn", "hell", "crap", "shit", "shitty", "fuck", "fucking", "bloody", "bullshit", "wtf"}

#: A score at or above this is "angry" and escalates at once; any positive score
#: is a complaint, and two complaints in a row escalate.
ANGRY_SCORE = 3


def _phrase_pattern(phrases: set[str]) -> re.Pattern[str]:
    ordered = sorted(phrases, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(p) for p in ordered) + r")\b", re.IGNORECASE)


_NEGATIVE_RE = _phrase_pattern(_NEGATIVE)
_STRONG_RE = _phrase_pattern(_STRONG)
_PROFANE_RE = _phrase_pattern(_PROFANE)


@dataclass
class Frustration:
    """How frustrated a message sounds, with the evidence for the score."""

    score: int
    terms: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.score >= ANGRY_SCORE:
            return "angry"
        return "negative" if self.score > 0 else "neutral"


def frustration(text: str) -> Frustration:
    """Score a message: complaint words 1, anger words and profanity 2, shouting
    (mostly capitals over 12+ letters) 2, repeated "!" or "?!" 1."""
    terms: list[str] = []
    score = 0
    for pattern, points in ((_NEGATIVE_RE, 1), (_STRONG_RE, 2), (_PROFANE_RE, 2)):
        for match in pattern.finditer(text):
            terms.append(match.group(1).lower())
            score += points
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) / len(letters) >= 0.7:
        terms.append("SHOUTING")
        score += 2
    if re.search(r"!{2,}|\?!|!\?", text):
        terms.append("!!")
        score += 1
    return Frustration(score, terms)


# -- webhook ------------------------------------------------------------------


class WebhookNotifier:
    """POSTs handoff events as JSON to the tenant's webhook, off the request path.

    Each delivery is retried (1 s, 2 s, 4 s back-off) on connection errors and
    5xx answers. With a secret, the body is signed: header
    ``X-Lepton-Signature: sha256=<hex HMAC-SHA256 of the raw body>``; every
    event has a unique ``X-Lepton-Event-Id`` so receivers can drop duplicates.
    ``on_result(event, status)`` is called with "delivered" or "failed: ...".
    """

    def __init__(self, url: str, secret: str | None = None, *, attempts: int = 4, timeout: float = 10.0):
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.timeout = timeout

    def send(self, event: dict[str, Any], on_result: Callable[[dict[str, Any], str], None] | None = None) -> threading.Thread:
        event = {"id": "evt_" + uuid.uuid4().hex, "created": int(time.time()), **event}
        thread = threading.Thread(target=self._deliver, args=(event, on_result), name="lepton-webhook", daemon=True)
        thread.start()
        return thread

    def _deliver(self, event: dict[str, Any], on_result: Callable[[dict[str, Any], str], None] | None) -> None:
        import httpx

        body = json.dumps(event).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Lepton-Event-Id": event["id"], "User-Agent": "lepton-webhook"}
        if self.secret:
            digest = hmac.new(self.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            headers["X-Lepton-Signature"] = f"sha256={digest}"
        status = "failed: not attempted"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(2 ** (attempt - 1))
            try:
                response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout)
            except httpx.HTTPError as exc:
                status = f"failed: {type(exc).__name__}: {exc}"
                continue
            if response.status_code < 300:
                status = "delivered"
                break
            status = f"failed: HTTP {response.status_code}"
            if response.status_code < 500:
                break  # the receiver refused it; repeating will not help
        if status != "delivered":
            log.warning("handoff webhook %s for %s: %s", event["type"], event.get("conversation_id"), status)
        if on_result is not None:
            on_result(event, status)


# -- the handoff lifecycle ----------------------------------------------------


class HandoffService:
    """A conversation's handoff state (stored by ``Store``), its events (webhook) and
    the agent's side: answering and releasing.

    ``append_message(tenant, conversation, message)`` adds a message to the stored
    history and returns its index (the assistant's conversation memory does it)."""

    def __init__(
        self,
        store: "Store",
        webhook: WebhookNotifier | None,
        append_message: Callable[[str, str, dict[str, Any]], int],
    ):
        self.store = store
        self.webhook = webhook
        self._append = append_message

    @staticmethod
    def view(record: dict[str, Any] | None) -> dict[str, Any]:
        """What clients see of a stored handoff record: ``{"state": "none"}`` without
        one, else its state (pending|released), reason and times."""
        if record is None:
            return {"state": "none"}
        return {k: v for k, v in record.items() if k not in ("conversation_id", "webhook_status")}

    def state(self, tenant_id: str, conversation_id: str | None) -> dict[str, Any]:
        """The conversation's handoff as clients see it (see ``view``)."""
        return self.view(self.store.handoff(tenant_id, conversation_id) if conversation_id else None)

    def is_pending(self, tenant_id: str, conversation_id: str) -> bool:
        return self.state(tenant_id, conversation_id)["state"] == "pending"

    def after_turn(
        self, tenant_id: str, conversation_id: str, reason: str | None, *, was_pending: bool,
        transcript: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Open the handoff a turn asked for, or forward a waiting conversation's new
        message to the webhook; returns the handoff as clients see it."""
        if reason is not None:
            if self.store.open_handoff(tenant_id, conversation_id, reason):
                log.info("conversation %s handed off: %s", conversation_id, reason)
                self._notify("handoff.requested", tenant_id, conversation_id, reason=reason, transcript=transcript)
            return self.state(tenant_id, conversation_id)
        if was_pending:
            said = next((m for m in reversed(transcript) if m["role"] == "user"), None)
            self._notify("handoff.message", tenant_id, conversation_id, message=said)
        # Read again rather than reuse the turn's start: an agent may have released it meanwhile.
        return self.state(tenant_id, conversation_id)

    def agent_reply(self, tenant_id: str, conversation_id: str, content: str, agent: str | None = None) -> int:
        """A person's answer in a handed-off conversation; returns its message index."""
        self.store.require_conversation(tenant_id, conversation_id)
        if not self.is_pending(tenant_id, conversation_id):
            raise HandoffStateError(f"conversation {conversation_id!r} is not waiting for a person")
        if not content.strip():
            raise InvalidRequest("content is empty", "content")
        return self._append(tenant_id, conversation_id, {"role": "assistant", "content": content,
                                                          "agent": agent or "agent"})

    def release(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        """Give the conversation back to the assistant."""
        self.store.require_conversation(tenant_id, conversation_id)
        if not self.store.release_handoff(tenant_id, conversation_id):
            raise HandoffStateError(f"conversation {conversation_id!r} is not waiting for a person")
        self._notify("handoff.released", tenant_id, conversation_id)
        return self.state(tenant_id, conversation_id)

    def _notify(self, event: str, tenant_id: str, conversation_id: str, **fields: Any) -> None:
        if self.webhook is None:
            return

        def remember(_event: dict, status: str) -> None:
            if event == "handoff.requested":
                self.store.set_webhook_status(tenant_id, conversation_id, status)

        payload = {"type": event, "tenant_id": tenant_id, "conversation_id": conversation_id, **fields}
        self.webhook.send(payload, on_result=remember)
