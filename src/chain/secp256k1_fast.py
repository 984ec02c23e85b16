"""Fast pure-Python secp256k1 public-key recovery: Jacobian coordinates, GLV split, joint wNAF over lazy G tables."""

from __future__ import annotations

import functools

__all__ = ["recover_public_key"]

# Curve y^2 = x^3 + 7 over GF(P), group order N, generator (GX, GY).
P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F
N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
# The endomorphism (x, y) -> (BETA·x, y) is multiplication by LAMBDA (BETA^3 = 1 mod P, LAMBDA^3 = 1 mod N).
BETA = 0x7AE96A2B657C07106E64479EAC3434E99CF0497512F58995C1396C28719501EE
LAMBDA = 0x5363AD4CC05C30E0A5261C028812645A122E22EA20816678DF02967C1B23BD72
# A short basis of the lattice {(a, b): a + b·LAMBDA = 0 mod N} (Guide to ECC, 3.74): splits k into two ~128-bit halves.
_A1 = 0x3086D221A7D46BCDE86C90E49284EB15
_B1 = -0xE4437ED6010E88286F547FA90ABFE4C3
_A2 = 0x114CA50F7A8E2F3F657C1108D9D44CFD8
_B2 = _A1
# wNAF widths: the signer's point R gets 2^(w-2) odd multiples per call, G and its endomorphism image 64 each, once.
_R_WIDTH = 5
_G_WIDTH = 8
_SQRT_EXPONENT = (P + 1) // 4  # P = 3 mod 4

Affine = tuple[int, int]
Jacobian = tuple[int, int, int]  # Z = 0 is the point at infinity


def split_scalar(k: int) -> tuple[int, int]:
    """(k1, k2) with k1 + k2·LAMBDA = k (mod N), each about 128 bits and possibly negative."""
    c1 = (2 * _B2 * k + N) // (2 * N)
    c2 = (-2 * _B1 * k + N) // (2 * N)
    return k - c1 * _A1 - c2 * _A2, -c1 * _B1 - c2 * _B2


def wnaf(k: int, width: int) -> list[tuple[int, int]]:
    """Width-w NAF of k >= 0 as (bit position, digit) pairs, lowest first; digits odd with |d| < 2^(w-1)."""
    digits: list[tuple[int, int]] = []
    mask = (1 << width) - 1
    half = 1 << (width - 1)
    position = 0
    while k:
        # Skip the run of zero bits, then take the next w bits as a signed odd digit: k - digit has w zero bits.
        zeros = (k & -k).bit_length() - 1
        k >>= zeros
        position += zeros
        digit = k & mask
        if digit >= half:
            digit -= mask + 1
        digits.append((position, digit))
        k = (k - digit) >> width
        position += width
    return digits


def _double(x: int, y: int, z: int) -> Jacobian:
    # dbl-2009-l (a = 0) with S = 4·x·y², M = 3·x²; infinity (z = 0) stays infinity, and no point of odd order has y = 0.
    yy = y * y % P
    s = 4 * x * yy % P
    m = 3 * x * x % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _add_affine(x1: int, y1: int, z1: int, x2: int, y2: int) -> Jacobian:
    """A Jacobian point plus an affine one (madd-2007-bl shape), every special case handled."""
    if not z1:
        return x2, y2, 1
    zz = z1 * z1 % P
    h = (x2 * zz - x1) % P
    t = (y2 * zz * z1 - y1) % P
    if not h:
        # Same x: the same point (double it) or its negation (the sum is infinity).
        return _double(x1, y1, z1) if not t else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (t * t - hhh - 2 * v) % P
    return x3, (t * (v - x3) - y1 * hhh) % P, z1 * h % P


