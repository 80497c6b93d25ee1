"""CPU per streamed token: the assistant's OpenAI-compatible stream reader against a bare one.

    python benchmarks/bench_stream_parse.py [--turns 20] [--tokens 64] [--gap-ms 5]

A stand-in for vLLM's OpenAI server (another process, plain sockets) streams
``--tokens`` chunks per request, ``--gap-ms`` apart, in vLLM's chunk shape, over
chunked HTTP/1.1 on loopback. Two readers consume the same streams in this
process, and the CPU time of the reading thread is divided by the tokens read:

- ``OpenAIChatModel.stream`` (httpx), as the openai and vllm backends run it in
  a turn's thread;
- baseline: ``http.client`` ``readline`` + ``json.loads``, the least a Python
  reader of the same stream does.

The gap between tokens matters: each token then arrives on its own and costs a
wake-up, as it does when vLLM generates for many streams at once.
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path

SERVER = r"""
import json, socket, sys, threading, time

def chunk(data):
    line = ("data: " + data + "\n\n").encode()
    return b"%x\r\n%s\r\n" % (len(line), line)

def serve(conn, gap):
    reader = conn.makefile("rb")
    while reader.readline():  # request line
        length = 0
        for header in iter(reader.readline, b"\r\n"):
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
        tokens = json.loads(reader.read(length))["max_tokens"]
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        for _ in range(tokens):
            time.sleep(gap)
            conn.sendall(chunk(json.dumps({**base, "choices": [
                {"index": 0, "delta": {"content": " word"}, "finish_reason": None}]})))
        conn.sendall(chunk(json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}))
                     + chunk(json.dumps({**base, "choices": [],
                                         "usage": {"prompt_tokens": 5, "completion_tokens": tokens}}))
                     + chunk("[DONE]") + b"0\r\n\r\n")

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn, float(sys.argv[1])), daemon=True).start()
"""


def bare_reader(port: int, tokens: int):  # noqa: ANN201 - a function reading one streamed answer
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                       "max_tokens": tokens, "stream": True})

    def read_one() -> int:
        connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        response, count = connection.getresponse(), 0
        while line := response.readline():
            if not line.startswith(b"data: "):
                continue
            data = line[6:].strip()
            if data == b"[DONE]":
                response.read()
                break
            for choice in json.loads(data).get("choices") or ():
                count += bool((choice.get("delta") or {}).get("content"))
        return count

    return read_one


def assistant_reader(port: int, tokens: int):  # noqa: ANN201 - as above, through the backend
    from assistant.llm import GenerationParams
    from assistant.llm.openai_compat import OpenAIChatModel

    model = OpenAIChatModel(f"http://127.0.0.1:{port}/v1", model="m")
    params = GenerationParams(max_tokens=tokens)
    messages = [{"role": "user", "content": "hi"}]
    return lambda: sum(1 for _ in model.stream(messages, params))


def cpu_per_token(read_one, turns: int, tokens: int) -> float:  # noqa: ANN001
    """Microseconds of this thread's CPU per token, after two warm-up turns."""
    for _ in range(2):
        read_one()
    started = time.thread_time()
    for _ in range(turns):
        if read_one() != tokens:
            raise SystemExit("a reader lost tokens")
    return (time.thread_time() - started) / (turns * tokens) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--gap-ms", type=float, default=5.0)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.gap_ms / 1000)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        bare = cpu_per_token(bare_reader(port, args.tokens), args.turns, args.tokens)
        ours = cpu_per_token(assistant_reader(port, args.tokens), args.turns, args.tokens)
        bare_again = cpu_per_token(bare_reader(port, args.tokens), args.turns, args.tokens)
    finally:
        server.kill()
    baseline = (bare + bare_again) / 2
    print(f"{args.turns} answers x {args.tokens} tokens, {args.gap_ms:g} ms apart; CPU of the reading thread per token:")
    print(f"  http.client + json.loads (baseline)  {bare:6.0f} / {bare_again:6.0f} us (before / after)")
    print(f"  OpenAIChatModel.stream (httpx)       {ours:6.0f} us   = {ours / baseline:.2f} x baseline")
    print(json.dumps({"baseline_us": round(baseline, 1), "assistant_us": round(ours, 1),
                      "ratio": round(ours / baseline, 3)}))


if __name__ == "__main__":
    main()
