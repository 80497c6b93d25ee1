"""LLM backends behind one protocol (:class:`ChatModel`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Sequence

from ..settings import Settings, split_urls
from .base import ChatModel, Completion, Generation, GenerationParams, Health, Message

if TYPE_CHECKING:
    from ..adapters import AdapterRecord

log = logging.getLogger(__name__)

__all__ = ["ChatModel", "Completion", "Generation", "GenerationParams", "Health", "Message", "create_chat_model"]


def create_chat_model(
    settings: Settings, progress: Callable[[str], None] = print, adapters: "Sequence[AdapterRecord]" = ()
) -> ChatModel:
    """Build the backend the settings ask for.

    ``adapters`` are the registry's active adapters: a managed vLLM gets those that fit
    its model as start-up arguments. Every backend also loads adapters while it runs
    (the Assistant asks before a skill's turn), so the others ignore them.
    """
    if settings.backend == "vllm":
        from .vllm import attach_vllm, start_managed_vllm

        if settings.vllm_url:
            return attach_vllm(settings)
        from ..adapters import model_identity
        from ..models import resolve_model

        model_path = resolve_model(settings, progress)
        identity = model_identity(model_path)
        fitting = {}
        for record in adapters:
            problem = record.problem_with(identity)
            if problem is None:
                fitting[record.name] = str(record.path)
            else:
                log.error("not giving vLLM adapter %s: %s", record.name, problem)
        return start_managed_vllm(settings, model_path, fitting, progress)
    if settings.backend == "openai":
        from .openai_compat import OpenAIChatModel
        from .replicas import ReplicaPool

        endpoints = [OpenAIChatModel(url, settings.openai_api_key, settings.openai_model)
                     for url in split_urls(settings.openai_base_url)]
        if len(endpoints) == 1:
            return endpoints[0]
        return ReplicaPool(endpoints, check_interval=settings.replica_check_interval)
    from ..models import resolve_model
    from .local import LocalChatModel

    return LocalChatModel(resolve_model(settings, progress), max_queue=settings.max_queue,
                          dtype=settings.local_dtype, max_batch=settings.local_max_batch)
