"""The /challenges and /proof routes, with the flag, auth and models of each."""

from __future__ import annotations

from challenges import handlers, lifecycle, proof
from challenges.models import (
    ChallengeCreate,
    ChallengeEvents,
    ChallengeList,
    ChallengeOut,
    EmptyBody,
    ResolveBody,
    RespondBody,
    StakeBody,
)
from core import flags
from core.routing import Route

_ACTION_ERRORS = ("E3010", "E3014", "E9007")


def _action(
    name: str,
    action: lifecycle.Action,
    summary: str,
    errors: tuple[str, ...] = (),
    body: type = EmptyBody,
    body_fields: tuple[str, ...] = (),
) -> Route:
    return Route(
        "POST",
        f"/challenges/{{challenge_id}}/{name}",
        handlers.action_handler(action, body_fields=body_fields),
        summary,
        "challenges",
        flag=flags.CHALLENGES,
        auth="any",
        body=body,
        response=ChallengeOut,
        rate_limit="challenges",
        errors=_ACTION_ERRORS + errors,
    )


ROUTES: list[Route] = [
    Route(
        "POST",
        "/challenges",
        handlers.create_challenge,
        "Create a challenge (SOLO, GATEKEEPER, FIRE, ENFORCED)",
        "challenges",
        flag=flags.CHALLENGES,
        auth="user",
        body=ChallengeCreate,
        response=ChallengeOut,
        status=201,
        rate_limit="challenges",
        errors=(
            "E3001",
            "E3002",
            "E3003",
            "E3004",
            "E3022",
            "E3023",
            "E4003",
            "E4010",
            "E2002",
            "E2003",
            "E2007",
            "E9009",
        ),
    ),
    Route(
        "GET",
        "/challenges",
        handlers.list_challenges,
        "The caller's challenges, newest first",
        "challenges",
        flag=flags.CHALLENGES,
        auth="user",
        response=ChallengeList,
        rate_limit="challenges",
        query=(
            ("status", "filter by status"),
            ("mode", "filter by mode"),
            ("limit", "1 to 100, default 20"),
            ("cursor", "next_cursor of the previous page"),
        ),
    ),
    Route(
        "GET",
        "/challenges/{challenge_id}",
        handlers.get_challenge,
        "A challenge (parties and admin only)",
        "challenges",
        flag=flags.CHALLENGES,
        auth="any",
        response=ChallengeOut,
        rate_limit="challenges",
        errors=("E3010",),
    ),
    Route(
        "GET",
        "/challenges/{challenge_id}/events",
        handlers.challenge_events,
        "A challenge's state history and events",
        "challenges",
        flag=flags.CHALLENGES,
        auth="any",
        response=ChallengeEvents,
        rate_limit="challenges",
        errors=("E3010",),
    ),
    _action("send", lifecycle.send, "Creator sends the invitation (DRAFT → AWAITING_COUNTERPARTY)"),
    _action(
        "confirm",
        lifecycle.confirm,
        "SOLO: creator locks intent (→ COMPLETED or AWAITING_RESOLUTION)",
        ("E4020", "E2004"),
    ),
    _action("accept", lifecycle.accept, "Counterparty accepts", ("E3011", "E3012", "E3013", "E3015")),
    _action(
        "verify",
        lifecycle.verify,
        "Run gatekeeper verification (wallets, then funds checks)",
        ("E4020", "E2004", "E2002"),
    ),
    _action(
        "respond",
        lifecycle.respond,
        "ENFORCED: submit your response; both → AWAITING_RESOLUTION",
        ("E3013",),
        body=RespondBody,
        body_fields=("response",),
    ),
    _action(
        "complete", lifecycle.complete, "Confirm completion; both → COMPLETED with the final attestation", ("E4020",)
    ),
    _action(
        "resolve",
        lifecycle.resolve,
        "Propose (parties) or decide (admin) the outcome",
        ("E3020", "E3021"),
        body=ResolveBody,
        body_fields=("outcome", "resolution_data"),
    ),
    _action("dispute", lifecycle.dispute, "Dispute within the dispute window", ("E3020",)),
    _action("cancel", lifecycle.cancel, "Creator cancels before intent lock"),
    Route(
        "POST",
        "/challenges/{challenge_id}/stake",
        handlers.stake,
        "Hold a stake on the ledger (FIRE honesty bond, ENFORCED base stake); Idempotency-Key honoured",
        "challenges",
        flag=flags.CHALLENGES,
        auth="user",
        body=StakeBody,
        response=ChallengeOut,
        rate_limit="challenges",
        errors=("E3010", "E3013", "E3014", "E4003", "E5011", "E5012", "E9007", "E9009"),
    ),
    Route(
        "GET",
        "/proof/{challenge_id}",
        proof.get_proof,
        "Public proof: HTML page with a QR code, or JSON (Accept: application/json) with every hash input",
        "proof",
        flag=flags.CHALLENGES,
        errors=("E3010",),
    ),
]
