"""No secret survives a provider that echoes it back.

Every configured alias (sandbox, payconnect, the three Life-Pay aliases) gets a
distinct canary in each of its secret options and talks to a local server that
plays a hostile provider: every answer, whatever its status, repeats the
alias's secrets and the tokens it issued, in the error body (code, message,
nested details), in the headers and in URLs (a redirect's ``Location``, a
``docs_url``). The services then drive every operation the alias supports
(start, status, refund, cancel, capture, release, the provider's extras)
against every kind of failure (4xx, 401/498 token rejections, 429 beyond the
allowed wait, 5xx with retries, a redirect, an HTTP 200 carrying an error, a
non-JSON body, an unknown status, a timeout, a dropped connection), and the
admin renders the results. Then nothing may mention a canary: no log record
of any logger (urllib3's included, at DEBUG), no exception (``str``,
``repr``, ``args``, every attribute, the chained ones, the formatted
traceback), no text or JSON column of any model, no admin page.
"""

from __future__ import annotations

import html
import json
import logging
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import quote, quote_plus

import jwt
import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import models
from django.urls import reverse

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.models import Invoice, WebhookEvent
from django_payments_ru.providers.base import BaseProvider, Capability
from django_payments_ru.registry import get_provider
from tests.helpers import event, payment_object, post_webhook, webhook_body
from tests.local_http import LocalServer, exception_texts, record_texts
from tests.providers.lifepay import conftest as lifepay
from tests.providers.payconnect import cases as payconnect

pytestmark = pytest.mark.django_db(transaction=True)

ALIASES = ["sandbox", "payconnect", "lifepay", "lifepay_v1", "lifepay_ecom"]

SANDBOX_PREVIOUS = "whsec_sandbox_prev_canary_31d5"


def provider_entries(base: str) -> dict[str, dict[str, Any]]:
    """Every alias, each secret option a distinct canary, every API at ``base``
    (one path prefix per alias, so the server knows whose secrets to echo)."""
    from django.conf import settings

    life = lifepay.provider_options(base)
    extra = {
        "lifepay": ("lp_prev_a1lite_canary_0c11", "lp_api_a1lite_canary_77c2"),
        "lifepay_v1": ("lp_prev_v1_canary_2b90", "lp_api_v1_canary_1e0d"),
        "lifepay_ecom": ("lp_prev_ecom_canary_c3aa", lifepay.API_KEY),
    }
    for alias, (previous, api_key) in extra.items():
        options = life[alias]["OPTIONS"]
        options["partner_url"] = f"{base}/{alias}/"
        options["previous_secret_keys"] = [previous]
        options["api_key"] = api_key
    life["lifepay_ecom"]["OPTIONS"]["api_url"] = f"{base}/lifepay_ecom/v1/"
    return {
        "sandbox": {
            "BACKEND": "django_payments_ru.providers.sandbox.Provider",
            "OPTIONS": {
                "base_url": f"{base}/sandbox/",
                "api_key": settings.SANDBOX_API_KEY,
                "webhook_secret": settings.SANDBOX_WEBHOOK_SECRET,
                "previous_webhook_secrets": [SANDBOX_PREVIOUS],
            },
        },
        "payconnect": payconnect.provider_config(
            api_url=f"{base}/payconnect/v1/",
            previous_secret_keys=["sk_test_prev_canary_payconnect_0a9e"],
            requests_per_minute=None,
        ),
        **life,
    }


def option_secrets(provider: BaseProvider) -> list[str]:
    values: list[str] = []
    for name in provider.secret_option_names():
        value = provider.config.get(name)
        values += list(value) if isinstance(value, list | tuple) else [value]
    return values


# --- a provider that echoes everything ------------------------------------------


