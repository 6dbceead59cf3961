"""The reference's test vectors (lifepay.md §4 and §6.4), reproduced exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from django_payments_ru.providers.lifepay.signature import (
    V1_NOTIFICATION_FIELDS,
    canonical_query,
    host_and_path,
    rfc3986,
    sign_notification,
    sign_v1_notification,
    sign_v2,
    string_to_sign,
)

from .conftest import fixture

VECTORS = fixture("vectors.json")


def test_request_check_v2():
    vector = VECTORS["request_v2"]
    assert (
        string_to_sign(vector["method"], vector["url"], vector["params"])
        == vector["string_to_sign"]
    )
    assert (
        sign_v2(vector["secret"], vector["method"], vector["url"], vector["params"])
        == vector["check"]
    )


def test_request_check_ignores_check_and_mac():
    vector = VECTORS["request_v2"]
    params = {**vector["params"], "check": "x", "mac": "y"}
    assert sign_v2(vector["secret"], "POST", vector["url"], params) == vector["check"]


def _v1_fields() -> dict[str, str]:
    values = VECTORS["notification_v1"]["values"].split("|")
    return dict(zip(V1_NOTIFICATION_FIELDS, values, strict=True))


def test_notification_check_v1():
    vector = VECTORS["notification_v1"]
    assert sign_v1_notification(vector["secret"], _v1_fields()) == vector["check"]
    assert (
        sign_notification("1.0", vector["secret"], "", _v1_fields())
        == (vector["check"])
    )


def test_notification_check_v2():
    vector = VECTORS["notification_v2"]
    fields = {**_v1_fields(), **vector["extra"]}
    assert (
        sign_notification("2.0", vector["secret"], vector["webhook_url"], fields)
        == vector["check"]
    )


def test_encoding_is_rfc3986_with_upper_case_hex():
    assert rfc3986("a b+c/d~e_f.g-h") == "a%20b%2Bc%2Fd~e_f.g-h"
    assert rfc3986("Маракуя") == "%D0%9C%D0%B0%D1%80%D0%B0%D0%BA%D1%83%D1%8F"
    assert canonical_query({"b": "", "a": "1"}) == "a=1&b="


def test_host_keeps_a_non_default_port_only():
    assert host_and_path("https://Partner.Life-Pay.ru:443/alba/input/") == (
        "partner.life-pay.ru",
        "/alba/input/",
    )
    assert host_and_path("http://127.0.0.1:8000/x/alba/input/") == (
        "127.0.0.1:8000",
        "/x/alba/input/",
    )


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12)))
def test_canonical_query_is_order_independent(params):
    reordered = dict(reversed(list(params.items())))
    assert canonical_query(params) == canonical_query(reordered)
