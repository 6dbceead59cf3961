"""End to end through a live server, as a customer's browser does it.

Open the example shop, buy a product, follow the sandbox pay button to the
emulator's pay page, press Pay (or Decline); the emulator sends its signed
webhook to the shop and redirects the browser back through the return view to
the order page, which must show the result. Nothing is mocked: the sandbox
provider calls the emulator over HTTP, and the emulator calls the webhook over
HTTP, all on the same live server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from urllib.parse import urljoin

import pytest
import requests
from shop.models import Order, Product

from django_payments_ru.models import Invoice, Payment, WebhookEvent
from django_payments_ru.status import InvoiceStatus

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

EMAIL = "buyer@example.com"
#: The words each button and status is shown with, in English and Russian.
PAY_WORDS = ("pay", "оплатить")
DECLINE_WORDS = ("decline", "отклонить")


# --- a tiny browser ----------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    #: (name, value, label) of each submit button.
    buttons: list[tuple[str, str, str]] = field(default_factory=list)

    def submit_data(self, words: tuple[str, ...]) -> dict[str, str] | None:
        """The form's data as sent by the button labelled with one of ``words``,
        or ``None`` when it has no such button."""
        for name, value, label in self.buttons:
            for text in (label, value, name):
                if text.strip().casefold().startswith(words):
                    data = dict(self.fields)
                    if name:
                        data[name] = value
                    return data
        return None


@dataclass
class Link:
    href: str
    classes: list[str]
    #: The ``data-provider`` of the element it sits in (the shop's pay options).
    provider: str


class Page(HTMLParser):
    def __init__(self, response: requests.Response) -> None:
        super().__init__()
        self.url = response.url
        self.text = response.text
        self.forms: list[Form] = []
        self.links: list[Link] = []
        self._form: Form | None = None
        self._button: list[str] | None = None
        self._providers: list[tuple[str, str]] = []
        self.feed(response.text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "data-provider" in a:
            self._providers.append((tag, a["data-provider"]))
        if tag == "a" and a.get("href"):
            provider = self._providers[-1][1] if self._providers else ""
            self.links.append(Link(a["href"], a.get("class", "").split(), provider))
        elif tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").upper())
            self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "select", "textarea"):
            kind = a.get("type", "text").lower()
            if kind in ("submit", "image"):
                self._form.buttons.append(
                    (a.get("name", ""), a.get("value", ""), a.get("value", ""))
                )
            elif a.get("name") and (
                kind not in ("checkbox", "radio") or "checked" in a
            ):
                self._form.fields[a["name"]] = a.get("value", "")
        elif (
            self._form is not None
            and tag == "button"
            and a.get("type", "submit").lower() == "submit"
        ):
            self._button = [a.get("name", ""), a.get("value", ""), ""]

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button[2] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self._form is not None:
            self._form.buttons.append(tuple(self._button))  # type: ignore[arg-type]
            self._button = None
        elif tag == "form":
            self._form = None
        if self._providers and self._providers[-1][0] == tag:
            self._providers.pop()

    def link(self, *, css_class: str, provider: str = "") -> str:
        for link in self.links:
            if css_class in link.classes and (
                not provider or link.provider == provider
            ):
                return urljoin(self.url, link.href)
        raise AssertionError(
            f"No link .{css_class} (provider {provider!r}) on {self.url}:\n{self.text}"
        )

    def submit(
        self, session: requests.Session, words: tuple[str, ...], **values: str
    ) -> Page:
        """Press the button labelled with one of ``words`` and follow redirects."""
        for form in self.forms:
            data = form.submit_data(words)
            if data is not None:
                data.update(values)
                url = urljoin(self.url, form.action) if form.action else self.url
                response = session.request(form.method, url, data=data, timeout=30)
                assert response.status_code == 200, (
                    response.status_code,
                    response.text[:2000],
                )
                return Page(response)
        raise AssertionError(f"No button {words} on {self.url}:\n{self.text}")


def open_page(session: requests.Session, url: str) -> Page:
    response = session.get(url, timeout=30)
    assert response.status_code == 200, (
        url,
        response.status_code,
        response.text[:2000],
    )
    return Page(response)


# --- the customer's steps ------------------------------------------------------


def browser(language: str) -> requests.Session:
    session = requests.Session()
    session.headers["Accept-Language"] = language
    return session


def buy_something(session: requests.Session, base_url: str) -> Page:
    """From the product list to the order page; returns the order page."""
    products = open_page(session, base_url + "/")
    product = open_page(session, products.link(css_class="buy"))
    order_page = product.submit(session, ("continue", "перейти"), email=EMAIL)
    assert "/orders/" in order_page.url
    return order_page


def order_of(page: Page) -> Order:
    ref = page.url.rstrip("/").rsplit("/", 1)[-1]
    return Order.objects.get(uuid=ref)


def sandbox_invoice(order: Order) -> Invoice:
    """The order's newest sandbox invoice."""
    invoices = Invoice.objects.filter(shop_attempt__order=order, provider="sandbox")
    invoice = invoices.order_by("created_at", "id").last()
    assert invoice is not None, "the order page created no sandbox invoice"
    return invoice


