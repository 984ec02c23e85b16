"""Proof of funds: threshold checks pinned to one block, keyed balance commitments, attestation statements.

Request budget: checking k requirements on one network costs exactly ONE HTTP request to the node once
that endpoint's chain id and a recent head of it are known, whatever k is; different networks are checked
concurrently. The request is one JSON-RPC batch where every read names the same explicit block number N:
``eth_blockNumber`` (the endpoint's new head, remembered for the next check), ``eth_getCode`` of each
distinct token (no code -> not a token), then one read per distinct (asset, token, wallet):
``eth_getBalance(wallet, N)`` or ``eth_call(balanceOf(wallet), N)``.

Everything is per endpoint (chain.pinned): N is the newest head THIS endpoint reported within
FUNDS_BLOCK_MAX_AGE_SECONDS (default 15, about one Ethereum block), so one provider's head never pins
another provider's read. Without one the check first asks that endpoint for its head: two requests, and
on an endpoint this isolate has not met yet that first request is ``[eth_chainId, eth_blockNumber]``, so
an endpoint on another chain is found out once and then left out. A remembered N the endpoint does not
know (a lagging backend, a reset dev chain) makes it re-read its own head; any other failure moves on to
the next endpoint, healthiest first, with hedging (chain.rpc).

Why an explicit N at all: a batch is not a snapshot. Nodes answer the items of a batch one by one (some
providers fan them out to different backends), so reads at "latest" can straddle a new block and the
reported block would not be the one the balances came from. The price of one request is that N may
be up to the max age old: the proof states exactly which block it describes.

The balance never leaves this module: results carry only PASSED/FAILED and the keyed commitment
``HMAC-SHA256(k, f"{balance}:{salt}")`` with a fresh 32-byte salt that is stored server-side, never
returned, and ``k = HMAC-SHA256(HMAC_SECRET, "tattlehash/funds-commitment/v1")``. Keyed, because the salt
sits beside the commitment: with plain sha256 a copy of the database alone would brute-force any
balance in seconds (balances are small numbers). The server re-verifies a claimed balance on request
(verify_commitment; POST /gatekeeper/v2/funds/attestations/{id}/verify).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from chain import erc20
from chain.address import InvalidAddress, normalize_address
from chain.blockcache import BlockCache
from chain.hexutil import parse_data, parse_quantity, to_quantity
from chain.networks import Network, UnsupportedNetwork, network_by_name, usable_networks
from chain.pinned import read_pinned
from chain.provider import HEDGE_DELAY_SECONDS, build_rpc_client
from chain.rpc import JsonRpcClient, RpcCall, RpcCallError, RpcError
from challenges import store as challenge_store
from core.auth import Principal
from core.config import Env
from core.context import Services
from core.errors import ApiError
from core.ids import is_uuid4, new_id, random_hex
from core.logging import Logger
from db.port import Database, Statement
from gatekeeper import funds_store
from gatekeeper.funds_store import AssetType, FundsStatus, NewAttestation, StoredAttestation

__all__ = [
    "ASSET_TYPES",
    "CHECK_DEADLINE_SECONDS",
    "COMMITMENT_SCHEME",
    "PROOF_TYPE",
    "RPC_POLICY",
    "AssetType",
    "FundsRequirement",
    "FundsResult",
    "FundsStatus",
    "RpcFactory",
    "RpcPolicy",
    "StoredAttestation",
    "attestation_record",
    "attestation_statement",
    "attestation_statements",
    "balance_commitment",
    "build_requirement",
    "check_requirements",
    "commitment_key",
    "default_rpc_factory",
    "ensure_challenge_access",
    "parse_balance",
    "parse_min_balance",
    "reverify",
    "verify_commitment",
]

ASSET_TYPES: tuple[AssetType, ...] = ("NATIVE", "ERC20")
PROOF_TYPE: Final = "OPAQUE_V1"

UINT256_LIMIT = 2**256
MAX_AMOUNT_DIGITS = 78  # len(str(2**256 - 1))
SALT_BYTES = 32
COMMITMENT_SCHEME = "HMAC-SHA256-V1"
# A commitment from before keying, wrapped in place: HMAC(key, "sha256:" + the old sha256 hex). The old value
# (brute-forceable with its salt) is gone from the row; a claimed balance still checks against the wrap.
WRAPPED_SCHEME = "HMAC-SHA256-WRAPPED-V1"
# Legacy rows one scheduled run re-keys at most.
REKEY_BATCH = 200
# Domain separation: the session MAC and any later use of HMAC_SECRET never share this key.
_COMMITMENT_KEY_LABEL = b"tattlehash/funds-commitment/v1"
# Whole-check budget: per-attempt timeouts times retries times endpoints can add up to minutes, and a
# caller waiting that long has given up; past this the answer is 502 E2004, never a hang.
CHECK_DEADLINE_SECONDS = 25.0

RpcFactory = Callable[[Network], JsonRpcClient]


@dataclass(frozen=True)
class RpcPolicy:
    """Retry/backoff/hedging for funds reads: an interactive request, so shorter than a background job's."""

    retries: int = 2
    backoff_base: float = 0.2
    backoff_max: float = 1.0
    # None: no hedging (every attempt waits for its own answer or timeout before the next endpoint).
    hedge_delay: float | None = HEDGE_DELAY_SECONDS


