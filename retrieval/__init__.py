"""Retrieval: embeddings, the vector store, ingestion and search.

Typical use::

    store = KnowledgeStore(settings)                 # Chroma folder or server
    ingest_paths(store, ["docs/"], "help-centre", tenant="acme")
    hits = Retriever(store).search("refund fees", "help-centre", tenant="acme", k=5)
    hits[0].citation.source, hits[0].citation.title, hits[0].citation.chunk_id

Errors are rooted in :class:`RetrievalError` (see :mod:`retrieval.errors`).
Names other than the embeddings are imported on first use, so code that only
needs the encoder (the router) does not pay for importing Chroma.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .embeddings import default_embedding_path, load_encoder
from .errors import (
    CollectionNotFoundError,
    IngestError,
    InvalidNameError,
    InvalidQueryError,
    RetrievalError,
    StoreUnavailableError,
)

_LAZY = {
    "KnowledgeStore": "store",
    "SentenceEmbeddingFunction": "store",
    "collection_name": "store",
    "validate_name": "names",
    "validate_tenant": "names",
    "Retriever": "search",
    "Hit": "search",
    "Citation": "search",
    "Document": "ingest",
    "Section": "ingest",
    "IngestConfig": "ingest",
    "IngestReport": "ingest",
    "ingest_paths": "ingest",
    "ingest_bytes": "ingest",
    "ingest_documents": "ingest",
    "evaluate_wixqa": "evaluate",
    "ensure_demo_help_centre": "demo",
    "ensure_collection": "demo",
}

__all__ = [
    "default_embedding_path",
    "load_encoder",
    *_LAZY,
    "RetrievalError",
    "InvalidNameError",
    "CollectionNotFoundError",
    "InvalidQueryError",
    "IngestError",
    "StoreUnavailableError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .demo import ensure_collection, ensure_demo_help_centre
    from .evaluate import evaluate_wixqa
    from .ingest import (
        Document,
        IngestConfig,
        IngestReport,
        Section,
        ingest_bytes,
        ingest_documents,
        ingest_paths,
    )
    from .search import Citation, Hit, Retriever
    from .store import KnowledgeStore, SentenceEmbeddingFunction, collection_name


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
