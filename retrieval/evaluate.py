"""Retrieval quality on WixQA: does search find the help article that answers a question?

The WixQA JSONL holds questions with their gold article ids and the articles'
text (``contexts``). The articles are ingested, one document per article, into a
fresh temporary knowledge base; every question is asked in each mode and the
ranking of *articles* is scored (chunks of one article count once, at their best
rank): recall@1, recall@5 (a question counts if any gold article is in the top
1 / 5) and MRR over the top 10 articles.
"""

from __future__ import annotations

import ast
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._chunking import Document
from .errors import IngestError, RetrievalError
from .ingest import IngestConfig, ingest_documents
from .search import MAX_K, MODES, Retriever
from .store import KnowledgeStore, StoreSettings

__all__ = ["evaluate_wixqa", "load_wixqa", "WixQAItem"]

#: Articles ranked per question (MRR is computed over this many).
MRR_DEPTH = 10
EVAL_TENANT = "eval"


@dataclass(frozen=True)
class WixQAItem:
    """One question and the ids of the articles that answer it."""

    id: str
    question: str
    gold: tuple[str, ...]


def _field(value: Any, line: int, name: str) -> Any:
    # The published sample stores these fields as Python-repr strings; other
    # exports have plain JSON lists. Accept both.
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise IngestError(f"line {line}: field {name!r} is neither a list nor a Python literal") from None
    return value


def load_wixqa(path: str | Path) -> tuple[list[WixQAItem], dict[str, Document]]:
    """Questions and the articles they cite, from a WixQA JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"no such file: {path}")
    questions: list[WixQAItem] = []
    articles: dict[str, Document] = {}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise IngestError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict) or "question" not in row:
                raise IngestError(f"{path}:{number}: not a WixQA record (no 'question')")
            gold = [str(g) for g in _field(row.get("article_ids", []), number, "article_ids")]
            for ctx in _field(row.get("contexts", []), number, "contexts"):
                aid, text = str(ctx.get("id", "")), str(ctx.get("text", ""))
                if not aid or not text.strip() or aid in articles:
                    continue
                lines = text.strip().splitlines()
                # Help-centre exports start the text with the title; prefer the field.
                title = str(ctx.get("title") or lines[0]).strip()
                body = "\n".join(lines[1:]) if lines[0].strip() == title and len(lines) > 1 else text
                articles[aid] = Document.from_text(f"wixqa:{aid}", title, body, {"article_id": aid})
            if gold:
                questions.append(WixQAItem(str(row.get("id", number)), str(row["question"]), tuple(gold)))
    if not questions:
        raise IngestError(f"{path}: no questions with gold articles")
    return questions, articles


def _open_store(target: Any) -> tuple[KnowledgeStore, tempfile.TemporaryDirectory | None]:
    if isinstance(target, KnowledgeStore):
        return target, None
    if target is None:
        tmp = tempfile.TemporaryDirectory(prefix="lepton-eval-")
        return KnowledgeStore(path=tmp.name), tmp
    if isinstance(target, (str, Path)):
        return KnowledgeStore(path=target), None
    if hasattr(target, "chroma_dir"):
        return KnowledgeStore(target), None
    raise TypeError(f"expected Settings, a folder, a KnowledgeStore or None, got {type(target).__name__}")


def _article_ranking(hits: Sequence, depth: int) -> list[str]:
    ranking: list[str] = []
    for hit in hits:
        aid = str(hit.metadata.get("article_id", hit.source))
        if aid not in ranking:
            ranking.append(aid)
            if len(ranking) == depth:
                break
    return ranking


def evaluate_wixqa(
    path: str | Path,
    store: StoreSettings | KnowledgeStore | str | Path | None = None,
    modes: Sequence[str] = MODES,
    *,
    config: IngestConfig | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Recall@1, recall@5 and MRR@10 of article retrieval on a WixQA file, per mode.

    ``store`` is where the temporary knowledge base lives: Settings (their Chroma
    folder or server), a folder, a :class:`KnowledgeStore`, or None for a temporary
    folder. The knowledge base is deleted afterwards.
    """
    modes = list(modes)
    for mode in modes:
        if mode not in MODES:
            raise RetrievalError(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    questions, articles = load_wixqa(path)
    knowledge, tmp = _open_store(store)
    kb = f"wixqa-{uuid.uuid4().hex[:12]}"
    config = config or IngestConfig(progress=progress)
    try:
        started = time.perf_counter()
        report = ingest_documents(knowledge, articles.values(), kb, EVAL_TENANT, config=config)
        ingest_s = time.perf_counter() - started
        retriever = Retriever(knowledge)
        retriever.warm(kb, EVAL_TENANT)
        results: dict[str, Any] = {}
        for mode in modes:
            r1 = r5 = rr = 0.0
            latencies = []
            for item in questions:
                t0 = time.perf_counter()
                # Enough chunks that 10 distinct articles almost always appear.
                hits = retriever.search(item.question, kb, EVAL_TENANT, k=MAX_K // 2, mode=mode)
                latencies.append(time.perf_counter() - t0)
                ranking = _article_ranking(hits, MRR_DEPTH)
                gold = set(item.gold)
                found = [i for i, aid in enumerate(ranking) if aid in gold]
                if found:
                    first = found[0]
                    r1 += first == 0
                    r5 += first < 5
                    rr += 1.0 / (first + 1)
            n = len(questions)
            latencies.sort()
            results[mode] = {
                "recall@1": round(r1 / n, 4),
                "recall@5": round(r5 / n, 4),
                "mrr": round(rr / n, 4),
                "p50_ms": round(1000 * statistics.median(latencies), 2),
                "p95_ms": round(1000 * latencies[int(0.95 * (n - 1))], 2),
            }
        return {
            "dataset": str(path),
            "questions": len(questions),
            "articles": len(articles),
            "chunks": report.chunks,
            "ingest_seconds": round(ingest_s, 2),
            "chunk_chars": config.chunk_chars,
            "overlap_chars": config.overlap_chars,
            "modes": results,
        }
    finally:
        try:
            knowledge.drop_collection(kb, EVAL_TENANT)
        except RetrievalError:
            pass
        if tmp is not None:
            tmp.cleanup()
