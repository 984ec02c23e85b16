"""Webhook endpoints: URL rules (no SSRF into private networks), registration, listing, deletion, sealed secrets."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from core.auth import Caller, Principal, preloaded_or_read
from core.clock import format_time
from core.context import Services
from core.errors import ApiError
from core.ids import new_id
from db.port import Database, QueryResult, Statement
from relay import secretbox, signing
from relay.outbox import EVENT_TYPES
from relay.secretbox import KeyRing, SecretUnavailable

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

ENDPOINT_COLUMNS = "id, user_id, url, description, event_types, status, disabled_reason, created_at, updated_at"
# What a deleted endpoint keeps in place of its secret: nothing that could ever sign again.
DELETED_SECRET = "deleted"  # noqa: S105 - a tombstone, not a secret
ROTATION_OVERLAP = timedelta(hours=24)
REWRAP_LIMIT = 100

# Why an attempt failed, as the owner sees it: a fixed vocabulary, never the receiver's words.
ATTEMPT_REASONS = (
    "http_status",
    "timeout",
    "connection_refused",
    "connection_error",
    "dns_error",
    "tls_error",
    "blocked_address",
    "url_not_allowed",
    "invalid_payload",
    "request_failed",
)
# Free-text errors recorded before the vocabulary existed (migration 0009 rewrites them the same way).
_LEGACY_REASONS = (
    ("HTTP ", "http_status"),
    ("timeout", "timeout"),
    ("URL not allowed", "url_not_allowed"),
    ("event payload is not valid JSON", "invalid_payload"),
)


class BlockedAddress(Exception):
    """A receiver's host resolved to an address webhooks may not reach (private, loopback, metadata…)."""


class ResolutionFailed(Exception):
    """A receiver's host name did not resolve."""


def public_reason(error: str | None) -> str | None:
    """An attempt's recorded error as one of ATTEMPT_REASONS (older free-text errors are classified)."""
    if error is None or error in ATTEMPT_REASONS:
        return error
    for prefix, reason in _LEGACY_REASONS:
        if error.startswith(prefix):
            return reason
    if error.startswith("connection error"):
        return "connection_refused" if "refused" in error.lower() else "connection_error"
    return "request_failed"


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


@dataclass(frozen=True)
class Endpoint:
    """A registered endpoint as the API shows it: never its secret."""

    id: str
    url: str
    description: str | None
    event_types: list[str] | None
    status: str
    disabled_reason: str | None
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "description": self.description,
            "event_types": self.event_types,
            "status": self.status,
            "disabled_reason": self.disabled_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def parse_event_types(raw: str | None) -> list[str] | None:
    """The stored filter: NULL means every event type."""
    if raw is None:
        return None
    value = json.loads(raw)
    return [str(item) for item in value] if isinstance(value, list) else None


