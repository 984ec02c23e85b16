"""Issue 12, data written before the fixes: contacts claimed without proof stop finding or notifying anyone.

The database here is migrated in two steps, as a deployment that ran 2.0.0 would be: the migrations of 2.0.0,
then rows as 2.0.0 wrote them (PATCH /me took any address as given), then the rest of the migrations (which
the `services` fixture applies when it opens the file).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import format_time
from db import migrations
from db.sqlite import SqliteDatabase
from tests.conftest import ADMIN_TOKEN, MIGRATIONS

# The last migration 2.0.0 shipped.
RELEASED = "0006_outcome_proposals.sql"
ATTACKER = "00000000-0000-4000-8000-00000000a77a"
VICTIM_EMAIL = "victim@example.com"
VICTIM_PHONE = "+14155550123"
STAMP = "2026-11-25T10:00:00.000Z"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A 2.0.0 database where an attacker's PATCH /me claimed the victim's email and phone."""
    released = tmp_path / "released"
    released.mkdir()
    for migration in migrations.discover(MIGRATIONS):
        if migration.name <= RELEASED:
            shutil.copy(migration.path, released / migration.name)
    path = tmp_path / "d1.sqlite"
    database = SqliteDatabase(path)
    assert migrations.apply(database, released)[-1] == RELEASED
    database.connection.execute(
        "INSERT INTO users (id, email, phone, display_name, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (ATTACKER, VICTIM_EMAIL, VICTIM_PHONE, "attacker", STAMP, STAMP),
    )
    database.connection.commit()
    database.connection.close()
    return path


async def test_a_contact_claimed_before_the_fix_no_longer_finds_its_claimant(client, services):
    issued = await client.post("/admin/api-keys", json={"email": VICTIM_EMAIL}, token=ADMIN_TOKEN)

    assert issued.status == 201, issued.text
    assert issued.json()["user_id"] != ATTACKER
    rows = (await services.db.prepare("SELECT id, email, phone FROM users WHERE id = ?").bind(ATTACKER).all()).results
    assert rows == [{"id": ATTACKER, "email": None, "phone": None}]


async def test_a_contact_claimed_before_the_fix_is_shown_to_its_owner_as_an_expired_claim(client, services):
    key = await client.post("/admin/api-keys", json={"user_id": ATTACKER}, token=ADMIN_TOKEN)
    assert key.status == 201, key.text

    me = (await client.get("/me", token=key.json()["api_key"])).json()

    assert (me["email"], me["phone"]) == (None, None)
    assert me["pending_email"]["value"] == VICTIM_EMAIL
    assert me["pending_phone"]["value"] == VICTIM_PHONE
    # Expired when the migration ran (the wall clock; this test's own clock is a fixed day before).
    assert me["pending_email"]["expires_at"] <= format_time(datetime.now(UTC))
    # No code can prove it: the owner must claim it again to be sent one.
    proved = await client.post("/me/verify", json={"channel": "email", "code": "000000"}, token=key.json()["api_key"])
    assert proved.status >= 400 and proved.json()["error"]["code"].startswith("E700")
