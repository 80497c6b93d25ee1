"""The graph's state and its run-time context.

State has three parts:

- **kept with the conversation** (``PERSISTED``): written to the checkpointer once,
  when a turn ends, and read back at the start of the next one;
- **the turn's input**: what the turn runner puts in before the graph runs;
- **the turn's output**: what the nodes produce. Fields that several nodes (or
  several model calls) add to have reducers, so LangGraph combines them.

A turn starts from the persisted part plus its input, so every output field
starts empty: nothing of one turn leaks into the next.

The run-time context (:class:`TurnContext`) is read-only dependencies: the model,
the generation parameters, search, adapters, the skills' environments, the
cancel flag and the event sink. Nodes never write into it.
"""

from __future__ import annotations

import operator
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Mapping, TypedDict

from skills import Decision, SkillEnv

from .llm import ChatModel, GenerationParams, Message
from .tenant_skills import SkillView

__all__ = ["ConversationState", "TurnContext", "PERSISTED", "EventSink", "add_usage", "merge_dicts", "widen"]

#: Receives a turn's events as they happen: ("route", skill name), then ("delta", text)
#: pieces. It runs in the thread that runs the turn and may raise to abandon it.
EventSink = Callable[[str, Any], None]


def merge_dicts(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: later keys win."""
    return {**(old or {}), **(new or {})}


def add_usage(old: dict[str, int] | None, new: dict[str, int] | None) -> dict[str, int]:
    """Reducer: token counts of several model calls, summed."""
    total = dict(old or {})
    for key, value in (new or {}).items():
        total[key] = total.get(key, 0) + value
    return total


def widen(old: list[float] | None, new: list[float] | None) -> list[float]:
    """Reducer: the smallest [start, end] window covering both."""
    if not old:
        return list(new or [])
    if not new:
        return list(old)
    return [min(old[0], new[0]), max(old[1], new[1])]


class ConversationState(TypedDict, total=False):
    # -- kept with the conversation -------------------------------------------
    messages: list[Message]
    """Committed history, oldest first: user/assistant (and client system) messages."""

    failures: int
    """Consecutive turns the assistant could not answer (declined or out of scope)."""

    handoff_offered: bool
    """The last reply offered a person, so a bare "yes" now means "hand me off"."""

    skill_state: dict[str, dict[str, Any]]
    """Each skill's own state, by skill name, as its last ``SkillReply.state`` left it."""

    last_skill: str | None
    """The skill (or out_of_scope / handoff) that answered the previous turn."""

    # -- the turn's input -------------------------------------------------------
    incoming: list[Message]
    """Messages this turn adds (normally one user message); committed by guard_out."""

    requested_skill: str | None
    """Skill named explicitly by the request's ``model``; None means route automatically."""

    handoff_pending: bool
    """The conversation waits for a person: the assistant stays silent."""

    handoff_requested: bool
    """The client asked for a person explicitly (the widget's button)."""

    # -- the turn's output ------------------------------------------------------
    skill: str
    """Skill that handles this turn, or ``out_of_scope`` / ``handoff``."""

    route_scores: dict[str, float]
    """Router scores per class for this turn (empty when the skill was requested)."""

    reply: str
    """The assistant's answer to this turn, as streamed to the user."""

    lepton: Annotated[dict[str, Any], merge_dicts]
    """Fields for the response's ``lepton`` object (citations, sentiment, ...)."""

    declined: bool
    """The skill could not answer and offered a person."""

    handoff_reason: str | None
    """Why this turn hands the conversation to a person (see assistant.handoff), if it does."""

    safety: str | None
    """"crisis" or "emergency" when the turn's message is one (``lepton.safety``): set by
    the safety guard in guard_in, or by a skill's reply."""

    safety_rule: str | None
    """The safety guard's rule that fired (``assistant.safety.RULES``, or the classifier), if one did."""

    message_vector: Any
    """The user message's embedding (numpy), computed once in guard_in for the safety
    classifier and the router."""

    decisions: Annotated[list[Decision], operator.add]
    """Decisions the skill reported; the turn runner writes them to the audit log."""

    usage: Annotated[dict[str, int], add_usage]
    """Token counts of every model call in the turn, summed."""

    finish_reason: str
    """The last model call's finish reason ("stop" or "length")."""

    prompt_system: str | None
    """System message of the turn's last model prompt (None when no model answered);
    stored with the answer, so feedback trains on the prompt the model saw."""

    llm_seconds: Annotated[float, operator.add]
    """Seconds spent waiting on the model (for the non-LLM overhead benchmark)."""

    llm_window: Annotated[list[float], widen]
    """perf_counter() when the first model call began and the last one ended."""


#: The part of the state written to the checkpointer at the end of each turn.
PERSISTED = ("messages", "failures", "handoff_offered", "skill_state", "last_skill")


@dataclass(frozen=True)
class TurnContext:
    """Read-only dependencies of one turn (LangGraph's run-time context); never persisted."""

    tenant_id: str
    conversation_id: str
    llm: ChatModel
    params: GenerationParams
    #: Each skill's environment, by name.
    envs: Mapping[str, SkillEnv]
    #: skill name -> the registered adapter it answers with (None: base model).
    adapter_for: Callable[[str], str | None]
    #: Set when the client went away; skills stop generating and the turn is not stored.
    cancelled: threading.Event
    #: Receives the turn's events (see ``EventSink``); None: nobody listens.
    emit: EventSink | None = None
    #: How many past messages a skill shows the model.
    max_history: int = 20
    #: The emergency number and crisis line the safety guard's replies name (``assistant.safety``).
    safety_contacts: Mapping[str, str] = field(default_factory=dict)
    #: Mask e-mail addresses and phone numbers in the turn's messages (``TurnRequest.mask_contacts``).
    mask_contacts: bool = False
    #: The request's end-user id (OpenAI's ``user``), handed to skills as ``ctx.user_id``.
    user_id: str | None = None
    #: The tenant's skills, router and environments (``assistant.tenant_skills``); None:
    #: the installed skills the graph was built with.
    view: SkillView | None = None
