"""HTTP handlers and models for the funds check, re-verifying its commitment, and GET /gatekeeper/v2/networks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from chain.networks import usable_networks
from core.clock import format_time
from core.context import RequestContext
from core.errors import ApiError
from core.flags import GATEKEEPER_V2
from core.http import Request, Response
from core.schemas import OutModel, StrictModel
from gatekeeper import funds

FLAG = GATEKEEPER_V2
CHECK_ERRORS = ("E2001", "E2002", "E2003", "E2004", "E2005", "E2007", "E3010")
VERIFY_ERRORS = ("E2008",)

# These fields are typed loosely on purpose: the pipeline would answer a wrong JSON type with the
# generic E9004, while the API documents a specific code per field (a JSON number as min_balance is
# E2005). The documented schema stays exact; funds.build_requirement does the checking.
_Address = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{40}$",
            "description": "0x + 40 hex; any case, but mixed case must be a valid EIP-55 checksum",
        }
    ),
]
_Network = Annotated[
    Any,
    WithJsonSchema({"type": "string", "description": "A network name from GET /gatekeeper/v2/networks"}),
]
_Amount = Annotated[
    Any,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[0-9]{1,78}$",
            "description": "Decimal string of base units (wei, token minor units), 0 <= n < 2^256; never a number",
        }
    ),
]


class FundsCheckRequest(StrictModel):
    wallet_address: _Address = Field(examples=["0x742d35cc6634c0532925a3b844bc9e7595f8fe00"])
    network: _Network = Field(examples=["eth-mainnet"])
    asset_type: Literal["NATIVE", "ERC20"]
    token_address: _Address | None = Field(default=None, description="Required for ERC20; omit for NATIVE")
    min_balance: _Amount = Field(examples=["1000000000000000000"])
    challenge_id: str | None = Field(
        default=None, max_length=64, description="Link the attestation to a challenge you are a party to"
    )


class FundsCheckResult(OutModel):
    status: Literal["PASSED", "FAILED"] = Field(description="PASSED when the balance is at least min_balance")
    proof_type: Literal["OPAQUE_V1"] = Field(description="The balance is never revealed, only committed to")
    network: str
    provider: str = Field(description="Host of the RPC endpoint that answered")
    block_number: int = Field(description="Every read of this check was taken at this block")
    checked_at: str
    attestation_id: str


class CommitmentVerifyRequest(StrictModel):
    # Loosely typed like min_balance, so a JSON number gets the documented field error, not a generic one.
    balance: _Amount = Field(
        examples=["2000000000000000000"],
        description="The balance you claim the check saw at its block (base units, decimal string)",
    )


class CommitmentVerifyResult(OutModel):
    attestation_id: str
    network: str
    block_number: int = Field(description="The block the check read, and the balance claim is about")
    status: Literal["PASSED", "FAILED"]
    checked_at: str
    matches: bool = Field(description="Whether the claimed balance is the one the stored keyed commitment binds")


class NetworkOut(OutModel):
    name: str
    chain_id: int
    caip2: str
    native_symbol: str
    is_testnet: bool


class NetworkList(OutModel):
    networks: list[NetworkOut]


async def check_funds(request: Request, ctx: RequestContext) -> Response:
    body: FundsCheckRequest = ctx.body
    requirement = funds.build_requirement(
        ctx.env,
        wallet_address=body.wallet_address,
        network=body.network,
        asset_type=body.asset_type,
        token_address=body.token_address,
        min_balance=body.min_balance,
        challenge_id=body.challenge_id,
    )
    # Before any RPC: a caller who may not touch the challenge must not cost us node requests.
    if body.challenge_id is not None:
        await funds.ensure_challenge_access(ctx.db, body.challenge_id, ctx.principal)
    [result] = await funds.check_requirements(ctx.services, [requirement])
    now = ctx.now()
    requested_by = ctx.principal.user_id if ctx.principal is not None else None
    await ctx.db.batch(funds.attestation_statements(ctx.db, [result], now, requested_by=requested_by))
    ctx.services.logger.info(
        "funds_checked",
        request_id=ctx.request_id,
        attestation_id=result.attestation_id,
        network=requirement.network.name,
        asset_type=requirement.asset_type,
        status=result.status,
        block_number=result.block_number,
        provider=result.provider_host,
    )
    out = FundsCheckResult(
        status=result.status,
        proof_type=funds.PROOF_TYPE,
        network=requirement.network.name,
        provider=result.provider_host,
        block_number=result.block_number,
        checked_at=format_time(now),
        attestation_id=result.attestation_id,
    )
    return Response.json(out.model_dump())


async def verify_commitment(request: Request, ctx: RequestContext) -> Response:
    """The owner of a check asks whether a balance is the one committed to: the server holds the key."""
    body: CommitmentVerifyRequest = ctx.body
    principal = ctx.principal
    if principal is None:  # the route requires a bearer; kept explicit for the type checker
        raise ApiError("E9005")
    stored, matches = await funds.reverify(ctx.services, request.path_params["attestation_id"], body.balance, principal)
    # No claimed balance in the log line: only whether it matched.
    ctx.services.logger.info(
        "funds_commitment_verified", request_id=ctx.request_id, attestation_id=stored.attestation_id, matches=matches
    )
    out = CommitmentVerifyResult(
        attestation_id=stored.attestation_id,
        network=stored.network,
        block_number=stored.block_number,
        status=stored.status,
        checked_at=stored.checked_at,
        matches=matches,
    )
    return Response.json(out.model_dump())


async def list_networks(request: Request, ctx: RequestContext) -> Response:
    # Names and chain ids only: endpoint URLs (and even hosts) stay server-side, they often carry API keys.
    networks = [
        NetworkOut(
            name=network.name,
            chain_id=network.chain_id,
            caip2=network.caip2,
            native_symbol=network.native_symbol,
            is_testnet=network.is_testnet,
        )
        for network in usable_networks(ctx.env)
    ]
    return Response.json(NetworkList(networks=networks).model_dump())
