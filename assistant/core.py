"""The Assistant: one object that owns the model, the skills, the router and the
graph, and runs chat turns. The server, the CLI and the benchmarks all use it.

A turn is validated completely before the graph runs (known skill, known
conversation, well-formed messages), so bad input never reaches the store. Turns
of the same conversation run one after another.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from langgraph.checkpoint.sqlite import SqliteSaver

from retrieval.query_encoder import load_query_encoder
from skills import LoadedSkills, Skill, load_skills

from .adapters import AdapterRegistry, model_identity
from .errors import (
    BackendError,
    ConversationNotFound,
    HandoffStateError,
    InvalidRequest,
    LeptonError,
    UnknownSkill,
)
from .graph import build_graph
from .handoff import WebhookNotifier
from .llm import ChatModel, GenerationParams, Message, create_chat_model
from .router import EmbeddingRouter
from .settings import Settings
from .state import TurnContext
from .store import Store, connect

__all__ = ["Assistant", "Turn", "EventSink", "AUTO_MODEL", "ROLES"]

log = logging.getLogger(__name__)

#: The ``model`` name that asks for automatic routing.
AUTO_MODEL = "assistant"
ROLES = ("system", "user", "assistant")


#: Receives a turn's events as they happen: ("route", skill name), then ("delta", text)
#: pieces. It runs in the thread that runs the turn and may raise to abandon it.
EventSink = Callable[[str, Any], None]


@dataclass
class Turn:
    """One chat turn, validated and ready. ``run()`` runs it in the calling thread;
    the fields are filled as it progresses and complete when it returns."""

    conversation_id: str
    tenant_id: str
    skill: str | None = None
    reply: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    route_scores: dict[str, float] = field(default_factory=dict)
    context: TurnContext | None = None
    _start: Callable[[EventSink | None], None] | None = None

    def run(self, on_event: EventSink | None = None) -> "Turn":
        """Run the turn to its end, handing each event to ``on_event`` as it happens.

        Raises what stopped the turn (a backend failure, or whatever ``on_event``
        raised); a turn that raises leaves the stored conversation as it was."""
        assert self._start is not None, "a Turn comes from Assistant.start_turn"
        start, self._start = self._start, None
        start(on_event)
        return self

    @property
    def usage(self) -> dict[str, int]:
        return dict(self.context.usage) if self.context else {"prompt_tokens": 0, "completion_tokens": 0}

    @property
    def finish_reason(self) -> str:
        return self.context.finish_reason if self.context else "stop"


class Assistant:
    def __init__(
        self,
        settings: Settings,
        llm: ChatModel,
        skills: LoadedSkills,
        router: EmbeddingRouter,
        knowledge: Any | None = None,
    ):
        self.settings = settings
        self.llm = llm
        self.loaded = skills
        self.skills: dict[str, Skill] = skills.skills
        self.router = router
        self._conn = connect(settings.db_path)
        # The checkpointer and the store share one connection, so they must share one
        # lock too: with a lock each, concurrent turns (a vLLM backend serves many at
        # once) made SQLite fail with "cannot start a transaction within a transaction".
        saver = SqliteSaver(self._conn)
        self.store = Store(self._conn, lock=saver.lock)
        #: The graph with its checkpointer: every read and write of a conversation's state.
        self.graph = build_graph(self.skills, router, saver)
        # The same graph without one runs the turns: the turn reads the state before it
        # starts and writes it once, in its own thread, when it ends (see ``_run``).
        self._turn_graph = build_graph(self.skills, router)
        self._locks: "weakref.WeakValueDictionary[str, threading.Lock]" = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        #: Called with every completed Turn (metrics, benchmarks); must not raise.
        self.turn_observers: list[Callable[[Turn], None]] = []
        # The knowledge store opens Chroma, so it is made on a turn's first search,
        # not here: most turns of most skills never search.
        self._knowledge = knowledge
        self._retriever = None
        self._retriever_guard = threading.Lock()
        self.adapters = AdapterRegistry(settings.adapters_dir)
        served = getattr(llm, "model_path", None)
        self.model_identity = model_identity(served) if served else None
        self._adapter_guard = threading.Lock()
        #: adapter name -> created_at of the version the backend has loaded
        self._loaded_adapters: dict[str, str] = {}
        #: (name, created_at) of adapters already refused, so each is logged once
        self._refused_adapters: set[tuple[str, str]] = set()
        self.webhook = (
            WebhookNotifier(settings.handoff_webhook_url, settings.handoff_webhook_secret)
            if settings.handoff_webhook_url
            else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        llm: ChatModel | None = None,
        progress: Callable[[str], None] = print,
        knowledge: Any | None = None,
    ) -> "Assistant":
        """``knowledge`` is a ``retrieval.KnowledgeStore`` to use instead of the settings' one."""
        loaded = load_skills(settings.skills)
        if not loaded.skills:
            raise UnknownSkill("no skills could be loaded: " + "; ".join(f"{k}: {v}" for k, v in loaded.failures.items()))
        owned = llm is None
        if llm is None:
            # A managed vLLM takes the active adapters as start-up arguments. It starts
            # before the encoder's threads are made: once it is up, the assistant may keep
            # to fewer CPUs (LEPTON_VLLM_SEPARATE_CPUS), and ONNX Runtime sizes its thread
            # pool from the CPUs it has when the session is built.
            llm = create_chat_model(settings, progress, adapters=AdapterRegistry(settings.adapters_dir).active())
        try:
            encoder = load_query_encoder(settings.embedding_model, int8=settings.router_int8)
            encoder.prepare()  # the ONNX export happens at start-up, not on the first message
            router = EmbeddingRouter(
                encoder, {name: s.examples for name, s in loaded.skills.items()}, threshold=settings.router_threshold
            )
            if settings.router_int8:  # search queries keep the float encoder: export it now too
                load_query_encoder(settings.embedding_model).prepare()
        except BaseException:
            if owned:
                llm.close()  # a managed vLLM must not outlive a failed start
            raise
        assistant = cls(settings, llm, loaded, router, knowledge)
        assistant._owns_llm = owned
        return assistant

    #: Whether close() also closes the backend (true when from_settings made it, e.g.
    #: a managed vLLM child that must not outlive the assistant).
    _owns_llm = False

    def close(self) -> None:
        self._conn.close()
        if self._owns_llm:
            self.llm.close()

    # -- knowledge --------------------------------------------------------------
    @property
    def knowledge(self):  # noqa: ANN201 - retrieval.KnowledgeStore, imported lazily
        with self._retriever_guard:
            if self._knowledge is None:
                from retrieval import KnowledgeStore

                self._knowledge = KnowledgeStore(self.settings)
            return self._knowledge

    @property
    def retriever(self):  # noqa: ANN201 - retrieval.Retriever
        knowledge = self.knowledge
        with self._retriever_guard:
            if self._retriever is None:
                from retrieval import Retriever

                self._retriever = Retriever(knowledge)
            return self._retriever

    def ensure_demo_knowledge(self, progress: Callable[[str], None] | None = print) -> bool:
        """Fill the default tenant's help centre with the WixQA demo articles when the
        ``demo_knowledge`` setting is on and it has none yet; True when it ingested."""
        if not self.settings.demo_knowledge:
            return False
        from retrieval import ensure_demo_help_centre

        report = ensure_demo_help_centre(self.knowledge, self.settings.default_tenant, progress=progress)
        return report is not None

    def _retrieve_for(self, tenant_id: str) -> Callable[..., list]:
        def retrieve(query: str, collection: str, k: int = 5, mode: str = "hybrid") -> list:
            return self.retriever.search(query, collection, tenant_id, k=k, mode=mode)

        return retrieve

    # -- adapters ---------------------------------------------------------------
    def adapter_for(self, skill: str) -> str | None:
        """The name of the adapter ``skill`` answers with, loading it into the
        backend first if needed; None means the base model.

        The registry is read on every call, so an adapter activated while the
        server runs is used from the next turn on. An adapter trained on another
        base model or chat template is refused (logged once) and the base model
        answers instead: a mismatched template silently degrades every answer.
        """
        try:
            record = self.adapters.active_for(skill)
        except LeptonError as exc:
            log.error("adapter registry: %s", exc)
            return None
        if record is None:
            return None
        version = (record.name, record.created_at)
        with self._adapter_guard:
            if version in self._refused_adapters:
                return None
            if self._loaded_adapters.get(record.name) == record.created_at:
                return record.name
            problem = record.problem_with(self.model_identity) if self.model_identity else None
            try:
                if problem is not None:
                    raise LeptonError(problem)
                if record.name in self._loaded_adapters:  # a new version of a loaded adapter
                    self.llm.load_adapter(record.name, str(record.path))
                else:  # the backend may have it already (a managed vLLM's start-up adapters)
                    self.llm.ensure_adapter(record.name, str(record.path))
            except BackendError:
                raise  # the backend is down (a vLLM restarting): fail this turn (503), retry the next
            except LeptonError as exc:
                self._refused_adapters.add(version)
                log.error("skill %s answers with the base model: %s", skill, exc)
                return None
            self._loaded_adapters[record.name] = record.created_at
            log.info("adapter %s loaded for skill %s", record.name, skill)
            return record.name

    # -- handoff ----------------------------------------------------------------
    @staticmethod
    def handoff_view(record: dict[str, Any] | None) -> dict[str, Any]:
        """What clients see of a stored handoff record: ``{"state": "none"}`` without
        one, else its state (pending|released), reason and times."""
        if record is None:
            return {"state": "none"}
        return {k: v for k, v in record.items() if k not in ("conversation_id", "webhook_status")}

    def handoff_state(self, tenant_id: str, conversation_id: str | None) -> dict[str, Any]:
        """The conversation's handoff as clients see it (see ``handoff_view``)."""
        return self.handoff_view(self.store.handoff(tenant_id, conversation_id) if conversation_id else None)

    def _notify(self, event: str, tenant_id: str, conversation_id: str, **fields: Any) -> None:
        if self.webhook is None:
            return

        def remember(_event: dict, status: str) -> None:
            if event == "handoff.requested":
                self.store.set_webhook_status(tenant_id, conversation_id, status)

        payload = {"type": event, "tenant_id": tenant_id, "conversation_id": conversation_id, **fields}
        self.webhook.send(payload, on_result=remember)

    def _after_turn_handoff(
        self, turn: Turn, reason: str | None, transcript: list[Message]
    ) -> None:
        tenant, conversation = turn.tenant_id, turn.conversation_id
        if reason is not None:
            handoff = self.handoff_view(self.store.open_handoff(tenant, conversation, reason))
            log.info("conversation %s handed off: %s", conversation, reason)
            self._notify("handoff.requested", tenant, conversation, reason=reason, transcript=transcript)
        else:
            # Read again rather than reuse the turn's start: an agent may have released it meanwhile.
            handoff = self.handoff_state(tenant, conversation)
            if turn.context.handoff_pending:
                self._notify("handoff.message", tenant, conversation, message=transcript[-1] if transcript else None)
        turn.extras = {**turn.extras, "handoff": handoff}

    def _append_agent_message(self, tenant_id: str, conversation_id: str, message: Message) -> int:
        """Append to the stored history; returns the message's index in it."""
        config = self._config(tenant_id, conversation_id)
        with self._lock_for(config["configurable"]["thread_id"]):
            history = list(self.graph.get_state(config).values.get("messages", []))
            # Written as guard_out, the graph's last node: nothing runs after it.
            self.graph.update_state(config, {"messages": history + [message]}, as_node="guard_out")
        return len(history)

    def agent_reply(self, tenant_id: str, conversation_id: str, content: str, agent: str | None = None) -> int:
        """A person's answer in a handed-off conversation; returns its message index."""
        self._require_conversation(tenant_id, conversation_id)
        if self.handoff_state(tenant_id, conversation_id)["state"] != "pending":
            raise HandoffStateError(f"conversation {conversation_id!r} is not waiting for a person")
        if not content.strip():
            raise InvalidRequest("content is empty", "content")
        message: Message = {"role": "assistant", "content": content, "agent": agent or "agent"}
        return self._append_agent_message(tenant_id, conversation_id, message)

    def release_handoff(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        """Give the conversation back to the assistant."""
        self._require_conversation(tenant_id, conversation_id)
        if not self.store.release_handoff(tenant_id, conversation_id):
            raise HandoffStateError(f"conversation {conversation_id!r} is not waiting for a person")
        self._notify("handoff.released", tenant_id, conversation_id)
        return self.handoff_state(tenant_id, conversation_id)

    # -- public API -----------------------------------------------------------
    def model_names(self) -> list[str]:
        return [AUTO_MODEL, *self.skills]

    def _require_conversation(self, tenant_id: str, conversation_id: str) -> None:
        if not self.store.conversation_exists(tenant_id, conversation_id):
            raise ConversationNotFound(f"conversation {conversation_id!r} not found")

    def history(self, tenant_id: str, conversation_id: str) -> list[Message]:
        self._require_conversation(tenant_id, conversation_id)
        state = self.graph.get_state(self._config(tenant_id, conversation_id))
        return list(state.values.get("messages", []))

    def start_turn(
        self,
        messages: list[Message],
        *,
        model: str = AUTO_MODEL,
        conversation_id: str | None = None,
        tenant_id: str | None = None,
        params: GenerationParams | None = None,
        handoff: bool = False,
    ) -> Turn:
        """Validate a turn and return it, ready to run. Raises before anything is stored.

        ``handoff=True`` asks for a person (the widget's button) whatever the message says."""
        tenant_id = tenant_id or self.settings.default_tenant
        if model != AUTO_MODEL and model not in self.skills:
            raise UnknownSkill(f"model {model!r} does not exist; available: {', '.join(self.model_names())}")
        incoming = self._validate_messages(messages)
        if conversation_id is None:
            conversation_id = "conv_" + uuid.uuid4().hex
        elif not self.store.conversation_exists(tenant_id, conversation_id):
            raise ConversationNotFound(f"conversation {conversation_id!r} not found")
        else:
            # The stored history is authoritative: of a continued conversation only
            # the newest user message is new (OpenAI clients resend the whole list).
            incoming = incoming[-1:]
        context = TurnContext(
            tenant_id=tenant_id,
            llm=self.llm,
            params=params or GenerationParams(max_tokens=self.settings.max_tokens),
            max_history=self.settings.max_history_messages,
            retrieve=self._retrieve_for(tenant_id),
            adapter_for=self.adapter_for,
            data_dir=self.settings.data_dir,
            handoff_pending=self.handoff_state(tenant_id, conversation_id)["state"] == "pending",
            handoff_requested=handoff,
        )
        turn = Turn(conversation_id=conversation_id, tenant_id=tenant_id, context=context)
        requested = None if model == AUTO_MODEL else model
        turn._start = lambda on_event: self._run(turn, incoming, requested, on_event)
        return turn

    # -- internals --------------------------------------------------------------
    def _validate_messages(self, messages: list[Message]) -> list[Message]:
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
            if len(content) > self.settings.max_message_chars:
                raise InvalidRequest(
                    f"messages[{i}].content is {len(content)} characters; the limit is "
                    f"{self.settings.max_message_chars}",
                    f"messages.{i}.content",
                )
            cleaned.append({"role": role, "content": content})
        if cleaned[-1]["role"] != "user":
            raise InvalidRequest("the last message must have role 'user'", f"messages.{len(cleaned) - 1}.role")
        if not cleaned[-1]["content"].strip():
            raise InvalidRequest("the last user message is empty", f"messages.{len(cleaned) - 1}.content")
        return cleaned

    def _config(self, tenant_id: str, conversation_id: str) -> dict:
        # The tenant is part of the thread id: one tenant can never load another's thread.
        return {"configurable": {"thread_id": f"{tenant_id}:{conversation_id}"}}

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = threading.Lock()
                self._locks[key] = lock
            return lock

    def _run(self, turn: Turn, incoming: list[Message], requested: str | None, on_event: EventSink | None) -> None:
        config = self._config(turn.tenant_id, turn.conversation_id)
        lock = self._lock_for(config["configurable"]["thread_id"])
        handoff_reason: str | None = None
        transcript: list[Message] = []
        marks = turn.context.marks
        marks["started"] = time.perf_counter()
        if on_event is not None:
            turn.context.emit = lambda text: on_event("delta", text)
        with lock:
            # The turn runs on the graph without a checkpointer, from the stored state, and
            # its final state is written in one update, as guard_out. Left to itself,
            # LangGraph's checkpointing saves from a thread pool made for each run (one or
            # more new threads per turn, each a wait for a core when the model keeps the
            # CPU busy) and writes a first checkpoint for every new conversation. A turn
            # that fails writes nothing at all.
            state = dict(self.graph.get_state(config).values)
            state.update(incoming=incoming, requested_skill=requested)
            marks["loaded"] = time.perf_counter()
            try:
                # Updates only: every node runs inline in this thread, and text reaches
                # ``on_event`` through ``TurnContext.emit`` (see assistant/graph.py).
                for chunk in self._turn_graph.stream(state, context=turn.context, stream_mode="updates"):
                    for node, update in chunk.items():
                        if not update:
                            continue
                        state.update(update)  # no reducers: each update replaces its keys
                        if node == "route":
                            marks["routed"] = time.perf_counter()
                            turn.skill = update["skill"]
                            turn.route_scores = update.get("route_scores", {})
                            if on_event is not None:
                                on_event("route", turn.skill)
                        if "extras" in update:
                            turn.extras = update["extras"]
                        if node == "guard_out":
                            turn.reply = update["reply"]
                            handoff_reason = update.get("handoff_reason")
                            transcript = update["messages"]
            finally:
                turn.context.cancelled.set()
            # The graph always ends in guard_out; a turn that stopped earlier raised above.
            self.graph.update_state(config, state, as_node="guard_out")
            marks["answered"] = time.perf_counter()
            self.store.record_turn(
                turn.tenant_id,
                turn.conversation_id,
                turn.skill,
                answer_index=len(transcript) - 1 if transcript else None,
                prompt_system=turn.context.prompt_system,
            )
            self._after_turn_handoff(turn, handoff_reason, transcript)
            marks["recorded"] = time.perf_counter()
            for observer in self.turn_observers:
                observer(turn)
            log.info(
                "turn %s skill=%s tokens=%s llm=%.3fs",
                turn.conversation_id,
                turn.skill,
                turn.usage,
                turn.context.llm_seconds,
            )

