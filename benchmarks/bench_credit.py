"""Credit models: training through `lepton credit train`, a second fold split, and scoring latency.

    python benchmarks/bench_credit.py --german PATH/germancredit.csv --taiwan PATH/UCI_Credit_Card.csv [--json]

1. Each file is trained through the real command (a subprocess running
   ``lepton credit train FILE --target ... --json`` into a throw-away data folder):
   its cross-validated AUC, KS, Brier score, chosen family and the wall time of
   the whole command (process start and imports included) and of training alone.
2. The same training on folds drawn with two other seeds, in process: the AUC
   must not depend on one lucky split (nothing is tuned on these).
3. Scoring latency of one application, p50/p95 over the file's first rows:
   the probability of default alone (the baseline), and the full assessment
   (decision, reasons and, for a decline, the counterfactual search).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"german": ("creditability", ["--good", "good"]), "taiwan": ("default.payment.next.month", [])}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def train_cli(path: Path, target: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "assistant", "--data-dir", data, "credit", "train", str(path),
                               "--target", target, *extra, "--json"], capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"lepton credit train failed: {done.stderr.strip() or done.stdout.strip()}")
        card = json.loads(done.stdout.strip().splitlines()[-1])
    m = card["metrics"]
    return {"family": card["family"], "cv_auc": m["cv_auc"], "cv_ks": m["cv_ks"], "brier": m["calibration"]["brier"],
            "ece": m["calibration"]["expected_calibration_error"], "candidates": m["candidates"],
            "features_used": sum(f["used"] for f in card["features"]), "protected": card["protected"],
            "cutoff_pd": card["cutoff_pd"], "cv_approval_rate": card["cv_approval_rate"],
            "train_seconds": card["train_seconds"], "command_seconds": round(wall, 2)}


def latency(path: Path, target: str, good: str | None, rows: int) -> dict:
    from skills.credit_scoring.model import read_table, train_model

    frame = read_table(path)
    model = train_model(frame, target, good=good)
    applicants = frame.drop(columns=[target]).head(rows).to_dict("records")
    values = [model.validate(a) for a in applicants]
    model.assess(values[0])  # warm up
    base, full, declines = [], [], 0
    for v in values:
        t0 = time.perf_counter()
        model.predict_pd([v])
        base.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        a = model.assess(v)
        full.append((time.perf_counter() - t0) * 1000)
        declines += a.decision == "decline"
    return {"applications": len(values), "declined": declines,
            "pd_only_ms": {"p50": round(statistics.median(base), 2), "p95": round(pct(base, 0.95), 2)},
            "assess_ms": {"p50": round(statistics.median(full), 2), "p95": round(pct(full, 0.95), 2)}}


def other_splits(path: Path, target: str, good: str | None, seeds=(1, 2)) -> dict:
    from skills.credit_scoring.model import read_table, train_model

    frame = read_table(path)
    return {f"seed_{s}": train_model(frame, target, good=good, seed=s).card["metrics"]["cv_auc"] for s in seeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--german", type=Path, required=True)
    parser.add_argument("--taiwan", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=200, help="Applications timed per file.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {}
    for name, path in (("german", args.german), ("taiwan", args.taiwan)):
        target, extra = TARGETS[name]
        good = extra[1] if extra else None
        print(f"{name}: training through lepton credit train ...", file=sys.stderr)
        report[name] = {"train": train_cli(path, target, extra)}
        print(f"{name}: other fold splits ...", file=sys.stderr)
        report[name]["other_splits_cv_auc"] = other_splits(path, target, good)
        print(f"{name}: scoring latency ...", file=sys.stderr)
        report[name]["scoring"] = latency(path, target, good, args.rows)
    if args.json:
        print(json.dumps(report))
        return
    for name, r in report.items():
        t, s = r["train"], r["scoring"]
        print(f"{name}: {t['family']} cv_auc {t['cv_auc']} (other splits {r['other_splits_cv_auc']}), KS {t['cv_ks']}, "
              f"Brier {t['brier']}; train {t['train_seconds']} s, command {t['command_seconds']} s; "
              f"assess p50/p95 {s['assess_ms']['p50']}/{s['assess_ms']['p95']} ms "
              f"(PD only {s['pd_only_ms']['p50']}/{s['pd_only_ms']['p95']} ms)")


if __name__ == "__main__":
    main()
