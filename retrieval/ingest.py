"""Ingestion: files (md, txt, html, pdf, csv, jsonl) into a knowledge base.

Each file is loaded into documents (:mod:`retrieval._loaders`), cut into chunks
that keep their title and heading path (:mod:`retrieval._chunking`) and written
under stable ids, so that:

* ingesting an unchanged file again changes nothing and embeds nothing;
* a changed file's new chunks are added and its old ones removed;
* one bad file (unreadable, empty, binary, too big) is reported by name with a
  reason while the others are ingested.

CSV and JSONL files hold one document per row/line. Their text is read from the
field named by ``text_field``, by default the first of ``text``, ``content``,
``body`` present (case-insensitive); the title from ``title_field``, by default
``title``; ``metadata_fields`` are copied into each chunk's metadata.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._chunking import Chunk, Document, Section, chunk_document
from ._loaders import (
    DEFAULT_TEXT_FIELDS,
    DEFAULT_TITLE_FIELDS,
    SUPPORTED_SUFFIXES,
    FileProblem,
    LoadOptions,
    load_bytes,
)
from .errors import IngestError
from .store import ChunkRecord, KnowledgeStore, chunk_id, collection_name, content_hash

__all__ = [
    "IngestConfig",
    "IngestReport",
    "FileOutcome",
    "Problem",
    "Document",
    "Section",
    "Chunk",
    "chunk_document",
    "ingest_paths",
    "ingest_bytes",
    "ingest_documents",
    "DEFAULT_TEXT_FIELDS",
    "DEFAULT_TITLE_FIELDS",
    "SUPPORTED_SUFFIXES",
]

MB = 1024 * 1024


@dataclass
class IngestConfig:
    """How files are cut and written. Defaults suit all-MiniLM-L6-v2 (256-token window)."""

    # 700/100 scored best among 500..1200 on WixQA, though within noise (measured:
    # benchmarks/README.md, Design measurements); smaller chunks also give the small LLM
    # tighter context to quote.
    chunk_chars: int = 700
    """Longest chunk in characters, title/heading prefix included (~170 tokens of English,
    inside all-MiniLM-L6-v2's 256-token window)."""
    overlap_chars: int = 100
    """Characters of the previous chunk repeated at the start of the next one in a section."""
    max_file_bytes: int = 50 * MB
    """Files larger than this are refused before being read."""
    flush_chunks: int = 1024
    """Chunks embedded and written together; bounds memory on big jobs."""
    progress: bool | None = None
    """Progress bar on stderr: None shows it for big jobs on a terminal."""

    def __post_init__(self) -> None:
        if not 200 <= self.chunk_chars <= 20000:
            raise IngestError(f"chunk_chars must be between 200 and 20000, got {self.chunk_chars}")
        if not 0 <= self.overlap_chars <= self.chunk_chars // 2:
            raise IngestError(
                f"overlap_chars must be between 0 and chunk_chars/2 ({self.chunk_chars // 2}), "
                f"got {self.overlap_chars}"
            )
        if self.max_file_bytes < 1:
            raise IngestError(f"max_file_bytes must be positive, got {self.max_file_bytes}")
        if self.flush_chunks < 1:
            raise IngestError(f"flush_chunks must be positive, got {self.flush_chunks}")


@dataclass
class Problem:
    """A file that was not ingested (or only partly, when ``partial``)."""

    path: str
    reason: str
    partial: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class FileOutcome:
    """What happened to one ingested source."""

    source: str
    chunks: int
    added: int
    removed: int
    unchanged: int


@dataclass
class IngestReport:
    collection: str
    tenant: str
    files: list[FileOutcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def added(self) -> int:
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        return sum(f.removed for f in self.files)

    @property
    def unchanged(self) -> int:
        return sum(f.unchanged for f in self.files)

    @property
    def chunks(self) -> int:
        return sum(f.chunks for f in self.files)

    @property
    def failed(self) -> list[Problem]:
        """Files that were not ingested at all."""
        return [p for p in self.problems if not p.partial]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [
            f"{len(self.files)} file(s) ingested into {self.collection!r} (tenant {self.tenant!r})",
            f"{self.chunks} chunks: {self.added} added, {self.removed} removed, {self.unchanged} unchanged",
        ]
        if self.failed:
            parts.append(f"{len(self.failed)} file(s) skipped")
        return "; ".join(parts) + f" in {self.seconds:.1f}s"

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "added": self.added,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
        }


# ----------------------------------------------------------------- helpers


def _records(docs: Sequence[Document], kb: str, tenant: str, source: str, config: IngestConfig) -> list[ChunkRecord]:
    """Chunk ``docs`` (all of one source) into records with stable ids and full metadata."""
    records: list[ChunkRecord] = []
    for doc in docs:
        for chunk in chunk_document(doc, config.chunk_chars, config.overlap_chars):
            index = len(records)
            meta = {
                **chunk.metadata,
                # Reserved keys last: a CSV column called "source" cannot hide the real one.
                "tenant_id": tenant,
                "source": source,
                "title": chunk.title,
                "heading": chunk.heading,
                "chunk": index,
                "content_hash": content_hash(chunk.text),
            }
            records.append(ChunkRecord(chunk_id(tenant, kb, source, index, chunk.text), chunk.text, meta))
    return records


class _Writer:
    """Batches chunks of many sources into few embedding calls and Chroma writes.

    For each source: existing ids are read, new chunks queued, stale ids queued for
    deletion. :meth:`flush` embeds and adds the queued chunks, then deletes the stale
    ones, so a changed source is never absent from the store.
    """

    def __init__(self, store: KnowledgeStore, kb: str, tenant: str, config: IngestConfig, bar) -> None:  # noqa: ANN001
        self.store, self.kb, self.tenant, self.config, self.bar = store, kb, tenant, config, bar
        self.pending: list[ChunkRecord] = []
        self.stale: list[str] = []

    def write(self, source: str, records: list[ChunkRecord]) -> FileOutcome:
        existing = self.store.existing_ids(self.kb, self.tenant, source)
        wanted = {r.id for r in records}
        new = [r for r in records if r.id not in existing]
        stale = sorted(existing - wanted)
        self.pending.extend(new)
        self.stale.extend(stale)
        if self.bar is not None:
            self.bar.total = (self.bar.total or 0) + len(new)
            self.bar.refresh()
        if len(self.pending) >= self.config.flush_chunks:
            self.flush()
        return FileOutcome(source, len(records), len(new), len(stale), len(records) - len(new))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        step = max(self.store.embedding.batch_size * 4, 256)
        for start in range(0, len(pending), step):
            part = pending[start : start + step]
            vectors = self.store.embedding.encode([r.text for r in part])
            self.store.add_records(self.kb, self.tenant, part, vectors)
            if self.bar is not None:
                self.bar.update(len(part))
        stale, self.stale = self.stale, []
        if stale:
            self.store.delete_ids(self.kb, self.tenant, stale)


def _expand(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Problem]]:
    """Files to ingest: named files as given, directories walked for supported files."""
    files: list[Path] = []
    problems: list[Problem] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            before = len(files)
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                        add(Path(root) / name)
            if len(files) == before:
                problems.append(Problem(str(raw), f"no {', '.join(SUPPORTED_SUFFIXES)} files in this directory"))
        elif p.is_file():
            add(p)
        elif p.exists():
            problems.append(Problem(str(raw), "not a regular file"))
        else:
            problems.append(Problem(str(raw), "no such file or directory"))
    return files, problems


