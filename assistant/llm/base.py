"""The one protocol every LLM backend implements, and the values it passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, runtime_checkable

__all__ = ["Message", "GenerationParams", "Generation", "Completion", "Health", "ChatModel"]

#: An OpenAI-style chat message: {"role": "system"|"user"|"assistant", "content": str}
Message = dict[str, str]


@dataclass
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    #: Divides the scores of tokens already in the prompt or the answer (1.0: off). Small
    #: models loop under greedy decoding; the local and vLLM backends apply it, a generic
    #: OpenAI-compatible endpoint is sent nothing for it.
    repetition_penalty: float = 1.0
    #: No n-gram of this many tokens appears twice in the answer (0: off; local backend only).
    no_repeat_ngram_size: int = 0
    #: OpenAI's penalties, subtracted from the logits of tokens already in the answer:
    #: ``presence_penalty`` once for any token that appeared, ``frequency_penalty`` once
    #: per appearance (0: off; both range over [-2, 2]).
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    #: Makes sampling (temperature > 0) repeatable; None: a fresh random draw.
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("temperature must be between 0 and 2")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if len(self.stop) > 4:
            raise ValueError("at most 4 stop sequences")
        if not 1.0 <= self.repetition_penalty <= 2.0:
            raise ValueError("repetition_penalty must be between 1 and 2")
        if not 0 <= self.no_repeat_ngram_size <= 10:
            raise ValueError("no_repeat_ngram_size must be between 0 and 10")
        if not (-2.0 <= self.presence_penalty <= 2.0 and -2.0 <= self.frequency_penalty <= 2.0):
            raise ValueError("presence_penalty and frequency_penalty must be between -2 and 2")


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


class Generation:
    """A streamed completion: iterate for text pieces; usage is filled once exhausted.

    Closing it (or abandoning the iteration) stops the backend early, so a client
    that disconnects does not keep the model busy.
    """

    def __init__(self, chunks: Iterator[str], on_close: Callable[[], None] | None = None):
        self._chunks = chunks
        self._on_close = on_close
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> str:
        return next(self._chunks)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def collect(self) -> Completion:
        text = "".join(self)
        return Completion(text, self.prompt_tokens, self.completion_tokens, self.finish_reason or "stop")


@dataclass
class Health:
    """Whether a backend can answer now (``/readyz``), and why not."""

    ok: bool
    detail: str


@runtime_checkable
class ChatModel(Protocol):
    """A chat LLM. ``adapter`` names a LoRA adapter known to the backend (None: base model)."""

    name: str

    def stream(
        self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None
    ) -> Generation: ...

    def complete(
        self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None
    ) -> Completion: ...

    def load_adapter(self, name: str, path: str) -> None:
        """Make the peft adapter at ``path`` usable as ``adapter=name``; replaces an
        adapter of that name loaded from another path. Works while serving."""
        ...

    def ensure_adapter(self, name: str, path: str) -> None:
        """``load_adapter`` unless ``name`` is already loaded from ``path`` (cheap when it is)."""
        ...

    def adapters(self) -> list[str]: ...

    def health(self) -> Health: ...

    def close(self) -> None:
        """Release what the backend started (a managed server); idempotent."""
        ...
