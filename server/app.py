"""The FastAPI application: OpenAI-compatible chat API, model list, conversations, health.

``create_app`` builds the serving objects once (at start-up, or from an
Assistant the caller already has) and keeps them on ``app.state``; the routes
below are thin.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from assistant import Assistant, Settings
from assistant.errors import ConversationNotFound

from .chat import ChatService
from .errors import api_error_from, install_error_handlers
from .protocol import model_list

__all__ = ["create_app"]


def current_tenant(request: Request) -> str:
    """Tenant of the caller. Without API keys configured, everyone is the default tenant."""
    return request.app.state.settings.default_tenant


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        owned = assistant is None
        app.state.assistant = assistant or Assistant.from_settings(settings)
        app.state.chat = ChatService(app.state.assistant)
        app.state.started = int(time.time())
        yield
        if owned:
            app.state.assistant.close()

    app = FastAPI(title="Lepton Assistant", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await request.app.state.chat.handle(request, current_tenant(request))

    @app.get("/v1/models")
    async def models(request: Request):
        assistant: Assistant = request.app.state.assistant
        entries = [("assistant", "Routes each message to the right skill automatically.")]
        entries += [(name, skill.description) for name, skill in assistant.skills.items()]
        return model_list(entries, request.app.state.started)

    @app.get("/v1/conversations/{conversation_id}")
    async def conversation(request: Request, conversation_id: str):
        assistant: Assistant = request.app.state.assistant
        try:
            messages = assistant.history(current_tenant(request), conversation_id)
        except ConversationNotFound as exc:
            raise api_error_from(exc) from None
        return {"id": conversation_id, "object": "conversation", "messages": messages}

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    return app
