"""Relay building blocks without the network: URL rules, Standard Webhooks signing, backoff, Retry-After, templates."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from challenges.store import Parties
from core.errors import ApiError
from relay import delivery, notify, signing
from relay.webhooks import validate_url

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "only https"),
        ("file:///etc/passwd", "only https"),
        ("ftp://example.com/hook", "only https"),
        ("data:text/plain,hi", "only https"),
        ("http://example.com/hook", "only https"),
        ("http://169.254.169.254/latest/meta-data/", "only https"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://10.0.0.1/", "private"),
        ("https://172.16.5.4/", "private"),
        ("https://192.168.1.1/hook", "private"),
        ("https://[fc00::1]/", "private"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://127.0.0.1/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://2130706433/", "loopback"),
        ("https://0x7f.0.0.1/", "loopback"),
        ("https://127.1/", "loopback"),
        ("https://169.254.10.10/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://100.64.0.1/", "non-public"),
        ("https://224.0.0.1/", "non-public"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https://localhost/hook", "local"),
        ("https://api.localhost/hook", "local"),
        ("https://metadata.google.internal/", "local"),
        ("https://intranet/hook", "fully qualified"),
        ("https:///no-host", "host"),
        ("https://exa mple.com/", "spaces"),
        ("https://exämple.com/", "non-ASCII"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com:0/", "port 0"),
        ("https://1.2.3.08/", "invalid host"),
        ("https://-bad-.example.com/", "invalid host"),
        ("https://example.com/" + "a" * 2040, "longer than 2048"),
        ("", "required"),
    ],
)
def test_bad_urls_are_e6001_with_the_rule(url, reason):
    with pytest.raises(ApiError) as raised:
        validate_url(url, allow_insecure=False)
    assert raised.value.code == "E6001"
    assert reason in raised.value.details["reason"]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://hooks.example.co.uk:8443/a/b?c=d",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
        "HTTPS://Example.COM/Hook",
        "https://example.com/" + "a" * 2028,  # exactly 2048 characters
    ],
)
def test_public_https_urls_are_accepted(url):
    assert validate_url(url) == url


def test_insecure_localhost_only_when_allowed():
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:3000/hook", "https://127.0.0.1/hook"):
        with pytest.raises(ApiError):
            validate_url(url, allow_insecure=False)
        assert validate_url(url, allow_insecure=True) == url
    # The development exception covers exactly those two hosts, nothing else that is private or plain http.
    for url in ("http://10.0.0.1/", "http://example.com/", "http://[::1]/", "https://192.168.0.1/"):
        with pytest.raises(ApiError):
            validate_url(url, allow_insecure=True)


def test_secret_format_and_signature_match_the_standard_webhooks_library():
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:], validate=True)) == 24
    assert signing.new_secret() != secret
    body = json.dumps({"type": "challenge.created", "timestamp": "t", "data": {"x": "ü"}}, ensure_ascii=False).encode()
    timestamp = int(datetime.now(UTC).timestamp())
    headers = signing.headers(secret, "msg_abc", timestamp, body)
    assert headers["webhook-id"] == "msg_abc" and headers["webhook-timestamp"] == str(timestamp)
    # The reference implementation accepts it...
    assert Webhook(secret).verify(body, headers)["data"] == {"x": "ü"}
    # ...and computes the same value by hand: HMAC-SHA256(base64decode(secret), "id.timestamp.body").
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"msg_abc.{timestamp}.".encode() + body, hashlib.sha256).digest())
    assert headers["webhook-signature"] == "v1," + expected.decode()
    assert signing.verify(secret, "msg_abc", timestamp, body, "v0,xyz " + headers["webhook-signature"])
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!", "abc"])
def test_unusable_secrets_are_refused(secret):
    with pytest.raises(ValueError):
        signing.secret_key(secret)


def test_backoff_follows_the_schedule_with_bounded_jitter():
    expected = [60, 300, 1800, 7200, 18000, 36000, 36000]
    assert delivery.MAX_ATTEMPTS == 8
    for attempt, base in enumerate(expected, start=1):
        delays = {delivery.backoff(attempt) for _ in range(50)}
        assert all(base * 0.9 <= delay <= base * 1.1 for delay in delays)
        assert len(delays) > 1  # jittered, so retries of many deliveries don't arrive in lockstep
    assert delivery.backoff(8) is None


def test_retry_after_is_honoured_but_never_shortens_the_backoff_and_is_capped():
    assert delivery.retry_after_seconds("120", NOW) == 120
    assert delivery.retry_after_seconds(format_datetime(NOW + timedelta(hours=2), usegmt=True), NOW) == 7200
    assert delivery.retry_after_seconds(format_datetime(NOW - timedelta(hours=2), usegmt=True), NOW) == 0
    assert delivery.retry_after_seconds("99999999999999999999", NOW) == delivery.RETRY_AFTER_CAP_SECONDS
    for garbage in (None, "", "soon", "-5", "1.5e9", "Mon, 99 Foo 2026", "\u00b2", "Fri, 31 Dec 99999 23:59:59 GMT"):
        assert delivery.retry_after_seconds(garbage, NOW) is None
    assert 3600 <= delivery.backoff(1, 3600) <= 3600  # longer than the 1-minute step: wait as asked
    assert 54 <= delivery.backoff(1, 5) <= 66  # shorter: the schedule still applies


def test_timeout_setting_reads_fractions_and_falls_back():
    from core.config import Env

    assert delivery.timeout_setting(Env({"T": "0.5"}), "T", 10) == 0.5
    assert delivery.timeout_setting(Env({"T": "nan"}), "T", 10) == 10
    assert delivery.timeout_setting(Env({"T": "-1"}), "T", 10) == 10
    assert delivery.timeout_setting(Env({"T": "999"}), "T", 10) == 30
    assert delivery.timeout_setting(Env({}), "T", 10) == 10


def test_clean_text_keeps_one_printable_line():
    assert delivery.clean_text("a\x00b\n\tc\x1b[31m  d") == "a b c [31m d"
    assert len(delivery.clean_text("x" * 1000, 50)) == 50


def test_every_notified_event_has_a_template_and_escapes_user_text():
    assert set(notify.AUDIENCE) == set(notify.TEMPLATES)
    title = '<script>alert("x")</script> & <b>'
    for name in notify.TEMPLATES:
        message = notify.render(name, title, {"reason": "<i>r</i>", "outcome": "DRAW"}, "cid", "https://t.test")
        assert "<script>" not in message.html and "<i>" not in message.html and "<b>" not in message.html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in message.html
        assert title in message.text  # plain text carries it as is: nothing interprets it there
        assert "\n" not in message.subject and len(message.sms) <= 160


def test_line_breaks_in_titles_cannot_add_header_lines():
    message = notify.render("challenge.accepted", "Deal\r\nBcc: victim@example.com", {}, "cid", "")
    assert "\r" not in message.subject and "\n" not in message.subject
    assert message.subject == "Challenge accepted: Deal Bcc: victim@example.com"


def test_recipients_follow_the_spec_table():
    challenge = Parties("x", "c", "p")
    assert notify.recipients("challenge.invitation_sent", challenge) == ["p"]
    assert notify.recipients("challenge.accepted", challenge) == ["c"]
    for name in ("intent_locked", "completed", "cancelled", "expired", "disputed"):
        assert notify.recipients(f"challenge.{name}", challenge) == ["c", "p"]
    for name in ("challenge.created", "challenge.gatekeeper_verification_required", "wallet.verified"):
        assert notify.recipients(name, challenge) == []
    assert notify.recipients("challenge.completed", Parties("x", "c", None)) == ["c"]
    assert notify.recipients("challenge.completed", None) == []
