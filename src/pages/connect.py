"""GET /connect: sign a wallet challenge with any browser wallet (one given by ?challenge_id=, or a new one)."""

from __future__ import annotations

from core.clock import format_time
from core.context import RequestContext
from core.http import Request, Response
from core.ids import is_uuid4
from gatekeeper import wallet_store
from pages.html import definition_list, document, error_page, page_response, wallet_controls


def _chain_number(caip2: str) -> int | None:
    _, _, number = caip2.partition(":")
    return int(number) if number.isdigit() else None


def _intro() -> str:
    return (
        '<p class="eyebrow">TattleHash</p><h1>Prove you control a wallet</h1>'
        "<p>Connect a browser wallet, read the message it will sign, and sign it. Signing proves the wallet is"
        " yours; it is free, sends no transaction and never reveals a balance.</p>"
    )


def _new_challenge_page() -> Response:
    config = {
        "page": "connect",
        "challenge_id": None,
        "wallet": None,
        "chain_id": None,
        "network": None,
        "wallet_challenge": None,
        "can_act": False,
        "proof_path": None,
    }
    body = _intro() + "<p>The message is made for the account and network your wallet uses.</p>"
    body += wallet_controls(connect_label="Connect wallet", decision=False)
    return page_response(document("Connect your wallet", body, config=config))


async def connect_page(request: Request, ctx: RequestContext) -> Response:
    """The page; a given challenge must exist, be pending, unexpired and anonymous (else a plain 4xx page)."""
    challenge_id = request.query.get("challenge_id", "").strip().lower()
    if not challenge_id:
        return _new_challenge_page()
    row = await wallet_store.load_challenge(ctx.db, challenge_id) if is_uuid4(challenge_id) else None
    if row is None:
        return error_page(
            404,
            "Signing request not found",
            "This link does not name a signing request. Check you opened the whole link.",
        )
    if row.status == "VERIFIED":
        return error_page(409, "Already signed", "This signing request was already used. Ask for a new one.")
    if row.status == "EXPIRED" or row.expires_at <= format_time(ctx.now()):
        return error_page(410, "Signing request expired", "This signing request has expired. Ask for a new one.")
    if row.requested_by is not None:
        return error_page(
            403,
            "Finish this in your app",
            "This signing request was made by an app you are signed in to: sign it there, not on this page.",
        )
    chain_id = _chain_number(row.chain_id)
    config = {
        "page": "connect",
        "challenge_id": None,
        "wallet": row.wallet_address,
        "chain_id": chain_id,
        "network": row.chain_id,
        "wallet_challenge": {"challenge_id": row.id, "message": row.message},
        "can_act": False,
        "proof_path": None,
    }
    body = _intro() + definition_list(
        [("Wallet", row.wallet_address), ("Network", row.chain_id), ("Valid until", row.expires_at)]
    )
    # The exact message is on the page before anything is connected or signed.
    controls = wallet_controls(connect_label="Connect wallet", decision=False, message=row.message)
    return page_response(document("Sign in with your wallet", body + controls, config=config))
