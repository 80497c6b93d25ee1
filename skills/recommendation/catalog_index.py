"""The catalogue in the vector store: what a shopper's words find.

Each trained recommender gets an embedded Chroma collection of its catalogue:
one record per item (its title, the title's embedding from the project's
sentence-embedding model, its price as metadata). A shopper's request ("a gift
for a gardener", "a candle under 10 pounds") is a similarity search there, with
the price limits as a metadata filter, so only items that fit are returned. The
recommender then mixes these matches with the customer's history and
popularity (:meth:`.model.Recommender.recommend`).

The collection lives beside the model file, in a folder named after the model's
version, so a retrained model never shares an open Chroma client with the one it
replaces.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

__all__ = ["CatalogIndex", "SEARCHED"]

COLLECTION = "catalog"
#: How many items one search returns (the best matches within the price limits).
SEARCHED = 100
_BATCH = 4000  # below Chroma's largest batch


def _client(folder: Path):  # noqa: ANN202 - chromadb ClientAPI
    from retrieval.store import _make_client

    return _make_client(folder, None)


class CatalogIndex:
    """A recommender's catalogue collection (read side); :meth:`build` writes one."""

    def __init__(self, folder: Path):
        from retrieval.store import SentenceEmbeddingFunction

        self.folder = folder
        self.collection = _client(folder).get_collection(COLLECTION, embedding_function=SentenceEmbeddingFunction())

    @staticmethod
    def build(folder: Path, items: Sequence[str], titles: Sequence[str], prices: Sequence[float | None],
              vectors: Any) -> None:
        """Write the catalogue (ids, titles, prices, normalised title vectors) into ``folder``."""
        from retrieval.store import SentenceEmbeddingFunction

        collection = _client(folder).create_collection(
            COLLECTION, embedding_function=SentenceEmbeddingFunction(), configuration={"hnsw": {"space": "cosine"}})
        for start in range(0, len(items), _BATCH):
            end = start + _BATCH
            metadatas = [{"price": float(p)} if p is not None and not math.isnan(p) else {"unpriced": True}
                         for p in prices[start:end]]
            collection.add(ids=list(items[start:end]), documents=[str(t) for t in titles[start:end]],
                           embeddings=[list(map(float, v)) for v in vectors[start:end]], metadatas=metadatas)

    def search(self, vector: Any, *, n: int = SEARCHED, max_price: float | None = None,
               min_price: float | None = None) -> dict[str, float]:
        """Item id -> cosine similarity of the ``n`` best matches within the price limits."""
        limits: list[dict[str, Any]] = []
        if max_price is not None:
            limits.append({"price": {"$lte": float(max_price)}})
        if min_price is not None:
            limits.append({"price": {"$gte": float(min_price)}})
        where = limits[0] if len(limits) == 1 else {"$and": limits} if limits else None
        found = self.collection.query(query_embeddings=[list(map(float, vector))], n_results=n, where=where,
                                      include=["distances"])
        return {item: 1.0 - float(d) for item, d in zip(found["ids"][0], found["distances"][0])}
