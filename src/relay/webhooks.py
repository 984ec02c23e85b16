"""Webhook endpoints: URL rules (no SSRF into private networks), registration, listing, deletion, sealed secrets."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from core.auth import Caller, Principal, preloaded_or_read
from core.clock import format_time
from core.config import Env
from core.context import Services
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, Statement
from relay import secretbox, signing, store
from relay.outbox import EVENT_TYPES
from relay.secretbox import KeyRing, SecretUnavailable
from relay.store import (
    ATTEMPT_REASONS,
    Backlog,
    DeliveryPage,
    Endpoint,
    SealedSecrets,
    deliveries_from,
    deliveries_statements,
    endpoint_from,
    endpoint_statement,
    endpoints_from,
    endpoints_statement,
    parse_event_types,
    public_reason,
)

# Records and statements kept importable from here (the store owns them).
__all__ = [
    "ATTEMPT_REASONS",
    "Backlog",
    "DeliveryPage",
    "Endpoint",
    "deliveries_from",
    "deliveries_statements",
    "endpoint_from",
    "endpoint_statement",
    "endpoints_from",
    "endpoints_statement",
    "parse_event_types",
    "public_reason",
]

MAX_URL_LENGTH = 2048
MAX_ENDPOINTS_PER_USER = 20
MAX_DELIVERY_PAGE = 50
DEFAULT_DELIVERY_PAGE = 20
INSECURE_HOSTS = frozenset({"localhost", "127.0.0.1"})
# Names that reach the host itself or a cloud metadata service without being IP literals (hosts files,
# cloud resolvers): refused outright, whatever they resolve to from here.
_BLOCKED_NAMES = frozenset(
    {
        "localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4", "localhost6",
        "localhost6.localdomain6", "ip6-localhost", "ip6-loopback", "broadcasthost",
        "metadata", "metadata.google.internal", "metadata.goog", "metadata.azure.com", "metadata.azure.internal",
        "instance-data", "instance-data.ec2.internal", "metadata.tencentyun.com", "metadata.packet.net",
        "metadata.platformequinix.com",
    }
)  # fmt: skip
# Last labels no public name has: special-use, local-network and reverse-lookup domains.
_LOCAL_SUFFIXES = frozenset({"localhost", "local", "internal", "localdomain", "lan", "home", "corp", "arpa"})
# Public wildcard-DNS services that answer with whatever address the name spells (127.0.0.1.nip.io → 127.0.0.1)
# or always with loopback: no webhook receiver needs them, and their answer is whatever the caller wants.
_ADDRESS_ECHO_DOMAINS = frozenset(
    {"nip.io", "sslip.io", "xip.io", "traefik.me", "localtest.me", "lvh.me", "vcap.me", "lacolhost.com",
     "localhost.direct"}
)  # fmt: skip
_METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DASHED_IPV4 = re.compile(r"(?<![0-9])([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})(?![0-9])")
_DECIMAL_OCTET = re.compile(r"^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ROTATION_OVERLAP = timedelta(days=7)
ROTATION_OVERLAP_ENV = "WEBHOOK_ROTATION_OVERLAP_SECONDS"
REWRAP_LIMIT = 100


class BlockedAddress(Exception):
    """A receiver's host resolved to an address webhooks may not reach (private, loopback, metadata…)."""


class ResolutionFailed(Exception):
    """A receiver's host name did not resolve."""


def _bad_url(reason: str) -> ApiError:
    return ApiError("E6001", f"Invalid webhook URL: {reason}", {"field": "url", "reason": reason})


