"""HTTP handlers for operators' API-key issuance and the caller's own profile (/me, /me/verify)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from accounts import profile, users
from accounts.contacts import MAX_ATTEMPTS, PendingClaim
from core.auth import PRELOAD, Caller, require_user
from core.config import Env
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.schemas import DisplayName, Email, OutModel, PhoneE164, StrictModel
from core.validation import validate_body
from db.port import Database, Statement

# Errors of the /me routes beyond the common ones (documented in the OpenAPI document).
PATCH_ERRORS = ("E9003",)
VERIFY_ERRORS = ("E7001", "E7002", "E7003", "E7004")


class ApiKeyCreate(StrictModel):
    user_id: str | None = Field(default=None, max_length=64)
    email: Email | None = Field(
        default=None,
        description="Finds the user who verified this email; otherwise a new user gets it (the operator vouches)",
    )
    display_name: DisplayName | None = None


class ApiKeyCreated(OutModel):
    user_id: str
    api_key: str = Field(description="Shown only in this response; store it now.")


class PendingContact(OutModel):
    """A contact the caller asked for but has not proved yet; it is used for nothing until then."""

    value: str
    expires_at: str = Field(description="When its code stops working; PATCH /me with the value again for a new one")
    code_delivery: Literal["SENT", "FAILED", "UNAVAILABLE"] = Field(
        description="SENT: the code went to the address. FAILED: the provider refused or did not answer; "
        "PATCH again. UNAVAILABLE: email/SMS is not set up on this deployment, so no code can be sent."
    )
    attempts_left: int = Field(ge=0, le=MAX_ATTEMPTS)


class Profile(OutModel):
    id: str
    email: str | None = Field(description="Verified email, or null")
    phone: str | None = Field(description="Verified phone (E.164), or null")
    display_name: str | None
    pending_email: PendingContact | None = Field(description="An email awaiting its code (POST /me/verify)")
    pending_phone: PendingContact | None = Field(description="A phone awaiting its code (POST /me/verify)")
    wallets: list[str]
    created_at: str
    updated_at: str


class ProfilePatch(StrictModel):
    """display_name changes at once. A new email or phone is pending until proved with the code sent to it
    (POST /me/verify); null removes the verified one and any pending one."""

    email: Email | None = None
    phone: PhoneE164 | None = None
    display_name: DisplayName | None = None


class ContactVerify(StrictModel):
    """The one-time code sent to a pending email or phone."""

    channel: Literal["email", "phone"]
    code: str = Field(pattern=r"^[0-9]{6}$", description="The 6 digits sent by PATCH /me")


async def create_api_key(request: Request, ctx: RequestContext) -> Response:
    body: ApiKeyCreate = ctx.body
    if body.user_id is not None and body.email is not None:
        raise ApiError(
            "E9004",
            "Give user_id or email, not both",
            {
                "fields": [
                    {
                        "field": "user_id",
                        "message": "user_id and email are mutually exclusive",
                        "type": "exclusive",
                    }
                ]
            },
        )
    issued = await users.issue_api_key(
        ctx.db, ctx.now(), user_id=body.user_id, email=body.email, display_name=body.display_name
    )
    ctx.services.logger.info("api_key_issued", request_id=ctx.request_id, user_id=issued.user_id)
    return Response.json(ApiKeyCreated(user_id=issued.user_id, api_key=issued.api_key).model_dump(), 201)


def _pending(claim: PendingClaim | None) -> PendingContact | None:
    if claim is None:
        return None
    return PendingContact(
        value=claim.value,
        expires_at=claim.expires_at,
        code_delivery=claim.delivery,
        attempts_left=claim.attempts_left,
    )


def _profile(record: profile.ProfileRecord) -> Response:
    user = record.user
    body = Profile(
        id=user.id,
        email=user.email,
        phone=user.phone,
        display_name=user.display_name,
        pending_email=_pending(record.pending.get("email")),
        pending_phone=_pending(record.pending.get("phone")),
        wallets=record.wallets,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )
    return Response.json(body.model_dump())


# Each /me route's reads ride in the auth lookup's batch (core.auth.Preload): auth + reads = one round trip.
def _preload_read(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    return profile.read_statements(db, caller)


def _preload_patch(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    # The send-cap reads depend on the body; one that does not validate reads nothing (the handler is never run).
    try:
        changes = validate_body(ProfilePatch, request.json()).model_dump(exclude_unset=True)
    except (ApiError, ValueError):
        return []
    return profile.patch_reads(env, db, caller, now, changes)


def _preload_verify(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    return profile.verify_reads(db, caller)


GET_ME_EXTRA: dict[str, Any] = {PRELOAD: _preload_read}
PATCH_ME_EXTRA: dict[str, Any] = {PRELOAD: _preload_patch}
VERIFY_ME_EXTRA: dict[str, Any] = {PRELOAD: _preload_verify}


async def get_me(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    return _profile(await profile.read(ctx.db, principal))


async def patch_me(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: ProfilePatch = ctx.body
    record = await profile.patch(ctx.services, principal, body.model_dump(exclude_unset=True))
    return _profile(record)


async def verify_me(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: ContactVerify = ctx.body
    return _profile(await profile.verify(ctx.services, principal, body.channel, body.code))
