"""Webhook signing secrets at rest: AES-256-GCM under keys derived from Worker secrets, each tagged with a key id."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

from core.config import MIN_HMAC_SECRET_LENGTH, Env
from core.errors import ApiError

# Workers run a partial pycryptodome build (only the keccak native module), so AES there is WebCrypto's;
# CPython has the full pycryptodome. Both are plain AES-256-GCM (96-bit nonce, 128-bit tag, same bytes).
if sys.platform == "emscripten":  # pragma: no cover - exercised in workerd by tests/test_relay_secrets.py
    import js  # type: ignore[import-not-found]
    from pyodide.ffi import JsException, to_js  # type: ignore[import-not-found]
else:
    from Crypto.Cipher import AES

KEY_ENV = "WEBHOOK_SECRET_KEY"
FORMAT = "aesgcm1"  # stored as `aesgcm1:<key id>:<base64url(nonce | ciphertext | tag)>`
NONCE_BYTES = 12
TAG_BYTES = 16
# Domain separation: HMAC_SECRET also keys session tokens; this key is derived for this one use.
_HKDF_SALT = b"tattlehash/webhook-secrets"
_HKDF_INFO = b"aes-256-gcm key v1"


class SecretUnavailable(Exception):
    """A stored secret that none of the configured keys opens (a key was removed too early) or is malformed."""


@dataclass(frozen=True)
class Key:
    kid: str
    key: bytes


@dataclass(frozen=True)
class KeyRing:
    """The key that seals (first) and every key that may still open what older keys sealed."""

    keys: tuple[Key, ...]

    @property
    def current(self) -> Key:
        return self.keys[0]

    def sealed_with_current(self, stored: str) -> bool:
        return stored.startswith(f"{FORMAT}:{self.current.kid}:")


def derive_key(material: str) -> Key:
    """HKDF-SHA256 (RFC 5869) of a configured secret into an AES-256 key, and a short id naming that key."""
    prk = hmac.new(_HKDF_SALT, material.encode("utf-8"), hashlib.sha256).digest()
    key = hmac.new(prk, _HKDF_INFO + b"\x01", hashlib.sha256).digest()
    kid = hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:8]
    return Key(kid, key)


def key_ring(env: Env) -> KeyRing:
    """`WEBHOOK_SECRET_KEY` (comma list, newest first) then `HMAC_SECRET`; a clear 500 E9001 when none is usable.

    The HMAC_SECRET-derived key always stays on the ring to open older rows, so setting
    WEBHOOK_SECRET_KEY later needs no other step: the relay job re-seals rows with the new first key.
    """
    materials = [item.strip() for item in env.get(KEY_ENV).split(",") if item.strip()]
    if any(len(item) < MIN_HMAC_SECRET_LENGTH for item in materials):
        raise ApiError(
            "E9001",
            f"Server misconfigured: {KEY_ENV} entries must be at least {MIN_HMAC_SECRET_LENGTH} characters",
            {"variable": KEY_ENV},
        )
    fallback = env.get("HMAC_SECRET")
    if len(fallback) >= MIN_HMAC_SECRET_LENGTH:
        materials.append(fallback)
    elif not materials:
        env.hmac_secret()  # raises E9001 naming HMAC_SECRET
    keys: dict[str, Key] = {}
    for material in materials:
        key = derive_key(material)
        keys.setdefault(key.kid, key)
    return KeyRing(tuple(keys.values()))


def _aad(endpoint_id: str) -> bytes:
    # Binds a ciphertext to its endpoint: a sealed secret copied onto another row does not open there.
    return f"webhook_endpoints:{endpoint_id}".encode()


async def seal(ring: KeyRing, secret: str, endpoint_id: str) -> str:
    """The stored form of `secret`: sealed with the ring's current key, bound to the endpoint id."""
    key = ring.current
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = await _encrypt(key.key, nonce, secret.encode("utf-8"), _aad(endpoint_id))
    blob = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
    return f"{FORMAT}:{key.kid}:{blob}"


async def open_secret(ring: KeyRing, stored: str, endpoint_id: str) -> str:
    """The secret behind a stored value; rows written before encryption hold it in plain form (`whsec_…`)."""
    if stored.startswith("whsec_"):
        return stored
    parts = stored.split(":")
    if len(parts) != 3 or parts[0] != FORMAT:
        raise SecretUnavailable("unknown stored secret format")
    _, kid, blob = parts
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except (binascii.Error, ValueError):
        raise SecretUnavailable("stored secret is not base64") from None
    if len(raw) <= NONCE_BYTES + TAG_BYTES:
        raise SecretUnavailable("stored secret is too short")
    for key in ring.keys:
        if key.kid != kid:
            continue
        try:
            plain = await _decrypt(key.key, raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(endpoint_id))
        except SecretUnavailable:
            continue  # a key id collision: another key with this id may open it
        return plain.decode("utf-8")
    raise SecretUnavailable(f"no configured key opens key id {kid}")


if sys.platform == "emscripten":  # pragma: no cover - exercised in workerd

    def _js_bytes(data: bytes) -> object:
        array = js.Uint8Array.new(len(data))
        array.assign(data)
        return array

    async def _subtle_key(key: bytes, usage: str) -> object:
        return await js.crypto.subtle.importKey("raw", _js_bytes(key), "AES-GCM", False, to_js([usage]))

    def _params(nonce: bytes, aad: bytes) -> object:
        return to_js(
            {"name": "AES-GCM", "iv": _js_bytes(nonce), "additionalData": _js_bytes(aad), "tagLength": TAG_BYTES * 8},
            dict_converter=js.Object.fromEntries,
        )

    async def _encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        handle = await _subtle_key(key, "encrypt")
        sealed = await js.crypto.subtle.encrypt(_params(nonce, aad), handle, _js_bytes(plaintext))
        return bytes(js.Uint8Array.new(sealed).to_bytes())

    async def _decrypt(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        handle = await _subtle_key(key, "decrypt")
        try:
            plain = await js.crypto.subtle.decrypt(_params(nonce, aad), handle, _js_bytes(sealed))
        except JsException:
            raise SecretUnavailable("authentication failed") from None
        return bytes(js.Uint8Array.new(plain).to_bytes())

else:

    async def _encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(aad)
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return ciphertext + tag

    async def _decrypt(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_BYTES)
        cipher.update(aad)
        try:
            return cipher.decrypt_and_verify(sealed[:-TAG_BYTES], sealed[-TAG_BYTES:])
        except ValueError:
            raise SecretUnavailable("authentication failed") from None
