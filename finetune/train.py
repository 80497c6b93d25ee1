"""LoRA training on a prepared data set.

A plain PyTorch loop rather than ``transformers.Trainer``, for two measured
reasons on small CPUs: the loss is taken on assistant tokens only, so the output
layer (a 49k-word vocabulary for SmolLM2) is applied to those positions alone
instead of to every token; and rows are batched by similar length so little
compute goes to padding. Both made training much faster than the plain
transformers+peft loop, and bf16 autocast faster again (measured: benchmarks/README.md,
Fine-tuning on Banking77).

A run lives in ``<data_dir>/finetune-runs/<name>/`` while it trains: a checkpoint
every ``save_every`` steps (adapter weights, optimizer and scheduler state, step)
written atomically, so Ctrl-C or a crash leaves a resumable state and
``--resume`` continues with the same data order. Only a finished run is copied
into the adapter registry, in one step, with its chat template, full config and
training metrics; an interrupted run registers nothing.
"""

from __future__ import annotations

import json
import math
import random
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from assistant.adapters import AdapterError, AdapterRegistry, chat_template_hash, check_adapter_name, model_identity
from assistant.errors import ModelError
from assistant.models import resolve_model
from assistant.settings import Settings

from .config import TrainConfig
from .data import dataset_hash, read_prepared
from .errors import FinetuneError
from .tokens import IGNORE, Encoded, encode_messages

__all__ = ["TrainResult", "train", "load_base", "run_dir", "batches_for_epoch", "assistant_loss"]

CHECKPOINT = "checkpoint"
_STATE = "trainer_state.pt"
_RUN = "run.json"


@dataclass
class TrainResult:
    name: str
    adapter_dir: Path
    steps: int
    metrics: dict


def run_dir(settings: Settings, name: str) -> Path:
    return settings.data_dir / "finetune-runs" / name


