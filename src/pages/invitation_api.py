"""GET /challenges/{id}/invitation: the creator's copy of the counterparty's invitation link (to share it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from challenges import invites, store
from core.auth import PRELOAD, Caller
from core.config import Env
from core.context import RequestContext
from core.errors import ApiError
from core.http import Request, Response
from core.ids import is_uuid4
from core.schemas import OutModel
from db.port import Database, Statement


class InvitationOut(OutModel):
    challenge_id: str
    invite_url: str = Field(
        description="PUBLIC_BASE_URL + /invite/{challenge_id}?token=…: opens the invitation page, for the counterparty"
    )
    expires_at: str = Field(description="The link works until then (the accept deadline, at most 30 days)")
    expired: bool


def preload_invitation(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    """The visible aggregate's reads and the invitation, in the auth lookup's batch: one round trip."""
    challenge_id = request.path_params.get("challenge_id", "")
    if not is_uuid4(challenge_id):
        return []
    return [
        *store.visible_statements(db, challenge_id, caller),
        store.invitation_statement(db, challenge_id, invites.PURPOSE),
    ]


INVITATION_EXTRA: dict[str, Any] = {PRELOAD: preload_invitation}
INVITATION_ERRORS = ("E3010", "E9007", "E9008")


async def get_invitation(request: Request, ctx: RequestContext) -> Response:
    """The creator (or an operator) gets the link; the counterparty already has it (403), strangers 404 E3010."""
    challenge_id = request.path_params["challenge_id"]
    principal = ctx.principal
    aggregate = await store.load_visible(ctx.db, challenge_id, principal)
    if aggregate.role not in {"CREATOR", "ADMIN"}:
        raise ApiError("E9007", "Only the creator may read the invitation link")
    preloaded = principal.preloaded if principal is not None else ()
    if preloaded:
        invitation = store.invitation_from(preloaded[-1])
    else:
        invitation = await store.load_invitation(ctx.db, challenge_id, invites.PURPOSE)
    if invitation is None:
        raise ApiError("E9008", "This challenge has no invitation yet: send it first")
    out = InvitationOut(
        challenge_id=aggregate.id,
        invite_url=invites.invite_url(ctx.env, invitation),
        expires_at=invitation.expires_at,
        expired=invites.is_expired(invitation, ctx.now()),
    )
    return Response.json(out.model_dump(), headers={"cache-control": "private, no-store"})
