"""`lepton serve --workers 2` as a user starts it: two worker processes on one port, a
Chroma server on loopback for the documents, the SQLite records database under the
data directory; the rate limits count the requests both workers answer, and /metrics reports both."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import free_port, wait_until_serving
from tests.retrieval.test_retrieval_chroma_server import chroma_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.slow


def _workers_of(pid: int) -> list[int]:
    """The worker processes ``pid`` started (multiprocessing's spawned children; not its
    resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = []
    for child in children.read_text().split() if children.exists() else []:
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def _models_requests(exposition: str) -> dict[str, float]:
    """GET /v1/models requests by status, from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(exposition) if family.name == "lepton_http_requests"
            for sample in family.samples
            if sample.name == "lepton_http_requests_total" and sample.labels["route"] == "/v1/models"}


def test_two_workers_answer_on_one_port_and_share_the_rate_limit_and_the_metrics(tmp_path, model_path, chroma_url):  # noqa: F811
    port = free_port()
    env = {**os.environ, "LEPTON_DATA_DIR": str(tmp_path / "data"), "LEPTON_MODEL": model_path,
           "LEPTON_CHROMA_URL": chroma_url, "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false",
           "LEPTON_IP_RATE_PER_MINUTE": "6", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"an earlier run's counts")  # must not be added in
    log = tmp_path / "serve.err"
    with log.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port), "--workers", "2"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base + "/readyz", log, ready=lambda: len(_workers_of(process.pid)) >= 2)
        assert len(_workers_of(process.pid)) == 2
        api = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0)
        answer = api.chat.completions.create(model="customer_service", max_tokens=4,
                                             messages=[{"role": "user", "content": "My parcel never arrived"}])
        assert answer.choices[0].message.content
        statuses = []
        for _ in range(11):  # a new connection each: the kernel hands them to either worker
            with httpx.Client(base_url=base) as fresh:
                statuses.append(fresh.get("/v1/models").status_code)
        # 6 a minute from this address, both workers together: the chat and 5 more.
        assert statuses == [200] * 5 + [429] * 6, statuses
        # Both workers keep metrics, and whichever answers /metrics reports them all.
        workers = set(_workers_of(process.pid))
        writers = {int(f.stem.rsplit("_", 1)[1]) for f in (tmp_path / "metrics").glob("counter_*.db")}
        assert writers == workers, (writers, workers)
        for _ in range(4):
            with httpx.Client(base_url=base) as fresh:
                scraped = _models_requests(fresh.get("/metrics").text)
            assert scraped == {"200": 5.0, "429": 6.0}, scraped
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    err = log.read_text()
    assert "Starting 2 workers" in err
    assert len(re.findall(r"^Worker \d+ ready$", err, re.M)) == 2, err[-3000:]  # each says when it is up
    assert "Traceback" not in err, err[-3000:]
