"""The replica pool's choices: least busy first, failover before the first token, a
replica left out while it fails its health check and given the adapters it missed
when it comes back. The replicas here are stand-ins behind the ChatModel protocol
whose failures the test sets; tests/test_vllm_replicas.py runs real vLLM servers."""

from __future__ import annotations

import threading

import pytest

from assistant import Settings
from assistant.errors import BackendBusy, BackendError
from assistant.llm import Generation, GenerationParams, Health, create_chat_model
from assistant.llm.replicas import ReplicaPool

PARAMS = GenerationParams(max_tokens=4)
ASK = [{"role": "user", "content": "hi"}]


class Replica:
    """Answers with its own name; ``fail`` is raised when a request opens, ``healthy``
    is what its health check says, ``gate`` (when set) holds each stream before its
    first piece."""

    def __init__(self, name: str):
        self.name = name
        self.fail: Exception | None = None
        self.healthy = True
        self.gate: threading.Event | None = None
        self.requests = 0
        self.loaded: list[tuple[str, str]] = []

    def stream(self, messages, params, *, adapter=None):
        if self.fail is not None:
            raise self.fail
        self.requests += 1
        gate = self.gate

        def pieces():
            if gate is not None:
                gate.wait(10)
            yield f"{self.name}:{adapter or 'base'}"

        generation = Generation(pieces())
        generation.prompt_tokens, generation.completion_tokens, generation.finish_reason = 3, 1, "stop"
        return generation

    def complete(self, messages, params, *, adapter=None):
        return self.stream(messages, params, adapter=adapter).collect()

    def load_adapter(self, name, path):
        if self.fail is not None:
            raise self.fail
        self.loaded.append((name, path))

    ensure_adapter = load_adapter

    def adapters(self):
        return [name for name, _ in self.loaded]

    def health(self):
        return Health(self.healthy, "ok" if self.healthy else "unreachable")

    def close(self):
        pass


@pytest.fixture
def replicas():
    a, b = Replica("a"), Replica("b")
    pool = ReplicaPool([a, b], check_interval=3600)  # checks run when the test calls check()
    yield pool, a, b
    pool.close()


def test_requests_go_to_the_least_busy_replica(replicas):
    pool, a, b = replicas
    assert sorted(pool.complete(ASK, PARAMS).text[0] for _ in range(4)) == ["a", "a", "b", "b"]  # ties take turns
    a.gate = b.gate = threading.Event()
    held = pool.stream(ASK, PARAMS)  # one stream in flight, on one of them
    busy = next(r for r in (a, b) if r.requests == 3)
    free = b if busy is a else a
    before = free.requests
    for _ in range(3):
        pool.stream(ASK, PARAMS).close()  # opened and closed: the held one stays the only one in flight
    assert free.requests == before + 3 and busy.requests == 3
    a.gate.set()
    assert "".join(held).startswith(busy.name)
    assert [s["in_flight"] for s in pool.replica_states()] == [0, 0]


def test_a_replica_that_fails_is_left_out_and_the_request_goes_to_another(replicas):
    pool, a, b = replicas
    a.fail = BackendError("connection refused")
    answers = {pool.complete(ASK, PARAMS).text for _ in range(4)}
    assert answers == {"b:base"}
    states = pool.replica_states()
    assert states[0]["up"] is False and "connection refused" in states[0]["reason"] and states[1]["up"]
    health = pool.health()
    assert health.ok and "1 of 2 replicas up" in health.detail


def test_a_busy_replica_is_skipped_for_that_request_only(replicas):
    pool, a, b = replicas
    a.fail = BackendBusy("backend busy: queue full")
    assert {pool.complete(ASK, PARAMS).text for _ in range(3)} == {"b:base"}
    assert all(state["up"] for state in pool.replica_states())


