"""Each skill's environment (``skills.SkillEnv``), built from the settings, and
the start-up of the loaded skills (``setup``), for the assistant and the CLI alike.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from skills import Decision, LoadedSkills, Passage, Retrieve, SkillEnv

if TYPE_CHECKING:  # pragma: no cover
    from .settings import Settings
    from .store import Store

__all__ = ["AuditLog", "make_env", "set_up"]

log = logging.getLogger(__name__)


class AuditLog:
    """``skills.AuditWriter`` over the store's audit table; ``store()`` opens it on first use."""

    def __init__(self, store: Callable[[], "Store"]):
        self._store = store

    def __call__(self, tenant_id: str, skill: str, decision: Decision, *, conversation_id: str | None = None) -> None:
        self._store().add_audit(tenant_id, skill, decision.kind, decision.outcome, inputs=decision.inputs,
                                version=decision.version, conversation_id=conversation_id)


def make_env(settings: "Settings", name: str, *, retrieve: Retrieve | None, audit: AuditLog | None,
             passage: Passage | None = None) -> SkillEnv:
    return SkillEnv(
        name=name,
        data_dir=settings.data_dir / "skills" / name,
        options=dict(settings.skill_options.get(name, {})),
        retrieve=retrieve,
        passage=passage,
        audit=audit,
        default_tenant=settings.default_tenant,
    )


def set_up(loaded: LoadedSkills, env_for: Callable[[str], SkillEnv]) -> dict[str, SkillEnv]:
    """Call every loaded skill's ``setup``; a skill whose setup fails is logged, moved
    to ``loaded.failures`` and left out (it never stops the server)."""
    envs: dict[str, SkillEnv] = {}
    for name, skill in list(loaded.skills.items()):
        env = env_for(name)
        try:
            skill.setup(env)
        except Exception as exc:  # a plugin's bug: log, skip, carry on
            reason = f"setup failed: {type(exc).__name__}: {exc}"
            log.warning("skipping skill %r: %s", name, reason)
            loaded.failures[name] = reason
            del loaded.skills[name]
            continue
        envs[name] = env
    return envs
