"""How the HTTP server runs the app: uvicorn, with the connection limits uvicorn lacks.

uvicorn closes idle keep-alive connections, but it waits for a request's headers
for ever, so a client that opens connections and sends its headers a byte at a
time (or never) keeps them open, and with no cap on open connections that ends
in the process running out of file descriptors. The HTTP protocol made here
closes a connection whose request headers are not complete
``Settings.header_timeout`` seconds after it opened (or, on a kept-alive
connection, after the request's first bytes), and answers a connection past
``Settings.max_connections`` with a 503 in the OpenAI error shape, Retry-After
included, and closes it.

Kept-alive connections stay open ``Settings.keepalive_timeout`` seconds between
requests: longer than the Retry-After the server sends, so a client that waits
that long and reuses its connection does not race the server closing it.

uvicorn's own ``limit_concurrency`` is not used: it answers plain text, and counts
running requests with connections, so a burst of streams would be refused.

``lepton serve`` and the tests' live servers build their uvicorn config here, so
both run the server the same way.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from assistant import Settings

from .protocol import error_body

__all__ = ["guarded_protocol", "uvicorn_config"]


def _busy_response() -> bytes:
    body = json.dumps(error_body("The server has too many open connections; retry shortly.", "server_error",
                                 None, "too_many_connections")).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def guarded_protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a header-read timeout and a cap on open connections."""
    busy = _busy_response()

    class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _waiting_after: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            # ``connections`` is the server's set of open connections, this one included.
            if len(self.connections) > max_connections:
                transport.write(busy)
                transport.close()
                return
            self._await_headers()

        def _idle(self) -> bool:
            """Not reading or answering a request (a pipelined one included)."""
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            # The first bytes of a request on a kept-alive connection start its clock.
            if self._header_timer is None and self._idle():
                self._await_headers()
            super().data_received(data)

        def _await_headers(self) -> None:
            """Give the request ``header_timeout`` seconds to arrive whole: a request whose
            headers are complete is a new ``cycle``."""
            self._waiting_after = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.cycle is self._waiting_after and self._idle() and not self.transport.is_closing():
                self.transport.close()

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def on_response_complete(self) -> None:
            # Between requests the keep-alive timeout governs, not the header timeout.
            self._cancel_header_timer()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

    return GuardedHTTPProtocol


def uvicorn_config(app, settings: Settings, host: str | None = None, port: int | None = None) -> uvicorn.Config:  # noqa: ANN001
    """The server's uvicorn config: the guarded protocol, and a graceful shutdown that lets
    running requests and streams finish for up to ``Settings.shutdown_grace`` seconds.

    ``proxy_headers=False``: only ``LEPTON_TRUSTED_PROXIES`` decides whose
    X-Forwarded-For is believed (see ``create_app``)."""
    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        http=guarded_protocol(settings.header_timeout, settings.max_connections),
        timeout_keep_alive=settings.keepalive_timeout,
        timeout_graceful_shutdown=settings.shutdown_grace,
        log_level="warning",
        proxy_headers=False,
    )
