"""Batched decoding for the embedded backend: concurrent requests share each model step.

On a CPU one decoding step for 16 sequences costs little more than a step for one:
the weights are read once per step either way. :class:`BatchDecoder` runs one
scheduler thread that owns the model. Requests join the running batch at a step
boundary: their prompts are prefilled together (left-padded), their key/value
cache is padded on the left to the batch's length and appended, and from then on
every step decodes one token for every row. A row leaves at once when it is done
(end of sequence, ``max_tokens``) or its consumer cancels (a stop string found,
the client gone); the cache's columns that only padding still uses are cut off.

Each row keeps its own sampling parameters (greedy, or temperature/top_p with its
own seeded generator), repetition penalty, no-repeat n-gram size, OpenAI presence
and frequency penalties, ``max_tokens`` and LoRA adapter. Rows with different
adapters share a batch: peft's mixed-adapter forward (``adapter_names``) applies
each adapter to its own rows (the choice against separate groups is measured in
benchmarks/README.md). Positions come from each row's own token count, so a row
decodes as it would alone; only floating-point rounding differs with the batch.

Tokens go to each row's queue as they are chosen; the consumer (``local.py``)
turns them into text and watches for stop strings.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import BackendError
from .base import GenerationParams

__all__ = ["Row", "BatchDecoder", "DONE", "adjust_scores", "remember"]

log = logging.getLogger(__name__)

#: Put in a row's queue after its last token.
DONE = object()
#: peft's name for "no adapter" in a mixed-adapter batch.
_BASE = "__base__"


@dataclass(eq=False)
class Row:
    """One request in the decoder: its prompt, parameters and where its tokens go."""

    prompt: list[int]
    params: GenerationParams
    #: The peft adapter name (the decoder's internal one), or None for the base model.
    adapter: str | None
    tokens: "queue.Queue[object]" = field(default_factory=queue.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)
    #: Called once when the row enters the batch (gives back its place in the queue).
    on_admit: Callable[[], None] = lambda: None
    #: The exception that ended the row early, for its consumer to raise.
    error: BaseException | None = None
    # Decoding state, kept by the decoder.
    ids: list[int] = field(default_factory=list)
    ngrams: dict[tuple[int, ...], set[int]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    generator: Any = None

    @property
    def generated(self) -> int:
        """Tokens chosen so far (``ids`` holds the prompt, then the answer)."""
        return len(self.ids) - len(self.prompt)

    def add_gram(self, gram: list[int]) -> None:
        """Ban ``gram``'s last token after its other tokens (no-repeat n-grams)."""
        self.ngrams.setdefault(tuple(gram[:-1]), set()).add(gram[-1])


