"""Pending email/phone claims: one-time codes (CSPRNG, stored as keyed hashes), send caps, attempt limits (SQL: store)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from core.config import Env

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
