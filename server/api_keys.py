"""Secret API keys (``sk_...``) and the admin token: who may call the API.

An API key belongs to one tenant; it may be limited to some skills and may be an
admin key (the ``/admin`` routes, for its own tenant only). The key is shown once,
when ``lepton keys create`` makes it; the database keeps only its SHA-256. Keys
are 256-bit random strings, so a fast hash is enough: there is nothing to guess
by brute force, and a lookup costs one indexed query per request.

Whether keys are required is ``Settings.require_keys``; unset, they are as soon as
one API key exists (``ApiKeys.required``), so a fresh install works keyless and
creating the first key closes it.

The admin token is ``LEPTON_ADMIN_TOKEN`` when set; otherwise one is generated on
the first start, printed once and kept hashed (``AdminToken``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from assistant import Settings
from assistant.store import Store
from retrieval.names import validate_tenant

__all__ = ["ADMIN_TOKEN_PREFIX", "API_KEY_PREFIX", "AdminToken", "ApiKey", "ApiKeys", "secret_hash"]

API_KEY_PREFIX = "sk_"
ADMIN_TOKEN_PREFIX = "adm_"
_ADMIN_SECRET = "admin_token"


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    #: Allowed skills; empty means every skill, including automatic routing.
    skills: tuple[str, ...]
    admin: bool
    #: The key's first characters, to recognise it by in listings.
    hint: str
    label: str | None = None
    created_at: float = 0.0
    revoked_at: float | None = None
    #: Longest answer (tokens) and longest turn (seconds) the key gets; None: the server's.
    max_tokens: int | None = None
    max_seconds: float | None = None

    @classmethod
    def from_row(cls, row: dict) -> "ApiKey":
        return cls(id=row["id"], tenant_id=row["tenant_id"], skills=tuple(row["skills"]), admin=row["admin"],
                   hint=row["hint"], label=row["label"], created_at=row["created_at"], revoked_at=row["revoked_at"],
                   max_tokens=row["max_tokens"], max_seconds=row["max_seconds"])

    def allows_skill(self, model: str) -> bool:
        return not self.skills or model in self.skills

    @property
    def owner(self) -> str:
        """What conversations this key starts are recorded as belonging to."""
        return f"key:{self.id}"


class ApiKeys:
    """The API keys in the database."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings

    def create(self, tenant_id: str, skills: list[str] | None = None, admin: bool = False,
               label: str | None = None, max_tokens: int | None = None,
               max_seconds: float | None = None) -> tuple[str, ApiKey]:
        """A new key: (the secret, shown only now; its record). ValueError for a bad tenant
        or limit. ``max_tokens``/``max_seconds`` lower the server's answer-length and turn-time
        limits for this key (they never raise them)."""
        tenant_id = validate_tenant(tenant_id)
        if max_tokens is not None and max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, not {max_tokens}")
        if max_seconds is not None and not max_seconds > 0:
            raise ValueError(f"max_seconds must be more than 0, not {max_seconds}")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = "key_" + secrets.token_hex(6)
        row = self.store.add_api_key(key_id, secret_hash(secret), secret[:10], tenant_id,
                                     list(dict.fromkeys(skills or [])), admin, label, max_tokens, max_seconds)
        return secret, ApiKey.from_row(row)

    def get(self, secret: str) -> ApiKey | None:
        """The active key with this secret, or None."""
        if not secret.startswith(API_KEY_PREFIX):
            return None
        row = self.store.api_key_by_hash(secret_hash(secret))
        return ApiKey.from_row(row) if row else None

    def list(self, tenant_id: str | None = None, include_revoked: bool = False) -> list[ApiKey]:
        return [ApiKey.from_row(r) for r in self.store.api_keys(tenant_id, include_revoked)]

    def revoke(self, key_id: str) -> bool:
        return self.store.revoke_api_key(key_id)

    def required(self) -> bool:
        """Whether a request without a key is refused."""
        if self.settings.require_keys is not None:
            return self.settings.require_keys
        return self.store.any_api_key()


class AdminToken:
    """The bearer token of the ``/admin`` routes."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.settings = settings

    def ensure(self) -> str | None:
        """Generate the token if none is configured or stored; returns it only when it was
        generated now (it is never readable again), else None."""
        if self.settings.admin_token or self.store.server_secret_hash(_ADMIN_SECRET) is not None:
            return None
        token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
        return token if self.store.set_server_secret_hash(_ADMIN_SECRET, secret_hash(token), replace=False) else None

    def rotate(self) -> str:
        """A new generated token, replacing the stored one (LEPTON_ADMIN_TOKEN, when set, still wins)."""
        token = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.store.set_server_secret_hash(_ADMIN_SECRET, secret_hash(token), replace=True)
        return token

    def matches(self, presented: str) -> bool:
        if self.settings.admin_token:
            return hmac.compare_digest(presented.encode(), self.settings.admin_token.encode())
        stored = self.store.server_secret_hash(_ADMIN_SECRET)
        return stored is not None and hmac.compare_digest(secret_hash(presented), stored)
