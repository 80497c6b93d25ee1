"""Backend for any OpenAI-compatible endpoint: vLLM, another Lepton, a hosted API.

Adapters are selected the way vLLM does it: the adapter's name is sent as
``model``. Connection failures and 5xx answers become :class:`BackendError`
(503 from the endpoint becomes :class:`BackendBusy`) so the server can answer
with a clean OpenAI-shaped error.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import BackendBusy, BackendError
from .base import Completion, Generation, GenerationParams, Health, Message

__all__ = ["OpenAIChatModel"]


class OpenAIChatModel:
    def __init__(self, base_url: str, api_key: str = "not-needed", model: str | None = None, timeout: float = 120.0):
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
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

    def _request(self, messages: list[Message], params: GenerationParams, adapter: str | None, stream: bool):
        try:
            return self._client.chat.completions.create(
                model=adapter or self._model_name(),
                messages=messages,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=params.stop or None,
                stream=stream,
                **({"stream_options": {"include_usage": True}} if stream else {}),
            )
        except self._openai.APIStatusError as exc:
            if exc.status_code in (429, 503):
                raise BackendBusy(f"backend busy: {exc.message}") from exc
            raise BackendError(f"backend answered {exc.status_code}: {exc.message}") from exc
        except self._openai.OpenAIError as exc:
            raise BackendError(f"backend unreachable: {exc}") from exc

    def stream(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Generation:
        response = self._request(messages, params, adapter, stream=True)
        holder: dict[str, Generation] = {}

        def chunks() -> Iterator[str]:
            out = holder["g"]
            try:
                for chunk in response:
                    if chunk.usage is not None:
                        out.prompt_tokens = chunk.usage.prompt_tokens
                        out.completion_tokens = chunk.usage.completion_tokens
                    for choice in chunk.choices:
                        if choice.finish_reason:
                            out.finish_reason = choice.finish_reason
                        if choice.delta and choice.delta.content:
                            yield choice.delta.content
            except self._openai.OpenAIError as exc:
                raise BackendError(f"backend stream failed: {exc}") from exc
            finally:
                response.close()

        generation = Generation(chunks())
        holder["g"] = generation
        return generation

    def complete(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Completion:
        response = self._request(messages, params, adapter, stream=False)
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason=choice.finish_reason or "stop",
        )
