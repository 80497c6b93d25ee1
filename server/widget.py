"""The embeddable chat widget: its script, the demo page, its config and feedback
routes, and the CORS layer that lets pages on allowed origins call the API.

CORS here is deliberately narrow: no wildcard, no credentials (the widget uses
no cookies), and only for requests that carry a widget key. A preflight carries
no key, so it is answered for origins that some active key allows; the real
request is then checked against its own key in ``server.keys.resolve_caller``.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant import AUTO_MODEL, Assistant
from assistant.errors import ConversationNotFound
from assistant.guards import clean_message

from .chat import read_body
from .errors import ApiError, api_error_from, validation_message
from .keys import Caller, caller, resolve_caller, widget_key_of
from .protocol import FeedbackRequest, json_body

__all__ = ["router", "WidgetCors", "CONFIG_PATH"]

STATIC = Path(__file__).parent / "static"
CONFIG_PATH = "/v1/widget/config"
_DEMO_KEY_PLACEHOLDER = "__LEPTON_DEMO_KEY__"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def demo_page(request: Request) -> HTMLResponse:
    """A page with the widget embedded, on the default tenant's demo key."""
    settings = request.app.state.settings
    key = request.app.state.widget_keys.demo(settings.default_tenant)
    page = (STATIC / "demo.html").read_text(encoding="utf-8")
    page = page.replace(_DEMO_KEY_PLACEHOLDER, html.escape(key.key, quote=True))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> Response:
    return Response(
        (STATIC / "widget.js").read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "public, max-age=300",
            # Lets pages that require CORP on sub-resources (COEP) load it.
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@router.get(CONFIG_PATH)
async def widget_config(request: Request, key: str | None = None) -> dict:
    """What the widget checks when it opens: is this key valid on this origin, and
    which models may it use. The key may come as ``?key=`` so that this first call
    is a simple request without a preflight, and a refused origin can still read why."""
    who = resolve_caller(request, widget_key_of(request.headers) or key)
    if who.key is None:
        raise ApiError(401, "A widget key is required (?key=pk_...).", param="key", code="invalid_api_key")
    assistant: Assistant = request.app.state.assistant
    models = [m for m in assistant.model_names(who.tenant_id) if who.key.allows_skill(m)]
    return {"object": "widget.config", "models": models}


@router.post("/v1/feedback", openapi_extra=json_body(FeedbackRequest))
async def feedback(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
    """A thumbs up or down (with an optional correction) on one assistant message."""
    settings = request.app.state.settings
    body = await read_body(request, settings.max_request_bytes)
    try:
        fb = FeedbackRequest.model_validate_json(body)
    except ValidationError as exc:
        message, param = validation_message(exc)
        raise ApiError(400, message, param=param) from None
    # Masked like a chat message: corrections become training data (export-feedback).
    correction = clean_message(fb.correction or "", settings.masks_contacts(who.tenant_id))[0] or None
    if correction is not None and len(correction) > settings.feedback_max_chars:
        raise ApiError(400, f"correction is {len(correction)} characters; the limit is {settings.feedback_max_chars}",
                       param="correction")
    assistant: Assistant = request.app.state.assistant
    try:
        messages = assistant.history(who.tenant_id, fb.conversation_id, who.owner())
    except ConversationNotFound as exc:
        raise api_error_from(exc) from None
    if fb.message_index >= len(messages) or messages[fb.message_index]["role"] != "assistant":
        raise ApiError(400, f"message_index {fb.message_index} is not an assistant message of this conversation "
                            f"(it has {len(messages)} messages)", param="message_index")
    row_id = assistant.store.add_feedback(who.tenant_id, fb.conversation_id, fb.message_index, fb.rating, correction)
    return JSONResponse({"object": "feedback", "id": row_id, "conversation_id": fb.conversation_id,
                         "message_index": fb.message_index, "rating": fb.rating})


class WidgetCors:
    """Pure ASGI middleware (it must not buffer streamed answers): answers CORS
    preflights under /v1/ and adds CORS headers to widget-keyed responses."""

    ALLOW_METHODS = "GET, POST, OPTIONS"
    ALLOW_HEADERS = "Authorization, Content-Type, X-Lepton-Key, X-Conversation-Id, X-Lepton-Conversation-Token"
    EXPOSE_HEADERS = "Retry-After, X-Conversation-Id"

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, origin)(scope, receive, send)
            return
        if widget_key_of(headers) is None and scope["path"] != CONFIG_PATH:
            await self.app(scope, receive, send)  # keyless: no CORS, as before keys existed
            return

        # Echoing the Origin is safe: a refused origin only ever receives the refusal,
        # and it should be able to read it so the widget can say what is wrong.
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers["Access-Control-Allow-Origin"] = origin
                response_headers["Access-Control-Expose-Headers"] = self.EXPOSE_HEADERS
                response_headers.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _preflight(self, scope: Scope, origin: str) -> Response:
        keys = scope["app"].state.widget_keys
        if not keys.origin_allowed_anywhere(origin):
            error = ApiError(403, f"No widget key allows the origin {origin}.", code="origin_not_allowed")
            return JSONResponse(error.body(), status_code=403, headers={"Vary": "Origin"})
        return Response(status_code=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": self.ALLOW_METHODS,
            "Access-Control-Allow-Headers": self.ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        })
