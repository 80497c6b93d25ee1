"""Faults, as a client of a real server on loopback sees them: a model backend that is
down, stalls or comes back; slow and surplus connections; and (slow tests) a
`lepton serve` process stopped with SIGTERM in the middle of a stream, and killed
with SIGKILL in the middle of a turn.

A stalled backend is the one stand-in here: a loopback socket that takes requests
and never answers, or answers the first words and then nothing (a real vLLM cannot
be made to hang on demand). Everything else is real: the openai backend client,
a second Lepton server as the backend that comes back, uvicorn, SQLite."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from assistant import Assistant
from assistant.llm.openai_compat import OpenAIChatModel
from server.api_keys import ApiKeys
from tests.conftest import free_port
from tests.standins import InstantModel

HELLO = [{"role": "user", "content": "hello"}]
FIRST_WORDS = json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                          "choices": [{"index": 0, "delta": {"content": "Let me "}, "finish_reason": None}]})


class StalledEndpoint:
    """An OpenAI-compatible endpoint that hangs: it reads each request and answers
    nothing (``first_words=False``), or the headers of a stream and its first chunk."""

    def __init__(self, first_words: bool = False):
        self.first_words = first_words
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._held: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(conn)
            conn.recv(65536)
            if self.first_words:
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                event = f"data: {FIRST_WORDS}\n\n".encode()
                conn.sendall(f"{len(event):x}\r\n".encode() + event + b"\r\n")

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def stalled():
    made: list[StalledEndpoint] = []

    def make(first_words: bool = False) -> StalledEndpoint:
        made.append(StalledEndpoint(first_words))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def chat(base_url: str, *, stream: bool = False, key: str | None = None, messages=HELLO, **body) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(base_url + "/v1/chat/completions", headers=headers, timeout=60,
                      json={"model": "customer_service", "stream": stream, "messages": messages, **body})


def stored_turns(settings) -> int:
    with sqlite3.connect(settings.db_path) as conn:
        return conn.execute("SELECT COALESCE(SUM(turns), 0) FROM conversations").fetchone()[0]


def test_a_stalled_backend_gets_504_with_retry_after_and_nothing_is_stored(settings, start_server, stalled):
    """The model never answers: after LEPTON_TURN_TIMEOUT the client gets 504 (streaming
    or not, since no text was sent yet) with Retry-After, and the turn is not stored."""
    settings = settings.model_copy(update={"turn_timeout": 1.0})
    assistant = Assistant.from_settings(settings, llm=OpenAIChatModel(stalled().url, model="smol", timeout=60))
    live = start_server(settings, assistant)
    for stream in (False, True):
        started = time.monotonic()
        response = chat(live.base_url, stream=stream)
        assert response.status_code == 504, response.text
        assert time.monotonic() - started < 15
        assert response.headers["Retry-After"] == "5"
        error = response.json()["error"]
        assert error["code"] == "backend_timeout" and error["type"] == "server_error"
        assert "within 1 s; nothing was stored" in error["message"]
    assert stored_turns(settings) == 0
    # The server itself stays healthy and says the backend is the problem.
    assert httpx.get(live.base_url + "/healthz").status_code == 200
    assistant.close()


def test_a_stream_that_stalls_after_its_first_words_ends_with_an_error_event(settings, start_server, stalled):
    """Text was already sent, so the status is 200: the stream ends with the 504 error in
    band (as OpenAI servers report failures mid-stream) and [DONE], and stores nothing."""
    settings = settings.model_copy(update={"turn_timeout": 1.5})
    backend = OpenAIChatModel(stalled(first_words=True).url, model="smol", timeout=60)
    assistant = Assistant.from_settings(settings, llm=backend)
    live = start_server(settings, assistant)
    response = chat(live.base_url, stream=True)
    assert response.status_code == 200
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "Let me "
    assert json.loads(events[-2])["error"]["code"] == "backend_timeout"
    assert stored_turns(settings) == 0
    assistant.close()


def test_an_api_key_sets_its_own_shorter_turn_time_and_answer_length(settings, start_server, stalled):
    """`lepton keys create --max-seconds/--max-tokens`: the key's turns stop sooner than the
    server's LEPTON_TURN_TIMEOUT, and its answers are cut to its own length."""
    slow = Assistant.from_settings(settings, llm=OpenAIChatModel(stalled().url, model="smol", timeout=60))
    live = start_server(settings, slow)
    secret, _ = ApiKeys(slow.store, settings).create("default", max_seconds=0.5)
    started = time.monotonic()
    response = chat(live.base_url, key=secret)
    assert response.status_code == 504 and "within 0.5 s" in response.json()["error"]["message"]
    assert time.monotonic() - started < 15  # the server's own limit is 120 s
    slow.close()

    model = InstantModel()
    fast = Assistant.from_settings(settings, llm=model)
    live = start_server(settings, fast)
    short, _ = ApiKeys(fast.store, settings).create("default", max_tokens=3)
    assert chat(live.base_url, key=short, max_tokens=50).status_code == 200
    assert model.calls[-1].max_tokens == 3
    fast.close()


