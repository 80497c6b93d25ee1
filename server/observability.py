"""What an operator watches: Prometheus metrics, request ids, the access log, JSON logs.

- ``/metrics`` (Prometheus text format, the official ``prometheus_client``): HTTP
  requests, latency and errors per route; turns, latency and tokens per skill;
  routing decisions, safety triggers, and whether the model backend answers.
  Each app has its own registry, so several apps in one process never mix counts.
  Under ``lepton serve --workers N`` (``PROMETHEUS_MULTIPROC_DIR`` set), prometheus_client's
  multi-process mode sums every worker's counts, so any worker answers for all of them.
- ``X-Request-Id`` on every response: the client's own (letters, digits, ``.-_``,
  up to 64) or a new one. It is in the access log line and in every log record
  written while the request runs (``request_id``), so one request can be followed
  through the logs.
- The access log (logger ``lepton.access``): one line per request with method,
  route, status, duration, bytes sent, client and request id. The URL's query is
  left out: it may carry a widget key or a tenant.
- ``JsonFormatter``: one JSON object per log line with an ISO 8601 UTC timestamp;
  ``lepton serve`` uses it unless ``LEPTON_LOG_FORMAT=text``.

The middleware is pure ASGI: streamed answers pass through unbuffered, and a
request's duration runs until its last byte is sent.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import os
import re
import time
import uuid
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JsonFormatter", "Metrics", "RequestContext", "configure_logging", "request_id"]

access_log = logging.getLogger("lepton.access")

#: Where the workers of one `lepton serve --workers N` keep their metrics (prometheus_client reads it).
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_REQUEST_ID = contextvars.ContextVar("lepton_request_id", default=None)
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Request latency buckets (seconds): a cached answer in milliseconds, a long generation in tens of seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def request_id() -> str | None:
    """The id of the request this code runs for, if any (also inside its turn thread)."""
    return _REQUEST_ID.get()


def _stamp_records() -> None:
    """Every log record gets ``request_id`` when it is made, on the thread that makes it
    (handlers may format it later, elsewhere). Installed once per process."""
    make = logging.getLogRecordFactory()
    if getattr(make, "lepton_request_id", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.request_id = _REQUEST_ID.get()
        return record

    factory.lepton_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_stamp_records()


class Metrics:
    """The app's Prometheus metrics; ``observe_turn`` is an Assistant turn observer."""

    def __init__(self, backend_up: Callable[[], bool] | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lepton_http_requests", "HTTP requests answered.", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("lepton_http_request_duration_seconds", "Time to the last byte of the response.",
                                 ["route", "method"], buckets=_BUCKETS, registry=r)
        self.errors = Counter("lepton_http_errors", "Responses with status 4xx or 5xx, by class.",
                              ["route", "class"], registry=r)
        self.turns = Counter("lepton_turns", "Chat turns completed, by the skill that answered.", ["skill"],
                             registry=r)
        self.turn_latency = Histogram("lepton_turn_duration_seconds", "Turn time from request to stored answer.",
                                      ["skill"], buckets=_BUCKETS, registry=r)
        self.tokens = Counter("lepton_tokens", "Tokens the model read (prompt) and wrote (completion).",
                              ["skill", "kind"], registry=r)
        self.routing = Counter("lepton_routing_decisions", "Turns routed automatically, by the skill chosen.",
                               ["skill"], registry=r)
        self.safety = Counter("lepton_safety_triggers", "Turns answered by the safety guard's fixed reply.",
                              ["kind"], registry=r)
        # Checked when scraped; across workers the latest check is the value.
        self.backend_up = Gauge("lepton_backend_up", "1 when the model backend answers a health check, else 0.",
                                registry=r, multiprocess_mode="mostrecent")
        self._backend_check = backend_up

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status >= 400:
            self.errors.labels(route, f"{status // 100}xx").inc()

    def observe_turn(self, result: Any) -> None:  # assistant.TurnResult
        skill = result.skill
        self.turns.labels(skill).inc()
        marks = result.marks
        if "received" in marks and "recorded" in marks:
            self.turn_latency.labels(skill).observe(max(0.0, marks["recorded"] - marks["received"]))
        for kind in ("prompt", "completion"):
            tokens = result.usage.get(f"{kind}_tokens", 0)
            if tokens:
                self.tokens.labels(skill, kind).inc(tokens)
        if result.route_scores:
            self.routing.labels(skill).inc()
        safety = result.lepton.get("safety")
        if safety:
            self.safety.labels(str(safety)).inc()

    def render(self) -> tuple[bytes, str]:
        if self._backend_check is not None:
            self.backend_up.set(1.0 if self._backend_check() else 0.0)
        if not os.environ.get(MULTIPROCESS_DIR):
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        # Every worker's metrics, from the files they all write (prometheus_client's multi-process mode).
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)
        return generate_latest(everyone), CONTENT_TYPE_LATEST


def _route_of(scope: Scope) -> str:
    """The matched route's template (``/v1/conversations/{conversation_id}``), never the
    raw path: label values must stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # Refused before routing (the admin guard) or no such route.
    return "/admin/*" if scope["path"].startswith("/admin") else "unmatched"


class RequestContext:
    """Request ids, the access log and the HTTP metrics, for every request."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _GOOD_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(rid)
        start = time.perf_counter()
        status, sent = 500, 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = _route_of(scope)
            self.metrics.observe_request(route, scope["method"], status, seconds)
            client = scope.get("client")
            access_log.info("%s %s %s %.1fms %dB", scope["method"], scope["path"], status, seconds * 1000, sent,
                            extra={"route": route, "status": status, "duration_ms": round(seconds * 1000, 1),
                                   "bytes": sent, "client": client[0] if client else None})
            _REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request id,
    the access log's fields, and the exception when there is one."""

    FIELDS = ("route", "status", "duration_ms", "bytes", "client")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            entry["request_id"] = rid
        for name in self.FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _TextWithId(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{text} [request {rid}]" if rid else text


def configure_logging(log_format: str, access: bool, verbose: bool = False) -> None:
    """How ``lepton serve`` logs: every record to stderr, in JSON or as timestamped text;
    the access log at INFO when ``access`` is on (whatever the level of the rest)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_TextWithId("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    access_log.setLevel(logging.INFO if access else logging.WARNING)
