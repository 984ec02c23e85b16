"""format "siwe": the challenge is an EIP-4361 message that the reference parser (`siwe`) accepts field by field."""

from __future__ import annotations

import tomllib
import warnings

import pytest

from chain.address import to_checksum_address
from core.clock import parse_time
from gatekeeper.messages import SIWE_STATEMENT, domain_allowed, is_local_domain, normalize_domain, normalize_uri
from local.config import PROJECT_ROOT, parse_dotenv
from tests.test_wallet_support import (
    CHALLENGE,
    KEY_ALICE,
    address_of,
    create,
    sign,
    verify,
    wallet_env,  # noqa: F401 (autouse fixture)
)

with warnings.catch_warnings():
    # siwe's grammar restates RFC 5234 core rules, which abnf warns about; harmless here.
    warnings.simplefilter("ignore")
    from siwe import SiweMessage

ALICE = address_of(KEY_ALICE)


def parse(text: str) -> SiweMessage:
    return SiweMessage.from_message(text, abnf=True)


async def test_siwe_message_parses_and_its_fields_match(client, services):
    body = await create(client, format="siwe", domain="tattlehash.test")

    message = parse(body["message"])

    assert message.domain == "tattlehash.test"
    assert message.address == to_checksum_address(ALICE)
    assert message.statement == SIWE_STATEMENT
    assert message.uri == "https://tattlehash.test"
    assert message.version == "1"
    assert message.chain_id == 1
    assert message.nonce == body["nonce"]
    assert message.issued_at == body["issued_at"]
    assert message.expiration_time == body["expires_at"]
    assert message.request_id == body["challenge_id"]
    assert message.not_before is None
    assert message.resources is None
    row = await services.db.prepare("SELECT format, message FROM wallet_challenges").first()
    assert row == {"format": "siwe", "message": body["message"]}


async def test_siwe_regex_parser_agrees(client):
    body = await create(client, format="siwe", domain="tattlehash.test")
    assert SiweMessage.from_message(body["message"], abnf=False) == parse(body["message"])


async def test_siwe_with_port_uri_and_chain(client, env_vars):
    env_vars["RPC_URL_LOCAL"] = "http://127.0.0.1:8545"
    uri = "http://localhost:8787/login?next=%2Fhome#top"

    body = await create(client, chain_id="eip155:31337", format="siwe", domain="LocalHost:8787", uri=uri)

    message = parse(body["message"])
    assert message.domain == "localhost:8787"
    assert message.uri == uri
    assert message.chain_id == 31337


async def test_signed_siwe_challenge_verifies(client):
    body = await create(client, format="siwe", domain="tattlehash.test")
    response = await verify(client, body["challenge_id"], sign(body["message"], KEY_ALICE))
    assert response.status == 200
    assert response.json()["wallet_address"] == ALICE.lower()


async def test_the_siwe_library_itself_accepts_our_signature(client):
    body = await create(client, format="siwe", domain="tattlehash.test")
    signature = sign(body["message"], KEY_ALICE)
    message = parse(body["message"])
    # siwe checks expiry against `timestamp`; the test clock's issue time is inside the window.
    message.verify(signature, domain="tattlehash.test", nonce=body["nonce"], timestamp=parse_time(body["issued_at"]))


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "domain"),
        ({"domain": "evil.example"}, "domain"),
        ({"domain": "tattlehash.test.evil.example"}, "domain"),
        ({"domain": "user@tattlehash.test"}, "domain"),
        ({"domain": "tattlehash.test\nURI: https://evil.example"}, "domain"),
        ({"domain": "tattlehash.test:99999"}, "domain"),
        ({"domain": "-tattlehash.test"}, "domain"),
        ({"domain": "tattlehash.test", "uri": "https://tattlehash.test/\nVersion: 2"}, "uri"),
        ({"domain": "tattlehash.test", "uri": "no-scheme"}, "uri"),
        ({"domain": "tattlehash.test", "uri": "https://tattlehash.test/a b"}, "uri"),
        ({"domain": "tattlehash.test", "uri": "https://tattlehash.test/%zz"}, "uri"),
        ({"domain": "tattlehash.test", "uri": "https://tattlehash.test/ü"}, "uri"),
        ({"domain": "tattlehash.test", "uri": "https://t.test/" + "a" * 2100}, "uri"),
    ],
)
async def test_siwe_refuses_bad_domain_or_uri_with_e9004(client, extra, field):
    response = await client.post(
        CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1", "format": "siwe", **extra}
    )
    assert response.status == 400
    assert response.error_code == "E9004"
    assert [entry["field"] for entry in response.json()["error"]["details"]["fields"]] == [field]


async def test_allowed_domains_come_from_configuration(client, env_vars):
    env_vars["SIWE_ALLOWED_DOMAINS"] = "app.partner.example"
    refused = await client.post(
        CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1", "format": "siwe", "domain": "tattlehash.test"}
    )
    assert refused.error_code == "E9004"
    assert parse((await create(client, format="siwe", domain="app.partner.example"))["message"]).domain == (
        "app.partner.example"
    )


