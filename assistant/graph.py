"""The agent graph: guard_in → route → <skill> → guard_out.

Nodes come first, then the builder, then the edges, then ``compile()``. Tokens
reach the caller through the turn's ``emit`` callback (``TurnContext.emit``) while
a skill generates; the committed history changes only in guard_out, the last node.

Why a callback and not LangGraph's "custom" stream mode: with a custom stream,
LangGraph runs every node on a pool thread and relays each token through a second
waiter thread to the thread iterating the stream. With "updates" only, each node
(one per step here) runs inline in the thread that runs the turn, so a token goes
from the backend to the caller with no thread hand-off at all. Under load (many
turns sharing the cores with the model) every hand-off is a wait for the
scheduler; see benchmarks/bench_vllm.py.
"""

from __future__ import annotations

import time
from typing import Callable

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from skills import Skill, SkillContext

from .errors import TurnAbandoned
from .guards import clean_text, mask_card_numbers
from .handoff import ANGRY_SCORE, frustration, is_affirmative, wants_person
from .prompts import EMPTY_REPLY, HANDOFF_REPLY, OUT_OF_SCOPE_REPLY
from .router import OUT_OF_SCOPE, EmbeddingRouter
from .state import ConversationState, TurnContext

__all__ = ["build_graph", "HANDOFF"]

#: The node a turn goes to when the conversation is (or now becomes) a person's.
HANDOFF = "handoff"
#: Consecutive unanswered turns after which a person is called in.
MAX_FAILURES = 2


# -- nodes --------------------------------------------------------------------


def guard_in(state: ConversationState) -> dict:
    """Clean the turn's new messages and mask card numbers before anything stores them."""
    incoming = []
    masked = 0
    for message in state["incoming"]:
        text, n = mask_card_numbers(clean_text(message["content"]))
        masked += n
        incoming.append({"role": message["role"], "content": text})
    extras = {"masked_card_numbers": masked} if masked else {}
    return {"incoming": incoming, "reply": "", "extras": extras, "handoff_reason": None}


def _handoff_reason(state: ConversationState, turn: TurnContext, text: str) -> tuple[str | None, dict]:
    """Should this message go to a person? (reason or None, fields for ``lepton``)."""
    if turn.handoff_requested or wants_person(text):
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


