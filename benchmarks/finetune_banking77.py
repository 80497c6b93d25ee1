"""Fine-tuning proof on real data: Banking77 as a bank's customer messages.

User message in, intent label out. The script goes through the product's own
commands (``lepton finetune prepare``, ``train``, ``eval`` as subprocesses), then
measures on the Banking77 *test* split:

- base model accuracy, zero-shot, with the 77 labels listed in its prompt;
- adapter accuracy, with the short prompt it was trained with;

and training speed: tokens/s of our trainer against a plain transformers+peft
loop (full logits, random batches padded to the longest row) on the same rows,
LoRA settings, batch size and autocast, measured in this process back to back,
plus bf16 autocast against fp32 for our trainer, and the training process's
peak RSS.

    python benchmarks/finetune_banking77.py --train /work/shared/data/banking77/train.csv \
        --test /work/shared/data/banking77/test.csv --work /tmp/b77 --epochs 1

Data: Banking77 (Casanueva et al. 2020, CC BY 4.0). Never trains on test.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

SYSTEM = "Banking intent."
ZERO_SHOT = ("Classify the bank customer's message into exactly one of these intents and answer with the "
             "intent name only:\n{labels}")


def read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["text"], r["category"]) for r in csv.DictReader(fh)]


def lepton(data_dir: Path, *args: str) -> dict:
    """Run a lepton command; returns the JSON object on its last stdout line."""
    cmd = [sys.executable, "-m", "assistant", "--data-dir", str(data_dir), "finetune", *args, "--json"]
    print("$ lepton", " ".join(["--data-dir", str(data_dir), "finetune", *args, "--json"]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"lepton finetune {args[0]} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def accuracy(model, tokenizer, texts, labels, system, batch_size) -> tuple[float, list[str]]:
    from finetune.evaluate import generate, normalise

    prompts = [tokenizer.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": t}],
                                             tokenize=False, add_generation_prompt=True) for t in texts]
    longest = max(len(tokenizer(label, add_special_tokens=False)["input_ids"]) for label in labels)
    answers = generate(model, tokenizer, prompts, longest + 3, batch_size, progress=True)
    hits = sum(normalise(a) == normalise(label) for a, label in zip(answers, labels))
    return hits / len(labels), answers


def throughput(base_path: str, rows: list, config: dict, steps: int) -> dict:
    """Tokens/s of our trainer's step and of a plain transformers+peft loop, same rows and settings."""
    import torch
    from peft import LoraConfig, get_peft_model

    from finetune.tokens import encode_messages
    from finetune.train import assistant_loss, batches_for_epoch, collate, load_base

    def lora_model():
        torch.manual_seed(config["seed"])
        tokenizer, model = load_base(base_path)
        lora = LoraConfig(r=config["lora_r"], lora_alpha=config["lora_alpha"], lora_dropout=config["lora_dropout"],
                          target_modules=config["target_modules"], task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        model.train()
        return tokenizer, model

    def run(kind: str, bf16: bool) -> float:
        tokenizer, model = lora_model()
        encoded = [encode_messages(tokenizer, m, config["max_length"]) for m in rows]
        bs = config["batch_size"]
        if kind == "ours":
            batches = batches_for_epoch([len(e.input_ids) for e in encoded], bs, config["seed"], 0)
        else:  # what a plain loop does: random batches, padded to the longest row
            order = list(range(len(encoded)))
            random.Random(config["seed"]).shuffle(order)
            batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=config["learning_rate"])
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
        tokens, elapsed = 0, 0.0
        for i in range(steps + 1):  # step 0 warms up and is not timed
            ids, labels, mask = collate([encoded[j] for j in batches[i % len(batches)]], tokenizer.pad_token_id)
            start = time.perf_counter()
            with autocast:
                if kind == "ours":
                    loss = assistant_loss(model, ids, labels, mask)
                else:
                    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:
                elapsed += time.perf_counter() - start
                tokens += int(mask.sum())
        return tokens / elapsed

    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    out = {"steps": steps, "batch_size": config["batch_size"], "load_before": os.getloadavg()[0]}
    out["ours_tokens_per_s"] = run("ours", config["bf16"])
    out["plain_tokens_per_s"] = run("plain", config["bf16"])
    out["ours_other_precision_tokens_per_s"] = run("ours", not config["bf16"])
    out["speedup_vs_plain"] = out["ours_tokens_per_s"] / out["plain_tokens_per_s"]
    out["bf16_vs_fp32"] = (out["ours_tokens_per_s"] / out["ours_other_precision_tokens_per_s"] if config["bf16"]
                           else out["ours_other_precision_tokens_per_s"] / out["ours_tokens_per_s"])
    out["load_after"] = os.getloadavg()[0]
    return out


