"""The funds_attestations store: typed records in and out, its statements ride in the caller's batch."""

from __future__ import annotations

from datetime import UTC, datetime

from core.context import Services
from gatekeeper import funds_store
from gatekeeper.funds_store import NewAttestation, StoredAttestation

ATTESTATION_ID = "2b1f3c1e-1111-4111-8111-111111111111"
CHALLENGE_ID = "7d1e5a43-2b8c-4f0e-9a61-3c5d7e9f1b20"
SALT = "ab" * 32


def record(**changes: object) -> NewAttestation:
    fields: dict[str, object] = {
        "attestation_id": ATTESTATION_ID,
        "challenge_id": None,
        "requirement_id": None,
        "requested_by": None,
        "wallet_address": "0x" + "12" * 20,
        "network": "local",
        "chain_id": 31337,
        "asset_type": "ERC20",
        "token_address": "0x" + "34" * 20,
        "min_balance": 2**256 - 1,
        "status": "FAILED",
        "block_number": 2**53 - 1,
        "provider_host": "127.0.0.1:8545",
        "balance_commitment": "cd" * 32,
        "salt": SALT,
        "commitment_scheme": "HMAC-SHA256-V1",
        "checked_at": datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC),
        **changes,
    }
    return NewAttestation(**fields)  # type: ignore[arg-type]


async def test_a_record_is_stored_column_for_column_and_loaded_typed(services: Services) -> None:
    await services.db.batch(funds_store.insert_statements(services.db, [record()]))
    row = await services.db.prepare("SELECT * FROM funds_attestations").first()
    assert row == {
        "id": ATTESTATION_ID,
        "challenge_id": None,
        "requirement_id": None,
        "requested_by": None,
        "wallet_address": "0x" + "12" * 20,
        "network": "local",
        "chain_id": 31337,
        "asset_type": "ERC20",
        "token_address": "0x" + "34" * 20,
        "min_balance": str(2**256 - 1),  # TEXT: beyond any JS number
        "status": "FAILED",
        "block_number": 2**53 - 1,
        "provider_host": "127.0.0.1:8545",
        "balance_commitment": "cd" * 32,
        "salt": SALT,
        "commitment_scheme": "HMAC-SHA256-V1",
        "checked_at": "2026-11-24T12:00:00.123Z",
    }
    loaded = await funds_store.load_attestation(services.db, ATTESTATION_ID)
    assert loaded == StoredAttestation(
        attestation_id=ATTESTATION_ID,
        network="local",
        block_number=2**53 - 1,
        status="FAILED",
        checked_at="2026-11-24T12:00:00.123Z",
        requested_by=None,
        owner_user_id=None,  # no challenge requirement behind it: nobody's but the requester's
        balance_commitment="cd" * 32,
        salt=SALT,
        commitment_scheme="HMAC-SHA256-V1",
    )
    assert await funds_store.load_attestation(services.db, "2b1f3c1e-2222-4222-8222-222222222222") is None


async def test_a_guard_that_finds_no_row_writes_nothing(services: Services) -> None:
    guard = "SELECT 1 FROM challenges WHERE id = ? AND status = 'AWAITING_GATEKEEPER'"
    statement = funds_store.insert_statement(
        services.db, record(challenge_id=CHALLENGE_ID), guard_sql=guard, guard_params=(CHALLENGE_ID,)
    )
    await services.db.batch([statement])
    assert await services.db.prepare("SELECT COUNT(*) AS n FROM funds_attestations").first("n") == 0


def test_no_record_shows_its_salt() -> None:
    stored = StoredAttestation(ATTESTATION_ID, "local", 1, "PASSED", "t", None, None, "cd" * 32, SALT)
    for value in (record(), stored):
        assert SALT not in repr(value)
