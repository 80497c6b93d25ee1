"""`lepton serve` over two real vLLM servers (CPU build) given as `--vllm-url A,B`:
requests are shared between them, one killed mid-run costs no request, an adapter
activated while it is down reaches it when it comes back, and it then answers alone
through that adapter. Driven with the official openai client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant import Settings
from assistant.llm.vllm import vllm_command
from tests.conftest import free_port
from tests.test_vllm import STARTUP_S, make_lora, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

QUESTION = [{"role": "user", "content": "My parcel never arrived, what can I do?"}]


def start_vllm(model_path: str, port: int, log: Path) -> subprocess.Popen:
    """An external vLLM (not Lepton's managed one) in its own process group."""
    settings = Settings(data_dir=log.parent / "unused")
    command = vllm_command(settings, model_path, Path(model_path).name, port, {}, 8)
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def answered(url: str) -> float:
    """Requests this vLLM finished (its Prometheus counter)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total"))


def served_adapters(url: str) -> set[str]:
    return {m["id"] for m in httpx.get(url + "/v1/models", timeout=10).json()["data"] if m.get("parent")}


def kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=60)


def test_lepton_serve_over_two_vllm_replicas(tmp_path, model_path):
    import openai

    from assistant.adapters import AdapterRegistry, model_identity

    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [tmp_path / "vllm-a.log", tmp_path / "vllm-b.log"]
    replicas = [start_vllm(model_path, port, log) for port, log in zip(ports, logs)]
    serve_log = tmp_path / "serve.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path / "data"), "LEPTON_MODEL": model_path,
           "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false",
           "LEPTON_OPENAI_MODEL": Path(model_path).name, "LEPTON_REPLICA_CHECK_INTERVAL": "1"}
    server = None
    try:
        for url, process, log in zip(urls, replicas, logs):
            wait_ready(url, process, log, STARTUP_S, path="/health")
        with serve_log.open("w") as out:
            server = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port),
                                       "--vllm-url", ",".join(urls)],
                                      env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        wait_ready(base, server, serve_log, 300)
        api = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)

        # Requests one after another take turns between the two (both equally idle).
        before = [answered(url) for url in urls]
        base_answer = None
        for _ in range(4):
            reply = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=8)
            base_answer = reply.choices[0].message.content
            assert base_answer.strip()
        assert [answered(url) - b for url, b in zip(urls, before)] == [2, 2]

        # B is killed: no request fails, A answers all; readiness holds with one replica.
        kill(replicas[1])
        before_a = answered(urls[0])
        for _ in range(3):
            assert api.chat.completions.create(model="assistant", messages=QUESTION, max_tokens=8).choices[0].message.content
        assert answered(urls[0]) - before_a == 3
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 200, ready.text

        # An adapter activated now reaches A at once ...
        identity = model_identity(model_path)
        AdapterRegistry(tmp_path / "data" / "adapters").register(
            "care-v1", make_lora(model_path, tmp_path / "lora", seed=1), skill="customer_service",
            base_model=identity.base_model, template_hash=identity.template_hash, activate=True)
        adapted = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=8)
        adapted_answer = adapted.choices[0].message.content
        assert adapted_answer != base_answer and "care-v1" in served_adapters(urls[0])

        # ... and B when it is back; then B answers alone, through the adapter.
        replicas[1] = start_vllm(model_path, ports[1], logs[1])
        wait_ready(urls[1], replicas[1], logs[1], STARTUP_S, path="/health")
        deadline = time.time() + 60
        while "care-v1" not in served_adapters(urls[1]):
            assert time.time() < deadline, f"B never got the adapter:\n{serve_log.read_text()[-3000:]}"
            time.sleep(1)
        time.sleep(2)  # the pool counts B as up once the adapter is loaded
        kill(replicas[0])
        before_b = answered(urls[1])
        again = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=8)
        assert again.choices[0].message.content == adapted_answer  # greedy, same weights, same adapter
        assert answered(urls[1]) - before_b == 1
        assert "is back" in serve_log.read_text()  # the pool logged B coming back
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
        for process in replicas:
            kill(process)