def load_base(base_model: str, dtype: str = "float32"):
    """Tokenizer and model of ``base_model`` (a folder or a cached hub id)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model)
        model = AutoModelForCausalLM.from_pretrained(base_model, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load base model {base_model!r}: {str(exc).splitlines()[0]}") from None
    if not tokenizer.chat_template:
        raise ModelError(f"base model {base_model!r} has no chat template to train with")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def resolve_base(settings: Settings, base_model: str | None, progress: Callable[[str], None]) -> str:
    """The base model's folder: ``base_model`` if given, else the assistant's own model."""
    if base_model:
        path = Path(base_model).expanduser()
        if not path.exists() and ("/" not in base_model or base_model.startswith((".", "/", "~"))):
            raise ModelError(f"base model {base_model!r} does not exist (not a folder, not a hub id)")
        settings = Settings(**{**settings.model_dump(), "model": base_model})
    return resolve_model(settings, progress=progress)


def batches_for_epoch(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Row indices per batch for one epoch: shuffled, then grouped by similar length.

    Deterministic in (seed, epoch), so a resumed run sees exactly the batches the
    interrupted one would have.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * 32  # sort within windows: batches of alike lengths, still random overall
    batches = []
    for start in range(0, len(order), group):
        window = sorted(order[start:start + group], key=lambda i: lengths[i])
        batches += [window[i:i + batch_size] for i in range(0, len(window), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(rows: list[Encoded], pad_id: int):
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        mask[i, :n] = 1
    return ids, labels, mask


def assistant_loss(model, ids, labels, mask, reduction: str = "mean"):
    """Cross-entropy on labelled positions only; the output layer runs on those alone."""
    import torch.nn.functional as F

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    chosen = target != IGNORE
    logits = causal_lm.get_output_embeddings()(hidden[:, :-1][chosen])
    return F.cross_entropy(logits.float(), target[chosen], reduction=reduction)


def _lr_lambda(total: int, warmup: int):
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _save_checkpoint(folder: Path, model, optimizer, scheduler, step: int, run: dict, progress: dict) -> None:
    import torch

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=folder.parent))
    model.save_pretrained(staging)
    torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, staging / _STATE)
    (staging / _RUN).write_text(json.dumps({**run, "step": step, "progress": progress}, indent=2))
    old = folder.with_name(".checkpoint-old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.rename(old)
    staging.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(settings: Settings, **options) -> TrainResult:
    """Train a LoRA adapter (``_train``, same arguments) with all of torch's threads on this
    thread, also where a local model lowered the count for other threads; restored after."""
    import torch

    from assistant.llm.local import model_threads

    previous = torch.get_num_threads()
    torch.set_num_threads(model_threads(torch))
    try:
        return _train(settings, **options)
    finally:
        torch.set_num_threads(previous)


def _train(
    settings: Settings,
    *,
    skill: str,
    data: Path,
    name: str,
    config: TrainConfig,
    base_model: str | None = None,
    resume: bool = False,
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train a LoRA adapter for ``skill`` on the prepared set ``data`` and register it as ``name``.

    ``on_step(step, loss)`` is called after every optimizer step (tests use it).
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from tqdm import tqdm

    registry = AdapterRegistry(settings.adapters_dir)
    check_adapter_name(name)
    try:
        registry.get(name)
    except AdapterError:
        pass  # not registered yet: the usual case
    else:
        raise FinetuneError(f"an adapter named {name!r} already exists; choose another --name or remove it")
    data = Path(data)
    train_rows = read_prepared(data, "train")
    eval_rows = read_prepared(data, "eval")
    data_hash = dataset_hash(data)
    base_path = resolve_base(settings, base_model, log)

    folder = run_dir(settings, name)
    checkpoint = folder / CHECKPOINT
    run = {"name": name, "skill": skill, "base_model": base_path, "data": str(data.resolve()),
           "dataset_hash": data_hash, "train": config.to_dict()}
    start_step = 0
    done: dict = {}  # counters of the segments before a resume, so metrics cover the whole run
    if checkpoint.exists() and not fresh:
        saved = json.loads((checkpoint / _RUN).read_text())
        if not resume:
            raise FinetuneError(
                f"run {name!r} was interrupted at step {saved['step']}: pass --resume to continue it "
                "or --fresh to start over"
            )
        for key in ("base_model", "dataset_hash", "skill"):
            if saved[key] != run[key]:
                raise FinetuneError(f"cannot resume run {name!r}: its {key} was {saved[key]!r}, now {run[key]!r}")
        # The step budget may change on resume; everything that shapes the steps may not.
        fixed = {k: v for k, v in saved["train"].items() if k not in ("epochs", "max_steps", "save_every", "threads")}
        now = {k: v for k, v in config.to_dict().items() if k in fixed}
        if fixed != now:
            changed = sorted(k for k in fixed if fixed[k] != now[k])
            raise FinetuneError(f"cannot resume run {name!r} with a different config ({', '.join(changed)} changed)")
        start_step = saved["step"]
        done = saved.get("progress", {})
    elif resume:
        raise FinetuneError(f"there is no interrupted run {name!r} to resume")
    elif fresh and folder.exists():
        shutil.rmtree(folder)

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    tokenizer, model = load_base(base_path)
    encoded = [encode_messages(tokenizer, m, config.max_length) for m in train_rows]
    encoded = [e for e in encoded if e.target_tokens > 0]
    if not encoded:
        raise FinetuneError(f"no training row keeps an answer within max_length={config.max_length} tokens")

    if start_step:
        model = PeftModel.from_pretrained(model, str(checkpoint), is_trainable=True)
    else:
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=config.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    model.train()

    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(total, int(total * config.warmup_ratio)))
    if start_step:
        state = torch.load(checkpoint / _STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        log(f"Resuming run {name!r} at step {start_step} of {total}")
    if start_step >= total:
        log(f"run {name!r} already has {start_step} steps; registering it")

    lengths = [len(e.input_ids) for e in encoded]
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if config.bf16
                else torch.autocast("cpu", enabled=False))
    bar = tqdm(total=total, initial=start_step, file=sys.stderr, unit="step", disable=not progress,
               dynamic_ncols=True, desc=f"train {name}")
    epoch_batches: dict[int, list[list[int]]] = {}
    losses: list[float] = list(done.get("losses", []))
    tokens = int(done.get("tokens", 0))
    started = time.perf_counter() - float(done.get("seconds", 0.0))

    def progress_so_far() -> dict:
        return {"losses": losses, "tokens": tokens, "seconds": time.perf_counter() - started,
                "peak_rss_mb": max(_peak_rss_mb(), float(done.get("peak_rss_mb", 0.0)))}

    step = start_step
    try:
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            if epoch not in epoch_batches:
                epoch_batches = {epoch: batches_for_epoch(lengths, config.batch_size, config.seed, epoch)}
            ids, labels, mask = collate([encoded[i] for i in epoch_batches[epoch][index]], tokenizer.pad_token_id)
            with autocast:
                loss = assistant_loss(model, ids, labels, mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(mask.sum())
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - started
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}", tok_s=f"{tokens / elapsed:.0f}")
            bar.update(1)
            if on_step is not None:
                on_step(step, losses[-1])
            if step % config.save_every == 0 and step < total:
                _save_checkpoint(checkpoint, model, optimizer, scheduler, step, run, progress_so_far())
    except KeyboardInterrupt:
        bar.close()
        if step > start_step:
            _save_checkpoint(checkpoint, model, optimizer, scheduler, step, run, progress_so_far())
        if checkpoint.exists():
            log(f"Interrupted at step {step} of {total}; continue with: lepton finetune train ... --name {name} --resume")
        raise
    bar.close()
    elapsed = time.perf_counter() - started

    metrics = {
        "steps": step,
        "start_step": start_step,
        "epochs": round(step / steps_per_epoch, 4),
        "train_rows": len(encoded),
        "final_loss": (sum(losses[-20:]) / len(losses[-20:])) if losses else None,
        "first_loss": losses[0] if losses else None,
        "train_seconds": round(elapsed, 2),
        "tokens": tokens,
        "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 and tokens else None,
        "peak_rss_mb": round(progress_so_far()["peak_rss_mb"], 1),
    }
    adapter_dir = _register(registry, model, tokenizer, name=name, skill=skill, base_path=base_path,
                            data=data, data_hash=data_hash, eval_rows=eval_rows, config=config,
                            metrics=metrics)
    shutil.rmtree(folder, ignore_errors=True)
    return TrainResult(name=name, adapter_dir=adapter_dir, steps=step, metrics=metrics)


def _register(registry, model, tokenizer, *, name, skill, base_path, data, data_hash, eval_rows, config,
              metrics) -> Path:
    """Write the finished adapter to a staging folder and hand it to the registry."""
    import peft
    import torch
    import transformers

    registry.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-staging-", dir=registry.root))
    try:
        model.save_pretrained(staging)
        # The adapter was trained on this exact template; keeping it (and the
        # tokenizer) beside the weights lets any server check and reproduce it.
        tokenizer.save_pretrained(staging)
        identity = model_identity(base_path)
        template_hash = chat_template_hash(staging)
        if identity.template_hash and template_hash != identity.template_hash:
            raise FinetuneError("the saved chat template differs from the base model's; nothing was registered")
        with (staging / "eval.jsonl").open("w", encoding="utf-8") as fh:
            for messages in eval_rows:
                fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
        full_config = {
            "train": config.to_dict(),
            "skill": skill,
            "base_model": identity.base_model,
            "base_model_path": base_path,
            "data": str(data.resolve()),
            "dataset_hash": data_hash,
            "template_hash": template_hash,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "peft": peft.__version__, "python": sys.version.split()[0]},
        }
        (staging / "train_config.json").write_text(json.dumps(full_config, indent=2) + "\n")
        (staging / "train_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        record = registry.register(name, staging, skill=skill, base_model=identity.base_model,
                                   template_hash=template_hash, dataset_hash=data_hash, config=full_config,
                                   metrics={"train": metrics})
        return record.path
    finally:
        shutil.rmtree(staging, ignore_errors=True)
