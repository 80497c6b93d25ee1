"""The agent graph: guard_in → route → <skill> | out_of_scope | handoff | safety → guard_out.

Nodes come first, then the builder, then the edges, then ``compile()``. Nodes
read the state and the read-only run-time context (``assistant.state``) and
return updates; reducers combine what several nodes add. The committed history
changes only in guard_out, the last node.

Text reaches the caller through the context's event sink (``TurnContext.emit``)
while a skill generates, and route announces the skill the same way. Why a sink
and not LangGraph's "custom" stream mode: with a custom stream, LangGraph runs
every node on a pool thread and relays each token through a second waiter
thread. Without it, each node (one per step here) runs inline in the thread that
runs the turn, so a token goes from the backend to the caller with no thread
hand-off at all. Under load (many turns sharing the cores with the model) every
hand-off is a wait for the scheduler; see benchmarks/bench_vllm.py.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from skills import Decision, Skill, SkillContext

from .errors import TurnAbandoned
from .guards import clean_message
from .handoff import ANGRY_SCORE, frustration, is_affirmative, wants_person
from .llm import GenerationParams, Message
from .prompts import CLIENT_INSTRUCTIONS, EMPTY_REPLY, HANDOFF_REPLY, OUT_OF_SCOPE_REPLY
from .router import OUT_OF_SCOPE, ContextPolicy, EmbeddingRouter, KnowledgeMatch, route_in_context
from .safety import RULES_VERSION, SafetyGuard, safety_reply
from .state import ConversationState, TurnContext

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["build_graph", "HANDOFF", "SAFETY", "TENANT_SKILL", "MAX_FAILURES"]

#: The node a turn goes to when the conversation is (or now becomes) a person's.
HANDOFF = "handoff"
#: The node that answers a crisis or an emergency (assistant.safety), before anything else.
SAFETY = "safety"
#: The node that runs a tenant's data skill (``assistant.tenant_skills``): those are
#: not nodes of their own, since a tenant may add one while the server runs.
TENANT_SKILL = "tenant_skill"
#: Consecutive unanswered turns after which a person is called in.
MAX_FAILURES = 2
#: Most stop sequences a backend takes (the OpenAI API's limit).
MAX_STOP = 4


# -- helpers ------------------------------------------------------------------


def _emitter(turn: TurnContext):
    """A ``say`` function that streams text to the turn's caller and remembers everything said."""
    emit = turn.emit
    said: list[str] = []

    def say(text: str) -> None:
        if text:
            said.append(text)
            if emit is not None:
                emit("delta", text)

    return say, said


def _handoff_reason(state: ConversationState, text: str) -> tuple[str | None, dict]:
    """Should this message go to a person? (reason or None, fields for ``lepton``)."""
    if state.get("handoff_requested") or wants_person(text):
        return "requested", {}
    if state.get("handoff_offered") and is_affirmative(text):
        return "requested", {}
    mood = frustration(text)
    if mood.score == 0:
        return None, {}
    extras = {"sentiment": mood.label, "sentiment_terms": mood.terms}
    if mood.score >= ANGRY_SCORE:
        return "angry", extras
    earlier = [m["content"] for m in state.get("messages", []) if m["role"] == "user"]
    if earlier and frustration(earlier[-1]).score > 0:
        return "repeated_complaint", extras
    return None, extras


def with_client_instructions(messages: Sequence[Message], client: Sequence[str]) -> list[Message]:
    """The prompt a skill built, with the client's system messages (``client``) joined to
    the skill's own system message, after its text; a skill that passed them on itself
    does not get them twice. Without client instructions the prompt is unchanged."""
    if not client:
        return list(messages)
    given = set(client)
    prompt = [m for m in messages if not (m["role"] == "system" and m["content"] in given)]
    block = CLIENT_INSTRUCTIONS.format(instructions="\n\n".join(client))
    if prompt and prompt[0]["role"] == "system":
        return [{"role": "system", "content": prompt[0]["content"] + block}, *prompt[1:]]
    return [{"role": "system", "content": block.lstrip()}, *prompt]