def _endpoint(row: dict[str, Any]) -> Endpoint:
    return Endpoint(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=parse_event_types(row["event_types"]),
        status=row["status"],
        disabled_reason=row["disabled_reason"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


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
    stored_types = json.dumps(types, separators=(",", ":")) if types is not None else None
    # The count and the insert are one statement, so concurrent registrations cannot pass the cap together.
    result = (
        await db.prepare(
            "INSERT INTO webhook_endpoints (id, user_id, url, description, event_types, secret, status, created_at,"
            " updated_at) SELECT ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?"
            " WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ? AND status <> 'DELETED') < ?"
        )
        .bind(
            endpoint_id, user_id, url, description, stored_types, sealed, stamp, stamp, user_id, MAX_ENDPOINTS_PER_USER
        )
        .run()
    )
    if result.changes != 1:
        raise ApiError(
            "E9004",
            f"At most {MAX_ENDPOINTS_PER_USER} webhook endpoints per user; delete one first",
            {"fields": [{"field": "url", "message": "endpoint limit reached", "type": "limit"}]},
        )
    endpoint = Endpoint(endpoint_id, url, description, types, "ACTIVE", None, stamp, stamp)
    return endpoint, secret


def endpoints_statement(db: Database, caller: Caller) -> Statement:
    """The caller's endpoints; GET /webhooks runs it in the auth batch (core.auth.Preload)."""
    # caller.sql is one of core.auth's fixed fragments, never input; its values are bound.
    return db.prepare(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE user_id = {caller.sql} AND status <> 'DELETED'"  # noqa: S608
        " ORDER BY created_at, id"
    ).bind(*caller.params)


def endpoints_from(result: QueryResult) -> list[Endpoint]:
    return [_endpoint(row) for row in result.results]


async def list_endpoints(db: Database, principal: Principal) -> list[Endpoint]:
    """One round trip of its own, none when it rode in the auth batch."""
    (result,) = await preloaded_or_read(db, principal, lambda caller: [endpoints_statement(db, caller)])
    return endpoints_from(result)


def endpoint_statement(db: Database, caller: Caller, endpoint_id: str) -> Statement:
    return db.prepare(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ? AND user_id = {caller.sql}"  # noqa: S608
        " AND status <> 'DELETED'"
    ).bind(endpoint_id, *caller.params)


def endpoint_from(result: QueryResult) -> Endpoint:
    """The caller's own endpoint; anyone else's (or a deleted one) is 404 E6002, so existence never leaks."""
    if not result.results:
        raise ApiError("E6002")
    return _endpoint(result.results[0])


async def get_endpoint(db: Database, user_id: str, endpoint_id: str) -> Endpoint:
    return endpoint_from(await endpoint_statement(db, Caller.user(user_id), endpoint_id).all())


async def delete_endpoint(db: Database, user_id: str, endpoint_id: str, now: datetime) -> None:
    """Soft-delete (deliveries keep their history), forget its secrets and cancel what was still waiting."""
    stamp = format_time(now)
    results = await db.batch(
        [
            db.prepare(
                "UPDATE webhook_deliveries SET status = 'CANCELLED', lease_until = NULL, lease_owner = NULL,"
                " updated_at = ? WHERE endpoint_id = ? AND status = 'PENDING' AND EXISTS ("
                "SELECT 1 FROM webhook_endpoints WHERE id = ? AND user_id = ? AND status <> 'DELETED')"
            ).bind(stamp, endpoint_id, endpoint_id, user_id),
            db.prepare(
                "UPDATE webhook_endpoints SET status = 'DELETED', secret = ?, previous_secret = NULL,"
                " previous_secret_until = NULL, updated_at = ? WHERE id = ? AND user_id = ? AND status <> 'DELETED'"
            ).bind(DELETED_SECRET, stamp, endpoint_id, user_id),
        ]
    )
    if results[-1].changes != 1:
        raise ApiError("E6002")


async def rotate_secret(db: Database, ring: KeyRing, user_id: str, endpoint_id: str, now: datetime) -> str:
    """A new secret signs from now on; the one it replaces signs alongside it for ROTATION_OVERLAP.

    The old sealed value moves to `previous_secret` as it is (its seal is bound to the endpoint, not the
    column), so rotating needs no decryption; a second rotation inside the overlap drops the oldest.
    """
    secret = signing.new_secret()
    sealed = await secretbox.seal(ring, secret, endpoint_id)
    result = (
        await db.prepare(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?, secret = ?,"
            " updated_at = ? WHERE id = ? AND user_id = ? AND status <> 'DELETED'"
        )
        .bind(format_time(now + ROTATION_OVERLAP), sealed, format_time(now), endpoint_id, user_id)
        .run()
    )
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


async def signing_secrets(ring: KeyRing, row: dict[str, Any], now: datetime) -> SigningSecrets:
    """Open an endpoint row's sealed secrets (`id`/`endpoint_id`, `secret`, `previous_secret[_until]`).

    SecretUnavailable when the current one cannot be opened; a previous one that cannot is left out.
    """
    endpoint_id = row.get("endpoint_id") or row["id"]
    current = await secretbox.open_secret(ring, row["secret"], endpoint_id)
    previous = None
    until = row.get("previous_secret_until")
    if row.get("previous_secret") and until and until > format_time(now):
        try:
            previous = await secretbox.open_secret(ring, row["previous_secret"], endpoint_id)
        except SecretUnavailable:
            previous = None
    return SigningSecrets(current, previous)


async def rewrap_secrets(services: Services, *, limit: int = REWRAP_LIMIT) -> dict[str, int]:
    """Re-seal up to `limit` endpoints' secrets with the current key (plain legacy rows included), drop
    previous secrets whose overlap ended; one batch, each row only if it is still what was read."""
    db, now = services.db, format_time(services.now())
    ring = secretbox.key_ring(services.env)
    prefix = f"{secretbox.FORMAT}:{ring.current.kid}:%"
    rows = (
        await db.prepare(
            "SELECT id, secret, previous_secret, previous_secret_until FROM webhook_endpoints WHERE status <> 'DELETED'"
            " AND (secret NOT LIKE ? OR (previous_secret IS NOT NULL AND (previous_secret NOT LIKE ?"
            " OR previous_secret_until IS NULL OR previous_secret_until <= ?))) ORDER BY id LIMIT ?"
        )
        .bind(prefix, prefix, now, limit)
        .all()
    ).results
    statements: list[Statement] = []
    unreadable = 0
    for row in rows:
        try:
            secret = await _resealed(ring, row["secret"], row["id"])
            previous = None
            if row["previous_secret"] and row["previous_secret_until"] and row["previous_secret_until"] > now:
                previous = await _resealed(ring, row["previous_secret"], row["id"])
        except SecretUnavailable:
            unreadable += 1
            services.logger.error("webhook_secret_unavailable", endpoint_id=row["id"])
            continue
        statements.append(
            db.prepare(
                "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, previous_secret_until = ?"
                " WHERE id = ? AND secret = ? AND previous_secret IS ? AND status <> 'DELETED'"
            ).bind(
                secret,
                previous,
                row["previous_secret_until"] if previous else None,
                row["id"],
                row["secret"],
                row["previous_secret"],
            )
        )
    changed = sum(result.changes for result in await db.batch(statements)) if statements else 0
    return {"resealed": changed, "unreadable": unreadable}


async def _resealed(ring: KeyRing, stored: str, endpoint_id: str) -> str:
    if ring.sealed_with_current(stored):
        return stored
    return await secretbox.seal(ring, await secretbox.open_secret(ring, stored, endpoint_id), endpoint_id)


def _encode_cursor(created_at: str, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{delivery_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        created_at, delivery_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            "E9004", details={"fields": [{"field": "cursor", "message": "invalid cursor", "type": "value_error"}]}
        ) from None
    return created_at, delivery_id


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the API shows it: the reason is classified, never the receiver's answer."""

    attempt_number: int
    started_at: str
    duration_ms: int
    status_code: int | None
    error: str | None

    def public(self) -> dict[str, Any]:
        return {
            "attempt_number": self.attempt_number,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "status_code": self.status_code,
            "error": self.error,
        }


@dataclass(frozen=True)
class Delivery:
    """One event's delivery to an endpoint, with its attempts."""

    id: str
    event_id: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    delivered_at: str | None
    attempts: tuple[Attempt, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempt_count": self.attempt_count,
            "next_attempt_at": self.next_attempt_at,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "delivered_at": self.delivered_at,
            # The webhook-id header value, stable across retries.
            "webhook_id": "msg_" + self.id,
            "attempts": [attempt.public() for attempt in self.attempts],
        }


@dataclass(frozen=True)
class DeliveryPage:
    items: list[Delivery]
    next_cursor: str | None


def deliveries_statements(
    db: Database, caller: Caller, endpoint_id: str, *, limit: int, cursor: str | None
) -> list[Statement]:
    """The endpoint (ownership), a page of its deliveries (one extra row tells whether more follow), and the
    attempts of that page: one batch, so GET /webhooks/{id}/deliveries rides in the auth batch.

    A malformed cursor raises 400 E9004.
    """
    page = " FROM webhook_deliveries d WHERE d.endpoint_id = ?"
    params: list[Any] = [endpoint_id]
    if cursor:
        created_at, delivery_id = _decode_cursor(cursor)
        page += " AND (d.created_at < ? OR (d.created_at = ? AND d.id < ?))"
        params += [created_at, created_at, delivery_id]
    page += " ORDER BY d.created_at DESC, d.id DESC LIMIT ?"
    columns = (
        "d.id, d.event_id, e.type AS event_type, d.status, d.attempt_count, d.next_attempt_at,"
        " d.last_status_code, d.last_error, d.created_at, d.updated_at, d.delivered_at"
    )
    # The page's query is fixed text plus bound values; the join to events only adds the type.
    deliveries = (
        f"SELECT {columns} FROM webhook_deliveries d JOIN events e ON e.id = d.event_id"  # noqa: S608
        f" WHERE d.id IN (SELECT d.id{page}) ORDER BY d.created_at DESC, d.id DESC"
    )
    attempt_columns = "delivery_id, attempt_number, started_at, duration_ms, status_code, error"
    attempts = f"SELECT {attempt_columns} FROM webhook_attempts WHERE delivery_id IN (SELECT d.id{page})"  # noqa: S608
    attempts += " ORDER BY attempt_number"
    return [
        endpoint_statement(db, caller, endpoint_id),
        db.prepare(deliveries).bind(*params, limit + 1),
        db.prepare(attempts).bind(*params, limit),
    ]


def deliveries_from(results: list[QueryResult], limit: int) -> DeliveryPage:
    endpoint_rows, delivery_rows, attempt_rows = results
    endpoint_from(endpoint_rows)
    rows = delivery_rows.results
    next_cursor = _encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit else None
    attempts: dict[str, list[Attempt]] = {row["id"]: [] for row in rows[:limit]}
    for row in attempt_rows.results:
        if row["delivery_id"] in attempts:
            attempts[row["delivery_id"]].append(
                Attempt(
                    attempt_number=int(row["attempt_number"]),
                    started_at=row["started_at"],
                    duration_ms=int(row["duration_ms"]),
                    status_code=row["status_code"],
                    error=public_reason(row["error"]),
                )
            )
    items = [
        Delivery(
            id=row["id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            status=row["status"],
            attempt_count=int(row["attempt_count"]),
            next_attempt_at=row["next_attempt_at"],
            last_status_code=row["last_status_code"],
            last_error=public_reason(row["last_error"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            delivered_at=row["delivered_at"],
            attempts=tuple(attempts[row["id"]]),
        )
        for row in rows[:limit]
    ]
    return DeliveryPage(items, next_cursor)


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
            _decode_cursor(cursor)
        except ApiError:
            # Someone else's endpoint is 404 whatever the cursor: existence never leaks through a 400.
            await get_endpoint(db, principal.user_id or "", endpoint_id)
            raise
    results = await preloaded_or_read(
        db, principal, lambda caller: deliveries_statements(db, caller, endpoint_id, limit=limit, cursor=cursor)
    )
    return deliveries_from(results, limit)
