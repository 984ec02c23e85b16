"""Who is asking: API keys (hashed at rest), wallet session tokens (HMAC-signed), and the admin token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.clock import format_time, parse_time, unix_seconds
from core.config import Env
from core.errors import ApiError
from core.ids import random_token
from db.port import Database

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

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


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
    except (ValueError, KeyError, TypeError):
        raise invalid from None
    if expires <= unix_seconds(now):
        raise ApiError("E9006", "Session expired")
    return Principal("session", user_id, wallet, issued)


# The session's user (no row: gone) and the current owner of its wallet, with when that owner got it.
_SESSION_STATE_SQL = (
    "SELECT w.user_id AS wallet_owner, w.linked_at FROM users AS u "
    "LEFT JOIN wallets AS w ON w.address = ? WHERE u.id = ?"
)


def _wallet_moved(row: dict[str, Any], principal: Principal) -> bool:
    """Re-linking a wallet to another user revokes the sessions it gave its old owner, for good.

    A session whose wallet has no row is not revoked: no re-link ever happened to it.
    """
    owner = row["wallet_owner"]
    if owner is None:
        return False
    if owner != principal.user_id:
        return True
    # Owned again after a round trip (A → B → A): sessions from before the latest link stay revoked.
    linked_at = row["linked_at"]
    return bool(linked_at) and unix_seconds(parse_time(linked_at)) > (principal.issued_at or 0)


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def resolve_principal(env: Env, db: Database, authorization: str, now: datetime) -> Principal | None:
    """None when no credentials were sent; 401 E9006 when they were sent but are not valid."""
    if not authorization.strip():
        return None
    token = bearer_token(authorization)
    if token is None:
        raise ApiError("E9006", "Use 'Authorization: Bearer <token>'")
    if not token.isascii():
        # Every token this API issues is ASCII; other bytes would make compare_digest raise TypeError.
        raise ApiError("E9006")
    admin_token = env.get("ADMIN_TOKEN")
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin")
    if token.startswith(API_KEY_PREFIX):
        row = await (
            db.prepare("SELECT user_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL")
            .bind(hash_api_key(token))
            .first()
        )
        if row is None:
            raise ApiError("E9006")
        return Principal("api_key", row["user_id"])
    if token.startswith(SESSION_PREFIX):
        principal = verify_session(env, token, now)
        # A session is stateless: a validly signed one can outlive its user (deleted, or a restored database),
        # or its wallet's link to that user. One round trip answers both.
        row = await db.prepare(_SESSION_STATE_SQL).bind(principal.wallet_address, principal.user_id).first()
        if row is None:
            raise ApiError("E9006")
        if _wallet_moved(row, principal):
            raise ApiError("E9006", "Session revoked: its wallet was linked to another account since")
        return principal
    raise ApiError("E9006")


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
