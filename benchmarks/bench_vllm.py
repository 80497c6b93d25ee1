"""The assistant's API over vLLM against raw vLLM, in one run, on the same prompts.

    python benchmarks/bench_vllm.py [--max-tokens 64] [--length-spread 0.5] [--stagger-ms 300]
                                    [--requests 48] [--concurrency 1 16] [--rounds 3]

Starts a managed vLLM (as `lepton serve --backend vllm` does) and the real
assistant on it behind a real uvicorn server on loopback. For each concurrency
level, the same chat requests go (streaming) once straight to vLLM and once
through the assistant's /v1/chat/completions:

- tokens/s = completion tokens of all requests / wall time of the batch;
  the ratio assistant / raw is the figure of merit (goal >= 0.95 at 16 streams);
- non-LLM time per turn, p50/p95, two ways (the assistant's turn observers report
  the model's share; the server runs in this process, the client in another, and both
  read the system-wide monotonic clock):
  "outside" = latency - the window from the turn's first model call to its last token,
  i.e. what the assistant adds before and after generation (routing, graph, SQLite,
  HTTP); "waiting" = latency - time the graph spent blocked on the model, which also
  counts relaying each token while the model is already generating the next;
- the requests come from a separate load-generator process, for both sides, one
  keep-alive connection per stream, read by hand on asyncio streams (``Connection``: a
  client library's own CPU per request and chunk would count as non-LLM time). It is
  started after vLLM is up, so it runs on the CPUs the assistant keeps to (off vLLM's
  model, ``LEPTON_VLLM_SEPARATE_CPUS``; on a 2-core machine the one CPU vLLM leaves to
  its scheduler) and takes nothing from the model; ``--shared-cpus`` lets the assistant
  and the load generator run on every CPU;
- each stream is a user who sends the next request when the last answer ends.
  Users do not all press enter in the same millisecond: stream k starts
  ``--stagger-ms`` * k after the first, and the requests' max_tokens spread over
  ``--max-tokens`` +/- ``--length-spread``, so the streams stay out of step. ``--length-spread 0
  --stagger-ms 0`` puts them in lock-step: every turn of a wave reaches the server
  in the same few milliseconds and waits for the CPU work of the others before
  its own (how many arrived together is reported);
- where routing (the embedding and ``router.route``) spends its time per message: the thread's own CPU, waiting for a
  core (Linux schedstat), and asleep (the interpreter lock, I/O);
- base model vs a LoRA adapter (random r=8 on q_proj/v_proj, active for the skill)
  at the highest concurrency, raw and through the assistant.

The messages are gift requests that the router sends to the `recommendation`
skill, which prompts the model with its system prompt and the user message; raw
vLLM gets exactly those two messages, so both sides generate from one prompt.
Greedy decoding: both sides produce the same tokens. Raw and assistant batches
alternate (``--rounds`` of each, ABBA order) and their tokens and wall times are
summed, so load from other processes on the machine hits both sides alike.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_turn_overhead import pct, serve  # noqa: E402 - a sibling script: benchmarks/ is on sys.path

MESSAGES = [
    "I need a present for my niece, she is ten",
    "Suggest a gift for my sister",
    "What could I buy my dad for his birthday?",
    "Gift ideas under 20 pounds for a colleague",
    "Recommend a present for a friend who loves cooking",
    "Looking for a birthday gift for my mum",
    "Any gift recommendations for a teenager who likes games?",
    "What should I get my brother for Christmas?",
]


#: Seconds one streamed answer may take before the benchmark gives up on it.
TIMEOUT = 600


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator, on plain asyncio streams.

    The streams are read by hand, not with an HTTP client library: what a client
    spends building requests and parsing chunks lands between the client's clock
    and the server's, so it would count as the assistant's non-LLM time. Both
    servers stream with chunked transfer encoding; error answers may carry a
    Content-Length instead."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def send(self, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (self.path.encode(), self.host.encode(), self.port,
                                                          len(payload), payload))

    async def head(self) -> tuple[int, dict[str, str]]:
        status_line = await self.reader.readline()
        if not status_line:
            raise RuntimeError(f"{self.host}:{self.port} closed the connection before answering")
        status = int(status_line.split()[1])
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def body(self, headers: dict[str, str]):  # noqa: ANN201 - async iterator of bytes
        """The body's pieces as they arrive, to its end (the connection stays usable)."""
        if "content-length" in headers:
            yield await self.reader.readexactly(int(headers["content-length"]))
            return
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            yield (await self.reader.readexactly(size + 2))[:-2]
        while await self.reader.readline() not in (b"\r\n", b"\n", b""):  # trailers, then the blank line
            pass


