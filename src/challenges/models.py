"""Request and response models of the challenge API (they also generate its OpenAPI schemas)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from core.schemas import OutModel, StrictModel

UINT256_LIMIT = 2**256


def _amount(value: str) -> str:
    """Decimal string of base units, 0 ≤ n < 2^256: no sign, no fraction, no exponent, no hex."""
    if not value.isascii() or not value.isdigit() or len(value) > 78:
        raise ValueError("must be a decimal string of base units (digits only)")
    if int(value) >= UINT256_LIMIT:
        raise ValueError("must be below 2^256")
    return str(int(value))


Amount = Annotated[
    str, Field(min_length=1, max_length=78, json_schema_extra={"pattern": "^[0-9]{1,78}$"}), AfterValidator(_amount)
]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]
Mode = Literal["SOLO", "GATEKEEPER", "FIRE", "ENFORCED"]
Outcome = Literal["CREATOR_WIN", "COUNTERPARTY_WIN", "DRAW", "NO_CONTEST"]


class FundsCheckSpec(StrictModel):
    asset_type: Literal["NATIVE", "ERC20"]
    token_address: str | None = None
    min_balance: Amount
    currency_symbol: str | None = Field(default=None, max_length=16)


class SideRequirements(StrictModel):
    wallet_address: str
    network: str = Field(max_length=64)
    funds_checks: list[FundsCheckSpec] = Field(default_factory=list, max_length=10)


class GatekeeperRequirements(StrictModel):
    creator: SideRequirements | None = None
    counterparty: SideRequirements | None = None


class OracleConfig(StrictModel):
    network: str = Field(max_length=64)
    feed_address: str
    comparator: Literal["gte", "lte"]
    threshold: str = Field(pattern=r"^-?[0-9]{1,78}$", description="Integer answer of the feed, in feed decimals")
    resolve_after: str = Field(description="RFC 3339 time after which the oracle is read")


class FireConfig(StrictModel):
    honesty_bond_amount: str = Field(max_length=78)
    currency_code: str = Field(min_length=1, max_length=16)
    resolution_strategy: Literal["ORACLE", "MODERATOR"]
    oracle: OracleConfig | None = None


class EnforcedConfig(StrictModel):
    accept_timeout_seconds: int | None = None
    response_timeout_seconds: int | None = None
    dispute_timeout_seconds: int | None = None
    stake_amount: str | None = Field(default=None, max_length=78)
    currency_code: str | None = Field(default=None, min_length=1, max_length=16)


class ChallengeCreate(StrictModel):
    """One body for every mode; which fields a mode needs is checked with the mode's own error codes."""

    mode: str = Field(description="SOLO | GATEKEEPER | FIRE | ENFORCED")
    title: Title
    description: Description | None = None
    resolution_due_at: str | None = None
    expires_at: str | None = None
    counterparty: str | None = Field(default=None, description="A user id or a wallet address")
    counterparty_user_id: str | None = None
    counterparty_wallet: str | None = None
    gatekeeper_requirements: GatekeeperRequirements | None = None
    fire_config: FireConfig | None = None
    enforced_config: EnforcedConfig | None = None


class ResolveBody(StrictModel):
    outcome: str | None = Field(
        default=None,
        description="CREATOR_WIN | COUNTERPARTY_WIN | DRAW | NO_CONTEST; omit on a FIRE ORACLE challenge to read the feed now",
    )
    resolution_data: dict[str, Any] | None = None


class CompleteBody(StrictModel):
    accept_outcome: Outcome | None = Field(
        default=None,
        description="Required once an outcome is proposed, and equal to it: completing then means accepting"
        " that outcome (409 E3024 otherwise). Leave out while nothing is proposed.",
    )


class RespondBody(StrictModel):
    response: str = Field(min_length=1, max_length=5000)


class StakeBody(StrictModel):
    type: Literal["HONESTY_BOND", "BASE"]
    amount: str = Field(max_length=78, description="Decimal string of base units")
    currency_code: str = Field(min_length=1, max_length=16)
    payment_reference: str | None = Field(default=None, max_length=200)


class EmptyBody(StrictModel):
    pass


class FundsCheckOut(OutModel):
    asset_type: str
    token_address: str | None
    min_balance: str
    currency_symbol: str | None
    status: Literal["PENDING", "PASSED", "FAILED"]
    checked_at: str | None


class SideOut(OutModel):
    wallet_address: str
    network: str
    wallet_status: Literal["PENDING", "VERIFIED"]
    funds_checks: list[FundsCheckOut]


class StakeOut(OutModel):
    id: str
    user_id: str
    type: str
    amount: str
    currency_code: str
    status: str


class ProposalOut(OutModel):
    """The standing outcome proposal: what the other party accepts (same outcome) or disputes."""

    outcome: Outcome
    proposed_by: str | None = Field(description="User id of the proposing party")
    proposed_at: str | None = Field(description="When it was recorded and announced (challenge.outcome_proposed)")
    dispute_window_ends_at: str | None = Field(
        description="ENFORCED: without a dispute by then the timeout job completes with this outcome;"
        " null where no timeout settles a proposal"
    )
    event_id: str | None = Field(description="Id of the challenge.outcome_proposed event that announced it")


class ChallengeOut(OutModel):
    id: str
    mode: Mode
    status: str
    title: str
    description: str | None
    creator_user_id: str
    counterparty_user_id: str | None
    counterparty_wallet: str | None
    expires_at: str | None
    deadlines: dict[str, str | None]
    created_at: str
    updated_at: str
    intent_locked_at: str | None
    completed_at: str | None
    initiator_hash: str | None
    counter_hash: str | None
    final_hash: str | None
    requirements: dict[str, SideOut]
    stakes: list[StakeOut]
    outcome: str | None
    proposed_outcome: ProposalOut | None
    settlement: dict[str, str] | None
    fire_config: dict[str, Any] | None = None
    enforced_config: dict[str, Any] | None = None


class ChallengeList(OutModel):
    items: list[ChallengeOut]
    next_cursor: str | None


class HistoryEntry(OutModel):
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None
    created_at: str


class EventOut(OutModel):
    id: str
    type: str
    created_at: str
    data: dict[str, Any]


class ChallengeEvents(OutModel):
    history: list[HistoryEntry]
    events: list[EventOut]
