"""EIP-4361 (Sign-In with Ethereum): a strict parser of the whole ABNF, the formatter, and the checks made on verify.

The grammar is the EIP's, with RFC 3986 (scheme, authority, URI, pchar), RFC 3339 (date-time) and RFC 5234 (core
rules) spelled out, ASCII only. Where the EIP leaves room, the parser agrees with the reference implementations'
published vectors (spruceid/siwe test/parsing_*.json, verification_*.json); every refusal beyond the bare ABNF is
listed in REFUSALS and in docs/security.md, with its reason. Pure functions: no I/O, nothing at import time
beyond compiling the patterns.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from chain.address import to_checksum_address

__all__ = [
    "HEADER_SUFFIX",
    "MAX_MESSAGE_LENGTH",
    "REFUSALS",
    "Authority",
    "SiweCheckError",
    "SiweDomainMismatch",
    "SiweExpired",
    "SiweFieldMismatch",
    "SiweMessage",
    "SiweNonceMismatch",
    "SiweNotYetValid",
    "SiweSyntaxError",
    "check_siwe",
    "format_siwe",
    "is_uri",
    "parse_authority",
    "parse_date_time",
    "parse_siwe",
]

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
# A message longer than this is refused before any pattern runs (ours are well under 1 KiB).
MAX_MESSAGE_LENGTH = 8192
# The largest EIP-155 chain id fits in 256 bits: 78 decimal digits.
_MAX_CHAIN_ID_DIGITS = 78

# Deliberate refusals beyond the bare ABNF (all also refused by the reference parsers unless noted).
REFUSALS = {
    "empty host": "an authority with no host names no origin (the ABNF's reg-name may be empty)",
    "non-DNS reg-name": (
        "a domain host must be a DNS name (letters, digits, hyphens), an IPv4 address or a bracketed IPv6 literal: "
        "a SIWE domain is the web origin asking, and origins have no '_', percent-encoding or sub-delims "
        "(the reference vectors refuse 'not_rfc4501'); dotted digits that are no IPv4 address are refused too"
    ),
    "address not EIP-55": "the address must carry its EIP-55 checksum, as the reference vectors require",
    "0X prefix": "the address prefix is '0x' exactly (ABNF strings are case-insensitive, wallets write 0x)",
    "leap second": "a time with second 60 is refused: it has no datetime and cannot be compared safely",
    "year 0000": "year 0 precedes every representable instant",
    "trailing line break": "nothing may follow the last field: the ABNF ends there",
}

# --- RFC 5234 / RFC 3986 character classes (ASCII only: re's \d and \w would admit other scripts) -------------

_ALPHA = "A-Za-z"
_DIGIT = "0-9"
_HEXDIG = "0-9A-Fa-f"
_UNRESERVED = rf"{_ALPHA}{_DIGIT}\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = rf"%[{_HEXDIG}]{{2}}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SEGMENT = rf"{_PCHAR}*"
_SEGMENT_NZ = rf"{_PCHAR}+"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_SCHEME = rf"[{_ALPHA}][{_ALPHA}{_DIGIT}+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
# IP-literal = "[" ( IPv6address / IPvFuture ) "]"; the IPv6 text is checked by ipaddress afterwards.
_IP_LITERAL = rf"\[(?:[{_HEXDIG}:.]+|[vV][{_HEXDIG}]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+)\]"
_AUTHORITY = rf"(?:(?P<userinfo>{_USERINFO})@)?(?P<host>{_IP_LITERAL}|{_REG_NAME})(?::(?P<port>[{_DIGIT}]*))?"
_AUTHORITY_RE = re.compile(_AUTHORITY)
# URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ]
_URI_RE = re.compile(
    rf"{_SCHEME}:(?://{_AUTHORITY}(?:/{_SEGMENT})*"
    rf"|/(?:{_SEGMENT_NZ}(?:/{_SEGMENT})*)?|{_SEGMENT_NZ}(?:/{_SEGMENT})*|)"
    rf"(?:\?{_QUERY})?(?:#{_QUERY})?"
)
_SCHEME_RE = re.compile(_SCHEME)
_ADDRESS_RE = re.compile(rf"0x[{_HEXDIG}]{{40}}")
# statement = 1*( reserved / unreserved / " " ): printable ASCII without '"', '%', '<', '>', '\', '^', '`', '{',
# '|', '}' (none of them is reserved or unreserved); never a line break.
_STATEMENT_RE = re.compile(rf"[{_UNRESERVED}:/?#\[\]@{_SUB_DELIMS} ]+")
_NONCE_RE = re.compile(rf"[{_ALPHA}{_DIGIT}]{{8,}}")
_CHAIN_ID_RE = re.compile(rf"[{_DIGIT}]+")
_REQUEST_ID_RE = re.compile(rf"{_PCHAR}*")
_DATE_TIME_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DNS_LABEL_RE = re.compile(rf"[{_ALPHA}{_DIGIT}](?:[{_ALPHA}{_DIGIT}\-]{{0,61}}[{_ALPHA}{_DIGIT}])?")
_DEC_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]|[0-9])"
_IPV4_RE = re.compile(rf"{_DEC_OCTET}(?:\.{_DEC_OCTET}){{3}}")
_MAX_DNS_NAME = 253


class SiweSyntaxError(ValueError):
    """The text is not an EIP-4361 message; str() says which part and why (never echoes the input)."""


class SiweCheckError(ValueError):
    """A well-formed message that fails a verification check (expiry, not-before, domain, nonce)."""


class SiweExpired(SiweCheckError):
    """The verification time is at or after the message's Expiration Time."""

    def __init__(self, expired_at: str) -> None:
        self.expired_at = expired_at
        super().__init__(f"message expired at {expired_at}")


