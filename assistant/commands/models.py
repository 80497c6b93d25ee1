"""``lepton models prepare``: convert the embedded model into the model cache ahead of first use."""

from __future__ import annotations

import click

from ..cli_support import pass_settings

__all__ = ["models"]


@click.group(help="Model files.")
def models() -> None:
    pass


@models.command("prepare", help="Convert the embedded model into the model cache (done implicitly on first use).")
@pass_settings
def models_prepare(settings) -> None:
    from ..models import resolve_model

    click.echo(resolve_model(settings, progress=lambda m: click.echo(m, err=True)))
