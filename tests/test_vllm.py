"""`lepton serve --backend vllm` end to end: a real `lepton serve` process that starts
a real vLLM (CPU build) as its child, driven with the official openai client.

One test, because vLLM takes a minute and a half to start on two cores: it covers
streaming and non-streaming chat, a skill answering through a LoRA adapter given
at start-up, an adapter activated while the server runs (no restart), vLLM dying
mid-run (503 + Retry-After, nothing stored, restarted with its adapters), the
assistant keeping off the CPUs of vLLM's model (before and after the restart), and
a clean SIGTERM shutdown that leaves no vLLM process behind.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.llm._cpus import bound_cpus
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

STARTUP_S = 900  # vLLM takes ~90 s here alone; on a busy 2-core machine much more
QUESTION = [{"role": "user", "content": "My parcel never arrived, what can I do?"}]
CPUS = set(os.sched_getaffinity(0))


def vllm_processes(port: int) -> dict[int, int]:
    """pid → process group of every live process whose command line serves ``port``,
    plus every live process in those groups (vLLM's engine-core workers)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z":
            table[int(entry.name)] = (int(stat[2]), cmdline)
    groups = {pgid for pgid, cmd in table.values() if "vllm.entrypoints" in cmd and f"--port {port}" in cmd}
    return {pid: pgid for pid, (pgid, _) in table.items() if pgid in groups}


def vllm_leader(port: int) -> int:
    """The pid of the process that leads the vLLM process group (the API server)."""
    return next(pid for pid, pgid in vllm_processes(port).items() if pid == pgid)


def cpu_placement(server_pid: int, vllm_port: int) -> tuple[set[int], list[set[int]]]:
    """(CPUs the vLLM processes' threads are bound to, the distinct CPU sets of the
    assistant server's threads)."""
    model = bound_cpus(list(vllm_processes(vllm_port)), CPUS)
    masks = {frozenset(os.sched_getaffinity(int(tid))) for tid in os.listdir(f"/proc/{server_pid}/task")}
    return model, [set(mask) for mask in masks]


def make_lora(model_path: str, folder: Path, seed: int) -> Path:
    """A LoRA adapter (r=8 on q_proj/v_proj) with random non-zero weights, so it
    visibly changes the model's answers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(model_path)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(folder)
    return folder


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float, path: str = "/readyz") -> None:
    """Until ``base + path`` answers 200 (the server at ``base``, started as ``process``, is ready)."""
    deadline = time.time() + timeout
    while True:
        assert process.poll() is None, f"the server exited:\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(base + path, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.time() < deadline, f"not ready after {timeout} s:\n{log.read_text()[-4000:]}"
        time.sleep(2)


def test_lepton_serve_through_a_managed_vllm(tmp_path, model_path):
    import openai

    from assistant.adapters import AdapterRegistry, model_identity

    assert importlib.util.find_spec("vllm") is not None, "vLLM is missing: run bash scripts/install_vllm.sh"
    identity = model_identity(model_path)
    registry = AdapterRegistry(tmp_path / "adapters")

    def register(name: str, skill: str, seed: int) -> None:
        registry.register(name, make_lora(model_path, tmp_path / f"lora-{name}", seed), skill=skill,
                          base_model=identity.base_model, template_hash=identity.template_hash, activate=True)

    register("care-v0", "customer_service", seed=0)  # active before start: a --lora-modules argument

    port, vllm_port = free_port(), free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path), "LEPTON_MODEL": model_path, "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false",
           "LEPTON_VLLM_PORT": str(vllm_port), "LEPTON_VLLM_STARTUP_TIMEOUT": str(STARTUP_S)}
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--backend", "vllm", "--port", str(port)],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    base, vllm_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{vllm_port}"
    api = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
    seen_pids: set[int] = set()
    try:
        wait_ready(base, process, log, STARTUP_S + 120)
        seen_pids |= set(vllm_processes(vllm_port))
        assert seen_pids, "no vLLM process serves the configured port"
        # vLLM's CPU build binds its model worker to all CPUs but one; the assistant's
        # threads keep to the others (LEPTON_VLLM_SEPARATE_CPUS, on by default).
        # The CPU build runs at nice 19 (LEPTON_VLLM_NICE unset), below the assistant.
        leader = vllm_leader(vllm_port)
        assert os.getpriority(os.PRIO_PROCESS, leader) == min(19, os.getpriority(os.PRIO_PROCESS, process.pid) + 19)
        model_cpus, assistant_cpus = cpu_placement(process.pid, vllm_port)
        if len(CPUS) > 1:
            assert model_cpus and model_cpus < CPUS, model_cpus
            assert assistant_cpus == [CPUS - model_cpus], (model_cpus, assistant_cpus)
            assert "The assistant keeps to CPUs" in log.read_text()

        # The assistant lists skills, never adapters; vLLM lists the start-up adapter.
        ids = {m.id for m in api.models.list().data}
        assert "assistant" in ids and "customer_service" in ids and "care-v0" not in ids
        served = {m["id"]: m.get("parent") for m in httpx.get(vllm_base + "/v1/models").json()["data"]}
        assert served.get("care-v0") == identity.base_model

        # Non-streaming and streaming chat, through the start-up adapter (model=<adapter> to vLLM).
        plain = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=12)
        adapted_answer = plain.choices[0].message.content
        assert adapted_answer.strip() and plain.usage.completion_tokens > 0
        conversation = plain.model_extra["lepton"]["conversation_id"]
        chunks = list(api.chat.completions.create(model="assistant", messages=QUESTION, max_tokens=12, stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert chunks[-1].model_extra["lepton"]["skill"] == "customer_service"

        # Without its adapter the skill answers from the base model, and differently.
        registry.deactivate("care-v0")
        unadapted = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=12)
        base_answer = unadapted.choices[0].message.content
        assert base_answer != adapted_answer

        # An adapter activated while the server runs is used from the next turn, no restart.
        register("care-v1", "customer_service", seed=1)
        with_care = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=12)
        assert with_care.choices[0].message.content != base_answer
        served = {m["id"] for m in httpx.get(vllm_base + "/v1/models").json()["data"]}
        assert "care-v1" in served

        # vLLM dies mid-run: 503 with Retry-After, the conversation is untouched, and
        # the restarted vLLM has every adapter again, the run-time one too.
        history = httpx.get(f"{base}/v1/conversations/{conversation}").json()["messages"]
        leader = vllm_leader(vllm_port)
        os.kill(leader, signal.SIGKILL)
        time.sleep(1)
        with pytest.raises(openai.APIStatusError) as down:
            api.chat.completions.create(model="customer_service", messages=[{"role": "user", "content": "Hello?"}],
                                        max_tokens=8, extra_body={"lepton": {"conversation_id": conversation}})
        assert down.value.status_code == 503 and down.value.response.headers["Retry-After"]
        assert down.value.response.json()["error"]["code"] == "backend_unavailable"
        assert httpx.get(base + "/readyz").status_code == 503
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(f"{base}/v1/conversations/{conversation}").json()["messages"] == history
        wait_ready(base, process, log, STARTUP_S + 120)
        seen_pids |= set(vllm_processes(vllm_port))
        assert leader not in vllm_processes(vllm_port)
        # The restarted vLLM got every CPU back, so it bound its model as the first one did.
        assert cpu_placement(process.pid, vllm_port) == (model_cpus, assistant_cpus)
        served = {m["id"] for m in httpx.get(vllm_base + "/v1/models").json()["data"]}
        assert {"care-v0", "care-v1"} <= served
        again = api.chat.completions.create(model="customer_service", messages=QUESTION, max_tokens=12)
        assert again.choices[0].message.content.strip()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    output = log.read_text()
    assert process.returncode in (0, -signal.SIGTERM), output[-4000:]
    # Nothing that served vLLM's port, nor anything in those process groups, survived.
    deadline = time.time() + 30
    while vllm_processes(vllm_port) and time.time() < deadline:
        time.sleep(0.5)
    assert vllm_processes(vllm_port) == {}
    assert not [pid for pid in seen_pids if Path(f"/proc/{pid}").exists()
                and (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z")]


@pytest.mark.parametrize("env,message", [
    ({"LEPTON_VLLM_ARGS": '["--no-such-vllm-flag"]'}, "unrecognized arguments: --no-such-vllm-flag"),
    ({"LEPTON_VLLM_PYTHON": "/nonexistent/python"}, "cannot start vllm (/nonexistent/python)"),
])
def test_a_vllm_that_cannot_start_is_a_clear_error(tmp_path, model_path, env, message):
    """The error names the cause from vLLM's own last output, and nothing is left running."""
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--backend", "vllm"],
        env={**os.environ, "LEPTON_DATA_DIR": str(tmp_path), "LEPTON_MODEL": model_path,
             "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false", "LEPTON_VLLM_PORT": str(port), **env},
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("Error:", 1)[0]
    error = result.stderr.split("Error: ", 1)[1]
    assert error.startswith("vLLM did not start: ") and message in error, result.stderr
    assert vllm_processes(port) == {}
