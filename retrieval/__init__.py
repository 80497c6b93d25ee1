"""Retrieval: embeddings, the vector store, ingestion and search."""

from .embeddings import default_embedding_path, load_encoder

__all__ = ["default_embedding_path", "load_encoder"]
