"""The text a wallet signs: a plain human-readable challenge or an EIP-4361 (Sign-In with Ethereum) message."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = [
    "BRAND_LINE",
    "PURPOSE",
    "SIWE_STATEMENT",
    "domain_allowed",
    "is_local_domain",
    "normalize_domain",
    "normalize_uri",
    "plain_message",
    "siwe_message",
]

BRAND_LINE = "TattleHash Gatekeeper — wallet ownership"
PURPOSE = "gatekeeper_wallet_ownership"
SIWE_STATEMENT = "Sign in to TattleHash to prove you control this wallet."
SIWE_VERSION = "1"

# An RFC 3986 authority restricted to host[:port]: userinfo ("good.com@evil.com") is refused because
# it exists mainly to make a domain read as something it is not.
_DOMAIN = re.compile(r"(?P<host>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?")
# Characters RFC 3986 allows in a URI (unreserved, reserved, pct-encoded); anything else, above all a
# line break, could forge extra lines of the signed message.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_PCT_ENCODED_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URI_LENGTH = 2048
# Hosts a development sign-in may use over plain http: a browser treats them as secure contexts.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def normalize_domain(value: str) -> str:
    """Validate an EIP-4361 domain (host[:port]) and return it lowercase; ValueError otherwise."""
    domain = value.strip().lower()
    match = _DOMAIN.fullmatch(domain)
    if match is None or ".." in domain:
        raise ValueError("domain must be a host name with an optional :port")
    port = match.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError("domain port is out of range")
    return domain


def domain_allowed(domain: str, allowed: str) -> bool:
    """Whether a normalized domain is in the comma-separated allow list.

    An entry without a port allows that host on any port (a dev server's port varies); an entry with a
    port allows only that exact authority.
    """
    host = domain.split(":", 1)[0]
    for raw in allowed.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if domain == entry or (":" not in entry and host == entry):
            return True
    return False


def is_local_domain(domain: str) -> bool:
    """Whether a normalized domain (host[:port]) names this machine: localhost or 127.0.0.1."""
    return domain.split(":", 1)[0] in LOCAL_HOSTS


def normalize_uri(value: str, domain: str) -> str:
    """Validate the SIWE `URI:` line for a sign-in at `domain` (normalized); ValueError otherwise.

    Only an https URL with a host, or http to localhost / 127.0.0.1 when the domain itself is local (a dev
    server): the URI is what the wallet shows as the resource, so `javascript:`, `file:` or `data:` never.
    """
    uri = value.strip()
    if len(uri) > MAX_URI_LENGTH:
        raise ValueError(f"uri must be at most {MAX_URI_LENGTH} characters")
    if _URI.fullmatch(uri) is None or _PCT_ENCODED_OK.search(uri) is not None:
        raise ValueError("uri must be an absolute URI such as https://example.com/login")
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port  # .port raises ValueError when not a number in range
    except ValueError:
        raise ValueError("uri must be an absolute URI such as https://example.com/login") from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"} or not host or port == 0 or parts.username is not None:
        raise ValueError("uri must be an https:// URL with a host, such as https://example.com/login")
    if scheme == "http" and not (host in LOCAL_HOSTS and is_local_domain(domain)):
        raise ValueError("uri must use https (http only to localhost for a localhost domain)")
    return uri


def plain_message(
    *,
    checksum_address: str,
    caip2: str,
    network_name: str,
    nonce: str,
    issued_at: str,
    expires_at: str,
    challenge_id: str,
) -> str:
    """The default challenge text: readable in any wallet's personal_sign prompt."""
    return "\n".join(
        (
            BRAND_LINE,
            "",
            "Sign this message to prove you control this wallet. Signing is free and sends no transaction.",
            "",
            f"Wallet: {checksum_address}",
            f"Chain: {caip2} ({network_name})",
            f"Nonce: {nonce}",
            f"Issued At: {issued_at}",
            f"Expires At: {expires_at}",
            f"Challenge ID: {challenge_id}",
            f"Purpose: {PURPOSE}",
        )
    )


def siwe_message(
    *,
    domain: str,
    checksum_address: str,
    uri: str,
    chain_id: int,
    nonce: str,
    issued_at: str,
    expires_at: str,
    request_id: str,
    statement: str = SIWE_STATEMENT,
) -> str:
    """An EIP-4361 message; wallets that recognise the format show it as a sign-in request for `domain`."""
    # Field order and labels are fixed by the EIP-4361 ABNF; a parser rejects any other order.
    return "\n".join(
        (
            f"{domain} wants you to sign in with your Ethereum account:",
            checksum_address,
            "",
            statement,
            "",
            f"URI: {uri}",
            f"Version: {SIWE_VERSION}",
            f"Chain ID: {chain_id}",
            f"Nonce: {nonce}",
            f"Issued At: {issued_at}",
            f"Expiration Time: {expires_at}",
            f"Request ID: {request_id}",
        )
    )
