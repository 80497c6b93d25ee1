"""Which skills a tenant has: the installed ones, plus the data skills it made
(``lepton skills create``, ``skills.data_skill``).

Every turn asks the catalog for its tenant's :class:`SkillView`: the skills, the
router that knows them, and their environments. A tenant without data skills
gets the installed ones and the router trained at start-up. A tenant with data
skills gets its own router: the installed skills' router with a gate in front
for its data skills (``router.TenantRouter``); the view is kept until the tenant's data skills change
(``Store.data_skill_revision``, read once per turn), so a skill created or
deleted from the CLI, another process, is used from the next turn on, with no
restart.

An installed skill always wins a name: a data skill whose name a plugin
installed later took is left out (and logged), as is one whose setup fails.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence

from skills import Skill, SkillEnv
from skills.data_skill import DataSkill, check_definition, collection_for, default_prompt

from .errors import LeptonError
from .router import EmbeddingRouter, TenantRouter

if TYPE_CHECKING:  # pragma: no cover
    from retrieval.store import KnowledgeStore

    from .settings import Settings
    from .store import Store

__all__ = ["SkillView", "SkillCatalog", "DataSkillError", "create_data_skill", "delete_data_skill",
           "require_data_skill"]


class DataSkillError(LeptonError):
    """A data skill could not be made or removed; the message is one line for the user.
    ``kind``: "invalid" (the definition or its files), "exists" (the name is taken) or
    "missing" (no such data skill)."""

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkillView:
    """One tenant's skills as a turn sees them."""

    skills: Mapping[str, Skill]
    router: EmbeddingRouter | TenantRouter
    envs: Mapping[str, SkillEnv]
    #: The tenant's data-skill revision this view was built at (0: installed skills only).
    revision: int = 0
    #: The names of the tenant's data skills among ``skills``.
    data_skills: frozenset[str] = field(default_factory=frozenset)

    @property
    def owners(self) -> dict[str, str]:
        """Skill -> the knowledge collection it answers from (routing by knowledge)."""
        return {name: skill.collection for name, skill in self.skills.items() if skill.collection}


class SkillCatalog:
    def __init__(self, installed: Mapping[str, Skill], envs: Mapping[str, SkillEnv], router: EmbeddingRouter,
                 store: "Store", env_for: Callable[[str], SkillEnv]):
        """``env_for(name)``: a new data skill's environment (``skill_env.make_env``)."""
        self.base = SkillView(dict(installed), router, dict(envs))
        self._store = store
        self._env_for = env_for
        self._views: dict[str, SkillView] = {}
        self._lock = threading.Lock()

    def view(self, tenant_id: str) -> SkillView:
        revision = self._store.data_skill_revision(tenant_id)
        if revision == 0:
            return self.base
        view = self._views.get(tenant_id)
        if view is not None and view.revision == revision:
            return view
        with self._lock:  # one build per change, however many turns arrive at once
            view = self._views.get(tenant_id)
            if view is None or view.revision != revision:
                view = self._views[tenant_id] = self._build(tenant_id, revision)
            return view

    def _build(self, tenant_id: str, revision: int) -> SkillView:
        skills, envs = dict(self.base.skills), dict(self.base.envs)
        own: dict[str, list[str]] = {}
        for record in self._store.data_skills(tenant_id):
            name = record["name"]
            if name in skills:
                log.warning("tenant %r: data skill %r is left out: an installed skill has its name", tenant_id, name)
                continue
            try:
                skill = DataSkill.from_record(record)
                env = self._env_for(name)
                skill.setup(env)
            except Exception as exc:  # a bad stored definition must not stop the tenant's turns
                log.warning("tenant %r: data skill %r is left out: %s: %s", tenant_id, name, type(exc).__name__, exc)
                continue
            skills[name], envs[name], own[name] = skill, env, skill.examples
        if not own:
            return SkillView(self.base.skills, self.base.router, self.base.envs, revision)
        log.info("tenant %r: routing also to its data skills %s", tenant_id, ", ".join(own))
        return SkillView(skills, TenantRouter(self.base.router, own), envs, revision, frozenset(own))


# -- making and removing data skills (the CLI and the admin API) ------------------------


@dataclass(frozen=True)
class Created:
    """A data skill just made: its definition, and its collection's chunk count (0: none)."""

    tenant_id: str
    name: str
    collection: str | None
    chunks: int
    examples: int


