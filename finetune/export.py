"""Export an adapter as a full model folder (LoRA merged into the weights), and
prove the merge: on sample prompts the saved model's logits must match the
adapter's and differ from the base model's. A merge that silently dropped the
adapter, or a save that lost it, fails here instead of in production.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from assistant.adapters import AdapterRegistry
from assistant.settings import Settings

from .data import read_prepared
from .errors import FinetuneError
from .evaluate import base_path_for
from .tokens import prompt_text
from .train import load_base

__all__ = ["export_merged", "SAMPLE_PROMPTS"]

#: Used when the adapter carries no eval rows to take prompts from.
SAMPLE_PROMPTS = ["Hello, who are you?", "My card payment was declined, what should I do?"]


def _logits(model, batch):
    import torch

    with torch.inference_mode():
        return model(**batch).logits.float()


def export_merged(
    settings: Settings,
    name: str,
    out: Path,
    *,
    overwrite: bool = False,
    samples: int = 4,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> dict[str, Any]:
    """Merge adapter ``name`` into its base model, verify, and write the model to ``out``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise FinetuneError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    record = AdapterRegistry(settings.adapters_dir).get(name)
    base_path = base_path_for(settings, record, log)

    tokenizer, base = load_base(base_path)
    saved_dtype = getattr(base.config, "dtype", None) or torch.float32
    try:
        rows = read_prepared(record.path, "eval")[:samples]
        prompts = [prompt_text(tokenizer, m) for m in rows]
    except FinetuneError:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                 add_generation_prompt=True) for p in SAMPLE_PROMPTS]
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = batch["attention_mask"].bool()

    base.eval()
    base_logits = _logits(base, batch)[mask]
    model = PeftModel.from_pretrained(base, str(record.path))
    model.eval()
    adapter_logits = _logits(model, batch)[mask]
    merged = model.merge_and_unload()

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        merged.to(saved_dtype).save_pretrained(staging)
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(staging)
        del merged, model, base
        # Verify what was written, not what is in memory.
        reloaded = AutoModelForCausalLM.from_pretrained(str(staging), dtype=torch.float32)
        reloaded.eval()
        merged_logits = _logits(reloaded, batch)[mask]
        vs_adapter = float((merged_logits - adapter_logits).abs().max())
        vs_base = float((merged_logits - base_logits).abs().max())
        adapter_vs_base = float((adapter_logits - base_logits).abs().max())
        # Saving in a 16-bit dtype rounds the weights; allow for that, but the
        # merged model must be far closer to the adapter than the adapter is to the base.
        tolerance = 1e-3 if saved_dtype == torch.float32 else 0.25
        report = {
            "adapter": name,
            "out": str(out.resolve()),
            "base_model": record.base_model,
            "dtype": str(saved_dtype).replace("torch.", ""),
            "prompts": len(prompts),
            "max_abs_diff_vs_adapter": vs_adapter,
            "max_abs_diff_vs_base": vs_base,
            "adapter_vs_base": adapter_vs_base,
            "tolerance": tolerance,
        }
        if adapter_vs_base <= tolerance:
            raise FinetuneError(
                f"adapter {name!r} does not change the base model's outputs (max logit difference "
                f"{adapter_vs_base:.2e}); nothing worth exporting"
            )
        if vs_adapter > tolerance or vs_adapter > 0.5 * adapter_vs_base:
            raise FinetuneError(
                f"merged model does not reproduce adapter {name!r}: max logit difference {vs_adapter:.3g} "
                f"(tolerance {tolerance}); nothing was exported"
            )
        if vs_base <= tolerance:
            raise FinetuneError(f"merged model equals the base model (max logit difference {vs_base:.2e}); "
                                "nothing was exported")
        (staging / "lepton_export.json").write_text(json.dumps({**report, "source": str(record.path)}, indent=2) + "\n")
        staging.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return report
