"""Finds skills through the ``lepton.skills`` entry-point group.

Built-in skills are registered in pyproject.toml exactly like third-party ones,
so a plugin is as first-class as ours. An entry point may name a Skill instance,
or a class/factory returning one. Every call returns new skill objects (an
instance is copied with ``Skill.fresh``), so what one assistant's ``setup`` loads
is never seen by another in the same process. A plugin that fails to load is
logged with its name and skipped; it never stops the server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from .base import Skill

__all__ = ["ENTRY_POINT_GROUP", "LoadedSkills", "load_skills", "installed_names"]

ENTRY_POINT_GROUP = "lepton.skills"

log = logging.getLogger(__name__)


@dataclass
class LoadedSkills:
    skills: dict[str, Skill] = field(default_factory=dict)
    #: entry-point name -> one-line reason it was skipped
    failures: dict[str, str] = field(default_factory=dict)


def installed_names() -> set[str]:
    """The names of every installed skill's entry point, loaded or not (nothing is imported)."""
    return {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_skills(allow: list[str] | None = None) -> LoadedSkills:
    """Load every installed skill (or only those in ``allow``), in name order."""
    result = LoadedSkills()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if allow is not None and ep.name not in allow:
            continue
        try:
            obj = ep.load()
            skill = obj.fresh() if isinstance(obj, Skill) else obj() if callable(obj) else obj
            if not isinstance(skill, Skill):
                raise TypeError(f"{ep.value} is a {type(skill).__name__}, not a Skill")
            if skill.name != ep.name:
                raise ValueError(f"entry point is named {ep.name!r} but the skill calls itself {skill.name!r}")
            if skill.name in result.skills:
                raise ValueError(f"a skill named {skill.name!r} is already loaded")
        except Exception as exc:  # any plugin bug: log, skip, carry on
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("skipping skill plugin %r (%s): %s", ep.name, ep.value, reason)
            result.failures[ep.name] = reason
            continue
        result.skills[skill.name] = skill
    if allow is not None:
        for name in allow:
            if name not in result.skills and name not in result.failures:
                result.failures[name] = "not installed"
    return result
