"""Several replicas of one model (vLLM servers, or any OpenAI-compatible endpoints)
as one backend.

Each request goes to the least busy replica that is up (fewest requests in flight;
ties go round the list). A replica that cannot be reached, or fails with a server
error, is marked down and the request is tried on the next one, as long as nothing
was sent to the client yet; a replica that answers "busy" (429/503) is skipped for
that request only. A thread checks every replica's health every
``check_interval`` seconds: a down replica comes back once it is healthy and has
been given every adapter loaded meanwhile, so an adapter activated while a
replica was away reaches it too. With no replica up, a request fails at once with
:class:`BackendError` (the server answers 503 with Retry-After).

Adapters are loaded into every replica that is up (``load_adapter``); a replica
that is down gets them when it comes back.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

from ..errors import BackendBusy, BackendError
from .base import ChatModel, Completion, Generation, GenerationParams, Health, Message

__all__ = ["ReplicaPool"]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Replica:
    model: ChatModel
    up: bool = True
    reason: str = ""
    in_flight: int = 0


class _Lease:
    """One request's hold on a replica; released once, however the request ends."""

    def __init__(self, pool: "ReplicaPool", replica: _Replica):
        self._pool, self.replica, self._held = pool, replica, True

    def release(self) -> None:
        with self._pool._lock:
            if self._held:
                self._held = False
                self.replica.in_flight -= 1


class ReplicaPool:
    """``replicas`` (each a ChatModel for one server) behind the ChatModel protocol."""

    def __init__(self, replicas: Sequence[ChatModel], *, check_interval: float = 5.0):
        if not replicas:
            raise ValueError("a replica pool needs at least one replica")
        self._replicas = [_Replica(model) for model in replicas]
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._adapters: dict[str, str] = {}
        self.name = self._replicas[0].model.name
        #: The local model folder the replicas serve, when known (adapters are checked against it).
        self.model_path = getattr(replicas[0], "model_path", None)
        self._stop = threading.Event()
        self.check()
        self._checker = threading.Thread(target=self._check_loop, args=(check_interval,),
                                         name="lepton-replica-health", daemon=True)
        self._checker.start()

    # -- choosing and failing over ----------------------------------------------------
    def _candidates(self) -> list[_Replica]:
        """Replicas that are up, least busy first (ties in turn)."""
        with self._lock:
            shift = next(self._turn) % len(self._replicas)
            rotated = self._replicas[shift:] + self._replicas[:shift]
            return sorted((r for r in rotated if r.up), key=lambda r: r.in_flight)

    def _mark_down(self, replica: _Replica, reason: str) -> None:
        with self._lock:
            if replica.up:
                log.warning("replica %s is down: %s", replica.model.name, reason)
            replica.up, replica.reason = False, reason

    def _attempt(self, call: Callable[[ChatModel], T]) -> tuple[T, _Lease]:
        """``call`` on the best replica, then on the next ones while they fail."""
        failures, only_busy = [], True
        for replica in self._candidates():
            with self._lock:
                replica.in_flight += 1
            lease = _Lease(self, replica)
            try:
                return call(replica.model), lease
            except BackendBusy as exc:
                lease.release()
                failures.append(f"{replica.model.name}: {exc}")
            except BackendError as exc:
                lease.release()
                self._mark_down(replica, str(exc))
                failures.append(f"{replica.model.name}: {exc}")
                only_busy = False
            except BaseException:
                lease.release()
                raise
        if failures and only_busy:
            raise BackendBusy("every replica is busy: " + "; ".join(failures))
        with self._lock:
            down = [f"{r.model.name}: {r.reason}" for r in self._replicas if not r.up]
        raise BackendError("no replica can answer: " + "; ".join(failures or down))

    # -- requests ---------------------------------------------------------------------
    def complete(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Completion:
        completion, lease = self._attempt(lambda model: model.complete(messages, params, adapter=adapter))
        lease.release()
        return completion

    def stream(self, messages: list[Message], params: GenerationParams, *, adapter: str | None = None) -> Generation:
        # Opening a stream sends the request, so a replica that cannot take it fails here
        # and the next one is tried; once text flows, an error ends the stream.
        inner, lease = self._attempt(lambda model: model.stream(messages, params, adapter=adapter))
        holder: dict[str, Generation] = {}

        def chunks() -> Iterator[str]:
            out = holder["g"]
            try:
                for piece in inner:
                    yield piece
            except BackendError as exc:
                self._mark_down(lease.replica, str(exc))
                raise
            finally:
                out.prompt_tokens, out.completion_tokens = inner.prompt_tokens, inner.completion_tokens
                out.finish_reason = inner.finish_reason
                lease.release()

        def close() -> None:
            inner.close()
            lease.release()  # also when the stream was never read

        generation = Generation(chunks(), on_close=close)
        holder["g"] = generation
        return generation

    # -- adapters ---------------------------------------------------------------------
    def load_adapter(self, name: str, path: str) -> None:
        path = str(Path(path).resolve())
        loaded = 0
        for replica in self._replicas:
            if not replica.up:
                continue
            try:
                replica.model.load_adapter(name, path)
                loaded += 1
            except BackendError as exc:
                self._mark_down(replica, str(exc))
        self._adapters[name] = path
        if not loaded:
            raise BackendError(f"no replica is up to load adapter {name!r}; it is loaded when one comes back")

    def ensure_adapter(self, name: str, path: str) -> None:
        if self._adapters.get(name) == str(Path(path).resolve()):
            return
        self.load_adapter(name, path)

    def adapters(self) -> list[str]:
        return sorted(self._adapters)

    # -- health -----------------------------------------------------------------------
    def check(self) -> None:
        """Probe every replica once: a failing one goes down; a healthy one that was down
        gets the adapters loaded meanwhile, then comes back."""
        for replica in self._replicas:
            health = replica.model.health()
            if not health.ok:
                self._mark_down(replica, health.detail)
                continue
            if replica.up:
                continue
            try:
                # Every known adapter, again: a replica that restarted lost its run-time ones.
                for name, path in sorted(self._adapters.items()):
                    replica.model.load_adapter(name, path)
            except BackendError as exc:
                self._mark_down(replica, str(exc))
                continue
            with self._lock:
                replica.up, replica.reason = True, ""
            log.warning("replica %s is back", replica.model.name)

    def _check_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.check()
            except Exception:  # a bug here must not stop the checks
                log.exception("replica health check failed")

    def health(self) -> Health:
        with self._lock:
            up = [r for r in self._replicas if r.up]
            down = [f"{r.model.name}: {r.reason}" for r in self._replicas if not r.up]
        detail = f"{len(up)} of {len(self._replicas)} replicas up" + (f" (down: {'; '.join(down)})" if down else "")
        if not up:
            return Health(False, detail)
        return Health(True, detail)

    def replica_states(self) -> list[dict]:
        """Each replica's name, whether it is up, why not, and its requests in flight."""
        with self._lock:
            return [{"name": r.model.name, "up": r.up, "reason": r.reason, "in_flight": r.in_flight}
                    for r in self._replicas]

    def close(self) -> None:
        self._stop.set()
        self._checker.join(timeout=10)
        for replica in self._replicas:
            replica.model.close()
