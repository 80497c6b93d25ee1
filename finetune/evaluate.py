"""Base model against adapter on the adapter's own held-out split.

Two measures: mean cross-entropy on the assistant tokens (and its perplexity),
which works for any data; and, when every target is a short label (an intent, a
category), exact-match accuracy of greedy generation, compared after
normalisation. The gate uses accuracy when there is one (that is what a label
task is for) and loss otherwise: an adapter must beat the base model to be
activated, unless the operator forces it.
"""

from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from assistant.adapters import AdapterRecord, AdapterRegistry, model_identity
from assistant.errors import ModelError
from assistant.models import resolve_model
from assistant.settings import Settings

from .data import read_prepared
from .errors import FinetuneError, GateError
from .tokens import encode_messages, prompt_text
from .train import assistant_loss, collate, load_base

__all__ = ["evaluate", "normalise", "is_label_task", "mean_loss", "generate", "activate_checked", "base_path_for"]

#: Targets up to this many words and characters count as labels.
_LABEL_WORDS, _LABEL_CHARS = 4, 48


def normalise(text: str) -> str:
    """Case, surrounding punctuation and inner whitespace do not count in exact match."""
    text = " ".join(text.split()).casefold()
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


def is_label_task(targets: list[str]) -> bool:
    return bool(targets) and all(len(t.split()) <= _LABEL_WORDS and len(t) <= _LABEL_CHARS for t in targets)


def base_path_for(settings: Settings, record: AdapterRecord, progress: Callable[[str], None]) -> str:
    """The base model folder an adapter was trained on, checked against its manifest."""
    path = record.config.get("base_model_path")
    if not path or not Path(path).exists():
        path = resolve_model(settings, progress=progress)
    identity = model_identity(path)
    if identity.base_model != record.base_model:
        raise ModelError(f"adapter {record.name!r} needs base model {record.base_model!r}; found {identity.base_model!r}")
    return path


def mean_loss(model, tokenizer, rows: list[list[dict[str, str]]], max_length: int, batch_size: int = 16) -> float:
    """Mean cross-entropy per assistant token over ``rows``."""
    import torch

    encoded = [e for e in (encode_messages(tokenizer, m, max_length) for m in rows) if e.target_tokens]
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            ids, labels, mask = collate(encoded[start:start + batch_size], tokenizer.pad_token_id)
            total += float(assistant_loss(model, ids, labels, mask, reduction="sum"))
            count += int((labels[:, 1:] != -100).sum())
    if not count:
        raise FinetuneError("no eval row has an assistant token to score")
    return total / count


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 32,
             progress: bool = False, desc: str = "generate", repetition_penalty: float | None = None) -> list[str]:
    """Greedy completions of already-templated ``prompts`` (batched, left-padded);
    ``repetition_penalty`` as the assistant's decoding applies it (None: off)."""
    import torch
    from tqdm import tqdm

    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # alike lengths pad least
    results: dict[int, str] = {}
    bar = tqdm(total=len(prompts), file=sys.stderr, disable=not progress, desc=desc, dynamic_ncols=True)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id,
                                 repetition_penalty=repetition_penalty)
            for i, row in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
                results[i] = tokenizer.decode(row, skip_special_tokens=True)
            bar.update(len(chunk))
    bar.close()
    return [results[i] for i in range(len(prompts))]


def _accuracy(model, tokenizer, rows, targets, batch_size, progress, desc) -> tuple[float, list[str]]:
    prompts = [prompt_text(tokenizer, m) for m in rows]
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
    answers = generate(model, tokenizer, prompts, longest + 4, batch_size, progress, desc)
    hits = sum(normalise(a) == normalise(t) for a, t in zip(answers, targets))
    return hits / len(targets), answers


def evaluate(
    settings: Settings,
    name: str,
    *,
    limit: int | None = None,
    activate: bool = True,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict[str, Any]:
    """Compare adapter ``name`` with its base model; record the figures; apply the gate."""
    from peft import PeftModel

    registry = AdapterRegistry(settings.adapters_dir)
    record = registry.get(name)
    rows = read_prepared(record.path, "eval")
    if limit is not None:
        if limit < 1:
            raise FinetuneError(f"--limit must be at least 1, not {limit}")
        rows = rows[:limit]
    base_path = base_path_for(settings, record, log)
    max_length = int(record.config.get("train", {}).get("max_length", 256))
    started = time.perf_counter()
    tokenizer, model = load_base(base_path)
    model = PeftModel.from_pretrained(model, str(record.path))
    model.eval()

    targets = [m[-1]["content"] for m in rows]
    labels = is_label_task(targets)
    result: dict[str, Any] = {"adapter": name, "skill": record.skill, "rows": len(rows), "label_task": labels}
    with model.disable_adapter():
        result["base_loss"] = mean_loss(model, tokenizer, rows, max_length)
    result["adapter_loss"] = mean_loss(model, tokenizer, rows, max_length)
    result["base_perplexity"] = math.exp(min(result["base_loss"], 50))
    result["adapter_perplexity"] = math.exp(min(result["adapter_loss"], 50))
    if labels:
        with model.disable_adapter():
            result["base_accuracy"], _ = _accuracy(model, tokenizer, rows, targets, 32, progress, "eval base")
        result["adapter_accuracy"], answers = _accuracy(model, tokenizer, rows, targets, 32, progress, "eval adapter")
        result["examples"] = [{"target": t, "adapter": a} for t, a in list(zip(targets, answers))[:5]]
        result["gate_metric"] = "accuracy"
        result["gate_passed"] = result["adapter_accuracy"] > result["base_accuracy"]
    else:
        result["gate_metric"] = "loss"
        result["gate_passed"] = result["adapter_loss"] < result["base_loss"]
    result["seconds"] = round(time.perf_counter() - started, 2)
    del model

    registry.update_metrics(name, {"eval": {k: v for k, v in result.items() if k != "examples"}})
    result["activated"] = False
    if activate and (result["gate_passed"] or force):
        registry.activate(name)
        result["activated"] = True
    result["forced"] = bool(force and not result["gate_passed"] and result["activated"])
    return result


def activate_checked(settings: Settings, name: str, force: bool = False) -> AdapterRecord:
    """Activate ``name`` for its skill if its last eval beat the base model (or ``force``)."""
    registry = AdapterRegistry(settings.adapters_dir)
    record = registry.get(name)
    evaluation = record.metrics.get("eval")
    if not force:
        if evaluation is None:
            raise GateError(f"adapter {name!r} has not been evaluated: run `lepton finetune eval {name}` "
                            "(or pass --force)")
        if not evaluation.get("gate_passed"):
            metric = evaluation.get("gate_metric", "loss")
            raise GateError(f"adapter {name!r} did not beat the base model on its eval split ({metric}); "
                            "pass --force to activate it anyway")
    return registry.activate(name)