def make_route(router: EmbeddingRouter) -> Callable[..., dict]:
    def route(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        """A conversation waiting for a person stays with the person; a request for a
        person, anger or a repeated complaint hands it over; then an explicitly
        requested skill wins; otherwise the embedding router decides."""
        turn = runtime.context
        if turn.handoff_pending:
            return {"skill": HANDOFF, "route_scores": {}}
        last_user = next(m["content"] for m in reversed(state["incoming"]) if m["role"] == "user")
        reason, extras = _handoff_reason(state, turn, last_user)
        update: dict = {"extras": {**state.get("extras", {}), **extras}} if extras else {}
        if reason is not None:
            return {**update, "skill": HANDOFF, "route_scores": {}, "handoff_reason": reason}
        if state.get("requested_skill"):
            return {**update, "skill": state["requested_skill"], "route_scores": {}}
        decision = router.route(last_user)
        return {**update, "skill": decision.skill, "route_scores": decision.scores}

    return route


def handoff(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """Tell the user a person is coming; once one is, stay silent (the message is
    stored for the agent and the webhook)."""
    if runtime.context.handoff_pending:
        return {"reply": ""}
    say, said = _emitter(runtime.context)
    say(HANDOFF_REPLY)
    return {"reply": "".join(said)}


def _emitter(turn: TurnContext):
    """A ``say`` function that streams text to the turn's caller and remembers everything said."""
    emit = turn.emit
    said: list[str] = []

    def say(text: str) -> None:
        if text:
            said.append(text)
            if emit is not None:
                emit(text)

    return say, said


def make_skill_node(skill: Skill) -> Callable[..., dict]:
    def run_skill(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        turn = runtime.context
        say, said = _emitter(turn)

        def generate(messages, adapter=None) -> str:
            # Only time spent waiting on the model counts as LLM time (not streaming it on).
            started = time.perf_counter()
            if not turn.llm_window:
                turn.llm_window[:] = [started, started]
            turn.prompt_system = next((m["content"] for m in messages if m["role"] == "system"), None)
            if adapter is None and turn.adapter_for is not None:
                adapter = turn.adapter_for(skill.name)
            generation = turn.llm.stream(messages, turn.params, adapter=adapter)
            pieces: list[str] = []
            try:
                while not turn.cancelled.is_set():
                    piece = next(generation, None)
                    turn.llm_seconds += time.perf_counter() - started
                    if piece is None:
                        break
                    pieces.append(piece)
                    say(piece)
                    started = time.perf_counter()
            finally:
                generation.close()
                turn.llm_window[1] = time.perf_counter()
            turn.usage["prompt_tokens"] += generation.prompt_tokens
            turn.usage["completion_tokens"] += generation.completion_tokens
            turn.finish_reason = generation.finish_reason or "stop"
            return "".join(pieces)

        ctx = SkillContext(
            # Only role and content reach a skill (stored agent messages carry more).
            messages=[{"role": m["role"], "content": m["content"]} for m in state.get("messages", []) + state["incoming"]],
            tenant_id=turn.tenant_id,
            generate=generate,
            say=say,
            max_history=turn.max_history,
            retrieve=turn.retrieve,
            data_dir=turn.data_dir,
        )
        reply = skill.respond(ctx)
        if not said:  # a skill that returned its text instead of streaming it
            say(reply.text)
        return {"reply": "".join(said), "extras": {**state.get("extras", {}), **reply.extras}}

    run_skill.__name__ = skill.name
    return run_skill


def make_out_of_scope(skills: dict[str, Skill]) -> Callable[..., dict]:
    capabilities = "\n".join(f"- {s.description}" for s in skills.values())

    def out_of_scope(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
        """Say what the assistant can help with instead of guessing."""
        say, said = _emitter(runtime.context)
        say(OUT_OF_SCOPE_REPLY.format(capabilities=capabilities))
        return {"reply": "".join(said)}

    return out_of_scope


def guard_out(state: ConversationState, runtime: Runtime[TurnContext]) -> dict:
    """Commit the turn: history gains the new messages and the answer, in one write.

    Also counts unanswered turns: the second in a row calls in a person. A turn whose
    client went away is not committed (its answer may have been cut short)."""
    if runtime.context.cancelled.is_set():
        raise TurnAbandoned("the client went away before the answer was complete")
    history = state.get("messages", []) + state["incoming"]
    if runtime.context.handoff_pending:  # silent: the agent answers
        return {"messages": history, "incoming": [], "reply": "", "failures": 0, "handoff_offered": False}
    say, _ = _emitter(runtime.context)
    reply = state.get("reply", "")
    extras = state.get("extras", {})
    declined = bool(extras.get("declined"))
    failures = state.get("failures", 0) + (declined or state["skill"] == OUT_OF_SCOPE)
    reason = state.get("handoff_reason")  # set by route; the handoff node told the user
    if reason is None and extras.get("handoff"):
        reason = str(extras["handoff"])  # the skill asked for a person
    elif reason is None and failures >= MAX_FAILURES:
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
    if extras.get("citations"):  # kept with the answer, so a reloaded widget shows them again
        answer["citations"] = extras["citations"]
    history = history + [answer]
    return {
        "messages": history,
        "incoming": [],
        "reply": reply,
        "failures": failures,
        "handoff_offered": declined and not reason,
        "handoff_reason": reason,
    }


# -- builder ------------------------------------------------------------------


def build_graph(skills: dict[str, Skill], router: EmbeddingRouter, checkpointer=None):
    builder = StateGraph(ConversationState, context_schema=TurnContext)
    builder.add_node("guard_in", guard_in)
    builder.add_node("route", make_route(router))
    for name, skill in skills.items():
        builder.add_node(name, make_skill_node(skill))
    builder.add_node(OUT_OF_SCOPE, make_out_of_scope(skills))
    builder.add_node(HANDOFF, handoff)
    builder.add_node("guard_out", guard_out)

    # Every turn starts by cleaning its input.
    builder.add_edge(START, "guard_in")
    builder.add_edge("guard_in", "route")

    # route stored its decision in state["skill"]: a skill name or out_of_scope.
    def pick_skill(state: ConversationState) -> str:
        return state["skill"]

    builder.add_conditional_edges("route", pick_skill, [*skills, OUT_OF_SCOPE, HANDOFF])

    # Whatever answered, guard_out commits the turn and the graph ends.
    for name in [*skills, OUT_OF_SCOPE, HANDOFF]:
        builder.add_edge(name, "guard_out")
    builder.add_edge("guard_out", END)

    return builder.compile(checkpointer=checkpointer)
