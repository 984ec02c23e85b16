"""gatekeeper.wallet without HTTP: both recovery backends, and races forced by a database that yields."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from chain.networks import Network
from chain.rpc import JsonRpcClient
from chain.signatures import CoinCurveBackend, PureBackend, RecoveryBackend
from core.errors import ApiError
from gatekeeper import wallet
from tests.test_wallet_support import KEY_ALICE, address_of, sign, wallet_env  # noqa: F401 (autouse fixture)

ALICE = address_of(KEY_ALICE).lower()


def no_rpc(network: Network) -> JsonRpcClient:
    raise AssertionError("an EOA signature must not need the chain")


class YieldingStatement:
    """Wraps a statement so every database call gives other tasks a turn first, as D1's network hop does."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def bind(self, *params: Any) -> YieldingStatement:
        return YieldingStatement(self.inner.bind(*params))

    async def first(self, column: str | None = None) -> Any:
        await asyncio.sleep(0)
        return await self.inner.first(column)

    async def all(self) -> Any:
        await asyncio.sleep(0)
        return await self.inner.all()

    async def run(self) -> Any:
        await asyncio.sleep(0)
        return await self.inner.run()


class YieldingDatabase:
    """The SQLite adapter never yields mid-request; this one does, so read-then-write races really happen."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches = 0

    def prepare(self, sql: str) -> YieldingStatement:
        return YieldingStatement(self.inner.prepare(sql))

    async def batch(self, statements: Sequence[YieldingStatement]) -> Any:
        self.batches += 1
        await asyncio.sleep(0)
        return await self.inner.batch([statement.inner for statement in statements])


async def new_challenge(services, key: str = KEY_ALICE, caller: str | None = None) -> wallet.WalletChallenge:
    return await wallet.create_challenge(
        services.db,
        services.env,
        services.clock.now(),
        wallet_address=address_of(key),
        chain_id="eip155:1",
        caller_user_id=caller,
    )


async def run_verify(
    services,
    db,
    challenge: wallet.WalletChallenge,
    *,
    caller: str | None = None,
    backend: RecoveryBackend | None = None,
) -> wallet.VerifiedWallet:
    return await wallet.verify_challenge(
        db,
        services.env,
        services.clock.now(),
        challenge_id=challenge.challenge_id,
        signature=sign(challenge.message, KEY_ALICE),
        caller_user_id=caller,
        rpc_factory=no_rpc,
        backend=backend,
    )


async def count(services, table: str) -> int:
    return await services.db.prepare(f"SELECT COUNT(*) AS n FROM {table}").first("n")


@pytest.mark.parametrize("backend", [PureBackend, CoinCurveBackend], ids=["pure", "coincurve"])
async def test_verifies_with_either_backend(services, backend):
    challenge = await new_challenge(services)
    result = await run_verify(services, services.db, challenge, backend=backend())
    assert (result.wallet_address, result.signature_type, result.new_user) == (ALICE, "EOA", True)


@pytest.mark.parametrize("backend", [PureBackend, CoinCurveBackend], ids=["pure", "coincurve"])
async def test_mismatch_is_reported_the_same_by_either_backend(services, backend):
    challenge = await new_challenge(services)
    other = await new_challenge(services)
    with pytest.raises(ApiError) as raised:
        await wallet.verify_challenge(
            services.db,
            services.env,
            services.clock.now(),
            challenge_id=challenge.challenge_id,
            signature=sign(other.message, KEY_ALICE),
            caller_user_id=None,
            rpc_factory=lambda network: _no_code_client(),
            backend=backend(),
        )
    assert raised.value.code == "E1006"
    assert raised.value.details["expected"] == ALICE


def _no_code_client() -> Any:
    class NoCode:
        async def get_code(self, address: str, block: Any = "latest") -> bytes:
            return b""

    return NoCode()


async def test_concurrent_verifies_of_one_challenge_have_exactly_one_winner(services):
    db = YieldingDatabase(services.db)
    challenge = await new_challenge(services)

    outcomes = await asyncio.gather(*(run_verify(services, db, challenge) for _ in range(20)), return_exceptions=True)

    winners = [outcome for outcome in outcomes if isinstance(outcome, wallet.VerifiedWallet)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, ApiError)]
    assert len(winners) == 1
    assert [loser.code for loser in losers] == ["E1007"] * 19
    # Every task got past the PENDING check and tried to commit: only the guarded batch decided.
    assert db.batches == 20
    assert await count(services, "users") == 1
    assert await count(services, "wallets") == 1
    assert await count(services, "events") == 1
    event = await services.db.prepare("SELECT user_id FROM events").first("user_id")
    assert event == winners[0].user_id
    row = await services.db.prepare("SELECT verified_user_id FROM wallet_challenges").first("verified_user_id")
    assert row == winners[0].user_id


async def test_racing_first_verifications_of_a_new_wallet_share_one_user(services):
    """Two challenges of one new wallet, verified at once: both succeed, and exactly one user is created."""
    db = YieldingDatabase(services.db)
    first, second = await new_challenge(services), await new_challenge(services)

    one, two = await asyncio.gather(run_verify(services, db, first), run_verify(services, db, second))

    assert one.user_id == two.user_id
    assert sorted([one.new_user, two.new_user]) == [False, True]
    assert db.batches == 3  # the loser of the wallet race re-read the owner and committed again
    assert await count(services, "users") == 1
    owner = await services.db.prepare("SELECT user_id FROM wallets WHERE address = ?").bind(ALICE).first("user_id")
    assert owner == one.user_id
    events = (await services.db.prepare("SELECT user_id, payload FROM events").all()).results
    assert [event["user_id"] for event in events] == [one.user_id] * 2
    assert sorted(json.loads(event["payload"])["new_user"] for event in events) == [False, True]


async def test_racing_bearers_leave_ownership_consistent(services, make_user):
    """Two users link the same wallet at once: whoever commits last owns it, and the records agree."""
    user_a, _ = await make_user()
    user_b, _ = await make_user()
    db = YieldingDatabase(services.db)
    first, second = await new_challenge(services, caller=user_a), await new_challenge(services, caller=user_b)

    one, two = await asyncio.gather(
        run_verify(services, db, first, caller=user_a), run_verify(services, db, second, caller=user_b)
    )

    assert {one.user_id, two.user_id} == {user_a, user_b}
    owner = await services.db.prepare("SELECT user_id FROM wallets").first("user_id")
    last = (await services.db.prepare("SELECT user_id, payload FROM events ORDER BY rowid").all()).results
    assert owner == last[-1]["user_id"]
    # The second commit saw the first one's link and records the re-link it performed.
    assert json.loads(last[-1]["payload"]).get("relinked_from_user_id") == last[0]["user_id"]


async def test_expired_while_racing_is_410_not_409(services):
    db = YieldingDatabase(services.db)
    challenge = await new_challenge(services)
    services.clock.advance(600)
    outcomes = await asyncio.gather(*(run_verify(services, db, challenge) for _ in range(5)), return_exceptions=True)
    assert [getattr(outcome, "code", None) for outcome in outcomes] == ["E1004"] * 5
    assert await services.db.prepare("SELECT status FROM wallet_challenges").first("status") == "EXPIRED"
