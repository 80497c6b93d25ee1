"""Load test: many conversations at once through the HTTP API of a real `lepton serve`.

    python benchmarks/load_test.py [--conversations 64] [--turns 10] [--max-tokens 8]
        [--backend local|vllm] [--kill-backend-after N] [--time-limit 1500] [--json]
        [--workers N] [--database-url postgresql://...] [--chroma-url URL] [--vllm-url URL]
        [--compare-workers 1,2,4]

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
the server under load, not its refusals.

``--workers N`` runs ``lepton serve --workers N``; past one worker the documents must
be in a Chroma server, so without ``--chroma-url`` the script starts one on loopback.
``--database-url`` puts the records in PostgreSQL instead of the data directory's
SQLite file; ``--vllm-url`` attaches the server to a running vLLM.

``--compare-workers 1,2,4`` measures throughput by worker count: it starts one managed
vLLM (as ``lepton serve --backend vllm`` would), then runs the same load once per
count against it, each on a fresh data directory, and reports each run with its
answered turns per second as a ratio to the first count's. Ends with "done".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


def start_server(data_dir: Path, args: argparse.Namespace, queue: int) -> tuple[subprocess.Popen, str, str, Path]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEPTON_DATA_DIR": str(data_dir), "LEPTON_BACKEND": args.backend,
           "LEPTON_SKILLS": BUILT_IN, "LEPTON_DEMO_KNOWLEDGE": "false", "LEPTON_DEMO_SKILLS": "false",
           "LEPTON_MAX_QUEUE": str(queue), "LEPTON_KEY_RATE_PER_MINUTE": "1000000",
           "LEPTON_ACCESS_LOG": "false", "LEPTON_ADMIN_ACCESS": "loopback"}
    for name, value in (("LEPTON_DATABASE_URL", args.database_url), ("LEPTON_CHROMA_URL", args.chroma_url)):
        if value:
            env[name] = value
    made = subprocess.run([sys.executable, "-m", "assistant", "keys", "create", "--tenant", "load", "--json"],
                          env=env, capture_output=True, text=True)
    if made.returncode:
        raise SystemExit(f"lepton keys create failed: {made.stderr.strip()[-2000:]}")
    key = json.loads(made.stdout.strip().splitlines()[-1])["key"]
    port = free_port()
    log = data_dir.parent / "serve.log"
    command = [sys.executable, "-m", "assistant", "serve", "--port", str(port), "--workers", str(args.workers)]
    if args.vllm_url:
        command += ["--vllm-url", args.vllm_url]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    while True:
        if process.poll() is not None:
            raise SystemExit(f"lepton serve exited: {log.read_text()[-2000:]}")
        try:
            # Past one worker, /readyz answers from the first one up: wait for them all.
            if httpx.get(base + "/readyz", timeout=2).status_code == 200 and \
                    (args.workers == 1 or log.read_text().count(" ready\n") >= args.workers):
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


def run_once(args: argparse.Namespace) -> dict:
    """One load run on a fresh data directory: start the server, load it, stop it."""
    with tempfile.TemporaryDirectory(prefix="lepton-load-") as tmp:
        server, base, key, log = start_server(Path(tmp) / "data", args, queue=args.conversations * 2)
        try:
            result = asyncio.run(load(base, key, args, server))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                server.kill()
        result["workers"] = args.workers
        result["server_exit"] = server.returncode
        result["tracebacks_in_server_log"] = log.read_text().count("Traceback")
    return result


@contextlib.contextmanager
def chroma_server(folder: Path):
    """A Chroma server on loopback (the workers' shared document store); yields its URL."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(folder), "--host", "127.0.0.1",
               "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(url + "/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise SystemExit("the Chroma server did not start")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def managed_vllm(folder: Path):
    """One vLLM started as `lepton serve --backend vllm` starts it; yields its URL."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from assistant import Settings
    from assistant.llm.vllm import start_managed_vllm
    from assistant.models import resolve_model

    model = resolve_model(Settings(data_dir=os.environ.get("LEPTON_DATA_DIR") or folder / "model"))
    settings = Settings(data_dir=folder / "vllm", model=model, backend="vllm", demo_knowledge=False)
    llm = start_managed_vllm(settings, model, progress=lambda m: print(m, file=sys.stderr))
    try:
        yield llm.root_url
    finally:
        llm.close()


def compare_workers(args: argparse.Namespace, counts: list[int]) -> dict:
    """The same load once per worker count, against one vLLM; ratios to the first count."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lepton-workers-")))
        if not args.vllm_url:
            args.vllm_url = stack.enter_context(managed_vllm(folder))
        if not args.chroma_url and max(counts) > 1:
            args.chroma_url = stack.enter_context(chroma_server(folder / "chroma"))
        args.backend = "vllm"
        runs = []
        for count in counts:
            args.workers = count
            runs.append(run_once(args))
            print(f"{count} worker(s): {runs[-1]['answered_per_s']} turns/s", file=sys.stderr)
    first = runs[0]["answered_per_s"]
    for run in runs:
        run["ratio_to_first"] = round(run["answered_per_s"] / first, 3) if first else None
    return {"runs": runs, "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=64)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--backend", choices=["local", "vllm"], default="local")
    parser.add_argument("--kill-backend-after", type=int, default=0, metavar="N",
                        help="SIGKILL the managed vLLM once N turns are answered (--backend vllm).")
    parser.add_argument("--time-limit", type=float, default=1500.0, help="Seconds the clients may run.")
    parser.add_argument("--workers", type=int, default=1, help="API worker processes (lepton serve --workers).")
    parser.add_argument("--database-url", help="Keep the records in this PostgreSQL database.")
    parser.add_argument("--chroma-url", help="The Chroma server the workers share (started here if needed).")
    parser.add_argument("--vllm-url", help="Attach the server to this running vLLM.")
    parser.add_argument("--compare-workers", metavar="1,2,4",
                        help="Run the load once per worker count against one vLLM and compare throughput.")
    parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")
    args = parser.parse_args()
    if args.kill_backend_after and (args.backend != "vllm" or args.vllm_url or args.compare_workers):
        parser.error("--kill-backend-after needs --backend vllm with the server's own vLLM "
                     "(the local model runs inside the server)")
    if args.workers < 1:
        parser.error("--workers must be 1 or more")
    if args.vllm_url:
        args.backend = "vllm"
    if args.compare_workers:
        try:
            counts = [int(n) for n in args.compare_workers.split(",")]
        except ValueError:
            parser.error("--compare-workers takes worker counts separated by commas, e.g. 1,2,4")
        if not counts or min(counts) < 1:
            parser.error("--compare-workers takes worker counts of 1 or more")
        result = compare_workers(args, counts)
    else:
        with contextlib.ExitStack() as stack:
            if args.workers > 1 and not args.chroma_url:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lepton-chroma-"))
                args.chroma_url = stack.enter_context(chroma_server(Path(folder)))
            result = run_once(args)
    if args.json:
        print(json.dumps(result))
    elif "runs" in result:
        for run in result["runs"]:
            print(f"{run['workers']:>3} worker(s): {run['answered_per_s']} turns/s, ratio {run['ratio_to_first']}, "
                  f"p50 {run['latency_p50_s']} s, {run['answered_turns']} answered, {run['server_errors']} server errors")
    else:
        for name, value in result.items():
            print(f"{name:>26}: {value}")
    print("done")


if __name__ == "__main__":
    main()
