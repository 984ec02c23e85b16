"""Tests for chain.address: validation, normalization and EIP-55 checksums."""

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from chain.address import (
    ZERO_ADDRESS,
    InvalidAddress,
    is_address,
    normalize_address,
    to_checksum_address,
)

# Mixed-case vectors from the EIP-55 specification.
EIP55_MIXED = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]
# Vectors from the same spec whose correct checksum happens to be single-case.
EIP55_SINGLE_CASE = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
]
PRIVATE_KEYS = [
    "0x" + "11" * 32,
    "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
    "0x" + "ab" * 32,
]


def _swap_case_of_first_letter(address: str) -> str:
    for i, ch in enumerate(address[2:], start=2):
        if ch.isalpha():
            return address[:i] + ch.swapcase() + address[i + 1 :]
    raise AssertionError("address has no letters")


@pytest.mark.parametrize("address", EIP55_MIXED + EIP55_SINGLE_CASE)
def test_to_checksum_address_matches_eip55_vectors(address: str) -> None:
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address(address.upper().replace("0X", "0x")) == address
    assert to_checksum_address(address) == address


@pytest.mark.parametrize("key", PRIVATE_KEYS)
def test_to_checksum_address_matches_eth_account(key: str) -> None:
    expected = Account.from_key(key).address
    assert to_checksum_address(expected.lower()) == expected
    assert normalize_address(expected) == expected.lower()


@pytest.mark.parametrize("address", EIP55_MIXED)
def test_normalize_accepts_lower_upper_and_checksummed(address: str) -> None:
    lower = address.lower()
    upper = "0x" + address[2:].upper()
    assert normalize_address(lower) == lower
    assert normalize_address(upper) == lower
    assert normalize_address(address) == lower
    assert is_address(lower) and is_address(upper) and is_address(address)


@pytest.mark.parametrize("address", EIP55_MIXED)
def test_invalid_checksum_is_rejected(address: str) -> None:
    bad = _swap_case_of_first_letter(address)
    assert bad.lower() == address.lower() and bad != address
    with pytest.raises(InvalidAddress, match="checksum"):
        normalize_address(bad)
    with pytest.raises(InvalidAddress):
        to_checksum_address(bad)
    assert not is_address(bad)


def test_zero_address_rejected_unless_allowed() -> None:
    with pytest.raises(InvalidAddress, match="zero"):
        normalize_address(ZERO_ADDRESS)
    assert normalize_address(ZERO_ADDRESS, allow_zero=True) == ZERO_ADDRESS
    assert to_checksum_address(ZERO_ADDRESS) == ZERO_ADDRESS
    assert is_address(ZERO_ADDRESS)


GOOD = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"


@pytest.mark.parametrize(
    "value",
    [
        GOOD[:-1],  # 41 chars
        GOOD + "0",  # 43 chars
        GOOD[2:],  # no prefix, 40 chars
        "00" + GOOD[2:],  # no prefix but the right length
        "0X" + GOOD[2:],  # uppercase prefix
        GOOD[:-1] + "g",  # non-hex
        GOOD[:-1] + "٣",  # non-ASCII digit
        " " + GOOD[1:],  # whitespace, right length
        GOOD + " ",
        GOOD + "\n",
        "0x" + " " * 40,
        "",
        "0x",
    ],
)
def test_malformed_strings_are_rejected(value: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalize_address(value)
    # The message goes to API users: short, and never echoes the input back.
    assert len(str(info.value)) < 80
    assert GOOD[2:] not in str(info.value)
    assert not is_address(value)


@pytest.mark.parametrize("value", [None, 0, 1234, b"0x" + b"1" * 40, ["0x" + "1" * 40], object()])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidAddress, match="string"):
        normalize_address(value)
    assert not is_address(value)


def test_invalid_address_is_a_value_error() -> None:
    assert issubclass(InvalidAddress, ValueError)


@given(st.binary(min_size=20, max_size=20))
def test_checksum_round_trip(raw: bytes) -> None:
    lower = "0x" + raw.hex()
    checksummed = to_checksum_address(lower)
    assert checksummed.lower() == lower
    assert normalize_address(checksummed, allow_zero=True) == lower


@given(st.text(max_size=60))
def test_arbitrary_text_only_raises_invalid_address(value: str) -> None:
    try:
        result = normalize_address(value, allow_zero=True)
    except InvalidAddress:
        return
    assert result == value.lower()