RPC_POLICY = RpcPolicy()


@dataclass(frozen=True)
class FundsRequirement:
    """One threshold to check: `wallet_address` holds at least `min_balance` base units of the asset."""

    wallet_address: str
    network: Network
    asset_type: AssetType
    min_balance: int
    token_address: str | None = None
    requirement_id: str | None = None
    challenge_id: str | None = None

    def __post_init__(self) -> None:
        # Programming errors, not user input (build_requirement validates that): fail loudly.
        if normalize_address(self.wallet_address) != self.wallet_address:
            raise ValueError("wallet_address must be normalized (lowercase 0x + 40 hex)")
        if self.asset_type not in ASSET_TYPES:
            raise ValueError(f"asset_type must be one of {ASSET_TYPES}")
        if (self.asset_type == "ERC20") != (self.token_address is not None):
            raise ValueError("token_address is required for ERC20 and forbidden for NATIVE")
        if self.token_address is not None and normalize_address(self.token_address) != self.token_address:
            raise ValueError("token_address must be normalized (lowercase 0x + 40 hex)")
        if isinstance(self.min_balance, bool) or not isinstance(self.min_balance, int):
            raise ValueError("min_balance must be an int")
        if not 0 <= self.min_balance < UINT256_LIMIT:
            raise ValueError("min_balance must be in [0, 2^256)")


@dataclass(frozen=True)
class FundsResult:
    """The outcome of one requirement; holds no balance, only its salted commitment."""

    requirement: FundsRequirement
    status: FundsStatus
    block_number: int
    provider_host: str
    balance_commitment: str
    # Kept out of repr: with the commitment it would let anyone who sees a log line test balance guesses.
    salt: str = field(repr=False)
    # Chosen up front so the caller can reference the attestation in the same batch that stores it.
    attestation_id: str = field(default_factory=new_id)

    @property
    def passed(self) -> bool:
        return self.status == "PASSED"


# -- input validation ---------------------------------------------------------------------------------


def parse_min_balance(value: object) -> int:
    """A threshold from API input: a string of decimal digits, 0 <= n < 2^256; else 400 E2005."""
    details = {"field": "min_balance"}
    # A JSON number is refused even when integral: beyond 2^53 it has already lost precision in transit.
    if not isinstance(value, str):
        raise ApiError("E2005", "min_balance must be a string of decimal digits (base units)", details)
    # isascii() first: str.isdigit() also accepts digits of other scripts ("٣") and superscripts.
    if not value or not value.isascii() or not value.isdigit():
        raise ApiError(
            "E2005",
            "min_balance must contain only the digits 0-9: no sign, decimal point, exponent or hex",
            details,
        )
    # Length before int() so hostile input never reaches the big-number conversion.
    if len(value) > MAX_AMOUNT_DIGITS:
        raise ApiError("E2005", f"min_balance has more than {MAX_AMOUNT_DIGITS} digits", details)
    number = int(value)
    if number >= UINT256_LIMIT:
        raise ApiError("E2005", "min_balance must be below 2^256", details)
    return number


