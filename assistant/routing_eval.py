"""``lepton eval routing``: accuracy of routing on labelled messages and dialogues.

A line is one message, ``{"text": ..., "skill": ...}``, or one dialogue,
``{"turns": [{"text": ..., "skill": ...}, ...]}`` (user turns, each labelled with
the skill that should answer it given the conversation so far). Each dialogue is
routed turn by turn as the server routes it: the router's scores, then the
conversation's current skill (the one the previous turn was *routed to*, right or
wrong) and the tenant's knowledge (``router.route_in_context``). Reports per-turn
accuracy overall, on first turns and on follow-ups, per-class precision and recall,
and out-of-scope recall. The tenant's data skills (``lepton skills create``) take
part as on the server. No LLM runs.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable

from .errors import InvalidRequest
from .router import OUT_OF_SCOPE, ContextPolicy, EmbeddingRouter, TenantRouter, route_in_context
from .settings import Settings

__all__ = ["read_labelled", "read_dialogues", "evaluate_routing", "format_report"]


def _labelled(row: object, label: str) -> bool:
    return isinstance(row, dict) and isinstance(row.get("text"), str) and isinstance(row.get(label), str)


def _lines(path: Path):  # noqa: ANN202
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise InvalidRequest(f"{path}: {exc.strerror or exc}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                raise InvalidRequest(f"{path}:{number}: not valid JSON") from None


def read_labelled(path: Path, label: str = "skill") -> list[dict]:
    """Rows of {"text", <label>} (both strings); any bad line is reported by number."""
    rows = []
    for number, row in _lines(path):
        if not _labelled(row, label):
            raise InvalidRequest(f'{path}:{number}: expected {{"text": str, "{label}": str}}')
        rows.append(row)
    if not rows:
        raise InvalidRequest(f"{path} has no labelled messages")
    return rows


def read_dialogues(path: Path) -> list[list[dict]]:
    """Dialogues, each a list of {"text", "skill"} turns; a single-message line is a
    dialogue of one turn. Any bad line is reported by number."""
    dialogues = []
    for number, row in _lines(path):
        if _labelled(row, "skill"):
            dialogues.append([row])
        elif isinstance(row, dict) and isinstance(row.get("turns"), list) and row["turns"] \
                and all(_labelled(turn, "skill") for turn in row["turns"]):
            dialogues.append(row["turns"])
        else:
            raise InvalidRequest(f'{path}:{number}: expected {{"text": str, "skill": str}} or '
                                 f'{{"turns": [{{"text": str, "skill": str}}, ...]}}')
    if not dialogues:
        raise InvalidRequest(f"{path} has no labelled messages")
    return dialogues


def _knowledge_match(settings: Settings, tenant: str) -> tuple[Callable[..., float | None], Callable[[], int]]:
    """The tenant's knowledge as the server's router asks it (``Knowledge.best_match``,
    with the message's router embedding), and how often it was asked."""
    from .knowledge import Knowledge

    knowledge = Knowledge(settings)
    if tenant == settings.default_tenant:  # as `lepton serve` does on its first start
        knowledge.ensure_demo(tenant, progress=None)
    asked = [0]

    def match(collection: str, message: str, vector) -> float | None:  # noqa: ANN001
        asked[0] += 1
        return knowledge.best_match(tenant, collection, message, vector)

    return match, lambda: asked[0]


def _data_skills(settings: Settings, tenant: str) -> list[dict]:
    from .database import records_exist
    from .store import open_store

    if not records_exist(settings):
        return []
    store = open_store(settings)
    try:
        return store.data_skills(tenant)
    finally:
        store.close()


def evaluate_routing(settings: Settings, dialogues: list[list[dict]], *, tenant: str | None = None,
                     use_knowledge: bool = True, use_context: bool = True) -> dict:
    """Route every turn of ``dialogues`` (see the module docstring) and score it;
    ``use_context=False`` routes every turn on its own (the baseline)."""
    from retrieval.query_encoder import load_query_encoder
    from skills import load_skills

    tenant = tenant or settings.default_tenant
    skills = dict(load_skills(settings.skills).skills)
    # The tenant's data skills (lepton skills create) are routed to as the server does.
    data_skills = {r["name"]: r for r in _data_skills(settings, tenant) if r["name"] not in skills}
    known = set(skills) | set(data_skills) | {OUT_OF_SCOPE}
    unknown = sorted({t["skill"] for d in dialogues for t in d} - known)
    if unknown:
        raise InvalidRequest(f"labels name unknown skills: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    router = EmbeddingRouter(
        load_query_encoder(settings.embedding_model, int8=settings.router_int8),  # the server's encoder
        {name: s.examples for name, s in skills.items()},
        threshold=settings.router_threshold,
    )
    if data_skills:
        router = TenantRouter(router, {name: r["examples"] for name, r in data_skills.items()})
    policy = ContextPolicy(switch=settings.router_switch_threshold, leave=settings.router_leave_threshold,
                           knowledge=settings.router_knowledge_threshold)
    owners = {name: s.collection for name, s in skills.items() if s.collection}
    owners.update({name: r["collection"] for name, r in data_skills.items() if r["collection"]})
    match, asked = _knowledge_match(settings, tenant) if use_knowledge and owners else (None, lambda: 0)
    # The router's own scores do not depend on the conversation: embed every turn at once.
    texts = [t["text"] for d in dialogues for t in d]
    vectors = iter(router.embed(texts))
    gold, predicted, followup = [], [], []
    for dialogue in dialogues:
        current = None
        for i, turn in enumerate(dialogue):
            vector = next(vectors)
            knowledge = None if match is None else (
                lambda skill, collection, message, vector=vector: match(collection, message, vector))
            decision = route_in_context(router.route(turn["text"], vector), turn["text"], current=current,
                                        policy=policy, owners=owners, knowledge=knowledge)
            current = decision.skill if use_context and decision.skill in known - {OUT_OF_SCOPE} else None
            gold.append(turn["skill"])
            predicted.append(decision.skill)
            followup.append(i > 0)

    def accuracy(which: list[bool]) -> float | None:
        pairs = [(p, g) for p, g, w in zip(predicted, gold, which) if w]
        return sum(p == g for p, g in pairs) / len(pairs) if pairs else None

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
        "n": len(gold),
        "dialogues": len(dialogues),
        "accuracy": accuracy([True] * len(gold)),
        "first_turn_accuracy": accuracy([not f for f in followup]),
        "followup_accuracy": accuracy(followup),
        "out_of_scope_recall": per_class[OUT_OF_SCOPE]["recall"],
        "threshold": settings.router_threshold,
        "policy": {"switch": policy.switch, "leave": policy.leave, "knowledge": policy.knowledge},
        "knowledge": {"tenant": tenant, "lookups": asked()} if match is not None else None,
        "data_skills": sorted(data_skills),
        "context": use_context,
        "per_class": per_class,
        "errors": dict(confusion.most_common()),
    }


def format_report(report: dict) -> str:
    policy, knowledge = report["policy"], report["knowledge"]
    lines = [
        f"turns: {report['n']} in {report['dialogues']} dialogues   threshold: {report['threshold']}   "
        f"switch: {policy['switch']}   leave: {policy['leave']}   knowledge: {policy['knowledge']}"
        + ("" if report["context"] else "   (every turn on its own)"),
        f"knowledge of tenant {knowledge['tenant']!r}: {knowledge['lookups']} lookups" if knowledge
        else "knowledge: not used",
        f"accuracy: {report['accuracy']:.3f}   out-of-scope recall: {report['out_of_scope_recall']:.3f}",
        "",
        f"{'class':<20}{'precision':>10}{'recall':>10}{'support':>9}",
    ]
    if report["followup_accuracy"] is not None:
        lines.insert(3, f"first turns: {report['first_turn_accuracy']:.3f}   follow-ups: {report['followup_accuracy']:.3f}")
    for label, m in report["per_class"].items():
        lines.append(f"{label:<20}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['support']:>9}")
    if report["errors"]:
        lines += ["", "most frequent confusions (gold->predicted):"]
        lines += [f"  {k}: {v}" for k, v in list(report["errors"].items())[:10]]
    return "\n".join(lines)
