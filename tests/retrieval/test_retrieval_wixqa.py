"""Retrieval quality on the WixQA sample (160 questions, 173 help articles)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import evaluate_wixqa

# The copy the project ships (MIT, attribution in retrieval/data/wixqa/README.md).
WIXQA = Path(__file__).resolve().parents[2] / "retrieval" / "data" / "wixqa" / "wixqa_public_rag_sample.jsonl"


@pytest.mark.slow
def test_hybrid_recall_at_5_on_wixqa(encoder):
    result = evaluate_wixqa(WIXQA, None, ["hybrid"])
    assert result["questions"] == 160 and result["articles"] == 173
    assert result["modes"]["hybrid"]["recall@5"] >= 0.90
