"""``lepton chat``: a conversation in the terminal (``assistant.terminal_chat``)."""

from __future__ import annotations

import sys

import click

from ..cli_support import pass_settings

__all__ = ["chat"]


@click.command(help="Chat in the terminal. Type /quit or Ctrl-D to leave.\n\n"
               "Examples:\n\n  lepton chat\n\n  lepton chat --url http://127.0.0.1:8000/v1 --skill medical_triage")
@click.option("--url", help="Base URL of a running Lepton (…/v1); default: the embedded assistant.")
@click.option("--api-key", default="not-needed", show_default=True, help="API key for --url.")
@click.option("--skill", "model", default="assistant", show_default=True, help="Skill to talk to, or 'assistant'.")
@click.option("--max-tokens", type=click.IntRange(1, 8192), help="Longest answer, in tokens.")
@pass_settings
def chat(settings, url, api_key, model, max_tokens) -> None:
    from ..terminal_chat import EmbeddedSession, RemoteSession, run_chat

    session = (
        RemoteSession(url, api_key, model, max_tokens)
        if url
        else EmbeddedSession(settings, model, max_tokens, progress=lambda m: click.echo(m, err=True))
    )
    try:
        run_chat(session, interactive=sys.stdin.isatty())
    finally:
        session.close()  # the embedded model's threads end before the process does
