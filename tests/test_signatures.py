"""Tests for chain.signatures; every signature here is made by eth-account as a wallet would."""

import contextlib
import sys
from collections.abc import Iterator

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, defunct_hash_message, encode_defunct
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import secp256k1_js
from chain.signatures import (
    SECP256K1_N,
    CoinCurveBackend,
    FastPureBackend,
    JsBackend,
    MalformedSignature,
    PureBackend,
    RecoveryBackend,
    SignatureError,
    UnrecoverableSignature,
    default_backend,
    eip191_message_hash,
    parse_signature,
    recover_address,
    recover_personal_sign,
    signature_to_bytes65,
)
from tests.support.js_bundle import FakeBundle, fake_recovery

KEY_A = "0x" + "11" * 32
KEY_B = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KEY_MAX = "0x" + (SECP256K1_N - 1).to_bytes(32, "big").hex()
NON_ASCII = "Grüße ✓ 日本"
SIWE_LIKE = (
    "example.com wants you to sign in with your Ethereum account:\n"
    "0x0000000000000000000000000000000000000001\n\nI accept the terms.\n\nNonce: 32891756"
)
MESSAGES = ["hello", "", NON_ASCII, SIWE_LIKE]


def wallet_sign(message: str, key: str) -> str:
    """Sign exactly as a wallet's personal_sign does, and return 0x-prefixed hex."""
    signed = Account.sign_message(encode_defunct(text=message), private_key=key)
    hex_sig = signed.signature.hex()
    # hexbytes < 1.0 prefixed 0x, hexbytes >= 1.0 does not.
    return hex_sig if hex_sig.startswith("0x") else "0x" + hex_sig


def signer(key: str) -> str:
    return Account.from_key(key).address.lower()


def split(sig: str) -> tuple[bytes, bytes, int]:
    raw = bytes.fromhex(sig[2:])
    assert len(raw) == 65
    return raw[:32], raw[32:64], raw[64]


def join(r: bytes | int, s: bytes | int, v: int) -> str:
    rb = r if isinstance(r, bytes) else r.to_bytes(32, "big")
    sb = s if isinstance(s, bytes) else s.to_bytes(32, "big")
    return "0x" + (rb + sb + bytes((v,))).hex()


def to_compact(sig: str) -> str:
    """EIP-2098: r || (yParity << 255 | s)."""
    r, s, v = split(sig)
    y_parity_and_s = ((v - 27) << 255) | int.from_bytes(s, "big")
    return "0x" + (r + y_parity_and_s.to_bytes(32, "big")).hex()


def js_backend_over_fake_bundle() -> RecoveryBackend:
    """JsBackend as in workerd, its bundle answered by libsecp256k1 (the bundle itself is checked in node)."""
    return JsBackend(fake_recovery())


@pytest.fixture(
    params=[CoinCurveBackend, PureBackend, FastPureBackend, js_backend_over_fake_bundle],
    ids=["coincurve", "pure", "fast-pure", "js"],
)
def backend(request: pytest.FixtureRequest) -> RecoveryBackend:
    return request.param()


@pytest.fixture
def fresh_default_backend() -> Iterator[None]:
    default_backend.cache_clear()
    yield
    default_backend.cache_clear()


# --- EIP-191 hashing ---------------------------------------------------------------------------


@pytest.mark.parametrize("message", MESSAGES)
def test_eip191_hash_matches_eth_account(message: str) -> None:
    expected = _hash_eip191_message(encode_defunct(text=message))
    assert eip191_message_hash(message) == expected
    assert eip191_message_hash(message) == bytes(defunct_hash_message(text=message))
    assert eip191_message_hash(message.encode("utf-8")) == expected


def test_eip191_prefix_uses_utf8_byte_length_not_char_length() -> None:
    data = NON_ASCII.encode("utf-8")
    assert len(NON_ASCII) == 10 and len(data) == 18
    by_chars = keccak(b"\x19Ethereum Signed Message:\n" + str(len(NON_ASCII)).encode() + data)
    by_bytes = keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)
    assert eip191_message_hash(NON_ASCII) == by_bytes
    assert eip191_message_hash(NON_ASCII) != by_chars
    assert eip191_message_hash(NON_ASCII) == _hash_eip191_message(encode_defunct(text=NON_ASCII))


def test_eip191_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        eip191_message_hash(123)  # type: ignore[arg-type]


