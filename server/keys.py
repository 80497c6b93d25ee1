"""Public widget keys, and who is calling: the one place a request's tenant is decided.

A widget key (``pk_...``) is bound to one tenant, a list of allowed origins and,
optionally, a list of allowed skills. It is public by design: it sits in the
customer's page, so it identifies a tenant but authenticates nobody. What it
adds is a browser-side guard: browsers always send ``Origin`` on cross-site
requests and pages cannot forge it, so a key copied onto another site is
refused there. Non-browser clients can send any Origin they like; against them
the skill allow-list and the rate limits (``server.limits``) are the defence.

Secret API keys (``sk_...``, ``server.api_keys``) authenticate integrators'
servers. Requests without any key belong to the default tenant, unless keys
are required (``Settings.require_keys``), when they are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from fastapi import Request

from assistant import Settings
from assistant.store import Store
from retrieval.names import validate_tenant

from .api_keys import API_KEY_PREFIX, ApiKey
from .errors import ApiError
from .limits import WidgetLimits

__all__ = [
    "DEMO_LABEL",
    "SELF_ORIGIN",
    "CONVERSATION_TOKEN_HEADER",
    "Caller",
    "conversation_owner",
    "presented_key",
    "WidgetKey",
    "WidgetKeys",
    "caller",
    "resolve_caller",
    "normalize_origin",
    "request_origin",
    "snippet",
    "user_hash",
    "widget_key_of",
]

#: Label of the key the demo page uses (one per tenant, created on first use).
DEMO_LABEL = "demo"
#: Origin entry meaning "the origin this server is reached at" (the demo page's key).
SELF_ORIGIN = "self"

_KEY_PATTERN = re.compile(r"^pk_[A-Za-z0-9_-]{8,64}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case without a default port; ValueError says what is wrong."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"origin {value!r} must look like https://shop.example (http or https, a host name)")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"origin {value!r} must be only scheme://host[:port], without a path, query or user")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"origin {value!r} has an invalid port") from None
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def request_origin(request: Request) -> str | None:
    """The origin this request reached the server at, as a same-origin page would send it."""
    host = request.headers.get("host")
    if not host:
        return None
    try:
        return normalize_origin(f"{request.url.scheme}://{host}")
    except ValueError:
        return None


@dataclass(frozen=True)
class WidgetKey:
    key: str
    tenant_id: str
    origins: tuple[str, ...]
    #: Allowed skills; empty means every skill, including automatic routing.
    skills: tuple[str, ...]
    label: str | None = None
    created_at: float = 0.0
    revoked_at: float | None = None

    @classmethod
    def from_row(cls, row: dict) -> "WidgetKey":
        return cls(key=row["key"], tenant_id=row["tenant_id"], origins=tuple(row["origins"]),
                   skills=tuple(row["skills"]), label=row["label"], created_at=row["created_at"],
                   revoked_at=row["revoked_at"])

    def allows_origin(self, origin: str, own_origin: str | None) -> bool:
        try:
            origin = normalize_origin(origin)
        except ValueError:  # "null" (sandboxed frames, file://) and other non-origins
            return False
        if origin in self.origins:
            return True
        return SELF_ORIGIN in self.origins and own_origin is not None and origin == own_origin

    def allows_skill(self, model: str) -> bool:
        # Automatic routing could pick any skill, so a key restricted to some skills
        # must name one of them; routing among a subset is not supported yet.
        return not self.skills or model in self.skills


class WidgetKeys:
    """The widget keys of the SQLite database, over the assistant's Store."""

    def __init__(self, store: Store):
        self.store = store
        self._demo_lock = threading.Lock()

    @staticmethod
    def new_key() -> str:
        return "pk_" + secrets.token_urlsafe(18)

    def create(self, tenant_id: str, origins: list[str], skills: list[str] | None = None,
               label: str | None = None) -> WidgetKey:
        """A new key; raises ValueError for a bad origin or tenant name."""
        tenant_id = validate_tenant((tenant_id or "").strip())
        if not origins:
            raise ValueError("a widget key needs at least one allowed origin, e.g. https://shop.example")
        normalized = list(dict.fromkeys(normalize_origin(o) for o in origins))
        row = self.store.add_widget_key(self.new_key(), tenant_id.strip(), normalized,
                                        list(dict.fromkeys(skills or [])), label)
        return WidgetKey.from_row(row)

    def get(self, key: str) -> WidgetKey | None:
        """The active key, or None for an unknown, malformed or revoked one."""
        if not _KEY_PATTERN.match(key):
            return None
        row = self.store.widget_key(key)
        if row is None or row["revoked_at"] is not None:
            return None
        return WidgetKey.from_row(row)

    def list(self, tenant_id: str | None = None, include_revoked: bool = False) -> list[WidgetKey]:
        return [WidgetKey.from_row(r) for r in self.store.widget_keys(tenant_id, include_revoked)]

    def revoke(self, key: str) -> bool:
        return self.store.revoke_widget_key(key)

    def demo(self, tenant_id: str) -> WidgetKey:
        """The demo page's key: created once per tenant, allowed on this server's own origin."""
        with self._demo_lock:
            row = self.store.ensure_widget_key(self.new_key(), tenant_id, [SELF_ORIGIN], [], DEMO_LABEL)
        return WidgetKey.from_row(row)

    def identity_secret(self, tenant_id: str, *, rotate: bool = False) -> str:
        """The tenant's identity secret, created on first use; ``rotate`` replaces it."""
        return self.store.set_identity_secret(tenant_id, "is_" + secrets.token_urlsafe(32), replace=rotate)

    def signed_user(self, tenant_id: str, user: str, presented: str) -> bool:
        """Whether ``presented`` is ``user_hash(secret, user)`` for the tenant's secret."""
        secret = self.store.identity_secret(tenant_id)
        return secret is not None and hmac.compare_digest(user_hash(secret, user), presented)

    def origin_allowed_anywhere(self, origin: str) -> bool:
        """Whether any active key allows ``origin`` (CORS preflights carry no key)."""
        try:
            origin = normalize_origin(origin)
        except ValueError:
            return False
        return any(origin in row["origins"] for row in self.store.widget_keys())


