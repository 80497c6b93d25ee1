"""Lepton's error tree. Every error a user can cause or meet derives from LeptonError.

    LeptonError                (defined in retrieval.errors, the lowest package, so all can use it)
    ├── ConfigError            a setting or path is wrong (CLI: one line, exit 2)
    ├── ModelError             a model cannot be found, converted or loaded
    ├── BackendError           the LLM backend failed while answering (HTTP 503)
    │   └── BackendBusy        the local queue is full; retry later (HTTP 503)
    ├── InvalidRequest         a request is malformed (HTTP 400)
    ├── UnknownSkill           a request names a skill that is not loaded (HTTP 404)
    ├── ConversationNotFound   a conversation id unknown for this tenant (HTTP 404)
    ├── HandoffStateError      the conversation is not in the handoff state an action needs (HTTP 409)
    ├── TurnAbandoned          the caller stopped a running turn (a client went away); nothing is stored
    ├── DataSkillError         (assistant.tenant_skills) a data skill cannot be made or removed
    ├── AdapterError           (assistant.adapters) an adapter is unknown, malformed or does not fit
    ├── FinetuneError          (finetune.errors) data or a gate the fine-tuning commands refuse
    └── RetrievalError         (retrieval.errors) knowledge bases: names, queries, ingestion;
        └── StoreUnavailableError   Chroma cannot be reached: during a turn, HTTP 503
"""

from __future__ import annotations

from retrieval.errors import LeptonError

__all__ = [
    "LeptonError",
    "ConfigError",
    "ModelError",
    "BackendError",
    "BackendBusy",
    "InvalidRequest",
    "UnknownSkill",
    "ConversationNotFound",
    "HandoffStateError",
    "TurnAbandoned",
]


class ConfigError(LeptonError):
    pass


class ModelError(LeptonError):
    pass


class BackendError(LeptonError):
    pass


class BackendBusy(BackendError):
    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequest(LeptonError):
    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


class UnknownSkill(LeptonError):
    pass


class ConversationNotFound(LeptonError):
    pass


class HandoffStateError(LeptonError):
    """The conversation is not in the handoff state the action needs."""


class TurnAbandoned(LeptonError):
    """The caller stopped a running turn (its client went away); nothing is stored."""