# --- recovery ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY_A, KEY_B, KEY_MAX])
@pytest.mark.parametrize("message", MESSAGES)
def test_recover_personal_sign_on_each_backend(backend: RecoveryBackend, key: str, message: str) -> None:
    sig = wallet_sign(message, key)
    assert recover_personal_sign(message, sig, backend=backend) == signer(key)
    assert recover_address(eip191_message_hash(message), sig, backend=backend) == signer(key)


def test_backends_return_identical_public_keys() -> None:
    sig = wallet_sign(NON_ASCII, KEY_B)
    r, s, rid = parse_signature(sig)
    digest = eip191_message_hash(NON_ASCII)
    coin = CoinCurveBackend().recover_public_key(digest, r, s, rid)
    pure = PureBackend().recover_public_key(digest, r, s, rid)
    assert coin == pure and len(coin) == 64
    assert "0x" + keccak(coin)[-20:].hex() == signer(KEY_B)


def test_default_backend_recovers_too() -> None:
    sig = wallet_sign("hello", KEY_A)
    assert recover_personal_sign("hello", sig) == signer(KEY_A)


def test_v_as_27_28_and_0_1(backend: RecoveryBackend) -> None:
    seen_v = set()
    for i in range(12):
        message = f"message {i}"
        sig = wallet_sign(message, KEY_B)
        r, s, v = split(sig)
        assert v in (27, 28)
        seen_v.add(v)
        assert recover_personal_sign(message, join(r, s, v - 27), backend=backend) == signer(KEY_B)
        assert parse_signature(join(r, s, v - 27)) == parse_signature(sig)
    # Both parities must have been exercised for the test to mean anything.
    assert seen_v == {27, 28}


def test_eip2098_compact(backend: RecoveryBackend) -> None:
    seen_parity = set()
    for i in range(12):
        message = f"compact {i}"
        sig = wallet_sign(message, KEY_A)
        compact = to_compact(sig)
        assert len(bytes.fromhex(compact[2:])) == 64
        r, s, rid = parse_signature(compact)
        seen_parity.add(rid)
        assert (r, s, rid) == parse_signature(sig)
        assert recover_personal_sign(message, compact, backend=backend) == signer(KEY_A)
        # wallet signatures are low-s, so the compact form round-trips to the exact original bytes
        assert signature_to_bytes65(compact) == bytes.fromhex(sig[2:])
    assert seen_parity == {0, 1}


def test_prefix_is_optional_and_case_insensitive() -> None:
    sig = wallet_sign("hello", KEY_A)
    expected = parse_signature(sig)
    assert parse_signature(sig[2:]) == expected
    assert parse_signature("0X" + sig[2:].upper()) == expected
    assert recover_personal_sign("hello", sig[2:]) == signer(KEY_A)


def test_signature_to_bytes65_canonicalizes_v() -> None:
    sig = wallet_sign("hello", KEY_B)
    r, s, v = split(sig)
    canonical = bytes.fromhex(sig[2:])
    assert signature_to_bytes65(sig) == canonical
    assert signature_to_bytes65(join(r, s, v - 27)) == canonical
    assert signature_to_bytes65(sig[2:]) == canonical
    assert signature_to_bytes65(join(r, s, v - 27))[64] in (27, 28)


def test_high_s_is_accepted_and_recovers_the_same_signer(backend: RecoveryBackend) -> None:
    # Deliberate: ecrecover accepts the malleated (N - s, flipped v) twin, so we do too.
    sig = wallet_sign("hello", KEY_A)
    r, s, v = split(sig)
    high_s = SECP256K1_N - int.from_bytes(s, "big")
    assert high_s > SECP256K1_N // 2
    twin = join(r, high_s, 55 - v)  # 27 <-> 28
    assert recover_personal_sign("hello", twin, backend=backend) == signer(KEY_A)
    assert signature_to_bytes65(twin)[32:64] == high_s.to_bytes(32, "big")


def test_wrong_message_recovers_a_different_address(backend: RecoveryBackend) -> None:
    sig = wallet_sign("hello", KEY_A)
    assert recover_personal_sign("hellO", sig, backend=backend) != signer(KEY_A)


def test_flipped_v_recovers_a_different_address(backend: RecoveryBackend) -> None:
    sig = wallet_sign("hello", KEY_A)
    r, s, v = split(sig)
    try:
        other = recover_personal_sign("hello", join(r, s, 55 - v), backend=backend)
    except UnrecoverableSignature:
        return
    assert other != signer(KEY_A)


