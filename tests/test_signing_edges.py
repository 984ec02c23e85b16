"""relay.signing at its edges: the Standard Webhooks test vector, secrets that must be refused, rotation headers."""

from __future__ import annotations

import base64

import pytest

from relay import signing

# The Standard Webhooks specification's example: secret, message id, timestamp, payload and signature.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"\x01" * 24).decode()


def test_constants_and_new_secrets() -> None:
    assert (signing.SECRET_PREFIX, signing.SECRET_BYTES) == ("whsec_", 24)
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(secret) == 6 + 32  # 24 bytes of base64: 32 characters, no padding
    assert len(signing.secret_key(secret)) == 24
    assert signing.new_secret() != secret


def test_the_specification_vector() -> None:
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    assert signing.secret_key(VECTOR_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


@pytest.mark.parametrize(
    "secret",
    ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", " whsec_QUJD", "xwhsec_QUJD",
     "whsec", "whse_QUJD", "whsecQUJD", "", "QUJD"],
)  # fmt: skip
def test_a_secret_without_the_whsec_prefix_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match=r"^webhook secret must start with whsec_$"):
        signing.secret_key(secret)
    with pytest.raises(ValueError, match=r"^webhook secret must start with whsec_$"):
        signing.sign(secret, "msg", 1, b"{}")


@pytest.mark.parametrize(
    "encoded",
    # Each decodes "loosely" (non-alphabet characters dropped) to b"ABC" or to nothing; strictly it is invalid.
    ["QU!JD", "QUJD\n", "QU JD", "QUJD-_", "QU_JD", "Q\tUJD", "====", "QUJ", "Q"],
)
def test_invalid_base64_is_refused_even_when_it_decodes_loosely(encoded: str) -> None:
    with pytest.raises(ValueError, match=r"^webhook secret is not valid base64$"):
        signing.secret_key("whsec_" + encoded)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^webhook secret is empty$"):
        signing.secret_key("whsec_")


def test_valid_standard_base64_keys_decode() -> None:
    assert signing.secret_key("whsec_QUJD") == b"ABC"
    assert signing.secret_key("whsec_QUI=") == b"AB"
    assert signing.secret_key("whsec_+/8=") == b"\xfb\xff"
    # The prefix is taken off once: a second one is part of the (here invalid) base64.
    with pytest.raises(ValueError, match=r"^webhook secret is not valid base64$"):
        signing.secret_key("whsec_whsec_QUJD")


def test_headers_for_one_secret_and_for_a_rotation() -> None:
    single = signing.headers(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert single == {
        "content-type": "application/json",
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }
    old = signing.sign(OTHER_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    rotated = signing.headers([VECTOR_SECRET, OTHER_SECRET], VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert rotated["webhook-signature"] == f"{VECTOR_SIGNATURE} {old}"
    assert signing.headers((OTHER_SECRET,), VECTOR_ID, VECTOR_TS, VECTOR_BODY)["webhook-signature"] == old
    assert {key: value for key, value in rotated.items() if key != "webhook-signature"} == {
        key: value for key, value in single.items() if key != "webhook-signature"
    }


def test_every_signed_part_matters() -> None:
    base = signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert signing.sign(VECTOR_SECRET, VECTOR_ID + "x", VECTOR_TS, VECTOR_BODY) != base
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS + 1, VECTOR_BODY) != base
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY + b" ") != base
    assert signing.sign(OTHER_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) != base
    assert base.startswith("v1,")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (VECTOR_SIGNATURE, True),
        (f"v1,bad {VECTOR_SIGNATURE}", True),
        (f"{VECTOR_SIGNATURE}\tv1,other", True),
        (f"  {VECTOR_SIGNATURE}  ", True),
        ("", False),
        ("   ", False),
        ("v1,bad", False),
        (VECTOR_SIGNATURE[3:], False),
        ("v2," + VECTOR_SIGNATURE[3:], False),
        (VECTOR_SIGNATURE + "x", False),
        (VECTOR_SIGNATURE.replace("v1,", "v1, "), False),
    ],
)
def test_verify_accepts_any_matching_v1_signature(header: str, ok: bool) -> None:
    assert signing.verify(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY, header) is ok
    assert signing.verify(OTHER_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY, header) is False
