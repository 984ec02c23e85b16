"""The user actions of SPEC §7 for SOLO and GATEKEEPER: who may act, which move it makes, what it writes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from challenges import attestation, bonded, invites, modes, oracle, outcomes, stakes, transitions, verification
from challenges.outcomes import announce, dispute_window_seconds, finish, other_party, parties, party_action_statement
from challenges.store import Aggregate
from challenges.transitions import (
    Change,
    actor,
    add_attestations,
    ensure_action,
    ensure_before,
    event_payload,
    require_role,
    with_deadline,
)
from core.auth import Principal
from core.clock import format_time
from core.context import Services
from core.errors import ApiError

Action = Callable[..., Awaitable[Aggregate | None]]
DEFAULT_VERIFICATION_TIMEOUT_SECONDS = 3600
# Re-exported for the timeout job and tests: they live with the other outcome rules.
DEFAULT_DISPUTE_TIMEOUT_SECONDS = outcomes.DEFAULT_DISPUTE_TIMEOUT_SECONDS
OUTCOMES = outcomes.OUTCOMES


async def send(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    challenge = aggregate.challenge
    require_role(aggregate.role, "CREATOR")
    ensure_action(challenge, "send")
    now = services.now()
    accept_deadline = challenge.expires_at
    if challenge.mode == modes.ENFORCED:
        config = aggregate.enforced_config
        assert config is not None  # an ENFORCED challenge is created with its config
        accept_deadline = format_time(now + timedelta(seconds=int(config.accept_timeout_seconds)))
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
                challenge.counterparty_user_id,
            )
        ],
    )
    # The counterparty's invitation link (challenges.invites) is written in the same batch.
    change.extra.append(invites.issue_statement(services.db, services.env, change, accept_deadline, now))
    return await transitions.apply(services.db, with_deadline(change, to), now)


async def confirm(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    """SOLO: lock the creator's intent (after its gatekeeper checks, if any), then complete or await resolution.

    With funds checks the chain is read between the load and the write: one more round trip (to the chain).
    """
    challenge = aggregate.challenge
    require_role(aggregate.role, "CREATOR")
    ensure_action(challenge, "confirm")
    outcome = await verification.run(services, aggregate, sides=("CREATOR",))
    if outcome.pending:
        raise ApiError("E4020", "The creator's wallet is not verified yet", {"pending": outcome.pending})
    now = services.now()
    if outcome.failed:
        return await verification.apply_failure(services, challenge, outcome, principal)
    stamp = format_time(now)
    initiator = attestation.side_terms(challenge, "CREATOR", outcome.party("CREATOR"), stamp)
    initiator_hash = attestation.digest(initiator)
    columns: dict[str, Any] = {"intent_locked_at": stamp, "initiator_hash": initiator_hash}
    kinds = [("INITIATOR", initiator)]
    if challenge.resolution_due_at:
        to = modes.AWAITING_RESOLUTION
    else:
        to = modes.COMPLETED
        final = attestation.final_terms(challenge.id, initiator_hash, None, None, stamp)
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
    add_attestations(services.db, change, kinds, now)
    return await transitions.apply(services.db, with_deadline(change, to), now)


async def accept(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    challenge, role = aggregate.challenge, aggregate.role
    if challenge.mode not in modes.ACTION_MODES["accept"]:
        ensure_action(challenge, "accept")
    if role != "COUNTERPARTY":
        raise ApiError("E3012")
    status = challenge.status
    if status != modes.AWAITING_COUNTERPARTY:
        if status in {modes.DRAFT, modes.CANCELLED, modes.EXPIRED}:
            raise ApiError("E3011", f"The challenge is {status}", {"status": status})
        raise ApiError("E3015", details={"status": status})
    now = services.now()
    ensure_before("accept_deadline", challenge.accept_deadline, now, "E3013")
    if challenge.mode != modes.GATEKEEPER:
        return await bonded.accept(services, aggregate, principal)
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
            ("challenge.accepted", event_payload(challenge, to), challenge.creator_user_id),
            ("challenge.gatekeeper_verification_required", event_payload(challenge, to), None),
        ],
    )
    accepted = await transitions.apply(services.db, with_deadline(change, to), now)
    # Verification runs at once, from the aggregate the accept batch read back (no re-read); when a wallet
    # is not verified yet or the chain is unreachable the challenge simply waits in AWAITING_GATEKEEPER
    # for `verify` (or the verification timeout). Verifying reads the chain, then writes: 2 more round trips
    # (one to the chain, one batch) when it proceeds, none when a wallet is still unverified.
    if accepted is not None and accepted.challenge.status == to:
        accepted = replace(accepted, role=role)
        try:
            return await verify(services, accepted, principal)
        except ApiError as error:
            if error.code not in {"E4020", "E2004", "E2002", "E3014"}:
                raise
            services.logger.info("gatekeeper_verification_deferred", challenge_id=challenge.id, code=error.code)
    return accepted


async def verify(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    """GATEKEEPER: both wallets verified and every funds check passed → INTENT_LOCKED; a FAILED check cancels.

    The chain is read between the load and the write: one more round trip (to the chain, not to D1).
    """
    challenge = aggregate.challenge
    require_role(aggregate.role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "verify")
    outcome = await verification.run(services, aggregate, sides=("CREATOR", "COUNTERPARTY"))
    if outcome.pending:
        raise ApiError("E4020", "Waiting for wallet verification", {"pending": outcome.pending})
    if outcome.failed:
        return await verification.apply_failure(services, challenge, outcome, principal)
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
    add_attestations(services.db, change, [("INITIATOR", initiator), ("COUNTER", counter)], now)
    return await transitions.apply(services.db, with_deadline(change, modes.INTENT_LOCKED), now)


async def complete(
    services: Services,
    aggregate: Aggregate,
    principal: Principal,
    accept_outcome: str | None = None,
) -> Aggregate | None:
    """Each party confirms; the second confirmation completes with the final attestation.

    After a proposal, a confirmation is an acceptance of that outcome and must say so (`accept_outcome`);
    only confirmations of the outcome standing now count, so none given before a proposal carries over to it.
    """
    challenge, role = aggregate.challenge, aggregate.role
    require_role(role, "CREATOR", "COUNTERPARTY")
    if challenge.mode == modes.GATEKEEPER and challenge.status == modes.AWAITING_GATEKEEPER:
        raise ApiError("E4020")
    ensure_action(challenge, "complete")
    proposed = challenge.proposed_outcome
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
    confirmations = aggregate.actions("COMPLETE")
    confirmations[user_id] = proposed
    accepted = {party for party, outcome in confirmations.items() if outcome == proposed}
    change = Change(challenge, actor(principal), "completion confirmed")
    change.extra.append(party_action_statement(services, change, user_id, "COMPLETE", proposed, now))
    if challenge.mode == modes.SOLO or parties(challenge) <= accepted:
        return await finish(services, change, aggregate.held_stakes, proposed, now)
    return await transitions.apply(services.db, change, now)


async def resolve(
    services: Services,
    aggregate: Aggregate,
    principal: Principal,
    outcome: str | None,
    resolution_data: dict[str, Any] | None,
) -> Aggregate | None:
    """Parties propose an outcome: agreement completes, disagreement disputes; the admin decides a dispute."""
    challenge, role = aggregate.challenge, aggregate.role
    if outcome is None:
        if role not in {"CREATOR", "COUNTERPARTY", "ADMIN"}:
            raise ApiError("E9007")
        # Reads the price feed between the load and the write: one more round trip (to the chain).
        return await oracle.resolve_from_feed(services, aggregate, actor(principal))
    if outcome not in OUTCOMES:
        raise ApiError(
            "E3021",
            details={"fields": [{"field": "outcome", "message": f"must be one of {list(OUTCOMES)}", "type": "enum"}]},
        )
    if not modes.action_allowed(challenge.mode, challenge.status, "resolve"):
        raise ApiError("E3020", details={"status": challenge.status})
    now = services.now()
    data = json.dumps(resolution_data, separators=(",", ":")) if resolution_data is not None else None
    change = Change(challenge, actor(principal), f"resolved {outcome}", set_columns={"resolution_data": data})
    if role == "ADMIN":
        return await finish(services, change, aggregate.held_stakes, outcome, now)
    require_role(role, "CREATOR", "COUNTERPARTY")
    if challenge.status == modes.DISPUTED:
        raise ApiError("E9007", "A disputed challenge is resolved by a moderator")
    if challenge.mode == modes.SOLO:
        return await finish(services, change, aggregate.held_stakes, outcome, now)
    return await _propose(services, aggregate, change, principal.user_id or "", outcome, now)


async def _propose(
    services: Services, aggregate: Aggregate, change: Change, user_id: str, outcome: str, now: datetime
) -> Aggregate | None:
    """A party's outcome: the other's same proposal → COMPLETED; a different one → DISPUTED; none → announced."""
    challenge = change.challenge
    proposals = aggregate.actions("RESOLVE")
    theirs = proposals.get(other_party(challenge, user_id) or "")
    if theirs is None and proposals.get(user_id) == outcome and challenge.proposed_by == user_id:
        return aggregate  # the same proposal again: already announced, and its window does not restart
    change.extra.append(party_action_statement(services, change, user_id, "RESOLVE", outcome, now))
    if theirs == outcome:
        # Both parties chose this outcome themselves: agreement, whatever the clock says.
        change.reason = f"parties agree: {outcome}"
        return await finish(services, change, aggregate.held_stakes, outcome, now)
    if theirs is None:
        change.reason = f"outcome proposed: {outcome}"
        announce(change, outcome, user_id, dispute_window_seconds(aggregate), now)
        return await transitions.apply(services.db, with_deadline(change, challenge.status), now)
    # A different outcome disputes the standing proposal, so it must come within that proposal's window.
    ensure_before("dispute_deadline", challenge.dispute_deadline, now, "E3020", "The dispute window has closed")
    change.to_status = modes.DISPUTED
    change.reason = "parties disagree"
    announce(change, outcome, user_id, None, now)
    change.events.append(
        ("challenge.disputed", event_payload(challenge, modes.DISPUTED, reason="parties disagree"), None)
    )
    return await transitions.apply(services.db, with_deadline(change, modes.DISPUTED), now)


async def dispute(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    challenge, role = aggregate.challenge, aggregate.role
    require_role(role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "dispute")
    now = services.now()
    ensure_before("dispute_deadline", challenge.dispute_deadline, now, "E3020", "The dispute window has closed")
    change = Change(
        challenge,
        actor(principal),
        "disputed",
        modes.DISPUTED,
        events=[("challenge.disputed", event_payload(challenge, modes.DISPUTED), None)],
    )
    return await transitions.apply(services.db, with_deadline(change, modes.DISPUTED), now)


async def cancel(services: Services, aggregate: Aggregate, principal: Principal) -> Aggregate | None:
    challenge, role = aggregate.challenge, aggregate.role
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
    stakes.refund_into(services.db, change, aggregate.held_stakes, now)
    return await transitions.apply(services.db, with_deadline(change, modes.CANCELLED), now)


async def respond(services: Services, aggregate: Aggregate, principal: Principal, response: str) -> Aggregate | None:
    """ENFORCED: each party responds before the response deadline; both → AWAITING_RESOLUTION, dispute clock on."""
    challenge, role = aggregate.challenge, aggregate.role
    require_role(role, "CREATOR", "COUNTERPARTY")
    ensure_action(challenge, "respond")
    now = services.now()
    ensure_before("response_deadline", challenge.response_deadline, now, "E3013", "The response deadline has passed")
    user_id = principal.user_id or ""
    responded = set(aggregate.actions("RESPOND")) | {user_id}
    change = Change(challenge, actor(principal), "response submitted")
    change.extra.append(party_action_statement(services, change, user_id, "RESPOND", response, now))
    change.events.append(
        ("challenge.response_submitted", event_payload(challenge, challenge.status, responder=user_id), None)
    )
    if parties(challenge) <= responded:
        # Until a party proposes an outcome this window can only end in NO_CONTEST (all refunded);
        # a proposal restarts it from its own announcement.
        seconds = dispute_window_seconds(aggregate) or DEFAULT_DISPUTE_TIMEOUT_SECONDS
        change.to_status = modes.AWAITING_RESOLUTION
        change.set_columns["dispute_deadline"] = format_time(now + timedelta(seconds=seconds))
        change = with_deadline(change, modes.AWAITING_RESOLUTION)
    return await transitions.apply(services.db, change, now)
