"""Non-LLM time per chat turn through the real HTTP API (p50/p95).

    python benchmarks/bench_turn_overhead.py [--turns 60] [--max-tokens 4] [--help-centre]

A real uvicorn server on loopback runs the real assistant (auth, body parsing
and validation, routing, the LangGraph graph, SQLite checkpoint and records);
the model call is timed inside the graph's skill node and reported through the
assistant's turn observers. For each sequential request,
non-LLM time = client-observed latency - time spent in the model. Half the
turns continue an earlier conversation so history loading is included. The
router alone is also timed on the same messages. ``--help-centre`` gives the
tenant the demo help centre first: customer service then searches it, and a
message no skill takes confidently is matched against it (routing in context).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MESSAGES = [
    "Where is my order? It should have arrived by now.",
    "I have a sore throat and a mild fever since yesterday",
    "Can I borrow 4000 pounds over two years?",
    "I need a present for my niece, she is ten",
    "My card payment was declined at the shop",
    "What's the weather like in Madrid?",
]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def serve(settings, assistant):  # noqa: ANN001, ANN201 - Settings, Assistant -> (uvicorn.Server, base URL)
    """A real uvicorn server for ``assistant`` on a free loopback port, in a thread, configured
    as ``lepton serve`` configures it."""
    import uvicorn

    from server import create_app
    from server.serving import uvicorn_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(create_app(settings, assistant), settings, "127.0.0.1", port))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=60)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--help-centre", action="store_true", help="load the demo help centre for the tenant first")
    args = parser.parse_args()

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from assistant import Assistant, Settings
    from assistant.llm.local import LocalChatModel
    from assistant.models import resolve_model

    data = Path(tempfile.mkdtemp())
    shared = os.environ.get("LEPTON_DATA_DIR")
    model = resolve_model(Settings(data_dir=shared or data))
    settings = Settings(data_dir=data / "bench", model=model)
    assistant = Assistant.from_settings(settings, llm=LocalChatModel(model))
    if args.help_centre:
        assistant.ensure_demo_knowledge(progress=None)
    llm_seconds: dict[str, float] = {}  # conversation id -> model time of its latest turn
    assistant.turn_observers.append(lambda turn: llm_seconds.__setitem__(turn.conversation_id, turn.llm_seconds))
    server, base = serve(settings, assistant)
    url = f"{base}/v1/chat/completions"
    overheads, latencies = [], []
    conversation = None
    with httpx.Client(timeout=120) as client:
        for i in range(args.turns + 5):
            body = {"messages": [{"role": "user", "content": MESSAGES[i % len(MESSAGES)]}],
                    "max_tokens": args.max_tokens}
            if conversation and i % 2 == 1:
                body["lepton"] = {"conversation_id": conversation}
            start = time.perf_counter()
            response = client.post(url, json=body)
            latency = time.perf_counter() - start
            response.raise_for_status()
            conversation = response.json()["lepton"]["conversation_id"]
            llm_time = llm_seconds[conversation]
            if i >= 5:  # warm-up turns are not counted
                latencies.append(latency)
                overheads.append(latency - llm_time)
    server.should_exit = True

    # Timed in a worker thread, where the server routes too (see bench_local_backend.py
    # on main-thread slowdowns of torch on this machine).
    router_times: list[float] = []

    def time_router() -> None:
        for i in range(200):
            start = time.perf_counter()
            assistant.router.route(MESSAGES[i % len(MESSAGES)])
            router_times.append(time.perf_counter() - start)

    worker = threading.Thread(target=time_router)
    worker.start()
    worker.join()

    ms = lambda s: f"{s * 1000:7.1f} ms"
    print(f"turns: {len(overheads)} (sequential, max_tokens={args.max_tokens}, half continue a conversation)")
    print(f"turn latency        p50 {ms(pct(latencies, .5))}   p95 {ms(pct(latencies, .95))}")
    print(f"non-LLM per turn    p50 {ms(pct(overheads, .5))}   p95 {ms(pct(overheads, .95))}")
    print(f"  of which routing  p50 {ms(pct(router_times, .5))}   p95 {ms(pct(router_times, .95))}")
    print(f"mean share of latency outside the model: {statistics.mean(o / l for o, l in zip(overheads, latencies)):.1%}")


if __name__ == "__main__":
    main()
