"""Search a knowledge base: dense (Chroma), lexical (BM25) or both fused.

Hybrid search runs both and merges the rankings by reciprocal rank fusion
(score = sum over rankings of 1 / (60 + rank)), which needs no score calibration
between cosine similarities and BM25 scores. Dense retrieval finds paraphrases;
BM25 finds exact product names, error codes and rare words the small embedding
model blurs.

The BM25 index of a collection is built on its first lexical search and kept in
memory until the collection's revision changes (any ingestion or deletion, in any
process, changes it).
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from ._bm25 import BM25Index
from .errors import InvalidQueryError
from .store import KnowledgeStore

__all__ = ["Retriever", "Hit", "Citation", "SearchMode", "MODES", "RRF_K", "MAX_K"]

SearchMode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
#: The constant of reciprocal rank fusion (Cormack et al. 2009).
RRF_K = 60
MAX_K = 100
MAX_QUERY_CHARS = 4000

try:  # Chroma 1.x reports a malformed `where` as InvalidArgumentError, older ones as ValueError
    from chromadb.errors import InvalidArgumentError as _InvalidArgument

    _FILTER_ERRORS: tuple[type[Exception], ...] = (ValueError, _InvalidArgument)
except ImportError:  # pragma: no cover
    _FILTER_ERRORS = (ValueError,)


@dataclass(frozen=True)
class Citation:
    """Where a hit comes from, enough to show and link a reference."""

    source: str
    title: str
    chunk_id: str
    chunk_index: int
    score: float
    heading: str = ""
    page: int | None = None

    def label(self) -> str:
        """Short human-readable reference, e.g. ``Refund policy > Fees (faq.md)``."""
        name = self.source.rsplit("/", 1)[-1]
        where = f"{self.title} > {self.heading}" if self.heading else self.title
        page = f", p. {self.page}" if self.page else ""
        return f"{where} ({name}{page})"


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its citation.

    ``score`` is the mode's own: cosine similarity (dense), BM25 score (bm25) or the
    fused RRF score (hybrid). ``ranks`` gives the 1-based rank in each ranking that
    found it.
    """

    text: str
    score: float
    citation: Citation
    metadata: dict[str, Any] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def chunk_id(self) -> str:
        return self.citation.chunk_id

    @property
    def source(self) -> str:
        return self.citation.source

    @property
    def title(self) -> str:
        return self.citation.title

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "score": self.score, "citation": asdict(self.citation),
                "metadata": dict(self.metadata), "ranks": dict(self.ranks)}


#: One candidate of a ranking: (chunk id, text, metadata as stored, score).
_Entry = tuple[str, str, dict, float]


@dataclass
class _LexicalIndex:
    revision: str
    ids: list[str]
    texts: list[str]
    metadatas: list[dict]
    bm25: BM25Index
    row_of: dict[str, int]
    _by_source: dict[str, list[int]] | None = None

    def rows_of_source(self, source: str) -> list[int]:
        """The rows of one source's chunks, in chunk order."""
        if self._by_source is None:
            by_source: dict[str, list[int]] = {}
            for row, meta in enumerate(self.metadatas):
                by_source.setdefault(str(meta.get("source", "")), []).append(row)
            for rows in by_source.values():
                rows.sort(key=lambda r: int(self.metadatas[r].get("chunk", 0)))
            self._by_source = by_source
        return self._by_source.get(source, [])


def chunk_body(text: str, meta: dict) -> str:
    """A chunk's text without the title and heading lines ingestion put before it."""
    for line in (meta.get("title"), meta.get("heading")):
        if line and text.startswith(str(line)):
            text = text[len(str(line)):].lstrip("\n")
    return text.strip()


def join_overlapping(first: str, second: str, longest: int = 400) -> str:
    """``first`` followed by ``second``, less the text that ends one and starts the other."""
    for size in range(min(longest, len(first), len(second)), 0, -1):
        if first.endswith(second[:size]):
            return first + second[size:]
    return first + "\n" + second


_SENTENCE_END = re.compile(r"[.!?](?=\s)|:?\n")


def from_sentence_start(text: str) -> str:
    """``text`` from its first whole sentence: a chunk that starts inside a sentence (its
    overlap with the one before begins mid-sentence) loses the fragment, unless that
    would drop more than a third of it."""
    if not text or text[0].isupper() or text[0].isdigit() or not text[0].isalpha():
        return text
    end = _SENTENCE_END.search(text)
    if end is None or end.end() > len(text) // 3:
        return text
    return text[end.end():].lstrip()