def build_requirement(
    env: Env,
    *,
    wallet_address: object,
    network: object,
    asset_type: object,
    min_balance: object,
    token_address: object = None,
    requirement_id: str | None = None,
    challenge_id: str | None = None,
) -> FundsRequirement:
    """Validate API input into a requirement, raising the documented 4xx for each kind of bad field.

    NATIVE with a token_address is 400 E9004 (a contradictory request, reported like any other
    validation failure with the field named), not E2007: nothing is wrong with the token itself.
    """
    try:
        wallet = normalize_address(wallet_address)
    except InvalidAddress as error:
        raise ApiError("E2001", str(error), {"field": "wallet_address"}) from None
    try:
        chain = network_by_name(network, env)  # type: ignore[arg-type]
    except UnsupportedNetwork:
        usable = [known.name for known in usable_networks(env)]
        raise ApiError("E2002", details={"field": "network", "supported": usable}) from None
    if asset_type not in ASSET_TYPES:
        raise ApiError(
            "E9004",
            details={
                "fields": [{"field": "asset_type", "message": "must be NATIVE or ERC20", "type": "literal_error"}]
            },
        )
    token: str | None = None
    if asset_type == "ERC20":
        if token_address is None:
            raise ApiError("E2003", details={"field": "token_address"})
        try:
            token = normalize_address(token_address)
        except InvalidAddress as error:
            raise ApiError("E2007", f"token_address: {error}", {"field": "token_address"}) from None
    elif token_address is not None:
        raise ApiError(
            "E9004",
            details={
                "fields": [
                    {
                        "field": "token_address",
                        "message": "must be omitted for NATIVE checks",
                        "type": "unexpected_field",
                    }
                ]
            },
        )
    return FundsRequirement(
        wallet_address=wallet,
        network=chain,
        asset_type=asset_type,  # type: ignore[arg-type]
        min_balance=parse_min_balance(min_balance),
        token_address=token,
        requirement_id=requirement_id,
        challenge_id=challenge_id,
    )


async def ensure_challenge_access(db: Database, challenge_id: str, principal: Principal | None) -> None:
    """Allow linking a check to a challenge only for its parties (or an operator); else 404 E3010.

    Anonymous callers get 401 E9005 before any lookup: they can never be a party, and asking them to
    sign in is more useful than a 404 (and reveals nothing either).
    """
    if principal is None:
        raise ApiError("E9005", "Sign in to link a funds check to a challenge")
    parties = await challenge_store.parties_of(db, challenge_id)
    if parties is None:
        raise ApiError("E3010", details={"challenge_id": challenge_id})
    if principal.is_admin:
        return
    if principal.user_id is None or principal.user_id not in parties.user_ids:
        # Same answer as "does not exist": a non-party must not learn which ids are real.
        raise ApiError("E3010", details={"challenge_id": challenge_id})


# -- commitments ----------------------------------------------------------------------------------------


def commitment_key(env: Env) -> bytes:
    """k = HMAC-SHA256(HMAC_SECRET, label): the commitment key; 500 E9001 when HMAC_SECRET is not set."""
    return hmac.new(env.hmac_secret().encode(), _COMMITMENT_KEY_LABEL, hashlib.sha256).digest()


def balance_commitment(balance: int, salt: str, key: bytes) -> str:
    """HMAC-SHA256(key, "<balance in decimal>:<salt hex>"), hex: binds the attestation to the balance seen."""
    return hmac.new(key, f"{balance}:{salt}".encode(), hashlib.sha256).hexdigest()


def _legacy_commitment(balance: int, salt: str) -> str:
    return hashlib.sha256(f"{balance}:{salt}".encode()).hexdigest()


def wrap_legacy(legacy: str, key: bytes) -> str:
    """The keyed wrap of a pre-0008 sha256 commitment (WRAPPED_SCHEME)."""
    return hmac.new(key, f"sha256:{legacy}".encode(), hashlib.sha256).hexdigest()


