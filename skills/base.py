"""The Skill contract (version 2): what a skill provides, what it is given, and what it returns.

A skill is one object found through the ``lepton.skills`` entry-point group
(``skills.registry``). It provides:

- ``name``, ``description``, routing ``examples`` and a ``system_prompt``;
- ``collection``: the knowledge collection it retrieves from, if any;
- ``setup(env)``: called once per process before the first turn or command,
  with the skill's :class:`SkillEnv` (its data folder, options, retrieval and
  audit writer); load trained models here, not at import time;
- ``respond(ctx)``: one turn. ``ctx`` is a :class:`SkillContext`: the conversation,
  the tenant, the skill's own state from its previous turn, ``generate`` (the
  model, streamed to the user) and ``say`` (fixed text, streamed to the user). It
  returns a :class:`SkillReply`: the text, extras for the response's ``lepton``
  object, typed control results (declined, handoff, safety), the skill's new
  state, and the decisions it made (written to the audit log);
- ``continues(tenant_id, state, message)``: optional; True keeps a message that
  answers the skill's last question with the skill (routing does not move it);
- ``prepare_demo(env, progress)``: optional demo data for the default tenant, made
  once on a fresh install's first ``lepton serve`` (the credit model of the demo);
- ``commands()``: an optional click group, mounted as ``lepton <group name> …``;
  its commands reach the skill's environment with ``self.cli_env()``;
- ``actions()``: optional typed JSON actions (:class:`SkillAction`), served at
  ``POST /v1/skills/<skill>/<action>`` under the caller's tenant.

Adapters are not the skill's business: ``generate`` answers with the adapter the
registry has active for the skill (``lepton finetune``), or the base model.

Nothing here imports ``assistant`` or ``server``: skills sit below them. A skill
is unit-tested without a server with :mod:`skills.testing`. See
docs/writing-a-skill.md for a worked example.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import click
    from pydantic import BaseModel

    from retrieval import Hit

__all__ = [
    "Skill",
    "SkillContext",
    "SkillReply",
    "SkillEnv",
    "SkillAction",
    "ActionCall",
    "Decision",
    "Retrieve",
    "Passage",
    "AuditWriter",
    "Generate",
    "SafetyLevel",
    "NAME_PATTERN",
    "RESERVED_NAMES",
    "RESERVED_EXTRAS",
]

#: Skill names appear in URLs and as OpenAI ``model`` ids.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,48}$")
#: Names the assistant itself uses: automatic routing, and the graph's own nodes.
RESERVED_NAMES = ("assistant", "out_of_scope", "handoff", "safety", "tenant_skill")
#: Keys of the response's ``lepton`` object that the assistant fills itself; the
#: typed fields of :class:`SkillReply` set the control ones.
RESERVED_EXTRAS = ("skill", "conversation_id", "handoff", "declined", "safety")

Message = dict[str, str]
SafetyLevel = Literal["crisis", "emergency"]
SearchMode = Literal["hybrid", "dense", "bm25"]


class Retrieve(Protocol):
    """Searches one tenant's knowledge collection; best hits first.

    Raises ``retrieval.CollectionNotFoundError`` when the tenant has no such
    collection; other ``retrieval.RetrievalError``s mean the store failed (the
    turn then fails with a 503)."""

    def __call__(
        self, tenant_id: str, collection: str, query: str, *, k: int = 5, mode: SearchMode = "hybrid"
    ) -> list[Hit]: ...


class Passage(Protocol):
    """The text of a hit's document from the hit onward, at most ``chars`` characters,
    cut at a sentence end (see ``retrieval.Retriever.passage``)."""

    def __call__(self, tenant_id: str, collection: str, hit: Hit, *, chars: int = 900) -> str: ...


@dataclass(frozen=True)
class Decision:
    """A decision a skill made, for the audit log.

    The assistant adds the skill, tenant, conversation and time when it writes it.
    ``inputs`` summarises what the decision was based on (feature values, scores,
    matched rules), never raw personal data such as names or card numbers.
    """

    #: What was decided, e.g. "intent_action", "triage_level", "credit_decision".
    kind: str
    #: The outcome, JSON-serialisable: "approve", {"level": "urgent"}, ...
    outcome: Any
    inputs: Mapping[str, Any] = field(default_factory=dict)
    #: Version of the model or rules that decided (e.g. a trained model's hash).
    version: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "outcome": self.outcome, "inputs": dict(self.inputs), "version": self.version}


class AuditWriter(Protocol):
    """Writes one decision to the tenant's audit log (``lepton audit export``)."""

    def __call__(self, tenant_id: str, skill: str, decision: Decision, *, conversation_id: str | None = None) -> None: ...


