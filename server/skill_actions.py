"""Skills' typed JSON actions (``skills.SkillAction``), under the caller's tenant:

- ``GET  /v1/skills/{skill}/actions``: the skill's actions with their JSON schemas;
- ``POST /v1/skills/{skill}/{action}``: run one; the body is the action's input
  model, the answer its output model.

Errors are OpenAI-shaped: an unknown skill or action is a 404, a body that does
not fit the input model (or an action's ValueError) a 400. Widget keys are public
(they sit in page source), so they may not call actions: these routes are for
integrators' servers.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from skills import ActionCall, SkillAction

from .chat import read_body
from .errors import ApiError, api_error_from, validation_message
from .keys import Caller, caller

__all__ = ["router"]

router = APIRouter(prefix="/v1/skills")


def _actions(request: Request, skill: str, who: Caller) -> dict[str, SkillAction]:
    if who.key is not None:
        raise ApiError(403, "skill actions cannot be called with a public widget key", code="widget_key_not_allowed")
    assistant = request.app.state.assistant
    skills = {name: s for name, s in assistant.skills_of(who.tenant_id).items() if who.allows_skill(name)}
    found = skills.get(skill)
    if found is None:
        raise ApiError(404, f"skill {skill!r} does not exist; available: {', '.join(skills)}",
                       param="skill", code="skill_not_found")
    return {action.name: action for action in found.actions()}


@router.get("/{skill}/actions")
async def list_actions(request: Request, skill: str, who: Caller = Depends(caller)):
    actions = _actions(request, skill, who)
    return {
        "object": "list",
        "skill": skill,
        "data": [
            {"name": a.name, "description": a.description, "route": f"/v1/skills/{skill}/{a.name}",
             "input_schema": a.input.model_json_schema(), "output_schema": a.output.model_json_schema()}
            for a in actions.values()
        ],
    }


_ACTION_BODY = {"requestBody": {
    "required": True,
    "description": "The action's input; its schema is the action's input_schema in GET /v1/skills/{skill}/actions.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}}


@router.post("/{skill}/{action}", openapi_extra=_ACTION_BODY)
async def run_action(request: Request, skill: str, action: str, who: Caller = Depends(caller)):
    actions = _actions(request, skill, who)
    chosen = actions.get(action)
    if chosen is None:
        known = ", ".join(actions) or "none"
        raise ApiError(404, f"skill {skill!r} has no action {action!r}; its actions: {known}",
                       param="action", code="action_not_found")
    assistant = request.app.state.assistant
    try:
        body = chosen.input.model_validate_json(await read_body(request, assistant.settings.max_request_bytes))
    except ValidationError as exc:
        message, param = validation_message(exc)
        raise ApiError(400, message, param=param) from None
    call = ActionCall(tenant_id=who.tenant_id, env=assistant.envs[skill])
    try:
        result = await asyncio.to_thread(chosen.run, call, body)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    except Exception as exc:
        raise api_error_from(exc) from None
    if not isinstance(result, chosen.output):
        raise api_error_from(TypeError(f"action {skill}/{action} returned {type(result).__name__}, "
                                       f"not {chosen.output.__name__}"))
    return result.model_dump(mode="json")
