"""The graph's state and per-turn context.

State is what the SQLite checkpointer persists per conversation. Only
``messages`` is history; everything else describes the turn in progress and is
overwritten by the next one. ``messages`` is replaced as a whole by the last node
(guard_out), so a turn that fails half-way never leaves a user message without
its answer in the history.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypedDict

from .llm import ChatModel, GenerationParams, Message

__all__ = ["ConversationState", "TurnContext"]


class ConversationState(TypedDict, total=False):
    messages: list[Message]
    """Committed history, oldest first: user/assistant (and client system) messages."""

    incoming: list[Message]
    """Messages this turn adds (normally one user message); committed by guard_out."""

    requested_skill: str | None
    """Skill named explicitly by the request's ``model``; None means route automatically."""

    skill: str
    """Skill that handles this turn, or ``out_of_scope``."""

    route_scores: dict[str, float]
    """Router scores per class for this turn (empty when the skill was requested)."""

    reply: str
    """The assistant's answer to this turn, as streamed to the user."""

    extras: dict[str, Any]
    """Skill-specific fields for the response's ``lepton`` object (citations, ...)."""

    failures: int
    """Consecutive turns the assistant could not answer (declined or out of scope)."""

    handoff_offered: bool
    """The last reply offered a person, so a bare "yes" now means "hand me off"."""

    handoff_reason: str | None
    """Set by the turn that hands the conversation to a person (see assistant.handoff)."""


@dataclass
class TurnContext:
    """Run-time dependencies of one turn; never persisted."""

    tenant_id: str
    llm: ChatModel
    params: GenerationParams
    max_history: int = 20
    #: Token counts of every model call in the turn, summed.
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    finish_reason: str = "stop"
    #: Seconds spent inside the model (for the non-LLM overhead benchmark).
    llm_seconds: float = 0.0
    #: perf_counter() when the first model call began and when the last one ended:
    #: what lies outside this window is time the assistant adds to a turn whatever
    #: the model does (relaying tokens inside it overlaps with generation).
    llm_window: list[float] = field(default_factory=list)
    #: perf_counter() at points of the turn, for benchmarks: "received" (the server got
    #: the request), "thread" (its turn thread runs), "started" (the turn is validated
    #: and begins to run), "loaded" (its stored state is read), "routed", "answered"
    #: (the graph ended and the conversation's new state is written) and "recorded"
    #: (the turn's records are written).
    marks: dict[str, float] = field(default_factory=dict)
    #: Set when the client went away; skills stop generating and the turn is not stored.
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: Receives each piece of the answer as it is said, in the thread that runs the
    #: turn (see ``Turn.run``); it may raise to abandon the turn.
    emit: Callable[[str], None] | None = None
    #: Knowledge search already scoped to ``tenant_id`` (see ``SkillContext.retrieve``).
    retrieve: Callable[..., list[Any]] | None = None
    #: Where skills find what tenants trained for them.
    data_dir: Path | None = None
    #: The conversation waits for a person: the assistant stays silent.
    handoff_pending: bool = False
    #: The client asked for a person explicitly (the widget's button).
    handoff_requested: bool = False
    #: skill name -> the registered adapter it answers with (None: base model).
    adapter_for: Callable[[str], str | None] | None = None
    #: System message of the turn's last model prompt (None when no model answered).
    #: Stored with the answer, so feedback trains on the prompt the model saw.
    prompt_system: str | None = None