class BatchDecoder:
    """Runs every admitted :class:`Row` through one shared, growing batch.

    ``model_of()`` returns the model to call (it changes when the first adapter wraps
    it in peft); ``step_lock`` is held for each step, so loading an adapter (which
    takes it too) happens between steps. ``collect(in_use)`` is called after rows
    leave, with the adapter names still in use, to unload adapters nobody needs."""

    def __init__(self, torch, model_of: Callable[[], Any], *, eos_ids: set[int], max_batch: int,  # noqa: ANN001
                 step_lock: threading.Lock, collect: Callable[[set[str]], None] = lambda in_use: None,
                 threads: int | None = None):
        self._torch = torch
        self._threads = threads or torch.get_num_threads()
        #: Set once the scheduler thread has taken its compute threads (see ``_loop``).
        self.started = threading.Event()
        self._model_of = model_of
        self._eos = eos_ids
        self._max_batch = max_batch
        self._step_lock = step_lock
        self._collect = collect
        self._pending: list[Row] = []
        self._wake = threading.Condition()
        self._rows: list[Row] = []
        self._cache = None
        self._mask = None  # (rows, cache length): 1 for real tokens, 0 for left padding
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="lepton-decoder", daemon=True)
        self._thread.start()

    # -- the consumer side ---------------------------------------------------------
    @staticmethod
    def index_prompt(row: Row) -> None:
        """Start the row's sequence with its prompt, whose n-grams count for the ban too."""
        row.ids = list(row.prompt)
        n = row.params.no_repeat_ngram_size
        for start in range(len(row.ids) - n + 1 if n else 0):
            row.add_gram(row.ids[start:start + n])

    def submit(self, row: Row) -> None:
        self.index_prompt(row)
        if row.params.temperature > 0 and row.params.seed is not None:
            row.generator = self._torch.Generator().manual_seed(row.params.seed)
        with self._wake:
            if self._closed:
                raise BackendError("the local model was closed")
            self._pending.append(row)
            self._wake.notify()

    def in_use(self) -> set[str]:
        """Adapter names of the rows running or waiting."""
        with self._wake:
            rows = [*self._rows, *self._pending]
        return {row.adapter for row in rows if row.adapter is not None}

    def close(self) -> None:
        """Stop: waiting and running requests fail, and the scheduler thread has ended on
        return (a process must not exit while that thread is inside the model's code)."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)

    # -- the scheduler thread ------------------------------------------------------
    def _loop(self) -> None:
        torch = self._torch
        # OpenMP gives each thread that computes its own team of worker threads. This
        # thread's team is sized now: torch sizes a thread's team at its first parallel
        # operation, from the process-wide count (which LocalChatModel then lowers to one
        # for every other thread).
        torch.set_num_threads(self._threads)
        torch.zeros(1 << 17).add_(1.0)
        self.started.set()
        while True:
            with self._wake:
                while not (self._pending or self._rows or self._closed):
                    self._wake.wait()
                if self._closed:
                    for row in [*self._pending, *self._rows]:
                        row.tokens.put(DONE)
                    return
                room = self._max_batch - len(self._rows)
                admitted, self._pending = self._pending[:room], self._pending[room:]
            waiting = [row for row in admitted if not row.cancel.is_set()]
            for row in admitted:
                row.on_admit()
                if row.cancel.is_set():
                    row.tokens.put(DONE)
            try:
                with self._step_lock, torch.inference_mode():
                    gone = [i for i, row in enumerate(self._rows) if row.cancel.is_set()]
                    if gone:  # a stop string found, or the client left: out before the next step
                        self._drop(gone)
                    if waiting:
                        self._prefill(waiting)
                    elif self._rows:
                        self._decode()
            except Exception as exc:  # noqa: BLE001 - every row in flight gets the error
                log.exception("generation failed for %d requests", len(self._rows) + len(waiting))
                for row in {*self._rows, *waiting}:
                    row.error = exc
                    row.tokens.put(DONE)
                self._rows, self._cache, self._mask = [], None, None

    def _forward(self, rows: list[Row], input_ids, mask, positions, cache):  # noqa: ANN001, ANN202
        model = self._model_of()
        kwargs = dict(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                      past_key_values=cache, use_cache=True, logits_to_keep=1)
        if not hasattr(model, "peft_config"):
            return model(**kwargs)
        if all(row.adapter is None for row in rows):
            with model.disable_adapter():
                return model(**kwargs)
        return model(**kwargs, adapter_names=[row.adapter or _BASE for row in rows])

    def _prefill(self, new: list[Row]) -> None:
        """Run the new rows' prompts, choose their first tokens, and join them to the batch."""
        from transformers import DynamicCache

        torch = self._torch
        length = max(len(row.prompt) for row in new)
        ids = torch.zeros((len(new), length), dtype=torch.long)
        mask = torch.zeros((len(new), length), dtype=torch.long)
        for i, row in enumerate(new):
            ids[i, length - len(row.prompt):] = torch.tensor(row.prompt)
            mask[i, length - len(row.prompt):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        logits = self._forward(new, ids, mask, positions, cache).logits[:, -1, :]
        if self._rows:
            cache, mask = self._join(cache, mask)
        self._rows, self._cache, self._mask = [*self._rows, *new], cache, mask
        self._advance(new, self._choose(new, logits), first=len(self._rows) - len(new))

    def _join(self, cache, mask):  # noqa: ANN001, ANN202
        """The running batch's cache and mask with ``cache``/``mask`` appended below,
        the shorter of the two padded on the left."""
        torch = self._torch
        old, new = self._mask.shape[1], mask.shape[1]
        width = max(old, new)
        for mine, theirs in zip(self._cache.layers, cache.layers):
            mine.keys = torch.cat([_pad_left(torch, mine.keys, width - old), _pad_left(torch, theirs.keys, width - new)])
            mine.values = torch.cat([_pad_left(torch, mine.values, width - old),
                                     _pad_left(torch, theirs.values, width - new)])
        mask = torch.cat([torch.nn.functional.pad(self._mask, (width - old, 0)),
                          torch.nn.functional.pad(mask, (width - new, 0))])
        return self._cache, mask

    def _decode(self) -> None:
        torch = self._torch
        rows = self._rows
        last = torch.tensor([[row.ids[-1]] for row in rows])
        positions = torch.tensor([[len(row.ids) - 1] for row in rows])
        mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=self._mask.dtype)], dim=1)
        logits = self._forward(rows, last, mask, positions, self._cache).logits[:, -1, :]
        self._mask = mask
        self._advance(rows, self._choose(rows, logits), first=0)

    def _advance(self, rows: list[Row], chosen: list[int], first: int) -> None:
        """Hand each row its token; drop the rows that are done (rows[i] is batch row first + i)."""
        leaving = []
        for offset, (row, token) in enumerate(zip(rows, chosen)):
            remember(row, token)
            row.tokens.put(token)
            if token in self._eos or row.generated >= row.params.max_tokens or row.cancel.is_set():
                leaving.append(first + offset)
        if leaving:
            self._drop(leaving)

    def _drop(self, indices: list[int]) -> None:
        torch = self._torch
        for i in indices:
            self._rows[i].tokens.put(DONE)
        gone = set(indices)
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self._rows = [self._rows[i] for i in keep]
        if not self._rows:
            self._cache = self._mask = None
        else:
            index = torch.tensor(keep)
            self._mask = self._mask[index]
            unused = int((self._mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
            for layer in self._cache.layers:
                layer.keys = layer.keys[index, :, unused:]
                layer.values = layer.values[index, :, unused:]
            self._mask = self._mask[:, unused:]
        self._collect(self.in_use())

    # -- choosing tokens -------------------------------------------------------------
    def _choose(self, rows: list[Row], logits) -> list[int]:  # noqa: ANN001
        torch = self._torch
        scores = logits.float()
        chosen = []
        for i, row in enumerate(rows):
            s = adjust_scores(torch, scores[i], row)
            p = row.params
            if p.temperature > 0:
                chosen.append(_sample(torch, s, p.temperature, p.top_p, row.generator))
            else:
                chosen.append(int(s.argmax()))
        return chosen


def adjust_scores(torch, s, row: Row):  # noqa: ANN001, ANN201
    """One row's next-token scores (modified in place) after its repetition penalty (as
    transformers applies it: to every token of prompt and answer), OpenAI's presence and
    frequency penalties (answer tokens only: ``presence`` once per token that appeared,
    ``frequency`` once per appearance) and its no-repeat n-gram ban."""
    p = row.params
    if p.repetition_penalty != 1.0:
        seen = torch.tensor(sorted(set(row.ids)))
        picked = s[seen]
        s[seen] = torch.where(picked < 0, picked * p.repetition_penalty, picked / p.repetition_penalty)
    if (p.presence_penalty or p.frequency_penalty) and row.counts:
        tokens = torch.tensor(list(row.counts))
        counts = torch.tensor(list(row.counts.values()), dtype=s.dtype)
        s[tokens] -= p.presence_penalty + p.frequency_penalty * counts
    if p.no_repeat_ngram_size:
        banned = row.ngrams.get(tuple(row.ids[max(0, len(row.ids) - p.no_repeat_ngram_size + 1):]), ())
        if banned:
            s[torch.tensor(sorted(banned))] = float("-inf")
    return s


def remember(row: Row, token: int) -> None:
    """Record ``token`` in the row's sequence, answer counts and n-gram table."""
    row.counts[token] = row.counts.get(token, 0) + 1
    n = row.params.no_repeat_ngram_size
    row.ids.append(token)
    if n and len(row.ids) >= n:
        row.add_gram(row.ids[-n:])


def _sample(torch, scores, temperature: float, top_p: float, generator) -> int:  # noqa: ANN001
    """A token drawn from softmax(scores / temperature) restricted to the top_p nucleus."""
    probs = torch.softmax(scores / temperature, dim=-1)
    if top_p < 1.0:
        ordered, order = probs.sort(descending=True)
        outside = ordered.cumsum(0) - ordered > top_p  # keep the smallest set reaching top_p
        ordered[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, ordered)
    return int(torch.multinomial(probs, 1, generator=generator))


def _pad_left(torch, states, n: int):  # noqa: ANN001, ANN202
    """(batch, heads, length, dim) states with ``n`` zero positions added in front."""
    return torch.nn.functional.pad(states, (0, 0, n, 0)) if n else states
