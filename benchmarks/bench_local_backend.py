"""Local backend throughput against raw ``model.generate`` on the same prompts, same run.

    python benchmarks/bench_local_backend.py [--model FOLDER] [--max-tokens 64] [--rounds 3]

Both sides load the same model folder with the same dtype, decode greedily with
the same max_new_tokens, and alternate round by round so machine noise hits
both. Prints tokens/s for each and the ratio backend/raw (goal >= 0.9).

The raw baseline calls ``generate`` from a worker thread, as the backend does.
On this 2-core machine ``generate`` called from the main thread ran 5-10x
slower whenever other processes competed for the cores (OpenMP's per-thread
pool in the main thread spins against them), which would flatter the backend;
``--raw-main-thread`` shows that variant too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = [
    "What is the capital of France?",
    "Write a short note thanking a customer for their order.",
    "Explain what a credit score is in two sentences.",
    "My parcel is late. What can I do?",
    "Give me three ideas for a birthday present.",
    "How should I treat a minor burn?",
    "Describe a sunset over the sea.",
    "What are the benefits of regular exercise?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="HF model folder (default: the embedded model, prepared in a temp dir)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--raw-main-thread", action="store_true", help="also time raw generate on the main thread")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from assistant import Settings
    from assistant.llm import GenerationParams
    from assistant.llm.local import LocalChatModel
    from assistant.models import resolve_model

    path = args.model or resolve_model(Settings(data_dir=os.environ.get("LEPTON_DATA_DIR", tempfile.mkdtemp())))
    backend = LocalChatModel(path, dtype=args.dtype)
    raw = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, args.dtype)).eval()
    tokenizer = backend.tokenizer
    inputs = [backend.encode([{"role": "user", "content": p}]) for p in PROMPTS]
    params = GenerationParams(max_tokens=args.max_tokens)

    def in_thread(fn):
        result: list = []
        worker = threading.Thread(target=lambda: result.append(fn()))
        worker.start()
        worker.join()
        return result[0]

    def run_raw_here() -> tuple[int, float]:
        tokens, start = 0, time.perf_counter()
        with torch.inference_mode():
            for ids in inputs:
                out = raw.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                                   do_sample=False, pad_token_id=tokenizer.eos_token_id)
                tokens += out.shape[1] - ids.shape[1]
        return tokens, time.perf_counter() - start

    def run_raw() -> tuple[int, float]:
        return in_thread(run_raw_here)

    def run_backend() -> tuple[int, float]:
        tokens, start = 0, time.perf_counter()
        for prompt in PROMPTS:
            generation = backend.stream([{"role": "user", "content": prompt}], params)
            for _ in generation:
                pass
            tokens += generation.completion_tokens
        return tokens, time.perf_counter() - start

    run_raw(), run_backend()  # warm-up
    raw_rates, backend_rates = [], []
    for _ in range(args.rounds):
        t, s = run_raw()
        raw_rates.append(t / s)
        t, s = run_backend()
        backend_rates.append(t / s)
    raw_rate, backend_rate = statistics.median(raw_rates), statistics.median(backend_rates)
    if args.raw_main_thread:
        t, s = run_raw_here()
        print(f"raw model.generate on the main thread: {t / s:7.1f} tokens/s (one round)")
    print(f"model: {path}  dtype: {args.dtype}  threads: {torch.get_num_threads()}")
    print(f"prompts: {len(PROMPTS)}  max_new_tokens: {args.max_tokens}  rounds: {args.rounds} (median)")
    print(f"raw model.generate : {raw_rate:7.1f} tokens/s")
    print(f"local backend      : {backend_rate:7.1f} tokens/s (streaming, detokenized)")
    print(f"ratio backend/raw  : {backend_rate / raw_rate:.3f}  (goal >= 0.9)")


if __name__ == "__main__":
    main()