def _legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Hosts like `2130706433`, `0x7f.1` or `127.1` that inet_aton (and so many HTTP stacks) read as IPv4."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(part) for part in parts):
        return None
    try:
        numbers = [int(part, 16) if part.startswith("0x") else int(part, 8 if len(part) > 1 and part[0] == "0" else 10)
                   for part in parts]  # fmt: skip
    except ValueError:
        return None
    *head, last = numbers
    if any(number > 255 for number in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = 0
    for number in head:
        value = value * 256 + number
    value = value * 256 ** (5 - len(numbers)) + last
    return ipaddress.IPv4Address(value)


def _ip_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal.split("%", 1)[0])
    except ValueError:
        return _legacy_ipv4(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _ip_problem(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if address in _METADATA_ADDRESSES:
        return "cloud metadata addresses are not allowed"
    if address.is_unspecified:
        return "unspecified addresses are not allowed"
    if address.is_loopback:
        return "loopback addresses are not allowed"
    if address.is_link_local:
        return "link-local addresses are not allowed"
    if address.is_private:
        return "private network addresses are not allowed"
    if address.is_multicast or address.is_reserved or not address.is_global:
        return "non-public addresses are not allowed"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and is routed to (mapped, NAT64, 6to4, Teredo), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_problem(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, *, allow_loopback: bool = False
) -> str | None:
    """Why a webhook may not connect to this address (None when it may); judged on any IPv4 it embeds too."""
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            candidates.append(embedded)
    for candidate in candidates:
        if allow_loopback and candidate.is_loopback:
            continue
        problem = _ip_problem(candidate)
        if problem:
            return problem
    return None


def _name_problem(labels: list[str]) -> str | None:
    """Why a host name may not be used: it names this host, a metadata service, or an address it spells out."""
    host = ".".join(labels)
    if host in _BLOCKED_NAMES or labels[-1] in _LOCAL_SUFFIXES:
        return "local and metadata host names are not allowed"
    if any(".".join(labels[start:]) in _ADDRESS_ECHO_DOMAINS for start in range(len(labels))):
        return "wildcard DNS names that echo an IP address are not allowed"
    # Dotted (`10.0.0.1.example.com`) or dashed (`ip-10-0-0-1.example.com`) addresses inside a name are what
    # rebinding and echo services resolve to: refuse those that spell a non-public address.
    spelled: list[str] = []
    for start in range(len(labels) - 3):
        quad = labels[start : start + 4]
        if all(_DECIMAL_OCTET.match(label) for label in quad):
            spelled.append(".".join(quad))
    spelled += [".".join(match.groups()) for label in labels for match in _DASHED_IPV4.finditer(label)]
    for text in spelled:
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if _ip_problem(address):
            return "host names that spell out a non-public address are not allowed"
    return None


def validate_url(url: str, *, allow_insecure: bool = False) -> str:
    """The URL if a webhook may be sent to it, else 400 E6001 naming the rule it breaks.

    Literal addresses and names known to reach local or metadata services are judged here; what a name
    resolves to is judged at each attempt (relay.egress on CPython; Workers' fetch cannot reach private
    networks at all).
    """
    if not isinstance(url, str) or not url:
        raise _bad_url("a URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise _bad_url(f"longer than {MAX_URL_LENGTH} characters")
    if _CONTROL.search(url) or not url.isascii():
        raise _bad_url("spaces, control and non-ASCII characters are not allowed (use punycode for names)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad_url("malformed URL") from None
    scheme = parts.scheme.lower()
    if scheme not in {"https", "http"}:
        raise _bad_url("only https URLs are allowed")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _bad_url("credentials in the URL are not allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _bad_url("the URL must have a host")
    if port == 0:
        raise _bad_url("port 0 is not allowed")
    insecure_dev = allow_insecure and host in INSECURE_HOSTS
    if scheme == "http" and not insecure_dev:
        raise _bad_url("only https URLs are allowed")
    address = _ip_of(host)
    if address is not None:
        if insecure_dev:
            return url
        problem = address_problem(address)
        if problem:
            raise _bad_url(problem)
        return url
    labels = host.split(".")
    # A numeric last label is no public name: resolvers could still read the whole host as an address.
    if not all(_LABEL.match(label) for label in labels) or _NUMERIC_PART.match(labels[-1]):
        raise _bad_url("invalid host name")
    if insecure_dev:
        return url
    problem = _name_problem(labels)
    if problem:
        raise _bad_url(problem)
    if len(labels) < 2:
        # A single label resolves through the server's search domains, i.e. inside its own network.
        raise _bad_url("the host must be a fully qualified domain name")
    return url


def normalize_event_types(event_types: list[str] | None) -> list[str] | None:
    """Dedupe, keep the catalogue order; unknown names → 400 E9004 (the API model refuses them first)."""
    if event_types is None:
        return None
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise ApiError(
            "E9004",
            details={
                "fields": [{"field": "event_types", "message": f"unknown event types: {unknown}", "type": "enum"}]
            },
        )
    if not event_types:
        raise ApiError(
            "E9004",
            details={
                "fields": [
                    {
                        "field": "event_types",
                        "message": "name at least one event type, or leave it out for all",
                        "type": "too_short",
                    }
                ]
            },
        )
    return [name for name in EVENT_TYPES if name in set(event_types)]


async def create_endpoint(
    db: Database,
    ring: KeyRing,
    user_id: str,
    url: str,
    description: str | None,
    event_types: list[str] | None,
    now: datetime,
    *,
    allow_insecure: bool,
) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it with its secret, which is shown to the caller only now (stored sealed)."""
    url = validate_url(url, allow_insecure=allow_insecure)
    types = normalize_event_types(event_types)
    endpoint_id, secret, stamp = new_id(), signing.new_secret(), format_time(now)
    sealed = await secretbox.seal(ring, secret, endpoint_id)
    endpoint = Endpoint(endpoint_id, url, description, types, "ACTIVE", None, stamp, stamp)
    inserted = await store.insert_endpoint_statement(
        db, endpoint, user_id, sealed, max_per_user=MAX_ENDPOINTS_PER_USER
    ).run()
    if inserted.changes != 1:
        raise ApiError(
            "E9004",
            f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints per user; delete one first",
            {"fields": [{"field": "url", "message": "endpoint limit reached", "type": "limit"}]},
        )
    return endpoint, secret


async def list_endpoints(db: Database, principal: Principal) -> list[Endpoint]:
    """One round trip of its own, none when it rode in the auth batch."""
    (result,) = await preloaded_or_read(db, principal, lambda caller: [endpoints_statement(db, caller)])
    return endpoints_from(result)


async def get_endpoint(db: Database, user_id: str, endpoint_id: str) -> Endpoint:
    return endpoint_from(await endpoint_statement(db, Caller.user(user_id), endpoint_id).all())


def endpoint_with_backlog_statements(db: Database, caller: Caller, endpoint_id: str) -> list[Statement]:
    """The endpoint (ownership) and its backlog; GET /webhooks/{id} runs them in the auth batch."""
    return [endpoint_statement(db, caller, endpoint_id), store.backlog_statement(db, caller, endpoint_id)]


async def endpoint_with_backlog(db: Database, principal: Principal, endpoint_id: str) -> tuple[Endpoint, Backlog]:
    """The caller's endpoint (else 404 E6002) and what waits to be sent to it; one round trip at most."""
    endpoint_result, backlog_result = await preloaded_or_read(
        db, principal, lambda caller: endpoint_with_backlog_statements(db, caller, endpoint_id)
    )
    return endpoint_from(endpoint_result), store.backlog_from(backlog_result)


async def delete_endpoint(db: Database, user_id: str, endpoint_id: str, now: datetime) -> None:
    """Soft-delete (deliveries keep their history), forget its secrets and cancel what was still waiting."""
    results = await db.batch(store.delete_endpoint_statements(db, user_id, endpoint_id, format_time(now)))
    if results[-1].changes != 1:
        raise ApiError("E6002")


def rotation_overlap(env: Env) -> timedelta:
    """How long a replaced secret keeps signing beside the new one: WEBHOOK_ROTATION_OVERLAP_SECONDS, else 24 h.

    0 ends the old secret at once; negative or malformed values fall back to the default, and the overlap is
    at most MAX_ROTATION_OVERLAP (receivers get a bounded window, deliveries a bounded header).
    """
    seconds = env.int(ROTATION_OVERLAP_ENV, int(ROTATION_OVERLAP.total_seconds()))
    if seconds < 0:
        return ROTATION_OVERLAP
    return min(timedelta(seconds=seconds), MAX_ROTATION_OVERLAP)


async def rotate_secret(
    db: Database, ring: KeyRing, user_id: str, endpoint_id: str, now: datetime, overlap: timedelta = ROTATION_OVERLAP
) -> str:
    """A new secret signs from now on; the one it replaces signs alongside it for `overlap` (rotation_overlap()).

    The old sealed value moves to `previous_secret` as it is (its seal is bound to the endpoint, not the
    column), so rotating needs no decryption; a second rotation inside the overlap drops the oldest.
    """
    secret = signing.new_secret()
    sealed = await secretbox.seal(ring, secret, endpoint_id)
    result = await store.rotate_secret_statement(
        db, user_id, endpoint_id, sealed, format_time(now + overlap), format_time(now)
    ).run()
    if result.changes != 1:
        raise ApiError("E6002")
    return secret


@dataclass(frozen=True)
class SigningSecrets:
    """The secrets an attempt signs with: the current one, and the replaced one while its overlap lasts."""

    current: str
    previous: str | None = None

    def all(self) -> list[str]:
        return [self.current, *([self.previous] if self.previous else [])]


async def signing_secrets(ring: KeyRing, sealed: SealedSecrets, now: datetime) -> SigningSecrets:
    """Open an endpoint's sealed secrets.

    SecretUnavailable when the current one cannot be opened; a previous one that cannot is left out.
    """
    current = await secretbox.open_secret(ring, sealed.secret, sealed.endpoint_id)
    previous = None
    until = sealed.previous_secret_until
    if sealed.previous_secret and until and until > format_time(now):
        try:
            previous = await secretbox.open_secret(ring, sealed.previous_secret, sealed.endpoint_id)
        except SecretUnavailable:
            previous = None
    return SigningSecrets(current, previous)


async def rewrap_secrets(services: Services, *, limit: int = REWRAP_LIMIT) -> dict[str, int]:
    """Re-seal up to `limit` endpoints' secrets with the current key (plain legacy rows included), drop
    previous secrets whose overlap ended; one batch, each row only if it is still what was read."""
    db, now = services.db, format_time(services.now())
    ring = secretbox.key_ring(services.env)
    prefix = f"{secretbox.FORMAT}:{ring.current.kid}:%"
    statements: list[Statement] = []
    unreadable = 0
    for read in await store.secrets_to_reseal(db, prefix, now, limit):
        try:
            secret = await _resealed(ring, read.secret, read.endpoint_id)
            previous = None
            if read.previous_secret and read.previous_secret_until and read.previous_secret_until > now:
                previous = await _resealed(ring, read.previous_secret, read.endpoint_id)
        except SecretUnavailable:
            unreadable += 1
            services.logger.error("webhook_secret_unavailable", endpoint_id=read.endpoint_id)
            continue
        statements.append(store.reseal_statement(db, read, secret, previous))
    changed = sum(result.changes for result in await db.batch(statements)) if statements else 0
    return {"resealed": changed, "unreadable": unreadable}


async def _resealed(ring: KeyRing, stored: str, endpoint_id: str) -> str:
    if ring.sealed_with_current(stored):
        return stored
    return await secretbox.seal(ring, await secretbox.open_secret(ring, stored, endpoint_id), endpoint_id)


async def list_deliveries(
    db: Database,
    principal: Principal,
    endpoint_id: str,
    *,
    limit: int = DEFAULT_DELIVERY_PAGE,
    cursor: str | None = None,
) -> DeliveryPage:
    """An endpoint's deliveries, newest first, each with its attempts (status, duration, classified reason).

    Receivers' answers are never shown: an error is one of ATTEMPT_REASONS, nothing a receiver wrote.
    One round trip of its own, none when it rode in the auth batch.
    """
    if cursor and not principal.preloaded:
        try:
            store.decode_cursor(cursor)
        except ApiError:
            # Someone else's endpoint is 404 whatever the cursor: existence never leaks through a 400.
            await get_endpoint(db, principal.user_id or "", endpoint_id)
            raise
    results = await preloaded_or_read(
        db, principal, lambda caller: deliveries_statements(db, caller, endpoint_id, limit=limit, cursor=cursor)
    )
    return deliveries_from(results, limit)
