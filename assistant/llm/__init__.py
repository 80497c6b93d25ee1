"""LLM backends behind one protocol (:class:`ChatModel`)."""

from __future__ import annotations

from typing import Callable

from ..settings import Settings
from .base import ChatModel, Completion, Generation, GenerationParams, Message

__all__ = ["ChatModel", "Completion", "Generation", "GenerationParams", "Message", "create_chat_model"]


def create_chat_model(settings: Settings, progress: Callable[[str], None] = print) -> ChatModel:
    """Build the backend the settings ask for."""
    if settings.backend == "openai":
        from .openai_compat import OpenAIChatModel

        return OpenAIChatModel(settings.openai_base_url, settings.openai_api_key, settings.openai_model)
    from ..models import resolve_model
    from .local import LocalChatModel

    return LocalChatModel(resolve_model(settings, progress), max_queue=settings.max_queue)