def _to_affine(points: list[Jacobian]) -> list[Affine]:
    """Normalize finite Jacobian points with a single inversion (Montgomery's trick)."""
    prefix = [1]
    for _, _, z in points:
        prefix.append(prefix[-1] * z % P)
    inverse = pow(prefix[-1], -1, P)
    result: list[Affine] = [(0, 0)] * len(points)
    for index in range(len(points) - 1, -1, -1):
        x, y, z = points[index]
        z_inv = inverse * prefix[index] % P
        inverse = inverse * z % P
        zz = z_inv * z_inv % P
        result[index] = (x * zz % P, y * zz * z_inv % P)
    return result


def _odd_multiples(x: int, y: int, count: int) -> list[Affine]:
    """[1, 3, 5, ...]·(x, y), `count` of them, affine."""
    twice = _to_affine([_double(x, y, 1)])[0]
    multiples: list[Jacobian] = [(x, y, 1)]
    for _ in range(count - 1):
        multiples.append(_add_affine(*multiples[-1], *twice))
    return _to_affine(multiples)


@functools.cache
def _g_tables() -> tuple[list[Affine], list[Affine]]:
    """Odd multiples of G and of its endomorphism image: built on first use (never at import), then kept."""
    table = _odd_multiples(GX, GY, 1 << (_G_WIDTH - 2))
    return table, [(BETA * x % P, y) for x, y in table]


def _lift_x(x: int, odd: int) -> Affine | None:
    """The curve point with this x and y parity, or None when x^3 + 7 is not a square."""
    alpha = (x * x * x + 7) % P
    y = pow(alpha, _SQRT_EXPONENT, P)
    if y * y % P != alpha:
        return None
    return (x, y if y & 1 == odd else P - y)


def _multi_mul(terms: list[tuple[int, list[Affine], int]]) -> Jacobian:
    """Sum of k·T[0] for (k, T, width) where T holds the odd multiples of a point (Straus, interleaved wNAF)."""
    # Which affine points to add after the doubling at each bit position, highest position first.
    additions: dict[int, list[Affine]] = {}
    for k, table, width in terms:
        negate = k < 0
        for position, digit in wnaf(-k if negate else k, width):
            px, py = table[abs(digit) >> 1]
            additions.setdefault(position, []).append((px, P - py if (digit < 0) != negate else py))
    x, y, z = 1, 1, 0
    for position in range(max(additions, default=-1), -1, -1):
        x, y, z = _double(x, y, z)
        for px, py in additions.get(position, ()):
            x, y, z = _add_affine(x, y, z, px, py)
    return x, y, z


def recover_public_key(msg_hash: bytes, r: int, s: int, recovery_id: int) -> bytes | None:
    """The signer's 64-byte public key x||y for an ECDSA signature (r, s, recovery_id) over a 32-byte hash.

    Same inputs and answers as libsecp256k1's recovery for recovery ids 0 and 1: None when no key can be
    recovered (r is no curve x coordinate, or the result is the point at infinity). Out-of-range input is a
    ValueError. High s is accepted, as ecrecover does.
    """
    if len(msg_hash) != 32:
        raise ValueError("message hash must be 32 bytes")
    if not (0 < r < N and 0 < s < N) or recovery_id not in (0, 1):
        raise ValueError("signature r, s or recovery id is out of range")
    point = _lift_x(r, recovery_id)
    if point is None:
        return None
    # Q = r^-1·(s·R - z·G) = u1·G + u2·R.
    r_inverse = pow(r, -1, N)
    u1 = -int.from_bytes(msg_hash, "big") * r_inverse % N
    u2 = s * r_inverse % N
    g_table, g_endo = _g_tables()
    r_table = _odd_multiples(*point, 1 << (_R_WIDTH - 2))
    r_endo = [(BETA * x % P, y) for x, y in r_table]
    g1, g2 = split_scalar(u1)
    r1, r2 = split_scalar(u2)
    x, y, z = _multi_mul(
        [(g1, g_table, _G_WIDTH), (g2, g_endo, _G_WIDTH), (r1, r_table, _R_WIDTH), (r2, r_endo, _R_WIDTH)]
    )
    if not z:
        return None
    qx, qy = _to_affine([(x, y, z)])[0]
    return qx.to_bytes(32, "big") + qy.to_bytes(32, "big")
