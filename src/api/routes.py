"""The route table: every endpoint, the flag and auth it needs, and the models it speaks."""

from __future__ import annotations

import json
from functools import lru_cache

from accounts import handlers as accounts
from accounts.credentials import resolve_principal
from api import system
from challenges import routes as challenge_routes
from core.app import App
from core.context import RequestContext
from core.http import Request, Response
from core.routing import Route
from gatekeeper import funds_api, wallet_api
from pages import routes as page_routes
from relay import routes as relay_routes
from relay.jobs import after_response


@lru_cache(maxsize=1)
def _openapi_body() -> bytes:
    from core.openapi import build_document

    document = build_document(ROUTES, title="TattleHash Gatekeeper API", version=system.VERSION)
    return json.dumps(document, separators=(",", ":")).encode()


async def openapi(request: Request, ctx: RequestContext) -> Response:
    return Response(200, _openapi_body(), {"content-type": "application/json"})


ROUTES: list[Route] = [
    Route("GET", "/health", system.health, "Service and database health", "system", response=system.Health),
    Route("GET", "/openapi.json", openapi, "This OpenAPI 3.1 document", "system", include_in_schema=False),
    Route(
        "POST",
        "/admin/api-keys",
        accounts.create_api_key,
        "Issue an API key (operators)",
        "admin",
        auth="admin",
        body=accounts.ApiKeyCreate,
        response=accounts.ApiKeyCreated,
        status=201,
        errors=("E9008",),
    ),
    Route(
        "GET",
        "/me",
        accounts.get_me,
        "The caller's profile: verified and pending contacts",
        "accounts",
        auth="user",
        response=accounts.Profile,
        rate_limit="accounts",
        extra=accounts.GET_ME_EXTRA,
    ),
    Route(
        "PATCH",
        "/me",
        accounts.patch_me,
        "Edit the caller's profile; a new email or phone is pending until its one-time code is entered",
        "accounts",
        auth="user",
        body=accounts.ProfilePatch,
        response=accounts.Profile,
        rate_limit="accounts",
        extra=accounts.PATCH_ME_EXTRA,
        errors=accounts.PATCH_ERRORS,
    ),
    Route(
        "POST",
        "/me/verify",
        accounts.verify_me,
        "Prove a pending email or phone with the one-time code sent to it",
        "accounts",
        auth="user",
        body=accounts.ContactVerify,
        response=accounts.Profile,
        rate_limit="accounts",
        extra=accounts.VERIFY_ME_EXTRA,
        errors=accounts.VERIFY_ERRORS,
    ),
    Route(
        "POST",
        "/gatekeeper/v2/wallet/challenge",
        wallet_api.create_challenge,
        "Create a one-time wallet ownership challenge (plain or EIP-4361 message)",
        "wallet",
        flag=wallet_api.FLAG,
        auth="optional",
        body=wallet_api.WalletChallengeCreate,
        response=wallet_api.WalletChallengeCreated,
        status=201,
        rate_limit="gatekeeper",
        errors=("E1001", "E1002"),
    ),
    Route(
        "POST",
        "/gatekeeper/v2/wallet/verify",
        wallet_api.verify,
        "Verify a signed challenge (EIP-191, EIP-1271 or ERC-6492) and get a session token",
        "wallet",
        flag=wallet_api.FLAG,
        auth="optional",
        body=wallet_api.WalletVerify,
        response=wallet_api.WalletVerified,
        rate_limit="gatekeeper",
        extra=wallet_api.VERIFY_EXTRA,
        errors=("E1003", "E1004", "E1005", "E1006", "E1007", "E1008", "E2004"),
    ),
    Route(
        "POST",
        "/gatekeeper/v2/funds/check",
        funds_api.check_funds,
        "Prove a wallet holds at least a threshold of an asset, without revealing the balance",
        "funds",
        flag=funds_api.FLAG,
        auth="optional",
        body=funds_api.FundsCheckRequest,
        response=funds_api.FundsCheckResult,
        rate_limit="gatekeeper",
        errors=funds_api.CHECK_ERRORS,
    ),
    Route(
        "POST",
        "/gatekeeper/v2/funds/attestations/{attestation_id}/verify",
        funds_api.verify_commitment,
        "The check's owner asks whether a balance is the one its keyed commitment binds (never reveals it)",
        "funds",
        flag=funds_api.FLAG,
        auth="any",
        body=funds_api.CommitmentVerifyRequest,
        response=funds_api.CommitmentVerifyResult,
        rate_limit="gatekeeper",
        errors=funds_api.VERIFY_ERRORS,
    ),
    Route(
        "GET",
        "/gatekeeper/v2/networks",
        funds_api.list_networks,
        "Networks usable for funds checks in this deployment (never their RPC URLs)",
        "funds",
        flag=funds_api.FLAG,
        response=funds_api.NetworkList,
        rate_limit="gatekeeper",
    ),
]

ROUTES.extend(challenge_routes.ROUTES)
ROUTES.extend(relay_routes.ROUTES)
ROUTES.extend(page_routes.ROUTES)


def build_app() -> App:
    # Every successful write may have recorded events: their first delivery attempt starts right after
    # the response (ctx.waitUntil on Workers, a background task locally).
    return App(ROUTES, authenticate=resolve_principal, after_write=after_response)
