"""Wallet ownership: issue one-time challenges and verify their signatures (EOA, EIP-1271, ERC-6492), atomically."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from chain import eip1271, erc6492
from chain.address import InvalidAddress, normalize_address, to_checksum_address
from chain.networks import Network, UnsupportedNetwork, network_by_caip2
from chain.rpc import JsonRpcClient, RpcError
from chain.signatures import (
    MalformedSignature,
    RecoveryBackend,
    UnrecoverableSignature,
    decode_signature,
    eip191_message_hash,
    recover_address,
)
from core.auth import issue_session
from core.clock import format_time
from core.config import Env
from core.errors import ApiError
from core.ids import is_uuid4, new_id, random_hex
from db.port import Database, QueryResult, Statement
from gatekeeper import messages, wallet_store
from gatekeeper.siwe import SiweCheckError, SiweExpired, SiweSyntaxError
from gatekeeper.wallet_store import ChallengeRow, LinkPlan

__all__ = [
    "CHALLENGE_TTL_ENV",
    "DEFAULT_CHALLENGE_TTL_SECONDS",
    "NONCE_BYTES",
    "MessageFormat",
    "RpcFactory",
    "SignatureScheme",
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
# How the signature was checked; stored as its SignatureType (ERC-6492 is EIP-1271 on a counterfactual account).
SignatureScheme = Literal["EOA", "EIP1271", "ERC6492"]
_STORED_TYPE: dict[SignatureScheme, SignatureType] = {"EOA": "EOA", "EIP1271": "EIP1271", "ERC6492": "EIP1271"}
RpcFactory = Callable[[Network], JsonRpcClient]
T = TypeVar("T")


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
    signature_scheme: SignatureScheme
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
    message: str | None = None,
) -> VerifiedWallet:
    """Check `signature` over the challenge's message and, if it is the first to do so, mark it VERIFIED.

    `message` is the text the wallet signed, when the caller sends it back: for a plain challenge it must be the
    issued text; for a SIWE challenge it is parsed strictly and checked (messages.accept_siwe), so an app may have
    built its own EIP-4361 message on the challenge's nonce. Without it the issued text is what was signed (and a
    SIWE one is checked all the same: expiry, not-before, domain binding, nonce).

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
    signed = _signed_text(env, row, message, now)
    scheme = await _authenticate(env, row, signed, signature, rpc_factory, backend)
    signature_type = _STORED_TYPE[scheme]

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
                signature_scheme=scheme,
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


def _message_error(reason: str) -> ApiError:
    return _field_error("message", reason)


def _signed_text(env: Env, row: ChallengeRow, message: str | None, now: datetime) -> str:
    """The text the signature must be over: the issued message, or the one sent back once it passes the checks."""
    if row.format != "siwe":
        if message is not None and message != row.message:
            raise _message_error("must be the challenge's message exactly")
        return row.message
    text = row.message if message is None else message
    try:
        messages.accept_siwe(
            text,
            issued=row.message,
            wallet_address=row.wallet_address,
            chain_id=int(row.chain_id.removeprefix("eip155:")),
            challenge_id=row.id,
            allowed_domains=env.get("SIWE_ALLOWED_DOMAINS"),
            now=now,
        )
    except SiweExpired as error:
        raise ApiError("E1004", "The signed message has expired", {"expired_at": error.expired_at}) from None
    except (SiweSyntaxError, SiweCheckError) as error:
        raise _message_error(str(error)) from None
    return text


async def _authenticate(
    env: Env,
    row: ChallengeRow,
    text: str,
    signature: str,
    rpc_factory: RpcFactory,
    backend: RecoveryBackend | None,
) -> SignatureScheme:
    """Who signed: ecrecover first (no RPC for an EOA), else the contract, given the signature bytes unchanged."""
    address: str = row.wallet_address
    try:
        raw = decode_signature(signature)
    except MalformedSignature as error:
        raise ApiError("E1008", details={"reason": str(error)}) from None
    try:
        message_hash = eip191_message_hash(text)
    except UnicodeEncodeError:
        raise ApiError("E1005") from None
    if erc6492.is_wrapped(raw):
        return await _counterfactual(env, row, message_hash, raw, rpc_factory, backend)
    recovered, malformed = _recover(message_hash, raw, backend)
    if recovered == address:
        # Plain EOAs stop here: no RPC round trip for the common case.
        return "EOA"
    verdict = await _on_chain(
        env, row, rpc_factory, lambda client: eip1271.contract_verdict(client, address, message_hash, raw)
    )
    if verdict:
        return "EIP1271"
    if recovered is not None:
        raise ApiError("E1006", details={"expected": address, "recovered": recovered})
    if verdict is None and malformed is not None:
        # No contract to ask, and not an ECDSA signature: the format is wrong for this wallet.
        raise ApiError("E1008", details={"reason": f"{malformed} (the wallet has no contract code)"})
    if verdict is None:
        raise ApiError("E1005", "Signature invalid: no signer can be recovered from it")
    raise ApiError("E1005", "Signature invalid: the wallet contract refused it (EIP-1271)")


def _recover(
    message_hash: bytes, raw: bytes, backend: RecoveryBackend | None
) -> tuple[str | None, MalformedSignature | None]:
    """(the ECDSA signer, None), or (None, why the bytes are no ECDSA signature), or (None, None) if unrecoverable."""
    if len(raw) not in (64, 65):
        return None, MalformedSignature(f"signature must be 65 bytes (or 64 bytes EIP-2098 compact), not {len(raw)}")
    try:
        return recover_address(message_hash, raw, backend=backend), None
    except MalformedSignature as error:
        return None, error
    except UnrecoverableSignature:
        return None, None


async def _counterfactual(
    env: Env,
    row: ChallengeRow,
    message_hash: bytes,
    raw: bytes,
    rpc_factory: RpcFactory,
    backend: RecoveryBackend | None,
) -> SignatureScheme:
    """ERC-6492: the deployless validator in one eth_call decides; the inner signer is named on a refusal."""
    try:
        inner = erc6492.unwrap(raw).signature
    except MalformedSignature as error:
        raise ApiError("E1008", details={"reason": str(error)}) from None
    address: str = row.wallet_address
    if await _on_chain(
        env, row, rpc_factory, lambda client: erc6492.is_valid_signature(client, address, message_hash, raw)
    ):
        return "ERC6492"
    recovered, _ = _recover(message_hash, inner, backend)
    if recovered is not None:
        raise ApiError("E1006", details={"expected": address, "recovered": recovered})
    raise ApiError("E1005", "Signature invalid: the counterfactual wallet refused it (ERC-6492)")


async def _on_chain(
    env: Env, row: ChallengeRow, rpc_factory: RpcFactory, ask: Callable[[JsonRpcClient], Awaitable[T]]
) -> T:
    """Ask the challenge's chain; an unreachable chain is 502, never a guess either way."""
    try:
        network = network_by_caip2(row.chain_id, env)
        client = rpc_factory(network)
    except UnsupportedNetwork:
        # The chain had endpoints when the challenge was made; without them now we cannot tell an
        # EOA's bad signature from a contract wallet's good one.
        raise ApiError("E2004", "No RPC endpoint is configured for this chain", {"chain_id": row.chain_id}) from None
    try:
        return await ask(client)
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