class SiweNotYetValid(SiweCheckError):
    """The verification time is before the message's Not Before."""


class SiweDomainMismatch(SiweCheckError):
    """The message names another domain than the one it must be bound to."""


class SiweNonceMismatch(SiweCheckError):
    """The message carries another nonce than the one issued."""


class SiweFieldMismatch(SiweCheckError):
    """Another field (address, chain id, request id, scheme, URI) is not what the sign-in is bound to."""


@dataclass(frozen=True)
class Authority:
    """An RFC 3986 authority split into its parts; `host` keeps IPv6 brackets, `port` is None when absent."""

    userinfo: str | None
    host: str
    port: str | None

    @property
    def host_name(self) -> str:
        """The host without IPv6 brackets, lowercase (hosts compare case-insensitively)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host.lower()


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message, as written in it (times stay RFC 3339 text; see parse_date_time)."""

    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: str
    scheme: str | None = None
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None

    @property
    def authority(self) -> Authority:
        """The domain's parts (the domain was checked when the message was parsed)."""
        return parse_authority(self.domain)


def _syntax(message: str) -> SiweSyntaxError:
    return SiweSyntaxError(message)


def _check_ip_literal(host: str) -> None:
    inner = host[1:-1]
    if inner[:1] in ("v", "V"):
        return  # IPvFuture: the pattern is the whole rule
    try:
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise _syntax("host is not a valid IPv6 address") from None


def parse_authority(text: str, *, dns_host: bool = True) -> Authority:
    """Parse an RFC 3986 authority ([userinfo "@"] host [":" port]); SiweSyntaxError when it is not one.

    With `dns_host` (a SIWE domain) the host must be non-empty and a DNS name, an IPv4 address or an IP literal
    (see REFUSALS); without it any RFC 3986 reg-name is accepted, as inside a URI.
    """
    match = _AUTHORITY_RE.fullmatch(text)
    if match is None:
        raise _syntax("domain is not an RFC 3986 authority ([userinfo@]host[:port])")
    host = match.group("host")
    if host.startswith("["):
        _check_ip_literal(host)
    elif dns_host:
        _check_dns_host(host)
    return Authority(match.group("userinfo"), host, match.group("port"))


def _check_dns_host(host: str) -> None:
    if not host:
        raise _syntax("domain has no host")
    labels = host.split(".")
    if len(host) > _MAX_DNS_NAME or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise _syntax("domain host must be a DNS name, an IPv4 address or a bracketed IPv6 address")
    if all(label.isdigit() for label in labels) and _IPV4_RE.fullmatch(host) is None:
        raise _syntax("domain host looks like an IPv4 address but is not one")


def is_uri(text: str) -> bool:
    """Whether `text` is an RFC 3986 URI (absolute: scheme ":" hier-part [ "?" query ] [ "#" fragment ])."""
    match = _URI_RE.fullmatch(text)
    if match is None:
        return False
    host = match.group("host")
    if host is not None and host.startswith("["):
        try:
            _check_ip_literal(host)
        except SiweSyntaxError:
            return False
    return True


