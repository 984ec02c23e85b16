"""chain.signatures at its edges: s = 1, range boundaries, every v form, EIP-2098 bits, exact errors per backend."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.backends.native import NativeECCBackend
from eth_keys.datatypes import PrivateKey

from chain.signatures import (
    MAX_SIGNATURE_BYTES,
    SECP256K1_N,
    SECP256K1_P,
    CoinCurveBackend,
    FastPureBackend,
    JsBackend,
    MalformedSignature,
    PureBackend,
    UnrecoverableSignature,
    decode_signature,
    eip191_message_hash,
    parse_signature,
    parse_signature_bytes,
    recover_address,
    recover_personal_sign,
    signature_to_bytes65,
)
from tests.support.js_bundle import fake_recovery

KEY = "0x" + "11" * 32
SIGNER = Account.from_key(KEY).address.lower()
MESSAGE = "edges"
HASH = eip191_message_hash(MESSAGE)
_SIGNED = Account.sign_message(encode_defunct(text=MESSAGE), private_key=KEY)
R, S, V = _SIGNED.r, _SIGNED.s, _SIGNED.v


# coincurve first: tests compare the others with it.
BACKENDS = [CoinCurveBackend(), PureBackend(), FastPureBackend(), JsBackend(fake_recovery())]
NO_KEY = "no public key can be recovered from this signature"
LENGTH_65 = "signature must be 65 bytes (or 64 bytes EIP-2098 compact)"
ODD = "signature hex has an odd length"
NOT_HEX = "signature is not valid hex"


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
    with pytest.raises(MalformedSignature, match=r"^signature v must be 0, 1, 27 or 28$"):
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
    with pytest.raises(MalformedSignature, match=r"^signature s is out of range$"):
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
    with pytest.raises(MalformedSignature, match=rf"^signature {which} is out of range$"):
        parse_signature(sig65(r, s, 27))


def test_s_equal_to_one_recovers_the_same_key_on_every_backend_and_not_the_signer() -> None:
    # s = 1 is in range, so it is parsed and recovered: r⁻¹(R - zG) is some key, and every backend agrees on it.
    recovered = {recover_address(HASH, sig65(R, 1, V), backend=backend) for backend in BACKENDS}
    assert len(recovered) == 1
    assert recovered != {SIGNER}
    other = {recover_address(HASH, sig65(R, 1, 55 - V), backend=backend) for backend in BACKENDS}
    assert len(other) == 1 and other != recovered


def test_high_s_twin_recovers_the_signer_on_every_backend() -> None:
    twin = sig65(R, SECP256K1_N - S, 55 - V)
    assert SECP256K1_N - S > SECP256K1_N // 2
    for backend in BACKENDS:
        assert recover_personal_sign(MESSAGE, twin, backend=backend) == SIGNER
        # The high-s twin with the same v names someone else: the parity matters.
        assert recover_personal_sign(MESSAGE, sig65(R, SECP256K1_N - S, V), backend=backend) != SIGNER


def test_r_that_is_not_on_the_curve_is_unrecoverable_on_every_backend() -> None:
    # x = 5: 5³ + 7 = 132 is not a square mod p, so no point has it as its x coordinate.
    assert pow(132, (SECP256K1_P - 1) // 2, SECP256K1_P) == SECP256K1_P - 1
    for backend in BACKENDS:
        with pytest.raises(UnrecoverableSignature, match=rf"^{NO_KEY}$"):
            recover_address(HASH, sig65(5, 7, 27), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
def test_backend_component_checks(backend) -> None:
    assert backend.name in {"coincurve", "pure", "fast-pure", "js"}
    good = backend.recover_public_key(HASH, R, S, V - 27)
    assert len(good) == 64
    assert backend.recover_public_key(bytearray(HASH), R, S, V - 27) == good
    for bad_hash in (HASH[:31], HASH + b"\x00", HASH.hex(), b""):
        with pytest.raises(ValueError, match=r"^message hash must be 32 bytes$"):
            backend.recover_public_key(bad_hash, R, S, V - 27)
    for r, s in ((0, S), (R, 0), (SECP256K1_N, S), (R, SECP256K1_N)):
        with pytest.raises(MalformedSignature, match=r"^signature r or s is out of range$"):
            backend.recover_public_key(HASH, r, s, 0)
    for recovery_id in (-1, 2, 27):
        with pytest.raises(MalformedSignature, match=r"^signature recovery id must be 0 or 1$"):
            backend.recover_public_key(HASH, R, S, recovery_id)


_VALID = sig65(5, 7, 27)[2:]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ("0x" + _VALID[:128], None),
        ("0x" + _VALID, None),
        (_VALID, None),
        ("0X" + _VALID.upper(), None),
        ("0x" + _VALID[:126], LENGTH_65),
        ("0x" + _VALID + "00", LENGTH_65),
        ("0x" + _VALID[:129], ODD),
        ("0x" + _VALID[:127], ODD),
        ("0x" + _VALID[:-2] + "1g", NOT_HEX),
        ("0x" + _VALID[:-2] + " 1", NOT_HEX),
        ("0x" + "zz" * 10, LENGTH_65),  # the length is checked before the characters
    ],
)
def test_lengths_and_characters(signature: str, message: str | None) -> None:
    if message is None:
        assert signature_to_bytes65(signature) == bytes.fromhex(_VALID)
    else:
        with pytest.raises(MalformedSignature) as raised:
            parse_signature(signature)
        assert str(raised.value) == message


def test_non_strings_are_malformed_with_their_own_message() -> None:
    for bad in (None, 5, b"\x00" * 65):
        with pytest.raises(MalformedSignature, match=r"^signature must be a hex string$"):
            parse_signature(bad)  # type: ignore[arg-type]


def test_eip191_hash_of_text_and_bytes() -> None:
    expected = bytes.fromhex("50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750")
    assert eip191_message_hash("hello") == expected
    assert eip191_message_hash(b"hello") == expected
    assert eip191_message_hash(bytearray(b"hello")) == expected
    assert eip191_message_hash(memoryview(b"hello")) == expected
    # The length is of the UTF-8 bytes: "é" is 2 bytes, so the prefix says 2.
    assert eip191_message_hash("é") == eip191_message_hash("é".encode())
    with pytest.raises(TypeError, match=r"^message must be str or bytes$"):
        eip191_message_hash(5)  # type: ignore[arg-type]


# --- any-length hex (contract wallets) and raw bytes --------------------------------------------------------------

EMPTY = "signature is empty (an empty contract-wallet signature is written 0x)"
TOO_LONG = "signature is longer than 16384 bytes"


@pytest.mark.parametrize(
    ("text", "raw"),
    [("0x", b""), ("0X", b""), ("0xabcd", b"\xab\xcd"), ("abcd", b"\xab\xcd"), ("0XABcd", b"\xab\xcd"), ("00", b"\x00"),
     ("0x" + "00" * MAX_SIGNATURE_BYTES, b"\x00" * 16_384), ("0x" + _VALID, bytes.fromhex(_VALID))],
)  # fmt: skip
def test_decode_signature_returns_the_bytes_unchanged(text: str, raw: bytes) -> None:
    assert decode_signature(text) == raw


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", EMPTY),
        ("0x" + "00" * (MAX_SIGNATURE_BYTES + 1), TOO_LONG),
        ("00" * (MAX_SIGNATURE_BYTES + 1), TOO_LONG),
        # The length is checked first: a too-long odd or non-hex body is "too long", before any regex runs.
        ("0x" + "0" * (2 * MAX_SIGNATURE_BYTES + 1), TOO_LONG),
        ("0x" + "z" * (2 * MAX_SIGNATURE_BYTES + 2), TOO_LONG),
        ("0xabc", ODD),
        ("abc", ODD),
        ("0x0", ODD),
        ("0xzz", NOT_HEX),
        ("0x0x00", NOT_HEX),
        ("0xa bc", NOT_HEX),
        ("0xab\n", ODD),
        ("0x٣٣", NOT_HEX),
        (" 0xab", ODD),
    ],
)
def test_decode_signature_refusals(text: str, message: str) -> None:
    with pytest.raises(MalformedSignature) as raised:
        decode_signature(text)
    assert str(raised.value) == message


def test_the_size_bound_is_16_kib() -> None:
    assert MAX_SIGNATURE_BYTES == 16_384


@pytest.mark.parametrize("value", [None, 5, b"0x00", bytearray(b"00"), ["0x00"]])
def test_decode_signature_wants_a_string(value: object) -> None:
    with pytest.raises(MalformedSignature, match=r"^signature must be a hex string$"):
        decode_signature(value)


def test_parse_signature_bytes_takes_64_or_65_bytes() -> None:
    raw65 = bytes.fromhex(sig65(R, S, V)[2:])
    assert parse_signature_bytes(raw65) == (R, S, V - 27)
    assert parse_signature_bytes(bytes.fromhex(compact(R, ((V - 27) << 255) | S)[2:])) == (R, S, V - 27)
    for size in (0, 1, 63, 66, 130):
        with pytest.raises(MalformedSignature) as raised:
            parse_signature_bytes(b"\x01" * size)
        assert str(raised.value) == LENGTH_65


def test_recover_address_takes_raw_bytes_too() -> None:
    raw = bytes.fromhex(sig65(R, S, V)[2:])
    for backend in BACKENDS:
        assert recover_address(HASH, raw, backend=backend) == SIGNER
        assert recover_address(HASH, bytearray(raw), backend=backend) == SIGNER
        assert recover_address(HASH, raw[:32] + (((V - 27) << 255) | S).to_bytes(32, "big"), backend=backend) == SIGNER
    with pytest.raises(MalformedSignature) as raised:
        recover_address(HASH, raw + b"\x00")
    assert str(raised.value) == LENGTH_65


def test_recover_personal_sign_wants_hex_text() -> None:
    raw = bytes.fromhex(sig65(R, S, V)[2:])
    with pytest.raises(MalformedSignature, match=r"^signature must be a hex string$"):
        recover_personal_sign(MESSAGE, raw)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
def test_component_bounds_are_exact(backend) -> None:
    # r = 1 is in range (and x = 1 is on the curve), so it recovers a key; -1 and N + 1 are refused before recovery.
    assert len(backend.recover_public_key(HASH, 1, S, 0)) == 64
    assert backend.recover_public_key(HASH, 1, S, 0) == BACKENDS[0].recover_public_key(HASH, 1, S, 0)
    for r, s in ((-1, S), (R, -1), (SECP256K1_N + 1, S), (R, SECP256K1_N + 1)):
        with pytest.raises(MalformedSignature, match=r"^signature r or s is out of range$"):
            backend.recover_public_key(HASH, r, s, 0)


class _Bytes:
    def __init__(self, public_key: bytes) -> None:
        self.public_key = public_key

    def to_bytes(self) -> bytes:
        return self.public_key


class _BogusNative(NativeECCBackend):
    """eth_keys' recovery returning a point it should not (as an unrecognized encoding of infinity would)."""

    def __init__(self, public_key: bytes) -> None:
        super().__init__()
        self.public_key = public_key

    def ecdsa_recover(self, msg_hash: bytes, signature: object) -> _Bytes:  # type: ignore[override]
        return _Bytes(self.public_key)


