"""Rate limits: token buckets per client IP and per conversation for public widget
keys, per key and per conversation for secret API keys, and per client IP and per
conversation for keyless callers.

A widget key is readable by anyone who views the customer's page, so the key
alone proves nothing; these limits (with the Origin and skill checks in
``server.keys``) are what stop one visitor or script from using up the model. The
per-key limit keeps one integrator's runaway client from starving the others.
The app keeps its buckets in the records database (``Store.take_token``), so API
workers on one SQLite file or one PostgreSQL database share them: N workers do not
make N times the allowance, and a restart does not refill them. A bucket is a row
taken with one atomic statement; workers on several machines compare their wall
clocks, which NTP keeps close enough for per-minute limits. Without a store (a
limiter made on its own) the buckets live in the process.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

from assistant import Settings
from assistant.store import Store

from .errors import ApiError

__all__ = ["RateLimiter", "WidgetLimits"]


class RateLimiter:
    """``per_minute`` requests a minute per key, in bursts of up to ``per_minute``.

    ``check(key)`` takes a token or raises a 429 ``ApiError`` whose Retry-After is
    the whole number of seconds until a token is back. Keys are kept in least-
    recently-used order and the oldest are forgotten past ``max_keys``, so a flood
    of distinct keys cannot grow memory without bound (a forgotten key starts
    again with a full bucket, which errs on the side of the visitor).
    """

    def __init__(self, per_minute: int, what: str, *, max_keys: int = 50_000,
                 clock: Callable[[], float] | None = None, store: Store | None = None, name: str = ""):
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60.0
        self.what = what  # how the 429 message names the limited thing
        self.max_keys = max_keys
        # Buckets in a shared database are timed by the wall clock, which every worker reads
        # alike; in-process buckets by the monotonic clock, which never steps.
        self._clock = clock or (time.time if store is not None else time.monotonic)
        self._store = store
        self.name = name  # the limit's name in the database
        self._pruned_at = self._clock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def wait_time(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if there was one, else seconds until there is."""
        now = self._clock()
        if self._store is not None:
            return self._take_shared(key, now)
        with self._lock:
            tokens, at = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.per_second)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.per_second
            self._buckets[key] = (tokens, now)  # re-inserted: dict order is recency order
            while len(self._buckets) > self.max_keys:
                del self._buckets[next(iter(self._buckets))]
        return wait

    def _take_shared(self, key: str, now: float) -> float:
        wait = self._store.take_token(self.name, key, self.capacity, self.per_second, now)
        # A bucket untouched for the time it takes to fill is full: the same as none. Each
        # worker clears those of its limits about once a refill time, so the table holds
        # about the keys seen in the last minute.
        refill = self.capacity / self.per_second
        if now - self._pruned_at > refill:
            self._pruned_at = now
            self._store.forget_buckets(self.name, now - refill)
        return wait

    def check(self, key: str) -> None:
        wait = self.wait_time(key)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"Too many requests {self.what}: the limit is {int(self.capacity)} per minute. "
                f"Retry in {seconds} s.",
                # The type OpenAI's own 429s carry; clients look at the status and code.
                "requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(seconds)},
            )


class WidgetLimits:
    """The limits applied to requests, built from Settings once per app: per client IP and
    per conversation for widget keys, per key and per conversation for API keys, per client
    IP and per conversation for keyless callers; in ``store`` when one is given."""

    def __init__(self, settings: Settings, clock: Callable[[], float] | None = None, store: Store | None = None):
        def limit(per_minute: int, what: str, name: str) -> RateLimiter:
            return RateLimiter(per_minute, what, clock=clock, store=store, name=name)

        self.per_ip = limit(settings.widget_ip_rate_per_minute, "from this address", "widget_ip")
        self.per_conversation = limit(settings.widget_rate_per_minute, "in this conversation", "widget_conversation")
        self.per_key = limit(settings.key_rate_per_minute, "with this API key", "key")
        # API keys and keyless callers: a conversation looping on the model, a keyless flood.
        self.per_session = limit(settings.conversation_rate_per_minute, "in this conversation", "conversation")
        self.keyless_ip = limit(settings.ip_rate_per_minute, "from this address", "keyless_ip")
