"""Skills: the Skill contract, the plugin registry and the built-in skills."""

from .base import NAME_PATTERN, Skill, SkillContext, SkillReply
from .registry import ENTRY_POINT_GROUP, LoadedSkills, load_skills

__all__ = ["Skill", "SkillContext", "SkillReply", "NAME_PATTERN", "ENTRY_POINT_GROUP", "LoadedSkills", "load_skills"]