def test_the_pure_backend_refuses_a_point_that_is_not_on_the_curve() -> None:
    good = PureBackend().recover_public_key(HASH, R, S, V - 27)
    off_curve = [bytes(64), good[:32] + (int.from_bytes(good[32:], "big") ^ 1).to_bytes(32, "big")]
    # Points on the curve, but not 64-byte keys: y written in 33 bytes, or (for 122·G, whose y has a zero top byte)
    # in 31.
    short_y = bytes.fromhex(
        "139ae46a1133f1f9d23f25efba0f6dd87bf7ddaf568a5fb9e0a3bfda73176237"
        "00995e555c8aabd263fd238833a12188b8a5ffbeb480ba0e3e6ec481a8991472"
    )
    assert short_y == PrivateKey((122).to_bytes(32, "big"), backend=NativeECCBackend()).public_key.to_bytes()
    wrong_length = [good[:32] + b"\x00" + good[32:], short_y[:32] + short_y[33:]]
    for public_key in off_curve + wrong_length:
        backend = PureBackend()
        backend._native = _BogusNative(public_key)  # type: ignore[assignment]
        with pytest.raises(UnrecoverableSignature) as raised:
            backend.recover_public_key(HASH, R, S, V - 27)
        assert str(raised.value) == NO_KEY
    backend = PureBackend()
    backend._native = _BogusNative(good)  # type: ignore[assignment]
    assert backend.recover_public_key(HASH, R, S, V - 27) == good