def verify_commitment(
    balance: int, salt: str, commitment: str, key: bytes, scheme: str | None = COMMITMENT_SCHEME
) -> bool:
    """Whether a claimed balance matches a stored commitment (for the party, audits and disputes).

    `scheme` None is a row from before migration 0008 not yet re-keyed: plain sha256(balance ":" salt);
    WRAPPED_SCHEME is such a row after the scheduled job re-keyed it.
    """
    if scheme is None:
        expected = _legacy_commitment(balance, salt)
    elif scheme == WRAPPED_SCHEME:
        expected = wrap_legacy(_legacy_commitment(balance, salt), key)
    else:
        expected = balance_commitment(balance, salt, key)
    return hmac.compare_digest(expected, commitment)


async def rekey_legacy_commitments(services: Services, *, limit: int = REKEY_BATCH) -> dict[str, int]:
    """The scheduled job: wrap up to `limit` pre-0008 commitments with the server key, in one batch."""
    db = services.db
    legacy = await funds_store.legacy_commitments(db, limit)
    if not legacy:
        return {"rekeyed": 0}
    key = commitment_key(services.env)
    statements = [
        funds_store.rekey_statement(db, row, wrap_legacy(row.balance_commitment, key), WRAPPED_SCHEME) for row in legacy
    ]
    results = await db.batch(statements)
    return {"rekeyed": sum(result.changes for result in results)}


def _result(requirement: FundsRequirement, balance: int, block: int, host: str, key: bytes) -> FundsResult:
    salt = random_hex(SALT_BYTES)
    return FundsResult(
        requirement=requirement,
        status="PASSED" if balance >= requirement.min_balance else "FAILED",
        block_number=block,
        provider_host=host,
        balance_commitment=balance_commitment(balance, salt, key),
        salt=salt,
    )


# -- chain reads ------------------------------------------------------------------------------------------


DEFAULT_BLOCK_MAX_AGE_SECONDS = 15.0


def block_max_age(env: Env) -> float:
    """FUNDS_BLOCK_MAX_AGE_SECONDS: how old an endpoint's remembered head may be to pin a check (0: always ask)."""
    raw = env.get("FUNDS_BLOCK_MAX_AGE_SECONDS").strip()
    try:
        return float(raw) if raw else DEFAULT_BLOCK_MAX_AGE_SECONDS
    except ValueError:
        return DEFAULT_BLOCK_MAX_AGE_SECONDS


def _memory(services: Services) -> BlockCache | None:
    cache = services.block_cache
    return cache if isinstance(cache, BlockCache) else None


def default_rpc_factory(services: Services) -> RpcFactory:
    """Clients over the deployment's endpoints with RPC_POLICY, the isolate's endpoint health and hedging."""
    memory = _memory(services)

    def build(network: Network) -> JsonRpcClient:
        # RPC_POLICY is read per call, not bound at import, so a deployment (or a test) can swap it.
        policy = RPC_POLICY
        return build_rpc_client(
            network,
            services.env,
            services.http,
            retries=policy.retries,
            backoff_base=policy.backoff_base,
            backoff_max=policy.backoff_max,
            hedge_delay=policy.hedge_delay,
            health=memory.health if memory is not None else None,
            # The services' clock, so the breaker's cool-downs follow the same time as everything else.
            clock=lambda: services.clock.now().timestamp(),
        )

    return build


_ReadKey = tuple[str, str | None, str]  # (asset_type, token_address, wallet_address)


def _read_key(requirement: FundsRequirement) -> _ReadKey:
    return (requirement.asset_type, requirement.token_address, requirement.wallet_address)


def _bad_token(network: Network, token: str | None, message: str) -> ApiError:
    return ApiError("E2007", message, {"field": "token_address", "token_address": token, "network": network.name})


