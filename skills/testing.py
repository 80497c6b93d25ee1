"""Unit-test a skill's ``respond`` without a server, a model or a database.

::

    from skills.testing import ScriptedModel, SkillHarness

    harness = SkillHarness(my_skill, tmp_path, model=ScriptedModel(["Hello!"]))
    turn = harness.send("hi")
    assert turn.reply.text == "Hello!" and turn.said == "Hello!"
    second = harness.send("and again?")       # the skill gets back the state it returned

The harness calls ``setup`` once with a :class:`~skills.base.SkillEnv` whose data
folder lies under the given directory, keeps the conversation and the skill's
state between ``send`` calls the way the assistant does, and records every
prompt the skill gave the model and every decision it reported (``audited``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .base import Decision, Passage, Retrieve, Skill, SkillContext, SkillEnv, SkillReply

__all__ = ["ScriptedModel", "SkillHarness", "HarnessTurn"]


@dataclass
class ScriptedModel:
    """Answers each ``generate`` call with the next scripted text (the last one repeats).

    ``calls`` records, per call, the messages and the generation options the skill asked for."""

    answers: Sequence[str] = ("",)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, messages, *, max_tokens=None, temperature=None, stop=None) -> str:  # noqa: ANN001
        self.calls.append({"messages": [dict(m) for m in messages], "max_tokens": max_tokens,
                           "temperature": temperature, "stop": list(stop or [])})
        text = self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]
        for s in stop or ():
            if s in text:
                text = text[: text.index(s)]
        return text


@dataclass
class HarnessTurn:
    reply: SkillReply
    #: Everything streamed to the user this turn (``say`` and ``generate``), joined.
    said: str


class SkillHarness:
    """Runs turns of one skill the way the assistant's graph does (see the module docstring)."""

    def __init__(
        self,
        skill: Skill,
        data_dir: str | Path,
        *,
        model: Callable[..., str] | None = None,
        retrieve: Retrieve | None = None,
        passage: Passage | None = None,
        options: Mapping[str, Any] | None = None,
        tenant_id: str = "default",
        conversation_id: str = "conv_test",
        user_id: str | None = None,
        emergency_number: str = "999",
    ):
        self.skill = skill.fresh()
        self.model = model or ScriptedModel()
        self.tenant_id = tenant_id
        self.conversation_id = conversation_id
        self.user_id = user_id
        self.emergency_number = emergency_number
        self.messages: list[dict[str, str]] = []
        self.state: dict[str, Any] = {}
        self.audited: list[Decision] = []
        self.env = SkillEnv(
            name=skill.name,
            data_dir=Path(data_dir) / "skills" / skill.name,
            options=dict(options or {}),
            retrieve=retrieve,
            passage=passage,
            audit=lambda tenant, name, decision, conversation_id=None: self.audited.append(decision),
            default_tenant=tenant_id,
        )
        self.skill.setup(self.env)

    def send(self, text: str, *, history: Iterable[dict[str, str]] = ()) -> HarnessTurn:
        """One user message; ``history`` adds messages before it (e.g. a client system message)."""
        self.messages.extend(dict(m) for m in history)
        self.messages.append({"role": "user", "content": text})
        said: list[str] = []

        def generate(messages, *, max_tokens=None, temperature=None, stop=None) -> str:  # noqa: ANN001
            answer = self.model(messages, max_tokens=max_tokens, temperature=temperature, stop=stop)
            said.append(answer)
            return answer

        ctx = SkillContext(
            messages=list(self.messages),
            tenant_id=self.tenant_id,
            generate=generate,
            say=said.append,
            env=self.env,
            conversation_id=self.conversation_id,
            state=dict(self.state),
            collection=self.skill.collection,
            user_id=self.user_id,
            emergency_number=self.emergency_number,
        )
        reply = self.skill.respond(ctx)
        if not said and reply.text:
            said.append(reply.text)
        if reply.state is not None:
            self.state = dict(reply.state)
        self.audited.extend(reply.decisions)
        self.messages.append({"role": "assistant", "content": "".join(said)})
        return HarnessTurn(reply, "".join(said))