@dataclass(frozen=True)
class SkillEnv:
    """What a skill is given once per process: by ``setup()``, and in every turn as ``ctx.env``."""

    #: The skill's name.
    name: str
    #: The skill's own folder: ``<data dir>/skills/<name>/``. Created on first use.
    data_dir: Path
    #: The skill's options from settings (``LEPTON_SKILL_OPTIONS``: {"<skill>": {...}}).
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Knowledge search, or None where no knowledge store is configured.
    retrieve: Retrieve | None = None
    #: Reads on from a hit in its document, or None (``ctx.passage`` then quotes the hit alone).
    passage: Passage | None = None
    #: Audit-log writer; decisions returned in ``SkillReply.decisions`` are written for you.
    audit: AuditWriter | None = None
    #: The tenant of keyless use (commands default to it).
    default_tenant: str = "default"

    def tenant_dir(self, tenant_id: str) -> Path:
        """The tenant's folder inside the skill's data folder (not created here).

        Any tenant id works: characters a file name cannot safely hold are
        percent-encoded, so "Acme Corp" is ``tenants/Acme%20Corp``."""
        folder = quote(tenant_id, safe="-_.")
        if folder in ("", ".", ".."):
            raise ValueError(f"tenant id {tenant_id!r} cannot name a folder")
        return self.data_dir / "tenants" / folder


class Generate(Protocol):
    """Streams the model's answer to ``messages`` to the user and returns the full text.

    ``max_tokens`` can only shorten the answer the client allowed; ``temperature``
    replaces the client's; ``stop`` sequences are added to the client's (at most 4 in all)."""

    def __call__(
        self,
        messages: list[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
    ) -> str: ...


@dataclass
class SkillReply:
    """What a skill answered in one turn."""

    #: The reply's text. A skill that streamed its reply with ``ctx.say``/``ctx.generate``
    #: returns the same text here; a skill that streamed nothing has this said for it.
    text: str = ""
    #: Skill-specific fields for the response's ``lepton`` object (citations, intent, ...).
    #: The keys in RESERVED_EXTRAS belong to the assistant.
    extras: dict[str, Any] = field(default_factory=dict)
    #: The skill could not help and offered a person; two such turns in a row call one in.
    declined: bool = False
    #: Hand the conversation to a person now, for this reason (the assistant tells the user).
    handoff: str | None = None
    #: The message is a crisis or a medical emergency (``lepton.safety``).
    safety: SafetyLevel | None = None
    #: The skill's state for its next turn in this conversation (JSON-serialisable).
    #: None keeps the current state; ``{}`` clears it.
    state: dict[str, Any] | None = None
    #: Decisions made this turn; each is written to the audit log.
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        clash = sorted(set(self.extras) & set(RESERVED_EXTRAS))
        if clash:
            raise ValueError(
                f"SkillReply.extras may not set {', '.join(clash)}: use the typed fields "
                "(declined=, handoff=, safety=) instead"
            )
        if self.safety not in (None, "crisis", "emergency"):
            raise ValueError(f"SkillReply.safety must be 'crisis', 'emergency' or None, not {self.safety!r}")
        if self.state is not None:
            try:
                json.dumps(self.state)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"SkillReply.state must be JSON-serialisable: {exc}") from None


