"""Invitations: the counterparty's link to a sent challenge (a derived, hashed, expiring, single-purpose token)
and the counterparty's way to turn one down."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from challenges import modes, stakes, store, transitions
from challenges.store import Aggregate, InvitationRecord
from challenges.transitions import Change, actor, ensure_before, event_payload, with_deadline
from core.auth import Principal
from core.clock import format_time, parse_time
from core.config import Env
from core.context import Services
from core.errors import ApiError
from core.ids import new_id, random_token
from db.port import Database, Statement

# The only purpose a token has: open this challenge's invitation page, for its invited counterparty.
PURPOSE = "COUNTERPARTY_INVITE"
TOKEN_VERSION = "invite.v1"  # noqa: S105 - the HMAC input's version tag, not a secret
# A link with no accept deadline to follow (a GATEKEEPER challenge without expires_at) still expires.
DEFAULT_TTL = timedelta(days=30)
NONCE_BYTES = 32
_KEY_LABEL = b"tattlehash.invitation-key.v1"
# base64url without padding of an HMAC-SHA256 (32 bytes): anything else is refused before hashing.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
DECLINED = "declined by the counterparty"


class Verdict(Enum):
    """What a presented token is worth for a challenge's invitation."""

    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"  # wrong, malformed, or no invitation at all: never says which


def _key(env: Env) -> bytes:
    """The token key, derived from HMAC_SECRET (never HMAC_SECRET itself); E9001 when it is missing."""
    return hmac.new(env.hmac_secret().encode(), _KEY_LABEL, hashlib.sha256).digest()


def derive_token(env: Env, challenge_id: str, nonce: str) -> str:
    """base64url(HMAC-SHA256(k, "invite.v1:" + challenge_id + ":" + nonce)): recomputable only with the secret."""
    mac = hmac.new(_key(env), f"{TOKEN_VERSION}:{challenge_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What is stored of a token (hex sha256): a token has 256 bits, so a fast hash suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def invite_path(challenge_id: str, token: str) -> str:
    return f"/invite/{challenge_id}?token={token}"


def invite_url(env: Env, invitation: InvitationRecord) -> str:
    """The link as the counterparty gets it: PUBLIC_BASE_URL + /invite/{id}?token=… (relative without a base)."""
    base = env.get("PUBLIC_BASE_URL").strip().rstrip("/")
    return base + invite_path(invitation.challenge_id, derive_token(env, invitation.challenge_id, invitation.nonce))


def expiry(accept_deadline: str | None, now: datetime) -> str:
    """The link lives until the challenge's accept deadline, and never longer than DEFAULT_TTL."""
    latest = now + DEFAULT_TTL
    if accept_deadline:
        return format_time(min(parse_time(accept_deadline), latest))
    return format_time(latest)


@dataclass(frozen=True)
class NewInvitation:
    id: str
    nonce: str
    token_hash: str
    expires_at: str


def new_invitation(env: Env, challenge_id: str, accept_deadline: str | None, now: datetime) -> NewInvitation:
    """A fresh nonce (CSPRNG) and the hash of the token it gives; the token itself is not kept."""
    nonce = random_token(NONCE_BYTES)
    return NewInvitation(
        new_id(), nonce, token_hash(derive_token(env, challenge_id, nonce)), expiry(accept_deadline, now)
    )


def issue_statement(db: Database, env: Env, change: Change, accept_deadline: str | None, now: datetime) -> Statement:
    """The invitation row of a `send`, in its batch and guarded by it: a send that loses its race writes none."""
    challenge_id = change.challenge.id
    invitation = new_invitation(env, challenge_id, accept_deadline, now)
    return store.invitation_insert(
        db,
        change.guard(),
        invitation_id=invitation.id,
        challenge_id=challenge_id,
        purpose=PURPOSE,
        nonce=invitation.nonce,
        token_hash=invitation.token_hash,
        expires_at=invitation.expires_at,
        stamp=format_time(now),
    )


def is_expired(invitation: InvitationRecord, now: datetime) -> bool:
    return parse_time(invitation.expires_at) <= now


def check(invitation: InvitationRecord | None, challenge_id: str, token: str, now: datetime) -> Verdict:
    """Whether `token` opens this challenge's invitation: constant-time compare of hashes, then the expiry."""
    if invitation is None or not _TOKEN.match(token):
        return Verdict.INVALID
    if invitation.challenge_id != challenge_id or invitation.purpose != PURPOSE:
        return Verdict.INVALID
    if not hmac.compare_digest(token_hash(token), invitation.token_hash):
        return Verdict.INVALID
    if is_expired(invitation, now):
        return Verdict.EXPIRED
    return Verdict.VALID


async def link_for(db: Database, env: Env, challenge_id: str, now: datetime) -> str | None:
    """The invitation link for the relay's email and SMS: None without an invitation, a base URL, or once expired."""
    if not env.get("PUBLIC_BASE_URL").strip():
        return None
    invitation = await store.load_invitation(db, challenge_id, PURPOSE)
    if invitation is None or is_expired(invitation, now):
        return None
    return invite_url(env, invitation)


async def decline(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    """The counterparty turns the invitation down: AWAITING_COUNTERPARTY → CANCELLED, any held stake refunded.

    Like `accept`: only the counterparty (403 E3012), only while awaiting them (409 E3011 / E3015), only before
    the accept deadline (410 E3013).
    """
    challenge = aggregate.challenge
    if aggregate.role != "COUNTERPARTY":
        raise ApiError("E3012")
    status = challenge.status
    if status != modes.AWAITING_COUNTERPARTY:
        if status in {modes.DRAFT, modes.CANCELLED, modes.EXPIRED}:
            raise ApiError("E3011", f"The challenge is {status}", {"status": status})
        raise ApiError("E3015", details={"status": status})
    now = services.now()
    ensure_before("accept_deadline", challenge.accept_deadline, now, "E3013")
    change = Change(
        challenge,
        actor(principal),
        DECLINED,
        modes.CANCELLED,
        events=[("challenge.cancelled", event_payload(challenge, modes.CANCELLED, reason=DECLINED), None)],
    )
    stakes.refund_into(services.db, change, aggregate.held_stakes, now)
    return await transitions.apply(services.db, with_deadline(change, modes.CANCELLED), now)
