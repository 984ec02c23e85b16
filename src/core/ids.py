"""Identifiers and random secrets, always from the OS CSPRNG and never at import time."""

from __future__ import annotations

import base64
import re
import secrets
import uuid

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def new_id() -> str:
    return str(uuid.uuid4())


def is_uuid4(value: object) -> bool:
    return isinstance(value, str) and _UUID4.match(value.lower()) is not None and value == value.lower()


def random_token(num_bytes: int = 32) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(num_bytes)).rstrip(b"=").decode()


def random_hex(num_bytes: int = 32) -> str:
    return secrets.token_hex(num_bytes)
