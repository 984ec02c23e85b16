"""HTTP handlers for operators' API-key issuance and the caller's own profile (/me)."""

from __future__ import annotations

from pydantic import Field

from accounts import users
from core.auth import require_user
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.schemas import DisplayName, Email, OutModel, PhoneE164, StrictModel


class ApiKeyCreate(StrictModel):
    user_id: str | None = Field(default=None, max_length=64)
    email: Email | None = None
    display_name: DisplayName | None = None


class ApiKeyCreated(OutModel):
    user_id: str
    api_key: str = Field(description="Shown only in this response; store it now.")


class Profile(OutModel):
    id: str
    email: str | None
    phone: str | None
    display_name: str | None
    wallets: list[str]
    created_at: str
    updated_at: str


class ProfilePatch(StrictModel):
    email: Email | None = None
    phone: PhoneE164 | None = None
    display_name: DisplayName | None = None


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


async def _profile(ctx: RequestContext, user_id: str) -> Profile:
    row = await users.get_user(ctx.db, user_id)
    if row is None:
        raise ApiError("E9006", "The user behind these credentials no longer exists")
    return Profile(
        id=row["id"],
        email=row["email"],
        phone=row["phone"],
        display_name=row["display_name"],
        wallets=await users.wallets_of(ctx.db, user_id),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_me(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    return Response.json((await _profile(ctx, principal.user_id or "")).model_dump())


async def patch_me(request: Request, ctx: RequestContext) -> Response:
    principal = require_user(ctx.principal)
    body: ProfilePatch = ctx.body
    await _profile(ctx, principal.user_id or "")
    await users.update_profile(ctx.db, principal.user_id or "", body.model_dump(exclude_unset=True), ctx.now())
    return Response.json((await _profile(ctx, principal.user_id or "")).model_dump())
