"""``lepton serve``: start the OpenAI-compatible API server, the widget and its demo page."""

from __future__ import annotations

import logging

import click

from assistant.cli_support import pass_settings, with_overrides

__all__ = ["serve"]


@click.command(help="Start the OpenAI-compatible API server.\n\nExamples:\n\n  lepton serve --port 8000\n\n"
               "  lepton serve --backend vllm              (starts and supervises vLLM)\n\n"
               "  lepton serve --vllm-url http://gpu-host:8001  (an external vLLM)")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to bind (default 8000).")
@click.option("--backend", type=click.Choice(["local", "openai", "vllm"]), help="LLM backend.")
@click.option("--model", help="HF model folder or id instead of the embedded model.")
@click.option("--openai-base-url", help="Endpoint for --backend openai.")
@click.option("--vllm-url", help="Attach to this external vLLM instead of starting one (implies --backend vllm); "
              "several comma-separated URLs are replicas.")
@click.option("--workers", type=click.IntRange(min=1), help="API server processes sharing the port and the "
              "database (default 1; more than one needs LEPTON_CHROMA_URL, see docs/deploy.md).")
@pass_settings
def serve(settings, host, port, backend, model, openai_base_url, vllm_url, workers) -> None:
    import uvicorn

    from assistant.core import Assistant

    from .api_keys import AdminToken
    from .observability import configure_logging
    from .app import create_app
    from .serving import uvicorn_config
    from .workers import check_workers, serve_workers

    if vllm_url and backend not in (None, "vllm"):
        raise click.UsageError(f"--vllm-url needs --backend vllm, not --backend {backend}")
    if vllm_url:
        backend = "vllm"
    settings = with_overrides(settings, host=host, port=port, backend=backend, model=model,
                              openai_base_url=openai_base_url, vllm_url=vllm_url)
    workers = workers or 1
    problem = check_workers(settings, workers)
    if problem:
        raise click.UsageError(problem)
    configure_logging(settings.log_format, settings.access_log,
                      verbose=logging.getLogger().isEnabledFor(logging.INFO))
    assistant = Assistant.from_settings(settings, progress=lambda m: click.echo(m, err=True))
    try:
        # A fresh install answers real help-centre questions: the demo articles go into the
        # default tenant's help centre on first start (LEPTON_DEMO_KNOWLEDGE=false skips it), and
        # skills prepare their demo data, e.g. a credit model (LEPTON_DEMO_SKILLS=false skips it).
        assistant.ensure_demo_data(progress=lambda m: click.echo(m, err=True))
        click.echo(f"Lepton Assistant on http://{settings.host}:{settings.port}  (data: {settings.data_dir})", err=True)
        if settings.admin_access == "token":
            token = AdminToken(assistant.store, settings).ensure()
            if token:
                click.echo(f"Admin token for the /admin routes, shown once (keep it; `lepton keys admin-token "
                           f"--rotate` makes a new one): {token}", err=True)
        if workers > 1:
            serve_workers(settings, workers, assistant, progress=lambda m: click.echo(m, err=True))
            return
        app = create_app(settings, assistant, close_assistant=True)
    except BaseException:
        assistant.close()  # a managed vLLM must not outlive a failed start
        raise
    # The app closes the assistant (and stops a managed vLLM) during uvicorn's graceful
    # shutdown, before uvicorn re-raises the SIGTERM/SIGINT it caught.
    try:
        uvicorn.Server(uvicorn_config(app, settings)).run()
    finally:
        assistant.close()  # idempotent; covers a port that could not be bound
