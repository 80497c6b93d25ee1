"""Customer-service grounding on the demo help centre.

1. WixQA: each of the 160 questions goes to the ``customer_service`` skill (real
   embedded model, in-process Assistant). Counted: declined (weak evidence), a gold
   article among ``lepton.citations``, and a gold article cited by a ``[n]`` marker
   in the answer text.
2. Banking77 test: how many of its messages the skill declines. The refusal is
   decided before the model runs, so only the skill's rule over the dense search is
   applied (no generation).

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

from assistant import Assistant, Settings  # noqa: E402
from assistant.llm import GenerationParams  # noqa: E402
from retrieval import KnowledgeStore, ensure_demo_help_centre  # noqa: E402
from retrieval.demo import WIXQA_SAMPLE  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402
from skills.customer_service import weak_evidence  # noqa: E402

MARK = re.compile(r"\[(\d+)\]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77", type=Path, help="banking77 test.csv (text,category)")
    parser.add_argument("--chroma", type=Path, help="Chroma folder to hold the demo help centre (default: temporary)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--limit", type=int, help="Only the first N WixQA questions")
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="lepton-cs-eval-")
    store = KnowledgeStore(path=args.chroma or Path(tmp.name) / "chroma")
    ensure_demo_help_centre(store, "default", progress=lambda m: print(m, file=sys.stderr))
    settings = Settings(data_dir=Path(tmp.name) / "data", max_tokens=args.max_tokens)
    assistant = Assistant.from_settings(settings, knowledge=store, progress=lambda m: print(m, file=sys.stderr))
    params = GenerationParams(max_tokens=args.max_tokens)

    questions, _ = load_wixqa(WIXQA_SAMPLE)
    questions = questions[: args.limit] if args.limit else questions
    declined = listed = marked = 0
    started = time.perf_counter()
    for item in questions:
        turn = assistant.start_turn([{"role": "user", "content": item.question}], model="customer_service",
                                    params=params).run()
        if turn.extras.get("grounded") is False:
            declined += 1
            continue
        gold = {f"wixqa:{aid}" for aid in item.gold}
        by_n = {c["n"]: c["source"] for c in turn.extras.get("citations", [])}
        listed += any(source in gold for source in by_n.values())
        marked += any(by_n.get(int(n)) in gold for n in MARK.findall(turn.reply))
    wixqa_seconds = time.perf_counter() - started
    report = {
        "wixqa_questions": len(questions),
        "wixqa_declined": declined,
        "wixqa_gold_in_citations": listed,
        "wixqa_gold_cited_in_text": marked,
        "wixqa_seconds": round(wixqa_seconds, 1),
    }
    if args.banking77:
        with args.banking77.open(encoding="utf-8", newline="") as fh:
            texts = [row["text"] for row in csv.DictReader(fh)]
        retriever = assistant.retriever
        declined_b = sum(
            weak_evidence(retriever.search(t, "help_centre", "default", k=1, mode="dense")) for t in texts
        )
        report.update({"banking77_texts": len(texts), "banking77_declined": declined_b})
    assistant.close()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