def parse_date_time(text: str) -> datetime:
    """An RFC 3339 date-time as an aware UTC datetime; SiweSyntaxError when it is not one (or see REFUSALS)."""
    match = _DATE_TIME_RE.fullmatch(text)
    if match is None:
        raise _syntax("time is not an RFC 3339 date-time such as 2021-09-30T16:25:24Z")
    year, month, day = int(match["year"]), int(match["month"]), int(match["day"])
    hour, minute, second = int(match["hour"]), int(match["minute"]), int(match["second"])
    if year == 0 or not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise _syntax("time names a day that does not exist")
    if hour > 23 or minute > 59 or second > 59:
        raise _syntax("time names an hour, minute or second out of range (leap seconds are refused)")
    microsecond = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    offset = match["offset"]
    if offset in ("Z", "z"):
        zone = UTC
    else:
        offset_hours, offset_minutes = int(offset[1:3]), int(offset[4:6])
        if offset_hours > 23 or offset_minutes > 59:
            raise _syntax("time offset is out of range")
        delta = timedelta(hours=offset_hours, minutes=offset_minutes)
        zone = timezone(-delta if offset[0] == "-" else delta)
    try:
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise _syntax("time is out of the representable range") from None


class _Lines:
    """The message's lines, consumed in grammar order."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.at = 0

    def take(self, what: str) -> str:
        if self.at >= len(self.lines):
            raise _syntax(f"message ends before its {what}")
        line = self.lines[self.at]
        self.at += 1
        return line

    def peek(self) -> str | None:
        return self.lines[self.at] if self.at < len(self.lines) else None

    def field(self, label: str, what: str) -> str:
        line = self.take(what)
        if not line.startswith(label):
            raise _syntax(f"expected the {what} line ('{label.strip()}') here")
        return line[len(label) :]

    def optional(self, label: str) -> str | None:
        line = self.peek()
        if line is None or not line.startswith(label):
            return None
        self.at += 1
        return line[len(label) :]


def _parse_header(line: str) -> tuple[str | None, str]:
    if not line.endswith(HEADER_SUFFIX):
        raise _syntax("first line must be '<domain> wants you to sign in with your Ethereum account:'")
    prefix = line[: -len(HEADER_SUFFIX)]
    scheme: str | None = None
    if "://" in prefix:
        scheme, prefix = prefix.split("://", 1)
        if _SCHEME_RE.fullmatch(scheme) is None:
            raise _syntax("scheme is not an RFC 3986 scheme")
    parse_authority(prefix)
    return scheme, prefix


def _parse_address(line: str) -> str:
    if _ADDRESS_RE.fullmatch(line) is None:
        raise _syntax("address must be 0x followed by 40 hex digits")
    if to_checksum_address(line.lower()) != line:
        raise _syntax("address must be written with its EIP-55 checksum")
    return line


def _parse_statement(lines: _Lines) -> str | None:
    if lines.take("blank line after the address") != "":
        raise _syntax("a blank line must follow the address")
    line = lines.take("statement or blank line")
    if line == "":
        return None
    if _STATEMENT_RE.fullmatch(line) is None:
        raise _syntax("statement has a character EIP-4361 does not allow (only RFC 3986 reserved/unreserved, space)")
    if lines.take("blank line after the statement") != "":
        raise _syntax("a blank line must follow the statement")
    return line


def _uri(value: str, what: str) -> str:
    if not is_uri(value):
        raise _syntax(f"{what} is not an RFC 3986 URI")
    return value


def _date_time(value: str, what: str) -> str:
    try:
        parse_date_time(value)
    except SiweSyntaxError as error:
        raise _syntax(f"{what}: {error}") from None
    return value


def parse_siwe(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly (fields in grammar order, LF only, nothing after the last field)."""
    if not isinstance(text, str):
        raise _syntax("message must be a string")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise _syntax(f"message is longer than {MAX_MESSAGE_LENGTH} characters")
    lines = _Lines(text)
    scheme, domain = _parse_header(lines.take("header"))
    address = _parse_address(lines.take("address"))
    statement = _parse_statement(lines)
    uri = _uri(lines.field("URI: ", "URI"), "URI")
    version = lines.field("Version: ", "Version")
    if version != "1":
        raise _syntax("Version must be 1")
    chain_id = lines.field("Chain ID: ", "Chain ID")
    if _CHAIN_ID_RE.fullmatch(chain_id) is None or len(chain_id) > _MAX_CHAIN_ID_DIGITS:
        raise _syntax("Chain ID must be a decimal EIP-155 chain id")
    nonce = lines.field("Nonce: ", "Nonce")
    if _NONCE_RE.fullmatch(nonce) is None:
        raise _syntax("Nonce must be at least 8 letters or digits")
    issued_at = _date_time(lines.field("Issued At: ", "Issued At"), "Issued At")
    expiration = lines.optional("Expiration Time: ")
    not_before = lines.optional("Not Before: ")
    request_id = lines.optional("Request ID: ")
    if request_id is not None and _REQUEST_ID_RE.fullmatch(request_id) is None:
        raise _syntax("Request ID has a character outside RFC 3986 pchar")
    resources: tuple[str, ...] | None = None
    if lines.peek() == "Resources:":
        lines.at += 1
        resources = tuple(_uri(line.removeprefix("- "), "a resource") for line in _resource_lines(lines))
    if lines.peek() is not None:
        raise _syntax("unexpected line after the last field (fields out of order, or a trailing line break)")
    return SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        version=version,
        chain_id=int(chain_id),
        nonce=nonce,
        issued_at=issued_at,
        scheme=scheme,
        statement=statement,
        expiration_time=_date_time(expiration, "Expiration Time") if expiration is not None else None,
        not_before=_date_time(not_before, "Not Before") if not_before is not None else None,
        request_id=request_id,
        resources=resources,
    )


