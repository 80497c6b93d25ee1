"""The adapter registry: LoRA adapters on disk, which skill uses which, and
whether an adapter fits the model being served.

Layout under ``Settings.adapters_dir``::

    adapters/
      registry.json            {"active": {"<skill>": "<adapter name>"}}
      <name>/                  a peft adapter folder (adapter_config.json, weights,
        lepton_adapter.json    tokenizer + chat template) plus its manifest

The manifest records the base model, the hash of the chat template the adapter
was trained with, the dataset hash, the training config and metrics, so a run
can be audited and repeated. ``lepton finetune`` writes adapters here; the
server reads the registry on every turn, so activating an adapter takes effect
without a restart. Writes are atomic (staging folder or temp file + rename), so
a crash never leaves a half-registered adapter.

An adapter is *compatible* with a served model when its base model name and its
chat-template hash both match; ``AdapterLoader`` (the runtime's side: which
adapter a skill answers with, loaded into the backend on first use) refuses
incompatible ones (the skill then answers with the base model and the refusal
is logged).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BackendError, LeptonError

if TYPE_CHECKING:  # pragma: no cover
    from .llm import ChatModel

__all__ = [
    "AdapterError",
    "AdapterLoader",
    "AdapterRecord",
    "AdapterRegistry",
    "ModelIdentity",
    "chat_template_hash",
    "model_identity",
    "check_adapter_name",
]

MANIFEST = "lepton_adapter.json"
INDEX = "registry.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

log = logging.getLogger(__name__)


class AdapterError(LeptonError):
    """An adapter is unknown, malformed or does not fit the served model."""


def check_adapter_name(name: str) -> None:
    """Raise AdapterError unless ``name`` can name an adapter (checked before long work)."""
    if not _NAME.match(name):
        raise AdapterError(f"adapter name {name!r} is invalid: use letters, digits, '.', '_' or '-' (max 64)")


def chat_template_hash(folder: str | Path) -> str | None:
    """SHA-256 (first 16 hex digits) of the chat template saved in a model or
    adapter folder (``chat_template.jinja`` or ``tokenizer_config.json``)."""
    folder = Path(folder)
    template: str | None = None
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    else:
        config = folder / "tokenizer_config.json"
        if config.is_file():
            value = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(value, str):
                template = value
    if template is None:
        return None
    return hashlib.sha256(template.strip().encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class ModelIdentity:
    """What an adapter must match: the base model's name and its chat template."""

    base_model: str
    template_hash: str | None


def model_identity(model_path: str | Path) -> ModelIdentity:
    """Identity of a model folder. The name is the folder's name (the converted
    embedded model is always ``SmolLM2-135M-Instruct``, wherever the data
    directory is), or the hub id as given."""
    path = Path(model_path)
    if path.is_dir():
        return ModelIdentity(path.name, chat_template_hash(path))
    return ModelIdentity(str(model_path), None)


