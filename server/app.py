"""The FastAPI application: OpenAI-compatible chat API, model list, conversations,
health, and the chat widget (``server.widget``).

``create_app`` builds the serving objects once (at start-up, or from an
Assistant the caller already has) and keeps them on ``app.state``; the routes
below are thin.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from contextlib import asynccontextmanager
from typing import Callable

from fastapi import Depends, FastAPI, Request, Response
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from assistant import Assistant, Settings
from assistant.errors import ConversationNotFound

from .admin import router as admin_router
from .admin_auth import AdminGuard
from .api_keys import AdminToken, ApiKeys
from .chat import ChatService
from .errors import ApiError, api_error_from, install_error_handlers
from .handoffs import router as handoff_router
from .keys import Caller, WidgetKeys, caller
from .limits import WidgetLimits
from .observability import Metrics, RequestContext
from .protocol import ChatCompletionRequest, json_body, model_list
from .skill_actions import router as skill_actions_router
from .widget import WidgetCors
from .widget import router as widget_router

__all__ = ["create_app", "announce_admin_token"]

log = logging.getLogger("lepton.server")


def announce_admin_token(token: str | None) -> None:
    """Show a just-generated admin token: the only time it can be read."""
    if token:
        log.warning("Generated the admin token for the /admin routes (shown once, it cannot be read again; "
                    "`lepton keys admin-token --rotate` makes a new one): %s", token)


def create_app(settings: Settings, assistant: Assistant | None = None, *, close_assistant: bool = False,
               prepare: bool = True, ready: Callable[[], None] | None = None) -> FastAPI:
    """``close_assistant``: close a given assistant at shutdown (``lepton serve`` hands over
    the one it built, whose managed vLLM must stop before the process exits).
    ``prepare``: let an assistant made here add the demo data (a worker of ``lepton serve
    --workers`` does not: its parent has). ``ready``: called once the app has started."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = assistant is None or close_assistant
        app.state.assistant = assistant or Assistant.from_settings(settings)
        if assistant is None and prepare:  # a fresh install gets a help centre to try the widget on
            app.state.assistant.ensure_demo_data()
        app.state.chat = ChatService(app.state.assistant)
        app.state.widget_keys = WidgetKeys(app.state.assistant.store)
        # In the records database: every worker on it counts against the same buckets.
        app.state.limits = WidgetLimits(settings, store=app.state.assistant.store)
        app.state.api_keys = ApiKeys(app.state.assistant.store, settings)
        app.state.admin_token = AdminToken(app.state.assistant.store, settings)
        if settings.admin_access == "token":
            announce_admin_token(app.state.admin_token.ensure())
        app.state.started = int(time.time())
        # Everything loaded so far (model, router, encoders, libraries) lives as long
        # as the server; frozen, the collector never scans it again. Unfrozen, each
        # full collection was long (longer under load) and held up every turn in
        # flight (measured: benchmarks/README.md, Measurement records by commit).
        app.state.assistant.turn_observers.append(app.state.metrics.observe_turn)
        gc.freeze()
        if ready is not None:
            ready()
        yield
        app.state.assistant.turn_observers.remove(app.state.metrics.observe_turn)
        app.state.chat.close()
        if owned:
            app.state.assistant.close()

    app = FastAPI(title="Lepton Assistant", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings

    def backend_up() -> bool:
        running = getattr(app.state, "assistant", None)
        return running is not None and running.llm.health().ok

    app.state.metrics = Metrics(backend_up)
    install_error_handlers(app)
    app.add_middleware(WidgetCors)
    app.add_middleware(AdminGuard)  # outside the routes: authenticates /admin before any body is read
    # Outside everything but the proxy headers: every response gets its request id and
    # is counted and logged, refusals by the admin guard included.
    app.add_middleware(RequestContext, metrics=app.state.metrics)
    if settings.trusted_proxies:
        # Outermost: behind these reverse proxies the client address (per-IP limits,
        # the admin routes' loopback rule) is taken from X-Forwarded-For.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.include_router(widget_router)
    app.include_router(admin_router)
    app.include_router(handoff_router)
    app.include_router(skill_actions_router)

    # Every route that touches tenant data resolves its caller through `caller`.
    @app.post("/v1/chat/completions", openapi_extra=json_body(ChatCompletionRequest))
    async def chat_completions(request: Request, who: Caller = Depends(caller)):
        return await request.app.state.chat.handle(request, who)

    def model_entries(request: Request, who: Caller) -> list[tuple[str, str]]:
        assistant: Assistant = request.app.state.assistant
        entries = [("assistant", "Routes each message to the right skill automatically.")]
        entries += [(name, skill.description) for name, skill in assistant.skills_of(who.tenant_id).items()]
        return [e for e in entries if who.allows_skill(e[0])]  # a key sees the models it may use

    @app.get("/v1/models")
    async def models(request: Request, who: Caller = Depends(caller)):
        return model_list(model_entries(request, who), request.app.state.started)

    @app.get("/v1/models/{model_id}")
    async def model(request: Request, model_id: str, who: Caller = Depends(caller)):
        entries = model_entries(request, who)
        found = [e for e in entries if e[0] == model_id]
        if not found:
            raise ApiError(404, f"model {model_id!r} does not exist; available: {', '.join(e[0] for e in entries)}",
                           param="model", code="model_not_found")
        return model_list(found, request.app.state.started)["data"][0]

    @app.get("/v1/conversations/{conversation_id}")
    async def conversation(request: Request, conversation_id: str, who: Caller = Depends(caller)):
        assistant: Assistant = request.app.state.assistant
        try:
            messages = assistant.history(who.tenant_id, conversation_id, who.owner())
        except ConversationNotFound as exc:
            raise api_error_from(exc) from None
        return {
            "id": conversation_id,
            "object": "conversation",
            "messages": messages,
            "handoff": assistant.handoff_state(who.tenant_id, conversation_id),
        }

    @app.get("/healthz")
    async def healthz():
        """Liveness: the process answers. Says nothing about the model."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request):
        """Readiness: the LLM backend can answer now and the database answers (a managed
        vLLM that is restarting or an unreachable endpoint is not ready: 503 with
        Retry-After). What is wrong goes to the log; the response names no path or URL."""
        assistant: Assistant = request.app.state.assistant
        health = await asyncio.to_thread(assistant.llm.health)
        store_ok = await asyncio.to_thread(assistant.store.ping)
        if not health.ok or not store_ok:
            log.warning("not ready: backend %s; database %s", health.detail, "ok" if store_ok else "unreachable")
            failing = "model backend" if not health.ok else "database"
            raise ApiError(503, f"The {failing} is not ready.", "server_error",
                           code="backend_unavailable" if not health.ok else "store_unavailable",
                           headers={"Retry-After": "5"})
        return {"status": "ready", "backend": settings.backend, "database": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics():
        """Prometheus metrics (server.observability)."""
        body, content_type = await asyncio.to_thread(app.state.metrics.render)
        return Response(body, media_type=content_type)

    return app
