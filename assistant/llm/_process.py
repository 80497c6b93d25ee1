"""A supervised child server: start it, wait for its health URL, restart it with
backoff when it dies, and never leave it behind.

Used for the managed vLLM (:mod:`assistant.llm.vllm`), but knows nothing about
vLLM: it runs a command line and polls a URL.

No orphans, by three means:
- the child runs in its own process group (``start_new_session``), and stopping
  kills the whole group, so vLLM's engine-core workers go with it;
- on Linux the kernel sends the child SIGTERM when the thread that started it
  dies (``PR_SET_PDEATHSIG``), which covers a parent killed with SIGKILL. That is
  why every start happens on a thread that lives as long as the supervisor: the
  caller's thread for the first start, the supervisor thread for restarts;
- ``atexit`` stops it on a normal interpreter exit.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

import httpx

from ..errors import BackendError
from ._cpus import allowed_cpus

__all__ = ["Supervised", "StartupFailed", "die_with_parent"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class StartupFailed(BackendError):
    """The child exited or never became healthy; the message carries its last log lines."""


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when the thread that started it ends (Linux)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _child_setup(niceness: int, idle: bool, cpus: set[int] | None) -> None:  # runs in the child between fork and exec
    if cpus is not None:  # the CPUs the supervisor had when made, whichever this thread keeps to now
        os.sched_setaffinity(0, cpus)
    die_with_parent()
    if niceness:
        os.nice(niceness)
    if idle:  # inherited by every process and thread the child starts
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


class Supervised:
    """One child process behind a health URL.

    ``command()`` is called before every start, so a restart picks up what changed
    meanwhile (e.g. adapters loaded at run time become start-up arguments).
    States: ``stopped`` → ``starting`` → ``ready``; on an unexpected exit
    ``restarting`` (waiting out the backoff, then starting again) until ``stop()``.
    """

    def __init__(
        self,
        name: str,
        command: Callable[[], list[str]],
        health_url: str,
        *,
        env: dict[str, str] | None = None,
        startup_timeout: float = 600.0,
        backoff: tuple[float, float] = (2.0, 60.0),
        log_lines: int = 40,
        on_ready: Callable[[], None] | None = None,
        niceness: int = 0,
        idle: bool = False,
    ):
        self.name = name
        self._command = command
        self.health_url = health_url
        self._env = env
        self.startup_timeout = startup_timeout
        self._backoff_first, self._backoff_max = backoff
        self._log: collections.deque[str] = collections.deque(maxlen=log_lines)
        self._on_ready = on_ready
        #: Added to the child's nice value (lower CPU priority than this process).
        self.niceness = niceness
        #: Run the child in Linux's SCHED_IDLE class: a core only when nothing else wants it
        #: (Settings refuse ``vllm_idle`` where the kernel has no such class).
        self.idle = idle
        #: Every start gets the CPUs this process could use when the supervisor was made,
        #: even after the assistant has moved its own threads off the model's CPUs.
        self.cpus = allowed_cpus()
        self._process: subprocess.Popen | None = None
        self._state = "stopped"
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None
        self.restarts = 0
        self.last_exit: str | None = None

    # -- public ---------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def last_log(self) -> str:
        return "\n".join(self._log)

    def start(self) -> None:
        """Start the child and wait until it is healthy; raise StartupFailed otherwise.
        Then keep it alive (restarting with backoff) until ``stop()``."""
        self._stopping.clear()
        self._launch_and_wait()
        atexit.register(self.stop)
        self._supervisor = threading.Thread(target=self._supervise, name=f"{self.name}-supervisor", daemon=True)
        self._supervisor.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the child and everything it started (SIGTERM to its group, then SIGKILL)."""
        self._stopping.set()
        with self._lock:
            process, self._process = self._process, None
            self._state = "stopped"
        if process is not None:
            _terminate_group(process, timeout)
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=timeout)
        atexit.unregister(self.stop)

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(self.health_url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    # -- internals --------------------------------------------------------------
    def _launch_and_wait(self) -> None:
        command = self._command()
        log.info("starting %s: %s", self.name, " ".join(command))
        self._log.clear()
        with self._lock:
            if self._stopping.is_set():
                raise StartupFailed(f"{self.name} is stopping")
            self._state = "starting"
            try:
                process = subprocess.Popen(
                    command,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    start_new_session=True,
                    preexec_fn=functools.partial(_child_setup, self.niceness, self.idle, self.cpus),
                )
            except OSError as exc:
                self._state = "stopped"
                raise StartupFailed(f"cannot start {self.name} ({command[0]}): {exc}") from exc
            self._process = process
        reader = threading.Thread(target=self._read_output, args=(process,), name=f"{self.name}-log", daemon=True)
        reader.start()
        try:
            self._wait_healthy(process, reader)
        except BaseException:  # Ctrl-C while waiting included: never leave it running
            _terminate_group(process, 10.0)
            self._state = "stopped"
            raise
        if self._on_ready is not None:
            self._on_ready()
        self._state = "ready"
        log.info("%s is ready (pid %s)", self.name, process.pid)

    def _wait_healthy(self, process: subprocess.Popen, reader: threading.Thread) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._stopping.is_set():
                raise StartupFailed(f"{self.name} was stopped while starting")
            code = process.poll()
            if code is not None:
                reader.join(timeout=5)  # its last words are what the user needs
                raise StartupFailed(
                    f"{self.name} exited with status {code} while starting; its last output:\n{self.last_log()}"
                )
            if self.healthy():
                return
            if time.monotonic() > deadline:
                raise StartupFailed(
                    f"{self.name} was not healthy at {self.health_url} after {self.startup_timeout:.0f} s; "
                    f"its last output:\n{self.last_log()}"
                )
            time.sleep(0.5)

    def _read_output(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip()
            self._log.append(line)
            log.debug("%s: %s", self.name, line)

    def _supervise(self) -> None:
        delay = self._backoff_first
        healthy_since = time.monotonic()
        while not self._stopping.wait(0.5):
            process = self._process
            if process is None or process.poll() is None:
                # A child that stayed up a while earns a fresh, short backoff.
                if time.monotonic() - healthy_since > 4 * self._backoff_max:
                    delay = self._backoff_first
                continue
            self.last_exit = f"exited with status {process.returncode}"
            log.error("%s %s; restarting in %.0f s. Last output:\n%s", self.name, self.last_exit, delay,
                      self.last_log())
            _terminate_group(process, 5.0)  # its workers may have outlived it
            self._state = "restarting"
            while not self._stopping.is_set():
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self._backoff_max)
                try:
                    self._launch_and_wait()
                except StartupFailed as exc:
                    log.error("restarting %s failed: %s", self.name, exc)
                    with self._lock:
                        if self._process is not None:
                            _terminate_group(self._process, 5.0)
                    if not self._stopping.is_set():
                        self._state = "restarting"
                    continue
                self.restarts += 1
                healthy_since = time.monotonic()
                break


def _terminate_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the child's process group, wait, then SIGKILL whatever is left."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = process.pid  # the leader is gone; its group id was its pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no worker of its group survived it.
        if not _group_alive(pgid):
            break
        deadline = time.monotonic() + wait
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _group_alive(pgid):
            break


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
