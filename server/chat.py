"""Serving object for ``POST /v1/chat/completions``, built once at start-up.

A turn runs in a worker thread (the model and the graph are synchronous) and
hands its events to the event loop through an asyncio queue. The response
status is decided only after the turn produced its first text — so a busy or
failing backend still gets a proper 503 — and a client that disconnects stops
the turn, which is then not stored.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from assistant import Assistant, GenerationParams, Turn

from .errors import ApiError, api_error_from, validation_message
from .protocol import ChatCompletionRequest, chat_chunk, chat_completion, completion_id

__all__ = ["ChatService", "read_body"]

_END = ("end", None)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
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
    """Runs a turn's events in a thread; ``get()`` awaits the next one."""

    def __init__(self, turn: Turn):
        self.turn = turn
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        threading.Thread(target=self._work, name="lepton-turn", daemon=True).start()

    def _put(self, item: tuple[str, Any]) -> None:
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self) -> None:
        events = self.turn.events()
        try:
            for event in events:
                if self._stop.is_set():
                    events.close()  # abandons the turn: nothing is committed
                    return
                self._put(event)
            self._put(_END)
        except BaseException as exc:  # handed to the request coroutine
            self._put(("error", exc))

    async def get(self) -> tuple[str, Any]:
        kind, value = await self._queue.get()
        if kind == "error":
            raise value
        return kind, value

    def stop(self) -> None:
        self._stop.set()
        if self.turn.context is not None:
            self.turn.context.cancelled.set()


class ChatService:
    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.settings = assistant.settings

    def parse(self, body: bytes) -> ChatCompletionRequest:
        try:
            return ChatCompletionRequest.model_validate_json(body)
        except ValidationError as exc:
            message, param = validation_message(exc)
            raise ApiError(400, message, param=param) from None

    def start(
        self,
        req: ChatCompletionRequest,
        tenant_id: str,
        header_conversation: str | None,
        max_tokens_cap: int | None = None,
    ) -> Turn:
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
        ]
        conversation_id = (req.lepton.conversation_id if req.lepton else None) or header_conversation
        max_tokens = req.max_completion_tokens or req.max_tokens or self.settings.max_tokens
        params = GenerationParams(
            max_tokens=min(max_tokens, max_tokens_cap) if max_tokens_cap else max_tokens,
            temperature=req.temperature if req.temperature is not None else 0.0,
            top_p=req.top_p if req.top_p is not None else 1.0,
            stop=req.stop or [],
        )
        return self.assistant.start_turn(
            messages,
            model=req.model,
            conversation_id=conversation_id,
            tenant_id=tenant_id,
            params=params,
            handoff=bool(req.lepton and req.lepton.handoff),
        )

    def _lepton(self, turn: Turn) -> dict[str, Any]:
        return {"skill": turn.skill, "conversation_id": turn.conversation_id, **turn.extras}

    async def handle(
        self,
        request: Request,
        tenant_id: str,
        admit: Callable[[str, str], None] | None = None,
        max_tokens_cap: int | None = None,
    ) -> JSONResponse | StreamingResponse:
        """``admit(model, conversation_id)`` may refuse the turn by raising an ApiError;
        it runs once the turn is validated and before it starts, so a refused turn
        leaves nothing behind. ``max_tokens_cap`` bounds the answer's length whatever
        the request asks (widget keys are public)."""
        req = self.parse(await read_body(request, self.settings.max_request_bytes))
        try:
            turn = self.start(req, tenant_id, request.headers.get("x-conversation-id"), max_tokens_cap)
        except Exception as exc:
            raise api_error_from(exc) from None
        if admit is not None:
            admit(req.model, turn.conversation_id)
        pump = _TurnPump(turn)
        # Wait for the first piece of text (or the end) before choosing a status.
        first = await self._pull(pump, until_text=True)
        headers = {"X-Conversation-Id": turn.conversation_id}
        if req.stream:
            return StreamingResponse(
                self._sse(req, turn, pump, first, done=not first), media_type="text/event-stream", headers=headers
            )
        if first:
            await self._pull(pump, until_text=False)
        body = chat_completion(completion_id(), req.model, turn.reply, turn.finish_reason, turn.usage, self._lepton(turn))
        return JSONResponse(body, headers=headers)

    async def _pull(self, pump: _TurnPump, until_text: bool) -> list[str]:
        """Take the turn's events up to its first text (``until_text``) or its end;
        failures become API errors, and a client that left stops the turn."""
        pieces: list[str] = []
        try:
            while True:
                kind, value = await pump.get()
                if kind == "end":
                    break
                if kind == "delta":
                    pieces.append(value)
                    if until_text:
                        break
        except asyncio.CancelledError:
            pump.stop()
            raise
        except Exception as exc:
            raise api_error_from(exc) from None
        return pieces

    async def _sse(
        self, req: ChatCompletionRequest, turn: Turn, pump: _TurnPump, first: list[str], done: bool
    ) -> AsyncIterator[str]:
        cid, created = completion_id(), int(time.time())

        def event(data: dict) -> str:
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        try:
            yield event(chat_chunk(cid, req.model, created, {"role": "assistant", "content": ""},
                                   lepton={"skill": turn.skill, "conversation_id": turn.conversation_id}))
            for text in first:
                yield event(chat_chunk(cid, req.model, created, {"content": text}))
            while not done:
                kind, value = await pump.get()
                if kind == "delta":
                    yield event(chat_chunk(cid, req.model, created, {"content": value}))
                elif kind == "end":
                    done = True
            yield event(chat_chunk(cid, req.model, created, {}, finish_reason=turn.finish_reason,
                                   usage=turn.usage, lepton=self._lepton(turn)))
        except asyncio.CancelledError:
            pump.stop()
            raise
        except Exception as exc:
            # Headers are gone; report the failure in-band the way OpenAI servers do.
            yield event(api_error_from(exc).body())
        finally:
            if not done:
                pump.stop()
        yield "data: [DONE]\n\n"
