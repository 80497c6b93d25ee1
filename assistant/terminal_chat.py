"""``lepton chat``: a terminal conversation with the embedded assistant or a server.

Both sessions keep the conversation id, so the assistant remembers earlier turns.
Answers stream to the terminal as they are generated.
"""

from __future__ import annotations

import sys
from typing import Callable, Protocol

import click

from .errors import LeptonError

__all__ = ["EmbeddedSession", "RemoteSession", "run_chat"]


class ChatSession(Protocol):
    def send(self, text: str, on_text: Callable[[str], None]) -> None:
        """Send one message; each piece of the answer goes to ``on_text`` as it arrives."""
        ...

    skill: str | None

    def close(self) -> None:
        """Release what the session holds (the embedded model's threads, the HTTP client)."""
        ...


class EmbeddedSession:
    """Runs turns in this process on the embedded assistant."""

    def __init__(self, settings, model: str, max_tokens: int | None, progress: Callable[[str], None]):
        from .core import Assistant

        self._assistant = Assistant.from_settings(settings, progress=progress)
        self._model = model
        self._params = self._assistant.params(max_tokens=max_tokens)
        self._conversation: str | None = None
        self.skill: str | None = None

    def send(self, text: str, on_text: Callable[[str], None]) -> None:
        request = self._assistant.start_turn(
            [{"role": "user", "content": text}],
            model=self._model,
            conversation_id=self._conversation,
            params=self._params,
        )
        result = self._assistant.run_turn(request, lambda kind, value: on_text(value) if kind == "delta" else None)
        self._conversation = result.conversation_id
        self.skill = result.skill

    def close(self) -> None:
        self._assistant.close()


class RemoteSession:
    """Talks to a running Lepton (or any OpenAI-compatible server) with the openai client."""

    def __init__(self, url: str, api_key: str, model: str, max_tokens: int | None):
        import openai

        self._openai = openai
        self._client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=0)
        self._model = model
        self._max_tokens = max_tokens
        self._conversation: str | None = None
        self.skill: str | None = None
        try:  # fail at start, not on the first message, when the server is not there
            self._client.models.list()
        except openai.APIConnectionError:
            raise LeptonError(f"cannot reach {url}") from None
        except openai.APIStatusError as exc:
            raise LeptonError(f"{url} answered {exc.status_code}: {exc.message}") from None

    def close(self) -> None:
        self._client.close()

    def send(self, text: str, on_text: Callable[[str], None]) -> None:
        extra = {"lepton": {"conversation_id": self._conversation}} if self._conversation else None
        try:
            stream = self._client.chat.completions.create(
                model=self._model,
                messages=[{"role": "user", "content": text}],
                stream=True,
                max_tokens=self._max_tokens,
                extra_body=extra,
            )
            for chunk in stream:
                lepton = getattr(chunk, "lepton", None) or (chunk.model_extra or {}).get("lepton")
                if lepton:
                    self._conversation = lepton.get("conversation_id", self._conversation)
                    self.skill = lepton.get("skill", self.skill)
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        on_text(choice.delta.content)
        except self._openai.APIStatusError as exc:
            raise LeptonError(f"server answered {exc.status_code}: {exc.message}") from None
        except self._openai.APIConnectionError:
            raise LeptonError(f"cannot reach {self._client.base_url}") from None


def run_chat(session: ChatSession, interactive: bool) -> None:
    """Read messages line by line until /quit or end of input."""
    if interactive:
        click.echo("Lepton Assistant. Type your message; /quit to leave.", err=True)
    while True:
        if interactive:
            click.echo("you> ", nl=False, err=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        click.echo("assistant> ", nl=False)
        try:
            session.send(text, lambda piece: click.echo(piece, nl=False))
        except LeptonError as exc:
            click.echo("")
            click.echo(f"Error: {exc}", err=True)
            continue
        click.echo(f"\n[{session.skill}]" if session.skill else "")