async def _check_network(
    client: JsonRpcClient,
    network: Network,
    requirements: Sequence[FundsRequirement],
    logger: Logger,
    services: Services,
    commit_key: bytes,
) -> list[FundsResult]:
    tokens = list(dict.fromkeys(r.token_address for r in requirements if r.token_address is not None))
    # Two thresholds on the same holding need one read, not two.
    reads = list(dict.fromkeys(_read_key(r) for r in requirements))

    def calls_at(block: int) -> list[RpcCall]:
        at = to_quantity(block)
        calls = [RpcCall("eth_getCode", [token, at], decode=parse_data) for token in tokens]
        for asset_type, token, wallet in reads:
            if asset_type == "NATIVE":
                calls.append(RpcCall("eth_getBalance", [wallet, at], decode=parse_quantity))
            else:
                assert token is not None
                calls.append(erc20.balance_of_call(token, wallet, block))
        return calls

    def wrong_chain(host: str, chain_id: int) -> None:
        logger.error("funds_rpc_wrong_chain", network=network.name, host=host, expected=network.chain_id, got=chain_id)

    try:
        answer = await read_pinned(
            client,
            calls_at,
            chain_id=network.chain_id,
            memory=_memory(services),
            now=services.clock.now().timestamp(),
            max_age=block_max_age(services.env),
            on_wrong_chain=wrong_chain,
        )
    except RpcCallError as error:
        # Only balanceOf can legitimately revert: that is the token's fault, not the node's.
        index = error.index
        if index is not None and index >= len(tokens):
            token = reads[index - len(tokens)][1]
            if token is not None:
                raise _bad_token(
                    network, token, "token_address reverted balanceOf(address): not an ERC-20 token"
                ) from None
        raise
    codes = answer.results[: len(tokens)]
    for token, code in zip(tokens, codes, strict=True):
        if not code:
            raise _bad_token(network, token, f"token_address has no contract code on {network.name}")
    balances: dict[_ReadKey, int] = {}
    for key, value in zip(reads, answer.results[len(tokens) :], strict=True):
        if key[0] == "ERC20":
            try:
                balances[key] = erc20.decode_balance_of(value)
            except erc20.NotAnErc20Answer:
                raise _bad_token(network, key[1], "token_address does not answer balanceOf(address)") from None
        else:
            balances[key] = value
    return [_result(r, balances[_read_key(r)], answer.block, answer.host, commit_key) for r in requirements]


def _as_api_error(network: Network, error: BaseException, logger: Logger) -> ApiError:
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnsupportedNetwork):
        return ApiError("E2002", details={"network": network.name})
    if isinstance(error, RpcError):
        # RpcError's text is URL-free by contract; it stays in the log, the caller gets the network.
        logger.warning("funds_rpc_unavailable", network=network.name, host=error.host, reason=error.reason)
        return ApiError("E2004", details={"network": network.name})
    # Anything else (a bug, a cancelled task) still must not become a 500 that looks like our data.
    logger.error(
        "funds_check_failed",
        network=network.name,
        error_type=type(error).__name__,
        # File and line names only, never values: enough to find the bug without leaking a balance.
        where=traceback.format_tb(error.__traceback__)[-3:],
    )
    return ApiError("E2004", details={"network": network.name})


async def check_requirements(
    services: Services,
    requirements: Sequence[FundsRequirement],
    *,
    rpc_factory: RpcFactory | None = None,
    deadline: float = CHECK_DEADLINE_SECONDS,
) -> list[FundsResult]:
    """Check every requirement; results in input order. Writes nothing (see attestation_statements).

    Per network: 1 HTTP request with a recent head, else 2 (see the module docstring), networks concurrently. Raises ApiError:
    502 E2004 when a network's RPC fails or `deadline` seconds pass, 400 E2007 for a token that is not
    an ERC-20 contract, 400 E2002 when a network has no endpoint.
    """
    if not requirements:
        return []
    # Before any RPC: without HMAC_SECRET no commitment can be made, and the node must not be asked.
    commit_key = commitment_key(services.env)
    build = rpc_factory or default_rpc_factory(services)
    logger = services.logger
    groups: dict[str, list[int]] = {}
    networks: dict[str, Network] = {}
    for index, requirement in enumerate(requirements):
        groups.setdefault(requirement.network.name, []).append(index)
        networks[requirement.network.name] = requirement.network

    async def run(name: str) -> list[FundsResult]:
        network = networks[name]
        client = build(network)
        return await _check_network(
            client, network, [requirements[i] for i in groups[name]], logger, services, commit_key
        )

    names = list(groups)
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(run(name) for name in names), return_exceptions=True), timeout=deadline
        )
    except TimeoutError:
        logger.warning("funds_rpc_deadline", networks=names, deadline_seconds=deadline)
        raise ApiError(
            "E2004", f"Blockchain RPC did not answer within {deadline:g} seconds", {"networks": names}
        ) from None
    results: list[FundsResult | None] = [None] * len(requirements)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # Raised outside the except that caught it, so no RPC exception gets chained to the response.
            raise _as_api_error(networks[name], outcome, logger)
        for index, result in zip(groups[name], outcome, strict=True):
            results[index] = result
    return [result for result in results if result is not None]


