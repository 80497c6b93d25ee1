"""The retrieval package's errors, and the root of every error Lepton raises.

``LeptonError`` is defined here, in the lowest package, because every other
package (skills, assistant, finetune, server) sits above retrieval and may derive
from it, while retrieval may import none of them. Everyone else imports it from
``assistant.errors``, which documents the whole tree.

::

    LeptonError
    └── RetrievalError             anything this package raises on purpose
        ├── InvalidNameError           a tenant or knowledge-base name Chroma cannot hold
        ├── CollectionNotFoundError    searching or deleting in a knowledge base that does not exist
        ├── InvalidQueryError          empty query, k outside 1..100, unknown mode, bad filter
        ├── IngestError                a whole ingestion request is unusable (no paths, bad options)
        └── StoreUnavailableError      the Chroma folder or server cannot be reached

Problems with single files during ingestion are *not* raised: they are collected
in :class:`retrieval.ingest.IngestReport` so one bad file never stops the rest.
Every message says what to change, so callers (CLI, HTTP routes) can show it as is.
"""

from __future__ import annotations

__all__ = [
    "LeptonError",
    "RetrievalError",
    "InvalidNameError",
    "CollectionNotFoundError",
    "InvalidQueryError",
    "IngestError",
    "StoreUnavailableError",
]


class LeptonError(Exception):
    """Base of every error Lepton raises on purpose (the tree: ``assistant.errors``)."""


class RetrievalError(LeptonError):
    """Base class of every error raised on purpose by :mod:`retrieval`."""


class InvalidNameError(RetrievalError, ValueError):
    """A tenant or knowledge-base name that cannot become a Chroma collection name."""


class CollectionNotFoundError(RetrievalError, LookupError):
    """The knowledge base has never been ingested for this tenant."""

    def __init__(self, collection: str, tenant: str):
        self.collection = collection
        self.tenant = tenant
        super().__init__(
            f"knowledge base {collection!r} does not exist for tenant {tenant!r}; "
            "ingest documents into it first (lepton ingest PATH --collection "
            f"{collection})"
        )


class InvalidQueryError(RetrievalError, ValueError):
    """The search request itself is unusable."""


class IngestError(RetrievalError, ValueError):
    """The ingestion request as a whole is unusable (not a single file's problem)."""


class StoreUnavailableError(RetrievalError, ConnectionError):
    """Chroma could not be opened or reached."""
