"""Serving object for ``POST /v1/chat/completions``, built once at start-up.

A turn runs in a worker thread (the model and the graph are synchronous) and
hands its events to the event loop in batches (``_TurnPump``). The response
status is decided only after the turn produced its first text — so a busy or
failing backend still gets a proper 503 — and a client that disconnects stops
the turn, which is then not stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from assistant import Assistant, TurnRequest, TurnResult
from assistant.errors import TurnAbandoned

from .errors import ApiError, api_error_from, validation_message
from .keys import Caller
from .protocol import ChatCompletionRequest, chat_chunk, chat_completion, completion_id

__all__ = ["ChatService", "read_body"]

_END = ("end", None)
#: Turns that run at once; more wait for one of them to end.
TURN_THREADS = 256
#: Turn threads started with the server (more start when that many turns run at once).
READY_TURN_THREADS = 32


async def read_body(request: Request, limit: int) -> bytes:
    """A JSON request's body, refusing more than ``limit`` bytes without reading them all.

    The body must be declared ``application/json``: a web page can send text/plain or
    form bodies to any site without a CORS preflight, never a JSON one, so this keeps
    other sites' pages from posting to the API with a visitor's browser."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, f"Send the request body as JSON with 'Content-Type: application/json' "
                            f"(got {media or 'no Content-Type'}).", code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes", code="request_too_large")
    return bytes(body)


class _TurnPump:
    """Runs a turn on one of the server's turn threads; the request coroutine ``take()``s its events.

    The thread appends each event to a list and wakes the event loop only when the
    list was empty, so events that arrive while the loop is busy (many streams at
    once) travel together: one wake-up, and one socket write, for all of them.
    """

    def __init__(self, begin: Callable[[], TurnRequest], run: Callable[..., TurnResult], received: float,
                 workers: ThreadPoolExecutor):
        """``begin()`` validates the turn and ``run(request, on_event, cancelled=, marks=)``
        runs it, both in the turn's thread: they read SQLite, which must never block the
        event loop."""
        self._begin = begin
        self._run = run
        self._received = received
        self.request: TurnRequest | None = None
        #: The skill that answers, known once the turn is routed.
        self.skill: str | None = None
        #: The turn's outcome, set before the ("end", None) event.
        self.result: TurnResult | None = None
        self.cancelled = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[str, Any]] = []
        self._guard = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._stop = threading.Event()
        #: Set once the turn is past the point of no return: it is being stored.
        self._committing = False
        # In the request's context: log records of the turn carry its request id.
        workers.submit(contextvars.copy_context().run, self._work)

    def _put(self, kind: str, value: Any) -> None:
        """The turn's event sink (turn thread). Raising abandons the turn: nothing is stored."""
        if self._stop.is_set():
            raise TurnAbandoned("the client went away")
        if kind == "route":
            self.skill = value
        self._append((kind, value))

    def _append(self, item: tuple[str, Any]) -> None:
        with self._guard:
            self._pending.append(item)
            if len(self._pending) > 1:
                return  # the wake-up for the first one is on its way
        self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _commit(self) -> None:
        """The turn's last chance to be dropped (turn thread, ``TurnRunner.run``'s ``before_commit``)."""
        with self._guard:
            if self._stop.is_set():
                raise TurnAbandoned("the client went away or was told the turn failed")
            self._committing = True

    def _work(self) -> None:
        marks = {"received": self._received, "thread": time.perf_counter()}
        try:
            self.request = self._begin()
            self.result = self._run(self.request, self._put, cancelled=self.cancelled, marks=marks,
                                    before_commit=self._commit)
        except TurnAbandoned:
            return
        except BaseException as exc:  # handed to the request coroutine
            self._append(("error", exc))
            return
        self._append(_END)

    async def take(self) -> list[tuple[str, Any]]:
        """Every event since the last call (at least one), oldest first. The last may be
        ("end", None) or ("error", exception)."""
        while True:
            with self._guard:
                items, self._pending = self._pending, []
            if items:
                return items
            self._waiter = self._loop.create_future()
            await self._waiter

    def stop(self) -> bool:
        """Stop the turn; False if it is too late: the turn is already being stored."""
        with self._guard:
            if self._committing:
                return False
            self._stop.set()
        self.cancelled.set()
        return True


