"""Skills: the Skill contract (``skills.base``), the plugin registry and the built-in skills."""

from .base import *  # noqa: F403 - the contract is this package's public surface
from .base import __all__ as _CONTRACT
from .registry import ENTRY_POINT_GROUP, LoadedSkills, installed_names, load_skills

__all__ = [*_CONTRACT, "ENTRY_POINT_GROUP", "LoadedSkills", "installed_names", "load_skills"]
