"""The ``lepton`` command line.

    lepton serve                 start the API server and demo page (--backend vllm: through vLLM)
    lepton chat                  chat in the terminal (embedded, or --url to a server)
    lepton skills list           installed skills and plugins that failed to load
    lepton models prepare        convert the embedded model once, ahead of first use
    lepton eval routing FILE     measure the router on labelled messages
    lepton ingest PATH...        add documents to a knowledge collection
    lepton eval retrieval FILE   measure retrieval on WixQA-format questions
    lepton keys create-widget    make a public widget key and print the snippet
    lepton finetune ...          prepare data, train/evaluate/export LoRA adapters

Every command honours --data-dir / LEPTON_DATA_DIR. A user error prints one
line starting with "Error:" and exits non-zero; it never shows a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from .errors import ConfigError, LeptonError
from .settings import Settings

__all__ = ["cli", "main"]


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj


def _overrides(**values) -> dict:
    return {k: v for k, v in values.items() if v is not None}


@click.group(help="Lepton Assistant: a self-hostable assistant with plugin skills.\n\nSet LEPTON_DATA_DIR (or --data-dir) to choose where its state lives.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory (LEPTON_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True, help="Log what the assistant does.")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        ctx.obj = Settings(**_overrides(data_dir=data_dir))
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc)) from None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"invalid setting {where}: {err['msg']}" if where else f"invalid settings: {err['msg']}"


def _with(ctx: click.Context, **overrides) -> Settings:
    """The root settings with command-line overrides applied (validated again)."""
    values = _overrides(**overrides)
    if not values:
        return _settings(ctx)
    try:
        return Settings(**{**_settings(ctx).model_dump(), **values})
    except ValidationError as exc:
        raise ConfigError(_first_problem(exc)) from None


# -- serve ----------------------------------------------------------------------


@cli.command(help="Start the OpenAI-compatible API server.\n\nExamples:\n\n  lepton serve --port 8000\n\n"
             "  lepton serve --backend vllm              (starts and supervises vLLM)\n\n"
             "  lepton serve --vllm-url http://gpu-host:8001  (an external vLLM)")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default 8000).")
@click.option("--backend", type=click.Choice(["local", "openai", "vllm"]), help="LLM backend.")
@click.option("--model", help="HF model folder or id instead of the embedded model.")
@click.option("--openai-base-url", help="Endpoint for --backend openai.")
@click.option("--vllm-url", help="Attach to this external vLLM instead of starting one (implies --backend vllm).")
@click.pass_context
def serve(ctx, host, port, backend, model, openai_base_url, vllm_url) -> None:
    import uvicorn

    from assistant.core import Assistant
    from server import create_app

    if vllm_url and backend not in (None, "vllm"):
        raise click.UsageError(f"--vllm-url needs --backend vllm, not --backend {backend}")
    if vllm_url:
        backend = "vllm"
    settings = _with(ctx, host=host, port=port, backend=backend, model=model, openai_base_url=openai_base_url,
                     vllm_url=vllm_url)
    assistant = Assistant.from_settings(settings, progress=lambda m: click.echo(m, err=True))
    try:
        # A fresh install answers real help-centre questions: the demo articles go into the
        # default tenant's help centre on first start (LEPTON_DEMO_KNOWLEDGE=false skips it).
        assistant.ensure_demo_knowledge(progress=lambda m: click.echo(m, err=True))
        click.echo(f"Lepton Assistant on http://{settings.host}:{settings.port}  (data: {settings.data_dir})", err=True)
        app = create_app(settings, assistant, close_assistant=True)
    except BaseException:
        assistant.close()  # a managed vLLM must not outlive a failed start
        raise
    # The app closes the assistant (and stops a managed vLLM) during uvicorn's graceful
    # shutdown, before uvicorn re-raises the SIGTERM/SIGINT it caught.
    try:
        # proxy_headers=False: only LEPTON_TRUSTED_PROXIES decides whose X-Forwarded-For is believed.
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", proxy_headers=False)
    finally:
        assistant.close()  # idempotent; covers a port that could not be bound


# -- chat -----------------------------------------------------------------------


@cli.command(help="Chat in the terminal. Type /quit or Ctrl-D to leave.\n\n"
             "Examples:\n\n  lepton chat\n\n  lepton chat --url http://127.0.0.1:8000/v1 --skill medical_triage")
@click.option("--url", help="Base URL of a running Lepton (…/v1); default: the embedded assistant.")
@click.option("--api-key", default="not-needed", show_default=True, help="API key for --url.")
@click.option("--skill", "model", default="assistant", show_default=True, help="Skill to talk to, or 'assistant'.")
@click.option("--max-tokens", type=click.IntRange(1, 8192), help="Longest answer, in tokens.")
@click.pass_context
def chat(ctx, url, api_key, model, max_tokens) -> None:
    from .terminal_chat import EmbeddedSession, RemoteSession, run_chat

    settings = _settings(ctx)
    session = (
        RemoteSession(url, api_key, model, max_tokens)
        if url
        else EmbeddedSession(settings, model, max_tokens, progress=lambda m: click.echo(m, err=True))
    )
    run_chat(session, interactive=sys.stdin.isatty())


# -- skills ---------------------------------------------------------------------


@cli.group(help="Installed skills.")
def skills() -> None:
    pass


@skills.command("list", help="List installed skills; plugins that failed to load are reported, not fatal.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def skills_list(ctx, as_json: bool) -> None:
    from skills import load_skills

    loaded = load_skills(_settings(ctx).skills)
    if as_json:
        click.echo(json.dumps({
            "skills": {n: {"description": s.description, "examples": len(s.examples), "adapter": s.adapter}
                       for n, s in loaded.skills.items()},
            "failed": loaded.failures,
        }))
        return
    for name, skill in loaded.skills.items():
        click.echo(f"{name:<20} {skill.description}")
    for name, reason in loaded.failures.items():
        click.echo(f"warning: skill plugin {name!r} was skipped: {reason}", err=True)


# -- models ---------------------------------------------------------------------


@cli.group(help="Model files.")
def models() -> None:
    pass


@models.command("prepare", help="Convert the embedded model into the model cache (done implicitly on first use).")
@click.pass_context
def models_prepare(ctx) -> None:
    from .models import resolve_model

    path = resolve_model(_settings(ctx), progress=lambda m: click.echo(m, err=True))
    click.echo(path)


# -- eval -----------------------------------------------------------------------


@cli.group("eval", help="Measure components on labelled data.")
def eval_group() -> None:
    pass


@eval_group.command("routing", help="Route labelled messages and report accuracy.\n\n"
                    'FILE is JSONL: {"text": ..., "skill": <skill name or out_of_scope>} per line.\n\n'
                    "Example: lepton eval routing routing_eval.jsonl --json")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: one JSON object with the figures.")
@click.option("--threshold", type=float, help="Override the router threshold.")
@click.pass_context
def eval_routing(ctx, file: Path, as_json: bool, threshold: float | None) -> None:
    from .routing_eval import evaluate_routing, format_report, read_labelled

    settings = _with(ctx, router_threshold=threshold)
    rows = read_labelled(file)
    report = evaluate_routing(settings, rows)
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(format_report(report))


def _attach_plugins() -> None:
    """Command groups that live with the package they manage."""
    from finetune.cli import finetune
    from retrieval.cli import ingest, retrieval_eval
    from server.cli_keys import keys_group
    from skills.customer_service.cli import eval_intents, train_intents_command

    cli.add_command(keys_group)
    cli.add_command(finetune)
    cli.add_command(ingest)
    eval_group.add_command(retrieval_eval)
    eval_group.add_command(eval_intents)
    skills.add_command(train_intents_command)


_attach_plugins()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit code 1 (2 for usage)."""
    try:
        cli.main(args=argv, prog_name="lepton", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (LeptonError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
