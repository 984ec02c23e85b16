"""GET /invite/{challenge_id}?token=…: the invited counterparty reviews the terms, proves the wallet, answers."""

from __future__ import annotations

from typing import Any

from chain.networks import NETWORKS
from challenges import invites, modes, store
from challenges.store import Aggregate, InvitationRecord
from core.clock import parse_time
from core.context import RequestContext
from core.http import Request, Response
from pages.html import definition_list, document, error_page, escape, page_response, wallet_controls

NATIVE_DECIMALS = 18  # every supported network's native asset (ETH, POL, BNB)
_MODE_WORDS = {
    modes.GATEKEEPER: "Each side proves its wallet and that it holds at least the amounts below. Nothing is staked.",
    modes.FIRE: "Each side stakes the honesty bond below. The side that loses forfeits its bond.",
    modes.ENFORCED: "Deadlines to accept, respond and dispute, with an optional base stake from each side.",
}
_STATUS_WORDS = {
    modes.AWAITING_COUNTERPARTY: "waiting for your answer",
    modes.AWAITING_GATEKEEPER: "accepted; the wallet and funds checks are running",
    modes.INTENT_LOCKED: "accepted; intent is locked",
    modes.ACTIVE: "accepted and active",
    modes.AWAITING_RESOLUTION: "accepted; waiting for its outcome",
    modes.COMPLETED: "completed",
    modes.CANCELLED: "cancelled",
    modes.EXPIRED: "expired",
    modes.DISPUTED: "disputed",
}


def _not_found() -> Response:
    # The same answer for an unknown challenge and a wrong token: the page never says which.
    return error_page(
        404,
        "This invitation link does not work",
        "Check that you opened the whole link from your email or message. If it still fails, ask the person who"
        " invited you for the link again.",
    )


def _expired() -> Response:
    return error_page(
        410, "This invitation has expired", "The time to answer this invitation has passed. Nothing was accepted."
    )


def _native(min_balance: str) -> str:
    """Base units of a native asset as a whole-unit decimal string (exact, no float): 1500000000000000000 → 1.5."""
    value = int(min_balance)
    whole, fraction = divmod(value, 10**NATIVE_DECIMALS)
    text = str(fraction).rjust(NATIVE_DECIMALS, "0").rstrip("0")
    return f"{whole}.{text}" if text else str(whole)


def _check_text(check: dict[str, Any]) -> str:
    symbol = check["currency_symbol"] or ("the network's coin" if check["asset_type"] == "NATIVE" else "the token")
    amount = check["min_balance"]
    if check["asset_type"] == "NATIVE":
        return f"at least {_native(amount)} {symbol} ({amount} base units)"
    return f"at least {amount} base units of {symbol} (token {check['token_address']})"


def _side(label: str, side: dict[str, Any]) -> str:
    checks = "".join(f"<li>{escape(_check_text(check))}</li>" for check in side["funds_checks"])
    rows = definition_list([("Wallet", side["wallet_address"]), ("Network", side["network"])])
    return (
        f'<section class="card"><h3>{escape(label)}</h3>{rows}'
        + (f"<p>Must hold:</p><ul>{checks}</ul>" if checks else '<p class="muted">No funds check.</p>')
        + "</section>"
    )


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def _stakes_html(aggregate: Aggregate) -> str:
    fire, enforced = aggregate.fire_config, aggregate.enforced_config
    rows: list[tuple[str, str]] = []
    if aggregate.challenge.mode == modes.FIRE and fire is not None:
        rows.append(("Honesty bond", f"{fire.honesty_bond_amount} {fire.currency_code} from each side"))
        if fire.resolution_strategy == "ORACLE":
            rows.append(
                (
                    "Decided by",
                    f"a price feed ({fire.oracle_feed_address} on {fire.oracle_network}): the creator wins if its"
                    f" answer is {'at least' if fire.oracle_comparator == 'gte' else 'at most'} {fire.oracle_threshold}"
                    f" after {fire.oracle_resolve_after}",
                )
            )
        else:
            rows.append(("Decided by", "the two of you, or a moderator if you disagree"))
    if aggregate.challenge.mode == modes.ENFORCED and enforced is not None:
        if enforced.stake_amount:
            rows.append(
                ("Base stake", f"{enforced.stake_amount} {enforced.currency_code or ''} from each side".strip())
            )
        rows.append(("Time to respond", f"{_duration(enforced.response_timeout_seconds)} after intent is locked"))
        rows.append(("Dispute window", _duration(enforced.dispute_timeout_seconds)))
    if not rows:
        return ""
    return "<h2>Stakes and rules</h2>" + definition_list(rows)