def cut_at_sentence(text: str, chars: int) -> str:
    """``text`` if it fits in ``chars``, else cut after its last sentence end that fits
    (a line end counts), or, when that would drop more than half, after a word."""
    if len(text) <= chars:
        return text
    head = text[: chars + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() <= chars]
    if ends and ends[-1] > chars // 2:
        return head[: ends[-1]].rstrip()
    return head[:chars].rsplit(" ", 1)[0].rstrip() + "…"


def _hit(cid: str, text: str, meta: dict, score: float, ranks: dict[str, int]) -> Hit:
    page = meta.get("page")
    citation = Citation(
        source=str(meta.get("source", "")),
        title=str(meta.get("title", "")),
        chunk_id=cid,
        chunk_index=int(meta.get("chunk", 0)),
        score=score,
        heading=str(meta.get("heading", "") or ""),
        page=int(page) if isinstance(page, (int, float)) and not isinstance(page, bool) else None,
    )
    return Hit(text=text or "", score=score, citation=citation, metadata=meta, ranks=ranks)


class Retriever:
    """Searches the knowledge bases of a :class:`KnowledgeStore`. Thread-safe; keep one per process."""

    def __init__(self, store: KnowledgeStore, *, candidates: int = 50):
        self.store = store
        #: How many results each ranking contributes to the fusion (at least k).
        self.candidates = candidates
        self._indexes: dict[str, _LexicalIndex] = {}
        self._lock = threading.Lock()
        store.add_listener(self._invalidate)

    def _invalidate(self, name: str) -> None:
        self._indexes.pop(name, None)

    # -- validation ----------------------------------------------------------

    @staticmethod
    def _check(query: str, k: int, mode: str) -> str:
        if not isinstance(query, str) or not query.strip():
            raise InvalidQueryError("query is empty: ask something")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidQueryError(f"query is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidQueryError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        if mode not in MODES:
            raise InvalidQueryError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        return query.strip()

    # -- public ----------------------------------------------------------------

    def search(
        self,
        query: str,
        collection: str,
        tenant: str | None = None,
        k: int = 5,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks of knowledge base ``collection`` for ``query``, best first.

        ``vector``: the query's unit-length embedding when the caller has it already, from
        the collection's embedding model (the router's int8 copy of it qualifies: its
        vectors are checked against the float model's at start-up); the dense ranking then
        skips encoding the query.

        ``where`` is a Chroma metadata filter (e.g. ``{"source": "faq.md"}``) applied
        to both rankings. Raises :class:`InvalidQueryError` for an empty query, k outside
        1..100 or an unknown mode, :class:`CollectionNotFoundError` for a knowledge base
        that does not exist; nothing is written either way.
        """
        query = self._check(query, k, mode)
        if where is not None and not isinstance(where, dict):
            raise InvalidQueryError("where must be a dict, e.g. {'source': 'faq.md'}")
        col = self.store.search_collection(collection, tenant)
        tenant = self.store.tenant(tenant)
        pool = max(k, self.candidates) if mode == "hybrid" else k

        dense: list[_Entry] = []
        lexical: list[_Entry] = []
        # Hybrid builds the lexical index anyway; its in-memory texts and metadata then
        # spare Chroma from returning them for the dense candidates (measured:
        # benchmarks/README.md, Design measurements).
        index = self._index(col, collection, tenant) if mode != "dense" else None
        if mode in ("dense", "hybrid"):
            query_vector = self.store.embedding.encode_query(query) if vector is None \
                else np.asarray(vector, dtype=np.float32).reshape(1, -1)
            dense = self._dense(col, query_vector, pool, where, index)
        if mode in ("bm25", "hybrid"):
            lexical = self._bm25(col, index, query, pool, where)
        if mode == "hybrid":
            return self._fuse(dense, lexical, k)
        name, ranking = ("dense", dense) if mode == "dense" else ("bm25", lexical)
        return [_hit(cid, text, dict(meta), score, {name: rank})
                for rank, (cid, text, meta, score) in enumerate(ranking[:k], start=1)]

    def passage(self, hit: Hit, collection: str, tenant: str | None = None, *, chars: int = 900) -> str:
        """The text of ``hit``'s document from the hit onward, at most ``chars`` characters.

        The chunks that follow the hit in its source are joined back together, without
        their title/heading lines and the overlap two neighbours share, and the text is
        cut at the last sentence end (else word end) that fits. For an answer that
        quotes the help centre, a chunk alone often stops before the steps it starts."""
        col = self.store.search_collection(collection, tenant)
        index = self._index(col, collection, self.store.tenant(tenant))
        rows = index.rows_of_source(hit.citation.source)
        following = [r for r in rows if int(index.metadatas[r].get("chunk", 0)) >= hit.citation.chunk_index]
        text = ""
        for row in following or [None]:
            meta = index.metadatas[row] if row is not None else hit.metadata
            body = chunk_body(index.texts[row] if row is not None else hit.text, meta)
            text = join_overlapping(text, body) if text else body
            if len(text) >= chars:
                break
        if hit.citation.chunk_index > 0:
            text = from_sentence_start(text)
        return cut_at_sentence(text, chars)

    def warm(self, collection: str, tenant: str | None = None) -> None:
        """Build the BM25 index and load the encoder now rather than on the first query."""
        col = self.store.collection(collection, tenant)
        self._index(col, collection, self.store.tenant(tenant))
        self.store.embedding.encode_query("warm-up")

    # -- rankings ---------------------------------------------------------------

    def _dense(self, col, vector: np.ndarray, n: int, where: dict | None, index: _LexicalIndex | None) -> list[_Entry]:  # noqa: ANN001
        include = ["distances"] if index is not None else ["documents", "metadatas", "distances"]
        try:
            result = col.query(query_embeddings=vector, n_results=n, where=where or None, include=include)
        except _FILTER_ERRORS as exc:  # Chroma's message for a malformed filter
            raise InvalidQueryError(f"invalid filter {where!r}: {exc}") from None
        ids, distances = result["ids"][0], result["distances"][0]
        if index is None:
            texts, metas = result["documents"][0], result["metadatas"][0]
        else:
            rows = [index.row_of.get(cid) for cid in ids]
            if None in rows:
                # Written after the index was built (a concurrent ingest): ask Chroma.
                got = col.get(ids=list(ids), include=["documents", "metadatas"])
                found = {cid: (t, m) for cid, t, m in zip(got["ids"], got["documents"], got["metadatas"])}
                pairs = [found.get(cid, ("", {})) for cid in ids]
            else:
                pairs = [(index.texts[r], index.metadatas[r]) for r in rows]
            texts, metas = [t for t, _ in pairs], [m for _, m in pairs]
        return [(cid, text or "", meta or {}, 1.0 - float(dist))
                for cid, text, meta, dist in zip(ids, texts, metas, distances)]

    def _index(self, col, collection: str, tenant: str) -> _LexicalIndex:  # noqa: ANN001
        revision = str((col.metadata or {}).get("lepton_revision", ""))
        cached = self._indexes.get(col.name)
        if cached is not None and cached.revision == revision:
            return cached
        with self._lock:
            cached = self._indexes.get(col.name)
            if cached is not None and cached.revision == revision:
                return cached
            ids, texts, metas = [], [], []
            for cid, text, meta in self.store.iter_chunks(collection, tenant):
                ids.append(cid)
                texts.append(text or "")
                metas.append(meta)
            index = _LexicalIndex(revision, ids, texts, metas, BM25Index(texts), {c: i for i, c in enumerate(ids)})
            self._indexes[col.name] = index
            return index

    def _bm25(self, col, index: _LexicalIndex, query: str, n: int, where: dict | None) -> list[_Entry]:  # noqa: ANN001
        mask = None
        if where:
            # Chroma evaluates the filter, so both rankings obey exactly the same rules.
            try:
                allowed = col.get(where=where, include=[])["ids"]
            except _FILTER_ERRORS as exc:
                raise InvalidQueryError(f"invalid filter {where!r}: {exc}") from None
            mask = np.zeros(index.bm25.size, dtype=bool)
            rows = [index.row_of[c] for c in allowed if c in index.row_of]
            mask[rows] = True
        return [(index.ids[row], index.texts[row], index.metadatas[row], score)
                for row, score in index.bm25.top(query, n, mask)]

    @staticmethod
    def _fuse(dense: list[_Entry], lexical: list[_Entry], k: int) -> list[Hit]:
        fused: dict[str, float] = {}
        ranks: dict[str, dict[str, int]] = {}
        first: dict[str, _Entry] = {}
        for ranking, name in ((dense, "dense"), (lexical, "bm25")):
            for rank, entry in enumerate(ranking, start=1):
                cid = entry[0]
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
                ranks.setdefault(cid, {})[name] = rank
                first.setdefault(cid, entry)
        # Ties (same fused score) keep the dense order, then BM25's: sorted() is stable.
        best = sorted(fused, key=lambda cid: -fused[cid])[:k]
        # Hits are built for the k results only, not for every candidate of both rankings.
        return [_hit(cid, first[cid][1], dict(first[cid][2]), fused[cid], ranks[cid]) for cid in best]
