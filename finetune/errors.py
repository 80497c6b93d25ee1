"""Errors of the fine-tuning package; all derive from Lepton's ``LeptonError`` so the
CLI prints them as one line.

    LeptonError
    └── FinetuneError          anything the fine-tuning commands refuse
        ├── DatasetError       input data unreadable, empty, in the wrong format, or too small
        └── GateError          an adapter did not beat its base model and --force was not given
"""

from __future__ import annotations

from assistant.errors import LeptonError

__all__ = ["FinetuneError", "DatasetError", "GateError"]


class FinetuneError(LeptonError):
    pass


class DatasetError(FinetuneError):
    pass


class GateError(FinetuneError):
    pass
