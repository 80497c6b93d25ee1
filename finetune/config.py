"""Training configuration: one dataclass, validated on creation, saved with every
adapter so a run can be repeated from its ``train_config.json`` (``--config``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from assistant.llm.local import native_bf16

from .errors import FinetuneError

__all__ = ["TrainConfig", "load_config"]


@dataclass
class TrainConfig:
    lora_r: int = field(default=32, metadata={"help": "LoRA rank: size of the low-rank update per layer."})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling numerator (update is scaled by alpha/r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "Dropout on the LoRA input; 0 for short runs."})
    target_modules: str | list[str] = field(
        default="all-linear", metadata={"help": "Modules that get LoRA: 'all-linear' or a list of names."}
    )
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak AdamW learning rate."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on LoRA weights."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Share of steps with a linear warm-up."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training split (fractions allowed)."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    batch_size: int = field(default=16, metadata={"help": "Rows per optimizer step."})
    max_length: int = field(default=256, metadata={"help": "Rows longer than this (in tokens) are cut on the left."})
    seed: int = field(default=0, metadata={"help": "Seeds LoRA initialisation, data order and dropout."})
    bf16: bool = field(
        # Emulated bfloat16 (a CPU without AVX-512 BF16 or AMX) is slower than float32, so the
        # default follows the CPU; the value used is saved with the adapter like the rest.
        default_factory=lambda: native_bf16(),
        metadata={"help": "bf16 autocast for matmuls; default: on where the CPU computes bf16 natively "
                          "(AVX-512 BF16 or AMX), off elsewhere (benchmarks/finetune_banking77.py prints both)."},
    )
    save_every: int = field(default=50, metadata={"help": "Write a resumable checkpoint every N steps."})
    threads: int | None = field(default=None, metadata={"help": "torch threads; empty: torch's default."})

    def __post_init__(self) -> None:
        problems = []
        if self.lora_r < 1:
            problems.append("lora_r must be at least 1")
        if self.lora_alpha < 1:
            problems.append("lora_alpha must be at least 1")
        if not 0.0 <= self.lora_dropout < 1.0:
            problems.append("lora_dropout must be in [0, 1)")
        if not self.learning_rate > 0:
            problems.append("learning_rate must be positive")
        if not 0.0 <= self.warmup_ratio < 1.0:
            problems.append("warmup_ratio must be in [0, 1)")
        if not self.epochs > 0:
            problems.append("epochs must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be at least 1")
        if self.batch_size < 1:
            problems.append("batch_size must be at least 1")
        if self.max_length < 16:
            problems.append("max_length must be at least 16 tokens")
        if self.save_every < 1:
            problems.append("save_every must be at least 1")
        if not (self.target_modules == "all-linear" or (
                isinstance(self.target_modules, list) and self.target_modules
                and all(isinstance(m, str) for m in self.target_modules))):
            problems.append("target_modules must be 'all-linear' or a non-empty list of module names")
        if problems:
            raise FinetuneError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FinetuneError(f"unknown training config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        try:
            return cls(**values)
        except TypeError as exc:
            raise FinetuneError(f"invalid training config: {exc}") from None


def load_config(path: Path | None, **overrides: Any) -> TrainConfig:
    """A config from a JSON file (a saved ``train_config.json`` works), then overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise FinetuneError(f"cannot read config {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise FinetuneError(f"config {path} must hold a JSON object")
        # A saved adapter's train_config.json nests the trainer settings.
        values = loaded.get("train", loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values)
