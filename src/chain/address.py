"""Ethereum address validation, normalization and EIP-55 checksumming."""

from __future__ import annotations

import re

from eth_hash.auto import keccak

__all__ = [
    "ZERO_ADDRESS",
    "InvalidAddress",
    "is_address",
    "normalize_address",
    "to_checksum_address",
]

ZERO_ADDRESS = "0x" + "0" * 40

# Explicit ASCII class: `\d` or str.isdigit() would also accept non-ASCII digits.
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


class InvalidAddress(ValueError):
    """An input is not an acceptable Ethereum address; the message is safe to show API users."""


def _checksum_body(lower_body: str) -> str:
    """Apply EIP-55 casing to 40 lowercase hex characters."""
    digest = keccak(lower_body.encode("ascii")).hex()
    return "".join(ch.upper() if ch.isalpha() and int(digest[i], 16) >= 8 else ch for i, ch in enumerate(lower_body))


def normalize_address(value: object, *, allow_zero: bool = False) -> str:
    """Validate an address (EIP-55 checked when mixed case) and return it as lowercase `0x…`."""
    if not isinstance(value, str):
        raise InvalidAddress("address must be a string")
    # Length first so arbitrarily long input never reaches the regex.
    if len(value) != 42:
        raise InvalidAddress("address must be 0x followed by 40 hex characters")
    if not value.startswith("0x"):
        raise InvalidAddress("address must start with 0x")
    body = value[2:]
    if _HEX40.fullmatch(body) is None:
        raise InvalidAddress("address must be 0x followed by 40 hex characters")
    lower = body.lower()
    # Single-case input carries no checksum (EIP-55 allows it); mixed case is a claim we must verify,
    # since a typo in a checksummed address is exactly what the checksum exists to catch.
    if body not in (lower, body.upper()) and body != _checksum_body(lower):
        raise InvalidAddress("address has an invalid EIP-55 checksum")
    if not allow_zero and lower == ZERO_ADDRESS[2:]:
        raise InvalidAddress("the zero address is not allowed")
    return "0x" + lower


def to_checksum_address(address: str) -> str:
    """Return the EIP-55 checksummed form of a valid address (the zero address included)."""
    # Validating first means a mixed-case typo is rejected instead of silently "re-checksummed".
    lower = normalize_address(address, allow_zero=True)
    return "0x" + _checksum_body(lower[2:])


def is_address(value: object) -> bool:
    """Return True for any well-formed address (zero address included), checksum-checked if mixed case."""
    try:
        normalize_address(value, allow_zero=True)
    except InvalidAddress:
        return False
    return True
