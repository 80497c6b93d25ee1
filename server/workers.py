"""``lepton serve --workers N``: N API server processes on one port, sharing state
through the records database.

uvicorn's process supervisor (the one behind ``uvicorn --workers``) binds the port
once and starts N worker processes that accept on it; it restarts a worker that dies
and stops them all on SIGINT/SIGTERM. Each worker builds its own assistant from the
same settings (``worker_app``), so what they must agree on lives outside them:

- records, conversation state and rate-limit buckets in the records database (the
  SQLite file under the data directory, or PostgreSQL: ``LEPTON_DATABASE_URL``);
- the tenants' documents in a Chroma server (``LEPTON_CHROMA_URL``): the embedded
  Chroma is one process's, so more than one worker refuses to start without it;
- the model: with ``--backend vllm`` one vLLM (started here once, or
  ``--vllm-url``); the embedded model is loaded by every worker;
- the metrics in prometheus_client's multi-process folder (``_metrics_folder``).

Before the workers start, this process prepares what a start prepares once (the
demo data, the admin token) and, for a managed vLLM, starts it and keeps it until the
workers have stopped.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from typing import Callable

from assistant import Settings

from .observability import MULTIPROCESS_DIR

__all__ = ["WORKER_SETTINGS", "check_workers", "serve_workers", "worker_app", "WorkerProtocol"]

#: The environment variable through which the workers get the parent's settings.
WORKER_SETTINGS = "LEPTON_WORKER_SETTINGS"


def check_workers(settings: Settings, workers: int) -> str | None:
    """Why ``settings`` cannot run ``workers`` workers (None: they can)."""
    if workers > 1 and not settings.chroma_url:
        return (f"--workers {workers} needs a Chroma server the workers share: set LEPTON_CHROMA_URL "
                "(the embedded Chroma belongs to one process; see docs/deploy.md)")
    return None


def _settings_from_environment() -> Settings:
    return Settings.model_validate_json(os.environ[WORKER_SETTINGS])


def worker_app():  # noqa: ANN201  (a FastAPI app; uvicorn calls this in each worker)
    """One worker's app: the parent's settings, its own assistant (made at start-up)."""
    from .app import create_app

    return create_app(_settings_from_environment(), prepare=False, ready=_announce_ready)


def _announce_ready() -> None:
    # One line per worker once it answers: how an operator (or a load test) knows all N are up.
    print(f"Worker {os.getpid()} ready", file=sys.stderr, flush=True)


def _worker_protocol() -> type:
    from .serving import guarded_protocol

    settings = _settings_from_environment()
    return guarded_protocol(settings.header_timeout, settings.max_connections)


def __getattr__(name: str):  # noqa: ANN202  (uvicorn imports the protocol by name, in the worker)
    if name == "WorkerProtocol":
        return _worker_protocol()
    raise AttributeError(name)


def _metrics_folder() -> str | None:
    """Prepare prometheus_client's multi-process mode for the workers: every worker writes
    its metrics to files in one folder, and whichever answers /metrics reads them all.
    The folder is ``PROMETHEUS_MULTIPROC_DIR`` when the operator set it (emptied of an
    earlier run's files, as prometheus_client requires), else a new one, returned so it is
    removed when the workers stop. Set before the workers start, so they inherit it."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.unlink(stale)
        return None
    made = tempfile.mkdtemp(prefix="lepton-metrics-")
    os.environ[MULTIPROCESS_DIR] = made
    return made


def serve_workers(settings: Settings, workers: int, assistant, progress: Callable[[str], None]) -> None:  # noqa: ANN001
    """Run ``workers`` workers until a signal stops them. ``assistant`` is this process's,
    already prepared; it is kept while they run only if it manages the vLLM they use."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from .serving import uvicorn_config

    server = getattr(assistant.llm, "server", None)
    if server is not None:  # a managed vLLM: every worker attaches to it
        settings = settings.model_copy(update={"vllm_url": assistant.llm.root_url,
                                               "openai_model": assistant.llm.name,
                                               "model": assistant.llm.model_path})
    else:
        assistant.close()  # the workers load their own
    os.environ[WORKER_SETTINGS] = settings.model_dump_json()
    metrics_dir = _metrics_folder()
    base = uvicorn_config(None, settings)
    config = uvicorn.Config(
        "server.workers:worker_app", factory=True, workers=workers, host=base.host, port=base.port,
        http="server.workers:WorkerProtocol", timeout_keep_alive=base.timeout_keep_alive,
        timeout_graceful_shutdown=base.timeout_graceful_shutdown, log_level=base.log_level,
        proxy_headers=base.proxy_headers,
        # A worker answers the supervisor's pings from a thread while it loads its model;
        # one slow to answer on a busy machine is not hung.
        timeout_worker_healthcheck=60)
    progress(f"Starting {workers} workers")
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        if server is not None:
            assistant.close()
