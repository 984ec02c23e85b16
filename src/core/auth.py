"""Who is asking: API keys (hashed at rest), wallet session tokens (HMAC-signed), and the admin token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from core.clock import format_time, unix_seconds
from core.config import Env
from core.errors import ApiError
from core.http import Request
from core.ids import random_token
from db.port import Database, QueryResult, Statement

API_KEY_PREFIX = "thk_"
SESSION_PREFIX = "ths_"
SESSION_TTL = timedelta(hours=24)
PrincipalKind = Literal["api_key", "session", "admin"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller; admin has no user of its own."""

    kind: PrincipalKind
    user_id: str | None = None
    wallet_address: str | None = None
    issued_at: int | None = None  # sessions: unix seconds
    # Results of the statements the route asked to run in the auth batch (see Preload); empty when none ran.
    preloaded: tuple[QueryResult, ...] = field(default=(), compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


@dataclass(frozen=True)
class Caller:
    """SQL yielding the caller's user id inside another statement, so reads can join the auth lookup's batch.

    For an API key the id is not known before the database answers, so it is a subquery on the key's hash;
    once known (a session, or a handler reading on its own) it is a bound parameter.
    """

    sql: str
    params: tuple[Any, ...]

    @classmethod
    def user(cls, user_id: str) -> Caller:
        return cls("?", (user_id,))


# Builds a route's reads (env, db, request, now, caller); app.py runs them in the credential lookup's batch.
# It must not raise: on input it cannot use it returns no statements, and the handler reads on its own.
Preload = Callable[[Env, Database, Request, datetime, Caller], Sequence[Statement]]
# A route asks for it with Route(extra={PRELOAD: builder}).
PRELOAD = "preload"
# Resolves the caller (env, db, Authorization header, now, the route's bound Preload): None when anonymous,
# 401 E9006 for bad credentials. The accounts package provides it (accounts.credentials); App is given it.
Authenticate = Callable[
    [Env, Database, str, datetime, Callable[[Caller], Sequence[Statement]] | None], Awaitable["Principal | None"]
]


def hash_api_key(api_key: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash is enough; no key is ever stored in the clear.
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + random_token(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _session_mac(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), f"session.v1.{payload}".encode(), hashlib.sha256).digest())


def issue_session(env: Env, user_id: str, wallet_address: str, now: datetime) -> tuple[str, str]:
    """A bearer token bound to the user and wallet; returns (token, expires_at)."""
    expires = now + timedelta(seconds=env.int("SESSION_TTL_SECONDS", int(SESSION_TTL.total_seconds())))
    claims = {"u": user_id, "w": wallet_address, "iat": unix_seconds(now), "exp": unix_seconds(expires)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    token = f"{SESSION_PREFIX}{payload}.{_session_mac(env.hmac_secret(), payload)}"
    return token, format_time(expires)


def verify_session(env: Env, token: str, now: datetime) -> Principal:
    """Checks signature then expiry; every failure is the same 401 so nothing is learned from it."""
    invalid = ApiError("E9006")
    body = token[len(SESSION_PREFIX) :]
    payload, _, mac = body.partition(".")
    if not payload or not mac:
        raise invalid
    if not hmac.compare_digest(mac, _session_mac(env.hmac_secret(), payload)):
        raise invalid
    try:
        claims = json.loads(_unb64(payload))
        user_id, wallet, expires = str(claims["u"]), str(claims["w"]), int(claims["exp"])
        issued = int(claims["iat"])
    except (ValueError, KeyError, TypeError, OverflowError):  # OverflowError: an infinite "exp" (1e400)
        raise invalid from None
    if expires <= unix_seconds(now):
        raise ApiError("E9006", "Session expired")
    return Principal("session", user_id, wallet, issued)


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def route_preload(
    builder: Preload | None, env: Env, db: Database, request: Request, now: datetime
) -> Callable[[Caller], Sequence[Statement]] | None:
    """Binds a route's Preload (Route.extra[PRELOAD]) to this request, for the Authenticate callable's `extra`."""
    if builder is None:
        return None
    return lambda caller: builder(env, db, request, now, caller)


async def preloaded_or_read(
    db: Database, principal: Principal, statements: Callable[[Caller], Sequence[Statement]]
) -> list[QueryResult]:
    """The route's reads from the auth batch when they ran there, otherwise in one batch of their own."""
    if principal.preloaded:
        return list(principal.preloaded)
    return await db.batch(list(statements(Caller.user(principal.user_id or ""))))


def require_user(principal: Principal | None) -> Principal:
    if principal is None:
        raise ApiError("E9005")
    if principal.user_id is None:
        raise ApiError("E9007", "This endpoint acts for a user; use a user's API key or session")
    return principal


def require_admin(principal: Principal | None) -> Principal:
    if principal is None:
        raise ApiError("E9005")
    if not principal.is_admin:
        raise ApiError("E9007", "Admin token required")
    return principal