class _Deadline:
    """When a turn must be done by (``Settings.turn_timeout``, an API key's ``max_seconds``)."""

    def __init__(self, seconds: float, at: float):
        self.seconds = seconds
        self.at = at  # on the event loop's clock

    async def take(self, pump: _TurnPump) -> list[tuple[str, Any]]:
        """``pump.take()`` by the deadline. Past it the turn is stopped and the client gets
        a 504 — unless the turn is already being stored: then its end is moments away."""
        try:
            async with asyncio.timeout_at(self.at):
                return await pump.take()
        except TimeoutError:
            if pump.stop():
                raise ApiError(504, f"The model did not finish this answer within {self.seconds:g} s; nothing "
                                    "was stored. Retry shortly, or ask for a shorter answer (max_tokens).",
                               "server_error", code="backend_timeout", headers={"Retry-After": "5"}) from None
            return await pump.take()


def _lepton(result: TurnResult, extra: dict[str, Any]) -> dict[str, Any]:
    return {"skill": result.skill, "conversation_id": result.conversation_id, **extra, **result.lepton}


class ChatService:
    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.settings = assistant.settings
        # Turns run on long-lived threads: starting a thread per turn blocks the event
        # loop until the new thread first runs, and a new thread waits longest for a
        # core when the model keeps the CPU busy. More turns than this at once wait
        # for a free thread.
        self._workers = ThreadPoolExecutor(max_workers=TURN_THREADS, thread_name_prefix="lepton-turn")
        # The first threads start now, not while a burst of turns waits for them: the pool
        # starts a thread only when none is idle, and that blocks the event loop until it runs.
        ready = threading.Barrier(READY_TURN_THREADS + 1)
        for _ in range(READY_TURN_THREADS):
            self._workers.submit(ready.wait, 30)
        ready.wait(30)

    def close(self) -> None:
        """Stop taking turns; running ones finish on their threads."""
        self._workers.shutdown(wait=False)

    def parse(self, body: bytes) -> ChatCompletionRequest:
        try:
            req = ChatCompletionRequest.model_validate_json(body)
        except ValidationError as exc:
            message, param = validation_message(exc)
            raise ApiError(400, message, param=param) from None
        refused = req.unsupported()
        if refused is not None:
            raise ApiError(400, refused[1], param=refused[0], code="unsupported_parameter")
        return req

    def start(
        self,
        req: ChatCompletionRequest,
        tenant_id: str,
        header_conversation: str | None,
        max_tokens_cap: int | None = None,
        user_trusted: bool = True,
        owner: str | None = None,
    ) -> TurnRequest:
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
        ]
        conversation_id = (req.lepton.conversation_id if req.lepton else None) or header_conversation
        max_tokens = req.max_completion_tokens or req.max_tokens or self.settings.max_tokens
        params = self.assistant.params(
            max_tokens=min(max_tokens, max_tokens_cap) if max_tokens_cap else max_tokens,
            temperature=req.temperature if req.temperature is not None else 0.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            stop=req.stop or [],
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            seed=req.seed,
        )
        return self.assistant.start_turn(
            messages,
            model=req.model,
            conversation_id=conversation_id,
            tenant_id=tenant_id,
            params=params,
            handoff=bool(req.lepton and req.lepton.handoff),
            locale=req.lepton.locale if req.lepton else None,
            user=req.user,
            user_trusted=user_trusted,
            owner=owner,
        )

    async def handle(self, request: Request, who: Caller) -> JSONResponse | StreamingResponse:
        """One chat completion for ``who``. Its key may refuse the turn (``Caller.admit_turn``)
        once the turn is validated and before it starts, so a refused turn leaves nothing
        behind; a widget key caps the answer's length (widget keys are public) and vouches
        for ``user`` only with a valid ``user_hash`` (``Caller.trusts_user``).

        A widget conversation belongs to a token: the widget sends it back with every
        request (``X-Lepton-Conversation-Token``), and a request without one starts a
        conversation under a new token, returned as ``lepton.conversation_token``."""
        received = time.perf_counter()
        req = self.parse(await read_body(request, self.settings.max_request_bytes))
        header_conversation = request.headers.get("x-conversation-id")
        token = None
        if who.key is not None:
            token = who.conversation_token or secrets.token_urlsafe(24)
        # The app's settings (a server may run with other limits than its assistant's).
        limits = request.app.state.settings
        cap = who.answer_cap(limits)
        seconds = who.turn_seconds(limits)
        deadline = _Deadline(seconds, asyncio.get_running_loop().time() + seconds - (time.perf_counter() - received))
        extra = {"conversation_token": token} if token else {}

        def begin() -> TurnRequest:
            trusted = who.trusts_user(req.user, req.lepton.user_hash if req.lepton else None)
            request = self.start(req, who.tenant_id, header_conversation, cap, trusted, who.owner(token))
            who.admit_turn(req.model, request.conversation_id)
            return request

        pump = _TurnPump(begin, self.assistant.run_turn, received, self._workers)
        # Wait for the first piece of text (or the end) before choosing a status.
        first, done = await self._pull(pump, deadline, until_text=True)
        headers = {"X-Conversation-Id": pump.request.conversation_id}
        if req.stream:
            return StreamingResponse(
                self._sse(req, pump, deadline, first, done, extra), media_type="text/event-stream", headers=headers
            )
        if not done:
            await self._pull(pump, deadline, until_text=False)
        result = pump.result
        body = chat_completion(completion_id(), req.model, result.reply, result.finish_reason, result.usage,
                               _lepton(result, extra))
        return JSONResponse(body, headers=headers)

    async def _pull(self, pump: _TurnPump, deadline: "_Deadline", until_text: bool) -> tuple[list[str], bool]:
        """The turn's text up to its first piece (``until_text``) or its end, and whether
        it ended; failures become API errors, and a client that left stops the turn."""
        pieces: list[str] = []
        try:
            while True:
                for kind, value in await deadline.take(pump):
                    if kind == "error":
                        raise value
                    if kind == "delta":
                        pieces.append(value)
                    elif kind == "end":
                        return pieces, True
                if until_text and pieces:
                    return pieces, False
        except asyncio.CancelledError:
            pump.stop()
            raise
        except Exception as exc:
            raise api_error_from(exc) from None

    async def _sse(
        self, req: ChatCompletionRequest, pump: _TurnPump, deadline: "_Deadline", first: list[str], done: bool,
        extra: dict[str, Any],
    ) -> AsyncIterator[str]:
        cid, created = completion_id(), int(time.time())

        def event(data: dict) -> str:
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        def text(pieces: list[str]) -> str:
            return "".join(event(chat_chunk(cid, req.model, created, {"content": p})) for p in pieces)

        try:
            yield event(chat_chunk(cid, req.model, created, {"role": "assistant", "content": ""},
                                   lepton={"skill": pump.skill, "conversation_id": pump.request.conversation_id,
                                           **extra})
                        ) + text(first)
            while not done:
                # Each piece stays its own chunk; the pieces of one batch go out in one write.
                pieces, failure = [], None
                for kind, value in await deadline.take(pump):
                    if kind == "delta":
                        pieces.append(value)
                    elif kind == "end":
                        done = True
                    elif kind == "error":
                        failure = value
                if pieces:
                    yield text(pieces)
                if failure is not None:
                    raise failure
            # The last chunk and the end marker in one write: the client's answer is
            # complete when it reads them.
            result = pump.result
            last = event(chat_chunk(cid, req.model, created, {}, finish_reason=result.finish_reason,
                                    usage=result.usage, lepton=_lepton(result, extra)))
        except asyncio.CancelledError:
            pump.stop()
            raise
        except Exception as exc:
            # Headers are gone; report the failure in-band the way OpenAI servers do.
            last = event(api_error_from(exc).body())
        finally:
            if not done:
                pump.stop()
        yield last + "data: [DONE]\n\n"
