"""Short texts on ONNX Runtime: same vectors as sentence-transformers, or a fallback to it."""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from retrieval import default_embedding_path
from retrieval.query_encoder import (
    INT8_MIN_COSINE,
    SMALL_BATCH,
    TOLERANCE,
    QueryEncoder,
    _Merger,
    load_query_encoder,
    threads,
)

TEXTS = [
    "Where is my refund?",
    "I lost my card yesterday evening in town, please block it before somebody uses it",
    "hi",
    "Can I connect a domain I bought elsewhere to my site, and how long does it take to work?",
]


def test_default_model_runs_on_onnx_runtime_with_the_same_vectors(encoder):
    query_encoder = load_query_encoder(None)
    assert query_encoder.prepare(), query_encoder.reason
    reference = encoder.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)

    batched = query_encoder.encode(TEXTS)  # padded to the longest text
    one_by_one = np.vstack([query_encoder.encode([text]) for text in TEXTS])

    assert batched.dtype == np.float32 and batched.shape == (len(TEXTS), 384)
    assert np.abs(batched - reference).max() <= TOLERANCE
    assert np.abs(one_by_one - reference).max() <= TOLERANCE
    # The nearest neighbour of every text is itself, under both encoders alike.
    assert (np.argmax(one_by_one @ reference.T, axis=1) == np.arange(len(TEXTS))).all()


def test_one_text_skips_preprocess_with_the_same_ids_and_vectors(encoder):
    """One text at a time goes straight through the fast tokenizer: the same ids as
    sentence-transformers' preprocess, truncation of an over-long text included."""
    query_encoder = load_query_encoder(None)
    assert query_encoder.prepare(), query_encoder.reason
    assert query_encoder._tokenizer is not None
    long_text = "please block my card " * 200  # beyond the model's 256 tokens
    for text in [*TEXTS, long_text, "", "日本語 🙂 émigré"]:
        fast = query_encoder._features([text])
        library = {name: value.numpy() for name, value in encoder.preprocess([text]).items()
                   if name in fast}
        assert fast.keys() == library.keys() and all(np.array_equal(fast[k], library[k]) for k in fast), text
    assert query_encoder._features([long_text])["input_ids"].shape == (1, encoder.max_seq_length)
    reference = encoder.encode([long_text], normalize_embeddings=True, convert_to_numpy=True)
    assert np.abs(query_encoder.encode([long_text]) - reference).max() <= TOLERANCE


def test_onnx_threads_sleep_between_runs_rather_than_spin():
    """The LLM shares the cores: the encoder's threads must not keep one busy waiting for work."""
    query_encoder = load_query_encoder(None)
    assert query_encoder.prepare(), query_encoder.reason
    options = query_encoder._session.get_session_options()
    assert options.intra_op_num_threads == threads() == min(2, len(os.sched_getaffinity(0)))
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_int8_copy_is_close_to_the_float_vectors_but_not_equal(encoder):
    """The router's copy: near the library's vectors (checked at start-up), and really int8."""
    int8 = load_query_encoder(None, int8=True)
    assert int8.prepare(), int8.reason
    reference = encoder.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)

    vectors = int8.encode(TEXTS)

    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (np.sum(vectors * reference, axis=1) >= INT8_MIN_COSINE).all()
    assert np.abs(vectors - reference).max() > TOLERANCE  # not the float model
    assert (np.argmax(vectors @ reference.T, axis=1) == np.arange(len(TEXTS))).all()


def test_int8_vector_of_a_text_does_not_depend_on_the_others():
    """Activations are quantised per input, so every text runs alone: a message routes
    the same whether it arrives alone, among others, or in a big request (the router's
    training examples take that path too)."""
    int8 = load_query_encoder(None, int8=True)
    assert int8.prepare(), int8.reason
    many = [f"filler message number {i}" for i in range(SMALL_BATCH + 2)] + TEXTS

    alone = np.vstack([int8.encode([text]) for text in TEXTS])
    together = int8.encode(many)[-len(TEXTS):]

    assert np.array_equal(alone, together)


def test_big_requests_go_through_sentence_transformers_unchanged(encoder):
    texts = [f"question number {i} about my account" for i in range(SMALL_BATCH + 1)]
    vectors = load_query_encoder(None).encode(texts)
    assert np.array_equal(vectors, encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True))


def test_unsupported_model_layout_keeps_to_sentence_transformers(caplog):
    folder = str(default_embedding_path())
    transformer = Transformer(folder)
    max_pooled = SentenceTransformer(
        modules=[transformer, Pooling(transformer.get_embedding_dimension(), pooling_mode="max")],
        device="cpu",
    )
    query_encoder = QueryEncoder(max_pooled)

    with caplog.at_level(logging.WARNING, logger="retrieval.query_encoder"):
        assert query_encoder.prepare() is False

    assert "unsupported pooling 'max'" in query_encoder.reason
    assert "using sentence-transformers, not ONNX Runtime" in caplog.text
    vectors = query_encoder.encode(TEXTS[:2])
    assert np.array_equal(vectors, max_pooled.encode(TEXTS[:2], normalize_embeddings=True, convert_to_numpy=True))


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_requests_arriving_during_a_run_go_through_together_in_the_next():
    calls: list[list[str]] = []
    gate = threading.Event()

    def run(texts):
        calls.append(list(texts))
        if len(calls) == 1:
            gate.wait(5)  # hold the first run so that the others queue behind it
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    merger = _Merger(run, limit=16)
    results: dict = {}
    first = threading.Thread(target=lambda: results.__setitem__(0, merger(["a"])))
    first.start()
    _wait_for(lambda: len(calls) == 1)
    others = [threading.Thread(target=lambda i=i: results.__setitem__(i, merger(["x" * i, "y" * i])))
              for i in range(1, 5)]
    for thread in others:
        thread.start()
    _wait_for(lambda: len(merger._queue) == 4)
    gate.set()
    for thread in [first, *others]:
        thread.join(5)

    assert [len(batch) for batch in calls] == [1, 8]  # four waiting requests, one run
    assert results[0].tolist() == [[1.0]]
    for i in range(1, 5):
        assert results[i].tolist() == [[float(i)], [float(i)]]  # each caller gets its own rows


def test_a_failed_run_fails_its_callers_only():
    def run(texts):
        if "bad" in texts:
            raise RuntimeError("encoder broke")
        return np.zeros((len(texts), 1), np.float32)

    merger = _Merger(run, limit=16)
    with pytest.raises(RuntimeError, match="encoder broke"):
        merger(["bad"])
    assert merger(["fine"]).shape == (1, 1)


def test_concurrent_queries_get_their_own_vectors(encoder):
    query_encoder = load_query_encoder(None)
    assert query_encoder.prepare()
    texts = [f"{text} ({n})" for n in range(3) for text in TEXTS]
    reference = encoder.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    results: dict[int, np.ndarray] = {}
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, query_encoder.encode([texts[i]])))
               for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    got = np.vstack([results[i] for i in range(len(texts))])
    assert np.abs(got - reference).max() <= TOLERANCE