@dataclass
class AdapterRecord:
    name: str
    skill: str
    base_model: str
    template_hash: str | None
    path: Path
    dataset_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    active: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    def problem_with(self, identity: ModelIdentity) -> str | None:
        """Why this adapter cannot be used on ``identity`` (None when it can)."""
        if self.base_model != identity.base_model:
            return f"adapter {self.name!r} was trained on {self.base_model!r}, the server serves {identity.base_model!r}"
        if self.template_hash and identity.template_hash and self.template_hash != identity.template_hash:
            return (
                f"adapter {self.name!r} was trained with chat template {self.template_hash}, "
                f"the served model uses {identity.template_hash}"
            )
        return None


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AdapterRegistry:
    """Adapters under one folder. Safe to share between threads of one process;
    separate processes (CLI and server) see each other's changes on the next read."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._lock = threading.Lock()

    # -- reading ------------------------------------------------------------------
    def _active_map(self) -> dict[str, str]:
        index = self.root / INDEX
        if not index.is_file():
            return {}
        try:
            return dict(json.loads(index.read_text(encoding="utf-8")).get("active", {}))
        except (OSError, ValueError) as exc:
            raise AdapterError(f"adapter registry {index} is unreadable: {exc}") from exc

    def _read(self, folder: Path, active: dict[str, str]) -> AdapterRecord:
        try:
            data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            record = AdapterRecord(
                name=data["name"],
                skill=data["skill"],
                base_model=data["base_model"],
                template_hash=data.get("template_hash"),
                path=folder,
                dataset_hash=data.get("dataset_hash"),
                config=data.get("config", {}),
                metrics=data.get("metrics", {}),
                created_at=data.get("created_at", ""),
            )
        except (OSError, ValueError, KeyError) as exc:
            raise AdapterError(f"adapter manifest in {folder} is unreadable: {exc}") from exc
        record.active = active.get(record.skill) == record.name
        return record

    def list(self) -> list[AdapterRecord]:
        if not self.root.is_dir():
            return []
        active = self._active_map()
        return [
            self._read(folder, active)
            for folder in sorted(self.root.iterdir())
            if folder.is_dir() and (folder / MANIFEST).is_file()
        ]

    def get(self, name: str) -> AdapterRecord:
        folder = self.root / name
        if not _NAME.match(name) or not (folder / MANIFEST).is_file():
            known = ", ".join(r.name for r in self.list()) or "none"
            raise AdapterError(f"adapter {name!r} is not registered (registered: {known})")
        return self._read(folder, self._active_map())

    def active_for(self, skill: str) -> AdapterRecord | None:
        name = self._active_map().get(skill)
        if name is None:
            return None
        return self.get(name)

    def active(self) -> list[AdapterRecord]:
        return [record for record in self.list() if record.active]

    # -- writing ------------------------------------------------------------------
    def register(
        self,
        name: str,
        source_dir: str | Path,
        *,
        skill: str,
        base_model: str,
        template_hash: str | None,
        dataset_hash: str | None = None,
        config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        activate: bool = False,
        replace: bool = False,
    ) -> AdapterRecord:
        """Copy a peft adapter folder into the registry under ``name``."""
        check_adapter_name(name)
        source = Path(source_dir)
        if not (source / "adapter_config.json").is_file():
            raise AdapterError(f"{source} is not a peft adapter folder (no adapter_config.json)")
        with self._lock:
            target = self.root / name
            if target.exists() and not replace:
                raise AdapterError(f"adapter {name!r} already exists")
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{name}."))
            try:
                shutil.copytree(source, staging, dirs_exist_ok=True)
                manifest = {
                    "name": name,
                    "skill": skill,
                    "base_model": base_model,
                    "template_hash": template_hash,
                    "dataset_hash": dataset_hash,
                    "config": config or {},
                    "metrics": metrics or {},
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                _write_json_atomic(staging / MANIFEST, manifest)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        if activate:
            self.activate(name)
        return self.get(name)

    def update_metrics(self, name: str, metrics: dict[str, Any]) -> AdapterRecord:
        record = self.get(name)
        with self._lock:
            data = json.loads((record.path / MANIFEST).read_text(encoding="utf-8"))
            data["metrics"] = {**data.get("metrics", {}), **metrics}
            _write_json_atomic(record.path / MANIFEST, data)
        return self.get(name)

    def activate(self, name: str) -> AdapterRecord:
        """Make ``name`` the adapter of its skill (replacing the skill's previous one)."""
        record = self.get(name)
        with self._lock:
            active = self._active_map()
            active[record.skill] = name
            _write_json_atomic(self.root / INDEX, {"active": active})
        record.active = True
        return record

    def deactivate(self, name: str) -> AdapterRecord:
        record = self.get(name)
        with self._lock:
            active = self._active_map()
            if active.get(record.skill) == name:
                del active[record.skill]
                _write_json_atomic(self.root / INDEX, {"active": active})
        record.active = False
        return record

    def remove(self, name: str) -> None:
        self.deactivate(name)
        with self._lock:
            shutil.rmtree(self.root / name)


class AdapterLoader:
    """Which adapter a skill answers with, loading it into the backend when needed.

    The registry is read on every call, so an adapter activated while the server
    runs is used from the next turn on. An adapter trained on another base model
    or chat template is refused (logged once) and the base model answers instead:
    a mismatched template silently degrades every answer.
    """

    def __init__(self, registry: AdapterRegistry, llm: "ChatModel", identity: ModelIdentity | None):
        self.registry = registry
        self.llm = llm
        self.identity = identity
        self._guard = threading.Lock()
        #: adapter name -> created_at of the version the backend has loaded
        self._loaded: dict[str, str] = {}
        #: (name, created_at) of adapters already refused, so each is logged once
        self._refused: set[tuple[str, str]] = set()

    def adapter_for(self, skill: str) -> str | None:
        """The name of the adapter ``skill`` answers with (None: the base model).

        Raises BackendError when the backend cannot load it right now (a vLLM
        restarting): that turn fails with a 503 and the next one tries again."""
        try:
            record = self.registry.active_for(skill)
        except LeptonError as exc:
            log.error("adapter registry: %s", exc)
            return None
        if record is None:
            return None
        version = (record.name, record.created_at)
        with self._guard:
            if version in self._refused:
                return None
            if self._loaded.get(record.name) == record.created_at:
                return record.name
            problem = record.problem_with(self.identity) if self.identity else None
            try:
                if problem is not None:
                    raise AdapterError(problem)
                if record.name in self._loaded:  # a new version of a loaded adapter
                    self.llm.load_adapter(record.name, str(record.path))
                else:  # the backend may have it already (a managed vLLM's start-up adapters)
                    self.llm.ensure_adapter(record.name, str(record.path))
            except BackendError:
                raise
            except LeptonError as exc:
                self._refused.add(version)
                log.error("skill %s answers with the base model: %s", skill, exc)
                return None
            self._loaded[record.name] = record.created_at
            log.info("adapter %s loaded for skill %s", record.name, skill)
            return record.name
