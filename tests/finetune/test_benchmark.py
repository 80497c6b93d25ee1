"""The Banking77 benchmark script, shortened: a few rows and steps, all of its stages."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
INTENTS = {"card_arrival": "Where is my new card? It has not come yet",
           "lost_or_stolen_card": "Someone stole my card, please block it",
           "exchange_rate": "What rate do you use to change pounds to euros"}


def write_split(path: Path, copies: int) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        for i in range(copies):
            for label, text in INTENTS.items():
                writer.writerow([f"{text} ({i})", label])
    return path


def test_benchmark_runs_end_to_end(tmp_path, model_path):
    train = write_split(tmp_path / "train.csv", 6)
    test = write_split(tmp_path / "test.csv", 2)
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "finetune_banking77.py"), "--train", str(train), "--test", str(test),
         "--work", str(work), "--base-model", model_path, "--max-steps", "2", "--batch-size", "4", "--rank", "8",
         "--eval-size", "3", "--test-rows", "4", "--base-test-rows", "2", "--throughput-steps", "1"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == json.loads((work / "report.json").read_text())
    assert report["prepare"]["train_rows"] == 15 and report["prepare"]["eval_rows"] == 3
    assert report["train"]["steps"] == 2 and report["train"]["peak_rss_mb"] > 100
    for key in ("base_loss", "adapter_loss", "base_accuracy", "adapter_accuracy"):
        assert key in report["eval"]
    test_figures = report["test"]
    assert (test_figures["adapter_rows"], test_figures["base_rows"]) == (4, 2)
    assert 0.0 <= test_figures["adapter_accuracy"] <= 1.0 and 0.0 <= test_figures["base_accuracy"] <= 1.0
    throughput = report["throughput"]
    assert throughput["ours_tokens_per_s"] > 0 and throughput["plain_tokens_per_s"] > 0
    assert "Banking77 test:" in proc.stdout
