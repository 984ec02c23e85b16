"""Wallet ownership: issue one-time challenges and verify their signatures (EOA or EIP-1271), atomically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chain import eip1271
from chain.address import InvalidAddress, normalize_address, to_checksum_address
from chain.networks import Network, UnsupportedNetwork, network_by_caip2
from chain.rpc import JsonRpcClient, RpcError
from chain.signatures import (
    MalformedSignature,
    RecoveryBackend,
    UnrecoverableSignature,
    eip191_message_hash,
    recover_address,
    signature_to_bytes65,
)
from core.auth import issue_session
from core.clock import format_time
from core.config import Env
from core.errors import ApiError
from core.ids import is_uuid4, new_id, random_hex
from db.port import Database, QueryResult, Statement
from gatekeeper import messages, wallet_store
from gatekeeper.wallet_store import ChallengeRow, LinkPlan

__all__ = [
    "CHALLENGE_TTL_ENV",
    "DEFAULT_CHALLENGE_TTL_SECONDS",
    "NONCE_BYTES",
    "MessageFormat",
    "RpcFactory",
    "SignatureType",
    "VerifiedWallet",
    "WalletChallenge",
    "challenge_ttl",
    "create_challenge",
    "expire_due",
    "verify_challenge",
]

CHALLENGE_TTL_ENV = "WALLET_CHALLENGE_TTL_SECONDS"
DEFAULT_CHALLENGE_TTL_SECONDS = 600
_MAX_CHALLENGE_TTL_SECONDS = 86_400
# 128 bits from the OS CSPRNG, hex: also a valid EIP-4361 nonce (alphanumeric, >= 8 characters).
NONCE_BYTES = 16
# Commit attempts when another verification changes the wallet's owner between our read and our write.
_MAX_COMMIT_ATTEMPTS = 3

MessageFormat = Literal["plain", "siwe"]
SignatureType = Literal["EOA", "EIP1271"]
RpcFactory = Callable[[Network], JsonRpcClient]


@dataclass(frozen=True)
class WalletChallenge:
    """A stored challenge, as returned to whoever asked for it."""

    challenge_id: str
    wallet_address: str
    chain_id: str
    format: MessageFormat
    message: str
    nonce: str
    issued_at: str
    expires_at: str


@dataclass(frozen=True)
class VerifiedWallet:
    """The outcome of a winning verification; `session_token` must only ever go back to the caller."""

    challenge_id: str
    wallet_address: str
    chain_id: str
    verified_at: str
    user_id: str
    signature_type: SignatureType
    session_token: str
    session_expires_at: str
    new_user: bool
    relinked_from_user_id: str | None


def _field_error(field: str, message: str) -> ApiError:
    return ApiError("E9004", details={"fields": [{"field": field, "message": message, "type": "value_error"}]})


def challenge_ttl(env: Env) -> timedelta:
    """How long a challenge stays usable: WALLET_CHALLENGE_TTL_SECONDS, default 10 minutes, at most a day."""
    seconds = env.int(CHALLENGE_TTL_ENV, DEFAULT_CHALLENGE_TTL_SECONDS)
    if seconds <= 0:
        seconds = DEFAULT_CHALLENGE_TTL_SECONDS
    return timedelta(seconds=min(seconds, _MAX_CHALLENGE_TTL_SECONDS))


async def create_challenge(
    db: Database,
    env: Env,
    now: datetime,
    *,
    wallet_address: str,
    chain_id: str,
    caller_user_id: str | None,
    user_id: str | None = None,
    message_format: MessageFormat = "plain",
    domain: str | None = None,
    uri: str | None = None,
) -> WalletChallenge:
    """Store a PENDING challenge for `wallet_address` on `chain_id` (CAIP-2) and return the text to sign.

    `caller_user_id` is the authenticated caller (None when anonymous); it becomes the challenge's
    `requested_by`, and only that user may verify it then.
    """
    if user_id is not None and user_id != caller_user_id:
        # Never say whether the user exists: the answer is the same for any id that is not the caller's.
        raise ApiError("E9007", "user_id must be the caller's own user", {"field": "user_id"})
    try:
        address = normalize_address(wallet_address)
    except InvalidAddress as error:
        raise ApiError("E1001", str(error), {"field": "wallet_address"}) from None
    try:
        network = network_by_caip2(chain_id, env)
    except UnsupportedNetwork:
        raise ApiError(
            "E1002",
            "Unsupported chain: use a CAIP-2 id such as eip155:1 for a network this deployment serves",
            {"field": "chain_id"},
        ) from None

    challenge_id = new_id()
    nonce = random_hex(NONCE_BYTES)
    issued_at = format_time(now)
    expires_at = format_time(now + challenge_ttl(env))
    checksum = to_checksum_address(address)
    if message_format == "siwe":
        message = _siwe_text(env, domain, uri, checksum, network, nonce, issued_at, expires_at, challenge_id)
    else:
        if domain is not None or uri is not None:
            raise _field_error("domain" if domain is not None else "uri", "only allowed with format 'siwe'")
        message = messages.plain_message(
            checksum_address=checksum,
            caip2=network.caip2,
            network_name=network.name,
            nonce=nonce,
            issued_at=issued_at,
            expires_at=expires_at,
            challenge_id=challenge_id,
        )
    await wallet_store.insert_challenge(
        db, challenge_id, address, network.caip2, caller_user_id, message_format, message, nonce, issued_at, expires_at
    )
    return WalletChallenge(challenge_id, address, network.caip2, message_format, message, nonce, issued_at, expires_at)


def _siwe_text(
    env: Env,
    domain: str | None,
    uri: str | None,
    checksum: str,
    network: Network,
    nonce: str,
    issued_at: str,
    expires_at: str,
    challenge_id: str,
) -> str:
    if domain is None:
        raise _field_error("domain", "required with format 'siwe'")
    try:
        host = messages.normalize_domain(domain)
    except ValueError as error:
        raise _field_error("domain", str(error)) from None
    if not messages.domain_allowed(host, env.get("SIWE_ALLOWED_DOMAINS")):
        raise _field_error("domain", "is not an allowed sign-in domain (SIWE_ALLOWED_DOMAINS)")
    try:
        resource = messages.normalize_uri(uri, host) if uri is not None else f"https://{host}"
    except ValueError as error:
        raise _field_error("uri", str(error)) from None
    return messages.siwe_message(
        domain=host,
        checksum_address=checksum,
        uri=resource,
        chain_id=network.chain_id,
        nonce=nonce,
        issued_at=issued_at,
        expires_at=expires_at,
        request_id=challenge_id,
    )


async def expire_due(db: Database, now: datetime) -> int:
    """The scheduled job: PENDING challenges past their expiry become EXPIRED (bounded per run)."""
    return await wallet_store.expire_due(db, now)


async def verify_challenge(
    db: Database,
    env: Env,
    now: datetime,
    *,
    challenge_id: str,
    signature: str,
    caller_user_id: str | None,
    rpc_factory: RpcFactory,
    backend: RecoveryBackend | None = None,
    preloaded: QueryResult | None = None,
) -> VerifiedWallet:
    """Check `signature` over the challenge's message and, if it is the first to do so, mark it VERIFIED.

    The wallet goes to the caller's user when a bearer is present (re-linked from another user if need
    be: the signature is fresh proof of the key), else to the user it already belongs to, else to a
    user created for it. Raises ApiError with the SPEC §5 codes for every refusal. `preloaded` is the result of
    wallet_store.challenge_statement when it already ran in the caller's auth batch (one round trip saved).
    """
    # Normalise before checking so an upper-case UUID finds its row; anything that is not a UUIDv4 is
    # "not found" rather than a validation error, so ids cannot be probed by their shape.
    cid = challenge_id.strip().lower()
    if not is_uuid4(cid):
        raise ApiError("E1003")
    # Fail on missing configuration before the challenge is used up, not after.
    env.hmac_secret()

    row = await _load(db, cid, preloaded)
    _authorize(row, caller_user_id)
    await _ensure_pending(db, row, now)
    signature_type = await _authenticate(env, row, signature, rpc_factory, backend)

    for _ in range(_MAX_COMMIT_ATTEMPTS):
        plan = _plan(row, caller_user_id)
        verified_at = format_time(now)
        if await wallet_store.commit_link(db, row, plan, signature_type, now):
            token, session_expires_at = issue_session(env, plan.user_id, row.wallet_address, now)
            return VerifiedWallet(
                challenge_id=cid,
                wallet_address=row.wallet_address,
                chain_id=row.chain_id,
                verified_at=verified_at,
                user_id=plan.user_id,
                signature_type=signature_type,
                session_token=token,
                session_expires_at=session_expires_at,
                new_user=plan.new_user,
                relinked_from_user_id=plan.relinked_from,
            )
        # Lost: either another verification of this challenge won (409), it expired meanwhile (410), or
        # the wallet changed owner under us and the plan is stale (try again with a fresh read).
        row = await _load(db, cid)
        await _ensure_pending(db, row, now)
    raise ApiError("E9001", "The wallet is being verified concurrently; try again")


def preload_statements(db: Database, challenge_id: object) -> list[Statement]:
    """The verify's first read, for the auth batch: nothing when the id cannot name a challenge."""
    if not isinstance(challenge_id, str) or not is_uuid4(challenge_id.strip().lower()):
        return []
    return [wallet_store.challenge_statement(db, challenge_id.strip().lower())]


