"""HMAC helpers, constant-time comparison, secret rotation, timestamp windows."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from django_payments_ru.exceptions import WebhookVerificationError
from django_payments_ru.providers.signing import (
    check_timestamp,
    constant_time_equals,
    hmac_sha256,
    hmac_sha256_b64,
    hmac_sha256_hex,
    matches_any,
    sha256_hex,
)

# RFC 4231, test case 2 (HMAC-SHA256).
JEFE = "Jefe"
JEFE_DATA = "what do ya want for nothing?"
JEFE_HEX = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
JEFE_B64 = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM="

# RFC 4231, test case 1: a binary key.
HI_KEY = b"\x0b" * 20
HI_DATA = b"Hi There"
HI_HEX = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"

NOW = 1_700_000_000.0


# --- digests ----------------------------------------------------------------


def test_hmac_hex_rfc4231_case_2():
    assert hmac_sha256_hex(JEFE, JEFE_DATA) == JEFE_HEX
    assert hmac_sha256_hex(JEFE.encode(), JEFE_DATA.encode()) == JEFE_HEX


def test_hmac_hex_rfc4231_case_1_binary_key():
    assert hmac_sha256_hex(HI_KEY, HI_DATA) == HI_HEX
    assert hmac_sha256(HI_KEY, HI_DATA) == bytes.fromhex(HI_HEX)


def test_hmac_b64_rfc4231_case_2():
    assert hmac_sha256_b64(JEFE, JEFE_DATA) == JEFE_B64


def test_str_is_utf8():
    assert hmac_sha256_hex("ключ", "платёж") == hmac_sha256_hex(
        "ключ".encode(), "платёж".encode()
    )


def test_sha256_hex_known_vector():
    # FIPS 180-2, "abc".
    assert sha256_hex("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


# --- comparison ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected", "result"),
    [
        (JEFE_HEX, JEFE_HEX, True),
        (JEFE_HEX.encode(), JEFE_HEX, True),
        (JEFE_HEX, JEFE_HEX.encode(), True),
        (JEFE_HEX[:-1] + "4", JEFE_HEX, False),
        (JEFE_HEX[:-1], JEFE_HEX, False),
        (JEFE_HEX.upper(), JEFE_HEX, False),
        ("", JEFE_HEX, False),
        (None, JEFE_HEX, False),
        ("подпись", "подпись", True),
    ],
)
def test_constant_time_equals(given, expected, result):
    assert constant_time_equals(given, expected) is result


# --- rotation ----------------------------------------------------------------

BODY = b'{"event":"paid","id":"evt_1"}'


def sign(secret: str | bytes) -> str:
    return hmac_sha256_hex(secret, BODY)


def test_matches_any_accepts_old_and_new_secret_during_rotation():
    secrets = ["new-secret", "old-secret"]

    assert matches_any(sign("new-secret"), secrets, sign)
    assert matches_any(sign("old-secret"), secrets, sign)
    assert not matches_any(sign("older-secret"), secrets, sign)


def test_matches_any_after_rotation_drops_the_old_secret():
    assert not matches_any(sign("old-secret"), ["new-secret"], sign)


def test_empty_secret_never_matches():
    # A signature made with an empty key is what anyone can compute.
    assert not matches_any(sign(""), ["", "new-secret"], sign)
    assert not matches_any(sign(b""), [b""], sign)
    assert not matches_any(sign(""), [], sign)


@pytest.mark.parametrize("given", ["", None, b""])
def test_missing_signature_never_matches(given):
    assert not matches_any(given, ["new-secret"], sign)


def test_matches_any_tries_every_secret():
    tried: list[str | bytes] = []

    def compute(secret: str | bytes) -> str:
        tried.append(secret)
        return sign(secret)

    # No early exit on the first match: the timing does not say which matched.
    assert matches_any(sign("a"), ["a", "b", "c"], compute)
    assert tried == ["a", "b", "c"]


# Keys without NUL and at most one block (64 bytes) long: HMAC pads a key with
# zero bytes to the block size ("k" and "k\0" are the same key) and hashes a
# longer one, so outside this space two different strings can be one key.
secret_text = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=16,
)


@given(secret=secret_text, other=secret_text, message=st.binary(max_size=256))
def test_signature_verifies_only_with_its_secret(secret, other, message):
    assume(other != secret)

    def compute(key: str | bytes) -> str:
        return hmac_sha256_hex(key, message)

    signature = compute(secret)
    assert matches_any(signature, [secret], compute)
    assert matches_any(signature, [other, secret], compute)
    assert not matches_any(signature, [other], compute)
    assert not constant_time_equals(signature, compute(other))


# --- timestamps ------------------------------------------------------------


def code_of(value, **kwargs) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        check_timestamp(value, **{"now": NOW, "tolerance": 300, **kwargs})
    return info.value.code


@pytest.mark.parametrize(
    "value",
    [NOW, int(NOW), str(int(NOW)), f" {int(NOW)} ", NOW - 300, NOW + 300, "1.7e9"],
)
def test_timestamp_within_window_is_accepted(value):
    assert check_timestamp(value, now=NOW, tolerance=300) == float(value)


def test_timestamp_window_boundaries():
    assert check_timestamp(NOW - 300, now=NOW, tolerance=300) == NOW - 300
    assert check_timestamp(NOW + 300, now=NOW, tolerance=300) == NOW + 300
    assert code_of(NOW - 300.001) == "stale_timestamp"
    assert code_of(NOW + 300.001) == "future_timestamp"


def test_stale_and_future_timestamps_are_refused():
    assert code_of(NOW - 3600) == "stale_timestamp"
    assert code_of(0) == "stale_timestamp"
    assert code_of(NOW + 3600) == "future_timestamp"


def test_timestamp_in_milliseconds():
    stamp = str(int((NOW - 10) * 1000))

    assert check_timestamp(stamp, now=NOW, tolerance=300, milliseconds=True) == (
        NOW - 10
    )
    # Read as seconds, milliseconds are far in the future.
    assert code_of(stamp) == "future_timestamp"
    assert code_of(int((NOW - 301) * 1000), milliseconds=True) == "stale_timestamp"


@pytest.mark.parametrize("value", [None, ""])
def test_missing_timestamp(value):
    assert code_of(value) == "missing_timestamp"


@pytest.mark.parametrize(
    "value", ["abc", "17000O0000", "nan", "NaN", "inf", "-inf", "1e400", "0x10", "[]"]
)
def test_garbage_timestamp(value):
    assert code_of(value) == "invalid_timestamp"


def test_timestamp_error_is_a_webhook_rejection():
    with pytest.raises(WebhookVerificationError) as info:
        check_timestamp(NOW - 301, now=NOW, tolerance=300)
    assert "too old" in str(info.value)
    assert info.value.http_status == 400
