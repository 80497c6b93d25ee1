"""Short texts (a search query, a chat message to route) encoded on ONNX Runtime.

A single query through PyTorch's eager sentence-transformers model spends most
of its time (all-MiniLM-L6-v2, one thread) in per-operator overhead. The same model
exported to ONNX and run by ONNX Runtime (graph optimisations on, far less work per
operator) encodes the same text much faster with one thread (measured:
benchmarks/README.md, Design measurements; ``benchmarks/bench_retrieval.py`` reports
the stages).

How it works: on first use the sentence-transformers model is exported in memory
(``torch.onnx.export``, a few seconds, nothing written to disk) and checked
against ``SentenceTransformer.encode`` on probe texts of different lengths, one
at a time and padded in a batch. Only if every vector agrees within
``TOLERANCE`` are short requests served by ONNX Runtime; otherwise (an
unsupported module layout, a missing ``onnx`` package, a failed export) the
encoder logs why once and keeps to sentence-transformers. Big jobs (ingestion,
training a router on float vectors) always use sentence-transformers, which
sorts and batches them.

ONNX Runtime runs with up to two intra-op threads (``threads()``), which sleep between
runs instead of spinning: the encoder shares the machine with the LLM, so a
thread may not burn a core waiting for work. With one short text at a time and
pauses between runs (as chat turns come), two sleeping threads answer faster than
one for little more CPU; spinning threads are barely faster still but burn far more
CPU. Requests that arrive while a run is in progress (a burst of chat turns being
routed at once) wait for it and then go through together in one batch, much faster
than one by one (measured: benchmarks/README.md, Design measurements).

The router can use an int8 copy of the model instead (``load_query_encoder(path,
int8=True)``): ONNX Runtime's dynamic quantisation of the matrix products, one
scale per output channel. One short text is bound by reading the weights, so
int8 weights take much less CPU per text (measured: benchmarks/README.md, Router
CPU). Its vectors are close to the library's, not equal (cosine >=
``INT8_MIN_COSINE`` on the probes, checked at start-up), so only a user that
embeds its training texts and its queries with the same copy may take it: the
router does both. Quantising the activations
depends on the whole input, so each text runs alone, never padded into a batch
with others: a message gets the same vector, and the same route, whatever else
arrives with it.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .embeddings import load_encoder

__all__ = ["QueryEncoder", "load_query_encoder", "TOLERANCE", "INT8_MIN_COSINE", "SMALL_BATCH", "threads"]

log = logging.getLogger(__name__)

#: Largest absolute difference allowed between an ONNX vector and the library's own.
TOLERANCE = 1e-5
#: Smallest cosine similarity allowed between an int8 vector and the library's own.
INT8_MIN_COSINE = 0.95
#: Requests of up to this many texts go to ONNX Runtime; larger ones to sentence-transformers.
SMALL_BATCH = 8
#: Most texts that waiting requests are merged into for one ONNX Runtime run.
MERGE_LIMIT = 16


def threads() -> int:
    """ONNX Runtime's intra-op threads for a session built now: two, or one where this
    thread may run on a single core (a one-core machine, or the assistant kept off
    the cores of a managed vLLM's model)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(2, cores)


_PROBES = (
    "How do I connect a custom domain to my site?",
    "refund",
    "My card was declined at a shop yesterday although there was money in the account; "
    "what can I do and will I be charged a fee for the failed payment?",
)

#: The model's inputs, as fields of a ``tokenizers.Encoding``.
_ENCODING_FIELDS = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}