async def stream_one(connection: Connection, body: dict) -> tuple[float, int, str | None, str | None, float, float,
                                                                   float | None]:
    """(latency, completion tokens, conversation id, skill, start, end, first) of one streamed
    request; ``end`` is when the answer's last byte has been read, ``first`` when its first
    text arrived (None: none did)."""
    tokens, conversation, skill, first = 0, None, None, None
    start = time.perf_counter()
    connection.send(body)
    status, headers = await connection.head()
    if status != 200:
        text = b"".join([piece async for piece in connection.body(headers)])
        raise RuntimeError(f"{connection.path} answered {status}: {text[:300]!r}")
    pending = b""
    async for piece in connection.body(headers):
        *lines, pending = (pending + piece).split(b"\n")
        for line in lines:
            if not line.startswith(b"data: ") or line.rstrip() == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"{connection.path} failed mid-stream: {chunk['error']}")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                first = time.perf_counter()
            lepton = chunk.get("lepton") or {}
            conversation = lepton.get("conversation_id", conversation)
            skill = lepton.get("skill", skill)
    end = time.perf_counter()
    return end - start, tokens, conversation, skill, start, end, first


async def batch(url: str, bodies: list[dict], concurrency: int, stagger: float) -> tuple[float, list[tuple]]:
    """Send ``bodies`` over ``concurrency`` streams; (wall seconds, results in body order).

    Each stream is one user, on its own connection, sending its next request as soon
    as the last answer ends; stream k sends its first one ``k * stagger`` seconds
    after the start."""
    pending = iter(enumerate(bodies))
    results: list[tuple] = [()] * len(bodies)

    async def stream(k: int) -> None:
        await asyncio.sleep(k * stagger)
        connection = await Connection(url).open()
        try:
            for i, body in pending:  # one event loop: streams never take the same body
                results[i] = await asyncio.wait_for(stream_one(connection, body), TIMEOUT)
        finally:
            connection.close()

    start = time.perf_counter()
    await asyncio.gather(*(stream(k) for k in range(concurrency)))
    return time.perf_counter() - start, results


def client_batch(url: str, bodies: list[dict], concurrency: int, stagger: float) -> tuple[float, list[tuple]]:
    """``batch`` in the load-generator process (see ``main``)."""
    return asyncio.run(batch(url, bodies, concurrency, stagger))


def answer_lengths(n: int, mean: int, spread: float) -> list[int]:
    """max_tokens of request i: spread evenly over mean * [1 - spread, 1 + spread] (golden-ratio
    sequence, no randomness), so answers of different lengths end at different times."""
    return [max(1, round(mean * (1 + spread * (2 * ((i * 0.6180339887498949) % 1) - 1)))) for i in range(n)]


def simultaneous(starts: list[float], window: float = 0.025) -> list[int]:
    """For each request, how many others were sent within ``window`` seconds of it."""
    return [sum(1 for other in starts if abs(other - t) < window) - 1 for t in starts]


def make_lora(model_path: str, folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_path)
    config = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(model_path).save_pretrained(folder)
    return folder