def _source_name(path: Path, base_dir: Path | None) -> str:
    resolved = path.resolve()
    if base_dir is not None:
        try:
            return resolved.relative_to(base_dir.resolve()).as_posix()
        except ValueError:
            pass
    return resolved.as_posix()


def _progress_bar(config: IngestConfig, big: bool):  # noqa: ANN202 - tqdm or None
    show = config.progress
    if show is False or (show is None and not big):
        return None
    from tqdm.auto import tqdm

    # disable=None: tqdm hides itself when stderr is not a terminal (CI logs, pipes).
    return tqdm(total=0, unit="chunk", desc="embedding", disable=None if show is None else False)


def _options(text_field: str | None, title_field: str | None, metadata_fields: Sequence[str]) -> LoadOptions:
    for name, value in (("text_field", text_field), ("title_field", title_field)):
        if value is not None and not value.strip():
            raise IngestError(f"{name} must not be empty")
    return LoadOptions(text_field, title_field, tuple(metadata_fields or ()))


def _check_target(store: KnowledgeStore, collection: str, tenant: str | None) -> str:
    tenant = store.tenant(tenant)
    collection_name(tenant, collection)  # InvalidNameError before any file is read
    return tenant


def _size_text(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


# --------------------------------------------------------------- public API


def ingest_paths(
    store: KnowledgeStore,
    paths: Sequence[str | os.PathLike],
    collection: str,
    tenant: str | None = None,
    *,
    text_field: str | None = None,
    title_field: str | None = None,
    metadata_fields: Sequence[str] = (),
    config: IngestConfig | None = None,
    base_dir: str | os.PathLike | None = None,
) -> IngestReport:
    """Ingest files and directories (walked for supported types) into knowledge base ``collection``.

    Each file is one *source*, named by its absolute path, or by its path relative to
    ``base_dir`` when given (so a folder can move without its chunks changing names).
    Per-file problems land in the report; invalid names or options raise
    :class:`~retrieval.errors.RetrievalError` before anything is read or written.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise IngestError("no files to ingest: give at least one file or directory")
    config = config or IngestConfig()
    options = _options(text_field, title_field, metadata_fields)
    tenant = _check_target(store, collection, tenant)
    started = time.perf_counter()
    files, problems = _expand(paths)
    report = IngestReport(collection, tenant, problems=problems)
    base = Path(base_dir) if base_dir is not None else None
    sizes = {}
    for path in files:
        try:
            sizes[path] = path.stat().st_size
        except OSError as exc:
            sizes[path] = -1
            report.problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}"))
    big = len(files) > 20 or sum(s for s in sizes.values() if s > 0) > 2 * MB
    bar = _progress_bar(config, big)
    writer = _Writer(store, collection, tenant, config, bar)
    try:
        for path in files:
            size = sizes[path]
            if size < 0:
                continue
            if size > config.max_file_bytes:
                report.problems.append(
                    Problem(str(path), f"file is {_size_text(size)}, over the {_size_text(config.max_file_bytes)} limit")
                )
                continue
            try:
                data = path.read_bytes()
                docs, warnings = load_bytes(data, path.name, options)
            except FileProblem as exc:
                report.problems.append(Problem(str(path), str(exc)))
                continue
            except OSError as exc:
                report.problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}"))
                continue
            source = _source_name(path, base)
            for doc in docs:
                doc.source = source
            report.problems.extend(Problem(str(path), w, partial=True) for w in warnings)
            report.files.append(writer.write(source, _records(docs, collection, tenant, source, config)))
        writer.flush()
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - started
    return report


def ingest_bytes(
    store: KnowledgeStore,
    data: bytes,
    filename: str,
    collection: str,
    tenant: str | None = None,
    *,
    source: str | None = None,
    text_field: str | None = None,
    title_field: str | None = None,
    metadata_fields: Sequence[str] = (),
    config: IngestConfig | None = None,
) -> IngestReport:
    """Ingest one uploaded file given as bytes; ``filename``'s suffix picks the loader.

    The source is ``source`` or ``filename``: uploading a file of the same name again
    replaces its chunks.
    """
    config = config or IngestConfig()
    options = _options(text_field, title_field, metadata_fields)
    tenant = _check_target(store, collection, tenant)
    started = time.perf_counter()
    report = IngestReport(collection, tenant)
    source = source or filename
    if len(data) > config.max_file_bytes:
        report.problems.append(
            Problem(filename, f"file is {_size_text(len(data))}, over the {_size_text(config.max_file_bytes)} limit")
        )
    else:
        try:
            docs, warnings = load_bytes(data, filename, options)
        except FileProblem as exc:
            report.problems.append(Problem(filename, str(exc)))
        else:
            for doc in docs:
                doc.source = source
            report.problems.extend(Problem(filename, w, partial=True) for w in warnings)
            writer = _Writer(store, collection, tenant, config, None)
            report.files.append(writer.write(source, _records(docs, collection, tenant, source, config)))
            writer.flush()
    report.seconds = time.perf_counter() - started
    return report


def ingest_documents(
    store: KnowledgeStore,
    documents: Iterable[Document],
    collection: str,
    tenant: str | None = None,
    *,
    config: IngestConfig | None = None,
) -> IngestReport:
    """Ingest already-built documents (catalogues, help-centre exports, evaluation corpora).

    Documents are grouped by ``source``; each source's chunks replace what it had before.
    """
    config = config or IngestConfig()
    tenant = _check_target(store, collection, tenant)
    started = time.perf_counter()
    by_source: dict[str, list[Document]] = {}
    for doc in documents:
        by_source.setdefault(doc.source, []).append(doc)
    report = IngestReport(collection, tenant)
    bar = _progress_bar(config, len(by_source) > 20)
    writer = _Writer(store, collection, tenant, config, bar)
    try:
        for source, docs in by_source.items():
            records = _records(docs, collection, tenant, source, config)
            if not records:
                report.problems.append(Problem(source, "no text found"))
                continue
            report.files.append(writer.write(source, records))
        writer.flush()
    finally:
        if bar is not None:
            bar.close()
    report.seconds = time.perf_counter() - started
    return report
