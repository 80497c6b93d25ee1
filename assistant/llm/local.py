"""The embedded backend: transformers (+ peft for adapters) in this process.

One model instance serves every request. Concurrent requests are decoded
together, one token each per model step (``batching.BatchDecoder``): a request
joins the running batch at the next step and leaves it as soon as it is done, so
16 visitors chatting at once cost little more per step than one. At most
``max_batch`` requests decode at once and at most ``max_queue`` wait for a place;
past that the backend raises :class:`BackendBusy` so the server can answer 503
with Retry-After instead of building an unbounded backlog.

The decoder's thread computes with all of torch's threads; every other thread of the
process computes with one (see ``model_threads``). OpenMP gives every thread
that computes a team of workers, and once the process's workers outnumber the CPUs,
GNU OpenMP makes them sleep instead of spinning between operations: a router or
retrieval query encoded on a request thread with a second team of two slowed every
later model step by a quarter to a third (measured: benchmarks/README.md). Encoding a
short query on one thread costs little.

The weights are bfloat16 where the CPU computes in it natively (AVX-512 BF16 or
AMX, read from /proc/cpuinfo), float32 elsewhere; ``dtype`` (the ``local_dtype``
setting) overrides the choice, which is logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Iterator

from ..errors import BackendBusy, BackendError, ModelError
from .base import Completion, Generation, GenerationParams, Health, Message
from .batching import DONE, BatchDecoder, Row

__all__ = ["LocalChatModel", "native_bf16", "choose_dtype", "model_threads"]

log = logging.getLogger(__name__)

#: torch's thread count before the first local model lowered it for other threads.
_model_threads: int | None = None

#: CPU flags that mean bfloat16 matrix products run natively (not emulated).
_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes in bfloat16 natively (Linux: from /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool(_BF16_FLAGS & set(flags))


def choose_dtype(setting: str = "auto", cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """"bfloat16" or "float32": the setting itself, or for "auto" what the CPU supports."""
    if setting not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"dtype must be auto, float32 or bfloat16, not {setting!r}")
    if setting != "auto":
        return setting
    return "bfloat16" if native_bf16(cpuinfo) else "float32"


class LocalChatModel:
    """Chat model run by transformers on this machine."""

    def __init__(self, model_path: str, *, max_queue: int = 32, dtype: str = "auto", max_batch: int = 16):
        # Imported lazily: torch/transformers cost seconds at import time.
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model_path
        self.model_path = model_path
        self.dtype = choose_dtype(dtype)
        log.info("local model %s in %s (setting %r; native bfloat16 on this CPU: %s)",
                 model_path, self.dtype, dtype, native_bf16())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_path)
            self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, self.dtype))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {model_path!r}: {exc}") from exc
        self.model.eval()
        if self.tokenizer.chat_template is None:
            raise ModelError(f"model {model_path!r} has no chat template")
        self._torch = torch
        self._waiting = 0
        self._waiting_lock = threading.Lock()
        self._max_queue = max_queue
        #: Public adapter name -> (path, the peft name it is loaded under). A retrained
        #: adapter loads under a new peft name; requests already running keep the old
        #: weights, which are unloaded once no request uses them.
        self._adapters: dict[str, tuple[str, str]] = {}
        self._versions = 0
        self._step_lock = threading.Lock()  # held for each model step and for adapter loads
        self._eos = set(_as_list(self.model.generation_config.eos_token_id)) | {self.tokenizer.eos_token_id}
        self._decoder = BatchDecoder(torch, lambda: self.model, eos_ids=self._eos, max_batch=max_batch,
                                     step_lock=self._step_lock, collect=self._unload_unused,
                                     threads=model_threads(torch))
        self._decoder.started.wait()
        torch.set_num_threads(1)  # every thread but the decoder's, from its next first operation

    # -- adapters -----------------------------------------------------------
    def load_adapter(self, name: str, path: str) -> None:
        """Load a peft LoRA adapter under ``name``; usable by the next request. A name
        already loaded is replaced for new requests; running ones finish on the old one."""
        from peft import PeftModel

        with self._step_lock:
            self._versions += 1
            internal = f"{name}-v{self._versions}"
            try:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(path, adapter_name=internal)
                else:
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=internal)
                self.model.eval()
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"cannot load adapter {name!r} from {path}: {exc}") from exc
            self._adapters[name] = (path, internal)
            self._unload_unused(self._decoder.in_use())

    def _unload_unused(self, in_use: set[str]) -> None:
        """Unload peft adapters no name points to and no request uses (step lock held)."""
        loaded = set(getattr(self.model, "peft_config", {}))
        current = {internal for _, internal in self._adapters.values()}
        for internal in loaded - current - in_use:
            self.model.delete_adapter(internal)

    def ensure_adapter(self, name: str, path: str) -> None:
        if self._adapters.get(name, (None,))[0] != path:
            self.load_adapter(name, path)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def health(self) -> Health:
        return Health(True, f"local model {self.name}")

    def close(self) -> None:
        self._decoder.close()

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
        """Join the decoder's batch on the first read, then yield the row's text."""
        out = holder["g"]
        prompt = self.encode(messages)[0].tolist()
        out.prompt_tokens = len(prompt)
        internal = self._adapters[adapter][1] if adapter is not None else None
        row = Row(prompt, params, internal, cancel=cancel, on_admit=ticket.release)
        try:
            self._decoder.submit(row)
            yield from self._detokenize(row.tokens, params, cancel, out)
        finally:
            cancel.set()
        if row.error is not None:
            raise BackendError(f"generation failed: {row.error}") from row.error

    def _detokenize(
        self, tokens: "queue.Queue[object]", params: GenerationParams, cancel: threading.Event, out: Generation
    ) -> Iterator[str]:
        """Turn token ids into text pieces, honouring stop strings and EOS."""
        ids: list[int] = []
        emitted = 0  # characters of the decoded text already yielded
        finished: str | None = None
        hold = max((len(s) for s in params.stop), default=1) - 1
        while (token := tokens.get()) is not DONE:
            if finished:
                continue  # drain what the model produced before it saw the cancel flag
            out.completion_tokens += 1
            if token in self._eos:
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


def model_threads(torch) -> int:  # noqa: ANN001
    """The thread count heavy work computes with (the decoder, fine-tuning): torch's
    own, as it was before the first local model set it to one for the other threads."""
    global _model_threads
    if _model_threads is None:
        _model_threads = torch.get_num_threads()
    return _model_threads


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