def test_with_no_replica_able_to_answer_the_error_is_immediate_and_says_why(replicas):
    pool, a, b = replicas
    a.fail = b.fail = BackendBusy("backend busy: queue full")
    with pytest.raises(BackendBusy, match="every replica is busy"):
        pool.stream(ASK, PARAMS)
    a.fail = b.fail = BackendError("connection refused")
    with pytest.raises(BackendError, match="no replica can answer.*connection refused"):
        pool.complete(ASK, PARAMS)
    assert not pool.health().ok
    with pytest.raises(BackendError, match="no replica can answer"):  # both down now: not even tried
        pool.complete(ASK, PARAMS)


def test_a_replica_back_from_a_failure_gets_the_adapters_it_missed(replicas, tmp_path):
    pool, a, b = replicas
    a.fail = BackendError("connection refused")
    a.healthy = False
    pool.check()
    pool.load_adapter("cs-v1", str(tmp_path))
    assert b.loaded == [("cs-v1", str(tmp_path))] and a.loaded == []
    pool.check()
    assert pool.replica_states()[0]["up"] is False  # still failing its health check
    a.fail, a.healthy = None, True
    pool.check()
    assert a.loaded == [("cs-v1", str(tmp_path))] and pool.replica_states()[0]["up"]
    assert {pool.complete(ASK, PARAMS, adapter="cs-v1").text for _ in range(4)} == {"a:cs-v1", "b:cs-v1"}
    pool.ensure_adapter("cs-v1", str(tmp_path))  # known: nothing loaded again
    assert len(a.loaded) == len(b.loaded) == 1
    assert pool.adapters() == ["cs-v1"]


def test_an_adapter_with_no_replica_up_is_an_error_and_is_loaded_when_one_returns(replicas, tmp_path):
    pool, a, b = replicas
    a.healthy = b.healthy = False
    pool.check()
    with pytest.raises(BackendError, match="no replica is up to load adapter"):
        pool.load_adapter("cs-v1", str(tmp_path))
    b.healthy = True
    pool.check()
    assert b.loaded == [("cs-v1", str(tmp_path))]


class Breaks(Replica):
    """Sends one piece, then its connection drops."""

    def stream(self, messages, params, *, adapter=None):
        self.requests += 1

        def pieces():
            yield "first "
            raise BackendError("backend stream failed: connection reset")

        return Generation(pieces())


def test_an_error_in_the_middle_of_a_stream_ends_it_and_marks_the_replica_down():
    breaks, b = Breaks("a"), Replica("b")
    pool = ReplicaPool([breaks, b], check_interval=3600)
    try:
        stream = pool.stream(ASK, PARAMS)  # the first request goes to the first replica
        assert next(stream) == "first "  # text was sent: no failover now, the stream ends in an error
        with pytest.raises(BackendError, match="connection reset"):
            next(stream)
        assert pool.replica_states() == [
            {"name": "a", "up": False, "reason": "backend stream failed: connection reset", "in_flight": 0},
            {"name": "b", "up": True, "reason": "", "in_flight": 0}]
        assert pool.complete(ASK, PARAMS).text == "b:base" and breaks.requests == 1
    finally:
        pool.close()


def test_several_urls_make_a_pool_and_a_bad_one_is_refused(tmp_path):
    settings = Settings(data_dir=tmp_path, backend="openai",
                        openai_base_url="http://127.0.0.1:9/v1, http://127.0.0.1:10/v1", openai_model="m")
    pool = create_chat_model(settings)
    try:
        assert isinstance(pool, ReplicaPool)
        assert [state["up"] for state in pool.replica_states()] == [False, False]  # nothing listens there
        with pytest.raises(BackendError, match="no replica can answer"):
            pool.complete(ASK, PARAMS)
    finally:
        pool.close()
    with pytest.raises(ValueError, match="vllm_url must list URLs starting with http:// or https://, not 'host:8001'"):
        Settings(data_dir=tmp_path, backend="vllm", vllm_url="http://a:8001,host:8001")
