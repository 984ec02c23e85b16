"""chain.secp256k1_fast against libsecp256k1 (coincurve) and eth-keys: vectors, edge cases, thousands of signatures."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys

import coincurve
import pytest
from eth_hash.auto import keccak

from chain import secp256k1_fast as fast
from chain.signatures import (
    SECP256K1_N,
    SECP256K1_P,
    CoinCurveBackend,
    PureBackend,
    UnrecoverableSignature,
    parse_signature_bytes,
)

N, P = SECP256K1_N, SECP256K1_P
COIN = CoinCurveBackend()
PURE = PureBackend()
# Deterministic: a failure names a seed that reproduces it.
SEED = 20260417


def reference(backend: CoinCurveBackend | PureBackend, msg_hash: bytes, r: int, s: int, rid: int) -> bytes | None:
    try:
        return backend.recover_public_key(msg_hash, r, s, rid)
    except UnrecoverableSignature:
        return None


def address(public_key: bytes | None) -> str | None:
    return None if public_key is None else "0x" + keccak(public_key)[-20:].hex()


def sign(rng: random.Random) -> tuple[bytes, bytes, bytes]:
    """(hash, 65-byte r||s||recovery id, 64-byte public key) from a random key over a random hash."""
    key = coincurve.PrivateKey(rng.randrange(1, N).to_bytes(32, "big"))
    msg_hash = rng.randbytes(32)
    return msg_hash, key.sign_recoverable(msg_hash, hasher=None), key.public_key.format(compressed=False)[1:]


def encodings(r: int, s: int, rid: int) -> list[bytes]:
    """The signature as wallets send it: v in {0, 1} and {27, 28}, and EIP-2098 (parity in the top bit of s)."""
    head = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return [
        head + bytes((rid,)),
        head + bytes((27 + rid,)),
        r.to_bytes(32, "big") + ((rid << 255) | s).to_bytes(32, "big"),
    ]


# --- vectors ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg_hash", "v", "r", "s", "expected"),
    [
        # go-ethereum's ecrecover precompile vectors (core/vm/testdata/precompiles/ecRecover.json).
        ("38d18acb67d25c8bb9942764b62f18e17054f66a817bd4295423adf9ed98873e", 27,
         0x38D18ACB67D25C8BB9942764B62F18E17054F66A817BD4295423ADF9ED98873E,
         0x789D1DD423D25F0772D2748D60F7E4B81BB14D086EBA8E8E8EFB6DCFF8A4AE02,
         "0xceaccac640adf55b2028469bd36ba501f28b699d"),
        ("456e9aea5e197a1f1af7a3e85a3212fa4049a3ba34c2289b4c860fc0b0c64ef3", 28,
         0x9242685BF161793CC25603C231BC2F568EB630EA16AA137D2664AC8038825608,
         0x4F8AE3BD7535248D0BD448298CC2E2071E56992D0774DC340C368AE950852ADA,
         "0x7156526fbd7a3c72969b54f64e42c10fbb768c8a"),
    ],
)  # fmt: skip
def test_ethereum_ecrecover_vectors(msg_hash: str, v: int, r: int, s: int, expected: str) -> None:
    assert address(fast.recover_public_key(bytes.fromhex(msg_hash), r, s, v - 27)) == expected


def test_the_key_of_42() -> None:
    # libsecp256k1's signature by private key 42 over keccak("tattlehash secp256k1_fast vector"), frozen here.
    msg_hash = bytes.fromhex("876182fa23c4e8145c90a870704c1fd369e18a9a8874f9d618f1cba24b845731")
    r = 0x7018808ED8666685D462F108CAE5A31292927E24A14B8E228B8A8EE2E6A0265B
    s = 0x74891473B6C2EC34B6A443886572318D6351352C7F045571B9F5CD2CDF7790F2
    public_key = bytes.fromhex(
        "fe8d1eb1bcb3432b1db5833ff5f2226d9cb5e65cee430558c18ed3a3c86ce1af"
        "07b158f244cd0de2134ac7c1d371cffbfae4db40801a2572e531c573cda9b5b4"
    )
    assert keccak(b"tattlehash secp256k1_fast vector") == msg_hash
    assert coincurve.PrivateKey((42).to_bytes(32, "big")).public_key.format(compressed=False)[1:] == public_key
    assert fast.recover_public_key(msg_hash, r, s, 0) == public_key
    # The high-s twin with the other parity is the same signature to ecrecover.
    assert fast.recover_public_key(msg_hash, r, N - s, 1) == public_key
    assert fast.recover_public_key(msg_hash, r, N - s, 0) not in (None, public_key)


# --- the pieces --------------------------------------------------------------------------------------------------


def test_endomorphism_constants() -> None:
    assert pow(fast.BETA, 3, P) == 1 and fast.BETA != 1
    assert pow(fast.LAMBDA, 3, N) == 1 and fast.LAMBDA != 1
    # LAMBDA·G is (BETA·Gx, Gy): the pair belongs together (the other cube roots would not match).
    lambda_g = coincurve.PrivateKey(fast.LAMBDA.to_bytes(32, "big")).public_key.format(compressed=False)[1:]
    assert lambda_g == (fast.BETA * fast.GX % P).to_bytes(32, "big") + fast.GY.to_bytes(32, "big")
    assert (fast.GY**2 - fast.GX**3 - 7) % P == 0


def test_split_scalar_recombines_into_two_short_halves() -> None:
    rng = random.Random(SEED)
    for k in [0, 1, 2, N - 1, N // 2, fast.LAMBDA, N - fast.LAMBDA, *(rng.randrange(N) for _ in range(3000))]:
        k1, k2 = fast.split_scalar(k)
        assert (k1 + k2 * fast.LAMBDA - k) % N == 0, k
        assert abs(k1).bit_length() <= 129 and abs(k2).bit_length() <= 129, k


@pytest.mark.parametrize("width", [2, 5, 8])
def test_wnaf_digits_rebuild_the_scalar(width: int) -> None:
    rng = random.Random(SEED + width)
    for k in [0, 1, 2, 3, (1 << 130) - 1, *(rng.randrange(1 << 130) for _ in range(500))]:
        digits = fast.wnaf(k, width)
        assert sum(digit << position for position, digit in digits) == k
        assert all(digit % 2 == 1 and abs(digit) < 1 << (width - 1) for _, digit in digits)
        positions = [position for position, _ in digits]
        # Non-adjacent: between two nonzero digits at least width - 1 zeros.
        assert all(b - a >= width for a, b in itertools.pairwise(positions))


def test_point_addition_special_cases() -> None:
    x, y = fast.GX, fast.GY
    doubled = fast._to_affine([fast._double(x, y, 1)])[0]
    two_g = coincurve.PrivateKey((2).to_bytes(32, "big")).public_key.format(compressed=False)[1:]
    assert doubled[0].to_bytes(32, "big") + doubled[1].to_bytes(32, "big") == two_g
    # G + G through the addition formula doubles, G + (-G) is infinity, infinity + G is G.
    assert fast._to_affine([fast._add_affine(x, y, 1, x, y)])[0] == doubled
    assert fast._add_affine(x, y, 1, x, P - y)[2] == 0
    assert fast._add_affine(1, 1, 0, x, y) == (x, y, 1)
    # A point in non-trivial Jacobian form (Z ≠ 1) plus its affine twin.
    z = 0x1234567
    assert fast._to_affine([fast._add_affine(x * z * z % P, y * z * z * z % P, z, x, y)])[0] == doubled
    assert fast._double(1, 1, 0)[2] == 0


def test_g_tables_hold_the_odd_multiples() -> None:
    table, endo = fast._g_tables()
    assert len(table) == len(endo) == 1 << (fast._G_WIDTH - 2)
    for index in (0, 1, 17, len(table) - 1):
        expected = coincurve.PrivateKey((2 * index + 1).to_bytes(32, "big")).public_key.format(compressed=False)[1:]
        x, y = table[index]
        assert x.to_bytes(32, "big") + y.to_bytes(32, "big") == expected
        assert endo[index] == (fast.BETA * x % P, y)


def test_the_g_tables_are_built_on_first_use_not_at_import() -> None:
    script = (
        "from chain import secp256k1_fast as f\n"
        "assert f._g_tables.cache_info().currsize == 0\n"
        "f.recover_public_key(bytes(32), 5, 7, 0)\n"  # r = 5 is no x coordinate: no table needed yet
        "assert f._g_tables.cache_info().currsize == 0\n"
        "f.recover_public_key(bytes(32), 1, 7, 0)\n"
        "assert f._g_tables.cache_info().currsize == 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, env={"PYTHONPATH": "src"}, timeout=60)


# --- edges against libsecp256k1 -----------------------------------------------------------------------------------


def test_unrecoverable_inputs_are_none() -> None:
    msg_hash = keccak(b"edges")
    # x = 5: 5^3 + 7 = 132 is not a square mod p.
    assert fast.recover_public_key(msg_hash, 5, 7, 0) is None
    # s chosen so that s·R = z·G: the recovered point is infinity (derived from a real signature).
    d = 0x11 * (2**256 - 1) // 255
    signature = coincurve.PrivateKey(d.to_bytes(32, "big")).sign_recoverable(msg_hash, hasher=None)
    r, s, rid = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    z = int.from_bytes(msg_hash, "big")
    k = (z + r * d) * pow(s, -1, N) % N
    s_infinity = z * pow(k, -1, N) % N
    assert reference(COIN, msg_hash, r, s_infinity, rid) is None
    assert fast.recover_public_key(msg_hash, r, s_infinity, rid) is None
    assert fast.recover_public_key(msg_hash, r, s, rid) == reference(COIN, msg_hash, r, s, rid)


@pytest.mark.parametrize(
    ("msg_hash", "r", "s"),
    [(bytes(32), 1, 1), (b"\xff" * 32, 1, N - 1), (b"\xff" * 32, N - 1, 1), ((N).to_bytes(32, "big"), 7, 9),
     ((N - 1).to_bytes(32, "big"), N - 1, N - 1), (bytes(31) + b"\x01", 2, 3), (keccak(b"x"), N // 2, N // 2 + 1)],
)  # fmt: skip
def test_boundary_components_agree_with_libsecp256k1(msg_hash: bytes, r: int, s: int) -> None:
    # A hash >= N is reduced mod N, a zero hash makes u1 zero: both as ecrecover does.
    for rid in (0, 1):
        assert fast.recover_public_key(msg_hash, r, s, rid) == reference(COIN, msg_hash, r, s, rid)


@pytest.mark.parametrize(
    ("msg_hash", "r", "s", "rid"),
    [(bytes(31), 1, 1, 0), (bytes(33), 1, 1, 0), (bytes(32), 0, 1, 0), (bytes(32), N, 1, 0), (bytes(32), 1, 0, 0),
     (bytes(32), 1, N, 0), (bytes(32), 1, 1, 2), (bytes(32), 1, 1, 27), (bytes(32), 1, 1, -1)],
)  # fmt: skip
def test_out_of_range_input_is_a_value_error(msg_hash: bytes, r: int, s: int, rid: int) -> None:
    with pytest.raises(
        ValueError, match=r"^(message hash must be 32 bytes|signature r, s or recovery id is out of range)$"
    ):
        fast.recover_public_key(msg_hash, r, s, rid)


def test_a_bytearray_hash_is_accepted() -> None:
    msg_hash, signature, public_key = sign(random.Random(SEED))
    r, s, rid = parse_signature_bytes(signature)
    assert fast.recover_public_key(bytearray(msg_hash), r, s, rid) == public_key  # type: ignore[arg-type]


# --- thousands of random signatures ------------------------------------------------------------------------------


def test_random_signatures_agree_with_libsecp256k1_in_every_encoding() -> None:
    """700 keys: the signature in one of its wire forms, its high-s twin, and the twin with the wrong parity."""
    rng = random.Random(SEED)
    checked = 0
    for _ in range(700):
        msg_hash, signature, public_key = sign(rng)
        r, s, rid = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
        # Through the signature layer's own parsing, as chain.signatures passes (r, s, recovery id) on.
        parsed = parse_signature_bytes(rng.choice(encodings(r, s, rid)))
        assert parsed == (r, s, rid)
        assert fast.recover_public_key(msg_hash, *parsed) == public_key
        # High s needs the 65-byte form: EIP-2098 keeps the parity in s's top bit, so it only carries low s.
        twin = parse_signature_bytes(rng.choice(encodings(r, N - s, 1 - rid)[:2]))
        assert fast.recover_public_key(msg_hash, *twin) == public_key
        wrong = (r, N - s, rid)
        assert fast.recover_public_key(msg_hash, *wrong) == reference(COIN, msg_hash, *wrong) != public_key
        checked += 3
    assert checked == 2100


def test_random_components_agree_with_libsecp256k1_including_unrecoverable() -> None:
    """Arbitrary (hash, r, s, parity): about half of all r are no x coordinate; both must say so."""
    rng = random.Random(SEED + 1)
    none = 0
    for _ in range(400):
        msg_hash, r, s, rid = rng.randbytes(32), rng.randrange(1, N), rng.randrange(1, N), rng.randrange(2)
        expected = reference(COIN, msg_hash, r, s, rid)
        assert fast.recover_public_key(msg_hash, r, s, rid) == expected
        none += expected is None
    assert 120 < none < 280


def test_random_signatures_agree_with_eth_keys() -> None:
    rng = random.Random(SEED + 2)
    for index in range(60):
        if index % 3:
            msg_hash, signature, _ = sign(rng)
            r, s, rid = parse_signature_bytes(signature)
            s, rid = (N - s, 1 - rid) if index % 2 else (s, rid)
        else:
            msg_hash, r, s, rid = rng.randbytes(32), rng.randrange(1, N), rng.randrange(1, N), rng.randrange(2)
        assert fast.recover_public_key(msg_hash, r, s, rid) == reference(PURE, msg_hash, r, s, rid)