class EchoServer(LocalServer):
    """Answers every call with the calling alias's secrets and tokens in it.

    ``mode`` says how the next calls fail (an HTTP status, or one of the names
    in :data:`MODES`); token endpoints answer with a fresh token (a canary
    too) unless ``auth_mode`` makes them fail as well."""

    def __init__(self) -> None:
        self.secrets: dict[str, list[str]] = {}
        self.tokens: dict[str, list[str]] = {}
        self.mode: int | str = 400
        self.auth_mode: int | str = "ok"
        self.calls: list[str] = []
        super().__init__()

    @property
    def url(self) -> str:
        return self.root

    def canaries(self) -> set[str]:
        values = {s for secrets in self.secrets.values() for s in secrets}
        return values | {t for tokens in self.tokens.values() for t in tokens}

    def _token(self, alias: str) -> str:
        with self._lock:
            number = len(self.tokens.setdefault(alias, []))
            if alias == "lifepay_ecom":  # lifepay.md §11.1: a JWT
                claims = {"exp": int(time.time()) + 3600, "n": number}
                # A key of 32 bytes, as RFC 7518 section 3.2 asks for HS256.
                key = f"canary-signing-key-{number}".ljust(32, "-")
                token = jwt.encode(claims, key, algorithm="HS256")
            else:
                token = f"tok_{alias}_canary_{number}_{uuid.uuid4().hex[:6]}"
            self.tokens[alias].append(token)
        return token

    def respond(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        alias = path.split("/")[1]
        self.calls.append(f"{handler.command} {path}")
        auth = path.rstrip("/").endswith(("/auth/token", "/v1/auth"))
        mode = self.auth_mode if auth else self.mode
        if auth and mode == "ok":
            token = self._token(alias)
            self.send(
                handler,
                200,
                {"access_token": token, "jwt": token, "expires_in": 3600},
            )
            return
        secrets = self.secrets.get(alias, [])
        tokens = self.tokens.get(alias, [])
        first = secrets[0] if secrets else ""
        echo = " ".join(
            [
                *secrets,
                *tokens,
                handler.headers.get("Authorization", ""),
                path,
                body.decode("utf-8", "replace"),
            ]
        )
        headers = {
            "X-Echo": first,
            "WWW-Authenticate": f'Bearer error="invalid_token", token="{echo[:500]}"',
            "Set-Cookie": f"key={quote(first, safe='')}",
            "Location": f"http://evil.example/back?key={quote_plus(first)}",
        }
        envelope = {
            "error": {
                "code": f"code-{first}",
                "message": f"echo: {echo}",
                "param": first,
                "docs_url": f"https://docs.example/e?key={quote(first, safe='')}",
                "nested": {"values": [echo, {"deep": secrets}]},
            },
            "status": "error",
            "code": f"code-{first}",
            "msg": echo,
            "message": echo,
        }
        if mode == "hang":
            self.release.wait(1.0)
            handler.close_connection = True
            return
        if mode == "drop":
            handler.close_connection = True
            return
        if mode == "garbage":
            self.send(handler, 200, f"<html>{echo}</html>", headers, "text/html")
        elif mode == "text400":
            self.send(handler, 400, f"Bad request: {echo}", headers, "text/plain")
        elif mode == "error200":
            self.send(handler, 200, envelope, headers)
        elif mode == "auth200":  # Life-Pay's alba auth error (HTTP 200)
            self.send(handler, 200, {**envelope, "code": "auth"}, headers)
        elif mode == "unknown":  # a payment in a status nobody documented
            payment = {
                "id": str(uuid.uuid4()),
                "status": echo,
                "transaction_status": echo,
                "amount": "100.00",
                "currency": "RUB",
            }
            self.send(handler, 200, payment, headers)
        else:
            status = int(mode)
            if status == 429:
                headers["Retry-After"] = "600"  # longer than we may wait
            self.send(handler, status, envelope, headers)


#: How the provider fails, for every operation.
MODES: list[int | str] = [
    400,
    401,
    403,
    404,
    409,
    422,
    429,
    498,
    500,
    503,
    302,
    "text400",
    "error200",
    "auth200",
    "garbage",
    "hang",
    "drop",
]
#: How a token endpoint fails.
AUTH_MODES: list[int | str] = [400, 401, 500, "error200", "garbage"]


@pytest.fixture
def echo(settings: Any, caplog: pytest.LogCaptureFixture) -> Iterator[EchoServer]:
    server = EchoServer()
    server.start()
    entries = provider_entries(server.url)
    settings.PAYMENTS_RU = {
        "PROVIDERS": entries,
        "BASE_URL": "http://testserver",
        "WEBHOOK_PROCESSING": "sync",
        "HTTP_TIMEOUT": (1.0, 0.2),
        "HTTP_RETRIES": 1,  # one retry, without a backoff wait
        "HTTP_MAX_RETRY_AFTER": 1.0,
    }
    settings.CACHES = payconnect.fresh_caches()
    for alias in entries:
        server.secrets[alias] = option_secrets(get_provider(alias))
    caplog.set_level(logging.DEBUG)
    try:
        yield server
    finally:
        server.stop()


def test_every_secret_option_of_every_alias_is_a_distinct_canary(
    echo: EchoServer,
) -> None:
    seen: list[str] = []
    for alias in ALIASES:
        provider = get_provider(alias)
        assert provider.secret_option_names(), alias
        for name in provider.secret_option_names():
            value = provider.config.get(name)
            values = list(value) if isinstance(value, list | tuple) else [value]
            assert values, f"seed PAYMENTS_RU[{alias!r}][{name!r}] with a canary"
            for item in values:
                assert isinstance(item, str) and "canary" in item, (alias, name)
                seen.append(item)
        assert sorted(provider.secrets()) == sorted(echo.secrets[alias])
    assert len(seen) == len(set(seen)), "every canary is distinct"


# --- where a secret could end up ------------------------------------------------


def forms_of(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        quote(secret),
        json.dumps(secret)[1:-1],
        html.escape(secret),
    }


class Canaries:
    def __init__(self, server: EchoServer) -> None:
        self.server = server

    def found(self, text: str) -> set[str]:
        return {
            secret
            for secret in self.server.canaries()
            if any(form in text for form in forms_of(secret))
        }

    def assert_clean(self, where: str, text: str) -> None:
        hits = self.found(text)
        assert not hits, f"{where} mentions {sorted(hits)}: {text[:3000]}"


def stored_texts() -> Iterator[tuple[str, str]]:
    """Every text and JSON column of every model, row by row."""
    kinds = (models.CharField, models.TextField, models.JSONField)
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, kinds)]
        if not names:
            continue
        for row in model._default_manager.values_list(*names):
            yield model._meta.label, json.dumps(row, default=str, ensure_ascii=False)