def create_data_skill(settings: "Settings", store: "Store", tenant_id: str, name: str, *, description: str,
                      examples: list[str], prompt: str | None = None, knowledge: Sequence[Path] = (),
                      installed: Iterable[str] = (), base_dir: Path | None = None,
                      knowledge_store: "KnowledgeStore | None" = None) -> Created:
    """Check the definition, ingest ``knowledge`` (files or folders) into the skill's
    collection, then store the skill. Raises DataSkillError with one line, and leaves
    nothing behind (the collection is dropped again), when any step fails. ``installed``:
    the installed skills' names, which a data skill may not take; ``base_dir``: name the
    documents relative to it (else by absolute path, as ``lepton ingest`` does);
    ``knowledge_store``: the store to use (default: the settings' one)."""
    from retrieval.store import KnowledgeStore

    knowledge_store = knowledge_store or KnowledgeStore(settings)
    prompt = prompt if prompt is not None else default_prompt(description)
    try:
        check_definition(name, description, examples, prompt)
    except ValueError as exc:
        raise DataSkillError(str(exc)) from None
    if name in set(installed):
        raise DataSkillError(f"{name!r} is the name of an installed skill; choose another", "exists")
    owner = store.data_skill_tenant(name)
    if owner is not None:
        # Names are unique on the server: a skill's adapters and data folder go by its name.
        raise DataSkillError(f"a data skill named {name!r} exists already" + (
            f" (tenant {owner!r}); delete it first" if owner == tenant_id else "; choose another name"), "exists")
    for path in knowledge:
        if not path.exists():
            raise DataSkillError(f"no such file or folder: {path}")
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise DataSkillError(f"cannot read {path}: permission denied")
    collection = collection_for(name) if knowledge else None
    chunks = 0
    if collection is not None:
        chunks = _ingest(knowledge_store, tenant_id, collection, knowledge, base_dir)
    try:
        store.add_data_skill(tenant_id, name, description=description.strip(), examples=examples, prompt=prompt,
                             collection=collection)
    except Exception as exc:
        if collection is not None:
            _drop(knowledge_store, tenant_id, collection)
        if isinstance(exc, ValueError):  # a concurrent create of the same name
            raise DataSkillError(str(exc), "exists") from None
        raise
    return Created(tenant_id, name, collection, chunks, len(examples))


def _ingest(store: "KnowledgeStore", tenant_id: str, collection: str, paths: Sequence[Path],
            base_dir: Path | None) -> int:
    from retrieval.errors import RetrievalError
    from retrieval.ingest import IngestConfig, ingest_paths

    try:
        if store.exists(collection, tenant_id):
            raise DataSkillError(f"tenant {tenant_id!r} already has a collection {collection!r}; remove it "
                                 "first (lepton ingest --delete) or choose another skill name")
        report = ingest_paths(store, list(paths), collection, tenant_id, config=IngestConfig(progress=False),
                              base_dir=base_dir)
    except RetrievalError as exc:
        _drop(store, tenant_id, collection)
        raise DataSkillError(str(exc)) from None
    problem = next(iter(report.failed), None)
    if problem is not None or not report.chunks:
        _drop(store, tenant_id, collection)
        raise DataSkillError(f"could not ingest {problem}" if problem else
                             f"no documents found in {', '.join(map(str, paths))} "
                             "(.md .txt .html .pdf .csv .jsonl files are read)")
    return report.chunks


def _drop(store: "KnowledgeStore", tenant_id: str, collection: str) -> int:
    """Drop a tenant's collection if it exists; returns how many chunks it held."""
    if not store.exists(collection, tenant_id):
        return 0
    chunks = store.count(collection, tenant_id)
    store.drop_collection(collection, tenant_id)
    return chunks


def require_data_skill(store: "Store", tenant_id: str, name: str) -> dict:
    """The tenant's data skill of that name; DataSkillError (naming those it has) if none."""
    records = store.data_skills(tenant_id)
    record = next((r for r in records if r["name"] == name), None)
    if record is None:
        names = ", ".join(r["name"] for r in records) or "none"
        raise DataSkillError(f"tenant {tenant_id!r} has no data skill {name!r} (its data skills: {names})",
                             "missing")
    return record


@dataclass(frozen=True)
class Deleted:
    name: str
    chunks: int
    adapters: list[str]


def delete_data_skill(settings: "Settings", store: "Store", tenant_id: str, name: str,
                      knowledge_store: "KnowledgeStore | None" = None) -> Deleted:
    """Remove a tenant's data skill, its collection and its adapters (``lepton finetune``);
    raises DataSkillError when the tenant has no data skill of that name."""
    from retrieval.store import KnowledgeStore

    from .adapters import AdapterRegistry

    knowledge_store = knowledge_store or KnowledgeStore(settings)

    record = require_data_skill(store, tenant_id, name)
    store.delete_data_skill(tenant_id, name)  # first: no turn routes to it from now on
    chunks = _drop(knowledge_store, tenant_id, record["collection"]) if record["collection"] else 0
    registry = AdapterRegistry(settings.adapters_dir)
    adapters = [r.name for r in registry.list() if r.skill == name]
    for adapter in adapters:
        registry.remove(adapter)
    return Deleted(name, chunks, adapters)
