"""What every ``lepton`` command uses: the one way to get the settings
(``pass_settings``), the command-line overrides of a setting (``with_overrides``),
and the object on the root click context (:class:`CliState`), which also sets up a
skill's environment for the skill's own commands (``Skill.cli_env``).

Commands of the core live with the package they manage (server/, finetune/,
assistant/commands/) and are found through the ``lepton.commands`` entry-point
group, like skills through ``lepton.skills`` (see assistant/cli.py).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click
from pydantic import ValidationError

from .errors import ConfigError
from .settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from skills import Skill, SkillEnv

    from .store import Store

__all__ = ["CliState", "pass_settings", "with_overrides", "state_of"]


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"invalid setting {where}: {err['msg']}" if where else f"invalid settings: {err['msg']}"


def make_settings(**values: Any) -> Settings:
    """Settings from the environment plus ``values``; a bad value is a one-line ConfigError."""
    try:
        return Settings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc)) from None


class CliState:
    """The root click context's object: the settings, and skill environments on demand."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._store: "Store | None" = None
        self._knowledge = None

    def skill_env(self, skill: "Skill") -> "SkillEnv":
        """Set ``skill`` up for one of its commands (retrieval and the audit log open on first use)."""
        from .knowledge import Knowledge
        from .skill_env import AuditLog, make_env

        if self._knowledge is None:
            self._knowledge = Knowledge(self.settings)
        env = make_env(self.settings, skill.name, retrieve=self._knowledge.retrieve, audit=AuditLog(self.store),
                       passage=self._knowledge.passage)
        skill.setup(env)
        return env

    def store(self) -> "Store":
        """The records store (SQLite or PostgreSQL), opened once for this command run."""
        if self._store is None:
            from .store import open_store

            self._store = open_store(self.settings)
        return self._store


def state_of(ctx: click.Context) -> CliState:
    """The root context's CliState, made from the root's options the first time it is asked for
    (a skill's command group is looked up before the root callback runs)."""
    root = ctx.find_root()
    if isinstance(root.obj, Settings):  # a command invoked on its own with obj=Settings (tests, embedders)
        root.obj = CliState(root.obj)
    elif not isinstance(root.obj, CliState):
        data_dir: Path | None = root.params.get("data_dir")
        root.obj = CliState(make_settings(data_dir=data_dir))
    return root.obj


def pass_settings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator for a command: its first argument is the run's Settings."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(state_of(click.get_current_context()).settings, *args, **kwargs)

    return wrapper


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with the command-line values that were given (None: not given), validated again."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if not values:
        return settings
    return make_settings(**{**settings.model_dump(), **values})