def admin_pages(client: Any) -> Iterator[tuple[str, str]]:
    """The changelist and every change page of the app's admin models."""
    for model, _model_admin in admin.site._registry.items():
        if model._meta.app_label != "django_payments_ru":
            continue
        info = model._meta.app_label, model._meta.model_name
        url = reverse("admin:{}_{}_changelist".format(*info))
        yield url, page(client, url)
        for pk in model._default_manager.values_list("pk", flat=True)[:40]:
            url = reverse("admin:{}_{}_change".format(*info), args=[pk])
            yield url, page(client, url)


def page(client: Any, url: str, **kwargs: Any) -> str:
    method = client.post if "data" in kwargs else client.get
    response = method(url, follow=True, **kwargs)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


# --- driving the operations ---------------------------------------------------------


def new_invoice(alias: str) -> Invoice:
    return services.create_invoice(
        provider=alias,
        amount="100.00",
        order_id=f"canary-{uuid.uuid4().hex[:12]}",
        description="Canary order",
        customer_email="customer@example.com",
    )


def in_state(alias: str, kind: EventType | None) -> Invoice:
    """A new invoice, moved to ``kind`` by a verified event with a provider
    payment id (a UUID: Life-Pay ECOM ids are UUIDs)."""
    invoice = new_invoice(alias)
    if kind is not None:
        services.apply_event(
            event(invoice, kind, provider_payment_id=str(uuid.uuid4()))
        )
        invoice.refresh_from_db()
    return invoice


def operations(provider: BaseProvider) -> list[tuple[str, EventType | None, Any]]:
    """(name, state the invoice needs, the call) for what ``provider`` does."""
    ops: list[tuple[str, EventType | None, Any]] = [
        ("start", None, services.start_payment)
    ]
    if provider.supports(Capability.STATUS):
        ops.append(("refresh", EventType.PENDING, services.refresh_invoice))
    if provider.supports(Capability.REFUND):
        ops.append(("refund", EventType.PAID, services.refund_invoice))
    if provider.supports(Capability.CANCEL):
        ops.append(("cancel", EventType.PENDING, services.cancel_invoice))
    if provider.supports(Capability.HOLD):
        ops.append(("capture", EventType.HELD, services.capture_invoice))
        ops.append(("release", EventType.HELD, services.release_invoice))
    if hasattr(provider, "cancel_recurrent") and provider.supports(
        Capability.RECURRENT
    ):
        ops.append(
            ("cancel_recurrent", None, lambda i: provider.cancel_recurrent("rec-1"))
        )
    if hasattr(provider, "update_invoice") and provider.config.get("surface") == (
        "ecom"
    ):
        ops.append(
            (
                "update_invoice",
                EventType.PENDING,
                lambda i: provider.update_invoice(i, email="new@example.com"),
            )
        )
    return ops


def run(errors: list[BaseException], what: str, call: Any, invoice: Invoice) -> None:
    try:
        call(invoice)
    except Exception as exc:  # every error is kept, to be searched
        exc.add_note(f"while: {what}")
        errors.append(exc)


