"""A shared base for tests of a provider client against its emulator over HTTP.

A provider's tests inherit :class:`EmulatorCase`, name the alias, and get a live
server running the app, the emulators and the webhook view; ``PAYMENTS_RU``
pointed at it (every option starting with ``http://testserver`` rewritten to the
live server, ``BASE_URL`` set to it); the invoice signals recorded; and helpers
to start a payment, open the emulated pay page, press its buttons, read the
emulator's webhook deliveries and check where an invoice ended::

    class TestMyProvider(EmulatorCase):
        alias = "myprovider"

        def test_pay(self):
            invoice = self.create_invoice(amount="100.00")
            page = self.open_checkout(self.start(invoice))
            self.press(page, "pay")
            self.assert_invoice(invoice, "paid", charges=1)
            assert self.signals.count("invoice_paid") == 1

Nothing is mocked: the provider calls the emulator through its HTTP client,
and the emulator posts its webhooks to the live server.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any, ClassVar, TypeVar

import pytest
import requests

from django_payments_ru import services
from django_payments_ru.emulator.models import EmulatedPayment, WebhookDelivery
from django_payments_ru.models import Invoice, Payment
from django_payments_ru.providers.base import BaseProvider, Checkout
from django_payments_ru.registry import get_provider
from tests.signals import SignalRecorder

TESTSERVER = "http://testserver"
T = TypeVar("T")


@dataclass
class PayPage:
    """An emulated pay page as a browser sees it."""

    session: requests.Session
    response: requests.Response
    #: Values of the ``action`` buttons, in page order.
    actions: list[str] = field(default_factory=list)
    csrf_token: str = ""
    #: The ``data-status`` the page shows.
    status: str = ""

    @property
    def url(self) -> str:
        return self.response.url

    @property
    def text(self) -> str:
        return self.response.text


class _PayPageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []
        self.csrf_token = ""
        self.status = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") == "csrfmiddlewaretoken":
            self.csrf_token = a.get("value", "")
        elif tag == "button" and a.get("name") == "action":
            self.actions.append(a.get("value", ""))
        if "data-status" in a and not self.status:
            self.status = a["data-status"]


def parse_pay_page(session: requests.Session, response: requests.Response) -> PayPage:
    parser = _PayPageParser()
    parser.feed(response.text)
    return PayPage(session, response, parser.actions, parser.csrf_token, parser.status)


def wait_for(condition: Callable[[], T], timeout: float = 10.0) -> T:
    """``condition()`` once it is truthy, or its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class EmulatorCase:
    """Base class of "provider client against its emulator over HTTP" tests."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [
        pytest.mark.live,
        pytest.mark.django_db(transaction=True),
    ]

    #: The provider alias in ``PAYMENTS_RU["PROVIDERS"]``.
    alias: ClassVar[str] = ""
    #: The emulator's slug (default: the provider class's slug).
    slug: ClassVar[str] = ""
    default_amount: ClassVar[str] = "100.00"
    default_currency: ClassVar[str] = "RUB"

    live_url: str
    signals: SignalRecorder

    # --- set-up -------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _emulated(
        self, transactional_db: None, live_server: Any, settings: Any
    ) -> Iterator[None]:
        # transactional_db comes first: the test database must exist before the
        # session's live server starts, or the server would think the database
        # is SQLite in memory and share one connection among its threads.
        self.live_url = live_server.url
        self._settings = settings
        settings.PAYMENTS_RU = self.payments_settings(
            copy.deepcopy(settings.PAYMENTS_RU), live_server.url
        )
        self.signals = SignalRecorder()
        self.signals.connect()
        try:
            yield
        finally:
            self.signals.disconnect()

    def payments_settings(
        self, config: dict[str, Any], live_url: str
    ) -> dict[str, Any]:
        """``PAYMENTS_RU`` for the test: URL options on ``http://testserver``
        moved to the live server. Override to change a provider's options."""
        for provider in config["PROVIDERS"].values():
            options = provider.get("OPTIONS", {})
            for name, value in options.items():
                if isinstance(value, str) and value.startswith(TESTSERVER):
                    options[name] = live_url + value[len(TESTSERVER) :]
        config["BASE_URL"] = live_url
        return config

    def set_provider_options(self, **options: Any) -> None:
        """Change this alias's OPTIONS for the rest of the test."""
        config = copy.deepcopy(self._settings.PAYMENTS_RU)
        config["PROVIDERS"][self.alias]["OPTIONS"].update(options)
        self._settings.PAYMENTS_RU = config

    def set_emulator(self, **values: Any) -> None:
        """Change ``PAYMENTS_RU_EMULATOR[slug]`` for the rest of the test."""
        config = copy.deepcopy(getattr(self._settings, "PAYMENTS_RU_EMULATOR", {}))
        config.setdefault(self.emulator_slug, {}).update(values)
        self._settings.PAYMENTS_RU_EMULATOR = config

    @property
    def provider(self) -> BaseProvider:
        return get_provider(self.alias)

    @property
    def emulator_slug(self) -> str:
        return self.slug or type(self.provider).slug

    def emulator_url(self, path: str = "") -> str:
        return f"{self.live_url}/emulator/{self.emulator_slug}/{path}"

    # --- invoices -----------------------------------------------------------

    def create_invoice(self, **kwargs: Any) -> Invoice:
        kwargs.setdefault("amount", self.default_amount)
        kwargs.setdefault("currency", self.default_currency)
        kwargs.setdefault("order_id", f"order-{time.monotonic_ns()}")
        kwargs.setdefault("description", "Emulated order")
        return services.create_invoice(provider=self.alias, **kwargs)

    def start(self, invoice: Invoice) -> Checkout:
        return services.start_payment(invoice)

    def emulated(self, invoice: Invoice) -> EmulatedPayment:
        """The emulator's payment for ``invoice`` (by the provider's payment id)."""
        invoice.refresh_from_db()
        return EmulatedPayment.objects.get(
            slug=self.emulator_slug, external_id=invoice.provider_payment_id
        )

    # --- the browser --------------------------------------------------------

    def browser(self, language: str = "en") -> requests.Session:
        session = requests.Session()
        session.headers["Accept-Language"] = language
        return session

    def open_checkout(
        self, checkout: Checkout, session: requests.Session | None = None
    ) -> PayPage:
        """Go where the checkout sends the customer (a GET redirect, or the
        auto-submitted POST form) and return the pay page found there."""
        session = session or self.browser()
        if checkout.method == "POST":
            response = session.post(
                checkout.url, data=dict(checkout.fields), timeout=30
            )
        else:
            response = session.get(checkout.url, timeout=30)
        assert response.status_code == 200, (response.status_code, response.text[:2000])
        return parse_pay_page(session, response)

    def open_pay_page(
        self, url: str, session: requests.Session | None = None
    ) -> PayPage:
        return self.open_checkout(Checkout(method="GET", url=url), session)

    def press(
        self, page: PayPage, action: str, *, follow: bool = True
    ) -> requests.Response:
        """Press the button ``action`` of ``page``; by default follow the
        redirects (to the return view and on)."""
        assert action in page.actions, (
            f"no button {action!r} on the page (buttons: {page.actions})"
        )
        return page.session.post(
            page.url,
            data={"csrfmiddlewaretoken": page.csrf_token, "action": action},
            headers={"Referer": page.url},
            allow_redirects=follow,
            timeout=30,
        )

    def pay(self, invoice: Invoice, action: str = "pay") -> requests.Response:
        """Start ``invoice``, open its pay page and press ``action``."""
        return self.press(self.open_checkout(self.start(invoice)), action)

    # --- webhooks -----------------------------------------------------------

    def deliveries(
        self, invoice: Invoice | None = None, **filters: Any
    ) -> list[WebhookDelivery]:
        """The emulator's webhook deliveries, oldest first."""
        qs = WebhookDelivery.objects.filter(slug=self.emulator_slug, **filters)
        if invoice is not None:
            qs = qs.filter(payment=self.emulated(invoice))
        return list(qs.order_by("created_at", "id"))

    def event_types(self, invoice: Invoice | None = None) -> list[str]:
        return [d.event_type for d in self.deliveries(invoice)]

    # --- assertions ---------------------------------------------------------

    def assert_invoice(
        self,
        invoice: Invoice,
        status: str,
        *,
        charges: int | None = None,
        refunds: int | None = None,
        refunded: str | Decimal | None = None,
    ) -> Invoice:
        """``invoice`` ended in ``status`` (waiting briefly for webhooks in
        flight), with that many charge and refund rows and that refunded total."""

        def reached() -> bool:
            invoice.refresh_from_db()
            return invoice.status == status

        if not wait_for(reached, timeout=5.0):
            problems = [
                f"{d.event_type}: {d.status} {d.last_error}"
                for d in WebhookDelivery.objects.order_by("id")
            ]
            raise AssertionError(
                f"invoice is {invoice.status!r}, expected {status!r}; "
                f"webhook deliveries: {problems}"
            )
        if charges is not None:
            assert invoice.payments.filter(kind=Payment.Kind.CHARGE).count() == charges
        if refunds is not None:
            assert invoice.payments.filter(kind=Payment.Kind.REFUND).count() == refunds
        if refunded is not None:
            assert invoice.refunded_amount == Decimal(refunded)
        return invoice

    def assert_delivered(self, invoice: Invoice | None = None) -> None:
        """Every webhook of the emulator (for ``invoice``) was acknowledged."""
        for delivery in self.deliveries(invoice):
            assert delivery.status == WebhookDelivery.Status.DELIVERED, (
                delivery.event_type,
                delivery.last_status_code,
                delivery.last_error,
            )
