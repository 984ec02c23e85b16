"""Test credentials for the email (Resend) and SMS (Twilio) providers, and the fixture that configures them."""

from __future__ import annotations

import pytest

RESEND_KEY = "re_test_key_0123456789"
SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-for-tests"
FROM_NUMBER = "+15005550006"
EMAIL_FROM = "TattleHash <notify@tattlehash.test>"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
def providers(env_vars: dict[str, str]) -> dict[str, str]:
    """Both providers configured (their HTTP APIs are mocked by each test with pytest-httpx)."""
    env_vars.update(
        RESEND_API_KEY=RESEND_KEY,
        EMAIL_FROM=EMAIL_FROM,
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        TWILIO_FROM_NUMBER=FROM_NUMBER,
    )
    return env_vars
