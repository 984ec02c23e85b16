"""Pending email/phone claims: one-time codes (CSPRNG, stored as keyed hashes), send caps, attempt-limited checks."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from core.clock import format_time
from core.config import Env
from db.port import Database, QueryResult, Statement

Channel = Literal["email", "phone"]
Delivery = Literal["SENT", "FAILED", "UNAVAILABLE"]
CHANNELS: tuple[Channel, ...] = ("email", "phone")

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=15)
# Wrong codes a claim survives; with 6 digits that is a 5-in-a-million chance per code.
MAX_ATTEMPTS = 5
# Codes one user may have sent per hour (all channels): bounds guessing by re-requesting codes, and SMS cost.
USER_SENDS_PER_HOUR = 5
# Codes one address may receive per day, whoever asks: bounds guessing with many accounts, and inbox spam.
ADDRESS_SENDS_PER_DAY = 10
USER_WINDOW = timedelta(hours=1)
ADDRESS_WINDOW = timedelta(days=1)
# The send log only has to cover the longest window.
SEND_LOG_RETENTION = timedelta(days=2)

_CODE_KEY_LABEL = b"tattlehash/contact-code/v1"
_ADDRESS_KEY_LABEL = b"tattlehash/contact-address/v1"


@dataclass(frozen=True)
class PendingClaim:
    """An email or phone the user asked for but has not proved yet."""

    channel: Channel
    value: str
    code_hash: str
    attempts: int
    delivery: Delivery
    expires_at: str

    @property
    def attempts_left(self) -> int:
        return max(MAX_ATTEMPTS - self.attempts, 0)


def _key(env: Env, label: bytes) -> bytes:
    # A key per purpose, derived from HMAC_SECRET, so a code hash can never be confused with another MAC.
    return hmac.new(env.hmac_secret().encode(), label, hashlib.sha256).digest()


def new_code() -> str:
    """CODE_DIGITS decimal digits, uniformly from the OS CSPRNG, at request time."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(env: Env, user_id: str, channel: str, value: str, code: str) -> str:
    """Keyed and bound to the claim: a code proves only this address for this user."""
    message = "\n".join((user_id, channel, value, code)).encode()
    return hmac.new(_key(env, _CODE_KEY_LABEL), message, hashlib.sha256).hexdigest()


def address_hash(env: Env, channel: str, value: str) -> str:
    """The send log's key for an address: caps per address without keeping addresses in the log."""
    return hmac.new(_key(env, _ADDRESS_KEY_LABEL), f"{channel}\n{value}".encode(), hashlib.sha256).hexdigest()


# ---- reads


def claims_statement(db: Database, user_id: str) -> Statement:
    return db.prepare(
        "SELECT channel, value, code_hash, attempts, delivery, expires_at FROM contact_claims WHERE user_id = ?"
        " ORDER BY channel"
    ).bind(user_id)


def claim_statement(db: Database, user_id: str, channel: Channel) -> Statement:
    return db.prepare(
        "SELECT channel, value, code_hash, attempts, delivery, expires_at FROM contact_claims"
        " WHERE user_id = ? AND channel = ?"
    ).bind(user_id, channel)


def claims_from(result: QueryResult) -> dict[str, PendingClaim]:
    return {row["channel"]: _claim(row) for row in result.results}


def _claim(row: dict[str, Any]) -> PendingClaim:
    return PendingClaim(
        channel=row["channel"],
        value=row["value"],
        code_hash=row["code_hash"],
        attempts=int(row["attempts"]),
        delivery=row["delivery"],
        expires_at=row["expires_at"],
    )


def user_sends_statement(db: Database, user_id: str, now: datetime) -> Statement:
    """How many codes this user had sent in the last hour, and when the oldest of them went."""
    return db.prepare(
        "SELECT COUNT(*) AS sent, MIN(sent_at) AS oldest FROM contact_code_sends WHERE user_id = ? AND sent_at > ?"
    ).bind(user_id, format_time(now - USER_WINDOW))


def address_sends_statement(db: Database, hashed_address: str, now: datetime) -> Statement:
    """How many codes this address received in the last day (from any user), and when the oldest went."""
    return db.prepare(
        "SELECT COUNT(*) AS sent, MIN(sent_at) AS oldest FROM contact_code_sends WHERE address_hash = ? AND sent_at > ?"
    ).bind(hashed_address, format_time(now - ADDRESS_WINDOW))


# ---- writes


def upsert_claim_statement(
    db: Database,
    user_id: str,
    channel: Channel,
    value: str,
    hashed_code: str,
    delivery: Delivery,
    now: datetime,
) -> Statement:
    """A new claim, or a fresh code for the user's claim on this channel (its attempts start over)."""
    stamp = format_time(now)
    return db.prepare(
        "INSERT INTO contact_claims (user_id, channel, value, code_hash, attempts, attempt_id, delivery, expires_at,"
        " created_at) VALUES (?, ?, ?, ?, 0, NULL, ?, ?, ?)"
        " ON CONFLICT (user_id, channel) DO UPDATE SET value = excluded.value, code_hash = excluded.code_hash,"
        " attempts = 0, attempt_id = NULL, delivery = excluded.delivery, expires_at = excluded.expires_at,"
        " created_at = excluded.created_at"
    ).bind(user_id, channel, value, hashed_code, delivery, format_time(now + CODE_TTL), stamp)


def delete_claim_statement(db: Database, user_id: str, channel: Channel) -> Statement:
    return db.prepare("DELETE FROM contact_claims WHERE user_id = ? AND channel = ?").bind(user_id, channel)


def log_send_statements(
    db: Database, send_id: str, user_id: str, hashed_address: str, now: datetime
) -> list[Statement]:
    """Record a send and drop this user's and this address's entries that no window needs any more."""
    stamp = format_time(now)
    return [
        db.prepare("INSERT INTO contact_code_sends (id, user_id, address_hash, sent_at) VALUES (?, ?, ?, ?)").bind(
            send_id, user_id, hashed_address, stamp
        ),
        db.prepare("DELETE FROM contact_code_sends WHERE (user_id = ? OR address_hash = ?) AND sent_at < ?").bind(
            user_id, hashed_address, format_time(now - SEND_LOG_RETENTION)
        ),
    ]


def spend_attempt_statement(
    db: Database, user_id: str, channel: Channel, hashed_code: str, attempt_id: str, now: datetime
) -> Statement:
    """Counts one attempt, atomically and before the code is honoured: parallel guesses cannot exceed the limit.

    It matches only the claim that was read (same code hash), still unexpired and with attempts left.
    """
    return db.prepare(
        "UPDATE contact_claims SET attempts = attempts + 1, attempt_id = ?"
        " WHERE user_id = ? AND channel = ? AND code_hash = ? AND attempts < ? AND expires_at > ?"
    ).bind(attempt_id, user_id, channel, hashed_code, MAX_ATTEMPTS, format_time(now))


def attempt_guard(user_id: str, channel: Channel, attempt_id: str, value: str) -> tuple[str, tuple[Any, ...]]:
    """SQL true only when this request's attempt was the one counted (see spend_attempt_statement)."""
    return (
        "SELECT 1 FROM contact_claims WHERE user_id = ? AND channel = ? AND attempt_id = ? AND value = ?",
        (user_id, channel, attempt_id, value),
    )


def finish_claim_statement(db: Database, user_id: str, channel: Channel, attempt_id: str) -> Statement:
    """A claim whose right code was entered is used up, whether or not the address could be taken."""
    return db.prepare("DELETE FROM contact_claims WHERE user_id = ? AND channel = ? AND attempt_id = ?").bind(
        user_id, channel, attempt_id
    )
