"""A customer-service LoRA on Bitext support answers: does it visibly improve phrasing?

Everything goes through the product's own commands (as subprocesses):

    lepton finetune prepare Bitext.csv --prompt-column instruction --answer-column response \\
        --system <the skill's system prompt> --eval-size N --out WORK/prepared
    lepton finetune train --skill customer_service --data WORK/prepared --max-steps S --name bitext-cs
    lepton finetune eval bitext-cs --no-activate

then, on the held-out rows that ``prepare`` set aside (never trained on), the base
model and the adapter answer every instruction under the same prompt and decoding
as the assistant uses for a customer-service turn without a help centre (greedy,
``repetition_penalty`` from the settings, ``--max-new-tokens``). Each answer is
scored against Bitext's reference response: token F1 and ROUGE-L (as in
eval_customer_service.py), and counted degenerate by assistant.text_quality's rule.

    python benchmarks/finetune_bitext.py \\
        --data ../shared/data/bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv \\
        --work /tmp/bitext --max-steps 40 --eval-size 100 --json [--reuse]

Data: Bitext customer-support LLM chatbot training data (CDLA-Sharing-1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_customer_service import scores  # noqa: E402 - a sibling script: benchmarks/ is on sys.path

from assistant import Settings  # noqa: E402
from assistant.text_quality import degenerate  # noqa: E402
from skills.customer_service import SYSTEM_PROMPT  # noqa: E402

NAME = "bitext-cs"


def lepton(data_dir: Path, *args: str) -> dict:
    """Run a lepton command; returns the JSON object on its last stdout line."""
    shown = " ".join(a if len(a) < 60 else a[:57] + "..." for a in args)
    print(f"$ lepton --data-dir {data_dir} finetune {shown} --json", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "assistant", "--data-dir", str(data_dir), "finetune", *args, "--json"],
                          stdout=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"lepton finetune {args[0]} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def answer_all(model, tokenizer, rows: list, max_new_tokens: int, penalty: float, batch_size: int) -> list[str]:
    from finetune.evaluate import generate
    from finetune.tokens import prompt_text

    prompts = [prompt_text(tokenizer, messages) for messages in rows]
    return generate(model, tokenizer, prompts, max_new_tokens, batch_size, progress=True, repetition_penalty=penalty)


def summary(answers: list[str], references: list[str]) -> dict:
    pairs = [scores(a, r) for a, r in zip(answers, references)]
    return {
        "token_f1": round(sum(f for f, _ in pairs) / len(pairs), 4),
        "rouge_l": round(sum(r for _, r in pairs) / len(pairs), 4),
        "degenerate": sum(degenerate(a) for a in answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Bitext_Sample_Customer_Support_Training_Dataset.csv")
    parser.add_argument("--work", type=Path, required=True, help="Folder for the data dir and prepared set (new)")
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--eval-size", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reuse", action="store_true",
                        help="Keep the adapter an earlier run left in --work (trained and evaluated) and only answer")
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    data_dir = args.work / "data"
    prepared = args.work / "prepared"
    settings = Settings(data_dir=data_dir)
    started = time.perf_counter()
    from assistant.adapters import AdapterError, AdapterRegistry

    registry = AdapterRegistry(settings.adapters_dir)
    try:
        record = registry.get(NAME) if args.reuse else None
    except AdapterError:
        record = None
    if record is None or "eval" not in record.metrics:
        lepton(data_dir, "prepare", str(args.data), "--prompt-column", "instruction", "--answer-column", "response",
               "--system", SYSTEM_PROMPT, "--eval-size", str(args.eval_size), "--out", str(prepared), "--overwrite")
        lepton(data_dir, "train", "--skill", "customer_service", "--data", str(prepared),
               "--max-steps", str(args.max_steps), "--name", NAME)
        lepton(data_dir, "eval", NAME, "--no-activate")
        record = registry.get(NAME)
    trained, gate = record.metrics["train"], record.metrics["eval"]

    from peft import PeftModel

    from finetune.data import read_prepared
    from finetune.evaluate import base_path_for
    from finetune.train import load_base

    rows = read_prepared(prepared, "eval")
    references = [messages[-1]["content"] for messages in rows]
    tokenizer, model = load_base(base_path_for(settings, record, progress=lambda message: None))
    model = PeftModel.from_pretrained(model, str(record.path))
    model.eval()
    penalty = settings.repetition_penalty
    with model.disable_adapter():
        base = answer_all(model, tokenizer, rows, args.max_new_tokens, penalty, args.batch_size)
    adapted = answer_all(model, tokenizer, rows, args.max_new_tokens, penalty, args.batch_size)

    report = {
        "train_rows": trained["train_rows"], "eval_rows": len(rows), "steps": trained["steps"],
        "train_seconds": trained["train_seconds"], "tokens_per_second": trained["tokens_per_second"],
        "base_loss": round(gate["base_loss"], 4), "adapter_loss": round(gate["adapter_loss"], 4),
        "max_new_tokens": args.max_new_tokens, "repetition_penalty": penalty,
        "base": summary(base, references), "adapter": summary(adapted, references),
        "examples": [{"instruction": r[-2]["content"], "base": b, "adapter": a}
                     for r, b, a in list(zip(rows, base, adapted))[:3]],
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
