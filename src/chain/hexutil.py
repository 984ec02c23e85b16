"""Strict conversions between Ethereum JSON-RPC hex encodings (quantities, data) and Python values."""

from __future__ import annotations

import re
from typing import Any

_QUANTITY_RE = re.compile(r"0x[0-9a-fA-F]+")
_DATA_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
# Every EVM quantity fits in 256 bits; anything longer is a broken or hostile node, not a big number.
_MAX_QUANTITY = 2**256 - 1


class MalformedValue(ValueError):
    """A value from a node is not the hex encoding the JSON-RPC spec promises."""


def parse_quantity(value: Any) -> int:
    """Decode a "0x"-prefixed hex quantity ("0x0", "0x1a"; leading zeros tolerated) to an int."""
    # isinstance first: bool/int/None must be rejected, not coerced.
    if not isinstance(value, str) or not _QUANTITY_RE.fullmatch(value):
        raise MalformedValue("expected a 0x hex quantity")
    number = int(value[2:], 16)
    if number > _MAX_QUANTITY:
        raise MalformedValue("quantity exceeds 256 bits")
    return number


def to_quantity(number: int) -> str:
    """Encode a non-negative int as a JSON-RPC quantity (no leading zeros, "0x0" for zero)."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError("a quantity is a non-negative int")
    return hex(number)


def parse_data(value: Any) -> bytes:
    """Decode "0x"-prefixed, even-length hex data ("0x" is empty) to bytes."""
    # The regex, not bytes.fromhex, decides validity: fromhex would silently accept embedded spaces.
    if not isinstance(value, str) or not _DATA_RE.fullmatch(value):
        raise MalformedValue("expected 0x hex data of even length")
    return bytes.fromhex(value[2:])


def to_data(data: bytes) -> str:
    """Encode bytes as JSON-RPC data ("0x" + lower-case hex)."""
    return "0x" + bytes(data).hex()