def _params_for(base: GenerationParams, max_tokens: int | None, temperature: float | None,
                stop: Sequence[str] | None) -> GenerationParams:
    """The client's parameters as a skill narrowed them (see ``skills.base.Generate``)."""
    if max_tokens is None and temperature is None and not stop:
        return base
    stops = list(dict.fromkeys([*base.stop, *(stop or ())]))[:MAX_STOP]
    return dataclasses.replace(
        base,
        max_tokens=min(base.max_tokens, max_tokens) if max_tokens else base.max_tokens,
        temperature=base.temperature if temperature is None else temperature,
        stop=stops,
    )


# -- nodes --------------------------------------------------------------------


def make_guard_in(router: EmbeddingRouter, guard: SafetyGuard) -> Callable[..., dict]:
    def guard_in(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        """Clean the turn's new messages and mask card numbers (and, where the tenant asks,
        contact details) before anything stores them, then run the safety guard on the
        user's message (its embedding is kept for route)."""
        incoming = []
        masked = 0
        for message in state["incoming"]:
            text, n = clean_message(message["content"], runtime.context.mask_contacts)
            masked += n
            incoming.append({"role": message["role"], "content": text})
        vector = router.embed([incoming[-1]["content"]])[0]
        update: dict = {"incoming": incoming, "message_vector": vector}
        if masked:
            update["lepton"] = {"masked_card_numbers": masked}
        finding = guard.check(incoming[-1]["content"], vector)
        if finding is not None:
            update.update(safety=finding.level, safety_rule=finding.rule)
        return update

    return guard_in


#: ``(tenant, collection, message, its embedding) -> similarity or None``: how well the
#: tenant's collection matches a message (``Knowledge.best_match``).
KnowledgeSearch = Callable[[str, str, str, "np.ndarray | None"], "float | None"]


def make_route(router: EmbeddingRouter, policy: ContextPolicy, skills: dict[str, Skill],
               knowledge: KnowledgeSearch | None) -> Callable[..., dict]:
    # The skills that answer from a knowledge collection: a message their collection
    # matches well is theirs (router.route_in_context).
    installed = (router, skills, {name: skill.collection for name, skill in skills.items() if skill.collection})

    def route(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        """The safety guard's finding comes first, whatever else holds. A conversation
        waiting for a person stays with the person; a request for a person, anger or a
        repeated complaint hands it over; then an explicitly requested skill wins;
        otherwise the embedding router decides, in the context of the conversation's
        current skill and the tenant's knowledge. A tenant with data skills has its own
        router and skills (the turn's ``view``)."""
        view = runtime.context.view
        router, skills, owners = installed if view is None else (view.router, view.skills, view.owners)
        if state.get("safety"):
            update: dict = {"skill": SAFETY, "route_scores": {}}
        elif state.get("handoff_pending"):
            update = {"skill": HANDOFF, "route_scores": {}}
        else:
            last_user = next(m["content"] for m in reversed(state["incoming"]) if m["role"] == "user")
            reason, extras = _handoff_reason(state, last_user)
            update = {"lepton": extras} if extras else {}
            if reason is not None:
                update.update(skill=HANDOFF, route_scores={}, handoff_reason=reason)
            elif state.get("requested_skill"):
                update.update(skill=state["requested_skill"], route_scores={})
            elif _continues(skills, state, runtime.context.tenant_id, last_user):
                # The message answers what the conversation's skill just asked (its form).
                update.update(skill=state["last_skill"], route_scores={})
            else:
                vector, tenant = state.get("message_vector"), runtime.context.tenant_id
                match: KnowledgeMatch | None = None
                if knowledge is not None:  # the message's embedding serves the search too
                    def match(skill: str, collection: str, message: str) -> float | None:
                        return knowledge(tenant, collection, message, vector)
                decision = route_in_context(
                    router.route(last_user, vector), last_user,
                    current=state.get("last_skill") if state.get("last_skill") in skills else None,
                    policy=policy, owners=owners, knowledge=match)
                update.update(skill=decision.skill, route_scores=decision.scores)
        if runtime.context.emit is not None:
            runtime.context.emit("route", update["skill"])
        return update

    return route


def _continues(skills: dict[str, Skill], state: ConversationState, tenant_id: str, message: str) -> bool:
    """Whether the skill that answered the last turn takes ``message`` as the answer to
    its question (``Skill.continues``); a skill that fails to say is not asked again."""
    current = state.get("last_skill")
    if current not in skills:
        return False
    own = state.get("skill_state", {}).get(current) or {}
    try:
        return bool(own) and skills[current].continues(tenant_id, own, message)
    except Exception:  # a plugin's bug must not break routing
        log.exception("skill %r failed in continues()", current)
        return False


def make_skill_node(skill: Skill) -> Callable[..., dict]:
    def run_skill(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        return skill_turn(skill, state, runtime.context)

    run_skill.__name__ = skill.name
    return run_skill


def tenant_skill(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """Run the tenant's data skill that route chose (it is in the turn's view)."""
    return skill_turn(runtime.context.view.skills[state["skill"]], state, runtime.context)


def skill_turn(skill: Skill, state: ConversationState, turn: TurnContext) -> dict:
    """One turn of ``skill``: its context, its reply, and the state updates they make."""
    say, said = _emitter(turn)
    # What the model calls produce, returned as state updates when the skill is done.
    calls: dict = {"usage": {"prompt_tokens": 0, "completion_tokens": 0}, "llm_seconds": 0.0}

    history = state.get("messages", []) + state["incoming"]
    client_instructions = [m["content"] for m in history if m["role"] == "system" and m["content"].strip()]

    def generate(messages, *, max_tokens=None, temperature=None, stop=None) -> str:  # noqa: ANN001
        params = _params_for(turn.params, max_tokens, temperature, stop)
        messages = with_client_instructions(messages, client_instructions)
        # Only time spent waiting on the model counts as LLM time (not streaming it on).
        started = time.perf_counter()
        window = calls.setdefault("llm_window", [started, started])
        calls["prompt_system"] = next((m["content"] for m in messages if m["role"] == "system"), None)
        generation = turn.llm.stream(messages, params, adapter=turn.adapter_for(skill.name))
        pieces: list[str] = []
        try:
            while not turn.cancelled.is_set():
                piece = next(generation, None)
                calls["llm_seconds"] += time.perf_counter() - started
                if piece is None:
                    break
                pieces.append(piece)
                say(piece)
                started = time.perf_counter()
        finally:
            generation.close()
            window[1] = time.perf_counter()
        calls["usage"]["prompt_tokens"] += generation.prompt_tokens
        calls["usage"]["completion_tokens"] += generation.completion_tokens
        calls["finish_reason"] = generation.finish_reason or "stop"
        return "".join(pieces)

    ctx = SkillContext(
        # Only role and content reach a skill (stored agent messages carry more).
        messages=[{"role": m["role"], "content": m["content"]} for m in history],
        tenant_id=turn.tenant_id,
        conversation_id=turn.conversation_id,
        generate=generate,
        say=say,
        env=turn.envs[skill.name],
        state=dict(state.get("skill_state", {}).get(skill.name, {})),
        max_history=turn.max_history,
        collection=skill.collection,
        user_id=turn.user_id,
        emergency_number=turn.safety_contacts.get("emergency_number", "your local emergency number"),
    )
    reply = skill.respond(ctx)
    if not said:  # a skill that returned its text instead of streaming it
        say(reply.text)
    update = {**calls, "reply": "".join(said), "lepton": reply.extras, "declined": reply.declined,
              "decisions": list(reply.decisions)}
    if reply.handoff:
        update["handoff_reason"] = reply.handoff
    if reply.safety:
        update["safety"] = reply.safety
    if reply.state is not None:
        update["skill_state"] = {**state.get("skill_state", {}), skill.name: dict(reply.state)}
    return update


def _capabilities(skills: Mapping[str, Skill]) -> str:
    return "\n".join(f"- {s.description}" for s in skills.values())


def make_out_of_scope(skills: dict[str, Skill]) -> Callable[..., dict]:
    installed = _capabilities(skills)

    def out_of_scope(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        """Say what the assistant can help with (the tenant's data skills too) instead of guessing."""
        view = runtime.context.view
        capabilities = installed if view is None or not view.data_skills else _capabilities(view.skills)
        say, said = _emitter(runtime.context)
        say(OUT_OF_SCOPE_REPLY.format(capabilities=capabilities))
        return {"reply": "".join(said)}

    return out_of_scope


def safety(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """A crisis or an emergency: the fixed reply with the emergency number (and a crisis
    line), whatever skill was asked for and even while a person has the conversation."""
    level = state["safety"]
    say, said = _emitter(runtime.context)
    say(safety_reply(level, runtime.context.safety_contacts))
    return {"reply": "".join(said),
            "decisions": [Decision("safety", level, {"rule": state["safety_rule"]}, version=RULES_VERSION)]}


def handoff(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """Tell the user a person is coming; once one is, stay silent (the message is
    stored for the agent and the webhook)."""
    if state.get("handoff_pending"):
        return {"reply": ""}
    say, said = _emitter(runtime.context)
    say(HANDOFF_REPLY)
    return {"reply": "".join(said)}


def guard_out(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """Commit the turn: history gains the new messages and the answer, in one write.

    Also counts unanswered turns: the second in a row calls in a person. A turn whose
    client went away is not committed (its answer may have been cut short)."""
    if runtime.context.cancelled.is_set():
        raise TurnAbandoned("the client went away before the answer was complete")
    history = state.get("messages", []) + state["incoming"]
    done = {"incoming": [], "last_skill": state["skill"]}
    if state.get("handoff_pending") and state["skill"] != SAFETY:  # silent: the agent answers
        return {**done, "messages": history, "reply": "", "failures": 0, "handoff_offered": False}
    say, _ = _emitter(runtime.context)
    reply = state.get("reply", "")
    declined = bool(state.get("declined"))
    unanswered = declined or state["skill"] == OUT_OF_SCOPE
    failures = 0 if state["skill"] == SAFETY else state.get("failures", 0) + unanswered
    reason = state.get("handoff_reason")  # from route (the handoff node told the user) or the skill
    if reason is None and failures >= MAX_FAILURES:
        reason = "repeated_failure"
    if reason and state["skill"] != HANDOFF:
        tail = "\n\n" + HANDOFF_REPLY if reply.strip() else HANDOFF_REPLY
        say(tail)
        reply += tail
    if not reply.strip():
        say(EMPTY_REPLY)
        reply = EMPTY_REPLY
    if reason:
        failures = 0
    answer = {"role": "assistant", "content": reply}
    citations = state.get("lepton", {}).get("citations")
    if citations:  # kept with the answer, so a reloaded widget shows them again
        answer["citations"] = citations
    return {
        **done,
        "messages": history + [answer],
        "reply": reply,
        "failures": failures,
        "handoff_offered": declined and not reason,
        "handoff_reason": reason,
    }


# -- builder ------------------------------------------------------------------


def build_graph(skills: dict[str, Skill], router: EmbeddingRouter, guard: SafetyGuard,
                policy: ContextPolicy | None = None, knowledge: KnowledgeSearch | None = None, checkpointer=None):
    builder = StateGraph(ConversationState, context_schema=TurnContext)
    builder.add_node("guard_in", make_guard_in(router, guard))
    builder.add_node("route", make_route(router, policy or ContextPolicy(), skills, knowledge))
    for name, skill in skills.items():
        builder.add_node(name, make_skill_node(skill))
    builder.add_node(TENANT_SKILL, tenant_skill)
    builder.add_node(OUT_OF_SCOPE, make_out_of_scope(skills))
    builder.add_node(HANDOFF, handoff)
    builder.add_node(SAFETY, safety)
    builder.add_node("guard_out", guard_out)

    # Every turn starts by cleaning its input.
    builder.add_edge(START, "guard_in")
    builder.add_edge("guard_in", "route")

    # route stored its decision in state["skill"]: a skill name, out_of_scope, handoff or
    # safety; a name that is not an installed skill's is a tenant's data skill.
    answered_by = [*skills, TENANT_SKILL, OUT_OF_SCOPE, HANDOFF, SAFETY]

    def pick_skill(state: ConversationState) -> str:
        return state["skill"] if state["skill"] in answered_by else TENANT_SKILL

    builder.add_conditional_edges("route", pick_skill, answered_by)

    # Whatever answered, guard_out commits the turn and the graph ends.
    for name in answered_by:
        builder.add_edge(name, "guard_out")
    builder.add_edge("guard_out", END)

    return builder.compile(checkpointer=checkpointer)
