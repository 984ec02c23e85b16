"""The routes of the browser pages and of the invitation (link for the creator, decline for the counterparty)."""

from __future__ import annotations

from challenges import handlers, invites
from challenges.models import ChallengeOut, EmptyBody
from core import flags
from core.routing import Route
from pages import connect, invitation_api, invite

ROUTES: list[Route] = [
    Route(
        "GET",
        "/connect",
        connect.connect_page,
        "HTML page: sign a wallet challenge (?challenge_id=, or a new one) with any EIP-1193 / EIP-6963 wallet",
        "pages",
        flag=flags.GATEKEEPER_V2,
        rate_limit="gatekeeper",
        query=(("challenge_id", "an anonymous wallet challenge to sign; without it the page makes one"),),
        # HTML, refusals included (plain 4xx pages): documented in docs/pages.md, not in the JSON API's schema.
        include_in_schema=False,
    ),
    Route(
        "GET",
        "/invite/{challenge_id}",
        invite.invite_page,
        "HTML page: the invited counterparty reviews the terms, proves the wallet, accepts or declines",
        "pages",
        flag=flags.CHALLENGES,
        rate_limit="challenges",
        query=(("token", "the invitation token from the invitation link (wrong or missing: 404 page)"),),
        include_in_schema=False,
    ),
    Route(
        "GET",
        "/challenges/{challenge_id}/invitation",
        invitation_api.get_invitation,
        "The creator's copy of the invitation link, to share it with the counterparty",
        "challenges",
        flag=flags.CHALLENGES,
        auth="any",
        response=invitation_api.InvitationOut,
        rate_limit="challenges",
        errors=invitation_api.INVITATION_ERRORS,
        extra=invitation_api.INVITATION_EXTRA,
    ),
    Route(
        "POST",
        "/challenges/{challenge_id}/decline",
        handlers.action_handler(invites.decline),
        "Counterparty declines the invitation (AWAITING_COUNTERPARTY → CANCELLED, held stakes refunded)",
        "challenges",
        flag=flags.CHALLENGES,
        auth="any",
        body=EmptyBody,
        response=ChallengeOut,
        rate_limit="challenges",
        errors=("E3010", "E3011", "E3012", "E3013", "E3014", "E3015"),
        extra=handlers.CHALLENGE_EXTRA,
    ),
]
