"""The merchant in a real browser, in the admin of the example shop: log in,
find an invoice by its order id, refund part of it and then the rest through
the confirmation page, capture a hold, create an invoice and open its pay
link, reprocess a webhook event whose processing failed. What the admin does
shows on the customer's order page too."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User

from django_payments_ru import services
from tests.browser.conftest import DESKTOP, MOBILE, new_context
from tests.browser.steps import (
    back_to_order,
    buy,
    check,
    expect_order,
    expect_text,
    find_invoice,
    log_in,
    messages,
    open_pay_link,
    press,
    reference,
    words,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.browser.conftest import Shots

pytestmark = pytest.mark.browser


#: The product's price as the order page shows it.
TOTAL = {"en": "RUB2,490.50", "ru": "2\xa0490,50\xa0₽"}


@pytest.fixture
def merchant(shop: str) -> str:
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    return shop


def invoice_text(page: Page) -> str:
    return page.locator("#content").inner_text()


def expect_invoice_status(page: Page, status: str, language: str) -> None:
    label = words(language, status)
    text = page.locator(".field-status").first.inner_text()
    assert label in text, f"the invoice is not {label!r}: {text!r}"


def refund(page: Page, amount: str, shots: Shots, language: str) -> None:
    """From the invoice page: Refund, the amount, Next, then the confirmation
    page that states it, and its button."""
    page.locator(".object-tools").get_by_role(
        "link", name=words(language, "Refund"), exact=True
    ).click()
    page.wait_for_url(re.compile(r"/refund/"))
    check(page, shots, f"refund {amount}")
    page.locator("#id_amount").fill(amount)
    page.locator("#content-main form [type=submit]").first.click()
    page.wait_for_load_state()
    check(page, shots, f"confirm refund {amount}")
    confirm = page.locator("#content-main form input[type=submit].default")
    # The button names the amount ("Refund RUB2,390.50", "2 390,50 ₽").
    label = confirm.get_attribute("value") or ""
    assert re.sub(r"\D", "", amount) in re.sub(r"\D", "", label), label
    confirm.click()
    page.wait_for_url(re.compile(r"/invoice/\d+/change/"))
    check(page, shots, f"refunded {amount}")


@pytest.mark.parametrize(
    ("language", "viewport"),
    [("en", DESKTOP), ("ru", DESKTOP), ("en", MOBILE)],
    ids=["en", "ru", "phone"],
)
def test_refund_part_then_the_rest(
    merchant: str, browser: Browser, shots: Shots, language: str, viewport: Any
) -> None:
    context = new_context(browser, language=language, viewport=viewport)
    page = shots.page = context.new_page()
    order = buy(page, merchant, shots, language)
    order_id = reference(page, "sandbox")
    open_pay_link(page, "sandbox", shots)
    press(page, "Pay", shots, language)
    expect_order(page, "paid", language)

    log_in(page, merchant, shots, language)
    find_invoice(page, merchant, order_id, shots)
    expect_invoice_status(page, "Paid", language)
    refund(page, "100.00", shots, language)
    expect_invoice_status(page, "Partially refunded", language)
    back_to_order(page, order)
    check(page, shots, "order partly refunded")
    expect_text(
        page,
        words(
            language,
            "%(refunded)s of %(paid)s has been refunded.",
            refunded={"en": "RUB100.00", "ru": "100,00\xa0₽"}[language],
            paid=TOTAL[language],
        ),
    )

    find_invoice(page, merchant, order_id, shots)
    refund(page, "2390.50", shots, language)
    expect_invoice_status(page, "Refunded", language)
    back_to_order(page, order)
    expect_order(page, "refunded", language)
    check(page, shots, "order refunded")
    expect_text(
        page,
        words(
            language,
            "The payment of %(amount)s has been refunded in full.",
            amount=TOTAL[language],
        ),
    )
    context.close()


def test_capture_a_hold(merchant: str, page: Page, shots: Shots) -> None:
    order = buy(page, merchant, shots)
    order_id = reference(page, "lifepay")
    open_pay_link(page, "lifepay", shots)
    press(page, "Hold the funds", shots)
    expect_order(page, "on_hold", "en")

    log_in(page, merchant, shots)
    find_invoice(page, merchant, order_id, shots)
    expect_invoice_status(page, "On hold", "en")
    page.locator(".object-tools").get_by_role("link", name="Capture hold").click()
    page.wait_for_load_state()
    check(page, shots, "confirm capture")
    expect_text(page, "2,490.50")
    page.locator("#content-main form input[type=submit].default").click()
    page.wait_for_url(re.compile(r"/invoice/\d+/change/"))
    check(page, shots, "captured")
    expect_invoice_status(page, "Paid", "en")
    back_to_order(page, order)
    expect_order(page, "paid", "en")
    check(page, shots, "order paid")


def test_create_an_invoice_and_open_its_pay_link(
    merchant: str, page: Page, shots: Shots
) -> None:
    log_in(page, merchant, shots)
    page.goto(merchant + "/admin/django_payments_ru/invoice/add/")
    check(page, shots, "add invoice")
    page.locator("#id_provider").select_option("sandbox")
    page.locator("#id_amount").fill("1500.50")
    page.locator("#id_order_id").fill("PHONE-1001")
    page.locator("#id_description").fill("Two books, ordered by phone")
    page.locator("#id_customer_email").fill("buyer@example.com")
    page.locator("input[name=_save]").click()
    page.wait_for_url(re.compile(r"/invoice/\d+/change/"))
    check(page, shots, "invoice added")
    assert "was created; its payment link is below" in messages(page)

    find_invoice(page, merchant, "PHONE-1001", shots)
    link = page.locator("#payments-ru-pay-link").input_value()
    assert "/payments/pay/" in link
    # What the customer does with the link the merchant sent them.
    page.goto(link)
    page.wait_for_url(re.compile(r"/emulator/"))
    check(page, shots, "emulator")
    expect_text(page, "Two books, ordered by phone")
    press(page, "Pay", shots)
    find_invoice(page, merchant, "PHONE-1001", shots)
    expect_invoice_status(page, "Paid", "en")


def test_reprocess_a_failed_event(
    merchant: str, page: Page, shots: Shots, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = buy(page, merchant, shots)
    open_pay_link(page, "sandbox", shots)

    def hiccup(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database hiccup")

    # The webhook arrives while its processing fails: stored, kept as failed.
    with monkeypatch.context() as patch:
        patch.setattr(services, "_apply_locked", hiccup)
        press(page, "Pay", shots)
    back_to_order(page, order)
    check(page, shots, "order not yet paid")
    expect_order(page, "awaiting_payment", "en")

    log_in(page, merchant, shots)
    page.goto(merchant + "/admin/django_payments_ru/webhookevent/?status__exact=failed")
    check(page, shots, "failed events")
    page.locator("#result_list tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/webhookevent/\d+/change/"))
    check(page, shots, "failed event")
    expect_text(page, "database hiccup")
    page.locator(".object-tools").get_by_role("button", name="Reprocess").click()
    page.wait_for_load_state()
    check(page, shots, "reprocessed")
    back_to_order(page, order)
    expect_order(page, "paid", "en")
    check(page, shots, "order paid")
