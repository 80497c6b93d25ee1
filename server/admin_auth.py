"""Who may use the ``/admin`` routes, decided before a byte of the body is read.

``AdminGuard`` is a pure ASGI middleware in front of every path under ``/admin``:
it authenticates from the headers alone, refuses a declared body over the route's
cap (413), and stops reading one that grows past it, so a 300 MB upload without
credentials costs the server nothing. Routes then take their tenant from
``admin_tenant``, which keeps an admin API key to its own tenant.

Two modes (``Settings.admin_access``):

- ``token`` (default): ``Authorization: Bearer`` the admin token (any tenant) or an
  admin API key (``lepton keys create --admin``: its tenant only).
- ``loopback``: no token, but only a client on this machine, addressed by a host
  name in ``admin_hosts`` (DNS rebinding sends the attacker's name), and never a
  request that a page on another origin made (``Origin``, ``Sec-Fetch-Site``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Query, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api_keys import API_KEY_PREFIX
from .errors import ApiError
from .keys import request_origin

__all__ = ["AdminGuard", "AdminPrincipal", "admin_tenant", "authenticate_admin"]


@dataclass(frozen=True)
class AdminPrincipal:
    #: The one tenant it may act for; None: every tenant.
    tenant_id: str | None
    #: "token", "key" or "loopback".
    via: str


def _is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


def _host_name(host_header: str) -> str:
    try:
        return (urlsplit(f"//{host_header}").hostname or "").lower()
    except ValueError:
        return ""


def _loopback(request: Request) -> AdminPrincipal:
    settings = request.app.state.settings
    peer = request.client.host if request.client else ""
    try:
        local = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        local = False
    if not local:
        raise ApiError(403, "Admin routes answer only this machine in loopback mode (LEPTON_ADMIN_ACCESS=loopback).",
                       code="admin_forbidden")
    host = _host_name(request.headers.get("host", ""))
    if host not in {h.lower().strip("[]") for h in settings.admin_hosts}:
        raise ApiError(403, f"Admin routes do not answer to the host name {host or '(none)'!r}; allowed: "
                            f"{', '.join(settings.admin_hosts)} (LEPTON_ADMIN_HOSTS).", code="admin_forbidden")
    origin = request.headers.get("origin")
    if origin is not None and origin != request_origin(request):
        raise ApiError(403, f"Admin routes refuse requests made by a page on {origin}.", code="cross_site_refused")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise ApiError(403, f"Admin routes refuse {fetch_site} requests from web pages.", code="cross_site_refused")
    return AdminPrincipal(None, "loopback")


def authenticate_admin(request: Request) -> AdminPrincipal:
    """The admin caller from the request's headers, or an ApiError (401/403)."""
    state = request.app.state
    if state.settings.admin_access == "loopback":
        return _loopback(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Admin routes need 'Authorization: Bearer <admin token or admin API key>'.",
                       code="invalid_api_key")
    if token.startswith(API_KEY_PREFIX):
        key = state.api_keys.get(token)
        if key is None:
            raise ApiError(401, "This API key is unknown or has been revoked.", code="invalid_api_key")
        if not key.admin:
            raise ApiError(403, "This API key is not an admin key (`lepton keys create --admin`).",
                           code="admin_forbidden")
        state.limits.per_key.check(key.id)
        return AdminPrincipal(key.tenant_id, "key")
    if not state.admin_token.matches(token):
        raise ApiError(401, "The admin token is wrong.", code="invalid_api_key")
    return AdminPrincipal(None, "token")


class _TooLarge(Exception):
    pass


class AdminGuard:
    """Authenticate ``/admin`` requests and cap their bodies before the route reads them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_admin_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        settings = request.app.state.settings
        multipart = request.headers.get("content-type", "").lower().startswith("multipart/")
        limit = settings.max_admin_request_bytes if multipart else settings.max_request_bytes
        too_large = ApiError(413, f"request body exceeds the limit of {limit} bytes; nothing was read",
                             code="request_too_large")
        try:
            scope.setdefault("state", {})["admin"] = authenticate_admin(request)
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        seen = 0
        exceeded = False
        started = False

        async def capped_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the route stops reading
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the 413 below answers instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped_receive, watched_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await too_large.response()(scope, receive, send)


def admin_tenant(request: Request, tenant: str | None = Query(
        default=None, description="Tenant to act for (default: the admin API key's, else the default tenant).")) -> str:
    """The tenant an admin route acts for: validated, and the admin key's own if it is one."""
    from retrieval.names import validate_tenant

    principal: AdminPrincipal | None = getattr(request.state, "admin", None)
    if principal is None:  # the guard did not run: never act unauthenticated
        raise ApiError(403, "admin routes are not available", code="admin_forbidden")
    chosen = tenant or principal.tenant_id or request.app.state.settings.default_tenant
    try:
        validate_tenant(chosen)
    except ValueError as exc:
        raise ApiError(400, str(exc), param="tenant", code="invalid_tenant") from None
    if principal.tenant_id is not None and chosen != principal.tenant_id:
        raise ApiError(403, f"This admin key acts for tenant {principal.tenant_id!r} only.", param="tenant",
                       code="tenant_forbidden")
    return chosen