def test_the_backend_coming_back_needs_no_restart(settings, llm, start_server, tmp_path):
    """The model endpoint (here another Lepton server) is down: 503 backend_unavailable with
    Retry-After, nothing stored. Once it is up, the next turn is answered by the same
    server process, and only that turn is stored."""
    from assistant import Settings

    port = free_port()
    assistant = Assistant.from_settings(settings, llm=OpenAIChatModel(f"http://127.0.0.1:{port}/v1",
                                                                      model="customer_service", timeout=60))
    live = start_server(settings, assistant)
    down = chat(live.base_url, max_tokens=4)
    assert down.status_code == 503 and down.headers["Retry-After"] == "5"
    assert down.json()["error"]["code"] == "backend_unavailable"
    assert httpx.get(live.base_url + "/readyz").status_code == 503
    assert stored_turns(settings) == 0

    upstream_settings = Settings(data_dir=tmp_path / "upstream", model=settings.model, max_tokens=4,
                                 demo_knowledge=False, demo_skills=False)
    upstream = Assistant.from_settings(upstream_settings, llm=llm)
    start_server(upstream_settings, upstream, port=port)
    assert httpx.get(live.base_url + "/readyz").status_code == 200
    back = chat(live.base_url, max_tokens=4)
    assert back.status_code == 200, back.text
    assert back.json()["choices"][0]["message"]["content"]
    assert stored_turns(settings) == 1
    assistant.close()
    upstream.close()