@pytest.mark.parametrize(
    ("domain", "allowed", "expected"),
    [
        ("localhost", "tattlehash.test,localhost", True),
        ("localhost:8787", "localhost", True),
        ("localhost:8787", "localhost:3000", False),
        ("localhost:3000", " localhost:3000 ", True),
        ("sub.tattlehash.test", "tattlehash.test", False),
        ("tattlehash.test", "", False),
    ],
)
def test_domain_allow_list(domain, allowed, expected):
    assert domain_allowed(domain, allowed) is expected


def test_domain_and_uri_normalisation():
    assert normalize_domain(" TattleHash.Test ") == "tattlehash.test"
    for bad in ("a..b", "a b", "user@host", "host:0", "", "ex.com/"):
        with pytest.raises(ValueError):
            normalize_domain(bad)
    assert normalize_uri("https://x.test/login?a=1#b", "x.test") == "https://x.test/login?a=1#b"
    assert normalize_uri("http://127.0.0.1:3000/", "localhost:3000") == "http://127.0.0.1:3000/"
    assert normalize_uri("http://[::1]:3000/", "127.0.0.1") == "http://[::1]:3000/"
    for bad in ("https://x.test/\r/a", "urn:uuid:3f1c2a7e", "https://x.test:0/", "https://x.test:port/"):
        with pytest.raises(ValueError):
            normalize_uri(bad, "x.test")
    assert is_local_domain("localhost:8787") and is_local_domain("127.0.0.1")
    assert not is_local_domain("localhost.evil.example") and not is_local_domain("tattlehash.test")


# Issue 12 item 13: the URI a wallet shows as the sign-in resource is https (http only to a local dev server).
@pytest.mark.parametrize(
    ("domain", "uri"),
    [
        ("tattlehash.test", "javascript:alert(document.cookie)"),
        ("tattlehash.test", "JavaScript://tattlehash.test/%0Aalert(1)"),
        ("tattlehash.test", "file:///etc/passwd"),
        ("tattlehash.test", "data:text/html,hello"),
        ("tattlehash.test", "ftp://tattlehash.test/"),
        ("tattlehash.test", "urn:uuid:3f1c2a7e"),
        ("tattlehash.test", "https:tattlehash.test"),
        ("tattlehash.test", "https://user@tattlehash.test/"),
        ("tattlehash.test", "http://tattlehash.test/login"),
        ("tattlehash.test", "http://localhost:8787/login"),
        ("localhost", "http://evil.example/login"),
        ("localhost", "javascript:alert(1)"),
    ],
)
async def test_siwe_uri_is_https_only_with_http_for_localhost_dev(client, domain, uri):
    response = await client.post(
        CHALLENGE,
        json={"wallet_address": ALICE, "chain_id": "eip155:1", "format": "siwe", "domain": domain, "uri": uri},
    )
    assert (response.status, response.error_code) == (400, "E9004")
    assert [entry["field"] for entry in response.json()["error"]["details"]["fields"]] == ["uri"]


async def test_siwe_http_uri_is_allowed_to_a_local_dev_server(client, env_vars):
    env_vars["SIWE_ALLOWED_DOMAINS"] = "localhost,127.0.0.1"
    for domain, uri in (("localhost:5173", "http://localhost:5173/"), ("127.0.0.1:8787", "http://127.0.0.1:8787/a")):
        assert parse((await create(client, format="siwe", domain=domain, uri=uri))["message"]).uri == uri


def production_vars() -> dict[str, str]:
    return tomllib.loads((PROJECT_ROOT / "wrangler.toml").read_text(encoding="utf-8"))["vars"]


async def test_production_config_refuses_localhost_sign_in(client, env_vars):
    """wrangler.toml's production [vars]: a page on localhost cannot ask a user to sign in to production."""
    env_vars["SIWE_ALLOWED_DOMAINS"] = production_vars()["SIWE_ALLOWED_DOMAINS"]
    for domain in ("localhost", "localhost:8787", "127.0.0.1", "127.0.0.1:3000"):
        response = await client.post(
            CHALLENGE, json={"wallet_address": ALICE, "chain_id": "eip155:1", "format": "siwe", "domain": domain}
        )
        assert (response.status, response.error_code) == (400, "E9004"), domain
        assert response.json()["error"]["details"]["fields"][0]["field"] == "domain"
    own = await create(client, format="siwe", domain="tattlehash.com")
    assert parse(own["message"]).uri == "https://tattlehash.com"


def test_only_dev_and_preview_configs_name_local_domains():
    manifest = tomllib.loads((PROJECT_ROOT / "wrangler.toml").read_text(encoding="utf-8"))
    production = manifest["vars"]["SIWE_ALLOWED_DOMAINS"].split(",")
    assert production and not [entry for entry in production if is_local_domain(entry.strip().lower())]
    example = parse_dotenv((PROJECT_ROOT / ".dev.vars.example").read_text(encoding="utf-8"))
    assert "localhost" in example["SIWE_ALLOWED_DOMAINS"].split(",")