def _resource_lines(lines: _Lines) -> list[str]:
    found: list[str] = []
    while (line := lines.peek()) is not None:
        if not line.startswith("- "):
            raise _syntax("each resource line must be '- <URI>'")
        found.append(line)
        lines.at += 1
    return found


def format_siwe(message: SiweMessage) -> str:
    """The message text for these fields, in the EIP's order (parse_siwe(format_siwe(m)) == m)."""
    prefix = f"{message.scheme}://{message.domain}" if message.scheme is not None else message.domain
    lines = [f"{prefix}{HEADER_SUFFIX}", message.address, ""]
    # address LF LF [ statement LF ] LF "URI: ": without a statement, two blank lines in a row.
    lines += [message.statement, ""] if message.statement is not None else [""]
    lines += [
        f"URI: {message.uri}",
        f"Version: {message.version}",
        f"Chain ID: {message.chain_id}",
        f"Nonce: {message.nonce}",
        f"Issued At: {message.issued_at}",
    ]
    if message.expiration_time is not None:
        lines.append(f"Expiration Time: {message.expiration_time}")
    if message.not_before is not None:
        lines.append(f"Not Before: {message.not_before}")
    if message.request_id is not None:
        lines.append(f"Request ID: {message.request_id}")
    if message.resources is not None:
        lines.append("Resources:")
        lines += [f"- {resource}" for resource in message.resources]
    return "\n".join(lines)


def check_siwe(message: SiweMessage, *, now: datetime, domain: str | None = None, nonce: str | None = None) -> None:
    """The EIP's checks on verify, as the reference `verify` makes them; SiweCheckError subclasses when one fails.

    Expiry: valid while `now` < Expiration Time. Not-before: valid from `now` >= Not Before. Domain binding: the
    message's domain must be `domain` (hosts compare case-insensitively, ports exactly). Nonce: exactly `nonce`.
    """
    if message.expiration_time is not None and now >= parse_date_time(message.expiration_time):
        raise SiweExpired(message.expiration_time)
    if message.not_before is not None and now < parse_date_time(message.not_before):
        raise SiweNotYetValid(f"message is not valid before {message.not_before}")
    if domain is not None and not _same_authority(message.domain, domain):
        raise SiweDomainMismatch("message is for another domain")
    if nonce is not None and message.nonce != nonce:
        raise SiweNonceMismatch("message nonce is not the one issued")


def _same_authority(left: str, right: str) -> bool:
    try:
        a, b = parse_authority(left), parse_authority(right)
    except SiweSyntaxError:
        return False
    return (a.userinfo, a.host_name, a.port) == (b.userinfo, b.host_name, b.port)
