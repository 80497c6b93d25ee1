"""The embedded backend: transformers (+ peft for adapters) in this process.

One model instance serves every request. Generation runs one request at a time
behind a lock — on two CPU cores, running two generations side by side only
makes both slower — and at most ``max_queue`` requests may wait; past that the
backend raises :class:`BackendBusy` so the server can answer 503 with Retry-After
instead of building an unbounded backlog.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Iterator

from ..errors import BackendBusy, BackendError, ModelError
from .base import Completion, Generation, GenerationParams, Health, Message

__all__ = ["LocalChatModel"]

log = logging.getLogger(__name__)

_DONE = object()


class LocalChatModel:
    """Chat model run by transformers on this machine."""

    def __init__(self, model_path: str, *, max_queue: int = 32, dtype: str = "float32"):
        # Imported lazily: torch/transformers cost seconds at import time.
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model_path
        self.model_path = model_path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            # float32 on CPU: measured faster than bf16 for a 135M model (no figure
            # recorded; benchmarks/bench_local_backend.py --dtype times one dtype per run).
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {model_path!r}: {exc}") from exc
        self.model.eval()
        if self.tokenizer.chat_template is None:
            raise ModelError(f"model {model_path!r} has no chat template")
        self._torch = torch
        self._lock = threading.Lock()  # one generation at a time
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._max_queue = max_queue
        self._adapters: dict[str, str] = {}

    # -- adapters -----------------------------------------------------------
    def load_adapter(self, name: str, path: str) -> None:
        """Load a peft LoRA adapter under ``name``; usable by the next request. A name
        already loaded is replaced (a retrained adapter), after the running generation."""
        from peft import PeftModel

        with self._lock:
            try:
                if isinstance(self.model, PeftModel):
                    if name in self.model.peft_config:  # a new version under the same name
                        self.model.delete_adapter(name)
                    self.model.load_adapter(path, adapter_name=name)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
                self.model.eval()
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load adapter {name!r} from {path}: {exc}") from exc
            self._adapters[name] = path

    def ensure_adapter(self, name: str, path: str) -> None:
        if self._adapters.get(name) != path:
            self.load_adapter(name, path)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def health(self) -> Health:
        return Health(True, f"local model {self.name}")

    def close(self) -> None:
        pass  # nothing outside this process to release

    # -- generation ---------------------------------------------------------
    def encode(self, messages: list[Message]) -> "object":
        """Token ids of the chat prompt, using the model's own chat template."""
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]

    def stream(
        self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None
    ) -> Generation:
        if adapter is not None and adapter not in self._adapters:
            raise BackendError(f"adapter {adapter!r} is not loaded")
        ticket = _Ticket(self)
        cancel = threading.Event()

        def close() -> None:
            cancel.set()
            ticket.release()  # a generation closed before it started frees its place

        holder: dict[str, Generation] = {}
        generation = Generation(self._produce(messages, params, adapter, cancel, ticket, holder), close)
        holder["g"] = generation
        return generation

    def complete(
        self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None
    ) -> Completion:
        return self.stream(messages, params, adapter=adapter).collect()

    def _produce(
        self,
        messages: list[Message],
        params: GenerationParams,
        adapter: str | None,
        cancel: threading.Event,
        ticket: "_Ticket",
        holder: dict[str, Generation],
    ) -> Iterator[str]:
        try:
            with self._lock:
                ticket.release()
                yield from self._generate_locked(messages, params, adapter, cancel, holder["g"])
        finally:
            cancel.set()

    def _generate_locked(
        self,
        messages: list[Message],
        params: GenerationParams,
        adapter: str | None,
        cancel: threading.Event,
        out: Generation,
    ) -> Iterator[str]:
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        torch = self._torch
        input_ids = self.encode(messages)
        out.prompt_tokens = int(input_ids.shape[1])
        tokens: "queue.Queue[object]" = queue.Queue()

        class _Streamer(BaseStreamer):
            first = True

            def put(self, value):  # the first call carries the prompt
                if self.first:
                    self.first = False
                    return
                for token in value.reshape(-1).tolist():
                    tokens.put(token)

            def end(self):
                tokens.put(_DONE)

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool)

        kwargs = dict(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=params.max_tokens,
            streamer=_Streamer(),
            stopping_criteria=StoppingCriteriaList([_Cancelled()]),
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        if params.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repetition_penalty
        if params.no_repeat_ngram_size:
            kwargs["no_repeat_ngram_size"] = params.no_repeat_ngram_size
        if params.presence_penalty or params.frequency_penalty:
            kwargs["logits_processor"] = LogitsProcessorList([_openai_penalties(
                torch, int(input_ids.shape[1]), params.presence_penalty, params.frequency_penalty)])
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                # The global generator: generations run one at a time under the model's
                # lock, so the seed decides this generation's draws alone.
                torch.manual_seed(params.seed)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    if adapter is not None:
                        self.model.set_adapter(adapter)
                        self.model.generate(**kwargs)
                    elif hasattr(self.model, "disable_adapter"):
                        with self.model.disable_adapter():
                            self.model.generate(**kwargs)
                    else:
                        self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                tokens.put(_DONE)

        worker = threading.Thread(target=run, name="lepton-generate", daemon=True)
        worker.start()
        try:
            yield from self._detokenize(tokens, params, cancel, out)
        finally:
            cancel.set()
            worker.join()
        if errors:
            raise BackendError(f"generation failed: {errors[0]}") from errors[0]

    def _detokenize(
        self, tokens: "queue.Queue[object]", params: GenerationParams, cancel: threading.Event, out: Generation
    ) -> Iterator[str]:
        """Turn token ids into text pieces, honouring stop strings and EOS."""
        eos_ids = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        ids: list[int] = []
        emitted = 0  # characters of the decoded text already yielded
        finished: str | None = None
        hold = max((len(s) for s in params.stop), default=1) - 1
        while (token := tokens.get()) is not _DONE:
            if finished:
                continue  # drain what the model produced before it saw the cancel flag
            out.completion_tokens += 1
            if token in eos_ids:
                finished = "stop"
                cancel.set()
                continue
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            cut = _find_stop(text, params.stop, emitted)
            if cut is not None:
                finished = "stop"
                cancel.set()
                if cut > emitted:
                    yield text[emitted:cut]
                continue
            # Hold back an incomplete UTF-8 character and any tail that could be
            # the start of a stop string.
            safe = len(text) - hold - (1 if text.endswith("\ufffd") else 0)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        if finished is None:
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            if len(text) > emitted:
                yield text[emitted:]
        out.finish_reason = finished or "length"


class _Ticket:
    """A place in the local model's queue, given back exactly once."""

    def __init__(self, model: LocalChatModel):
        self._model = model
        with model._waiting_lock:
            if model._waiting >= model._max_queue:
                raise BackendBusy(f"{model._waiting} requests are already waiting for the model")
            model._waiting += 1
        self._held = True

    def release(self) -> None:
        with self._model._waiting_lock:
            if self._held:
                self._held = False
                self._model._waiting -= 1


def _openai_penalties(torch, prompt_length: int, presence: float, frequency: float):  # noqa: ANN001, ANN201
    """A logits processor with the OpenAI API's presence and frequency penalties: each
    token already in the answer (not the prompt) loses ``presence`` once and
    ``frequency`` per appearance. transformers has no such processor of its own."""
    from transformers import LogitsProcessor

    class _Penalties(LogitsProcessor):
        def __call__(self, input_ids, scores):  # noqa: ANN001, ANN204
            answer = input_ids[:, prompt_length:]
            if answer.shape[1] == 0:
                return scores
            counts = torch.zeros_like(scores).scatter_add_(1, answer, torch.ones_like(answer, dtype=scores.dtype))
            return scores - presence * (counts > 0).to(scores.dtype) - frequency * counts

    return _Penalties()


def _as_list(value) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _find_stop(text: str, stops: list[str], start: int) -> int | None:
    """Index where the earliest stop string begins (searching from near ``start``)."""
    best = None
    for stop in stops:
        i = text.find(stop, max(0, start - len(stop)))
        if i != -1 and (best is None or i < best):
            best = i
    return best
