"""The knowledge store: Chroma collections of chunk embeddings, one per (tenant, knowledge base).

Chroma runs embedded (a folder under the data directory) unless a server URL is
configured. Chroma is always given our own embedding function, so it never tries
to download its default model.

Every write bumps a revision token kept in the collection's metadata; searchers
compare it with the one their lexical index was built at, so an ingestion in any
process (the CLI while the server runs) invalidates stale indexes.

Searches use :meth:`KnowledgeStore.search_collection`, which keeps the collection
handle (and so the revision it was read at) instead of asking Chroma's catalogue on
every query. A cached handle is dropped when:

- this process writes the knowledge base through any store object on the same
  folder or server (writes notify every such store);
- another process writes an embedded folder: every write changes the folder's
  SQLite file, so its (inode, size, mtime) is compared on each search (a ``stat``,
  microseconds). File times tick coarsely, so a handle read while the file was
  modified less than ``_RACY_S`` ago is not trusted and is read again next time;
- another process writes through a Chroma server: the handle is re-read at most
  ``server_recheck_s`` (default 1 s) after it was read, so such a write reaches
  searches in this process within that time.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from .embeddings import load_encoder
from .errors import CollectionNotFoundError, RetrievalError, StoreUnavailableError
from .names import SEPARATOR, validate_name
from .query_encoder import load_query_encoder

__all__ = [
    "KnowledgeStore",
    "StoreSettings",
    "SentenceEmbeddingFunction",
    "ChunkRecord",
    "collection_name",
    "validate_name",
    "chunk_id",
    "content_hash",
]

DEFAULT_TENANT = "default"

_PREFIX = "t_"

# A file modified this recently may be modified again within the same timestamp
# tick; a handle read then is re-read on the next search.
_RACY_S = 2.0

# Every open store object per location (folder or URL), so a write through one
# drops the cached handles of the others in this process.
_STORES: dict[str, weakref.WeakSet] = {}
_STORES_LOCK = threading.Lock()


class StoreSettings(Protocol):
    """What the store reads from settings (``assistant.settings.Settings`` has all of it)."""

    @property
    def chroma_dir(self) -> Path: ...

    chroma_url: str | None
    embedding_model: str | None


def collection_name(tenant: str, kb: str) -> str:
    """The Chroma collection holding knowledge base ``kb`` of ``tenant``: ``t_<tenant>__<kb>``."""
    return f"{_PREFIX}{validate_name(tenant, 'tenant')}{SEPARATOR}{validate_name(kb, 'knowledge base')}"


def _split_collection_name(name: str) -> tuple[str, str] | None:
    if not name.startswith(_PREFIX) or SEPARATOR not in name:
        return None
    tenant, kb = name[len(_PREFIX) :].split(SEPARATOR, 1)
    return tenant, kb


def content_hash(text: str) -> str:
    """Short SHA-256 of a chunk's text, kept in its metadata."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def chunk_id(tenant: str, kb: str, source: str, index: int, text: str) -> str:
    """Stable id: the same chunk of the same source always gets the same id."""
    key = "\x1f".join((tenant, kb, source, str(index), text))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


# ----------------------------------------------------------- embeddings

try:  # chromadb is a hard dependency; the guard keeps import errors readable
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import register_embedding_function
except ImportError as exc:  # pragma: no cover
    raise ImportError("retrieval.store needs chromadb (pip install chromadb)") from exc


@register_embedding_function
class SentenceEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embedding function over our sentence-transformers encoder.

    Encodes in batches and L2-normalises, so cosine distance and dot product agree.
    The model loads on first use (a few seconds) and is shared per process.
    """

    def __init__(self, model_path: str | None = None, batch_size: int = 64):
        self.model_path = model_path
        self.batch_size = batch_size

    @property
    def encoder(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        return load_encoder(self.model_path)

    @property
    def model_id(self) -> str:
        """What the store records as the model a collection was built with."""
        return self.model_path or "default:all-MiniLM-L6-v2"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dim) of unit vectors."""
        if not texts:
            encoder = self.encoder
            # sentence-transformers 6 renamed the method and warns on the old name.
            dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
            return np.zeros((0, dimension()), np.float32)
        vectors = self.encoder.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        """``encode([text])`` for one search query, on ONNX Runtime when that was verified
        to give the same vectors (see :mod:`retrieval.query_encoder`)."""
        return load_query_encoder(self.model_path).encode([text])

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's signature
        return list(self.encode(list(input)))

    @staticmethod
    def name() -> str:
        return "lepton-sentence-transformers"

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "SentenceEmbeddingFunction":
        return SentenceEmbeddingFunction(config.get("model_path"), int(config.get("batch_size") or 64))