def pay_page(session: requests.Session, order_page: Page) -> Page:
    """Follow the sandbox pay button (rendered by {% payment_button %}): its
    pay link starts the payment and redirects to the emulator's page."""
    url = order_page.link(css_class="payments-ru-button", provider="sandbox")
    return open_page(session, url)


def wait_for(condition, timeout: float = 10.0):
    """The webhook may still be in flight when the browser is back."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def webhook_statuses(invoice: Invoice) -> list[str]:
    return list(
        WebhookEvent.objects.filter(invoice=invoice).values_list("status", flat=True)
    )


def status_of(page: Page) -> str:
    marker = 'data-order-status="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


# --- the tests -----------------------------------------------------------------


@pytest.fixture(autouse=True)
def product(transactional_db):
    # The shop's data migration creates products, but a transactional test
    # before this one may have flushed them.
    return Product.objects.get_or_create(
        name="Самовар электрический", defaults={"price": Decimal("2490.50")}
    )[0]


@pytest.mark.parametrize("processing", ["sync", "celery"])
def test_pay_through_the_sandbox(live_payments, settings, processing):
    # "celery": the webhook is processed by the task (eager: no broker in tests).
    settings.PAYMENTS_RU = {**settings.PAYMENTS_RU, "WEBHOOK_PROCESSING": processing}
    session = browser("ru")
    order_page = buy_something(session, live_payments.url)
    order = order_of(order_page)
    assert order.amount == order.product.price
    assert status_of(order_page) == "awaiting_payment"
    invoice = sandbox_invoice(order)
    # The order page only renders pay links: nothing is started at a provider.
    assert invoice.status == InvoiceStatus.CREATED
    assert invoice.amount == order.amount
    assert "/payments/pay/" in order_page.link(
        css_class="payments-ru-button", provider="sandbox"
    )
    reloaded = open_page(session, order_page.url)
    assert sandbox_invoice(order) == invoice  # a reload creates nothing either
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.CREATED

    emulator_page = pay_page(session, reloaded)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PENDING  # the pay link started it
    back = emulator_page.submit(session, PAY_WORDS)

    assert back.url == live_payments.url + order.get_absolute_url()
    assert status_of(back) == "paid"
    assert "Оплачен" in back.text
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.paid_amount == order.amount
    assert wait_for(lambda: webhook_statuses(invoice) == ["processed"])
    payment = Payment.objects.get(invoice=invoice)
    assert (payment.kind, payment.amount) == (Payment.Kind.CHARGE, order.amount)
    # The shop's invoice_paid receiver marked the order.
    order.refresh_from_db()
    assert order.paid_at is not None
    # A paid order offers no more pay buttons.
    again = open_page(session, back.url)
    assert not [link for link in again.links if "payments-ru-button" in link.classes]
    assert "/payments/pay/" not in again.text
    assert status_of(again) == "paid"
    # One paid invoice, named on the page; the order's others are cancelled.
    assert again.text.count("data-paid-invoice=") == 1
    assert f'data-paid-invoice="{invoice.uuid}"' in again.text


def test_decline_then_pay(live_payments):
    session = browser("en")
    order_page = buy_something(session, live_payments.url)
    order = order_of(order_page)
    declined = sandbox_invoice(order)

    back = pay_page(session, order_page).submit(session, DECLINE_WORDS)

    assert back.url == live_payments.url + order.get_absolute_url()
    assert status_of(back) == "declined"
    assert "Payment declined" in back.text
    declined.refresh_from_db()
    assert declined.status == InvoiceStatus.FAILED
    assert wait_for(lambda: webhook_statuses(declined) == ["processed"])
    assert not Payment.objects.filter(invoice=declined).exists()
    order.refresh_from_db()
    assert order.paid_at is None

    # The customer tries again: a new invoice, the declined one stays declined.
    paid = pay_page(session, back).submit(session, PAY_WORDS)

    assert status_of(paid) == "paid"
    assert "Paid" in paid.text
    retry = sandbox_invoice(order)
    assert retry != declined
    assert retry.status == InvoiceStatus.PAID
    assert retry.order_id != declined.order_id
    assert Payment.objects.filter(invoice=retry).count() == 1
    # The order is paid: its declined invoice is closed, so it cannot be paid.
    declined.refresh_from_db()
    assert declined.status == InvoiceStatus.CANCELLED
    assert not Payment.objects.filter(invoice=declined).exists()
    order.refresh_from_db()
    assert order.paid_at is not None
