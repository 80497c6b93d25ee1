"""Customer-service grounding on the demo help centre, through the API.

A real server (uvicorn on loopback, the real embedded model) is asked with the
official ``openai`` client, as an integrator would, using ``model:
customer_service``; every question is a new conversation.

1. WixQA: each of the 160 questions. Counted: declined (``lepton.grounded`` is
   false), a gold article among ``lepton.citations``, and a gold article cited by
   a ``[n]`` marker in the answer text.
2. Banking77 test (off-topic for a website builder's help centre): how many
   messages are declined or handed to a person (``lepton.handoff.state`` pending).
   The decision does not depend on the answer's length, so these use
   ``--banking-max-tokens`` (default 8) to keep the run short.

Example:
    python benchmarks/eval_customer_service.py --banking77 ../shared/data/banking77/test.csv --json
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
from retrieval import KnowledgeStore, ensure_demo_help_centre  # noqa: E402
from retrieval.demo import WIXQA_SAMPLE  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402

MARK = re.compile(r"\[(\d+)\]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77", type=Path, help="banking77 test.csv (text,category)")
    parser.add_argument("--chroma", type=Path, help="Chroma folder to hold the demo help centre (default: temporary)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--banking-max-tokens", type=int, default=8)
    parser.add_argument("--limit", type=int, help="Only the first N questions of each set")
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="lepton-cs-eval-")
    store = KnowledgeStore(path=args.chroma or Path(tmp.name) / "chroma")
    ensure_demo_help_centre(store, "default", progress=lambda m: print(m, file=sys.stderr))
    settings = Settings(data_dir=Path(tmp.name) / "data", max_tokens=args.max_tokens, demo_knowledge=False)
    assistant = Assistant.from_settings(settings, knowledge=store, progress=lambda m: print(m, file=sys.stderr))
    server, base_url = serve(settings, assistant)
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600)

    def ask(text: str, max_tokens: int) -> tuple[str, dict]:
        reply = client.chat.completions.create(
            model="customer_service", messages=[{"role": "user", "content": text}], max_tokens=max_tokens
        )
        return reply.choices[0].message.content or "", reply.model_extra["lepton"]

    questions, _ = load_wixqa(WIXQA_SAMPLE)
    questions = questions[: args.limit] if args.limit else questions
    declined = listed = marked = 0
    started = time.perf_counter()
    for item in questions:
        text, lepton = ask(item.question, args.max_tokens)
        if lepton.get("grounded") is False:
            declined += 1
            continue
        gold = {f"wixqa:{aid}" for aid in item.gold}
        by_n = {c["n"]: c["source"] for c in lepton.get("citations", [])}
        listed += any(source in gold for source in by_n.values())
        marked += any(by_n.get(int(n)) in gold for n in MARK.findall(text))
    report = {
        "wixqa_questions": len(questions),
        "wixqa_declined": declined,
        "wixqa_gold_in_citations": listed,
        "wixqa_gold_cited_in_text": marked,
        "wixqa_gold_rate": round(listed / len(questions), 4),
        "wixqa_seconds": round(time.perf_counter() - started, 1),
    }
    if args.banking77:
        with args.banking77.open(encoding="utf-8", newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
        texts = texts[: args.limit] if args.limit else texts
        refused = handed_off = 0
        started = time.perf_counter()
        for text in texts:
            _, lepton = ask(text, args.banking_max_tokens)
            refused += lepton.get("grounded") is False
            handed_off += lepton.get("handoff", {}).get("state") == "pending"
        report.update({
            "banking77_texts": len(texts),
            "banking77_declined": refused,
            "banking77_handed_off": handed_off,
            "banking77_declined_or_handed_off_rate": round((refused + handed_off) / len(texts), 4),
            "banking77_seconds": round(time.perf_counter() - started, 1),
        })
    server.should_exit = True
    assistant.close()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:40} {value}")


if __name__ == "__main__":
    main()
