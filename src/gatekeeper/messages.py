"""The text a wallet signs (a plain challenge or an EIP-4361 message), and the checks on the SIWE text sent back."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from urllib.parse import urlsplit

from gatekeeper.siwe import (
    Authority,
    SiweDomainMismatch,
    SiweFieldMismatch,
    SiweMessage,
    SiweSyntaxError,
    check_siwe,
    is_uri,
    parse_authority,
    parse_siwe,
)

__all__ = [
    "BRAND_LINE",
    "PURPOSE",
    "SIWE_STATEMENT",
    "accept_siwe",
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

# A sign-in domain is an RFC 3986 authority restricted to host[:port] (a DNS name, IPv4, or [IPv6] literal):
# userinfo ("good.com@evil.com") is refused because it exists mainly to make a domain read as something it is not.
_PORT = re.compile(r"[0-9]{1,5}")
# Characters RFC 3986 allows in a URI (unreserved, reserved, pct-encoded); anything else, above all a
# line break, could forge extra lines of the signed message.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_PCT_ENCODED_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_URI_LENGTH = 2048
# Hosts a development sign-in may use over plain http: a browser treats them as secure contexts.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _authority(domain: str) -> Authority | None:
    try:
        return parse_authority(domain)
    except SiweSyntaxError:
        return None


def normalize_domain(value: str) -> str:
    """Validate an EIP-4361 domain (host[:port], host a DNS name, IPv4 or [IPv6]) and return it lowercase."""
    domain = value.strip().lower()
    authority = _authority(domain)
    if authority is None or authority.userinfo is not None or authority.host.startswith("[v"):
        raise ValueError("domain must be a host name with an optional :port")
    port = authority.port
    if port is not None and (_PORT.fullmatch(port) is None or not 0 < int(port) < 65536):
        raise ValueError("domain port is out of range")
    if authority.host.startswith("["):
        # One spelling per address, so the allow list and the domain binding compare like with like.
        return f"[{ipaddress.IPv6Address(authority.host_name).compressed}]" + (f":{port}" if port else "")
    return domain


def _host(domain: str) -> str | None:
    authority = _authority(domain)
    return authority.host_name if authority is not None else None


def domain_allowed(domain: str, allowed: str) -> bool:
    """Whether a normalized domain is in the comma-separated allow list.

    An entry without a port allows that host on any port (a dev server's port varies); an entry with a
    port allows only that exact authority.
    """
    host = _host(domain)
    for raw in allowed.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        entry_authority = _authority(entry)
        if domain == entry or (
            entry_authority is not None and entry_authority.port is None and host == entry_authority.host_name
        ):
            return True
    return False


def is_local_domain(domain: str) -> bool:
    """Whether a normalized domain (host[:port]) names this machine: localhost, 127.0.0.1 or [::1]."""
    return _host(domain) in LOCAL_HOSTS


def normalize_uri(value: str, domain: str) -> str:
    """Validate the SIWE `URI:` line for a sign-in at `domain` (normalized); ValueError otherwise.

    Only an https URL with a host, or http to localhost / 127.0.0.1 when the domain itself is local (a dev
    server): the URI is what the wallet shows as the resource, so `javascript:`, `file:` or `data:` never.
    """
    uri = value.strip()
    if len(uri) > MAX_URI_LENGTH:
        raise ValueError(f"uri must be at most {MAX_URI_LENGTH} characters")
    if _URI.fullmatch(uri) is None or _PCT_ENCODED_OK.search(uri) is not None or not is_uri(uri):
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


def accept_siwe(
    text: str,
    *,
    issued: str,
    wallet_address: str,
    chain_id: int,
    challenge_id: str,
    allowed_domains: str,
    now: datetime,
) -> SiweMessage:
    """The checks on verify of the SIWE text a wallet signed for the challenge whose issued message is `issued`.

    The text is usually `issued` itself; an app may also have built its own message on the challenge's nonce, as
    SIWE libraries do. Either way it must parse strictly (SiweSyntaxError) and pass the EIP's checks and ours
    (SiweCheckError): not expired, not before its Not Before, for the issued domain (which must still be in
    SIWE_ALLOWED_DOMAINS, with no userinfo and an https scheme if any), the issued nonce, the challenge's
    address, chain and request id, and an https URI (http only for a local domain, as at issuance).
    """
    message = parse_siwe(text)
    original = parse_siwe(issued)
    check_siwe(message, now=now, domain=original.domain, nonce=original.nonce)
    try:
        domain = normalize_domain(message.domain)
    except ValueError:
        raise SiweDomainMismatch("message domain has userinfo or is not a host[:port]") from None
    if not domain_allowed(domain, allowed_domains):
        raise SiweDomainMismatch("message domain is not an allowed sign-in domain (SIWE_ALLOWED_DOMAINS)")
    scheme = message.scheme.lower() if message.scheme is not None else "https"
    if scheme != "https" and not (scheme == "http" and is_local_domain(domain)):
        raise SiweFieldMismatch("message scheme must be https (http only for a local domain)")
    if message.address.lower() != wallet_address.lower():
        raise SiweFieldMismatch("message address is not the challenge's wallet")
    if message.chain_id != chain_id:
        raise SiweFieldMismatch("message Chain ID is not the challenge's chain")
    if message.request_id is not None and message.request_id != challenge_id:
        raise SiweFieldMismatch("message Request ID is not the challenge id")
    if text != issued:
        try:
            normalize_uri(message.uri, domain)
        except ValueError as error:
            raise SiweFieldMismatch(f"message URI: {error}") from None
    return message