def test_flipped_bytes_never_recover_the_signer_nor_crash() -> None:
    message = "flip me"
    sig = wallet_sign(message, KEY_B)
    raw = bytes.fromhex(sig[2:])
    coin, pure = CoinCurveBackend(), PureBackend()
    unrecoverable = 0
    for position in range(64):
        flipped = bytearray(raw)
        flipped[position] ^= 0x01
        variant = "0x" + flipped.hex()
        results = []
        for backend in (coin, pure):
            try:
                results.append(recover_personal_sign(message, variant, backend=backend))
            except UnrecoverableSignature:
                results.append("unrecoverable")
        # Backends must agree on every variant, and none may name the real signer.
        assert results[0] == results[1], position
        assert results[0] != signer(KEY_B)
        unrecoverable += results[0] == "unrecoverable"
    # Flipping a bit of r lands off the curve about half the time; make sure that path ran.
    assert unrecoverable > 0


def test_point_at_infinity_is_unrecoverable(backend: RecoveryBackend) -> None:
    # Derived from a real signature: recover its nonce k, then pick s' = z/k so that
    # s'·R == z·G and the recovered point r⁻¹(s'·R - z·G) is the point at infinity.
    message = "infinity"
    sig = wallet_sign(message, KEY_A)
    r_bytes, s_bytes, v = split(sig)
    r, s = int.from_bytes(r_bytes, "big"), int.from_bytes(s_bytes, "big")
    z = int.from_bytes(eip191_message_hash(message), "big")
    d = int(KEY_A, 16)
    k = (z + r * d) * pow(s, -1, SECP256K1_N) % SECP256K1_N
    s_inf = z * pow(k, -1, SECP256K1_N) % SECP256K1_N
    with pytest.raises(UnrecoverableSignature):
        recover_personal_sign(message, join(r, s_inf, v), backend=backend)


def test_recover_address_requires_a_32_byte_hash(backend: RecoveryBackend) -> None:
    sig = wallet_sign("hello", KEY_A)
    with pytest.raises(ValueError, match="32 bytes") as info:
        recover_address(b"\x00" * 31, sig, backend=backend)
    assert not isinstance(info.value, SignatureError)


@pytest.mark.parametrize(("r", "s", "rid"), [(0, 1, 0), (1, 0, 0), (SECP256K1_N, 1, 0), (1, 1, 2)])
def test_backends_reject_out_of_range_components(backend: RecoveryBackend, r: int, s: int, rid: int) -> None:
    with pytest.raises(MalformedSignature):
        backend.recover_public_key(b"\x01" * 32, r, s, rid)


# --- malformed input -----------------------------------------------------------------------------

_SIG = wallet_sign("hello", KEY_A)
_R, _S, _V = split(_SIG)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(join(_R, _S, 29), id="v=29"),
        pytest.param(join(_R, _S, 2), id="v=2"),
        pytest.param(join(_R, _S, 26), id="v=26"),
        pytest.param(join(_R, _S, 37), id="v=37-eip155"),
        pytest.param(join(0, _S, _V), id="r=0"),
        pytest.param(join(_R, 0, _V), id="s=0"),
        pytest.param(join(SECP256K1_N, _S, _V), id="r=N"),
        pytest.param(join(_R, SECP256K1_N, _V), id="s=N"),
        pytest.param(join(b"\xff" * 32, _S, _V), id="r=max"),
        pytest.param("0x" + (b"\x00" * 32).hex() + to_compact(_SIG)[66:], id="compact-r=0"),
        pytest.param("0x" + _R.hex() + (1 << 255).to_bytes(32, "big").hex(), id="compact-s=0"),
        pytest.param(_SIG[:-1], id="odd-length"),
        pytest.param(_SIG + "0", id="odd-length-long"),
        pytest.param(_SIG[:-4], id="63-bytes"),
        pytest.param(_SIG + "00", id="66-bytes"),
        pytest.param(_SIG + _SIG[2:], id="130-bytes"),
        pytest.param("0x" + "zz" * 65, id="non-hex"),
        pytest.param(_SIG[:-2] + "1g", id="non-hex-last"),
        pytest.param(_SIG[:10] + " " + _SIG[11:], id="embedded-space"),
        pytest.param(_SIG + " ", id="trailing-space"),
        pytest.param(" " + _SIG[1:], id="leading-space"),
        pytest.param(_SIG[:-1] + "٣", id="non-ascii-digit"),
        pytest.param("", id="empty"),
        pytest.param("0x", id="prefix-only"),
        pytest.param("0x0x" + _SIG[4:], id="double-prefix"),
    ],
)
def test_malformed_signatures(bad: str) -> None:
    with pytest.raises(MalformedSignature):
        parse_signature(bad)
    with pytest.raises(MalformedSignature):
        signature_to_bytes65(bad)
    with pytest.raises(MalformedSignature):
        recover_personal_sign("hello", bad)


