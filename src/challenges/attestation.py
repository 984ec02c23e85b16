"""Hash commitments of SPEC §12: I and C over each side's locked terms, FINAL over I, C and the outcome.

The hash inputs are published by the proof, so they carry only public terms. Private fields (the
description, user ids, responses) enter them as salted commitments
``sha256(JCS({"salt": <64 hex>, "value": <value>}))`` with a fresh 32-byte salt per field; the openings
(value and salt) are stored beside the attestation, server-side, and handed only to the challenge's
parties (GET /challenges/{id}/openings), so a party can later prove a field without the proof showing it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from challenges.records import ChallengeRecord
from core.ids import random_hex

PROOF_VERSION = "tattlehash.proof.v2"
# Inputs written before private fields became commitments: they hold the description and user ids.
LEGACY_PROOF_VERSION = "tattlehash.proof.v1"
SALT_BYTES = 32
KINDS = ("INITIATOR", "COUNTER", "FINAL")
COMMITMENT_ALGORITHM = (
    'each entry of "commitments" is sha256 over the RFC 8785 canonical JSON of {"salt": salt, "value": value}; '
    "a party gets each (value, salt) from GET /challenges/{id}/openings"
)


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: the bytes anyone can rebuild to recompute a hash."""
    return rfc8785.dumps(value)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


@dataclass(frozen=True)
class Opening:
    """What opens one commitment: the private value and its salt."""

    value: Any
    salt: str

    @property
    def commitment(self) -> str:
        return commitment(self.value, self.salt)

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "salt": self.salt}


def commitment(value: Any, salt: str) -> str:
    """sha256 of the canonical JSON of {"salt", "value"}: hides `value` until its salt is revealed."""
    return digest({"salt": salt, "value": value})


def commit(value: Any) -> Opening:
    # A fresh salt per field: revealing one opening reveals nothing about the others.
    return Opening(value, random_hex(SALT_BYTES))


class Terms(dict[str, Any]):
    """A hash input (exactly what is published and hashed) plus the openings of its commitments.

    The openings are an attribute, not a key: they never enter the hash input or the proof, and
    the attestation row stores them server-side (stored_form).
    """

    def __init__(self, published: Mapping[str, Any], openings: Mapping[str, Opening] | None = None) -> None:
        super().__init__(published)
        self.openings: dict[str, Opening] = dict(openings or {})


def _with_commitments(published: dict[str, Any], private: Mapping[str, Any] | None) -> Terms:
    if not private:
        return Terms(published)
    openings = {name: commit(value) for name, value in private.items()}
    published["commitments"] = {name: opening.commitment for name, opening in openings.items()}
    return Terms(published, openings)


def side_terms(challenge: ChallengeRecord, side: str, party: dict[str, Any] | None, locked_at: str) -> Terms:
    """One side's locked terms and check results: what I (CREATOR) or C (COUNTERPARTY) commits to.

    Public: title, mode, side, the wallet with its checks (status, threshold, block, the keyed balance
    commitment) or stakes, and the lock time. The description and the side's user id enter only as
    salted commitments. Funds results never carry the balance.
    """
    user_id = challenge.creator_user_id if side == "CREATOR" else challenge.counterparty_user_id
    published = {
        "version": PROOF_VERSION,
        "challenge_id": challenge.id,
        "mode": challenge.mode,
        "title": challenge.title,
        "side": side,
        "wallet": party,
        "intent_locked_at": locked_at,
    }
    return _with_commitments(published, {"description": challenge.description, "user_id": user_id})


def final_terms(
    challenge_id: str,
    initiator_hash: str | None,
    counter_hash: str | None,
    outcome: str | None,
    completed_at: str,
    *,
    private: Mapping[str, Any] | None = None,
) -> Terms:
    """FINAL's input: I, C and the outcome; `private` values (e.g. responses) enter as salted commitments."""
    published = {
        "version": PROOF_VERSION,
        "challenge_id": challenge_id,
        "initiator_hash": initiator_hash,
        "counter_hash": counter_hash,
        "outcome": outcome,
        "completed_at": completed_at,
    }
    return _with_commitments(published, private)


def _openings_json(terms: dict[str, Any]) -> str | None:
    openings = getattr(terms, "openings", None)
    if not openings:
        return None
    return json.dumps({name: opening.as_dict() for name, opening in openings.items()}, separators=(",", ":"))


def stored_form(terms: dict[str, Any]) -> tuple[str, str, str | None]:
    """What an attestation row keeps of `terms`: its hash, the canonical input hashed, the openings (JSON)."""
    return digest(terms), canonical(terms).decode(), _openings_json(terms)


def parse_input(text: str) -> Any:
    return json.loads(text)


# -- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttestationRow:
    """One stored hash: its published canonical input and the server-side openings of its commitments."""

    kind: str
    hash: str
    canonical_input: str
    openings: dict[str, Opening]
    created_at: str

    @property
    def input(self) -> Any:
        return parse_input(self.canonical_input)

    @property
    def is_legacy(self) -> bool:
        """A side input from before commitments: it holds private fields in clear, so it is never published."""
        data = self.input
        return self.kind != "FINAL" and isinstance(data, dict) and data.get("version") == LEGACY_PROOF_VERSION


def parse_openings(text: str | None) -> dict[str, Opening]:
    if not text:
        return {}
    return {name: Opening(entry["value"], entry["salt"]) for name, entry in json.loads(text).items()}
