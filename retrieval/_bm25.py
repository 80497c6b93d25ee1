"""Okapi BM25 over a sparse matrix, so a query costs the postings of its terms only.

rank_bm25 recomputes every document's score in Python per query term, which takes
tens of milliseconds at 50k chunks. Here each (document, term) weight

    idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen))

is computed once when the index is built and stored in a CSC matrix; a query sums
the columns of its terms (a few thousand non-zeros) and takes the top n.
idf is Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))``, which is never negative,
so a term present in most chunks still counts a little instead of subtracting.
"""

from __future__ import annotations

import re

import numpy as np
from scipy import sparse

__all__ = ["BM25Index", "tokenize"]

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

# Function words only: they carry no topic, and dropping them shortens queries.
_STOPWORDS = frozenset(
    """a an and are as at be been but by can could did do does doing for from had has have
    having he her hers him his how i if in into is it its itself me my no nor not of off on
    once only or our ours out over own she should so some such than that the their theirs
    them then there these they this those to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself s t""".split()
)


def _stem(word: str) -> str:
    """A light English suffix stripper (plurals, -ing, -ed, -ly).

    Conservative on purpose: it merges "payments"/"payment" and "charged"/"charge"
    style variants without the over-stemming of a full Porter stemmer.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if re.search(r"[aeiouy]", stem):
                # "shipping" -> "ship", "charged" -> "charg(e)": undouble, then fold a silent e.
                if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                    stem = stem[:-1]
                return stem.rstrip("e") if len(stem) > 4 else stem
    if word.endswith("e") and len(word) > 4:
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, stop words dropped, lightly stemmed."""
    return [_stem(t) for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


class BM25Index:
    """An immutable BM25 index over ``texts`` (rows are positions in ``texts``)."""

    def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            lengths[row] = len(tokens)
            tf: dict[int, int] = {}
            for token in tokens:
                col = vocab.setdefault(token, len(vocab))
                tf[col] = tf.get(col, 0) + 1
            rows.extend([row] * len(tf))
            cols.extend(tf.keys())
            counts.extend(tf.values())
        self.vocab = vocab
        self.size = len(texts)
        n_terms = len(vocab)
        tf_matrix = sparse.csc_matrix(
            (np.asarray(counts, dtype=np.float32), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
            shape=(self.size, n_terms),
        )
        df = np.diff(tf_matrix.indptr).astype(np.float32)
        idf = np.log1p((self.size - df + 0.5) / (df + 0.5)).astype(np.float32)
        avg = float(lengths.mean()) if self.size else 0.0
        norm = k1 * (1 - b + b * lengths / avg) if avg > 0 else np.full(self.size, k1, np.float32)
        # Weight every stored tf in place: data[j] belongs to row indices[j].
        tf_values = tf_matrix.data
        tf_matrix.data = (
            idf[np.repeat(np.arange(n_terms), np.diff(tf_matrix.indptr))]
            * tf_values
            * (k1 + 1)
            / (tf_values + norm[tf_matrix.indices])
        ).astype(np.float32)
        self.weights = tf_matrix

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (zeros when no term is known)."""
        cols = sorted({self.vocab[t] for t in tokenize(query) if t in self.vocab})
        if not cols or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self.weights[:, cols].sum(axis=1)).ravel()

    def top(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``n`` best (row, score) pairs with a positive score, best first.

        ``mask`` (bool per row) restricts the candidates, e.g. to a metadata filter.
        """
        scores = self.scores(query)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        positive = np.flatnonzero(scores > 0)
        if positive.size == 0:
            return []
        if positive.size > n:
            part = np.argpartition(-scores[positive], n - 1)[:n]
            positive = positive[part]
        order = positive[np.argsort(-scores[positive], kind="stable")]
        return [(int(i), float(scores[i])) for i in order]