def user_hash(secret: str, user: str) -> str:
    """What the integrator's server computes for a signed-in customer: hex HMAC-SHA256(secret, user id)."""
    return hmac.new(secret.encode("utf-8"), user.encode("utf-8"), hashlib.sha256).hexdigest()


def snippet(server_url: str, key: str, skill: str | None = None) -> str:
    """The exact tag a customer pastes into their pages."""
    src = html.escape(server_url.rstrip("/") + "/widget.js", quote=True)
    extra = f' data-skill="{html.escape(skill, quote=True)}"' if skill else ""
    return f'<script src="{src}" data-key="{html.escape(key, quote=True)}"{extra} async></script>'


# -- the caller -------------------------------------------------------------------

#: Header carrying a widget conversation's token (``Caller.owner``).
CONVERSATION_TOKEN_HEADER = "x-lepton-conversation-token"


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The Lepton key a request carries: ``X-Lepton-Key``, or a bearer token that is one
    of ours (``pk_`` widget key, ``sk_`` API key).

    Other bearer tokens are ignored (OpenAI clients always send one, and keyless use
    must keep working where keys are not required)."""
    explicit = headers.get("x-lepton-key")
    if explicit:
        return explicit.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith(("pk_", API_KEY_PREFIX)):
        return token
    return None


def widget_key_of(headers: Mapping[str, str]) -> str | None:
    """The widget key a request carries, if the key it carries is one."""
    key = presented_key(headers)
    return key if key is not None and key.startswith("pk_") else None


def conversation_owner(token: str) -> str:
    """The owner recorded for a widget conversation holding ``token`` (its hash: the
    database never holds a token that would open the conversation)."""
    return "widget:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant, and the widget key or API key when there is one."""

    tenant_id: str
    key: WidgetKey | None = None
    limits: WidgetLimits | None = None  # the app's limits
    keys: "WidgetKeys | None" = None  # the app's keys, when a key is present
    api_key: ApiKey | None = None
    #: A widget conversation's token as the request sent it (``CONVERSATION_TOKEN_HEADER``).
    conversation_token: str | None = None

    def owner(self, token: str | None = None) -> str | None:
        """Whose conversations this caller may continue and read: its API key's, the widget
        conversation of ``token`` (default: the one it sent), or None (keyless)."""
        if self.api_key is not None:
            return self.api_key.owner
        if self.key is not None:
            token = token or self.conversation_token
            # Without a token a widget caller owns nothing: an unmatchable owner.
            return conversation_owner(token) if token else "widget:none"
        return None

    def answer_cap(self, settings: Settings) -> int:
        """The longest answer (tokens) this caller gets: the server's limit, lowered for a
        widget key (public) and by an API key's own limit."""
        cap = settings.max_answer_tokens
        if self.key is not None:
            cap = min(cap, settings.widget_max_tokens)
        if self.api_key is not None and self.api_key.max_tokens:
            cap = min(cap, self.api_key.max_tokens)
        return cap

    def turn_seconds(self, settings: Settings) -> float:
        """How long this caller's turns may take: the server's limit, or its API key's if lower."""
        if self.api_key is not None and self.api_key.max_seconds:
            return min(settings.turn_timeout, self.api_key.max_seconds)
        return settings.turn_timeout

    def allows_skill(self, model: str) -> bool:
        if self.api_key is not None:
            return self.api_key.allows_skill(model)
        return self.key is None or self.key.allows_skill(model)

    def trusts_user(self, user: str | None, presented_hash: str | None) -> bool:
        """Whether the request's ``user`` is the signed-in customer's id that skills may use.

        Without a widget key the caller is the integrator's server, so yes. A widget
        key is public and its page can name anyone, so only a ``user_hash`` made with
        the tenant's identity secret vouches for it; a wrong one is refused (403).
        """
        if self.key is None:
            return True
        if presented_hash is None:
            return False
        if user is None:
            raise ApiError(400, "lepton.user_hash signs the request's user, but no user was sent.",
                           param="lepton.user_hash", code="invalid_user_hash")
        assert self.keys is not None
        if not self.keys.signed_user(self.tenant_id, user, presented_hash):
            raise ApiError(403, "lepton.user_hash does not match this user for this tenant's identity secret "
                                "(see `lepton keys identity-secret`).", param="lepton.user_hash",
                           code="invalid_user_hash")
        return True

    def admit_turn(self, model: str, conversation_id: str) -> None:
        """Refuse a chat turn the key does not allow (403) or that comes too fast (429)."""
        if not self.allows_skill(model):
            allowed = ", ".join((self.api_key or self.key).skills)  # type: ignore[union-attr]
            kind = "API key" if self.api_key is not None else "widget key"
            raise ApiError(403, f"model {model!r} is not allowed for this {kind}; allowed: {allowed}",
                           param="model", code="skill_not_allowed")
        assert self.limits is not None
        per_conversation = self.limits.per_conversation if self.key is not None else self.limits.per_session
        per_conversation.check(f"{self.tenant_id}:{conversation_id}")


