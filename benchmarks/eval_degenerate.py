"""Degenerate answers of the embedded model under several decoding settings, in one run.

    python benchmarks/eval_degenerate.py [--wixqa N] [--bitext FILE.csv --bitext-n N]
                                         [--configs 1.0:0 1.3:0 1.2:3] [--max-tokens 160] [--json]

A real server (uvicorn on loopback, the real embedded model, the demo help centre)
is asked with the official ``openai`` client. Each config is
``repetition_penalty:no_repeat_ngram_size`` (``LEPTON_REPETITION_PENALTY``,
``LEPTON_NO_REPEAT_NGRAM_SIZE``); every config answers the same messages, one new
conversation each:

- the first N WixQA questions of the bundled sample (``model: customer_service``);
- N Bitext customer-support instructions, evenly spaced through the file
  (``model: customer_service``), when ``--bitext`` is given. The demo help centre
  is about building websites and declines them, so they go to a second server
  whose tenant has no help centre: the model writes every answer;
- the demo page's suggestions (``model: assistant``).

An answer is degenerate when a sentence of it (4 words or more) appears twice, or
fewer than 80 % of its word trigrams are distinct. Fixed replies (a decline, a
handoff, the safety guard) count like any answer.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from bench_turn_overhead import serve  # noqa: E402 - a sibling script: benchmarks/ is on sys.path

from assistant import Assistant, Settings  # noqa: E402
from assistant.text_quality import degenerate  # noqa: E402
from retrieval import KnowledgeStore, ensure_demo_help_centre  # noqa: E402
from retrieval.demo import WIXQA_SAMPLE  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402

#: The demo page's suggestions (server/static/demo.html), in its order.
DEMO = re.findall(r"<li>&quot;(.+?)&quot;|<li>\"(.+?)\"",
                  (Path(__file__).resolve().parents[1] / "server" / "static" / "demo.html").read_text())
DEMO = [a or b for a, b in DEMO]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wixqa", type=int, default=30, help="first N WixQA questions")
    parser.add_argument("--bitext", type=Path, help="Bitext customer-support CSV (instruction column)")
    parser.add_argument("--bitext-n", type=int, default=20)
    parser.add_argument("--configs", nargs="+", default=["1.0:0", "1.3:0", "1.2:3"])
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    messages: list[tuple[str, str, str]] = []  # (set, model, text)
    questions, _ = load_wixqa(WIXQA_SAMPLE)
    messages += [("wixqa", "customer_service", q.question) for q in questions[: args.wixqa]]
    if args.bitext:
        with args.bitext.open(encoding="utf-8", newline="") as fh:
            rows = [row["instruction"] for row in csv.DictReader(fh)]
        step = max(1, len(rows) // args.bitext_n)
        messages += [("bitext", "customer_service", t) for t in rows[::step][: args.bitext_n]]
    messages += [("demo", "assistant", t) for t in DEMO]

    tmp = tempfile.TemporaryDirectory(prefix="lepton-degenerate-")
    store = KnowledgeStore(path=Path(tmp.name) / "chroma")
    ensure_demo_help_centre(store, "default", progress=lambda m: print(m, file=sys.stderr))
    settings = Settings(data_dir=Path(tmp.name) / "data", max_tokens=args.max_tokens, demo_knowledge=False)
    assistant = Assistant.from_settings(settings, knowledge=store, progress=lambda m: print(m, file=sys.stderr))
    server, base_url = serve(settings, assistant)
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600)
    plain_settings = settings.model_copy(update={"data_dir": Path(tmp.name) / "plain"})
    plain = Assistant.from_settings(plain_settings, knowledge=KnowledgeStore(path=Path(tmp.name) / "empty-chroma"),
                                    progress=lambda m: print(m, file=sys.stderr))
    plain_server, plain_url = serve(plain_settings, plain)
    plain_client = openai.OpenAI(base_url=plain_url + "/v1", api_key="unused", max_retries=0, timeout=600)

    report: dict = {"max_tokens": args.max_tokens, "configs": {}}
    for config in args.configs:
        penalty, ngram = config.split(":")
        for each, base in ((assistant, settings), (plain, plain_settings)):
            each.settings = base.model_copy(update={"repetition_penalty": float(penalty),
                                                    "no_repeat_ngram_size": int(ngram)})
        counts: dict[str, list[int]] = {}
        examples: list[str] = []
        started = time.perf_counter()
        for name, model, text in messages:
            to = plain_client if name == "bitext" else client
            reply = to.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
            answer = reply.choices[0].message.content or ""
            bad = degenerate(answer)
            total = counts.setdefault(name, [0, 0])
            total[0] += bad
            total[1] += 1
            if bad and len(examples) < 3:
                examples.append(answer[:200])
        report["configs"][config] = {
            **{f"{name}_degenerate": f"{bad}/{n}" for name, (bad, n) in counts.items()},
            "degenerate_rate": round(sum(b for b, _ in counts.values()) / sum(n for _, n in counts.values()), 4),
            "seconds": round(time.perf_counter() - started, 1),
            "examples": examples,
        }
        print(config, json.dumps(report["configs"][config]), file=sys.stderr)
    server.should_exit = plain_server.should_exit = True
    assistant.close()
    plain.close()
    if args.json:
        print(json.dumps(report))
    else:
        for config, figures in report["configs"].items():
            print(config, {k: v for k, v in figures.items() if k != "examples"})


if __name__ == "__main__":
    main()
