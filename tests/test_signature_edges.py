"""chain.signatures at its edges: s = 1, range boundaries, every v form, EIP-2098 bits, exact errors per backend."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from chain.signatures import (
    SECP256K1_N,
    SECP256K1_P,
    CoinCurveBackend,
    MalformedSignature,
    PureBackend,
    UnrecoverableSignature,
    eip191_message_hash,
    parse_signature,
    recover_address,
    recover_personal_sign,
    signature_to_bytes65,
)

KEY = "0x" + "11" * 32
SIGNER = Account.from_key(KEY).address.lower()
MESSAGE = "edges"
HASH = eip191_message_hash(MESSAGE)
_SIGNED = Account.sign_message(encode_defunct(text=MESSAGE), private_key=KEY)
R, S, V = _SIGNED.r, _SIGNED.s, _SIGNED.v
BACKENDS = [CoinCurveBackend(), PureBackend()]


def sig65(r: int, s: int, v: int) -> str:
    return "0x" + r.to_bytes(32, "big").hex() + s.to_bytes(32, "big").hex() + bytes((v,)).hex()


def compact(r: int, y_parity_and_s: int) -> str:
    return "0x" + r.to_bytes(32, "big").hex() + y_parity_and_s.to_bytes(32, "big").hex()


def test_curve_constants() -> None:
    assert SECP256K1_N == 2**256 - 0x14551231950B75FC4402DA1732FC9BEBF
    assert SECP256K1_P == 2**256 - 2**32 - 977


@pytest.mark.parametrize(("v", "recovery_id"), [(0, 0), (1, 1), (27, 0), (28, 1)])
def test_every_accepted_v_maps_to_its_recovery_id(v: int, recovery_id: int) -> None:
    assert parse_signature(sig65(5, 7, v)) == (5, 7, recovery_id)
    assert signature_to_bytes65(sig65(5, 7, v)) == bytes.fromhex(sig65(5, 7, 27 + recovery_id)[2:])


@pytest.mark.parametrize("v", [2, 3, 25, 26, 29, 30, 35, 36, 37, 38, 255])
def test_every_other_v_is_malformed(v: int) -> None:
    with pytest.raises(MalformedSignature, match="v must be 0, 1, 27 or 28"):
        parse_signature(sig65(5, 7, v))


def test_the_real_signature_recovers_for_every_v_form() -> None:
    for backend in BACKENDS:
        for v in (V, V - 27):
            assert recover_personal_sign(MESSAGE, sig65(R, S, v), backend=backend) == SIGNER
        assert recover_personal_sign(MESSAGE, compact(R, ((V - 27) << 255) | S), backend=backend) == SIGNER


@pytest.mark.parametrize(("parity", "s"), [(0, 7), (1, 7), (0, 1), (1, 1), (1, 2**255 - 1), (0, SECP256K1_N // 2)])
def test_eip2098_splits_the_top_bit_from_s(parity: int, s: int) -> None:
    assert parse_signature(compact(5, (parity << 255) | s)) == (5, s, parity)
    assert signature_to_bytes65(compact(5, (parity << 255) | s)) == bytes.fromhex(sig65(5, s, 27 + parity)[2:])


def test_eip2098_with_nothing_but_the_parity_bit_is_s_zero() -> None:
    with pytest.raises(MalformedSignature, match="s is out of range"):
        parse_signature(compact(5, 1 << 255))


@pytest.mark.parametrize(
    ("r", "s"), [(1, 1), (1, SECP256K1_N - 1), (SECP256K1_N - 1, 1), (SECP256K1_N - 1, SECP256K1_N - 1), (R, 1)]
)
def test_range_boundaries_inside_are_accepted(r: int, s: int) -> None:
    assert parse_signature(sig65(r, s, 27)) == (r, s, 0)
    assert parse_signature(sig65(r, s, 28))[2] == 1


@pytest.mark.parametrize(
    ("r", "s", "which"),
    [(0, 1, "r"), (SECP256K1_N, 1, "r"), (SECP256K1_N + 1, 1, "r"), (2**256 - 1, 1, "r"),
     (1, 0, "s"), (1, SECP256K1_N, "s"), (1, SECP256K1_N + 1, "s"), (1, 2**256 - 1, "s")],
)  # fmt: skip
def test_range_boundaries_outside_are_malformed(r: int, s: int, which: str) -> None:
    with pytest.raises(MalformedSignature, match=f"signature {which} is out of range"):
        parse_signature(sig65(r, s, 27))


def test_s_equal_to_one_recovers_the_same_key_on_both_backends_and_not_the_signer() -> None:
    # s = 1 is in range, so it is parsed and recovered: r⁻¹(R - zG) is some key, and both backends agree on it.
    recovered = {recover_address(HASH, sig65(R, 1, V), backend=backend) for backend in BACKENDS}
    assert len(recovered) == 1
    assert recovered != {SIGNER}
    other = {recover_address(HASH, sig65(R, 1, 55 - V), backend=backend) for backend in BACKENDS}
    assert len(other) == 1 and other != recovered


def test_high_s_twin_recovers_the_signer_on_both_backends() -> None:
    twin = sig65(R, SECP256K1_N - S, 55 - V)
    assert SECP256K1_N - S > SECP256K1_N // 2
    for backend in BACKENDS:
        assert recover_personal_sign(MESSAGE, twin, backend=backend) == SIGNER
        # The high-s twin with the same v names someone else: the parity matters.
        assert recover_personal_sign(MESSAGE, sig65(R, SECP256K1_N - S, V), backend=backend) != SIGNER


def test_r_that_is_not_on_the_curve_is_unrecoverable_on_both_backends() -> None:
    # x = 5: 5³ + 7 = 132 is not a square mod p, so no point has it as its x coordinate.
    assert pow(132, (SECP256K1_P - 1) // 2, SECP256K1_P) == SECP256K1_P - 1
    for backend in BACKENDS:
        with pytest.raises(UnrecoverableSignature, match="no public key can be recovered"):
            recover_address(HASH, sig65(5, 7, 27), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
def test_backend_component_checks(backend) -> None:
    assert backend.name in {"coincurve", "pure"}
    good = backend.recover_public_key(HASH, R, S, V - 27)
    assert len(good) == 64
    assert backend.recover_public_key(bytearray(HASH), R, S, V - 27) == good
    for bad_hash in (HASH[:31], HASH + b"\x00", HASH.hex(), b""):
        with pytest.raises(ValueError, match="message hash must be 32 bytes"):
            backend.recover_public_key(bad_hash, R, S, V - 27)
    for r, s in ((0, S), (R, 0), (SECP256K1_N, S), (R, SECP256K1_N)):
        with pytest.raises(MalformedSignature, match="r or s is out of range"):
            backend.recover_public_key(HASH, r, s, 0)
    for recovery_id in (-1, 2, 27):
        with pytest.raises(MalformedSignature, match="recovery id must be 0 or 1"):
            backend.recover_public_key(HASH, R, S, recovery_id)


_VALID = sig65(5, 7, 27)[2:]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("0x" + _VALID[:128], None),
        ("0x" + _VALID, None),
        (_VALID, None),
        ("0X" + _VALID.upper(), None),
        ("0x" + _VALID[:126], "must be 65 bytes"),
        ("0x" + _VALID + "00", "must be 65 bytes"),
        ("0x" + _VALID[:129], "odd length"),
        ("0x" + _VALID[:127], "odd length"),
        ("0x" + _VALID[:-2] + "1g", "not valid hex"),
        ("0x" + _VALID[:-2] + " 1", "not valid hex"),
    ],
)
def test_lengths_and_characters(signature: str, message: str | None) -> None:
    if message is None:
        assert signature_to_bytes65(signature) == bytes.fromhex(_VALID)
    else:
        with pytest.raises(MalformedSignature, match=message):
            parse_signature(signature)


def test_non_strings_are_malformed_with_their_own_message() -> None:
    for bad in (None, 5, b"\x00" * 65):
        with pytest.raises(MalformedSignature, match="must be a hex string"):
            parse_signature(bad)  # type: ignore[arg-type]


def test_eip191_hash_of_text_and_bytes() -> None:
    expected = bytes.fromhex("50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750")
    assert eip191_message_hash("hello") == expected
    assert eip191_message_hash(b"hello") == expected
    assert eip191_message_hash(bytearray(b"hello")) == expected
    assert eip191_message_hash(memoryview(b"hello")) == expected
    # The length is of the UTF-8 bytes: "é" is 2 bytes, so the prefix says 2.
    assert eip191_message_hash("é") == eip191_message_hash("é".encode())
    with pytest.raises(TypeError, match="must be str or bytes"):
        eip191_message_hash(5)  # type: ignore[arg-type]
