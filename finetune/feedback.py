"""Turn server-stored feedback into training data.

The ``feedback`` table records (tenant, conversation, message index, rating,
correction). The conversation itself lives in the LangGraph checkpoints in the
same SQLite file: the first checkpoint whose history has ``message_index + 1``
messages is the one written when that answer was committed, and its
``last_skill`` channel says which skill gave it. From that history we build one OpenAI-messages
row: the earlier turns as context (earlier answers with weight 0, since nobody
rated them), then the rated answer (thumbs up) or the correction (thumbs down
with a correction) as the target. A thumbs down without a correction says what
not to answer but not what to answer, so it is skipped.

The row starts with the system message of the prompt the model answered from
(the ``answer_prompts`` table: the skill's prompt, with the retrieved sources for
grounded skills), so an adapter trained on feedback is trained on the prompt it
will be served with. Answers written without the model (a fixed refusal, a
handoff notice) have no such message (``with_prompt`` counts those that do).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from assistant.guards import clean_message
from assistant.settings import Settings
from assistant.database import records_exist
from assistant.store import open_store

from .errors import FinetuneError

__all__ = ["export_feedback"]


def _committed_histories(saver, tenant: str, conversation: str) -> dict[int, tuple[list[dict], str | None]]:
    """History length -> (messages, skill) of the first checkpoint holding that history."""
    found: dict[int, tuple[list[dict], str | None]] = {}
    # list() yields newest first; later (earlier-in-time) entries overwrite, so the
    # first checkpoint with a given length wins: the one guard_out wrote.
    for item in saver.list({"configurable": {"thread_id": f"{tenant}:{conversation}"}}):
        values = item.checkpoint.get("channel_values", {})
        messages = values.get("messages") or []
        if messages:
            found[len(messages)] = (list(messages), values.get("last_skill"))
    return found


def export_feedback(settings: Settings, skill: str, out: Path, tenant: str | None = None) -> dict[str, Any]:
    """Write ``skill``'s usable feedback of ``tenant`` to ``out`` (JSONL); returns counts."""
    tenant = tenant or settings.default_tenant
    if not records_exist(settings):
        raise FinetuneError(f"there is no database at {settings.db_path}: no feedback has been recorded")
    store = open_store(settings)
    try:
        saver = store.checkpointer()
        counts: Counter = Counter()
        rows: list[dict[str, Any]] = []
        cache: dict[str, dict[int, tuple[list[dict], str | None]]] = {}
        for fb in store.feedback(tenant):
            counts["feedback"] += 1
            if fb["rating"] < 0 and not fb["correction"]:
                counts["skipped_thumbs_down_without_correction"] += 1
                continue
            conv = fb["conversation_id"]
            if conv not in cache:
                cache[conv] = _committed_histories(saver, tenant, conv)
            index = fb["message_index"]
            messages, answered_by = cache[conv].get(index + 1, (None, None))
            if messages is None or messages[index].get("role") != "assistant":
                counts["skipped_missing_conversation"] += 1
                continue
            if answered_by != skill:
                counts["other_skills"] += 1
                continue
            context = [
                {"role": m["role"], "content": m["content"], **({"weight": 0} if m["role"] == "assistant" else {})}
                for m in messages[:index]
            ]
            system = store.answer_prompt(tenant, conv, index)
            if system is not None:
                context.insert(0, {"role": "system", "content": system})
                counts["with_prompt"] += 1
            # Corrections are masked when stored; masked again here for rows kept before that.
            target = (clean_message(fb["correction"], settings.masks_contacts(tenant))[0] if fb["rating"] < 0
                      else messages[index]["content"])
            rows.append({"messages": context + [{"role": "assistant", "content": target}],
                         "lepton": {"conversation_id": conv, "message_index": index, "rating": fb["rating"],
                                    "corrected": bool(fb["correction"] and fb["rating"] < 0)}})
            counts["thumbs_up" if fb["rating"] > 0 else "corrections"] += 1
    finally:
        store.close()
    if not rows:
        raise FinetuneError(
            f"no usable feedback for skill {skill!r} of tenant {tenant!r} "
            f"({counts['feedback']} feedback rows, none a thumbs up or a correction of that skill's answers)"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"out": str(out.resolve()), "rows": len(rows), "skill": skill, "tenant": tenant,
            **{k: counts.get(k, 0) for k in ("feedback", "thumbs_up", "corrections",
                                               "skipped_thumbs_down_without_correction", "other_skills",
                                               "skipped_missing_conversation", "with_prompt")}}
