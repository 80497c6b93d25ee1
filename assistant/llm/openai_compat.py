"""Backend for any OpenAI-compatible endpoint: vLLM, another Lepton, a hosted API.

Adapters are selected the way vLLM does it: the adapter's name is sent as
``model``. Connection failures and 5xx answers become :class:`BackendError`
(503 from the endpoint becomes :class:`BackendBusy`) so the server can answer
with a clean OpenAI-shaped error.

Streams are read with httpx and ``json.loads``, not the openai SDK: the SDK builds
a typed object for every chunk, which costs far more CPU per token than parsing the
JSON alone, and with many streams at once that time is taken from the model sharing
the cores (measured: benchmarks/README.md, Design measurements; see also
benchmarks/bench_vllm.py).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import httpx

from ..errors import BackendBusy, BackendError
from .base import Completion, Generation, GenerationParams, Health, Message

__all__ = ["OpenAIChatModel", "error_message"]


class OpenAIChatModel:
    def __init__(self, base_url: str, api_key: str = "not-needed", model: str | None = None, timeout: float = 120.0):
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self._streams = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )
        self._model = model
        self.name = model or base_url

    def _model_name(self) -> str:
        if self._model is None:
            try:
                models = self._client.models.list().data
            except self._openai.OpenAIError as exc:
                raise BackendError(f"cannot list models at {self._client.base_url}: {exc}") from exc
            if not models:
                raise BackendError(f"{self._client.base_url} serves no models")
            self._model = models[0].id
            self.name = self._model
        return self._model

    def load_adapter(self, name: str, path: str) -> None:
        raise BackendError("adapters of an external OpenAI-compatible endpoint are managed by that endpoint")

    def ensure_adapter(self, name: str, path: str) -> None:
        self.load_adapter(name, path)

    def adapters(self) -> list[str]:
        return []

    def health(self) -> Health:
        try:
            self._client.with_options(timeout=3.0).models.list()
        except self._openai.OpenAIError as exc:
            return Health(False, f"{self._client.base_url} is unreachable: {exc}")
        return Health(True, f"OpenAI-compatible endpoint {self._client.base_url}")

    def close(self) -> None:
        self._client.close()
        self._streams.close()

    def _busy_or_failed(self, status: int, message: str) -> BackendError:
        if status in (429, 503):
            return BackendBusy(f"backend busy: {message}")
        return BackendError(f"backend answered {status}: {message}")

    def _body(self, messages: list[Message], params: GenerationParams, adapter: str | None) -> dict[str, Any]:
        return {
            "model": adapter or self._model_name(),
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            **({"stop": params.stop} if params.stop else {}),
            # Parameters of the OpenAI API itself, sent only when set (any endpoint takes them).
            **({"presence_penalty": params.presence_penalty} if params.presence_penalty else {}),
            **({"frequency_penalty": params.frequency_penalty} if params.frequency_penalty else {}),
            **({"seed": params.seed} if params.seed is not None else {}),
        }

    def _check_available(self) -> None:
        """Raise BackendError before a request that cannot succeed (see the vLLM backend)."""

    def _request(self, messages: list[Message], params: GenerationParams, adapter: str | None):
        self._check_available()
        try:
            return self._client.chat.completions.create(**self._body(messages, params, adapter))
        except self._openai.APIStatusError as exc:
            raise self._busy_or_failed(exc.status_code, exc.message) from exc
        except self._openai.OpenAIError as exc:
            raise BackendError(f"backend unreachable: {exc}") from exc

    def _open_stream(self, messages: list[Message], params: GenerationParams, adapter: str | None) -> httpx.Response:
        self._check_available()
        body = {**self._body(messages, params, adapter), "stream": True, "stream_options": {"include_usage": True}}
        try:
            response = self._streams.send(self._streams.build_request("POST", "chat/completions", json=body),
                                          stream=True)
        except httpx.HTTPError as exc:
            raise BackendError(f"backend unreachable: {exc}") from exc
        if response.status_code != 200:
            try:
                response.read()
                message = error_message(response)
            except httpx.HTTPError as exc:
                message = str(exc)
            finally:
                response.close()
            raise self._busy_or_failed(response.status_code, message)
        return response

    def stream(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Generation:
        response = self._open_stream(messages, params, adapter)
        holder: dict[str, Generation] = {}

        def chunks() -> Iterator[str]:
            out = holder["g"]
            try:
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, other SSE fields
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise BackendError(f"backend stream failed: {_error_text(chunk['error'])}")
                    usage = chunk.get("usage")
                    if usage:
                        out.prompt_tokens = usage.get("prompt_tokens", 0)
                        out.completion_tokens = usage.get("completion_tokens", 0)
                    for choice in chunk.get("choices") or ():
                        if choice.get("finish_reason"):
                            out.finish_reason = choice["finish_reason"]
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            yield content
            except httpx.HTTPError as exc:
                raise BackendError(f"backend stream failed: {exc}") from exc
            except ValueError as exc:  # not JSON: not an OpenAI-compatible stream
                raise BackendError(f"backend stream failed: unreadable chunk ({exc})") from exc
            finally:
                response.close()

        generation = Generation(chunks())
        holder["g"] = generation
        return generation

    def complete(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Completion:
        response = self._request(messages, params, adapter)
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )


def _error_text(error: Any) -> str:
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return str(error)[:300]


def error_message(response: httpx.Response) -> str:
    """The message of an OpenAI-shaped error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or f"HTTP {response.status_code}"
    return _error_text(body.get("error", body) if isinstance(body, dict) else body)
