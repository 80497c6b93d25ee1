"""Customer-service grounding on the demo help centre, through the API.

A real server (uvicorn on loopback, the real embedded model) is asked with the
official ``openai`` client, as an integrator would, using ``model:
customer_service``; every question is a new conversation.

1. WixQA: each of the 160 questions. Counted: declined (``lepton.grounded`` is
   false), a gold article among ``lepton.citations``, and a gold article cited by
   a ``[n]`` marker in the answer text. Each answer, as the customer reads it
   (less its ``[n]`` markers), is scored against WixQA's expert answer: token F1
   (lower-cased words, links reduced to their text, "a/an/the" dropped) and ROUGE-L
   (Google's rouge-score), with the mean over all questions and over each half
   (even / odd positions: ``ANSWER_CHARS`` was chosen on the even half); and
   counted degenerate by assistant.text_quality's rule. The reference scored the same
   way is the gold article's first 700 characters (its title line included).
2. Banking77 test (off-topic for a website builder's help centre): how many
   messages are declined or handed to a person (``lepton.handoff.state`` pending).
   The decision does not depend on the answer's length, so these use
   ``--banking-max-tokens`` (default 8) to keep the run short.

``--answer generated`` sets the skill's ``answer`` option (default: the skill's
own default, extractive).

Example:
    python benchmarks/eval_customer_service.py --banking77 ../shared/data/banking77/test.csv --json
    python benchmarks/eval_customer_service.py --answer generated --max-tokens 160 --limit 30
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai  # noqa: E402
from bench_turn_overhead import serve  # noqa: E402 - a sibling script: benchmarks/ is on sys.path
from rouge_score import rouge_scorer  # noqa: E402

from assistant import Assistant, Settings  # noqa: E402
from assistant.text_quality import degenerate  # noqa: E402
from retrieval import KnowledgeStore, ensure_demo_help_centre  # noqa: E402
from retrieval.demo import WIXQA_SAMPLE  # noqa: E402
from retrieval.evaluate import load_wixqa  # noqa: E402

MARK = re.compile(r"\[(\d+)\]")
LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
ROUGE = rouge_scorer.RougeScorer(["rougeL"])


def words(text: str) -> list[str]:
    text = re.sub(r"https?://\S+", " ", LINK.sub(r"\1", text).lower())
    return [w for w in re.findall(r"[a-z0-9]+", text) if w not in ("a", "an", "the")]


def token_f1(answer: str, gold: str) -> float:
    said, wanted = words(answer), words(gold)
    common = sum((Counter(said) & Counter(wanted)).values())
    if not common:
        return 0.0
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def scores(answer: str, gold: str) -> tuple[float, float]:
    return token_f1(answer, gold), ROUGE.score(gold, answer)["rougeL"].fmeasure


def halves(values: list[float]) -> dict[str, float]:
    mean = lambda xs: round(sum(xs) / len(xs), 4) if xs else None  # noqa: E731
    return {"all": mean(values), "even": mean(values[0::2]), "odd": mean(values[1::2])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--banking77", type=Path, help="banking77 test.csv (text,category)")
    parser.add_argument("--chroma", type=Path, help="Chroma folder to hold the demo help centre (default: temporary)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--banking-max-tokens", type=int, default=8)
    parser.add_argument("--limit", type=int, help="Only the first N questions of each set")
    parser.add_argument("--answer", choices=("extractive", "generated"), help="The skill's answer option")
    parser.add_argument("--answers", type=Path, help="Write each WixQA question, answer and scores here (JSONL)")
    parser.add_argument("--json", action="store_true", help="Last line: one JSON object")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="lepton-cs-eval-")
    store = KnowledgeStore(path=args.chroma or Path(tmp.name) / "chroma")
    ensure_demo_help_centre(store, "default", progress=lambda m: print(m, file=sys.stderr))
    options = {"customer_service": {"answer": args.answer}} if args.answer else {}
    settings = Settings(data_dir=Path(tmp.name) / "data", max_tokens=args.max_tokens, demo_knowledge=False,
                        skill_options=options)
    assistant = Assistant.from_settings(settings, knowledge=store, progress=lambda m: print(m, file=sys.stderr))
    server, base_url = serve(settings, assistant)
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=600)

    def ask(text: str, max_tokens: int) -> tuple[str, dict]:
        reply = client.chat.completions.create(
            model="customer_service", messages=[{"role": "user", "content": text}], max_tokens=max_tokens
        )
        return reply.choices[0].message.content or "", reply.model_extra["lepton"]

    questions, articles = load_wixqa(WIXQA_SAMPLE)
    questions = questions[: args.limit] if args.limit else questions
    gold_answers = {}
    with WIXQA_SAMPLE.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            gold_answers[row["question"]] = row["answer"]
    declined = listed = marked = degenerate_answers = 0
    f1s, rouges, ref_f1s, ref_rouges, answers = [], [], [], [], []
    started = time.perf_counter()
    for item in questions:
        text, lepton = ask(item.question, args.max_tokens)
        gold_answer = gold_answers[item.question]
        f1, rouge = scores(MARK.sub("", text), gold_answer)
        f1s.append(f1)
        rouges.append(rouge)
        article = articles[item.gold[0]]
        reference = "\n".join([article.title, *(p for sec in article.sections for p in sec.paragraphs)])[:700]
        f1, rouge = scores(reference, gold_answer)
        ref_f1s.append(f1)
        ref_rouges.append(rouge)
        degenerate_answers += degenerate(text)
        answers.append({"question": item.question, "answer": text, "gold": gold_answer, "token_f1": round(f1s[-1], 4),
                        "rouge_l": round(rouges[-1], 4), "degenerate": degenerate(text),
                        "declined": lepton.get("grounded") is False})
        if lepton.get("grounded") is False:
            declined += 1
            continue
        gold = {f"wixqa:{aid}" for aid in item.gold}
        by_n = {c["n"]: c["source"] for c in lepton.get("citations", [])}
        listed += any(source in gold for source in by_n.values())
        marked += any(by_n.get(int(n)) in gold for n in MARK.findall(text))
    if args.answers:
        args.answers.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers))
    report = {
        "wixqa_questions": len(questions),
        "wixqa_declined": declined,
        "wixqa_gold_in_citations": listed,
        "wixqa_gold_cited_in_text": marked,
        "wixqa_gold_rate": round(listed / len(questions), 4),
        "wixqa_answer_mode": args.answer or "default",
        "wixqa_token_f1": halves(f1s),
        "wixqa_rouge_l": halves(rouges),
        "wixqa_degenerate": degenerate_answers,
        "reference_token_f1": halves(ref_f1s),
        "reference_rouge_l": halves(ref_rouges),
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
