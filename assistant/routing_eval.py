"""``lepton eval routing``: accuracy of the router on labelled messages.

Reports overall accuracy, per-class precision and recall (skills and
``out_of_scope``) and out-of-scope recall. Only the router runs; no LLM.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from .errors import InvalidRequest
from .router import OUT_OF_SCOPE, EmbeddingRouter
from .settings import Settings

__all__ = ["read_labelled", "evaluate_routing", "format_report"]


def read_labelled(path: Path, label: str = "skill") -> list[dict]:
    """Rows of {"text", <label>} (both strings); any bad line is reported by number."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise InvalidRequest(f"{path}:{number}: not valid JSON") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get(label), str):
                raise InvalidRequest(f'{path}:{number}: expected {{"text": str, "{label}": str}}')
            rows.append(row)
    if not rows:
        raise InvalidRequest(f"{path} has no labelled messages")
    return rows


def evaluate_routing(settings: Settings, rows: list[dict]) -> dict:
    from retrieval.query_encoder import load_query_encoder
    from skills import load_skills

    loaded = load_skills(settings.skills)
    known = set(loaded.skills) | {OUT_OF_SCOPE}
    unknown = sorted({r["skill"] for r in rows} - known)
    if unknown:
        raise InvalidRequest(f"labels name unknown skills: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    router = EmbeddingRouter(
        load_query_encoder(settings.embedding_model, int8=settings.router_int8),  # the server's encoder
        {name: s.examples for name, s in loaded.skills.items()},
        threshold=settings.router_threshold,
    )
    predicted = [r.skill for r in router.route_many([row["text"] for row in rows])]
    gold = [row["skill"] for row in rows]
    correct = sum(p == g for p, g in zip(predicted, gold))
    per_class = {}
    for label in sorted(known):
        tp = sum(p == g == label for p, g in zip(predicted, gold))
        n_pred = sum(p == label for p in predicted)
        n_gold = sum(g == label for g in gold)
        per_class[label] = {
            "precision": tp / n_pred if n_pred else 0.0,
            "recall": tp / n_gold if n_gold else 0.0,
            "support": n_gold,
        }
    confusion = Counter(f"{g}->{p}" for p, g in zip(predicted, gold) if p != g)
    return {
        "n": len(rows),
        "accuracy": correct / len(rows),
        "out_of_scope_recall": per_class[OUT_OF_SCOPE]["recall"],
        "threshold": settings.router_threshold,
        "per_class": per_class,
        "errors": dict(confusion.most_common()),
    }


def format_report(report: dict) -> str:
    lines = [
        f"messages: {report['n']}   threshold: {report['threshold']}",
        f"accuracy: {report['accuracy']:.3f}   out-of-scope recall: {report['out_of_scope_recall']:.3f}",
        "",
        f"{'class':<20}{'precision':>10}{'recall':>10}{'support':>9}",
    ]
    for label, m in report["per_class"].items():
        lines.append(f"{label:<20}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['support']:>9}")
    if report["errors"]:
        lines += ["", "most frequent confusions (gold->predicted):"]
        lines += [f"  {k}: {v}" for k, v in list(report["errors"].items())[:10]]
    return "\n".join(lines)
