"""The Skill contract: what a plugin provides and what it receives per turn.

A skill is an object with a name, a description, routing examples, a system
prompt, optionally a knowledge collection and an adapter name, and a
``respond(ctx)`` method that turns the conversation into a reply. Skills never
talk to the LLM backend directly: ``ctx.generate`` streams the model's tokens to
the user and returns the full text, so every skill streams the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["Skill", "SkillContext", "SkillReply", "NAME_PATTERN"]

#: Skill names appear in URLs and as OpenAI ``model`` ids.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,48}$")
#: Names the assistant itself uses: automatic routing, and the graph's own nodes.
RESERVED_NAMES = ("assistant", "out_of_scope", "handoff")

Message = dict[str, str]


@dataclass
class SkillReply:
    """What a skill answered. ``extras`` go into the response's ``lepton`` object.

    Two extras steer the conversation: ``declined: True`` (the skill could not
    answer and offered a person; two in a row call one in) and ``handoff:
    "<reason>"`` (hand the conversation to a person now; the assistant tells the
    user, so the skill may say nothing).
    """

    text: str
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class SkillContext:
    """Everything a skill may use during one turn."""

    #: The conversation so far, oldest first; the last entry is the new user message.
    messages: list[Message]
    #: Tenant the conversation belongs to; every lookup a skill makes is scoped to it.
    tenant_id: str
    #: Streams the model's answer to ``messages`` to the user; returns the full text.
    generate: Callable[..., str]
    #: Sends fixed text to the user (a disclaimer, a question) as part of the reply.
    say: Callable[[str], None]
    #: How many past messages to show the model.
    max_history: int = 20
    #: Searches the tenant's knowledge: ``retrieve(query, collection, k, mode="hybrid")``
    #: returns ``retrieval.Hit`` objects, best first (``hit.citation`` says where each is
    #: from). Raises ``retrieval.CollectionNotFoundError`` when the tenant has no such
    #: collection. None where no knowledge store is available (some embedders, tests).
    retrieve: Callable[..., list[Any]] | None = None
    #: The data directory, where a skill finds what the tenant trained for it
    #: (e.g. ``intents/<tenant>/<skill>.pkl``). None in some embedders and tests.
    data_dir: Path | None = None

    @property
    def user_message(self) -> str:
        return self.messages[-1]["content"]

    def history(self) -> list[Message]:
        """The latest messages, trimmed to ``max_history``, system messages first."""
        system = [m for m in self.messages if m["role"] == "system"]
        chat = [m for m in self.messages if m["role"] != "system"]
        return system + chat[-self.max_history :]


@dataclass
class Skill:
    """A built-in or third-party skill. Subclass and override ``respond`` for real behaviour."""

    name: str
    description: str
    #: Messages a user might send that this skill should handle; the router's training data.
    examples: list[str]
    system_prompt: str
    #: Knowledge collection the skill retrieves from, if any.
    collection: str | None = None
    #: LoRA adapter the skill's answers use, if one is registered.
    adapter: str | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise ValueError(
                f"skill name {self.name!r} must be 2-49 characters of a-z, 0-9 and _, starting with a letter"
            )
        if self.name in RESERVED_NAMES:
            raise ValueError(f"skill name {self.name!r} is reserved ({', '.join(RESERVED_NAMES)})")
        if len(self.examples) < 3:
            raise ValueError(f"skill {self.name!r} needs at least 3 routing examples")

    def respond(self, ctx: SkillContext) -> SkillReply:
        """Default behaviour: answer with the model under the skill's system prompt."""
        prompt = [{"role": "system", "content": self.system_prompt}]
        prompt += [m for m in ctx.history() if m["role"] != "system"]
        return SkillReply(text=ctx.generate(prompt, adapter=self.adapter))