def resolve_caller(request: Request, presented: str | None) -> Caller:
    """The caller of any route: its tenant, after the key, Origin and per-IP checks.

    A request without a key is the default tenant's, unless keys are required
    (``ApiKeys.required``): then it is refused with 401."""
    state = request.app.state
    token = request.headers.get(CONVERSATION_TOKEN_HEADER) or None
    if not presented:
        if state.api_keys.required():
            raise ApiError(401, "This server requires an API key: send 'Authorization: Bearer sk_...' "
                                "(made with `lepton keys create`).", code="missing_api_key")
        state.limits.keyless_ip.check(_client_address(request))
        return Caller(tenant_id=state.settings.default_tenant, limits=state.limits)
    if presented.startswith(API_KEY_PREFIX):
        api_key = state.api_keys.get(presented)
        if api_key is None:
            raise ApiError(401, "This API key is unknown or has been revoked.", code="invalid_api_key")
        state.limits.per_key.check(api_key.id)
        return Caller(tenant_id=api_key.tenant_id, api_key=api_key, limits=state.limits)
    widget_key = state.widget_keys.get(presented)
    if widget_key is None:
        raise ApiError(401, "This widget key is unknown or has been revoked.", code="invalid_api_key")
    origin = request.headers.get("origin")
    # No Origin means no cross-site browser request (same-origin GETs omit it), so
    # there is nothing for the Origin check to protect against.
    if origin is not None and not widget_key.allows_origin(origin, request_origin(request)):
        raise ApiError(403, f"This chat widget is not enabled for {origin}: the origin is not on the widget "
                            "key's list of allowed origins.", code="origin_not_allowed")
    state.limits.per_ip.check(_client_address(request))
    return Caller(tenant_id=widget_key.tenant_id, key=widget_key, limits=state.limits, keys=state.widget_keys,
                  conversation_token=token)


def _client_address(request: Request) -> str:
    """The client's IP: behind trusted proxies the app's ProxyHeadersMiddleware already put
    the real client's address here (see create_app); otherwise it is the peer's."""
    return request.client.host if request.client else "unknown"


async def caller(request: Request) -> Caller:
    """FastAPI dependency of every route that needs a tenant."""
    return resolve_caller(request, presented_key(request.headers))