# ---------------------------------------------------------------- store


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk ready to store (its embedding is computed by the store)."""

    id: str
    text: str
    metadata: dict[str, str | int | float | bool]


def _make_client(path: Path | None, url: str | None):  # noqa: ANN202 - chromadb ClientAPI
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    # No telemetry: this machine may have no route out, and a user's knowledge base is theirs.
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        parts = urlparse(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StoreUnavailableError(
                f"chroma_url {url!r} is not an http(s) URL such as http://127.0.0.1:8000"
            )
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else 8000)
        try:
            client = chromadb.HttpClient(host=parts.hostname, port=port, ssl=ssl, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
            raise StoreUnavailableError(f"cannot reach the Chroma server at {url}: {exc}") from None
        return client
    assert path is not None
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(str(path), settings=chroma_settings)
    except Exception as exc:
        raise StoreUnavailableError(f"cannot open the Chroma folder {path}: {exc}") from None


class KnowledgeStore:
    """Knowledge bases of every tenant, stored in Chroma.

    ``KnowledgeStore(settings)`` uses ``settings.chroma_url`` when set, otherwise
    the folder ``settings.chroma_dir``. ``path=`` / ``url=`` open one directly
    (tests, benchmarks). The Chroma client is opened on first use.
    """

    def __init__(
        self,
        settings: StoreSettings | None = None,
        *,
        path: str | Path | None = None,
        url: str | None = None,
        embedding_model: str | None = None,
        default_tenant: str | None = None,
        server_recheck_s: float = 1.0,
    ):
        if settings is None and path is None and url is None:
            raise RetrievalError("KnowledgeStore needs settings, a path or a url")
        if settings is not None:
            url = url or settings.chroma_url
            path = path or settings.chroma_dir
            embedding_model = embedding_model or settings.embedding_model
            default_tenant = default_tenant or getattr(settings, "default_tenant", None)
        self.path = Path(path).expanduser() if path is not None and not url else None
        self.url = url
        self.default_tenant = default_tenant or DEFAULT_TENANT
        self.embedding = SentenceEmbeddingFunction(embedding_model)
        self._client = None
        self._lock = threading.Lock()
        #: Called with the collection name after every write (in-process listeners).
        self._listeners: list[weakref.ref] = []
        #: How long a server's collection handle is trusted (writes from other processes).
        self.server_recheck_s = server_recheck_s
        # name -> (handle, fingerprint or read time); see search_collection.
        self._handles: dict[str, tuple[Any, Any]] = {}
        self._generation = 0  # bumped by every write notice; a read racing one is not cached
        self._location = url or str(self.path.resolve())
        with _STORES_LOCK:
            _STORES.setdefault(self._location, weakref.WeakSet()).add(self)

    def __repr__(self) -> str:
        where = self.url or str(self.path)
        return f"KnowledgeStore({where!r})"

    @property
    def client(self):  # noqa: ANN201 - chromadb ClientAPI
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_client(self.path, self.url)
        return self._client

    def tenant(self, tenant: str | None) -> str:
        return validate_name(tenant or self.default_tenant, "tenant")

    # -- collections -------------------------------------------------------

    def collection(self, kb: str, tenant: str | None = None, *, create: bool = False):  # noqa: ANN201
        """The Chroma collection of ``kb``; :class:`CollectionNotFoundError` if absent and not ``create``."""
        tenant = self.tenant(tenant)
        name = collection_name(tenant, kb)
        from chromadb.errors import NotFoundError

        try:
            col = self.client.get_collection(name, embedding_function=self.embedding)
        except NotFoundError:
            if not create:
                raise CollectionNotFoundError(kb, tenant) from None
            col = self.client.get_or_create_collection(
                name,
                embedding_function=self.embedding,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=self._metadata(tenant, kb, uuid.uuid4().hex),
            )
        except ValueError as exc:
            # Chroma refuses an embedding function unlike the one the collection was made with.
            raise RetrievalError(f"knowledge base {kb!r} of tenant {tenant!r}: {exc}") from None
        built_with = (col.metadata or {}).get("lepton_embedding")
        if built_with and built_with != self.embedding.model_id:
            raise RetrievalError(
                f"knowledge base {kb!r} of tenant {tenant!r} was built with embedding model "
                f"{built_with!r}, not the configured {self.embedding.model_id!r}; set "
                "embedding_model back or delete and re-ingest it"
            )
        return col

    def search_collection(self, kb: str, tenant: str | None = None):  # noqa: ANN201
        """:meth:`collection` for reading, served from a cache while nothing was written.

        See the module docstring for when the cached handle is dropped. The handle's
        metadata (``lepton_revision``) is the one read with it.
        """
        name = collection_name(self.tenant(tenant), kb)
        cached = self._handles.get(name)
        stamp = self._stamp()
        if cached is not None:
            col, seen = cached
            if self.path is None:
                if stamp - seen < self.server_recheck_s:
                    return col
            elif stamp is not None and stamp == seen:
                return col
        generation = self._generation
        col = self.collection(kb, tenant)
        if self.path is None:
            stamp = time.monotonic()  # trust runs from after the read
        elif stamp is None or time.time() - stamp[2] / 1e9 < _RACY_S:
            return col
        if generation == self._generation:
            self._handles[name] = (col, stamp)
        return col

    def _stamp(self):  # noqa: ANN202
        """The embedded folder's (inode, size, mtime) of its SQLite files; the clock for a server."""
        if self.path is None:
            return time.monotonic()
        try:
            main = os.stat(self.path / "chroma.sqlite3")
        except OSError:
            return None
        try:  # present only if Chroma ever switches its database to write-ahead logging
            wal = os.stat(self.path / "chroma.sqlite3-wal")
            extra = (wal.st_ino, wal.st_size, wal.st_mtime_ns)
        except OSError:
            extra = None
        return (main.st_ino, main.st_size, max(main.st_mtime_ns, extra[2] if extra else 0), extra)

    def _metadata(self, tenant: str, kb: str, revision: str) -> dict[str, str]:
        return {
            "lepton_tenant": tenant,
            "lepton_kb": kb,
            "lepton_embedding": self.embedding.model_id,
            "lepton_revision": revision,
        }

    def exists(self, kb: str, tenant: str | None = None) -> bool:
        try:
            self.collection(kb, tenant)
        except CollectionNotFoundError:
            return False
        return True

    def list_collections(self, tenant: str | None = None) -> list[str]:
        """Knowledge-base names of ``tenant``, sorted."""
        tenant = self.tenant(tenant)
        names = []
        for col in self.client.list_collections():
            name = col if isinstance(col, str) else col.name
            parsed = _split_collection_name(name)
            if parsed and parsed[0] == tenant:
                names.append(parsed[1])
        return sorted(names)

    def drop_collection(self, kb: str, tenant: str | None = None) -> None:
        """Delete knowledge base ``kb`` and everything in it."""
        tenant = self.tenant(tenant)
        self.collection(kb, tenant)  # CollectionNotFoundError with a clear message
        self.client.delete_collection(collection_name(tenant, kb))
        self._notify(collection_name(tenant, kb))

    def count(self, kb: str, tenant: str | None = None) -> int:
        return self.collection(kb, tenant).count()

    def revision(self, kb: str, tenant: str | None = None) -> str:
        return str((self.collection(kb, tenant).metadata or {}).get("lepton_revision", ""))

    def sources(self, kb: str, tenant: str | None = None) -> dict[str, int]:
        """Chunk count per source in ``kb``."""
        counts: dict[str, int] = {}
        for _, _, meta in self.iter_chunks(kb, tenant, documents=False):
            src = str(meta.get("source", ""))
            counts[src] = counts.get(src, 0) + 1
        return dict(sorted(counts.items()))

    # -- reading -------------------------------------------------------------

    def iter_chunks(
        self, kb: str, tenant: str | None = None, *, documents: bool = True, page: int = 5000
    ) -> Iterable[tuple[str, str | None, dict]]:
        """Every chunk of ``kb`` as (id, text, metadata), in pages so big collections fit."""
        col = self.collection(kb, tenant)
        include = ["documents", "metadatas"] if documents else ["metadatas"]
        offset = 0
        while True:
            batch = col.get(include=include, limit=page, offset=offset)
            ids = batch["ids"]
            if not ids:
                return
            docs = batch.get("documents") or [None] * len(ids)
            for cid, text, meta in zip(ids, docs, batch["metadatas"]):
                yield cid, text, dict(meta or {})
            if len(ids) < page:
                return
            offset += len(ids)

    def source_ids(self, kb: str, source: str, tenant: str | None = None) -> set[str]:
        col = self.collection(kb, tenant)
        return set(col.get(where={"source": source}, include=[])["ids"])

    # -- writing -------------------------------------------------------------

    def existing_ids(self, kb: str, tenant: str | None, source: str) -> set[str]:
        """Ids stored for ``source`` (empty when the knowledge base does not exist yet)."""
        try:
            return self.source_ids(kb, source, tenant)
        except CollectionNotFoundError:
            return set()

    def add_records(self, kb: str, tenant: str | None, records: Sequence[ChunkRecord], embeddings: np.ndarray) -> None:
        """Add pre-embedded chunks (ingestion's batched path); bumps the revision."""
        tenant = self.tenant(tenant)
        col = self.collection(kb, tenant, create=True)
        self._add(col, records, embeddings)
        self._bump(col, tenant, kb)

    def delete_ids(self, kb: str, tenant: str | None, ids: Sequence[str]) -> None:
        if not ids:
            return
        tenant = self.tenant(tenant)
        col = self.collection(kb, tenant)
        col.delete(ids=list(ids))
        self._bump(col, tenant, kb)

    def delete_source(self, collection: str, source: str, tenant: str | None = None) -> int:
        """Remove every chunk of ``source`` from knowledge base ``collection``; returns how many."""
        tenant = self.tenant(tenant)
        col = self.collection(collection, tenant)
        ids = col.get(where={"source": source}, include=[])["ids"]
        if ids:
            col.delete(ids=ids)
            self._bump(col, tenant, collection)
        return len(ids)

    # Chroma's own limit on one write call; larger batches are split.
    def _add(self, col, records: Sequence[ChunkRecord], vectors: np.ndarray) -> None:  # noqa: ANN001
        limit = 4000
        try:
            limit = min(limit, int(self.client.get_max_batch_size()))
        except Exception:  # older servers do not say; 4000 is under every known limit
            pass
        for start in range(0, len(records), limit):
            part = records[start : start + limit]
            col.upsert(
                ids=[r.id for r in part],
                documents=[r.text for r in part],
                metadatas=[r.metadata for r in part],
                embeddings=vectors[start : start + limit],
            )

    def _bump(self, col, tenant: str, kb: str) -> None:  # noqa: ANN001
        col.modify(metadata=self._metadata(tenant, kb, uuid.uuid4().hex))
        self._notify(col.name)

    def _notify(self, name: str) -> None:
        with _STORES_LOCK:
            peers = list(_STORES.get(self._location, ()))
        for store in peers:
            store._forget(name)
        for ref in list(self._listeners):
            listener = ref()
            if listener is None:
                self._listeners.remove(ref)
            else:
                listener(name)

    def _forget(self, name: str) -> None:
        self._generation += 1
        self._handles.pop(name, None)

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(collection_name)`` after every write through this store object.

        Held weakly, so a discarded Retriever is not kept alive by its store.
        """
        ref = weakref.WeakMethod(listener) if hasattr(listener, "__self__") else weakref.ref(listener)
        self._listeners.append(ref)
