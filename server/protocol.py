"""Wire models of the OpenAI-compatible API, in the order of the OpenAI reference.

Our own additions are fenced off in ``lepton`` objects so plain OpenAI clients
ignore them:

- request ``lepton.conversation_id`` (or header ``X-Conversation-Id``): continue
  a stored conversation; without it a new one is created.
- response ``lepton``: ``skill`` that answered (or ``out_of_scope``),
  ``conversation_id`` to send next time, and skill-specific fields (citations, ...).
  In streams it rides on the first chunk; skill fields that are only known at the
  end ride on the last chunk.

Request options are honoured or refused, never silently ignored, when they change
what the answer is (tools, response_format, logprobs, image parts: a 400 with
``code: unsupported_parameter``, see ``ChatCompletionRequest.unsupported``);
other unknown fields (``store``, ``metadata``, ...) are accepted and ignored. Types are strict: ``"stream": "yes"`` is an error,
not a truthy string.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ContentPart",
    "ChatMessage",
    "StreamOptions",
    "LeptonRequest",
    "ChatCompletionRequest",
    "FeedbackRequest",
    "completion_id",
    "chat_completion",
    "chat_chunk",
    "model_list",
    "error_body",
    "json_body",
]


# -- request --------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content. Only text parts are supported (``unsupported``
    names the others)."""

    model_config = ConfigDict(extra="allow", strict=True)
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    # "developer" is the newer OpenAI name for "system" and is treated as such. Other
    # roles ("tool", "function") are refused by ``unsupported`` with a clear message.
    role: str
    # Required, and null only where OpenAI allows it (an assistant's tool call, refused).
    content: str | list[ContentPart] | None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    include_usage: bool = False


class LeptonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=128)
    handoff: bool = Field(default=False, description="Ask for a person (the widget's 'talk to a person').")
    locale: str | None = Field(default=None, min_length=2, max_length=35,
                               description="The user's language tag (e.g. 'en-US'): which emergency number "
                                           "the safety guard's replies name.")
    user_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                  description="With a widget key: HMAC-SHA256 of `user` under the tenant's identity "
                                              "secret (hex), which makes `user` the signed-in customer for skills.")


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    model: str = Field(default="assistant", description="A skill name, or 'assistant' to route automatically.")
    max_completion_tokens: int | None = Field(default=None, ge=1, le=8192)
    max_tokens: int | None = Field(default=None, ge=1, le=8192, description="Older name of max_completion_tokens.")
    n: int | None = Field(default=None, ge=1, le=1, description="Only one choice is supported.")
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    seed: int | None = None
    user: str | None = Field(default=None, max_length=256,
                             description="The end user; also keeps users' resent histories apart.")
    lepton: LeptonRequest | None = None

    def unsupported(self) -> tuple[str, str] | None:
        """(parameter, message) for the first thing asked that the assistant does not do,
        or None. Options the assistant cannot honour are refused rather than ignored, so a
        client never mistakes a plain answer for a tool call or a JSON object."""
        extra = self.model_extra or {}
        for name in ("tools", "functions"):
            if extra.get(name):
                return name, f"{name}: tool and function calling are not supported by this assistant"
        for name in ("tool_choice", "function_call"):
            if extra.get(name) not in (None, "none"):
                return name, f"{name}: tool and function calling are not supported by this assistant"
        response_format = extra.get("response_format")
        if response_format is not None and response_format != {"type": "text"}:
            return "response_format", "response_format: only {\"type\": \"text\"} is supported"
        if extra.get("logprobs") or extra.get("top_logprobs") is not None:
            name = "logprobs" if extra.get("logprobs") else "top_logprobs"
            return name, f"{name}: log probabilities are not supported"
        if extra.get("logit_bias"):
            return "logit_bias", "logit_bias: biasing tokens is not supported (answers may be fixed text)"
        if extra.get("audio") is not None or extra.get("modalities") not in (None, ["text"]):
            name = "audio" if extra.get("audio") is not None else "modalities"
            return name, f"{name}: only text output is supported"
        for i, message in enumerate(self.messages):
            if message.role in ("tool", "function"):
                return f"messages.{i}.role", f"messages[{i}].role {message.role!r}: tool and function calling " \
                                             "are not supported by this assistant"
            if (message.model_extra or {}).get("tool_calls") or (message.model_extra or {}).get("function_call"):
                return f"messages.{i}.tool_calls", f"messages[{i}]: tool calls are not supported by this assistant"
            if isinstance(message.content, list):
                for j, part in enumerate(message.content):
                    if part.type != "text" or part.text is None:
                        return (f"messages.{i}.content.{j}",
                                f"messages[{i}].content[{j}] is a {part.type!r} part; only text parts are supported")
        return None

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops


class FeedbackRequest(BaseModel):
    """Body of ``POST /v1/feedback`` (Lepton's own route, no OpenAI counterpart).

    ``message_index`` counts in the conversation's stored messages, as
    ``GET /v1/conversations/{id}`` lists them, and must point at an assistant message.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    conversation_id: str = Field(min_length=1, max_length=128)
    message_index: int = Field(ge=0)
    rating: int = Field(description="1 (helpful) or -1 (not helpful).")
    correction: str | None = Field(default=None, description="What the answer should have said.")

    @field_validator("rating")
    @classmethod
    def _thumb(cls, value: int) -> int:
        if value not in (1, -1):
            raise ValueError("rating must be 1 (helpful) or -1 (not helpful)")
        return value


# -- responses -------------------------------------------------------------------


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
    }


def chat_completion(
    cid: str, model: str, text: str, finish_reason: str, usage: dict[str, int], lepton: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": _usage(usage),
        "lepton": lepton,
    }


def chat_chunk(
    cid: str,
    model: str,
    created: int,
    delta: dict[str, str],
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    lepton: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = _usage(usage)
    if lepton is not None:
        chunk["lepton"] = lepton
    return chunk


def model_list(models: list[tuple[str, str]], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "lepton", "lepton": {"description": desc}}
            for name, desc in models
        ],
    }


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself (to cap its size and
    check its type first): the body's schema in the OpenAPI document, so clients and
    fuzzers see what the route takes. Nested definitions are inlined."""
    schema = model.model_json_schema()
    body: dict[str, Any] = {"required": True,
                            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}}}
    if description:
        body["description"] = description
    return {"requestBody": body}
