"""Unit tests for proof-of-funds building blocks: balanceOf encoding, thresholds, requirements, commitments."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from eth_utils import function_signature_to_4byte_selector

from chain import erc20
from chain.networks import network_by_name
from core.config import Env
from core.errors import ApiError
from gatekeeper import funds

HOLDER = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20
ENV = Env({"RPC_URL_ETH_MAINNET": "https://rpc.test", "RPC_PUBLIC_FALLBACKS": "false"})
MAINNET = network_by_name("eth-mainnet", ENV)


def test_balance_of_selector_is_the_keccak_of_the_signature() -> None:
    assert function_signature_to_4byte_selector("balanceOf(address)") == erc20.BALANCE_OF_SELECTOR
    assert erc20.BALANCE_OF_SELECTOR.hex() == "70a08231"


def test_encode_balance_of_pads_the_address_to_one_word() -> None:
    data = erc20.encode_balance_of("0x" + "AB" * 20)
    assert data == bytes.fromhex("70a08231") + bytes(12) + bytes.fromhex("ab" * 20)
    assert len(data) == 36


def test_balance_of_call_is_pinned_to_the_block_number() -> None:
    call = erc20.balance_of_call(TOKEN, HOLDER, 1234)
    assert call.method == "eth_call"
    assert call.params == [{"to": TOKEN, "data": "0x70a08231" + "00" * 12 + "ab" * 20}, "0x4d2"]
    assert call.decode is not None and call.decode("0x01ff") == b"\x01\xff"


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (bytes(32), 0),
        ((2**256 - 1).to_bytes(32, "big"), 2**256 - 1),
        ((7).to_bytes(32, "big") + b"\xff" * 32, 7),  # extra words are ignored, like abi.decode
    ],
)
def test_decode_balance_of(data: bytes, value: int) -> None:
    assert erc20.decode_balance_of(data) == value


@pytest.mark.parametrize("data", [b"", b"\x01", bytes(31)])
def test_decode_balance_of_refuses_short_answers(data: bytes) -> None:
    with pytest.raises(erc20.NotAnErc20Answer):
        erc20.decode_balance_of(data)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("1", 1), ("007", 7), (str(2**256 - 1), 2**256 - 1), ("0" * 78, 0)],
)
def test_parse_min_balance_accepts_decimal_digit_strings(text: str, value: int) -> None:
    assert funds.parse_min_balance(text) == value


@pytest.mark.parametrize(
    "value",
    [
        "-1",
        "+1",
        "1.5",
        "1.0",
        "1e18",
        "1E3",
        "0x10",
        " 1",
        "1 ",
        "1_000",
        "",
        "١٢٣",  # Arabic-Indic digits: isdigit() says yes, the API says no
        "²",
        str(2**256),
        "9" * 79,
        100,
        1.0,
        10**30,
        True,
        None,
        ["1"],
    ],
)
def test_parse_min_balance_refuses_everything_else(value: object) -> None:
    with pytest.raises(ApiError) as caught:
        funds.parse_min_balance(value)
    assert caught.value.code == "E2005"
    assert caught.value.details == {"field": "min_balance"}


def test_build_requirement_normalizes_addresses_and_amount() -> None:
    checksummed = "0x742d35Cc6634C0532925a3b844Bc454e4438f44e"
    requirement = funds.build_requirement(
        ENV,
        wallet_address=checksummed,
        network="eth-mainnet",
        asset_type="ERC20",
        token_address=TOKEN.upper().replace("0X", "0x"),
        min_balance="0100",
    )
    assert requirement.wallet_address == checksummed.lower()
    assert requirement.token_address == TOKEN
    assert requirement.min_balance == 100
    assert requirement.network == MAINNET


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"wallet_address": "0x742d35cc6634C0532925a3b844Bc454e4438f44e"}, "E2001"),  # bad EIP-55 checksum
        ({"wallet_address": "0x" + "0" * 40}, "E2001"),
        ({"wallet_address": 12}, "E2001"),
        ({"network": "eth-mainet"}, "E2002"),
        ({"network": "local"}, "E2002"),  # known, but RPC_URL_LOCAL is not set
        ({"network": None}, "E2002"),
        ({"asset_type": "BTC"}, "E9004"),
        ({"asset_type": "ERC20", "token_address": None}, "E2003"),
        ({"asset_type": "ERC20", "token_address": "0x1234"}, "E2007"),
        ({"asset_type": "ERC20", "token_address": 5}, "E2007"),
        ({"asset_type": "NATIVE", "token_address": TOKEN}, "E9004"),
        ({"min_balance": 1}, "E2005"),
    ],
)
def test_build_requirement_reports_each_bad_field_with_its_code(fields: dict[str, object], code: str) -> None:
    arguments: dict[str, object] = {
        "wallet_address": HOLDER,
        "network": "eth-mainnet",
        "asset_type": "NATIVE",
        "token_address": None,
        "min_balance": "1",
        **fields,
    }
    with pytest.raises(ApiError) as caught:
        funds.build_requirement(ENV, **arguments)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_unsupported_network_lists_the_usable_ones() -> None:
    with pytest.raises(ApiError) as caught:
        funds.build_requirement(ENV, wallet_address=HOLDER, network="mars", asset_type="NATIVE", min_balance="1")
    assert caught.value.details == {"field": "network", "supported": ["eth-mainnet"]}


@pytest.mark.parametrize(
    "changes",
    [
        {"wallet_address": "0x" + "AB" * 20},  # not normalized
        {"asset_type": "ERC20"},  # no token
        {"token_address": TOKEN},  # token on NATIVE
        {"min_balance": -1},
        {"min_balance": 2**256},
        {"min_balance": "1"},
        {"min_balance": True},
    ],
)
def test_requirement_refuses_inconsistent_construction(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "wallet_address": HOLDER,
        "network": MAINNET,
        "asset_type": "NATIVE",
        "min_balance": 1,
        **changes,
    }
    with pytest.raises(ValueError):
        funds.FundsRequirement(**arguments)  # type: ignore[arg-type]


def test_commitment_is_keyed_with_a_key_derived_from_hmac_secret() -> None:
    secret = "s" * 32
    key = funds.commitment_key(Env({"HMAC_SECRET": secret}))
    # The documented derivation: k = HMAC-SHA256(HMAC_SECRET, "tattlehash/funds-commitment/v1").
    assert key == hmac.new(secret.encode(), b"tattlehash/funds-commitment/v1", hashlib.sha256).digest()
    assert key != funds.commitment_key(Env({"HMAC_SECRET": "t" * 32}))
    salt = "ab" * 32
    commitment = funds.balance_commitment(12345, salt, key)
    assert commitment == hmac.new(key, f"12345:{salt}".encode(), hashlib.sha256).hexdigest()
    assert commitment != hashlib.sha256(f"12345:{salt}".encode()).hexdigest()
    assert funds.verify_commitment(12345, salt, commitment, key)
    assert not funds.verify_commitment(12346, salt, commitment, key)
    assert not funds.verify_commitment(12345, "cd" * 32, commitment, key)
    assert not funds.verify_commitment(12345, salt, commitment, funds.commitment_key(Env({"HMAC_SECRET": "t" * 32})))
    # Rows from before migration 0008 carry no scheme: they were plain sha256 and still verify as such.
    legacy = hashlib.sha256(f"12345:{salt}".encode()).hexdigest()
    assert funds.verify_commitment(12345, salt, legacy, key, None)
    assert not funds.verify_commitment(12345, salt, legacy, key)


def test_commitment_key_needs_hmac_secret() -> None:
    with pytest.raises(ApiError) as raised:
        funds.commitment_key(Env({}))
    assert raised.value.code == "E9001" and raised.value.details == {"variable": "HMAC_SECRET"}


def test_result_repr_hides_the_salt() -> None:
    requirement = funds.FundsRequirement(HOLDER, MAINNET, "NATIVE", 1)
    salt = "5a" * 32
    result = funds.FundsResult(requirement, "PASSED", 1, "rpc.test", funds.balance_commitment(2, salt, b"k" * 32), salt)
    assert salt not in repr(result)
    assert result.passed
    assert len(result.attestation_id) == 36
