"""The strict EIP-4361 parser against the reference implementations' vectors, the grammar's corners, and siwe-py.

Vectors: tests/fixtures/siwe/ (spruceid/siwe and signinwithethereum/siwe, see its README). The `siwe` package
(siwe-py, dev dependency only) is the cross-check; where this parser refuses on purpose, the test says so and
names the entry of gatekeeper.siwe.REFUSALS that explains it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chain.signatures import SignatureError, recover_personal_sign
from gatekeeper.siwe import (
    MAX_MESSAGE_LENGTH,
    REFUSALS,
    SiweCheckError,
    SiweDomainMismatch,
    SiweExpired,
    SiweMessage,
    SiweNonceMismatch,
    SiweNotYetValid,
    SiweSyntaxError,
    check_siwe,
    format_siwe,
    is_uri,
    parse_authority,
    parse_date_time,
    parse_siwe,
)

with warnings.catch_warnings():
    # siwe's grammar restates RFC 5234 core rules, which abnf warns about; harmless here.
    warnings.simplefilter("ignore")
    from siwe import SiweMessage as ReferenceMessage

VECTORS = Path(__file__).resolve().parent / "fixtures" / "siwe"
# The vectors' "now" when a case gives no `time` (after every issued-at, before every 2100 expiry).
VECTOR_NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Negative vectors siwe-py itself accepts; this parser refuses them on purpose (the REFUSALS key says why).
REFUSED_ON_PURPOSE = {"domain not RFC4501 authority": "non-DNS reg-name"}
_FIELDS = {
    "domain": "domain",
    "address": "address",
    "statement": "statement",
    "uri": "uri",
    "version": "version",
    "chainId": "chain_id",
    "nonce": "nonce",
    "issuedAt": "issued_at",
    "expirationTime": "expiration_time",
    "notBefore": "not_before",
    "requestId": "request_id",
    "resources": "resources",
}


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return loaded


def reference(text: str) -> ReferenceMessage:
    return ReferenceMessage.from_message(text, abnf=True)


def ours(value: Any) -> Any:
    """A parsed field as the vectors write it (strings, lists)."""
    if isinstance(value, tuple):
        return list(value)
    return str(value) if isinstance(value, int) else value


# --- parsing vectors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "case"), load("parsing_positive.json").items())
def test_positive_parsing_vectors_parse_field_by_field(name: str, case: dict[str, Any]) -> None:
    message = parse_siwe(case["message"])
    for field, attribute in _FIELDS.items():
        assert ours(getattr(message, attribute)) == case["fields"].get(field), (name, field)
    assert format_siwe(message) == case["message"]


@pytest.mark.parametrize(("name", "text"), load("parsing_negative.json").items())
def test_negative_parsing_vectors_are_refused(name: str, text: str) -> None:
    with pytest.raises(SiweSyntaxError):
        parse_siwe(text)


@pytest.mark.parametrize(("name", "case"), load("parsing_positive.json").items())
def test_siwe_py_reads_the_positive_vectors_as_we_do(name: str, case: dict[str, Any]) -> None:
    theirs, mine = reference(case["message"]), parse_siwe(case["message"])
    assert (theirs.domain, theirs.address, theirs.uri, theirs.chain_id, theirs.nonce) == (
        mine.domain,
        mine.address,
        mine.uri,
        mine.chain_id,
        mine.nonce,
    )
    assert theirs.statement == mine.statement and str(theirs.issued_at) == mine.issued_at
    assert theirs.resources == (list(mine.resources) if mine.resources is not None else None)


@pytest.mark.parametrize(("name", "text"), load("parsing_negative.json").items())
def test_siwe_py_refuses_the_negative_vectors_too_but_where_documented(name: str, text: str) -> None:
    if name in REFUSED_ON_PURPOSE:
        assert REFUSED_ON_PURPOSE[name] in REFUSALS
        assert reference(text).domain  # siwe-py accepts it; we do not (see REFUSALS)
        return
    with pytest.raises(ValueError):
        reference(text)


# --- verification vectors -------------------------------------------------------------------------------


def verify_vector(case: dict[str, Any]) -> None:
    """The reference `verify`: the message from its fields, strictly parsed, checked, and its EOA signature."""
    fields = {attribute: case[field] for field, attribute in _FIELDS.items() if field in case}
    fields["chain_id"] = int(fields["chain_id"])
    text = format_siwe(SiweMessage(**fields))
    message = parse_siwe(text)
    now = parse_date_time(case["time"]) if "time" in case else VECTOR_NOW
    check_siwe(message, now=now, domain=case.get("domainBinding", message.domain), nonce=case.get("matchNonce"))
    if recover_personal_sign(text, case["signature"]) != message.address.lower():
        raise SignatureError("the signature is not the address's")


@pytest.mark.parametrize(("name", "case"), load("verification_positive.json").items())
def test_positive_verification_vectors_verify(name: str, case: dict[str, Any]) -> None:
    verify_vector(case)


@pytest.mark.parametrize(("name", "case"), load("verification_negative.json").items())
def test_negative_verification_vectors_fail(name: str, case: dict[str, Any]) -> None:
    with pytest.raises((SiweSyntaxError, SiweCheckError, SignatureError)):
        verify_vector(case)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("expired message", SiweExpired),
        ("custom time", SiweExpired),
        ("not yet valid", SiweNotYetValid),
        ("domain binding", SiweDomainMismatch),
        ("custom nonce", SiweNonceMismatch),
        ("wrong signature", SignatureError),
        ("malformed signature", SignatureError),
        ("invalid issuedAt", SiweSyntaxError),
        ("invalid notBefore", SiweSyntaxError),
        ("invalid expirationTime", SiweSyntaxError),
    ],
)
def test_each_negative_verification_vector_fails_for_its_own_reason(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify_vector(load("verification_negative.json")[name])


@pytest.mark.parametrize(("name", "case"), load("verification_positive.json").items())
def test_siwe_py_builds_the_same_text_from_the_vectors(name: str, case: dict[str, Any]) -> None:
    fields = {attribute: case[field] for field, attribute in _FIELDS.items() if field in case}
    assert ReferenceMessage(**fields).prepare_message() == format_siwe(SiweMessage(**fields))


# --- the grammar's corners ------------------------------------------------------------------------------

BASE = SiweMessage(
    domain="service.org",
    address="0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    uri="https://service.org/login",
    version="1",
    chain_id=1,
    nonce="32891757",
    issued_at="2021-09-30T16:25:24.000Z",
    statement="I accept the ServiceOrg Terms of Service: https://service.org/tos",
)


@pytest.mark.parametrize(
    "changes",
    [
        {"domain": "[::1]:8080"},
        {"domain": "[2001:db8::8a2e:370:7334]"},
        {"domain": "[::ffff:192.0.2.1]:443"},
        {"domain": "[v1.fe80::a+en1]"},
        {"domain": "xn--nxasmq6b.example:8443"},
        {"scheme": "https"},
        {"scheme": "chrome-extension", "domain": "abcdefgh"},
        {"statement": None},
        {"statement": "Sign in; accept the terms (v2) & all: ~_-.!$'*+,=?#[]@/"},
        {"expiration_time": "2100-01-01T00:00:00+01:00", "not_before": "2021-09-30t16:25:24.123456789Z"},
        {"issued_at": "2024-02-29T23:59:59-23:59"},
        {"request_id": ""},
        {"request_id": "a:b@c%20d!$&'()*+,;="},
        {"resources": ()},
        {"resources": ("urn:uuid:3f1c2a7e", "mailto:a@b.example", "https://[::1]:8/x?y#z", "ipfs:")},
        {"uri": "did:pkh:eip155:1:0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"},
        {"chain_id": 115792089237316195423570985008687907853269984665640564039457584007913129639935},
    ],
    ids=lambda changes: ",".join(changes),
)
def test_the_whole_grammar_parses_and_round_trips(changes: dict[str, Any]) -> None:
    message = replace(BASE, **changes)
    text = format_siwe(message)
    assert parse_siwe(text) == message
    assert reference(text).nonce == message.nonce  # siwe-py agrees these are messages


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (format_siwe(BASE) + "\n", "trailing line break"),
        (format_siwe(BASE).replace("\n", "\r\n"), "CRLF"),
        (format_siwe(replace(BASE, statement="Tschüss")), "non-ASCII statement"),
        (format_siwe(replace(BASE, statement='say "hi"')), "quote in statement"),
        (format_siwe(replace(BASE, domain="[::g]")), "bad IPv6"),
        (format_siwe(replace(BASE, domain="[::1")), "unclosed literal"),
        (format_siwe(replace(BASE, domain="a@b@c")), "two @"),
        (format_siwe(replace(BASE, domain="1.1.1.256")), "dotted digits, no IPv4"),
        (format_siwe(replace(BASE, domain="exa mple")), "space in domain"),
        (format_siwe(replace(BASE, domain="-a.example")), "label starts with a hyphen"),
        (format_siwe(replace(BASE, domain="a%41.example")), "pct-encoded host"),
        (format_siwe(replace(BASE, scheme="1http")), "scheme starting with a digit"),
        (format_siwe(BASE).replace("0xC02a", "0XC02a"), "0X prefix"),
        (format_siwe(replace(BASE, issued_at="2021-02-29T00:00:00Z")), "no Feb 29 in 2021"),
        (format_siwe(replace(BASE, issued_at="2016-12-31T23:59:60Z")), "leap second"),
        (format_siwe(replace(BASE, issued_at="0000-01-01T00:00:00Z")), "year 0000"),
        (format_siwe(replace(BASE, issued_at="2021-09-30T16:25:24+24:00")), "offset hour 24"),
        (format_siwe(replace(BASE, issued_at="2021-09-30 16:25:24Z")), "space for T"),
        (format_siwe(replace(BASE, issued_at="2021-09-30T16:25:24")), "no offset"),
        (format_siwe(replace(BASE, issued_at="\uff12\uff10\uff12\uff11-09-30T16:25:24Z")), "full-width digits"),
        (format_siwe(replace(BASE, nonce="1234567\u0663")), "Arabic-Indic digit in nonce"),
        (format_siwe(replace(BASE, uri="https://service.org/a b")), "space in URI"),
        (format_siwe(replace(BASE, uri="https://[fe80::1%25en0]/")), "zone id (RFC 6874, not 3986)"),
        (format_siwe(replace(BASE, request_id="a b")), "space in request id"),
        (format_siwe(replace(BASE, resources=("https://a.example",))) + "\n", "trailing line after resources"),
        (format_siwe(BASE).replace("Chain ID: 1", "Chain ID: " + "9" * 79), "chain id beyond 256 bits"),
        ("x" * (MAX_MESSAGE_LENGTH + 1), "too long"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else "",
)
def test_the_grammar_refuses(text: str, why: str) -> None:
    with pytest.raises(SiweSyntaxError):
        parse_siwe(text)


def test_a_lower_case_z_is_rfc_3339_though_siwe_py_refuses_it() -> None:
    """RFC 3339 5.6: "T" and "Z" may be lower case (the ABNF's strings are case-insensitive). siwe-py's ISO parser
    refuses a lower-case z; this parser follows the RFC, as it does for a lower-case t (which siwe-py accepts)."""
    text = format_siwe(replace(BASE, issued_at="2021-09-30T16:25:24z"))
    assert parse_siwe(text).issued_at == "2021-09-30T16:25:24z"
    assert parse_date_time("2021-09-30t16:25:24z") == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    with pytest.raises(ValueError):
        reference(text)


def test_refusals_beyond_the_abnf_are_documented() -> None:
    assert set(REFUSALS) >= {"non-DNS reg-name", "empty host", "address not EIP-55", "leap second"}
    security = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text(encoding="utf-8")
    for reason in ("user-info", "not_rfc4501", "leap second", "EIP-55"):
        assert reason in security


def test_authority_parts_and_hosts_compare_case_insensitively() -> None:
    parts = parse_authority("test@[2001:DB8::1]:8080")
    assert (parts.userinfo, parts.host, parts.port, parts.host_name) == ("test", "[2001:DB8::1]", "8080", "2001:db8::1")
    assert parse_authority("Service.ORG").host_name == "service.org"
    message = parse_siwe(format_siwe(replace(BASE, domain="Service.ORG")))
    check_siwe(message, now=VECTOR_NOW, domain="service.org")
    with pytest.raises(SiweDomainMismatch):
        check_siwe(message, now=VECTOR_NOW, domain="service.org:443")


def test_expiry_and_not_before_bounds_are_exact() -> None:
    message = replace(BASE, expiration_time="2030-01-01T00:00:00Z", not_before="2029-01-01T00:00:00.5Z")
    check_siwe(message, now=datetime(2029, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC))
    with pytest.raises(SiweNotYetValid):
        check_siwe(message, now=datetime(2029, 1, 1, 0, 0, 0, 499_999, tzinfo=UTC))
    with pytest.raises(SiweExpired):
        check_siwe(message, now=datetime(2030, 1, 1, tzinfo=UTC))


def test_uri_corners() -> None:
    for good in ("https://a", "a:", "a:b/c", "file:///etc/x", "https://u:p@h:1/p?q=/?#f/?", "x://[v7.a:b]"):
        assert is_uri(good), good
    for bad in ("", "://a", "1a:b", "a", "https://h/%zz", "https://[::1/", "https://h/\\", "https://h/ü"):
        assert not is_uri(bad), bad
