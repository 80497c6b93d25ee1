"""Load test: many conversations at once through the HTTP API of a real `lepton serve`.

    python benchmarks/load_test.py [--conversations 64] [--turns 10] [--max-tokens 8]
        [--backend local|vllm] [--kill-backend-after N] [--time-limit 1500] [--json]

Starts ``lepton serve`` on loopback on a fresh data directory (built-in skills, no
demo data), makes an API key, and runs ``--conversations`` clients at once, each
sending ``--turns`` messages one after the other in its own conversation (half of
them name ``customer_service``, half let the router choose). Afterwards it reads
every conversation back (``GET /v1/conversations/{id}``) and checks that its stored
history is exactly its own successful turns, in order: each message sent and the
answer the client received.

A client that gets 429, 503 or 504 waits the response's Retry-After and sends the
same message again, as integrators are told to; any other error moves it to its
next message. Every failed attempt is counted by status and error code, and one
without an OpenAI error body (or, for 429/503/504, without Retry-After) counts as
unclear.

``--kill-backend-after N`` (with ``--backend vllm``): once N turns are answered,
the managed vLLM is killed with SIGKILL; the server's supervisor restarts it, and
the clients go on through the outage. The run is bounded by ``--time-limit``
seconds; clients still running then stop and the run says so.

The server runs with a local queue and key rate limit large enough for the clients
(``LEPTON_MAX_QUEUE``, ``LEPTON_KEY_RATE_PER_MINUTE``): what is measured is
the server under load, not its refusals. Ends with "done".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BUILT_IN = '["customer_service","medical_triage","credit_scoring","recommendation"]'
TOPICS = [
    "where is my order {n}? It should have arrived by now",
    "can I change the delivery address of order {n}",
    "my payment for order {n} was taken twice",
    "how do I return item {n} from my last order",
    "the parcel {n} arrived damaged, what can I do",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Conversation:
    index: int
    model: str
    conversation_id: str | None = None
    #: (message, answer) of every turn the server answered, in order.
    answered: list[tuple[str, str]] = field(default_factory=list)
    failed_turns: int = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    unclear: list[str] = field(default_factory=list)
    answered: int = 0


def start_server(data_dir: Path, backend: str, queue: int) -> tuple[subprocess.Popen, str, str, Path]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEPTON_DATA_DIR": str(data_dir), "LEPTON_BACKEND": backend,
           "LEPTON_SKILLS": BUILT_IN, "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false",
           "LEPTON_MAX_QUEUE": str(queue), "LEPTON_KEY_RATE_PER_MINUTE": "1000000",
           "LEPTON_ACCESS_LOG": "false", "LEPTON_ADMIN_ACCESS": "loopback"}
    made = subprocess.run([sys.executable, "-m", "assistant", "keys", "create", "--tenant", "load", "--json"],
                          env=env, capture_output=True, text=True, check=True)
    key = json.loads(made.stdout.strip().splitlines()[-1])["key"]
    port = free_port()
    log = data_dir.parent / "serve.log"
    process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    while True:
        if process.poll() is not None:
            raise SystemExit(f"lepton serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return process, base, key, log
        except httpx.TransportError:
            pass
        if time.time() > deadline:
            raise SystemExit("lepton serve did not become ready")
        time.sleep(1)


def backend_pid(server_pid: int) -> int | None:
    """The managed vLLM: the serve process's child running vLLM's API server."""
    found = subprocess.run(["pgrep", "-P", str(server_pid), "-f", "vllm.entrypoints"], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def clear_error(response: httpx.Response) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    if not (isinstance(error, dict) and error.get("message") and error.get("type")):
        return False
    return response.status_code not in (429, 503, 504) or "retry-after" in response.headers


async def run_conversation(client: httpx.AsyncClient, conv: Conversation, turns: int, max_tokens: int,
                           tally: Tally, stop_at: float) -> None:
    for turn in range(turns):
        message = f"(conversation {conv.index}, message {turn + 1}) " + \
            TOPICS[(conv.index + turn) % len(TOPICS)].format(n=conv.index * 100 + turn)
        body: dict = {"model": conv.model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": message}]}
        if conv.conversation_id:
            body["lepton"] = {"conversation_id": conv.conversation_id}
        while True:
            if time.monotonic() > stop_at:
                return
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                tally.statuses["transport error"] += 1
                tally.unclear.append(f"transport: {exc!r}")
                conv.failed_turns += 1
                break
            tally.statuses[response.status_code] += 1
            if response.status_code == 200:
                tally.latencies.append(time.perf_counter() - started)
                data = response.json()
                conv.conversation_id = data["lepton"]["conversation_id"]
                conv.answered.append((message, data["choices"][0]["message"]["content"]))
                tally.answered += 1
                break
            if not clear_error(response):
                tally.unclear.append(f"{response.status_code}: {response.text[:200]}")
            else:
                tally.codes[f"{response.status_code} {response.json()['error'].get('code')}"] += 1
            if response.status_code in (429, 503, 504) and "retry-after" in response.headers:
                await asyncio.sleep(float(response.headers["retry-after"]))
                continue
            conv.failed_turns += 1
            break


async def kill_backend(server: subprocess.Popen, base: str, tally: Tally, after: int, events: dict) -> None:
    while tally.answered < after:
        await asyncio.sleep(0.2)
    pid = backend_pid(server.pid)
    if pid is None:
        events["kill"] = "no vLLM child found"
        return
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    events.update(kill=f"SIGKILL to vLLM pid {pid} after {tally.answered} answered turns")
    async with httpx.AsyncClient(base_url=base, timeout=10) as probe:
        while True:
            await asyncio.sleep(1)
            try:
                ready = (await probe.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready and backend_pid(server.pid) not in (None, pid):
                events["backend_down_s"] = round(time.monotonic() - killed, 1)
                return


def check_histories(base: str, key: str, conversations: list[Conversation]) -> list[str]:
    """What is wrong with each stored conversation (empty: every one is exactly its own turns)."""
    problems = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for conv in conversations:
            if conv.conversation_id is None:
                if conv.answered:
                    problems.append(f"conversation {conv.index}: answered but no id")
                continue
            response = client.get(f"/v1/conversations/{conv.conversation_id}")
            if response.status_code != 200:
                problems.append(f"conversation {conv.index}: GET answered {response.status_code}")
                continue
            stored = [(m["role"], m["content"]) for m in response.json()["messages"]]
            expected = [pair for message, answer in conv.answered
                        for pair in (("user", message), ("assistant", answer))]
            if stored != expected:
                problems.append(f"conversation {conv.index}: stored {len(stored)} messages, expected "
                                f"{len(expected)}; first difference at "
                                f"{next((i for i, (a, b) in enumerate(zip(stored, expected)) if a != b), min(len(stored), len(expected)))}")
    return problems


async def load(base: str, key: str, args: argparse.Namespace, server: subprocess.Popen) -> dict:
    conversations = [Conversation(i, "customer_service" if i % 2 == 0 else "assistant")
                     for i in range(args.conversations)]
    tally, events = Tally(), {}
    limits = httpx.Limits(max_connections=args.conversations + 8, max_keepalive_connections=args.conversations + 8)
    started = time.monotonic()
    stop_at = started + args.time_limit
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600,
                                 limits=limits) as client:
        tasks = [run_conversation(client, conv, args.turns, args.max_tokens, tally, stop_at) for conv in conversations]
        if args.kill_backend_after:
            tasks.append(kill_backend(server, base, tally, args.kill_backend_after, events))
        await asyncio.gather(*tasks)
    wall = time.monotonic() - started
    problems = check_histories(base, key, conversations)
    server_errors = sum(n for status, n in tally.statuses.items() if isinstance(status, int) and status >= 500)
    latencies = sorted(tally.latencies)
    return {
        "conversations": args.conversations, "turns_each": args.turns, "max_tokens": args.max_tokens,
        "backend": args.backend, "answered_turns": tally.answered,
        "turns_not_answered": sum(c.failed_turns for c in conversations),
        "unfinished": time.monotonic() > stop_at,
        "wall_s": round(wall, 1), "answered_per_s": round(tally.answered / wall, 2),
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items(), key=str)},
        "error_codes": dict(tally.codes), "server_errors": server_errors,
        "unclear_errors": len(tally.unclear), "unclear_examples": tally.unclear[:5],
        "corrupted_conversations": len(problems), "corruption_examples": problems[:5], **events,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--backend", choices=["local", "vllm"], default="local")
    parser.add_argument("--kill-backend-after", type=int, default=0, metavar="N",
                        help="SIGKILL the managed vLLM once N turns are answered (--backend vllm).")
    parser.add_argument("--time-limit", type=float, default=1500.0, help="Seconds the clients may run.")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    args = parser.parse_args()
    if args.kill_backend_after and args.backend != "vllm":
        parser.error("--kill-backend-after needs --backend vllm (the local model runs inside the server)")
    with tempfile.TemporaryDirectory(prefix="lepton-load-") as tmp:
        server, base, key, log = start_server(Path(tmp) / "data", args.backend, queue=args.conversations * 2)
        try:
            result = asyncio.run(load(base, key, args, server))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        result["server_exit"] = server.returncode
        result["tracebacks_in_server_log"] = log.read_text().count("Traceback")
    if args.json:
        print(json.dumps(result))
    else:
        for name, value in result.items():
            print(f"{name:>26}: {value}")
    print("done")


if __name__ == "__main__":
    main()