# -- persistence (the SQL is gatekeeper.funds_store's) --------------------------------------------------------


def attestation_record(result: FundsResult, now: datetime, *, requested_by: str | None = None) -> NewAttestation:
    """The stored form of one check's result."""
    requirement = result.requirement
    return NewAttestation(
        attestation_id=result.attestation_id,
        challenge_id=requirement.challenge_id,
        requirement_id=requirement.requirement_id,
        requested_by=requested_by,
        wallet_address=requirement.wallet_address,
        network=requirement.network.name,
        chain_id=requirement.network.chain_id,
        asset_type=requirement.asset_type,
        token_address=requirement.token_address,
        min_balance=requirement.min_balance,
        status=result.status,
        block_number=result.block_number,
        provider_host=result.provider_host,
        balance_commitment=result.balance_commitment,
        salt=result.salt,
        commitment_scheme=COMMITMENT_SCHEME,
        checked_at=now,
    )


def attestation_statement(
    db: Database,
    result: FundsResult,
    now: datetime,
    *,
    requested_by: str | None = None,
    guard_sql: str | None = None,
    guard_params: tuple[Any, ...] = (),
) -> Statement:
    """The INSERT of one attestation, for the caller's own batch; with a guard, only if the guard finds a row."""
    record = attestation_record(result, now, requested_by=requested_by)
    return funds_store.insert_statement(db, record, guard_sql=guard_sql, guard_params=guard_params)


def attestation_statements(
    db: Database,
    results: Sequence[FundsResult],
    now: datetime,
    *,
    requested_by: str | None = None,
    guard_sql: str | None = None,
    guard_params: tuple[Any, ...] = (),
) -> list[Statement]:
    """One attestation INSERT per result, in order (see funds_store.insert_statement)."""
    records = [attestation_record(result, now, requested_by=requested_by) for result in results]
    return funds_store.insert_statements(db, records, guard_sql=guard_sql, guard_params=guard_params)


# -- re-verification ----------------------------------------------------------------------------------------


async def reverify(
    services: Services, attestation_id: str, balance: object, principal: Principal
) -> tuple[StoredAttestation, bool]:
    """Whether `balance` is the one a stored check committed to; only its owner (or an operator) may ask.

    The owner is whoever requested the check, or for a challenge's gatekeeper check the user of that
    side. Anyone else gets 404 E2008, the same as for an unknown id. The balance is input here, never
    output: the answer is a yes or no about the caller's own claim.
    """
    claimed = parse_balance(balance)
    # Looked up only for well-formed ids: anything else cannot exist.
    stored = await funds_store.load_attestation(services.db, attestation_id) if is_uuid4(attestation_id) else None
    if stored is None or not (
        principal.is_admin
        or (principal.user_id is not None and principal.user_id in (stored.requested_by, stored.owner_user_id))
    ):
        raise ApiError("E2008", details={"attestation_id": attestation_id})
    key = commitment_key(services.env)
    return stored, verify_commitment(claimed, stored.salt, stored.balance_commitment, key, stored.commitment_scheme)


def parse_balance(value: object) -> int:
    """A claimed balance: decimal digits, 0 <= n < 2^256, else 400 E9004 naming the field."""
    if (
        not isinstance(value, str)
        or not value
        or not value.isascii()
        or not value.isdigit()
        or len(value) > MAX_AMOUNT_DIGITS
        or int(value) >= UINT256_LIMIT
    ):
        raise ApiError(
            "E9004",
            details={
                "fields": [
                    {
                        "field": "balance",
                        "message": "must be a string of decimal digits (base units), below 2^256",
                        "type": "value_error",
                    }
                ]
            },
        )
    return int(value)
