"""Short texts on ONNX Runtime: same vectors as sentence-transformers, or a fallback to it."""

from __future__ import annotations

import logging

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

from retrieval import default_embedding_path
from retrieval.query_encoder import SMALL_BATCH, TOLERANCE, QueryEncoder, load_query_encoder

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
