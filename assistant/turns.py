"""Chat turns: validating one (``prepare_turn`` → :class:`TurnRequest`) and running
it (:class:`TurnRunner` → :class:`TurnResult`).

A request is validated completely before anything runs (known skill, known
conversation, well-formed messages), so bad input never reaches the store.
Running a turn:

1. takes the conversation's lock (turns of one conversation run one after another);
2. reads the conversation's persisted state and its handoff state;
3. runs the graph (``assistant.graph``) on that state plus the turn's input, with
   read-only dependencies as its context; nodes stream text to ``on_event``;
4. writes the new persisted state in one update, then the turn's records: the
   turn count and prompt, the skill's decisions (audit log), the handoff;
5. returns the turn's outcome as plain data.

A turn that raises (a backend failure, a client that went away) writes nothing.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .errors import InvalidRequest, UnknownSkill
from .guards import clean_message
from .llm import GenerationParams, Message
from .state import PERSISTED, EventSink, TurnContext
from .store import transcript_digest

if TYPE_CHECKING:  # pragma: no cover
    from skills import AuditWriter

    from .tenant_skills import SkillView

    from .handoff import HandoffService
    from .llm import ChatModel
    from .store import Store

__all__ = ["AUTO_MODEL", "ROLES", "TurnRequest", "TurnResult", "TurnRunner", "prepare_turn", "thread_config"]

log = logging.getLogger(__name__)

#: The ``model`` name that asks for automatic routing.
AUTO_MODEL = "assistant"
ROLES = ("system", "user", "assistant")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,3}")


@dataclass(frozen=True)
class TurnRequest:
    """A validated turn, ready to run (``TurnRunner.run``)."""

    tenant_id: str
    conversation_id: str
    #: The messages this turn adds: the whole list for a new conversation, else the newest.
    incoming: tuple[Message, ...]
    #: The skill the request named; None routes automatically.
    requested_skill: str | None
    params: GenerationParams
    #: The client asked for a person (the widget's button) whatever the message says.
    handoff_requested: bool = False
    #: The user's locale (a BCP 47 tag such as "en-US"): which emergency number the safety
    #: guard's replies name. None: the configured default.
    locale: str | None = None
    #: The request's end-user id (OpenAI's ``user``): part of the transcript's digest, so
    #: users of one tenant whose histories read the same are kept apart.
    user: str | None = None
    #: Whether ``user`` comes from the integrator's server (a server key or keyless use):
    #: only then do skills see it as ``ctx.user_id`` (a widget's page can name anyone).
    user_trusted: bool = True
    #: The tenant's skills the request was checked against (``Assistant.start_turn``): the
    #: turn runs on that same view, so a data skill deleted in between still answers this
    #: turn instead of failing half-way. None: ``TurnRunner.run`` reads the tenant's view.
    view: "SkillView | None" = field(default=None, compare=False, repr=False)
    #: Who the conversation belongs to (``Store.record_turn``): an API key's or a widget
    #: conversation token's id; None: keyless. Only its owner continues or reads it.
    owner: str | None = None
    #: Mask e-mail addresses and phone numbers too (the tenant opted in, ``Settings.mask_contacts``).
    mask_contacts: bool = False


@dataclass(frozen=True)
class TurnResult:
    """What a turn produced."""

    tenant_id: str
    conversation_id: str
    #: The skill that answered, or out_of_scope / handoff.
    skill: str
    reply: str
    #: The response's ``lepton`` fields beyond skill and conversation id.
    lepton: dict[str, Any]
    route_scores: dict[str, float]
    usage: dict[str, int]
    finish_reason: str
    #: Seconds spent waiting on the model, and the [first start, last end] of its calls.
    llm_seconds: float = 0.0
    llm_window: list[float] = field(default_factory=list)
    #: perf_counter() at points of the turn, for benchmarks: those the caller gave
    #: ("received", "thread"), then "started", "loaded" (state read), "routed",
    #: "answered" (the graph is done) and "recorded" (its state and records committed).
    marks: dict[str, float] = field(default_factory=dict)


def thread_config(tenant_id: str, conversation_id: str) -> dict:
    # The tenant is part of the thread id: one tenant can never load another's thread.
    return {"configurable": {"thread_id": f"{tenant_id}:{conversation_id}"}}


def prepare_turn(
    messages: list[Message],
    *,
    model: str,
    skills: Mapping[str, Any],
    require_conversation: Callable[..., None],
    tenant_id: str,
    conversation_id: str | None,
    params: GenerationParams,
    handoff: bool,
    max_message_chars: int,
    locale: str | None = None,
    user: str | None = None,
    find_continuation: Callable[..., str | None] | None = None,
    user_trusted: bool = True,
    owner: str | None = None,
    mask_contacts: bool = False,
    max_messages: int | None = None,
) -> TurnRequest:
    """Validate a turn; raises InvalidRequest, UnknownSkill or ConversationNotFound.

    Without a conversation id, a request whose messages before the last are exactly a
    stored conversation of the tenant (``find_continuation(tenant, digest)``, see
    ``Store.continuation``) continues it: OpenAI clients keep context by resending the
    whole history. Only ``owner``'s conversations are continued, by id or by history
    (``require_conversation(tenant, id, owner)``, ``find_continuation(tenant, digest, owner)``);
    anyone else's reads as not found."""
    if locale is not None and not _LOCALE.fullmatch(locale):
        raise InvalidRequest(f"lepton.locale {locale!r} is not a language tag such as 'en-GB'", "lepton.locale")
    if model != AUTO_MODEL and model not in skills:
        raise UnknownSkill(f"model {model!r} does not exist; available: {', '.join([AUTO_MODEL, *skills])}")
    if max_messages is not None and len(messages) > max_messages:
        raise InvalidRequest(f"messages has {len(messages)} items; the limit is {max_messages} "
                             "(send the conversation id instead of the whole history)", "messages")
    incoming = _validate_messages(messages, max_message_chars)
    if conversation_id is None and find_continuation is not None:
        conversation_id = _continued(incoming, tenant_id, user, functools.partial(find_continuation, owner=owner),
                                     mask_contacts)
        if conversation_id is not None:
            incoming = incoming[-1:]
    if conversation_id is None:
        conversation_id = "conv_" + uuid.uuid4().hex
    else:
        require_conversation(tenant_id, conversation_id, owner)
        # The stored history is authoritative: of a continued conversation only
        # the newest user message is new (OpenAI clients resend the whole list).
        incoming = incoming[-1:]
    return TurnRequest(tenant_id, conversation_id, tuple(incoming), None if model == AUTO_MODEL else model,
                       params, handoff, locale, user, user_trusted, owner=owner, mask_contacts=mask_contacts)