@pytest.mark.parametrize("alias", ALIASES)
def test_no_canary_anywhere(
    alias: str, echo: EchoServer, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    canaries = Canaries(echo)
    provider = get_provider(alias)
    errors: list[BaseException] = []
    ops = operations(provider)
    for name, state, call in ops:
        for mode in [*MODES, *(["unknown"] if name == "refresh" else [])]:
            echo.mode = mode
            run(errors, f"{alias} {name} {mode}", call, in_state(alias, state))

    # The token endpoints fail too (nothing cached: every call asks anew).
    if alias in ("payconnect", "lifepay_ecom"):
        echo.mode = 400
        for mode in AUTH_MODES:
            echo.auth_mode = mode
            caches["default"].clear()
            for name, state, call in ops:
                run(errors, f"{alias} {name} auth {mode}", call, in_state(alias, state))
        echo.auth_mode = "ok"

    # The provider was called, and its answers did carry the canaries.
    assert len(echo.calls) > len(MODES), echo.calls
    assert errors
    assert any("[redacted]" in str(e) for e in errors)

    # A signed webhook (with the current and the previous secret) and a forged
    # one, so that the inbox and its admin pages have rows.
    if alias == "sandbox":
        from django.conf import settings

        for secret in (settings.SANDBOX_WEBHOOK_SECRET, SANDBOX_PREVIOUS):
            invoice = in_state(alias, EventType.PENDING)
            body = webhook_body(payment_object(invoice, "succeeded"))
            assert post_webhook(client, body, secret=secret).status_code == 200
        forged = webhook_body(payment_object(new_invoice(alias), "succeeded"))
        assert post_webhook(client, forged, secret="wrong").status_code == 400
        assert WebhookEvent.objects.count() >= 2

    # The admin: its buttons call the provider and show the errors.
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    client.force_login(user)
    echo.mode = 400
    shown: list[tuple[str, str]] = []
    base = "/admin/django_payments_ru/invoice"
    created = new_invoice(alias)
    shown.append(
        ("start", page(client, f"{base}/{created.pk}/operation/start/", data={}))
    )
    if provider.supports(Capability.STATUS):
        pending = in_state(alias, EventType.PENDING)
        url = f"{base}/{pending.pk}/operation/refresh/"
        shown.append(("refresh", page(client, url, data={})))
    if provider.supports(Capability.REFUND):
        paid = in_state(alias, EventType.PAID)
        url = f"{base}/{paid.pk}/refund/"
        shown.append(("refund form", page(client, url)))
        shown.append(("refund", page(client, url, data={"amount": "10.00"})))
    if provider.supports(Capability.HOLD):
        held = in_state(alias, EventType.HELD)
        url = f"{base}/{held.pk}/operation/capture/"
        shown.append(("capture", page(client, url, data={})))
    assert any("[redacted]" in html.unescape(text) for _, text in shown), (
        "the admin shows the provider's (redacted) answers"
    )

    # --- the search ---------------------------------------------------------------
    unexpected = [f"{type(e).__name__}: {e}" for e in errors if not _typed(e)]
    assert not unexpected, unexpected
    for error in errors:
        for text in exception_texts(error):
            canaries.assert_clean(f"{type(error).__name__} ({error.__notes__})", text)
    for record in caplog.records:
        for text in record_texts(record):
            canaries.assert_clean(f"log record of {record.name}", text)
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    for label, text in stored_texts():
        canaries.assert_clean(f"a {label} row", text)
    for what, text in shown:
        canaries.assert_clean(f"the admin's {what} page", text)
        canaries.assert_clean(f"the admin's {what} page", html.unescape(text))
    for url, text in admin_pages(client):
        canaries.assert_clean(url, text)
        canaries.assert_clean(url, html.unescape(text))


def _typed(error: BaseException) -> bool:
    from django_payments_ru.exceptions import PaymentsError

    return isinstance(error, PaymentsError)


def test_the_redaction_is_one_root_for_errors_built_by_hand() -> None:
    """BaseProvider.provider_error and PaymentsError.redact: every text, at any
    depth, and the chain."""
    from django_payments_ru.exceptions import ProviderAPIError

    secret = "sk_root_canary_9f+/="
    provider = get_provider("sandbox")
    provider.config = {**provider.config, "api_key": secret}
    try:
        raise ValueError(f"transport said {secret}")
    except ValueError as low:
        cause = low
    error = provider.provider_error(
        ProviderAPIError,
        f"refused {quote(secret, safe='')}",
        code=f"c-{secret}",
        provider_message=f"echo {quote_plus(secret)}",
        details={"a": [secret, {"b": (secret, 1, None)}], secret: Decimal("1")},
    )
    error.__cause__ = ProviderAPIError(f"inner {secret}")
    error.__context__ = cause
    error.redact(provider.redact)
    texts = list(exception_texts(error))
    assert texts and not [t for t in texts if secret in t or quote(secret) in t]
    assert error.details == {
        "a": ["[redacted]", {"b": ("[redacted]", 1, None)}],
        "[redacted]": Decimal("1"),
    }
    assert error.__context__ is None  # a foreign exception that told the secret
    assert error.__cause__ is not None and "[redacted]" in str(error.__cause__)
