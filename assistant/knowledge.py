"""The tenants' knowledge as the assistant uses it: the Chroma-backed store and
its retriever, opened on the first search (most turns of most skills never
search, and opening Chroma takes a while), and the search function skills get
(``skills.Retrieve``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Callable

from retrieval.errors import LeptonError, RetrievalError, StoreUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from retrieval import Hit, KnowledgeStore, Retriever

    from .settings import Settings

__all__ = ["Knowledge"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _store_failures(what: str):
    """Lepton's own errors pass; the Chroma client's own failures (a server gone away, a
    broken folder) become StoreUnavailableError (a 503 in a turn), logged as ``what``."""
    try:
        yield
    except LeptonError:
        raise
    except Exception as exc:
        log.exception(what)
        raise StoreUnavailableError(f"the knowledge store failed: {type(exc).__name__}: {exc}") from None


class Knowledge:
    """``store`` is a ``retrieval.KnowledgeStore`` to use instead of the settings' one."""

    def __init__(self, settings: "Settings", store: "KnowledgeStore | None" = None):
        self.settings = settings
        self._store = store
        self._retriever: "Retriever | None" = None
        self._guard = threading.Lock()

    @property
    def store(self) -> "KnowledgeStore":
        with self._guard:
            if self._store is None:
                from retrieval import KnowledgeStore

                self._store = KnowledgeStore(self.settings)
            return self._store

    @property
    def retriever(self) -> "Retriever":
        store = self.store
        with self._guard:
            if self._retriever is None:
                from retrieval import Retriever

                self._retriever = Retriever(store)
            return self._retriever

    def retrieve(self, tenant_id: str, collection: str, query: str, *, k: int = 5, mode: str = "hybrid",
                 vector: "np.ndarray | None" = None) -> list["Hit"]:
        """``skills.Retrieve``: the best ``k`` chunks (``vector``: the query's embedding, if
        known; see ``Retriever.search``). A store that fails for any reason other than
        Lepton's own checks raises StoreUnavailableError (a 503 in a turn)."""
        with _store_failures("knowledge search failed"):
            return self.retriever.search(query, collection, tenant_id, k=k, mode=mode, vector=vector)

    def passage(self, tenant_id: str, collection: str, hit: "Hit", *, chars: int = 900) -> str:
        """``skills.Passage``: ``hit``'s document from the hit onward (see ``Retriever.passage``)."""
        with _store_failures("knowledge read failed"):
            return self.retriever.passage(hit, collection, tenant_id, chars=chars)

    def best_match(self, tenant_id: str, collection: str, query: str, vector: "np.ndarray | None" = None) -> float | None:
        """How similar the best chunk of the tenant's ``collection`` is to ``query`` (cosine,
        dense search), for routing; None when the tenant has no such collection or the
        store fails (routing goes on without it; a skill that searches reports the failure)."""
        try:
            hits = self.retrieve(tenant_id, collection, query, k=1, mode="dense", vector=vector)
        except RetrievalError:
            return None
        return hits[0].score if hits else None

    def ensure_documents(self, tenant_id: str, collection: str, documents: Callable[[], list],
                         progress: Callable[[str], None] | None = print) -> bool:
        """Ingest ``documents()`` into the tenant's ``collection`` unless it exists (or
        there are none); True when it ingested."""
        from retrieval import ensure_collection

        return ensure_collection(self.store, tenant_id, collection, documents, progress=progress) is not None

    def ensure_demo(self, tenant_id: str, progress: Callable[[str], None] | None = print) -> bool:
        """Fill ``tenant_id``'s help centre with the WixQA demo articles when the
        ``demo_knowledge`` setting is on and it has none yet; True when it ingested."""
        if not self.settings.demo_knowledge:
            return False
        from retrieval import ensure_demo_help_centre

        return ensure_demo_help_centre(self.store, tenant_id, progress=progress) is not None