def _continued(incoming: list[Message], tenant_id: str, user: str | None,
               find: Callable[[str, str], str | None], mask_contacts: bool) -> str | None:
    """The stored conversation that the messages before the last one are, if any."""
    earlier = [{"role": m["role"], "content": clean_message(m["content"], mask_contacts)[0]} for m in incoming[:-1]]
    if not any(m["role"] == "assistant" for m in earlier):  # no answer yet: a new conversation
        return None
    return find(tenant_id, transcript_digest(earlier, user))


def _validate_messages(messages: list[Message], max_chars: int) -> list[Message]:
    if not messages:
        raise InvalidRequest("messages must contain at least one message", "messages")
    cleaned = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise InvalidRequest(
                f"messages[{i}].role {role!r} is not supported; use one of {', '.join(ROLES)}",
                f"messages.{i}.role",
            )
        if not isinstance(content, str):
            raise InvalidRequest(f"messages[{i}].content must be a string", f"messages.{i}.content")
        if len(content) > max_chars:
            raise InvalidRequest(
                f"messages[{i}].content is {len(content)} characters; the limit is {max_chars}",
                f"messages.{i}.content",
            )
        cleaned.append({"role": role, "content": content})
    if cleaned[-1]["role"] != "user":
        raise InvalidRequest("the last message must have role 'user'", f"messages.{len(cleaned) - 1}.role")
    if not cleaned[-1]["content"].strip():
        raise InvalidRequest("the last user message is empty", f"messages.{len(cleaned) - 1}.content")
    return cleaned


