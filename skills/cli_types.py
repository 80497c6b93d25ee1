"""Click parameter types shared by the core's commands and the skills' own.

``TENANT`` is the type of every ``--tenant`` option: it checks the name with the
rule every other way in uses (``retrieval.names``), so ``lepton`` refuses a bad
tenant in one line, before anything is opened or written.
"""

from __future__ import annotations

from typing import Any

import click

from retrieval.names import validate_tenant

__all__ = ["TENANT", "TenantName"]


class TenantName(click.ParamType):
    name = "tenant"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return validate_tenant(value.strip() if isinstance(value, str) else value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TENANT = TenantName()
