"""Life-Pay test configuration: three aliases (A1Lite v2.0, A1Lite v1.0, ECOM)
and the emulator's three services, added with ``settings`` per test, never in
tests/settings.py."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TESTSERVER = "http://testserver"

KEY_V2 = "8IR+noSkM/EMr8LNd1JjJd22ltodr6xeIrOImyywNNU="
KEY_V1 = "v1+PublicKey/canary=="
SECRET = "lp_secret_canary_7d21+/="
SECRET_V1 = "lp_secret_v1_canary_19c4"
SECRET_ECOM = "lp_secret_ecom_canary_5e0b"
API_KEY = "lp_api_canary_31a0"

SERVICES = {"lifepay": 80715, "lifepay_v1": 80716, "lifepay_ecom": 80717}


def fixture(name: str) -> Any:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text


def provider_options(base: str = TESTSERVER) -> dict[str, dict[str, Any]]:
    partner = f"{base}/emulator/lifepay/"
    return {
        "lifepay": {
            "BACKEND": "django_payments_ru.providers.lifepay.Provider",
            "OPTIONS": {
                "surface": "a1lite",
                "service_id": SERVICES["lifepay"],
                "key": KEY_V2,
                "secret_key": SECRET,
                "signature_version": "2.0",
                "webhook_url": f"{base}/payments/webhooks/lifepay/",
                "partner_url": partner,
            },
        },
        "lifepay_v1": {
            "BACKEND": "django_payments_ru.providers.lifepay.Provider",
            "OPTIONS": {
                "surface": "a1lite",
                "service_id": SERVICES["lifepay_v1"],
                "key": KEY_V1,
                "secret_key": SECRET_V1,
                "signature_version": "1.0",
                "webhook_url": f"{base}/payments/webhooks/lifepay_v1/",
                "partner_url": partner,
            },
        },
        "lifepay_ecom": {
            "BACKEND": "django_payments_ru.providers.lifepay.Provider",
            "OPTIONS": {
                "surface": "ecom",
                "service_id": SERVICES["lifepay_ecom"],
                "secret_key": SECRET_ECOM,
                "api_key": API_KEY,
                "signature_version": "2.0",
                "webhook_url": f"{base}/payments/webhooks/lifepay_ecom/",
                "partner_url": partner,
                "api_url": f"{partner}v1/",
            },
        },
    }


def emulator_services(base: str = TESTSERVER) -> list[dict[str, Any]]:
    return [
        {
            "service_id": SERVICES["lifepay"],
            "key": KEY_V2,
            "secret_key": SECRET,
            "signature_version": "2.0",
            "webhook_url": f"{base}/payments/webhooks/lifepay/",
        },
        {
            "service_id": SERVICES["lifepay_v1"],
            "key": KEY_V1,
            "secret_key": SECRET_V1,
            "signature_version": "1.0",
            "webhook_url": f"{base}/payments/webhooks/lifepay_v1/",
        },
        {
            "service_id": SERVICES["lifepay_ecom"],
            "secret_key": SECRET_ECOM,
            "api_key": API_KEY,
            "signature_version": "2.0",
            "webhook_url": f"{base}/payments/webhooks/lifepay_ecom/",
        },
    ]


def add_lifepay(settings: Any, base: str = TESTSERVER) -> None:
    config = copy.deepcopy(settings.PAYMENTS_RU)
    config["PROVIDERS"].update(provider_options(base))
    settings.PAYMENTS_RU = config
    emulator = copy.deepcopy(getattr(settings, "PAYMENTS_RU_EMULATOR", {}))
    emulator["lifepay"] = {"services": emulator_services(base)}
    settings.PAYMENTS_RU_EMULATOR = emulator


@pytest.fixture
def lifepay(settings: Any) -> Any:
    """The three Life-Pay aliases on the test client's host."""
    add_lifepay(settings)
    return settings
