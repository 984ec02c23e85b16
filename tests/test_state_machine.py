"""Every (mode, status, action) is allowed exactly when SPEC §7/§8 allow it: as a table and through the API."""

from __future__ import annotations

import itertools
import sqlite3
import uuid

import pytest

from challenges import modes

ACTIONS = ("send", "confirm", "accept", "verify", "respond", "complete", "resolve", "dispute", "cancel")

# Written out from SPEC §7 (who/what) and §8 (the transition tables), independently of challenges.modes.
EXPECTED = {
    ("SOLO", "DRAFT", "confirm"), ("SOLO", "DRAFT", "cancel"),
    ("SOLO", "INTENT_LOCKED", "complete"), ("SOLO", "INTENT_LOCKED", "resolve"),
    ("SOLO", "AWAITING_RESOLUTION", "complete"), ("SOLO", "AWAITING_RESOLUTION", "resolve"),
    ("GATEKEEPER", "DRAFT", "send"), ("GATEKEEPER", "DRAFT", "cancel"),
    ("GATEKEEPER", "AWAITING_COUNTERPARTY", "accept"), ("GATEKEEPER", "AWAITING_COUNTERPARTY", "cancel"),
    ("GATEKEEPER", "AWAITING_GATEKEEPER", "verify"), ("GATEKEEPER", "AWAITING_GATEKEEPER", "cancel"),
    ("GATEKEEPER", "INTENT_LOCKED", "complete"), ("GATEKEEPER", "INTENT_LOCKED", "resolve"),
    ("GATEKEEPER", "INTENT_LOCKED", "dispute"),
    ("GATEKEEPER", "AWAITING_RESOLUTION", "complete"), ("GATEKEEPER", "AWAITING_RESOLUTION", "resolve"),
    ("GATEKEEPER", "AWAITING_RESOLUTION", "dispute"), ("GATEKEEPER", "DISPUTED", "resolve"),
    ("FIRE", "DRAFT", "send"), ("FIRE", "DRAFT", "cancel"),
    ("FIRE", "AWAITING_COUNTERPARTY", "accept"), ("FIRE", "AWAITING_COUNTERPARTY", "cancel"),
    ("FIRE", "AWAITING_RESOLUTION", "resolve"), ("FIRE", "AWAITING_RESOLUTION", "dispute"),
    ("FIRE", "DISPUTED", "resolve"),
    ("ENFORCED", "DRAFT", "send"), ("ENFORCED", "DRAFT", "cancel"),
    ("ENFORCED", "AWAITING_COUNTERPARTY", "accept"), ("ENFORCED", "AWAITING_COUNTERPARTY", "cancel"),
    ("ENFORCED", "ACTIVE", "respond"),
    ("ENFORCED", "AWAITING_RESOLUTION", "resolve"), ("ENFORCED", "AWAITING_RESOLUTION", "dispute"),
    ("ENFORCED", "DISPUTED", "resolve"),
}  # fmt: skip
REFUSED_BY_STATE = {"E3014", "E3011", "E3015", "E3020"}


def test_table_matches_spec():
    actual = {
        (mode, status, action)
        for mode, status, action in itertools.product(modes.MODES, modes.STATUSES, ACTIONS)
        if modes.action_allowed(mode, status, action)
    }
    assert actual == EXPECTED


def test_every_status_move_is_in_the_mode_table():
    for mode, status, action in EXPECTED:
        assert any(modes.allowed(mode, status, target) for target in modes.ACTION_MOVES[action])
    for mode in modes.MODES:
        for terminal in modes.TERMINAL:
            assert not modes.TRANSITIONS[mode].get(terminal)


def _seed(db_path, mode, status, creator_id, counterparty_id):
    challenge_id = str(uuid.uuid4())
    stamp = "2026-11-24T11:00:00.000Z"
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO challenges (id, mode, status, version, title, creator_user_id, counterparty_user_id,"
            " created_at, updated_at, intent_locked_at, initiator_hash) VALUES (?, ?, ?, 0, 't', ?, ?, ?, ?, ?, ?)",
            (
                challenge_id,
                mode,
                status,
                creator_id,
                None if mode == "SOLO" else counterparty_id,
                stamp,
                stamp,
                stamp,
                "0" * 64,
            ),
        )
        if mode == "ENFORCED":
            connection.execute(
                "INSERT INTO enforced_configs VALUES (?, 900, 86400, 259200, NULL, NULL)", (challenge_id,)
            )
    return challenge_id


@pytest.mark.parametrize("mode", ["SOLO", "GATEKEEPER"])
async def test_api_refuses_exactly_what_the_table_refuses(client, make_user, db_path, mode):
    creator_id, creator = await make_user()
    counterparty_id, counterparty = await make_user()
    for status, action in itertools.product(modes.STATUSES, ACTIONS):
        challenge_id = _seed(db_path, mode, status, creator_id, counterparty_id)
        token = counterparty if action == "accept" and mode != "SOLO" else creator
        body = {"outcome": "DRAW"} if action == "resolve" else {"response": "done"} if action == "respond" else {}
        response = await client.post(f"/challenges/{challenge_id}/{action}", json=body, token=token)
        # `complete` while the gatekeeper is pending is refused with its own code (SPEC §7: 409 E4020).
        refused = response.error_code in REFUSED_BY_STATE or (action == "complete" and response.error_code == "E4020")
        allowed = (mode, status, action) in EXPECTED
        assert refused != allowed, (mode, status, action, response.status, response.text)
        assert response.status < 500, (mode, status, action, response.text)
