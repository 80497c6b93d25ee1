"""Small helpers the built-in skills share."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_hash", "citation_entry", "fence_sources", "SOURCES_OPEN", "SOURCES_CLOSE"]

#: The markers around retrieved text in a prompt (``fence_sources``).
SOURCES_OPEN = "<<<SOURCES"
SOURCES_CLOSE = "SOURCES>>>"


def file_hash(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (a model card's data hash)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def citation_entry(n: int, hit) -> dict:  # noqa: ANN001 - retrieval.Hit
    """The ``lepton.citations`` item for source ``[n]``: what the widget shows and links."""
    entry = {
        "n": n,
        "title": hit.citation.title,
        "source": hit.citation.source,
        "chunk_id": hit.citation.chunk_id,
        "score": round(float(hit.score), 4),
    }
    url = hit.metadata.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        entry["url"] = url
    return entry


def fence_sources(hits) -> str:  # noqa: ANN001 - list of retrieval.Hit
    """Numbered retrieved passages as data for a prompt, never as instructions.

    Documents are the tenant's (or their customers'), and a document may say "ignore
    previous instructions". The passages go between markers that the prompt names as
    the edge of quoted material, and any marker inside a passage is taken out, so a
    document cannot close the fence and speak as the prompt."""
    def clean(text: str) -> str:
        for marker in (SOURCES_OPEN, SOURCES_CLOSE):
            text = text.replace(marker, " ")
        return text

    body = "\n\n".join(f"[{n}] {clean(h.citation.title)}: {clean(h.text)}" for n, h in enumerate(hits, start=1))
    return f"{SOURCES_OPEN}\n{body}\n{SOURCES_CLOSE}"