async def _load(db: Database, challenge_id: str, preloaded: QueryResult | None = None) -> ChallengeRow:
    row = wallet_store.challenge_from(preloaded) if preloaded is not None else None
    if row is None or row.id != challenge_id:
        row = await wallet_store.load_challenge(db, challenge_id)
    if row is None:
        raise ApiError("E1003")
    return row


def _authorize(row: ChallengeRow, caller_user_id: str | None) -> None:
    """A challenge requested by a signed-in user belongs to that user: only they may spend it."""
    requested_by = row.requested_by
    if requested_by is None:
        return
    if caller_user_id is None:
        raise ApiError("E9005", "This challenge was requested by a signed-in user; verify it with the same credentials")
    if caller_user_id != requested_by:
        raise ApiError("E9007", "This challenge belongs to another user")


async def _ensure_pending(db: Database, row: ChallengeRow, now: datetime) -> None:
    if row.status == "VERIFIED":
        raise ApiError("E1007")
    if row.status == "EXPIRED" or row.expires_at <= format_time(now):
        await wallet_store.expire_challenge(db, row.id)
        raise ApiError("E1004", details={"expired_at": row.expires_at})


async def _authenticate(
    env: Env,
    row: ChallengeRow,
    signature: str,
    rpc_factory: RpcFactory,
    backend: RecoveryBackend | None,
) -> SignatureType:
    address: str = row.wallet_address
    try:
        # Parsed up front (recover_address parses again) so format errors are E1008 even for contracts.
        signature65 = signature_to_bytes65(signature)
    except MalformedSignature as error:
        raise ApiError("E1008", details={"reason": str(error)}) from None
    try:
        message_hash = eip191_message_hash(row.message)
    except UnicodeEncodeError:
        raise ApiError("E1005") from None
    recovered: str | None
    try:
        recovered = recover_address(message_hash, signature, backend=backend)
    except UnrecoverableSignature:
        recovered = None
    if recovered == address:
        # Plain EOAs stop here: no RPC round trip for the common case.
        return "EOA"
    if await _contract_accepts(env, row, message_hash, signature65, rpc_factory):
        return "EIP1271"
    if recovered is None:
        raise ApiError("E1005", "Signature invalid: no signer can be recovered from it")
    raise ApiError("E1006", details={"expected": address, "recovered": recovered})


async def _contract_accepts(
    env: Env, row: ChallengeRow, message_hash: bytes, signature65: bytes, rpc_factory: RpcFactory
) -> bool:
    """EIP-1271 on the challenge's chain; an unreachable chain is 502, never a guess either way."""
    try:
        network = network_by_caip2(row.chain_id, env)
        client = rpc_factory(network)
    except UnsupportedNetwork:
        # The chain had endpoints when the challenge was made; without them now we cannot tell an
        # EOA's bad signature from a contract wallet's good one.
        raise ApiError("E2004", "No RPC endpoint is configured for this chain", {"chain_id": row.chain_id}) from None
    try:
        return await eip1271.is_valid_signature(client, row.wallet_address, message_hash, signature65)
    except RpcError:
        raise ApiError("E2004", details={"chain_id": row.chain_id}) from None


def _plan(row: ChallengeRow, caller_user_id: str | None) -> LinkPlan:
    owner: str | None = row.owner_user_id
    if caller_user_id is not None:
        relinked = owner if owner is not None and owner != caller_user_id else None
        return LinkPlan(caller_user_id, owner or "", False, relinked)
    if owner is not None:
        return LinkPlan(owner, owner, False, None)
    return LinkPlan(new_id(), "", True, None)