class QueryEncoder:
    """``encode(texts)`` with ``SentenceTransformer.encode``'s keywords, unit vectors out.

    Use :func:`load_query_encoder` to get the shared instance for a model folder.
    """

    def __init__(self, model: Any, int8: bool = False):
        self.model = model  # the SentenceTransformer
        self.int8 = int8
        self._session: Any = None
        self._tokenizer: Any = None  # for one text at a time; see _features
        self._checked = False
        self._lock = threading.Lock()
        self.reason: str | None = None  # why ONNX Runtime is not used, once known
        self._merged = _Merger(self._run, MERGE_LIMIT)

    def prepare(self) -> bool:
        """Export and verify now (a few seconds) instead of on the first short request.

        Returns whether ONNX Runtime serves short requests (if not, ``reason`` says why).
        """
        self._ensure_session()
        return self._session is not None

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
        **_: Any,
    ) -> np.ndarray:
        """float32 array (len(texts), dim); always L2-normalised, like the store's vectors."""
        texts = list(texts)
        if texts and (self.int8 or len(texts) <= SMALL_BATCH):
            self._ensure_session()
            if self._session is not None and self.int8:
                return np.vstack([self._run([text]) for text in texts])
            if self._session is not None:
                return self._merged(texts)
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress_bar,
        )
        return np.asarray(vectors, dtype=np.float32)

    # ------------------------------------------------------------ internals

    def _run(self, texts: list[str]) -> np.ndarray:
        (vectors,) = self._session.run(None, self._features(texts))
        return np.asarray(vectors, dtype=np.float32)

    def _features(self, texts: list[str]) -> dict[str, np.ndarray]:
        """ONNX Runtime's inputs for ``texts``. One text (every message the router sees)
        goes straight through the fast tokenizer, much faster than sentence-transformers'
        ``preprocess``, which gives the same ids (checked at start-up; measured:
        benchmarks/README.md, Design measurements)."""
        if len(texts) == 1 and self._tokenizer is not None:
            encoding = self._tokenizer.encode(texts[0])
            return {name: np.array([getattr(encoding, _ENCODING_FIELDS[name])], dtype=np.int64)
                    for name in self._inputs}
        features = self.model.preprocess(texts)
        return {name: features[name].numpy() for name in self._inputs}

    def _ensure_session(self) -> None:
        if self._checked:
            return
        with self._lock:
            if self._checked:
                return
            try:
                self._session, self._inputs = self._build()
                self._tokenizer = self._single_text_tokenizer()
                self._verify()
            except Exception as exc:  # any reason at all: keep to sentence-transformers
                self._session = None
                self.reason = f"{type(exc).__name__}: {exc}"
                log.warning("query encoder: using sentence-transformers, not ONNX Runtime (%s)", self.reason)
            self._checked = True

    def _build(self) -> tuple[Any, list[str]]:
        import onnxruntime
        import torch

        graph = _PooledModel.from_sentence_transformer(self.model)
        features = self.model.preprocess(list(_PROBES[:2]))
        inputs = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]
        example = tuple(features[name] for name in inputs)
        axes = {name: {0: "batch", 1: "tokens"} for name in inputs}
        axes["embedding"] = {0: "batch"}
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.with_inputs(inputs),
                example,
                buffer,
                input_names=inputs,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        model = buffer.getvalue()
        if self.int8:
            model = _quantized(model)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        return session, inputs

    def _single_text_tokenizer(self) -> Any:
        """A copy of the model's fast tokenizer that truncates as sentence-transformers does
        and never pads, if it gives ``preprocess``'s ids for the probes and for a text longer
        than the model takes; else None (every text then goes through ``preprocess``)."""
        backend = getattr(self.model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.model.max_seq_length)
        for text in [*_PROBES, "word " * (2 * self.model.max_seq_length)]:
            features, encoding = self.model.preprocess([text]), tokenizer.encode(text)
            if any(features[name][0].tolist() != getattr(encoding, _ENCODING_FIELDS[name]) for name in self._inputs):
                log.info("query encoder: the fast tokenizer differs from sentence-transformers'; not used")
                return None
        return tokenizer

    def _verify(self) -> None:
        reference = np.asarray(
            self.model.encode(list(_PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False),
            dtype=np.float32,
        )
        single = np.vstack([self._run([text]) for text in _PROBES])
        if self.int8:
            worst = float(np.min(np.sum(single * reference, axis=1)))
            if worst < INT8_MIN_COSINE:
                raise ValueError(f"int8 vectors reach only {worst:.3f} cosine similarity to sentence-transformers'")
            return
        batched = self._run(list(_PROBES))
        worst = float(max(np.abs(single - reference).max(), np.abs(batched - reference).max()))
        if worst > TOLERANCE:
            raise ValueError(f"ONNX vectors differ from sentence-transformers' by {worst:.2e}")


def _quantized(model: bytes) -> bytes:
    """``model`` with its MatMul weights in int8, one scale per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="lepton-int8-") as folder:
        source, target = Path(folder, "float.onnx"), Path(folder, "int8.onnx")
        source.write_bytes(model)
        quantize_dynamic(source, target, op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
        return target.read_bytes()


class _Job:
    def __init__(self, texts: list[str]):
        self.texts = texts
        self.done = False
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class _Merger:
    """Calls ``run(texts)`` for concurrent callers, merging those that wait into one call.

    The first caller runs its texts at once. Callers arriving meanwhile queue up; when
    the run ends, one of them runs the whole queue (up to ``limit`` texts) in a single
    call and hands each caller its rows. Nobody waits for more than the run in
    progress and the one that serves them; a lone caller never waits at all.
    """

    def __init__(self, run: Any, limit: int):
        self._run = run
        self._limit = limit
        self._cond = threading.Condition()
        self._queue: list[_Job] = []
        self._busy = False

    def __call__(self, texts: list[str]) -> np.ndarray:
        job = _Job(texts)
        with self._cond:
            self._queue.append(job)
        while True:
            with self._cond:
                while self._busy and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                self._busy = True
                batch = [self._queue.pop(0)]
                size = len(batch[0].texts)
                while self._queue and size + len(self._queue[0].texts) <= self._limit:
                    size += len(self._queue[0].texts)
                    batch.append(self._queue.pop(0))
            self._serve(batch)
        if job.error is not None:
            raise job.error
        return job.vectors

    def _serve(self, batch: list[_Job]) -> None:
        try:
            vectors, error = self._run([text for job in batch for text in job.texts]), None
        except BaseException as exc:  # handed to every caller of the batch
            vectors, error = None, exc
        with self._cond:
            start = 0
            for job in batch:
                if error is None:
                    job.vectors = vectors[start:start + len(job.texts)]
                    start += len(job.texts)
                job.error = error
                job.done = True
            self._busy = False
            self._cond.notify_all()


class _PooledModel:
    """The transformer, mean or CLS pooling and normalisation as one traceable module."""

    @staticmethod
    def from_sentence_transformer(model: Any) -> "_PooledModel":
        names = [type(module).__name__ for module in model]
        if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
            raise ValueError(f"unsupported module layout {names}")
        pooling = model[1]
        config = pooling.get_config_dict()
        # sentence-transformers >= 6 says pooling_mode="mean"; older versions set one flag per mode.
        mode = config.get("pooling_mode") or "+".join(
            k.removeprefix("pooling_mode_") for k, v in config.items() if k.startswith("pooling_mode_") and v is True
        )
        mode = {"mean_tokens": "mean", "cls_token": "cls"}.get(mode, mode)
        if mode not in ("mean", "cls") or config.get("include_prompt", True) is not True:
            raise ValueError(f"unsupported pooling {mode!r}")
        transformer = model[0].auto_model
        transformer.eval()
        return _PooledModel(transformer, mean=mode == "mean")

    def __init__(self, transformer: Any, mean: bool):
        self.transformer = transformer
        self.mean = mean

    def with_inputs(self, inputs: list[str]) -> Any:
        import torch

        transformer, mean = self.transformer, self.mean

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.transformer = transformer

            def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
                named = dict(zip(inputs, tensors))
                hidden = self.transformer(**named).last_hidden_state
                if mean:
                    weights = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                else:
                    pooled = hidden[:, 0]
                return torch.nn.functional.normalize(pooled, p=2, dim=1)

        return Graph().eval()


@functools.lru_cache(maxsize=4)
def load_query_encoder(path: str | None = None, int8: bool = False) -> QueryEncoder:
    """The shared :class:`QueryEncoder` for ``path`` (default: the wheel's model);
    ``int8``: the router's int8 copy (see the module's docstring)."""
    return QueryEncoder(load_encoder(path), int8=int8)
