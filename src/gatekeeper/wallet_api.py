"""HTTP handlers and models for POST /gatekeeper/v2/wallet/challenge and /gatekeeper/v2/wallet/verify."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from chain.networks import Network
from chain.provider import build_rpc_client
from chain.rpc import JsonRpcClient
from chain.signatures import MAX_SIGNATURE_BYTES, default_backend
from core.auth import PRELOAD, Caller
from core.config import Env
from core.context import RequestContext
from core.errors import ApiError
from core.flags import GATEKEEPER_V2
from core.http import Request, Response
from core.schemas import OutModel, StrictModel
from db.port import Database, Statement
from gatekeeper import wallet
from gatekeeper.siwe import MAX_MESSAGE_LENGTH

FLAG = GATEKEEPER_V2


class WalletChallengeCreate(StrictModel):
    """Ask for a one-time message to sign. With a bearer, the challenge belongs to the caller's user:
    only that user's bearer can then verify it."""

    wallet_address: str = Field(
        description="0x + 40 hex; any case, but mixed case must be a valid EIP-55 checksum",
        examples=["0x742d35cc6634c0532925a3b844bc9e7595f8fe00"],
    )
    chain_id: str = Field(description="CAIP-2 chain id of a supported network", examples=["eip155:1"])
    user_id: str | None = Field(default=None, max_length=64, description="Only the caller's own user id")
    format: Literal["plain", "siwe"] = Field(default="plain", description="siwe = an EIP-4361 message")
    domain: str | None = Field(
        default=None, max_length=260, description="siwe only, required: a domain in SIWE_ALLOWED_DOMAINS"
    )
    uri: str | None = Field(default=None, max_length=2048, description="siwe only; default https://<domain>")


class WalletChallengeCreated(OutModel):
    challenge_id: str
    message: str = Field(description="Sign exactly this text with personal_sign (EIP-191)")
    nonce: str
    issued_at: str
    expires_at: str


class WalletVerify(StrictModel):
    """Prove control of the challenge's wallet. The wallet is linked to the bearer's user when one is sent
    (re-linked from another user if it had one: the fresh signature is proof of the key), else to the
    user it already belongs to, else to a new user. Either way the response carries a session for that user."""

    challenge_id: str = Field(description="From the challenge response; an id that is not a UUIDv4 is 404 E1003")
    signature: str = Field(
        description=(
            "0x hex of the personal_sign (EIP-191) signature. A wallet without code: 65 bytes r||s||v (v in 0, 1, "
            "27, 28) or 64 bytes EIP-2098. A contract wallet: whatever its isValidSignature (EIP-1271) takes, passed "
            "unchanged (a Safe's concatenated owner signatures, 0x for an on-chain approved message, ...); a "
            "counterfactual account: an ERC-6492 wrapped signature. At most "
            f"{MAX_SIGNATURE_BYTES} bytes, else 400 E1008"
        )
    )
    # Never stripped: the signature is over the exact text, line breaks and spaces included.
    message: Annotated[str, StringConstraints(strip_whitespace=False)] | None = Field(
        default=None,
        max_length=MAX_MESSAGE_LENGTH,
        description=(
            "Optional: the text the wallet signed. For a plain challenge, the challenge's message exactly; for a "
            "siwe challenge, an EIP-4361 message that parses strictly and is bound to the challenge (its domain, "
            "nonce, address, chain id and request id; not expired, not before its Not Before)"
        ),
    )


class WalletVerified(OutModel):
    status: Literal["VERIFIED"]
    wallet_address: str
    verified_at: str
    user_id: str
    session_token: str = Field(description="Bearer token for this user; shown only in this response")
    session_expires_at: str


def _caller_user_id(ctx: RequestContext) -> str | None:
    # An admin token acts for no user, so for wallet linking it counts as anonymous.
    return ctx.principal.user_id if ctx.principal is not None else None


async def create_challenge(request: Request, ctx: RequestContext) -> Response:
    body: WalletChallengeCreate = ctx.body
    challenge = await wallet.create_challenge(
        ctx.db,
        ctx.env,
        ctx.now(),
        wallet_address=body.wallet_address,
        chain_id=body.chain_id,
        caller_user_id=_caller_user_id(ctx),
        user_id=body.user_id,
        message_format=body.format,
        domain=body.domain,
        uri=body.uri,
    )
    ctx.services.logger.info(
        "wallet_challenge_created",
        request_id=ctx.request_id,
        challenge_id=challenge.challenge_id,
        chain_id=challenge.chain_id,
        format=challenge.format,
    )
    created = WalletChallengeCreated(
        challenge_id=challenge.challenge_id,
        message=challenge.message,
        nonce=challenge.nonce,
        issued_at=challenge.issued_at,
        expires_at=challenge.expires_at,
    )
    return Response.json(created.model_dump(), 201)


def _preload_verify(env: Env, db: Database, request: Request, now: datetime, caller: Caller) -> list[Statement]:
    # With a bearer, the challenge read rides in the auth lookup's batch; a body that is not JSON reads nothing.
    try:
        body = request.json()
    except (ApiError, ValueError):
        return []
    return wallet.preload_statements(db, body.get("challenge_id") if isinstance(body, dict) else None)


VERIFY_EXTRA: dict[str, Any] = {PRELOAD: _preload_verify}


async def verify(request: Request, ctx: RequestContext) -> Response:
    body: WalletVerify = ctx.body

    def rpc_factory(network: Network) -> JsonRpcClient:
        return build_rpc_client(network, ctx.env, ctx.services.http)

    # The fastest recovery this runtime has (chosen once per isolate); its name goes in the log line below.
    backend = default_backend()
    result = await wallet.verify_challenge(
        ctx.db,
        ctx.env,
        ctx.now(),
        challenge_id=body.challenge_id,
        signature=body.signature,
        caller_user_id=_caller_user_id(ctx),
        rpc_factory=rpc_factory,
        backend=backend,
        message=body.message,
        preloaded=ctx.principal.preloaded[0] if ctx.principal is not None and ctx.principal.preloaded else None,
    )
    # Never the session token: logs are not a place for bearer credentials.
    ctx.services.logger.info(
        "wallet_verified",
        request_id=ctx.request_id,
        challenge_id=result.challenge_id,
        wallet_address=result.wallet_address,
        user_id=result.user_id,
        signature_type=result.signature_type,
        signature_scheme=result.signature_scheme,
        recovery_backend=backend.name,
        new_user=result.new_user,
    )
    if result.relinked_from_user_id is not None:
        ctx.services.logger.warning(
            "wallet_relinked",
            request_id=ctx.request_id,
            wallet_address=result.wallet_address,
            from_user_id=result.relinked_from_user_id,
            to_user_id=result.user_id,
        )
    verified = WalletVerified(
        status="VERIFIED",
        wallet_address=result.wallet_address,
        verified_at=result.verified_at,
        user_id=result.user_id,
        session_token=result.session_token,
        session_expires_at=result.session_expires_at,
    )
    return Response.json(verified.model_dump())
