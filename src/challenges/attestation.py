"""Hash commitments of SPEC §12: I and C over each side's locked terms, FINAL over I, C and the outcome."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import rfc8785

from core.clock import format_time
from core.ids import new_id
from db.port import Database, Statement

PROOF_VERSION = "tattlehash.proof.v1"


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: the bytes anyone can rebuild to recompute a hash."""
    return rfc8785.dumps(value)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def side_terms(challenge: dict[str, Any], side: str, party: dict[str, Any] | None, locked_at: str) -> dict[str, Any]:
    """One side's locked terms and check results: what I (CREATOR) or C (COUNTERPARTY) commits to.

    Funds results carry status, block and the salted balance commitment, never the balance.
    """
    return {
        "version": PROOF_VERSION,
        "challenge_id": challenge["id"],
        "mode": challenge["mode"],
        "title": challenge["title"],
        "description": challenge["description"],
        "side": side,
        "user_id": challenge["creator_user_id"] if side == "CREATOR" else challenge["counterparty_user_id"],
        "wallet": party,
        "intent_locked_at": locked_at,
    }


def final_terms(
    challenge_id: str, initiator_hash: str, counter_hash: str | None, outcome: str | None, completed_at: str
) -> dict[str, Any]:
    return {
        "version": PROOF_VERSION,
        "challenge_id": challenge_id,
        "initiator_hash": initiator_hash,
        "counter_hash": counter_hash,
        "outcome": outcome,
        "completed_at": completed_at,
    }


def attestation_statement(
    db: Database, challenge_id: str, kind: str, terms: dict[str, Any], now: datetime, guard: tuple[str, tuple[Any, ...]]
) -> Statement:
    """INSERT of one attestation row (hash + canonical input), guarded to the state change it belongs to."""
    guard_sql, guard_params = guard
    return db.prepare(
        "INSERT INTO attestations (id, challenge_id, kind, hash, canonical_input, created_at) "
        f"SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS ({guard_sql})"
    ).bind(new_id(), challenge_id, kind, digest(terms), canonical(terms).decode(), format_time(now), *guard_params)


def parse_input(text: str) -> Any:
    return json.loads(text)
