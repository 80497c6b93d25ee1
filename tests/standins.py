"""A stand-in LLM backend for tests about everything but the model: it answers at
once (like a vLLM with room to spare), never queues, and records each call."""

from __future__ import annotations

from assistant.llm import Generation, GenerationParams, Health


class InstantModel:
    name = "instant"

    def __init__(self, pieces: tuple[str, ...] = ("Here ", "you ", "go.")):
        self.pieces = pieces
        #: The parameters of every call, in order, and the messages each was given.
        self.calls: list[GenerationParams] = []
        self.prompts: list[list[dict]] = []

    def stream(self, messages, params, *, adapter=None):
        self.calls.append(params)
        self.prompts.append([dict(m) for m in messages])
        generation = Generation(iter(self.pieces))
        generation.prompt_tokens, generation.completion_tokens, generation.finish_reason = 5, len(self.pieces), "stop"
        return generation

    def complete(self, messages, params, *, adapter=None):
        return self.stream(messages, params, adapter=adapter).collect()

    def load_adapter(self, name, path):
        raise AssertionError("no adapters in this test")

    ensure_adapter = load_adapter

    def adapters(self):
        return []

    def health(self):
        return Health(True, "instant")

    def close(self):
        pass
