"""The Assistant: builds the parts once and hands each job to the module that does it.

- turns: ``assistant.turns`` (validate with ``start_turn``, run with ``run_turn``);
- the graph: ``assistant.graph``; its state and context: ``assistant.state``;
- handoffs: ``assistant.handoff.HandoffService``;
- adapters: ``assistant.adapters.AdapterLoader`` over the registry;
- knowledge: ``assistant.knowledge.Knowledge`` (Chroma, opened on first search);
- skills' environments and start-up: ``assistant.skill_env``.

The server, the CLI and the benchmarks all use this one object.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Mapping


from retrieval.query_encoder import load_query_encoder
from skills import LoadedSkills, Skill, SkillEnv, load_skills

from .adapters import AdapterLoader, AdapterRegistry, model_identity
from .errors import UnknownSkill
from .graph import build_graph
from .handoff import HandoffService, WebhookNotifier
from .knowledge import Knowledge
from .llm import ChatModel, GenerationParams, Message, create_chat_model
from .router import ContextPolicy, EmbeddingRouter
from .safety import SafetyGuard, contacts_for
from .settings import Settings
from .skill_env import AuditLog, make_env, set_up
from .store import ANY_OWNER, open_store
from .tenant_skills import SkillCatalog
from .turns import AUTO_MODEL, ROLES, TurnRequest, TurnResult, TurnRunner, prepare_turn, thread_config

__all__ = ["Assistant", "AUTO_MODEL", "ROLES", "TurnRequest", "TurnResult"]

log = logging.getLogger(__name__)


class Assistant:
    def __init__(
        self,
        settings: Settings,
        llm: ChatModel,
        skills: LoadedSkills,
        encoder: Any,
        knowledge: Any | None = None,
    ):
        """``skills`` are loaded, not yet set up; ``encoder`` embeds messages for the
        router (``retrieval.query_encoder``); ``knowledge`` is a
        ``retrieval.KnowledgeStore`` to use instead of the settings' one."""
        self.settings = settings
        self.llm = llm
        self.loaded = skills
        # The checkpointer and the store share one connection, so they must share one
        # lock too: with a lock each, concurrent turns (a vLLM backend serves many at
        # once) made SQLite fail with "cannot start a transaction within a transaction".
        # Sharing the store's units also lets a turn commit its state and records at once.
        self.store = open_store(settings)
        saver = self.store.checkpointer()
        self.knowledge = Knowledge(settings, knowledge)
        self.audit = AuditLog(lambda: self.store)
        # Set up first: a skill whose setup fails is left out of routing and the graph.
        self.envs: dict[str, SkillEnv] = set_up(skills, self._env_for)
        self.skills: dict[str, Skill] = skills.skills
        if not self.skills:
            raise UnknownSkill("no skills could be set up: " + "; ".join(f"{k}: {v}" for k, v in skills.failures.items()))
        self.router = EmbeddingRouter(
            encoder, {name: s.examples for name, s in self.skills.items()}, threshold=settings.router_threshold
        )
        self.routing = ContextPolicy(switch=settings.router_switch_threshold,
                                     leave=settings.router_leave_threshold,
                                     knowledge=settings.router_knowledge_threshold)
        self.safety = SafetyGuard(self.router.embed)
        #: Each tenant's skills: the installed ones and its data skills (``lepton skills create``).
        self.catalog = SkillCatalog(self.skills, self.envs, self.router, self.store, self._env_for)
        self.adapters = AdapterRegistry(settings.adapters_dir)
        served = getattr(llm, "model_path", None)
        self.adapter_loader = AdapterLoader(self.adapters, llm, model_identity(served) if served else None)
        webhook = (WebhookNotifier(settings.handoff_webhook_url, settings.handoff_webhook_secret)
                   if settings.handoff_webhook_url else None)
        self.handoffs = HandoffService(self.store, webhook, self._append_message)
        #: The graph with its checkpointer: every read and write of a conversation's state.
        self.graph = build_graph(self.skills, self.router, self.safety, self.routing,
                                 self.knowledge.best_match, saver)
        self.turns = TurnRunner(
            graph=self.graph,
            # The same graph without a checkpointer runs the turns (see assistant.turns).
            turn_graph=build_graph(self.skills, self.router, self.safety, self.routing,
                                   self.knowledge.best_match),
            store=self.store,
            audit=self.audit,
            handoffs=self.handoffs,
            llm=llm,
            skills_for=self.catalog.view,
            adapter_for=self.adapter_loader.adapter_for,
            max_history=settings.max_history_messages,
            safety_contacts=lambda tenant, locale: contacts_for(tenant, locale, settings.safety_contacts,
                                                                settings.safety_locale),
        )

    def _env_for(self, name: str) -> SkillEnv:
        return make_env(self.settings, name, retrieve=self.knowledge.retrieve, audit=self.audit,
                        passage=self.knowledge.passage)

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
            if settings.router_int8:  # search queries keep the float encoder: export it now too
                load_query_encoder(settings.embedding_model).prepare()
            assistant = cls(settings, llm, loaded, encoder, knowledge)
        except BaseException:
            if owned:
                llm.close()  # a managed vLLM must not outlive a failed start
            raise
        assistant._owns_llm = owned
        return assistant

    #: Whether close() also closes the backend (true when from_settings made it, e.g.
    #: a managed vLLM child that must not outlive the assistant).
    _owns_llm = False

    def close(self) -> None:
        self.store.close()
        if self._owns_llm:
            self.llm.close()

    # -- turns ------------------------------------------------------------------
    def skills_of(self, tenant_id: str | None = None) -> Mapping[str, Skill]:
        """A tenant's skills: the installed ones, then its data skills (``lepton skills create``)."""
        return self.catalog.view(tenant_id or self.settings.default_tenant).skills

    def model_names(self, tenant_id: str | None = None) -> list[str]:
        """The ``model`` ids a tenant may ask for: automatic routing, then its skills."""
        return [AUTO_MODEL, *self.skills_of(tenant_id)]

    def start_turn(
        self,
        messages: list[Message],
        *,
        model: str = AUTO_MODEL,
        conversation_id: str | None = None,
        tenant_id: str | None = None,
        params: GenerationParams | None = None,
        handoff: bool = False,
        locale: str | None = None,
        user: str | None = None,
        user_trusted: bool = True,
        owner: str | None = None,
    ) -> TurnRequest:
        """Validate a turn; raises before anything is stored. ``handoff=True`` asks for a
        person (the widget's button) whatever the message says; ``locale`` picks the
        emergency number of the safety guard's replies. Without ``conversation_id``, a
        resent history continues its stored conversation (``prepare_turn``); ``user``
        keeps end users apart there, and skills see it as ``ctx.user_id`` when
        ``user_trusted`` (the integrator's server sent it, not a public widget key). A new
        conversation belongs to ``owner`` (``TurnRequest.owner``); only its owner continues it."""
        view = self.catalog.view(tenant_id or self.settings.default_tenant)
        request = prepare_turn(
            messages,
            model=model,
            skills=view.skills,
            require_conversation=self.store.require_conversation,
            tenant_id=tenant_id or self.settings.default_tenant,
            conversation_id=conversation_id,
            params=params or self.params(),
            handoff=handoff,
            max_message_chars=self.settings.max_message_chars,
            locale=locale,
            user=user,
            find_continuation=self.store.continuation,
            user_trusted=user_trusted,
            owner=owner,
            mask_contacts=self.settings.masks_contacts(tenant_id or self.settings.default_tenant),
            max_messages=self.settings.max_messages,
        )
        return dataclasses.replace(request, view=view)

    def params(self, **values: Any) -> GenerationParams:
        """Generation parameters: ``values`` (max_tokens, temperature, top_p, stop), with the
        configured answer length and repetition control for what they leave out."""
        defaults = {"max_tokens": self.settings.max_tokens, "repetition_penalty": self.settings.repetition_penalty,
                    "no_repeat_ngram_size": self.settings.no_repeat_ngram_size}
        return GenerationParams(**{**defaults, **{k: v for k, v in values.items() if v is not None}})

    def run_turn(self, request: TurnRequest, on_event=None, **options) -> TurnResult:  # noqa: ANN001
        """Run a validated turn (see ``TurnRunner.run``: ``cancelled=``, ``marks=``)."""
        return self.turns.run(request, on_event, **options)

    @property
    def turn_observers(self) -> list[Callable[[TurnResult], None]]:
        """Called with every completed TurnResult (metrics, benchmarks); must not raise."""
        return self.turns.observers

    # -- conversations ----------------------------------------------------------
    def history(self, tenant_id: str, conversation_id: str, owner: object = ANY_OWNER) -> list[Message]:
        """The stored messages; ConversationNotFound unless the tenant has the conversation
        and (when ``owner`` is given, None meaning keyless) it is ``owner``'s."""
        self.store.require_conversation(tenant_id, conversation_id, owner)
        state = self.graph.get_state(thread_config(tenant_id, conversation_id))
        return list(state.values.get("messages", []))

    def _append_message(self, tenant_id: str, conversation_id: str, message: dict[str, Any]) -> int:
        """Append to the stored history; returns the message's index in it."""
        config = thread_config(tenant_id, conversation_id)
        with self.turns.lock_for(tenant_id, conversation_id):
            history = list(self.graph.get_state(config).values.get("messages", []))
            # Written as guard_out, the graph's last node: nothing runs after it.
            self.graph.update_state(config, {"messages": history + [message]}, as_node="guard_out")
        return len(history)

    # -- handoffs (assistant.handoff.HandoffService) ------------------------------
    def handoff_state(self, tenant_id: str, conversation_id: str | None) -> dict[str, Any]:
        return self.handoffs.state(tenant_id, conversation_id)

    def agent_reply(self, tenant_id: str, conversation_id: str, content: str, agent: str | None = None) -> int:
        return self.handoffs.agent_reply(tenant_id, conversation_id, content, agent)

    def release_handoff(self, tenant_id: str, conversation_id: str) -> dict[str, Any]:
        return self.handoffs.release(tenant_id, conversation_id)

    # -- knowledge --------------------------------------------------------------
    def ensure_demo_knowledge(self, progress: Callable[[str], None] | None = print) -> bool:
        """Fill the default tenant's help centre with the demo articles (see ``Knowledge.ensure_demo``)."""
        return self.knowledge.ensure_demo(self.settings.default_tenant, progress)

    def ensure_demo_data(self, progress: Callable[[str], None] | None = print) -> None:
        """What a fresh install's demo tenant needs: the demo help centre and, when the
        ``demo_skills`` setting is on, each skill's own demo data (``Skill.prepare_demo``,
        e.g. the credit model). A skill whose demo fails is logged; the server still starts."""
        self.ensure_demo_knowledge(progress)
        for skill in self.skills.values():
            if skill.collection and self.settings.demo_knowledge:
                try:
                    self.knowledge.ensure_documents(self.settings.default_tenant, skill.collection,
                                                    skill.demo_documents, progress)
                except Exception:  # a plugin's demo must never stop the server
                    log.exception("skill %r could not load its demo documents", skill.name)
        if not self.settings.demo_skills:
            return
        for name, skill in self.skills.items():
            try:
                skill.prepare_demo(self.envs[name], progress)
            except Exception:  # a plugin's demo must never stop the server
                log.exception("skill %r could not prepare its demo data", name)
