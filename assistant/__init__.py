"""The agent: settings, LLM backends, the LangGraph graph, conversation memory, CLI root."""

from .core import AUTO_MODEL, Assistant, Turn
from .errors import LeptonError
from .llm import ChatModel, GenerationParams
from .settings import Settings

__all__ = ["AUTO_MODEL", "Assistant", "Turn", "LeptonError", "ChatModel", "GenerationParams", "Settings"]