@dataclass(frozen=True)
class SkillContext:
    """Everything a skill may use during one turn."""

    #: The conversation so far, oldest first; the last entry is the new user message.
    messages: list[Message]
    #: Tenant the conversation belongs to; every lookup a skill makes is scoped to it.
    tenant_id: str
    #: Streams the model's answer to the user; returns the full text (see ``Generate``).
    generate: Generate
    #: Sends fixed text to the user (a disclaimer, a question) as part of the reply.
    say: Callable[[str], None]
    #: The skill's environment (the same object ``setup`` received).
    env: SkillEnv
    #: The conversation's id (for audit records; never a secret to show).
    conversation_id: str = ""
    #: The state this skill returned in its previous turn of this conversation ({} at first).
    state: Mapping[str, Any] = field(default_factory=dict)
    #: How many past messages to show the model.
    max_history: int = 20
    #: The collection ``retrieve`` searches when none is named (the skill's ``collection``).
    collection: str | None = None
    #: The end user as the integrator's server names them (the request's OpenAI ``user``
    #: field), or None. Keyless calls set it; a widget's ``user`` only with the hash the
    #: shop's server signed it with (``lepton.user_hash``), since anyone can write an id
    #: into a public page.
    user_id: str | None = None
    #: What to call in an emergency where the user is (from their locale and the tenant's
    #: ``safety_contacts``), e.g. "999 (or 112)".
    emergency_number: str = "your local emergency number"

    @property
    def user_message(self) -> str:
        return self.messages[-1]["content"]

    @property
    def can_retrieve(self) -> bool:
        return self.env.retrieve is not None

    def retrieve(self, query: str, *, collection: str | None = None, k: int = 5, mode: SearchMode = "hybrid") -> list[Hit]:
        """Search this tenant's ``collection`` (default: the skill's own) for ``query``."""
        if self.env.retrieve is None:
            raise RuntimeError("no knowledge store is available here (check ctx.can_retrieve first)")
        name = collection or self.collection
        if name is None:
            raise ValueError(f"skill {self.env.name!r} has no collection; pass collection=")
        return self.env.retrieve(self.tenant_id, name, query, k=k, mode=mode)

    def passage(self, hit: Hit, *, chars: int = 900, collection: str | None = None) -> str:
        """What ``hit``'s document says from the hit onward, at most ``chars`` characters,
        ending at a sentence end: the text an answer that quotes the knowledge shows."""
        name = collection or self.collection
        if self.env.passage is None or name is None:
            from retrieval.search import chunk_body, cut_at_sentence

            return cut_at_sentence(chunk_body(hit.text, hit.metadata), chars)
        return self.env.passage(self.tenant_id, name, hit, chars=chars)

    def history(self) -> list[Message]:
        """The latest messages, trimmed to ``max_history``, system messages first."""
        system = [m for m in self.messages if m["role"] == "system"]
        chat = [m for m in self.messages if m["role"] != "system"]
        return system + chat[-self.max_history :]


@dataclass(frozen=True)
class ActionCall:
    """Who calls a skill action: the tenant (from the caller's key) and the skill's environment."""

    tenant_id: str
    env: SkillEnv


@dataclass(frozen=True)
class SkillAction:
    """A typed JSON action: ``POST /v1/skills/<skill>/<name>`` with an ``input`` body.

    ``run(call, body)`` gets the validated ``input`` model and returns an
    ``output`` model. It runs on a worker thread; a ``ValueError`` it raises is
    shown to the caller as a 400 with its message."""

    name: str
    input: type[BaseModel]
    output: type[BaseModel]
    run: Callable[[ActionCall, Any], Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,48}", self.name):
            raise ValueError(f"action name {self.name!r} must be a-z, 0-9, _ and -, starting with a letter")


