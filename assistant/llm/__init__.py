"""LLM backends behind one protocol (:class:`ChatModel`)."""

from __future__ import annotations

from typing import Callable

from ..settings import Settings
from .base import ChatModel, Completion, Generation, GenerationParams, Health, Message

__all__ = ["ChatModel", "Completion", "Generation", "GenerationParams", "Health", "Message", "create_chat_model"]


def create_chat_model(
    settings: Settings, progress: Callable[[str], None] = print, adapters: dict[str, str] | None = None
) -> ChatModel:
    """Build the backend the settings ask for. ``adapters`` (name → peft folder) are
    loaded from the start: a managed vLLM gets them as start-up arguments."""
    if settings.backend == "vllm":
        from .vllm import attach_vllm, start_managed_vllm

        if settings.vllm_url:
            model = attach_vllm(settings)
            for name, path in (adapters or {}).items():
                model.ensure_adapter(name, path)
            return model
        from ..models import resolve_model

        return start_managed_vllm(settings, resolve_model(settings, progress), adapters, progress)
    if settings.backend == "openai":
        from .openai_compat import OpenAIChatModel

        return OpenAIChatModel(settings.openai_base_url, settings.openai_api_key, settings.openai_model)
    from ..models import resolve_model
    from .local import LocalChatModel

    model = LocalChatModel(resolve_model(settings, progress), max_queue=settings.max_queue)
    for name, path in (adapters or {}).items():
        model.load_adapter(name, path)
    return model
