"""Write WixQA's questions as a routing set for ``lepton eval routing``.

Every WixQA question asks the Wix help centre, whose articles are the demo
tenant's help centre, so each is labelled ``customer_service``. Two halves by
position in the file: ``dev`` (even lines) for choosing the knowledge threshold,
``test`` (odd lines) to report it on; ``all`` writes every question.

Example:
    python benchmarks/make_wixqa_routing.py --split test --out /tmp/wixqa_test.jsonl
    lepton eval routing /tmp/wixqa_test.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.demo import WIXQA_SAMPLE  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wixqa", type=Path, default=WIXQA_SAMPLE, help="WixQA JSONL (default: the shipped sample)")
    parser.add_argument("--split", choices=["dev", "test", "all"], default="all")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    questions, _ = load_wixqa(args.wixqa)
    keep = {"dev": lambda i: i % 2 == 0, "test": lambda i: i % 2 == 1, "all": lambda i: True}[args.split]
    with args.out.open("w", encoding="utf-8") as out:
        for i, item in enumerate(questions):
            if keep(i):
                out.write(json.dumps({"text": item.question, "skill": "customer_service"}) + "\n")
    print(f"wrote {sum(keep(i) for i in range(len(questions)))} questions to {args.out}")


if __name__ == "__main__":
    main()
