"""Small helpers the built-in skills share."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_hash", "citation_entry"]


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
