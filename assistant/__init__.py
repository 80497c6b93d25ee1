"""The agent: settings, LLM backends, the LangGraph graph, conversation memory, CLI root."""

from .core import AUTO_MODEL, Assistant
from .errors import LeptonError
from .llm import ChatModel, GenerationParams
from .settings import Settings
from .turns import TurnRequest, TurnResult

__all__ = ["AUTO_MODEL", "Assistant", "TurnRequest", "TurnResult", "LeptonError", "ChatModel", "GenerationParams",
           "Settings"]
