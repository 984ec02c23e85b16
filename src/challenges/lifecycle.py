"""The user actions of SPEC §7 for SOLO and GATEKEEPER: who may act, which move it makes, what it writes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from challenges import attestation, modes, stakes, store, transitions
from challenges.deadlines import next_deadline
from challenges.transitions import Change
from core.auth import Principal
from core.clock import format_time, parse_time
from core.context import Services
from core.errors import ApiError
from core.ids import new_id

Action = Callable[..., Awaitable[None]]
OUTCOMES = ("CREATOR_WIN", "COUNTERPARTY_WIN", "DRAW", "NO_CONTEST")
DEFAULT_VERIFICATION_TIMEOUT_SECONDS = 3600
DEFAULT_DISPUTE_TIMEOUT_SECONDS = 72 * 3600
OUTCOME_PROPOSED = "challenge.outcome_proposed"


def actor(principal: Principal) -> str:
    return "admin" if principal.is_admin else f"user:{principal.user_id}"


def event_payload(challenge: dict[str, Any], status: str, **extra: Any) -> dict[str, Any]:
    return {
        "challenge_id": challenge["id"],
        "mode": challenge["mode"],
        "status": status,
        "from_status": challenge["status"],
        **extra,
    }


def ensure_action(challenge: dict[str, Any], action: str) -> None:
    if modes.action_allowed(challenge["mode"], challenge["status"], action):
        return
    raise ApiError(
        "E3014",
        f"'{action}' is not possible for a {challenge['mode']} challenge in {challenge['status']}",
        {"action": action, "status": challenge["status"], "mode": challenge["mode"]},
    )


def ensure_before(challenge: dict[str, Any], column: str, now: datetime, code: str, message: str | None = None) -> None:
    """Refuse with `code` once the challenge's `column` deadline has passed (no deadline: always open)."""
    deadline = challenge[column]
    if deadline and parse_time(deadline) <= now:
        raise ApiError(code, message, {column: deadline})


def require_role(role: str, *allowed: str) -> None:
    if role not in allowed:
        raise ApiError("E9007", "Only " + " or ".join(name.lower() for name in allowed) + " may do this")


def with_deadline(change: Change, to_status: str) -> Change:
    """Keep next_deadline_at in step with the status the change lands in."""
    merged = {**change.challenge, **change.set_columns}
    change.set_columns["next_deadline_at"] = next_deadline(change.challenge["mode"], to_status, merged)
    return change


