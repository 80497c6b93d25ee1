"""``lepton finetune …``: prepare data, train and evaluate LoRA adapters, manage the registry.

    lepton finetune prepare data.jsonl --out prepared/ [--format auto] [--strict] [--json]
    lepton finetune train --skill customer_service --data prepared/ --name cs-v1 [--json]
    lepton finetune eval cs-v1 [--limit 200] [--force] [--json]
    lepton finetune list | activate NAME | deactivate NAME | export NAME --out DIR
    lepton finetune export-feedback --skill customer_service --out feedback.jsonl

With ``--json`` the last line on stdout is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from skills.cli_types import TENANT

from assistant.cli_support import pass_settings, state_of

from .data import FORMATS

__all__ = ["finetune"]


def _echo_json(value: dict) -> None:
    click.echo(json.dumps(value, default=str))


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.group(help="Fine-tune a skill: prepare data, train a LoRA adapter, evaluate it against the base "
             "model, and manage the adapter registry.")
def finetune() -> None:
    pass


@finetune.command(help="Check, scrub, dedupe and split a chat data set.\n\n"
                  "INPUT is OpenAI-messages JSONL, ShareGPT, Alpaca (JSON or JSONL) or CSV with "
                  "question/answer (or text/label) columns; for other CSV columns or JSON record fields, "
                  "name them with --prompt-column and --answer-column. Invalid rows are reported by line "
                  "and skipped.\n\n"
                  "Example: lepton finetune prepare chats.jsonl --out prepared/ --eval-fraction 0.1\n\n"
                  "Example: lepton finetune prepare support.csv --prompt-column instruction "
                  "--answer-column response --out prepared/")
@click.argument("input", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write (must be new or empty).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option("--strict", is_flag=True, help="Fail on the first invalid row instead of skipping it.")
@click.option("--eval-fraction", type=float, default=0.1, show_default=True, help="Share of rows held out for eval.")
@click.option("--eval-size", type=int, help="Exact number of eval rows (instead of --eval-fraction).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/eval split.")
@click.option("--system", help="System message for rows that have none (keep it short).")
@click.option("--prompt-column", help="CSV column (or JSON field) holding the user's message.")
@click.option("--answer-column", help="CSV column (or JSON field) holding the answer to learn.")
@click.option("--system-column", help="CSV column (or JSON field) holding a row's system message (optional).")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the statistics.")
def prepare(input, out, fmt, strict, eval_fraction, eval_size, seed, system, prompt_column, answer_column,
            system_column, overwrite, as_json) -> None:
    from .data import Columns
    from .data import prepare as run_prepare
    from .errors import DatasetError

    columns = None
    if prompt_column or answer_column or system_column:
        if not (prompt_column and answer_column):
            raise DatasetError("name both --prompt-column and --answer-column")
        columns = Columns(prompt_column, answer_column, system_column)
    stats = run_prepare(input, out, format=fmt, strict=strict, eval_fraction=eval_fraction, eval_size=eval_size,
                        seed=seed, system=system, overwrite=overwrite, columns=columns)
    for problem in stats["problems"]:
        _err(f"skipped line {problem['line']}: {problem['reason']}")
    if stats["invalid"] > len(stats["problems"]):
        _err(f"... and {stats['invalid'] - len(stats['problems'])} more invalid rows")
    if as_json:
        _echo_json({**stats, "out": str(Path(out).resolve())})
        return
    pii = ", ".join(f"{k} {v}" for k, v in stats["pii"].items() if v) or "none"
    click.echo(f"{stats['format']}: {stats['records']} rows read, {stats['invalid']} invalid, "
               f"{stats['duplicates']} duplicates removed; personal data scrubbed: {pii}")
    click.echo(f"wrote {stats['train_rows']} train and {stats['eval_rows']} eval rows to {out}")


@finetune.command(help="Train a LoRA adapter for a skill on a prepared data set and register it (inactive).\n\n"
                  "Example: lepton finetune train --skill customer_service --data prepared/ --name cs-v1 --epochs 2")
@click.option("--skill", required=True, help="Skill the adapter is for.")
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Folder written by `prepare`.")
@click.option("--base-model", help="HF model folder or cached hub id; default: the assistant's model.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="JSON training config (a saved train_config.json repeats a run).")
@click.option("--epochs", type=float, help="Passes over the training rows.")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--seed", type=int, help="Seed of LoRA initialisation and data order.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run of this --name.")
@click.option("--fresh", is_flag=True, help="Discard an interrupted run of this --name and start over.")
@click.option("--name", help="Adapter name; default <skill>-<dataset hash prefix>.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the metrics.")
@pass_settings
def train(settings, skill, data, base_model, config_file, epochs, max_steps, seed, resume, fresh, name, as_json) -> None:
    from skills import load_skills

    from .config import load_config
    from .data import dataset_hash, read_prepared
    from .errors import FinetuneError
    from .train import train as run_train

    if resume and fresh:
        raise click.UsageError("--resume and --fresh exclude each other")
    known = load_skills(settings.skills).skills
    if skill not in known and not (settings.db_path.exists()  # a data skill (lepton skills create)?
                                   and state_of(click.get_current_context()).store().data_skill_tenant(skill)):
        raise FinetuneError(f"skill {skill!r} is neither installed nor a data skill "
                            f"(installed: {', '.join(known) or 'none'})")
    config = load_config(config_file, epochs=epochs, max_steps=max_steps, seed=seed)
    if name is None:
        read_prepared(data, "train")  # a clear error before the hash is taken
        name = f"{skill}-{dataset_hash(data)[:8]}"
    result = run_train(settings, skill=skill, data=data, name=name, config=config, base_model=base_model,
                       resume=resume, fresh=fresh, log=_err)
    report = {"name": result.name, "path": str(result.adapter_dir), "skill": skill, **result.metrics}
    if as_json:
        _echo_json(report)
    else:
        click.echo(f"adapter {result.name} registered (inactive) in {result.adapter_dir}: {result.steps} steps, "
                   f"loss {result.metrics['first_loss']:.3f} -> {result.metrics['final_loss']:.3f}, "
                   f"{result.metrics['tokens_per_second']} tokens/s")
        click.echo(f"next: lepton finetune eval {result.name}")


@finetune.command("eval", help="Compare an adapter with its base model on the adapter's held-out rows; "
                  "activate it if it is better.\n\nExample: lepton finetune eval cs-v1 --json")
@click.argument("adapter")
@click.option("--limit", type=int, help="Use only the first N eval rows.")
@click.option("--force", is_flag=True, help="Activate even if the adapter does not beat the base model.")
@click.option("--no-activate", is_flag=True, help="Only measure; never activate.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@pass_settings
def eval_command(settings, adapter, limit, force, no_activate, as_json) -> None:
    from .evaluate import evaluate

    result = evaluate(settings, adapter, limit=limit, activate=not no_activate, force=force, log=_err)
    if as_json:
        _echo_json(result)
        return
    click.echo(f"{result['rows']} eval rows   loss base {result['base_loss']:.4f} adapter {result['adapter_loss']:.4f}"
               f"   perplexity base {result['base_perplexity']:.2f} adapter {result['adapter_perplexity']:.2f}")
    if result["label_task"]:
        click.echo(f"exact match  base {result['base_accuracy']:.1%}  adapter {result['adapter_accuracy']:.1%}")
    verdict = "passed" if result["gate_passed"] else "failed"
    state = "activated" + (" (forced)" if result["forced"] else "") if result["activated"] else "not activated"
    click.echo(f"gate ({result['gate_metric']}) {verdict}: {adapter} {state}")


@finetune.command("list", help="Registered adapters.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_settings
def list_command(settings, as_json) -> None:
    from assistant.adapters import AdapterRegistry

    records = AdapterRegistry(settings.adapters_dir).list()
    if as_json:
        _echo_json({"adapters": [r.to_json() for r in records]})
        return
    if not records:
        click.echo("no adapters registered")
    for r in records:
        ev = r.metrics.get("eval", {})
        figure = (f"acc {ev['adapter_accuracy']:.1%} (base {ev['base_accuracy']:.1%})" if "adapter_accuracy" in ev
                  else f"loss {ev['adapter_loss']:.3f} (base {ev['base_loss']:.3f})" if ev else "not evaluated")
        click.echo(f"{'*' if r.active else ' '} {r.name:<28} {r.skill:<18} {r.base_model:<24} {figure}")


@finetune.command(help="Make an adapter its skill's active adapter (requires a passed eval unless --force).")
@click.argument("name")
@click.option("--force", is_flag=True, help="Activate although the eval gate did not pass.")
@pass_settings
def activate(settings, name, force) -> None:
    from .evaluate import activate_checked

    record = activate_checked(settings, name, force=force)
    click.echo(f"{record.name} is now the active adapter of skill {record.skill}")


@finetune.command(help="Stop using an adapter (its skill answers with the base model).")
@click.argument("name")
@pass_settings
def deactivate(settings, name) -> None:
    from assistant.adapters import AdapterRegistry

    record = AdapterRegistry(settings.adapters_dir).deactivate(name)
    click.echo(f"{record.name} is no longer active for skill {record.skill}")


@finetune.command(help="Merge an adapter into its base model and write a full model folder, verified "
                  "against the adapter.\n\nExample: lepton finetune export cs-v1 --out merged/")
@click.argument("name")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object.")
@pass_settings
def export(settings, name, out, overwrite, as_json) -> None:
    from .export import export_merged

    report = export_merged(settings, name, out, overwrite=overwrite, log=_err)
    if as_json:
        _echo_json(report)
    else:
        click.echo(f"merged model written to {report['out']} (max logit difference to the adapter "
                   f"{report['max_abs_diff_vs_adapter']:.2e}, to the base {report['max_abs_diff_vs_base']:.2f})")


@finetune.command("export-feedback", help="Write a skill's thumbs-up answers and corrections as "
                  "OpenAI-messages JSONL that `prepare` accepts.\n\n"
                  "Example: lepton finetune export-feedback --skill customer_service --out feedback.jsonl")
@click.option("--skill", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tenant", type=TENANT, help="Tenant whose feedback to export; default: the default tenant.")
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the counts.")
@pass_settings
def export_feedback_command(settings, skill, out, tenant, as_json) -> None:
    from .feedback import export_feedback

    report = export_feedback(settings, skill, out, tenant)
    if as_json:
        _echo_json(report)
    else:
        click.echo(f"wrote {report['rows']} rows to {report['out']} ({report['thumbs_up']} thumbs up, "
                   f"{report['corrections']} corrections; {report['skipped_thumbs_down_without_correction']} "
                   "thumbs down without correction skipped)")
