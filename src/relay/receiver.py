"""Receiver side of Standard Webhooks: verify a delivery as the reference libraries do, for partners' code and tests.

A receiver is given the secret once (`whsec_…`) and may store it with or without the prefix, or re-encode
its base64 without padding; the reference libraries accept all of these, so this does too. A delivery is
genuine when its timestamp is within TOLERANCE of the receiver's clock and any `v1` signature of the
space-separated `webhook-signature` header (two during a secret rotation) matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta

from core.clock import unix_seconds
from relay.signing import SECRET_PREFIX

# The reference libraries' tolerance, both ways: older is a replay, newer is a clock gone wrong.
TOLERANCE = timedelta(minutes=5)


class WebhookVerificationError(Exception):
    """The delivery is not genuine, or not now; the message says which check failed (never the secret)."""


def receiver_key(secret: str) -> bytes:
    """The HMAC key from a secret as receivers keep it: `whsec_` optional, base64 padded or not."""
    text = secret.strip()
    if text.startswith(SECRET_PREFIX):
        text = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise WebhookVerificationError("the secret is not base64") from None
    if not key:
        raise WebhookVerificationError("the secret is empty")
    return key


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise WebhookVerificationError(f"missing {name} header")


def verify_delivery(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    """Raise WebhookVerificationError unless the delivery is signed with `secret` and timestamped near `now`."""
    msg_id = _header(headers, "webhook-id")
    raw_timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not a whole number of seconds")
    timestamp = int(raw_timestamp)
    drift = abs(unix_seconds(now) - timestamp)
    if drift > TOLERANCE.total_seconds():
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(receiver_key(secret), signed, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            return
    raise WebhookVerificationError("no matching signature")
