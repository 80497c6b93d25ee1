"""FastAPI server: OpenAI-compatible API, widget, admin, health."""

from .app import create_app

__all__ = ["create_app"]