@dataclass
class Skill:
    """A built-in or third-party skill. Subclass and override ``respond`` for real behaviour.

    ``skills.registry`` gives every assistant (and every CLI run) its own copy of a
    skill object (``dataclasses.replace``), so what ``setup`` loads belongs to it."""

    name: str
    description: str
    #: Messages a user might send that this skill should handle; the router's training data.
    examples: list[str]
    system_prompt: str
    #: Knowledge collection the skill retrieves from, if any.
    collection: str | None = None
    _env: SkillEnv | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"skill name {self.name!r} must be 2-49 characters of a-z, 0-9 and _, starting with a letter"
            )
        if self.name in RESERVED_NAMES:
            raise ValueError(f"skill name {self.name!r} is reserved ({', '.join(RESERVED_NAMES)})")
        if len(self.examples) < 3:
            raise ValueError(f"skill {self.name!r} needs at least 3 routing examples")

    # -- lifecycle --------------------------------------------------------------
    def setup(self, env: SkillEnv) -> None:
        """Called once per process before the first turn, command or action. Subclasses
        that override it call ``super().setup(env)`` first."""
        self._env = env

    @property
    def env(self) -> SkillEnv:
        if self._env is None:
            raise RuntimeError(f"skill {self.name!r} was used before setup(env)")
        return self._env

    def fresh(self) -> "Skill":
        """A new, not yet set-up copy of this skill (the registry's per-assistant instance)."""
        return dataclasses.replace(self)

    # -- a turn -----------------------------------------------------------------
    def respond(self, ctx: SkillContext) -> SkillReply:
        """Default behaviour: answer with the model under the skill's system prompt."""
        prompt = [{"role": "system", "content": self.system_prompt}]
        prompt += [m for m in ctx.history() if m["role"] != "system"]
        return SkillReply(text=ctx.generate(prompt))

    def continues(self, tenant_id: str, state: Mapping[str, Any], message: str) -> bool:
        """Whether ``message`` answers what this skill asked in the conversation's last
        turn (``state`` is the state it returned then, never empty here). Asked before
        routing, only when this skill answered the last turn; True keeps the message
        with the skill whatever the router would say (the safety guard, handoffs and an
        explicitly requested skill still come first). A form-filling skill returns True
        when the message parses as an answer to its question, so "I missed a payment
        last year" stays with a credit application instead of going to customer service.
        Default: False, the router decides."""
        return False

    def demo_documents(self) -> list:
        """Documents (``retrieval.Document``) for the default tenant's ``collection`` on a
        fresh install's first ``lepton serve``, when the ``demo_knowledge`` setting is on
        and the collection does not exist yet (e.g. the triage skill's MedlinePlus topics).
        Default: none."""
        return []

    def prepare_demo(self, env: SkillEnv, progress: Callable[[str], None] | None = None) -> bool:
        """Prepare the default tenant's demo data (``env.default_tenant``) on a fresh
        install's first ``lepton serve``; True when it did something. Runs only when the
        ``demo_skills`` setting is on; must do nothing when the data is already there."""
        return False

    # -- extensions -------------------------------------------------------------
    def commands(self) -> "click.Group | None":
        """A click group mounted as ``lepton <group name> …``, or None."""
        return None

    def cli_env(self) -> SkillEnv:
        """Inside one of this skill's CLI commands: its environment (set up on first use).

        The ``lepton`` CLI puts an object with a ``skill_env(skill)`` method on the
        root click context; skills never see the assistant's settings."""
        if self._env is None:
            import click

            source = click.get_current_context().find_root().obj
            if source is None or not hasattr(source, "skill_env"):
                raise RuntimeError(f"skill {self.name!r}: its commands run under the lepton CLI")
            source.skill_env(self)  # calls self.setup(env)
        return self.env

    def actions(self) -> Sequence[SkillAction]:
        """Typed JSON actions served at ``POST /v1/skills/<name>/<action>``."""
        return ()
