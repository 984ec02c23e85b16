"""Gatekeeper verification: each side's wallet verified by its own user, then every funds check, batched."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chain.networks import UnsupportedNetwork, network_by_name
from challenges import modes, store, transitions
from challenges.records import ChallengeRecord, FundsRequirementRecord, WalletRequirementRecord
from challenges.store import Aggregate
from challenges.transitions import Change, actor, event_payload, with_deadline
from core.auth import Principal
from core.clock import format_time
from core.context import Services
from core.errors import ApiError
from gatekeeper import funds


@dataclass
class CheckResult:
    """One funds requirement's result; the balance stays inside the funds service."""

    requirement: FundsRequirementRecord
    status: str
    attestation_id: str
    block_number: int
    balance_commitment: str


@dataclass
class Outcome:
    pending: list[str] = field(default_factory=list)
    verified_sides: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list)
    funds_results: list[Any] = field(default_factory=list)
    wallets: dict[str, WalletRequirementRecord] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(result.status == "FAILED" for result in self.results)

    def party(self, side: str) -> dict[str, Any] | None:
        """The side's wallet requirement and check results, as its hash commits to them."""
        wallet = self.wallets.get(side)
        if wallet is None:
            return None
        checks = [
            {
                "asset_type": r.requirement.asset_type,
                "token_address": r.requirement.token_address,
                "min_balance": r.requirement.min_balance,
                "currency_symbol": r.requirement.currency_symbol,
                "status": r.status,
                "block_number": r.block_number,
                "balance_commitment": r.balance_commitment,
                "attestation_id": r.attestation_id,
            }
            for r in self.results
            if r.requirement.side == side
        ]
        return {"wallet_address": wallet.wallet_address, "network": wallet.network, "funds_checks": checks}

    def add_statements(self, services: Services, change: Change, now: datetime) -> None:
        """Store results with the state change: all guarded, so a lost race stores nothing."""
        db = services.db
        stamp = format_time(now)
        guard_sql, guard_params = change.guard()
        change.extra.extend(
            funds.attestation_statements(db, self.funds_results, now, guard_sql=guard_sql, guard_params=guard_params)
        )
        for result in self.results:
            change.extra.append(
                store.funds_result_update(
                    db, change.guard(), result.requirement.id, result.status, result.attestation_id, stamp
                )
            )
        for side in self.verified_sides:
            change.extra.append(store.wallet_verified_update(db, change.guard(), change.challenge.id, side))


async def run(services: Services, aggregate: Aggregate, *, sides: tuple[str, ...]) -> Outcome:
    """Check wallets, then (only when all are verified) run every funds check at one block per network.

    Wallets and requirements come from the loaded aggregate; only the funds checks read the chain.
    """
    challenge = aggregate.challenge
    outcome = Outcome()
    users = {"CREATOR": challenge.creator_user_id, "COUNTERPARTY": challenge.counterparty_user_id}
    for wallet in aggregate.wallet_requirements:
        if wallet.side not in sides:
            continue
        outcome.wallets[wallet.side] = wallet
        if aggregate.wallet_verified(wallet.wallet_address, users[wallet.side]):
            outcome.verified_sides.append(wallet.side)
        else:
            outcome.pending.append(wallet.side.lower())
    if outcome.pending:
        return outcome
    requirements = [row for row in aggregate.funds_requirements if row.side in sides]
    if requirements:
        await _check_funds(services, challenge, requirements, outcome)
    return outcome


async def _check_funds(
    services: Services, challenge: ChallengeRecord, rows: list[FundsRequirementRecord], outcome: Outcome
) -> None:
    env = services.env
    try:
        requirements = [
            funds.FundsRequirement(
                wallet_address=row.wallet_address,
                network=network_by_name(row.network, env),
                asset_type=row.asset_type,
                token_address=row.token_address,
                min_balance=int(row.min_balance),
                requirement_id=row.id,
                challenge_id=challenge.id,
            )
            for row in rows
        ]
    except UnsupportedNetwork:
        raise ApiError("E2002", "A required network is no longer configured") from None
    results = await funds.check_requirements(services, requirements)
    for row, result in zip(rows, results, strict=True):
        outcome.results.append(
            CheckResult(row, result.status, result.attestation_id, result.block_number, result.balance_commitment)
        )
    outcome.funds_results = list(results)


async def apply_failure(
    services: Services, challenge: ChallengeRecord, outcome: Outcome, principal: Principal
) -> Aggregate | None:
    """A FAILED funds check cancels the challenge, keeping each requirement's PASSED/FAILED (never balances)."""
    now = services.now()
    failed = [
        {"side": r.requirement.side.lower(), "position": r.requirement.position, "status": r.status}
        for r in outcome.results
    ]
    change = Change(
        challenge,
        actor(principal),
        "gatekeeper funds check failed",
        modes.CANCELLED,
        events=[
            ("challenge.verification_failed", event_payload(challenge, modes.CANCELLED, checks=failed), None),
            ("challenge.cancelled", event_payload(challenge, modes.CANCELLED, reason="verification_failed"), None),
        ],
    )
    outcome.add_statements(services, change, now)
    return await transitions.apply(services.db, with_deadline(change, modes.CANCELLED), now)