def _invited_wallet(aggregate: Aggregate) -> tuple[str | None, str | None]:
    """The wallet (and network name) the counterparty must prove, when the challenge names one."""
    for requirement in aggregate.wallet_requirements:
        if requirement.side == "COUNTERPARTY":
            return requirement.wallet_address, requirement.network
    return aggregate.challenge.counterparty_wallet, None


def _chain_id(network_name: str | None) -> int | None:
    return next((network.chain_id for network in NETWORKS if network.name == network_name), None)


def _answered(aggregate: Aggregate, can_act: bool) -> str:
    """What replaces the controls once the invitation cannot be answered any more."""
    challenge = aggregate.challenge
    if can_act:
        return ""
    if challenge.status == modes.AWAITING_COUNTERPARTY:
        text = "The time to answer this invitation has passed."
    else:
        text = f"This invitation cannot be answered any more: the challenge is {_STATUS_WORDS.get(challenge.status, challenge.status)}."
    link = ""
    if challenge.intent_locked_at:
        link = f' <a href="/proof/{escape(challenge.id)}">View the proof</a>'
    return f'<div id="status" class="ok" role="status">{escape(text)}{link}</div>'


def render(ctx: RequestContext, aggregate: Aggregate, invitation: InvitationRecord) -> Response:
    challenge = aggregate.challenge
    deadline = challenge.accept_deadline
    can_act = challenge.status == modes.AWAITING_COUNTERPARTY and (deadline is None or parse_time(deadline) > ctx.now())
    wallet, network = _invited_wallet(aggregate)
    overview = definition_list(
        [
            ("Mode", challenge.mode),
            ("Status", _STATUS_WORDS.get(challenge.status, challenge.status)),
            ("Answer by", deadline or ""),
            ("Challenge ends", challenge.expires_at or ""),
            ("Outcome due", challenge.resolution_due_at or ""),
            ("Link valid until", invitation.expires_at),
        ]
    )
    requirements = store.requirements_view(aggregate)
    sides = ""
    if requirements:
        sides = "<h2>What each side must prove</h2>" + "".join(
            _side(label, requirements[key]) for key, label in (("creator", "The creator"), ("counterparty", "You"))
            if key in requirements
        )  # fmt: skip
    description = f'<h2>Terms</h2><p class="terms">{escape(challenge.description)}</p>' if challenge.description else ""
    you = (
        f'<p>You answer with the wallet <span class="mono">{escape(wallet)}</span>'
        + (f" on {escape(network)}" if network else "")
        + ".</p>"
        if wallet
        else "<p>You answer with the wallet of your account.</p>"
    )
    body = (
        '<p class="eyebrow">TattleHash invitation</p>'
        f"<h1>{escape(challenge.title)}</h1>"
        f"<p>{escape(_MODE_WORDS.get(challenge.mode, ''))}</p>"
        f"{overview}{description}{sides}{_stakes_html(aggregate)}"
        '<p class="muted">This page never shows a balance: checks say only whether a wallet holds at least the'
        " amount.</p>"
    )
    if not can_act:
        closed = document(f"Invitation · {challenge.title}", body + _answered(aggregate, can_act))
        return page_response(closed, with_script=False)
    config = {
        "page": "invite",
        "challenge_id": challenge.id,
        "wallet": wallet,
        "chain_id": _chain_id(network),
        "network": network,
        "wallet_challenge": None,
        "can_act": True,
        "proof_path": f"/proof/{challenge.id}",
    }
    controls = you + wallet_controls(connect_label="Connect wallet", decision=True)
    return page_response(document(f"Invitation · {challenge.title}", body + controls, config=config))


async def invite_page(request: Request, ctx: RequestContext) -> Response:
    """One round trip (the aggregate and its invitation); a wrong token or unknown challenge is the same 404."""
    challenge_id = request.path_params["challenge_id"]
    token = request.query.get("token", "")
    aggregate, invitation = await store.load_with_invitation(ctx.db, challenge_id, invites.PURPOSE)
    verdict = invites.check(invitation, challenge_id, token, ctx.now()) if aggregate else invites.Verdict.INVALID
    if verdict is invites.Verdict.INVALID or aggregate is None or invitation is None:
        return _not_found()
    if verdict is invites.Verdict.EXPIRED:
        return _expired()
    return render(ctx, aggregate, invitation)