@pytest.mark.parametrize("bad", [None, 0, b"", bytes.fromhex(_SIG[2:]), [_SIG]])
def test_non_string_signatures_are_malformed(bad: object) -> None:
    with pytest.raises(MalformedSignature):
        parse_signature(bad)  # type: ignore[arg-type]
    with pytest.raises(MalformedSignature):
        recover_personal_sign("hello", bad)  # type: ignore[arg-type]


def test_exception_hierarchy() -> None:
    assert issubclass(SignatureError, ValueError)
    assert issubclass(MalformedSignature, SignatureError)
    assert issubclass(UnrecoverableSignature, SignatureError)
    assert not issubclass(MalformedSignature, UnrecoverableSignature)


@given(st.text(max_size=140))
def test_arbitrary_text_only_raises_malformed(value: str) -> None:
    with contextlib.suppress(MalformedSignature):
        parse_signature(value)


@settings(max_examples=25, deadline=None)
@given(
    key=st.integers(min_value=1, max_value=SECP256K1_N - 1),
    message=st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80),
)
def test_random_keys_and_messages_agree_on_both_backends(key: int, message: str) -> None:
    key_hex = "0x" + key.to_bytes(32, "big").hex()
    sig = wallet_sign(message, key_hex)
    expected = signer(key_hex)
    assert recover_personal_sign(message, sig, backend=CoinCurveBackend()) == expected
    assert recover_personal_sign(message, sig, backend=PureBackend()) == expected
    assert recover_personal_sign(message, to_compact(sig), backend=PureBackend()) == expected


# --- backend selection ---------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_default_backend")
def test_default_backend_prefers_coincurve_and_is_cached() -> None:
    chosen = default_backend()
    assert isinstance(chosen, CoinCurveBackend)
    assert chosen.name == "coincurve"
    assert default_backend() is chosen


@pytest.mark.usefixtures("fresh_default_backend")
def test_default_backend_without_coincurve_or_the_runtime_is_the_fast_pure_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sign first: eth-account itself would use coincurve through eth_keys.
    sig = wallet_sign(NON_ASCII, KEY_B)
    expected = signer(KEY_B)
    monkeypatch.setitem(sys.modules, "coincurve", None)
    with pytest.raises(ImportError):
        CoinCurveBackend()
    with pytest.raises(ImportError):
        JsBackend()  # CPython has no Workers FFI
    chosen = default_backend()
    assert isinstance(chosen, FastPureBackend)
    assert chosen.name == "fast-pure"
    assert recover_personal_sign(NON_ASCII, sig) == expected
    assert recover_personal_sign(NON_ASCII, to_compact(sig)) == expected


@pytest.mark.usefixtures("fresh_default_backend")
def test_default_backend_in_workerd_is_the_js_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where coincurve cannot load and the FFI can (workerd), the bundle answers; chosen once."""
    sig = wallet_sign(NON_ASCII, KEY_B)
    bundle = FakeBundle()
    monkeypatch.setitem(sys.modules, "coincurve", None)
    monkeypatch.setattr(secp256k1_js, "load", lambda: fake_recovery(bundle))
    chosen = default_backend()
    assert isinstance(chosen, JsBackend) and chosen.name == "js"
    assert recover_personal_sign(NON_ASCII, sig) == signer(KEY_B)
    assert default_backend() is chosen
    assert len(bundle.calls) == 1


def test_pure_backend_never_touches_coincurve(monkeypatch: pytest.MonkeyPatch) -> None:
    # eth_keys resolves unpinned backends lazily, preferring coincurve or $ECC_BACKEND_CLASS;
    # with both pointing at an unimportable coincurve, any such resolution would raise ImportError.
    signed = {message: wallet_sign(message, KEY_A) for message in MESSAGES}
    expected = signer(KEY_A)
    monkeypatch.setitem(sys.modules, "coincurve", None)
    monkeypatch.setenv("ECC_BACKEND_CLASS", "eth_keys.backends.CoinCurveECCBackend")
    pure = PureBackend()
    for message, sig in signed.items():
        assert recover_personal_sign(message, sig, backend=pure) == expected
        assert recover_personal_sign(message, to_compact(sig), backend=pure) == expected