async def send(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    require_role(role, "CREATOR")
    ensure_action(challenge, "send")
    now = services.now()
    accept_deadline = challenge["expires_at"]
    if challenge["mode"] == modes.ENFORCED:
        config = (
            await services.db.prepare("SELECT accept_timeout_seconds FROM enforced_configs WHERE challenge_id = ?")
            .bind(challenge["id"])
            .first()
        )
        accept_deadline = format_time(now + timedelta(seconds=int(config["accept_timeout_seconds"])))
    to = modes.AWAITING_COUNTERPARTY
    change = Change(
        challenge,
        actor(principal),
        "invitation sent",
        to,
        {"accept_deadline": accept_deadline},
        events=[
            (
                "challenge.invitation_sent",
                event_payload(challenge, to, accept_deadline=accept_deadline),
                challenge["counterparty_user_id"],
            )
        ],
    )
    await transitions.apply(services.db, with_deadline(change, to), now)


def attestation_statements(
    services: Services, change: Change, kind_terms: list[tuple[str, dict[str, Any]]], now: datetime
) -> None:
    for kind, terms in kind_terms:
        change.extra.append(
            attestation.attestation_statement(services.db, change.challenge["id"], kind, terms, now, change.guard())
        )


async def confirm(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    """SOLO: lock the creator's intent (after its gatekeeper checks, if any), then complete or await resolution."""
    require_role(role, "CREATOR")
    ensure_action(challenge, "confirm")
    from challenges import verification

    outcome = await verification.run(services, challenge, sides=("CREATOR",))
    if outcome.pending:
        raise ApiError("E4020", "The creator's wallet is not verified yet", {"pending": outcome.pending})
    now = services.now()
    if outcome.failed:
        await verification.apply_failure(services, challenge, outcome, principal)
        return
    stamp = format_time(now)
    initiator = attestation.side_terms(challenge, "CREATOR", outcome.party("CREATOR"), stamp)
    initiator_hash = attestation.digest(initiator)
    columns: dict[str, Any] = {"intent_locked_at": stamp, "initiator_hash": initiator_hash}
    kinds = [("INITIATOR", initiator)]
    if challenge["resolution_due_at"]:
        to = modes.AWAITING_RESOLUTION
    else:
        to = modes.COMPLETED
        final = attestation.final_terms(challenge["id"], initiator_hash, None, None, stamp)
        columns |= {"completed_at": stamp, "final_hash": attestation.digest(final)}
        kinds.append(("FINAL", final))
    change = Change(
        challenge,
        actor(principal),
        "confirmed",
        to,
        columns,
        via=modes.INTENT_LOCKED,
        events=[("challenge.intent_locked", event_payload(challenge, modes.INTENT_LOCKED), None)],
    )
    if to == modes.COMPLETED:
        change.events.append(
            ("challenge.completed", event_payload(challenge, to, final_hash=columns["final_hash"]), None)
        )
    outcome.add_statements(services, change, now)
    attestation_statements(services, change, kinds, now)
    await transitions.apply(services.db, with_deadline(change, to), now)


async def accept(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    if challenge["mode"] not in modes.ACTION_MODES["accept"]:
        ensure_action(challenge, "accept")
    if role != "COUNTERPARTY":
        raise ApiError("E3012")
    status = challenge["status"]
    if status != modes.AWAITING_COUNTERPARTY:
        if status in {modes.DRAFT, modes.CANCELLED, modes.EXPIRED}:
            raise ApiError("E3011", f"The challenge is {status}", {"status": status})
        raise ApiError("E3015", details={"status": status})
    now = services.now()
    ensure_before(challenge, "accept_deadline", now, "E3013")
    if challenge["mode"] != modes.GATEKEEPER:
        from challenges import bonded

        await bonded.accept(services, challenge, principal)
        return
    timeout = services.env.int("GATEKEEPER_VERIFICATION_TIMEOUT_SECONDS", DEFAULT_VERIFICATION_TIMEOUT_SECONDS)
    to = modes.AWAITING_GATEKEEPER
    change = Change(
        challenge,
        actor(principal),
        "accepted",
        to,
        {
            "counterparty_user_id": principal.user_id,
            "accepted_at": format_time(now),
            "verification_deadline": format_time(now + timedelta(seconds=timeout)),
        },
        events=[
            ("challenge.accepted", event_payload(challenge, to), challenge["creator_user_id"]),
            ("challenge.gatekeeper_verification_required", event_payload(challenge, to), None),
        ],
    )
    await transitions.apply(services.db, with_deadline(change, to), now)
    # Verification runs at once; when a wallet is not verified yet or the chain is unreachable the
    # challenge simply waits in AWAITING_GATEKEEPER for `verify` (or the verification timeout).
    accepted = await store.load(services.db, challenge["id"])
    if accepted is not None and accepted["status"] == to:
        try:
            await verify(services, accepted, role, principal)
        except ApiError as error:
            if error.code not in {"E4020", "E2004", "E2002", "E3014"}:
                raise
            services.logger.info("gatekeeper_verification_deferred", challenge_id=challenge["id"], code=error.code)


async def verify(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    """GATEKEEPER: both wallets verified and every funds check passed → INTENT_LOCKED; a FAILED check cancels."""
    require_role(role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "verify")
    from challenges import verification

    outcome = await verification.run(services, challenge, sides=("CREATOR", "COUNTERPARTY"))
    if outcome.pending:
        raise ApiError("E4020", "Waiting for wallet verification", {"pending": outcome.pending})
    if outcome.failed:
        await verification.apply_failure(services, challenge, outcome, principal)
        return
    now = services.now()
    stamp = format_time(now)
    change = Change(challenge, actor(principal), "gatekeeper checks passed", modes.INTENT_LOCKED)
    outcome.add_statements(services, change, now)
    # The hashes commit to the check results, which this same batch writes: they come from the outcome.
    initiator = attestation.side_terms(challenge, "CREATOR", outcome.party("CREATOR"), stamp)
    counter = attestation.side_terms(challenge, "COUNTERPARTY", outcome.party("COUNTERPARTY"), stamp)
    change.set_columns = {
        "intent_locked_at": stamp,
        "initiator_hash": attestation.digest(initiator),
        "counter_hash": attestation.digest(counter),
    }
    change.events.append(
        (
            "challenge.intent_locked",
            event_payload(
                challenge,
                modes.INTENT_LOCKED,
                initiator_hash=change.set_columns["initiator_hash"],
                counter_hash=change.set_columns["counter_hash"],
            ),
            None,
        )
    )
    attestation_statements(services, change, [("INITIATOR", initiator), ("COUNTER", counter)], now)
    await transitions.apply(services.db, with_deadline(change, modes.INTENT_LOCKED), now)


async def party_actions(services: Services, challenge_id: str, action: str) -> dict[str, Any]:
    """Each party's latest `action` (COMPLETE, RESPOND, RESOLVE) on this challenge: user id → payload."""
    result = (
        await services.db.prepare(
            "SELECT user_id, payload FROM challenge_party_actions WHERE challenge_id = ? AND action = ?"
        )
        .bind(challenge_id, action)
        .all()
    )
    return {row["user_id"]: row["payload"] for row in result.results}


def _party_action_statement(
    services: Services, change: Change, user_id: str, action: str, payload: str | None, now: datetime
) -> Any:
    return transitions.guarded_insert(
        services.db,
        change,
        "INSERT OR REPLACE INTO challenge_party_actions (challenge_id, user_id, action, payload, created_at)"
        " SELECT ?, ?, ?, ?, ?",
        change.challenge["id"],
        user_id,
        action,
        payload,
        format_time(now),
    )


def _parties(challenge: dict[str, Any]) -> set[str]:
    return {party for party in (challenge["creator_user_id"], challenge["counterparty_user_id"]) if party}


async def finish(services: Services, change: Change, outcome: str | None, now: datetime) -> None:
    """Complete with the FINAL attestation over I, C and the outcome."""
    challenge = change.challenge
    stamp = format_time(now)
    final = attestation.final_terms(
        challenge["id"], challenge["initiator_hash"], challenge["counter_hash"], outcome, stamp
    )
    change.to_status = modes.COMPLETED
    change.set_columns |= {"completed_at": stamp, "outcome": outcome, "final_hash": attestation.digest(final)}
    change.events.append(
        (
            "challenge.completed",
            event_payload(challenge, modes.COMPLETED, outcome=outcome, final_hash=change.set_columns["final_hash"]),
            None,
        )
    )
    attestation_statements(services, change, [("FINAL", final)], now)
    await stakes.settle_into(services.db, change, outcome, now)
    await transitions.apply(services.db, with_deadline(change, modes.COMPLETED), now)


def _other_party(challenge: dict[str, Any], user_id: str | None) -> str | None:
    if user_id is None:
        return None
    if user_id == challenge["creator_user_id"]:
        return challenge["counterparty_user_id"]
    return challenge["creator_user_id"]


async def dispute_window_seconds(services: Services, challenge: dict[str, Any]) -> int | None:
    """How long the other party has to dispute before the timeout job settles (ENFORCED); None: no timeout."""
    if challenge["mode"] != modes.ENFORCED:
        return None
    config = (
        await services.db.prepare("SELECT dispute_timeout_seconds FROM enforced_configs WHERE challenge_id = ?")
        .bind(challenge["id"])
        .first()
    )
    return int(config["dispute_timeout_seconds"]) if config else DEFAULT_DISPUTE_TIMEOUT_SECONDS


def announce(change: Change, outcome: str, proposed_by: str | None, window_seconds: int | None, now: datetime) -> None:
    """Make `outcome` the standing proposal, announced in the same batch: `challenge.outcome_proposed` to the
    other party, a history entry, and (where a timeout settles it) a dispute window that starts right here.

    The event id is stored with the proposal, so the timeout job can tell an announced proposal from one
    that never was; an unannounced one never settles money.
    """
    challenge = change.challenge
    stamp = format_time(now)
    event_id = new_id()
    window_end = None
    if window_seconds is not None and challenge["status"] == modes.AWAITING_RESOLUTION:
        window_end = format_time(now + timedelta(seconds=window_seconds))
        change.set_columns["dispute_deadline"] = window_end
    change.set_columns |= {
        "proposed_outcome": outcome,
        "proposed_by": proposed_by,
        "proposed_at": stamp,
        "proposal_event_id": event_id,
    }
    change.record = True
    change.event_ids[OUTCOME_PROPOSED] = event_id
    payload = event_payload(
        challenge,
        change.to_status or challenge["status"],
        outcome=outcome,
        proposed_by=proposed_by,
        proposed_at=stamp,
        dispute_window_ends_at=window_end,
    )
    change.events.append((OUTCOME_PROPOSED, payload, _other_party(challenge, proposed_by)))


async def complete(
    services: Services,
    challenge: dict[str, Any],
    role: str,
    principal: Principal,
    accept_outcome: str | None = None,
) -> None:
    """Each party confirms; the second confirmation completes with the final attestation.

    After a proposal, a confirmation is an acceptance of that outcome and must say so (`accept_outcome`);
    only confirmations of the outcome standing now count, so none given before a proposal carries over to it.
    """
    require_role(role, "CREATOR", "COUNTERPARTY")
    if challenge["mode"] == modes.GATEKEEPER and challenge["status"] == modes.AWAITING_GATEKEEPER:
        raise ApiError("E4020")
    ensure_action(challenge, "complete")
    proposed = challenge["proposed_outcome"]
    if accept_outcome != proposed:
        details = {"proposed_outcome": proposed, "accept_outcome": accept_outcome}
        if accept_outcome is None:
            message = f"{proposed} is proposed: send accept_outcome {proposed} to accept it, or dispute"
        elif proposed is None:
            message = "No outcome is proposed: complete without accept_outcome, or propose one with resolve"
        else:
            message = f"accept_outcome {accept_outcome} is not the proposed outcome {proposed}"
        raise ApiError("E3024", message, details)
    now = services.now()
    user_id = principal.user_id or ""
    confirmations = await party_actions(services, challenge["id"], "COMPLETE")
    confirmations[user_id] = proposed
    accepted = {party for party, outcome in confirmations.items() if outcome == proposed}
    change = Change(challenge, actor(principal), "completion confirmed")
    change.extra.append(_party_action_statement(services, change, user_id, "COMPLETE", proposed, now))
    if challenge["mode"] == modes.SOLO or _parties(challenge) <= accepted:
        await finish(services, change, proposed, now)
        return
    await transitions.apply(services.db, change, now)


async def resolve(
    services: Services,
    challenge: dict[str, Any],
    role: str,
    principal: Principal,
    outcome: str | None,
    resolution_data: dict[str, Any] | None,
) -> None:
    """Parties propose an outcome: agreement completes, disagreement disputes; the admin decides a dispute."""
    if outcome is None:
        from challenges import oracle

        if role not in {"CREATOR", "COUNTERPARTY", "ADMIN"}:
            raise ApiError("E9007")
        await oracle.resolve_from_feed(services, challenge, actor(principal))
        return
    if outcome not in OUTCOMES:
        raise ApiError(
            "E3021",
            details={"fields": [{"field": "outcome", "message": f"must be one of {list(OUTCOMES)}", "type": "enum"}]},
        )
    if not modes.action_allowed(challenge["mode"], challenge["status"], "resolve"):
        raise ApiError("E3020", details={"status": challenge["status"]})
    now = services.now()
    data = json.dumps(resolution_data, separators=(",", ":")) if resolution_data is not None else None
    change = Change(challenge, actor(principal), f"resolved {outcome}", set_columns={"resolution_data": data})
    if role == "ADMIN":
        await finish(services, change, outcome, now)
        return
    require_role(role, "CREATOR", "COUNTERPARTY")
    if challenge["status"] == modes.DISPUTED:
        raise ApiError("E9007", "A disputed challenge is resolved by a moderator")
    if challenge["mode"] == modes.SOLO:
        await finish(services, change, outcome, now)
        return
    await _propose(services, change, principal.user_id or "", outcome, now)


async def _propose(services: Services, change: Change, user_id: str, outcome: str, now: datetime) -> None:
    """A party's outcome: the other's same proposal → COMPLETED; a different one → DISPUTED; none → announced."""
    challenge = change.challenge
    proposals = await party_actions(services, challenge["id"], "RESOLVE")
    theirs = proposals.get(_other_party(challenge, user_id))
    if theirs is None and proposals.get(user_id) == outcome and challenge["proposed_by"] == user_id:
        return  # the same proposal again: already announced, and its window does not restart
    change.extra.append(_party_action_statement(services, change, user_id, "RESOLVE", outcome, now))
    if theirs == outcome:
        # Both parties chose this outcome themselves: agreement, whatever the clock says.
        change.reason = f"parties agree: {outcome}"
        await finish(services, change, outcome, now)
        return
    if theirs is None:
        change.reason = f"outcome proposed: {outcome}"
        announce(change, outcome, user_id, await dispute_window_seconds(services, challenge), now)
        await transitions.apply(services.db, with_deadline(change, challenge["status"]), now)
        return
    # A different outcome disputes the standing proposal, so it must come within that proposal's window.
    ensure_before(challenge, "dispute_deadline", now, "E3020", "The dispute window has closed")
    change.to_status = modes.DISPUTED
    change.reason = "parties disagree"
    announce(change, outcome, user_id, None, now)
    change.events.append(
        ("challenge.disputed", event_payload(challenge, modes.DISPUTED, reason="parties disagree"), None)
    )
    await transitions.apply(services.db, with_deadline(change, modes.DISPUTED), now)


async def dispute(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    require_role(role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "dispute")
    now = services.now()
    ensure_before(challenge, "dispute_deadline", now, "E3020", "The dispute window has closed")
    change = Change(
        challenge,
        actor(principal),
        "disputed",
        modes.DISPUTED,
        events=[("challenge.disputed", event_payload(challenge, modes.DISPUTED), None)],
    )
    await transitions.apply(services.db, with_deadline(change, modes.DISPUTED), now)


async def cancel(services: Services, challenge: dict[str, Any], role: str, principal: Principal) -> None:
    if role not in {"CREATOR", "ADMIN"}:
        raise ApiError("E9007", "Only the creator may cancel")
    ensure_action(challenge, "cancel")
    now = services.now()
    change = Change(
        challenge,
        actor(principal),
        "cancelled",
        modes.CANCELLED,
        events=[("challenge.cancelled", event_payload(challenge, modes.CANCELLED), None)],
    )
    await stakes.refund_into(services.db, change, now)
    await transitions.apply(services.db, with_deadline(change, modes.CANCELLED), now)


async def respond(
    services: Services, challenge: dict[str, Any], role: str, principal: Principal, response: str
) -> None:
    """ENFORCED: each party responds before the response deadline; both → AWAITING_RESOLUTION, dispute clock on."""
    require_role(role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "respond")
    now = services.now()
    ensure_before(challenge, "response_deadline", now, "E3013", "The response deadline has passed")
    user_id = principal.user_id or ""
    responded = set(await party_actions(services, challenge["id"], "RESPOND")) | {user_id}
    change = Change(challenge, actor(principal), "response submitted")
    change.extra.append(_party_action_statement(services, change, user_id, "RESPOND", response, now))
    change.events.append(
        ("challenge.response_submitted", event_payload(challenge, challenge["status"], responder=user_id), None)
    )
    if _parties(challenge) <= responded:
        # Until a party proposes an outcome this window can only end in NO_CONTEST (all refunded);
        # a proposal restarts it from its own announcement.
        seconds = await dispute_window_seconds(services, challenge) or DEFAULT_DISPUTE_TIMEOUT_SECONDS
        change.to_status = modes.AWAITING_RESOLUTION
        change.set_columns["dispute_deadline"] = format_time(now + timedelta(seconds=seconds))
        change = with_deadline(change, modes.AWAITING_RESOLUTION)
    await transitions.apply(services.db, change, now)