def train_through_cli(args, work: Path, data_dir: Path, prepared: Path, report: dict) -> tuple[str, dict]:
    """`lepton finetune prepare` and `train` on the Banking77 training rows; returns the adapter and config."""
    train_rows = read_csv(args.train)
    if args.train_rows:
        train_rows = random.Random(args.seed).sample(train_rows, args.train_rows)
    source = work / "banking77_train.csv"
    with open(source, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(train_rows)

    started = time.perf_counter()
    report["prepare"] = lepton(data_dir, "prepare", str(source), "--out", str(prepared), "--system", SYSTEM,
                               "--eval-size", str(args.eval_size), "--seed", str(args.seed), "--overwrite")
    report["prepare"]["seconds"] = round(time.perf_counter() - started, 1)

    config = {"lora_r": args.rank, "lora_alpha": 2 * args.rank, "lora_dropout": 0.0, "target_modules": "all-linear",
              "learning_rate": args.lr, "batch_size": args.batch_size, "max_length": 128, "epochs": args.epochs,
              "max_steps": args.max_steps, "seed": args.seed, "bf16": not args.fp32, "save_every": 100,
              "warmup_ratio": 0.05, "weight_decay": 0.0, "threads": args.threads}
    config_file = work / "train_config.json"
    config_file.write_text(json.dumps(config, indent=2))
    name = f"banking77-{int(time.time())}"
    started = time.perf_counter()
    base = ["--base-model", args.base_model] if args.base_model else []
    report["train"] = lepton(data_dir, "train", "--skill", "customer_service", "--data", str(prepared),
                             "--config", str(config_file), "--name", name, *base)
    report["train"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["train"]["peak_rss_mb_children"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    print(json.dumps(report["train"]), file=sys.stderr, flush=True)

    return name, config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, required=True, help="Banking77 train.csv (text,category)")
    ap.add_argument("--test", type=Path, required=True, help="Banking77 test.csv (text,category)")
    ap.add_argument("--work", type=Path, required=True, help="folder for the data dir, prepared set and report")
    ap.add_argument("--train-rows", type=int, help="use a seeded sample of this many training rows")
    ap.add_argument("--test-rows", type=int, help="score the adapter on a seeded sample of N test rows (default all)")
    ap.add_argument("--base-test-rows", type=int, default=300,
                    help="score the zero-shot base model on a seeded sample of N test rows (its prompt is ~10x longer)")
    ap.add_argument("--eval-size", type=int, default=200, help="held-out rows of train.csv for `finetune eval`")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--fp32", action="store_true", help="train without bf16 autocast")
    ap.add_argument("--throughput-steps", type=int, default=8, help="timed steps per throughput variant (0: skip)")
    ap.add_argument("--threads", type=int,
                    help="torch threads for training and scoring; 1 was faster than 2 on a 2-core machine "
                         "shared with other busy processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-model", help="model folder to fine-tune; default: the embedded model")
    ap.add_argument("--adapter", help="measure this adapter, already trained in --work (by an earlier run of this "
                                      "script, e.g. interrupted and registered with `finetune train --resume`), "
                                      "instead of preparing and training")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "data"
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()},
                    "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()}}

    prepared = work / "prepared"
    if args.adapter:
        from assistant.adapters import AdapterRegistry

        name = args.adapter
        record = AdapterRegistry(data_dir / "adapters").get(name)
        config = record.config["train"]
        report["prepare"] = json.loads((prepared / "stats.json").read_text())
        report["train"] = dict(record.metrics["train"])
    else:
        name, config = train_through_cli(args, work, data_dir, prepared, report)
    report["prepare"].pop("problems", None)

    started = time.perf_counter()
    report["eval"] = lepton(data_dir, "eval", name)
    report["eval"]["wall_seconds"] = round(time.perf_counter() - started, 1)

    # Test split, in this process.
    from peft import PeftModel

    from assistant.adapters import AdapterRegistry
    from finetune.train import load_base

    record = AdapterRegistry(data_dir / "adapters").get(name)
    base_path = record.config["base_model_path"]
    test = read_csv(args.test)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    adapter_test = random.Random(args.seed).sample(test, args.test_rows) if args.test_rows else test
    base_test = random.Random(args.seed).sample(test, min(args.base_test_rows, len(test)))
    labels = sorted({label for _, label in test})
    tokenizer, model = load_base(base_path)
    model = PeftModel.from_pretrained(model, str(record.path))
    model.eval()
    started = time.perf_counter()
    acc, answers = accuracy(model, tokenizer, [t for t, _ in adapter_test], [l for _, l in adapter_test], SYSTEM, 32)
    report["test"] = {"adapter_accuracy": acc, "adapter_rows": len(adapter_test),
                      "adapter_seconds": round(time.perf_counter() - started, 1),
                      "adapter_wrong_examples": [
                          {"text": t, "label": l, "answer": a}
                          for (t, l), a in zip(adapter_test, answers) if a.strip() != l][:5]}
    print(json.dumps(report["test"]), file=sys.stderr, flush=True)
    started = time.perf_counter()
    with model.disable_adapter():
        base_acc, _ = accuracy(model, tokenizer, [t for t, _ in base_test], [l for _, l in base_test],
                               ZERO_SHOT.format(labels="\n".join(labels)), 8)
    report["test"].update(base_accuracy=base_acc, base_rows=len(base_test),
                          base_seconds=round(time.perf_counter() - started, 1))
    del model

    if args.throughput_steps:
        from finetune.data import read_prepared

        rows = read_prepared(prepared, "train")
        report["throughput"] = throughput(base_path, rows, config, args.throughput_steps)

    (work / "report.json").write_text(json.dumps(report, indent=2, default=str))
    t = report["test"]
    print(f"Banking77 test: base (zero-shot, labels in prompt, {t['base_rows']} rows) {t['base_accuracy']:.1%}; "
          f"adapter ({t['adapter_rows']} rows) {t['adapter_accuracy']:.1%}")
    tr = report["train"]
    print(f"training: {tr['steps']} steps, {tr['epochs']} epochs, {tr['train_seconds']} s, "
          f"{tr['tokens_per_second']} tokens/s, peak RSS {tr['peak_rss_mb']} MB")
    if "throughput" in report:
        th = report["throughput"]
        print(f"throughput ({th['steps']} steps each): ours {th['ours_tokens_per_s']:.0f} tok/s, plain "
              f"transformers+peft {th['plain_tokens_per_s']:.0f} tok/s -> {th['speedup_vs_plain']:.2f}x; "
              f"bf16 vs fp32 {th['bf16_vs_fp32']:.2f}x")
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