def run_queue_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a core (Linux schedstat)."""
    with open("/proc/thread-self/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def timed_router(router, calls: list[tuple[float, float, float]]):  # noqa: ANN001, ANN201
    """Wrap the router to record (wall, thread CPU, wait for a core) seconds per routed
    message: its embedding (``router.embed``, which guard_in calls and the safety guard
    shares) plus ``router.route`` on that vector.

    What is left of the wall time, beyond CPU and the wait for a core, is time the
    thread slept: mostly waiting for the interpreter lock after ONNX Runtime released it."""
    embed, route = router.embed, router.route
    pending = threading.local()

    def measure(fn, *args):  # noqa: ANN001, ANN002, ANN202
        wall, cpu, queued = time.perf_counter(), time.thread_time(), run_queue_wait()
        try:
            return fn(*args)
        finally:
            spent = (time.perf_counter() - wall, time.thread_time() - cpu, run_queue_wait() - queued)
            pending.spent = tuple(a + b for a, b in zip(getattr(pending, "spent", (0.0, 0.0, 0.0)), spent))

    def timed_embed(texts):  # noqa: ANN001, ANN202
        return measure(embed, texts)

    def timed_route(text, vector=None):  # noqa: ANN001, ANN202
        try:
            return measure(route, text, vector)
        finally:
            calls.append(pending.spent)
            pending.spent = (0.0, 0.0, 0.0)

    router.embed, router.route = timed_embed, timed_route


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=64, help="mean answer length in tokens")
    parser.add_argument("--length-spread", type=float, default=0.5,
                        help="answer lengths spread over max-tokens * [1 - s, 1 + s] (0: all equal)")
    parser.add_argument("--stagger-ms", type=float, default=300.0,
                        help="stream k sends its first request k times this late (0: all at once)")
    parser.add_argument("--requests", type=int, default=48, help="requests per batch at the highest concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/assistant batches per figure")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument("--no-adapter", action="store_true", help="skip the base-vs-adapter comparison")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval for this process, in seconds (default: the server's)")
    parser.add_argument("--vllm-nice", type=int, default=None,
                        help="nice value added to the managed vLLM (default: the LEPTON_VLLM_NICE setting, "
                             "whose default is 19 for vLLM's CPU build)")
    parser.add_argument("--vllm-idle", action="store_true",
                        help="run the managed vLLM in the SCHED_IDLE class (the LEPTON_VLLM_IDLE setting)")
    parser.add_argument("--shared-cpus", action="store_true",
                        help="the assistant may run on vLLM's model CPUs (LEPTON_VLLM_SEPARATE_CPUS=false)")
    parser.add_argument("--float-router", action="store_true",
                        help="route with the float encoder, not its int8 copy (LEPTON_ROUTER_INT8=false)")
    args = parser.parse_args()
    # A SIGTERM ends the run through the finally blocks: vLLM and the load generator go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from assistant import Assistant, Settings
    from assistant.adapters import model_identity
    from assistant.llm._process import die_with_parent
    from assistant.llm.vllm import start_managed_vllm, vllm_niceness
    from assistant.models import resolve_model

    data = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    model = resolve_model(Settings(data_dir=os.environ.get("LEPTON_DATA_DIR") or data))
    settings = Settings(data_dir=data / "bench", model=model, backend="vllm", demo_knowledge=False,
                        max_queue=256)
    if args.vllm_nice is not None:
        settings = settings.model_copy(update={"vllm_nice": args.vllm_nice})
    if args.vllm_idle:
        settings = settings.model_copy(update={"vllm_idle": True})
    if args.shared_cpus:
        settings = settings.model_copy(update={"vllm_separate_cpus": False})
    if args.float_router:
        settings = settings.model_copy(update={"router_int8": False})
    print(f"managed vLLM at nice +{vllm_niceness(settings)}{', SCHED_IDLE' if settings.vllm_idle else ''}",
          file=sys.stderr)
    llm = start_managed_vllm(settings, model, progress=lambda m: print(m, file=sys.stderr))
    figures: dict[str, float] = {}
    client: ProcessPoolExecutor | None = None
    try:
        print(f"the assistant runs on CPUs {sorted(os.sched_getaffinity(0))}; router "
              f"{'int8' if settings.router_int8 else 'float'}", file=sys.stderr)
        assistant = Assistant.from_settings(settings, llm=llm)
        # conversation -> (waiting, window, marks)
        model_time: dict[str, tuple[float, list[float], dict[str, float]]] = {}
        assistant.turn_observers.append(lambda turn: model_time.__setitem__(
            turn.conversation_id, (turn.llm_seconds, list(turn.llm_window), dict(turn.marks))))
        routing: list[tuple[float, float, float]] = []
        timed_router(assistant.router, routing)
        server, base_url = serve(settings, assistant)
        if args.switch_interval is not None:
            sys.setswitchinterval(args.switch_interval)
        print(f"switch interval {sys.getswitchinterval() * 1000:.2f} ms", file=sys.stderr)
        pauses: list[float] = []  # seconds of each garbage collection in this (the assistant's) process
        collecting: list[float] = []

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                collecting[:] = [time.perf_counter()]
            elif collecting:
                pauses.append(time.perf_counter() - collecting[0])

        gc.callbacks.append(on_gc)
        # The load generator is a separate process, as real clients are: parsing the
        # streams must not compete with the assistant for this interpreter's lock.
        # perf_counter is CLOCK_MONOTONIC, so its timestamps compare with the server's.
        # It dies with this process, even one ended by a signal in the middle of a batch.
        client = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent)

        system = assistant.skills["recommendation"].system_prompt
        raw_url = llm.root_url + "/v1/chat/completions"
        lepton_url = base_url + "/v1/chat/completions"

        # Raw vLLM decodes as the assistant asks it to: the same repetition penalty
        # (LEPTON_REPETITION_PENALTY), so both sides generate the same tokens.
        sampling = ({"repetition_penalty": settings.repetition_penalty} if settings.repetition_penalty != 1.0 else {})

        def raw_bodies(n: int, model_name: str) -> list[dict]:
            return [{"model": model_name, "stream": True, "stream_options": {"include_usage": True},
                     "max_tokens": length, "temperature": 0.0, "top_p": 1.0, **sampling,
                     "messages": [{"role": "system", "content": system},
                                  {"role": "user", "content": MESSAGES[i % len(MESSAGES)]}]}
                    for i, length in enumerate(answer_lengths(n, args.max_tokens, args.length_spread))]

        def lepton_bodies(n: int) -> list[dict]:
            return [{"model": "assistant", "stream": True, "max_tokens": length,
                     "messages": [{"role": "user", "content": MESSAGES[i % len(MESSAGES)]}]}
                    for i, length in enumerate(answer_lengths(n, args.max_tokens, args.length_spread))]

        phases: dict[int, dict[str, list[float]]] = {}  # concurrency -> phase -> seconds per turn
        together: list[int] = []  # per turn of this level, other turns sent within 25 ms of it
        stagger = args.stagger_ms / 1000

        def run_lepton(n: int, concurrency: int) -> tuple[float, int, list[tuple[float, float]]]:
            """(wall, tokens, [(outside, waiting) non-LLM seconds per turn]); per-phase
            times of the non-LLM part go to ``phases[concurrency]``."""
            wall, results = client.submit(client_batch, lepton_url, lepton_bodies(n), concurrency, stagger).result()
            skills = {r[3] for r in results}
            if skills != {"recommendation"}:
                raise SystemExit(f"the router sent benchmark messages to {skills}; the comparison needs one prompt")
            together.extend(simultaneous([r[4] for r in results]))
            overheads = []
            for latency, _, conv, _, start, end, _ in results:
                waiting, (first, last), marks = model_time[conv]
                overheads.append(((first - start) + (end - last), latency - waiting))
                points = [("request to server", start, marks["received"]),
                          ("to turn thread", marks["received"], marks["thread"]),
                          ("validation", marks["thread"], marks["started"]),
                          ("state read", marks["started"], marks["loaded"]),
                          ("guard_in + route", marks["loaded"], marks["routed"]),
                          ("route to model call", marks["routed"], first),
                          ("last token to graph end", last, marks["answered"]),
                          ("records", marks["answered"], marks["recorded"]),
                          ("to client's end", marks["recorded"], end)]
                for name, a, b in points:
                    phases.setdefault(concurrency, {}).setdefault(name, []).append(b - a)
            return wall, sum(r[1] for r in results), overheads

        def run_raw(n: int, concurrency: int, model_name: str) -> tuple[float, int]:
            wall, results = client.submit(client_batch, raw_url, raw_bodies(n, model_name), concurrency, stagger).result()
            return wall, sum(r[1] for r in results)

        base_name = llm._model_name()
        # Warm-up: vLLM compiles/caches on first use; the assistant loads its router.
        run_raw(4, 4, base_name)
        run_lepton(4, 4)
        routing.clear()

        print(f"vLLM CPU, greedy, max_tokens {args.max_tokens} +/- {args.length_spread:.0%}, streams started "
              f"{args.stagger_ms:.0f} ms apart, streaming; messages routed to 'recommendation'")
        print(f"{'streams':>7} {'requests':>8} {'raw tok/s':>10} {'assistant tok/s':>16} {'ratio':>6} "
              f"{'non-LLM outside p50/p95':>24} {'latency-waiting p50/p95':>24}")

        def ms(values: list[float]) -> str:
            return f"{pct(values, .5) * 1000:9.1f} /{pct(values, .95) * 1000:7.1f} ms"

        def vllm_cpu() -> float:
            """CPU seconds used so far by the vLLM server and its engine processes."""
            import psutil

            total = 0.0
            root = psutil.Process(llm.server.pid)
            for process in [root, *root.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                total += times.user + times.system
            return total

        cpu: dict[int, dict[str, float]] = {}  # concurrency -> CPU ms per turn, by process

        def compare(n: int, concurrency: int, raw_model: str) -> tuple[float, float, list[tuple[float, float]]]:
            """(raw tok/s, assistant tok/s, non-LLM seconds per assistant turn) over alternating rounds.

            Also fills ``cpu[concurrency]``: CPU per turn of this process (the assistant;
            the load generator is another process) and of vLLM, on each side."""
            totals = {"raw": [0.0, 0], "lepton": [0.0, 0]}
            spent = {"raw": [0.0, 0.0], "lepton": [0.0, 0.0]}  # [assistant, vLLM] CPU seconds
            overheads: list[tuple[float, float]] = []
            for round_ in range(args.rounds):
                for side in (("raw", "lepton") if round_ % 2 == 0 else ("lepton", "raw")):
                    own, engine = time.process_time(), vllm_cpu()
                    if side == "raw":
                        wall, tokens = run_raw(n, concurrency, raw_model)
                    else:
                        wall, tokens, turn_overheads = run_lepton(n, concurrency)
                        overheads += turn_overheads
                    spent[side][0] += time.process_time() - own
                    spent[side][1] += vllm_cpu() - engine
                    totals[side][0] += wall
                    totals[side][1] += tokens
            turns = n * args.rounds
            cpu[concurrency] = {"assistant_cpu_ms_per_turn": spent["lepton"][0] / turns * 1000,
                                "vllm_cpu_ms_per_turn_raw": spent["raw"][1] / turns * 1000,
                                "vllm_cpu_ms_per_turn_assistant": spent["lepton"][1] / turns * 1000}
            return (totals["raw"][1] / totals["raw"][0], totals["lepton"][1] / totals["lepton"][0], overheads)

        for concurrency in args.concurrency:
            n = args.requests if concurrency == max(args.concurrency) else max(8, concurrency * 3)
            n = max(n, concurrency)
            raw_tps, lep_tps, overheads = compare(n, concurrency, base_name)
            outside, waiting = [o for o, _ in overheads], [w for _, w in overheads]
            figures.update({f"raw_tps_{concurrency}": raw_tps, f"assistant_tps_{concurrency}": lep_tps,
                            f"ratio_{concurrency}": lep_tps / raw_tps,
                            f"non_llm_p50_ms_{concurrency}": pct(outside, .5) * 1000,
                            f"non_llm_p95_ms_{concurrency}": pct(outside, .95) * 1000,
                            f"waiting_p50_ms_{concurrency}": pct(waiting, .5) * 1000,
                            f"waiting_p95_ms_{concurrency}": pct(waiting, .95) * 1000})
            print(f"{concurrency:>7} {n:>5}x{args.rounds:<2} {raw_tps:>10.1f} {lep_tps:>16.1f} {lep_tps / raw_tps:>6.3f} "
                  f"{ms(outside)} {ms(waiting)}")
            figures.update({f"{k}_{concurrency}": v for k, v in cpu[concurrency].items()})
            print(f"{'':>7} non-LLM phases p50/p95: " + "; ".join(
                f"{name} {pct(v, .5) * 1000:.1f}/{pct(v, .95) * 1000:.1f}" for name, v in phases[concurrency].items())
                + " ms")
            phases.clear()
            wall, on_cpu, queued = zip(*routing)
            asleep = [w - c - q for w, c, q in routing]
            print(f"{'':>7} embed + router.route p50/p95: " + ", ".join(
                f"{name} {pct(v, .5) * 1000:.1f}/{pct(v, .95) * 1000:.1f}" for name, v in
                [("wall", wall), ("CPU", on_cpu), ("waiting for a core", queued),
                 ("asleep (interpreter lock, I/O)", asleep)]) + " ms")
            routing.clear()
            figures[f"sent_together_p50_{concurrency}"] = pct(together, .5)
            print(f"{'':>7} other turns sent within 25 ms of a turn: p50 {pct(together, .5)}, "
                  f"p95 {pct(together, .95)}, max {max(together)}")
            together.clear()
            print(f"{'':>7} garbage collections in the assistant's process: {len(pauses)}, longest "
                  f"{max(pauses, default=0) * 1000:.1f} ms, {sum(pauses) * 1000:.0f} ms in all")
            figures[f"gc_longest_ms_{concurrency}"] = max(pauses, default=0) * 1000
            pauses.clear()
            c = cpu[concurrency]
            print(f"{'':>7} CPU per turn: assistant {c['assistant_cpu_ms_per_turn']:.1f} ms; vLLM "
                  f"{c['vllm_cpu_ms_per_turn_raw']:.1f} ms raw, {c['vllm_cpu_ms_per_turn_assistant']:.1f} ms "
                  "through the assistant")

        # Base vs adapter, at the highest concurrency.
        if not args.no_adapter:
            top = max(args.concurrency)
            identity = model_identity(model)
            assistant.adapters.register("bench-lora", make_lora(model, data / "lora"), skill="recommendation",
                                        base_model=identity.base_model, template_hash=identity.template_hash,
                                        activate=True)
            run_lepton(2, 2)  # loads the adapter into vLLM (the first turn after activation)
            raw_ad, lep_ad, overheads = compare(args.requests, top, "bench-lora")
            figures.update({f"raw_adapter_tps_{top}": raw_ad, f"assistant_adapter_tps_{top}": lep_ad})
            print(f"\nLoRA adapter (r=8, q_proj/v_proj) at {top} streams, {args.requests} requests x {args.rounds}:")
            print(f"  raw vLLM   base {figures[f'raw_tps_{top}']:7.1f} tok/s   adapter {raw_ad:7.1f} tok/s"
                  f"   adapter/base {raw_ad / figures[f'raw_tps_{top}']:.3f}")
            print(f"  assistant  base {figures[f'assistant_tps_{top}']:7.1f} tok/s   adapter {lep_ad:7.1f} "
                  f"tok/s   assistant/raw with adapter {lep_ad / raw_ad:.3f}")
            print(f"  non-LLM per turn with adapter, outside p50/p95 {ms([o for o, _ in overheads])}, "
                  f"latency-waiting {ms([w for _, w in overheads])}")
        if args.json:
            print(json.dumps({k: round(v, 4) for k, v in figures.items()}))
        server.should_exit = True
    finally:
        if client is not None:
            client.shutdown(wait=False, cancel_futures=True)  # a batch still running ends with this process
        llm.close()


if __name__ == "__main__":
    main()
