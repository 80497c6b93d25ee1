"""Admin routes for people who take over conversations (human handoff).

- ``GET  /admin/handoffs?state=pending|released|all``: conversations handed off
- ``GET  /admin/conversations/{id}``: its transcript and handoff state
- ``POST /admin/conversations/{id}/messages`` ``{"content": ..., "agent": "Sam"}``:
  answer the user (only while the handoff is pending; 409 otherwise)
- ``POST /admin/conversations/{id}/release``: give it back to the assistant

Same access rule and ``?tenant=`` as the other admin routes. The user sees agent
messages in ``GET /v1/conversations/{id}`` (the widget polls it while a handoff
is pending); they are stored in the conversation like any assistant message,
with an ``agent`` field naming who wrote it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .admin_auth import admin_tenant
from .chat import read_body
from .errors import ApiError, api_error_from, validation_message
from .protocol import json_body

__all__ = ["router"]

router = APIRouter(prefix="/admin")


class AgentMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    content: str = Field(min_length=1, max_length=20_000)
    agent: str | None = Field(default=None, min_length=1, max_length=100)


async def _call(fn, *args):  # noqa: ANN001, ANN202 - any Assistant method
    """Run a blocking Assistant method off the event loop; its errors become API errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except Exception as exc:
        raise api_error_from(exc) from None


@router.get("/handoffs")
async def list_handoffs(
    request: Request,
    state: str = Query(default="pending", pattern="^(pending|released|all)$"),
    tenant: str = Depends(admin_tenant),
):
    rows = request.app.state.assistant.store.handoffs(tenant, None if state == "all" else state)
    return {"object": "list", "tenant": tenant, "data": rows}


@router.get("/conversations/{conversation_id}")
async def get_conversation(request: Request, conversation_id: str, tenant: str = Depends(admin_tenant)):
    assistant = request.app.state.assistant
    messages = await _call(assistant.history, tenant, conversation_id)
    record = assistant.store.handoff(tenant, conversation_id)
    return {
        "id": conversation_id,
        "tenant": tenant,
        "messages": messages,
        "handoff": assistant.handoffs.view(record),
        "webhook_status": record["webhook_status"] if record else None,
    }


@router.post("/conversations/{conversation_id}/messages", openapi_extra=json_body(AgentMessage))
async def agent_reply(request: Request, conversation_id: str, tenant: str = Depends(admin_tenant)):
    assistant = request.app.state.assistant
    body = await read_body(request, assistant.settings.max_request_bytes)
    try:
        message = AgentMessage.model_validate_json(body)
    except ValidationError as exc:
        text, param = validation_message(exc)
        raise ApiError(400, text, param=param) from None
    index = await _call(assistant.agent_reply, tenant, conversation_id, message.content, message.agent)
    return {"id": conversation_id, "message_index": index, "handoff": assistant.handoff_state(tenant, conversation_id)}


@router.post("/conversations/{conversation_id}/release")
async def release(request: Request, conversation_id: str, tenant: str = Depends(admin_tenant)):
    assistant = request.app.state.assistant
    state = await _call(assistant.release_handoff, tenant, conversation_id)
    return {"id": conversation_id, "handoff": state}