def _drop_connections(url: str) -> int:
    """What a PostgreSQL restart or failover does to Lepton: its connections are ended
    by the server. Returns how many were."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        return admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]


def test_a_lost_database_connection_is_a_503_and_the_next_request_connects_again(settings, llm, start_server,
                                                                                   postgres_url):
    """PostgreSQL drops the worker's connection: the request that meets the loss gets 503
    database_unavailable with Retry-After; the next one is answered on a new connection,
    in the same conversation, and /readyz recovers without a restart."""
    settings = settings.model_copy(update={"database_url": postgres_url})
    assistant = Assistant.from_settings(settings, llm=llm)
    live = start_server(settings, assistant)
    first = chat(live.base_url, max_tokens=2)
    assert first.status_code == 200, first.text
    conversation = first.json()["lepton"]["conversation_id"]
    assert _drop_connections(postgres_url) >= 1
    again = {"lepton": {"conversation_id": conversation}, "max_tokens": 2}
    lost = chat(live.base_url, **again)
    assert lost.status_code == 503 and lost.headers["Retry-After"] == "2", lost.text
    assert lost.json()["error"]["code"] == "database_unavailable"
    back = chat(live.base_url, **again)
    assert back.status_code == 200, back.text
    history = httpx.get(f"{live.base_url}/v1/conversations/{conversation}").json()["messages"]
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert _drop_connections(postgres_url) >= 1
    assert httpx.get(live.base_url + "/readyz").status_code == 200  # its check connects again
    assistant.close()


def test_slow_headers_are_cut_off_and_surplus_connections_get_a_503(settings, assistant, start_server):
    """A client that sends its headers too slowly is disconnected after LEPTON_HEADER_TIMEOUT
    (an idle kept-alive connection is not, until LEPTON_KEEPALIVE_TIMEOUT);
    past LEPTON_MAX_CONNECTIONS a new connection gets a 503 in the OpenAI error shape, with
    Retry-After, and normal requests work again once connections close."""
    live = start_server(settings.model_copy(update={"header_timeout": 0.5, "max_connections": 3}), assistant)
    slow = socket.create_connection(("127.0.0.1", live.port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ...and the rest never comes
    slow.settimeout(10)
    started = time.monotonic()
    assert slow.recv(1024) == b""  # closed by the server
    assert 0.3 < time.monotonic() - started < 5
    slow.close()

    # A kept-alive connection may idle longer than the header timeout between requests
    # (a client waiting out a Retry-After), and its next request's headers get the same limit.
    kept = socket.create_connection(("127.0.0.1", live.port))
    kept.settimeout(10)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(2):
        kept.sendall(request)
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1.0)
    kept.sendall(b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    assert kept.recv(1024) == b"" and 0.3 < time.monotonic() - started < 5
    kept.close()

    idle = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(3)]
    time.sleep(0.2)
    surplus = socket.create_connection(("127.0.0.1", live.port))
    surplus.settimeout(10)
    answer = b""
    while chunk := surplus.recv(4096):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"]["code"] == "too_many_connections"
    for conn in idle + [surplus]:
        conn.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(live.base_url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not take connections again"
        time.sleep(0.1)


# -- a real `lepton serve` process, stopped and killed ------------------------------------

class ServeProcess:
    """`lepton serve` on a data dir, without demo data (its start-up is not under test)."""

    def __init__(self, data_dir: Path, model_path: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LEPTON_DATA_DIR": str(data_dir), "LEPTON_MODEL": model_path,
               "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false", "LEPTON_ADMIN_ACCESS": "loopback"}
        self.log = data_dir.parent / f"serve-{self.port}.err"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(self.port)],
                                        env=env, stdout=subprocess.DEVNULL, stderr=self._log_file)
        deadline = time.time() + 300
        while True:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(self.base_url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "lepton serve did not come up"
            time.sleep(0.5)

    def stop(self, sig: int) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=120)
        self._log_file.close()
        return code


#: A question the embedded model answers at length (no help centre: the answer is generated).
LONG = [{"role": "user", "content": "Please explain in detail how to return a damaged product and get a refund."}]


def stream_lines(base_url: str, conversation: str | None, messages, on_text) -> list[dict]:
    """The stream's events; ``on_text(n)`` is called after the n-th content chunk (n from 1)."""
    body = {"model": "customer_service", "stream": True, "messages": messages, "max_tokens": 400}
    if conversation:
        body["lepton"] = {"conversation_id": conversation}
    events, texts = [], 0
    with httpx.stream("POST", base_url + "/v1/chat/completions", json=body, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            events.append(json.loads(line[6:]))
            if events[-1].get("choices") and events[-1]["choices"][0]["delta"].get("content"):
                texts += 1
                on_text(texts)
    return events


@pytest.mark.slow
def test_sigkill_mid_turn_leaves_the_conversation_as_it_was_and_sigterm_drains_streams(tmp_path, model_path):
    """SIGKILL while an answer streams: after a restart the conversation holds exactly the
    turns completed before it and continues normally. SIGTERM while an answer streams: the
    stream is finished (to its last chunk and [DONE]) before the process exits, and that
    turn is stored."""
    data = tmp_path / "data"
    server = ServeProcess(data, model_path)
    first = httpx.post(server.base_url + "/v1/chat/completions", timeout=120, json={
        "model": "customer_service", "max_tokens": 8, "messages": [{"role": "user", "content": "Where is my parcel?"}]})
    assert first.status_code == 200
    conversation = first.json()["lepton"]["conversation_id"]
    before = httpx.get(f"{server.base_url}/v1/conversations/{conversation}").json()

    killed: list[int] = []

    def kill_after_three(n: int) -> None:
        if n == 3 and not killed:
            killed.append(server.stop(signal.SIGKILL))

    with pytest.raises(httpx.HTTPError):  # the connection dies with the process
        stream_lines(server.base_url, conversation, LONG, kill_after_three)
    assert killed == [-signal.SIGKILL]

    server = ServeProcess(data, model_path)
    after = httpx.get(f"{server.base_url}/v1/conversations/{conversation}").json()
    assert after == before, "the killed turn left nothing behind"
    third = httpx.post(server.base_url + "/v1/chat/completions", timeout=120, json={
        "model": "customer_service", "max_tokens": 8, "lepton": {"conversation_id": conversation},
        "messages": [{"role": "user", "content": "It was due on Monday."}]})
    assert third.status_code == 200
    messages = httpx.get(f"{server.base_url}/v1/conversations/{conversation}").json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Where is my parcel?", "It was due on Monday."]

    stopping: list[float] = []

    def terminate_after_three(n: int) -> None:
        if n == 3 and not stopping:
            stopping.append(time.monotonic())
            server.process.send_signal(signal.SIGTERM)

    events = stream_lines(server.base_url, conversation, LONG, terminate_after_three)
    texts = [e for e in events if e.get("choices") and e["choices"][0]["delta"].get("content")]
    assert stopping and len(texts) > 3, "the answer went on after SIGTERM"
    assert events[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "error" not in events[-1]
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Traceback" not in server.log.read_text()
    with sqlite3.connect(data / "lepton.sqlite3") as conn:
        turns = conn.execute("SELECT turns FROM conversations WHERE conversation_id = ?", (conversation,)).fetchone()
    assert turns == (3,), "the drained turn was stored"