class TurnRunner:
    """Runs validated turns on the graph and records them (see the module docstring)."""

    def __init__(
        self,
        *,
        graph,  # noqa: ANN001 - the compiled graph with the checkpointer: reads and writes state
        turn_graph,  # noqa: ANN001 - the same graph without one: runs the turns
        store: "Store",
        audit: "AuditWriter",
        handoffs: "HandoffService",
        llm: "ChatModel",
        skills_for: Callable[[str], "SkillView"],
        adapter_for: Callable[[str], str | None],
        max_history: int,
        safety_contacts: Callable[[str, str | None], Mapping[str, str]],
    ):
        """``safety_contacts(tenant, locale)``: what the safety guard's replies name;
        ``skills_for(tenant)``: the tenant's skills (``SkillCatalog.view``)."""
        self.graph = graph
        self._turn_graph = turn_graph
        self.store = store
        self.audit = audit
        self.handoffs = handoffs
        self.llm = llm
        self.skills_for = skills_for
        self.adapter_for = adapter_for
        self.max_history = max_history
        self.safety_contacts = safety_contacts
        self._locks: "weakref.WeakValueDictionary[str, threading.Lock]" = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        #: Called with every completed TurnResult (metrics, benchmarks); must not raise.
        self.observers: list[Callable[[TurnResult], None]] = []

    def lock_for(self, tenant_id: str, conversation_id: str) -> threading.Lock:
        """The lock that serialises everything that changes this conversation's state."""
        key = thread_config(tenant_id, conversation_id)["configurable"]["thread_id"]
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.Lock()
                self._locks[key] = lock
            return lock

    def run(
        self,
        request: TurnRequest,
        on_event: EventSink | None = None,
        *,
        cancelled: threading.Event | None = None,
        marks: dict[str, float] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> TurnResult:
        """Run ``request`` to its end in the calling thread, handing each event to
        ``on_event`` as it happens. ``cancelled``, once set, stops the turn (nothing is
        stored). Raises what stopped the turn; a turn that raises stores nothing.

        The turn's writes (its state, its record, its decisions, a handoff it opens)
        commit together, in one SQLite transaction: a process killed at any moment
        leaves the conversation as it was before the turn or after it, never between.
        ``before_commit()`` is called just before they are written and may raise
        (``TurnAbandoned``) to drop the turn — how the server keeps a turn whose client
        was told it failed (a timeout) from being stored anyway."""
        marks = {**(marks or {}), "started": time.perf_counter()}
        cancelled = cancelled or threading.Event()

        def emit(kind: str, value: Any) -> None:
            if kind == "route":
                marks["routed"] = time.perf_counter()
            if on_event is not None:
                on_event(kind, value)

        tenant, conversation = request.tenant_id, request.conversation_id
        config = thread_config(tenant, conversation)
        view = request.view if request.view is not None else self.skills_for(tenant)
        context = TurnContext(
            tenant_id=tenant,
            conversation_id=conversation,
            llm=self.llm,
            params=request.params,
            envs=view.envs,
            view=view,
            adapter_for=self.adapter_for,
            cancelled=cancelled,
            emit=emit,
            max_history=self.max_history,
            safety_contacts=self.safety_contacts(tenant, request.locale),
            user_id=request.user if request.user_trusted else None,
            mask_contacts=request.mask_contacts,
        )
        with self.lock_for(tenant, conversation):
            # The turn runs on the graph without a checkpointer, from the stored state, and
            # its final state is written in one update, as guard_out. Left to itself,
            # LangGraph's checkpointing saves from a thread pool made for each run (one or
            # more new threads per turn, each a wait for a core when the model keeps the
            # CPU busy) and writes a first checkpoint for every new conversation.
            stored = self.graph.get_state(config).values
            pending = self.handoffs.is_pending(tenant, conversation)
            state = {key: stored[key] for key in PERSISTED if key in stored}
            state.update(incoming=list(request.incoming), requested_skill=request.requested_skill,
                         handoff_pending=pending, handoff_requested=request.handoff_requested)
            marks["loaded"] = time.perf_counter()
            try:
                final = self._turn_graph.invoke(state, context=context)
            finally:
                cancelled.set()  # nothing may generate for this turn any more
            marks["answered"] = time.perf_counter()
            if before_commit is not None:
                before_commit()
            lepton = dict(final.get("lepton", {}))
            if final.get("declined"):
                lepton["declined"] = True
            if final.get("safety"):
                lepton["safety"] = final["safety"]
            if final.get("safety_rule"):
                lepton["safety_rule"] = final["safety_rule"]
            with self.store.unit():
                self.graph.update_state(config, {key: final[key] for key in PERSISTED if key in final},
                                        as_node="guard_out")
                self._record(request, final)
                lepton["handoff"] = self.handoffs.after_turn(tenant, conversation, final.get("handoff_reason"),
                                                             was_pending=pending, transcript=final["messages"])
            marks["recorded"] = time.perf_counter()
        result = TurnResult(
            tenant_id=tenant,
            conversation_id=conversation,
            skill=final["skill"],
            reply=final.get("reply", ""),
            lepton=lepton,
            route_scores=dict(final.get("route_scores", {})),
            usage={"prompt_tokens": 0, "completion_tokens": 0, **final.get("usage", {})},
            finish_reason=final.get("finish_reason", "stop"),
            llm_seconds=final.get("llm_seconds", 0.0),
            llm_window=list(final.get("llm_window", [])),
            marks=marks,
        )
        for observer in self.observers:
            observer(result)
        log.info("turn %s skill=%s tokens=%s llm=%.3fs", conversation, result.skill, result.usage,
                 result.llm_seconds)
        return result

    def _record(self, request: TurnRequest, final: Mapping[str, Any]) -> None:
        tenant, conversation = request.tenant_id, request.conversation_id
        transcript = final["messages"]
        self.store.record_turn(
            tenant,
            conversation,
            final["skill"],
            answer_index=len(transcript) - 1 if transcript else None,
            prompt_system=final.get("prompt_system"),
            digest=transcript_digest(transcript, request.user),
            owner=request.owner,
        )
        for decision in final.get("decisions", []):
            self.audit(tenant, final["skill"], decision, conversation_id=conversation)
