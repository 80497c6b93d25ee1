"""Small helpers the built-in skills share."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_hash"]


def file_hash(path: Path) -> str:
    """The SHA-256 of a file, read in blocks (a model card's data hash)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
