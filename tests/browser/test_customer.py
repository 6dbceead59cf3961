"""The customer in a real browser, for every provider of the example shop:
buy, follow the pay link to the provider's (emulated) page, pay, decline, hold
or let the payment expire, and read the outcome on the order page.

The full matrix runs in English at 1280x800; the main flows once more in
Russian and once on a 390 px wide phone (test_languages_and_phones.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from django.utils import timezone

from django_payments_ru import jobs
from django_payments_ru.emulator import clock
from tests.browser.conftest import DESKTOP, MOBILE, new_context
from tests.browser.steps import (
    back_to_order,
    buy,
    check,
    expect_no_text,
    expect_order,
    expect_text,
    open_pay_link,
    press,
    words,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.browser.conftest import Shots

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Flow:
    alias: str
    #: The emulator page's button (its English label), or "" when the time
    #: runs out at the provider instead (its emulator's clock moves on).
    button: str
    #: The order's ``data-order-status`` afterwards.
    status: str
    #: What the order page says about the attempt (an English msgid).
    message: str
    #: The background job that tells the app of an outcome the provider sends
    #: no webhook for, run as Celery beat runs it, 3 days later:
    #: "reconcile" or "expire".
    job: str = ""

    def __str__(self) -> str:
        return (self.button or "time runs out").lower()


PAID = "The payment has been received. Thank you!"
#: With or without the provider's reason: run_flow() compares the words
#: before the first full stop.
DECLINED = "The payment did not go through. You can try again."
HELD = "The amount is held; you will be charged when the order ships."
EXPIRED = "The time to pay this invoice has run out."
CANCELLED = "This invoice was cancelled and can no longer be paid."
LATER = timedelta(days=3)
HOLD = "Hold the funds"

FLOWS = [
    Flow("sandbox", "Pay", "paid", PAID),
    Flow("sandbox", "Decline", "declined", DECLINED),
    Flow("sandbox", "Let expire", "awaiting_payment", EXPIRED),
    # Life-Pay A1Lite: a signed form posted to the hosted page; nothing
    # expires there (lifepay.md A-13 expires ECOM invoices only).
    Flow("lifepay", "Pay", "paid", PAID),
    Flow("lifepay", "Decline", "declined", DECLINED),
    Flow("lifepay", HOLD, "on_hold", HELD),
    Flow("lifepay_ecom", "Pay", "paid", PAID),
    Flow("lifepay_ecom", "Decline", "declined", DECLINED),
    Flow("lifepay_ecom", "Hold the funds", "on_hold", HELD),
    # lifepay.md A-13: an ECOM invoice past its expire_date becomes "error",
    # with no notification: the reconciliation finds it declined.
    Flow("lifepay_ecom", "", "declined", DECLINED, job="reconcile"),
    Flow("payconnect", "Pay", "paid", PAID),
    Flow("payconnect", "Decline", "declined", DECLINED),
    Flow("payconnect", "Let expire", "awaiting_payment", EXPIRED),
    Flow("loveandpay", "Pay by SBP", "paid", PAID),
    Flow("loveandpay", "Pay by card", "paid", PAID),
    # loveandpay.md section 5: only a success sends the payer back to the
    # shop; after these the customer comes back by themselves.
    Flow("loveandpay", "Cancel", "awaiting_payment", CANCELLED),
    Flow("loveandpay", "Let expire", "awaiting_payment", EXPIRED),
    Flow("quantapay", "Pay the exact amount", "paid", PAID),
    # quantapay.md A-6: an expired session disappears without a webhook; the
    # app's expiry job ends the invoice once the session's 48 hours are over.
    Flow("quantapay", "Let expire", "awaiting_payment", EXPIRED, job="expire"),
]
ALIASES = list(dict.fromkeys(flow.alias for flow in FLOWS))


def run_flow(
    page: Page,
    shop: str,
    shots: Shots,
    flow: Flow,
    monkeypatch: pytest.MonkeyPatch,
    language: str = "en",
) -> None:
    """One order paid (or not) through ``flow``, checked on the order page."""
    shots.prefix = str(flow)
    order = buy(page, shop, shots, language)
    open_pay_link(page, flow.alias, shots)
    later = timezone.now() + LATER
    if flow.button:
        press(page, flow.button, shots, language)
    else:
        with monkeypatch.context() as patch:
            patch.setattr(clock, "now", lambda: later)
            page.reload()
            check(page, shots, "emulator later")
            if flow.job == "reconcile":
                jobs.reconcile(alias=flow.alias, older_than=0, now=later)
    if flow.job == "expire":
        # The provider signs its requests with the real time: only the app's
        # job looks 3 days ahead.
        jobs.expire(alias=flow.alias, grace=0, now=later)
    back_to_order(page, order, reload=bool(flow.job))
    expect_order(page, flow.status, language)
    check(page, shots, f"order {flow.status}")
    # Its first sentence: a decline adds the provider's reason before the stop.
    expect_text(page, words(language, flow.message).split(".")[0])
    if flow.status in ("paid", "on_hold"):
        # Settled: nothing more to pay.
        assert page.locator("a.payments-ru-button").count() == 0
        expect_no_text(page, words(language, "Choose how to pay"))
    else:
        # The customer can try again, with a fresh invoice of that provider.
        button = page.locator(f'li[data-provider="{flow.alias}"] a.payments-ru-button')
        assert button.count() == 1
    shots.prefix = ""


@pytest.mark.parametrize("alias", ALIASES)
def test_customer(
    shop: str, page: Page, shots: Shots, alias: str, monkeypatch: Any
) -> None:
    """Every outcome of one provider's page, one order each."""
    for flow in FLOWS:
        if flow.alias == alias:
            run_flow(page, shop, shots, flow, monkeypatch)


def test_quantapay_underpaid_is_not_paid(
    shop: str, page: Page, shots: Shots, monkeypatch: Any
) -> None:
    # quantapay.md A-6: an underpaid transfer (X) sends no webhook; the
    # reconciliation reports the short amount, which never marks it paid.
    order = buy(page, shop, shots)
    open_pay_link(page, "quantapay", shots)
    press(page, "Underpay", shots)
    jobs.reconcile(alias="quantapay", older_than=0)
    back_to_order(page, order, reload=True)
    expect_order(page, "awaiting_payment", "en")
    check(page, shots, "order awaiting payment")
    expect_no_text(page, words("en", PAID))


#: The main flows, once in Russian and once on a phone.
MAIN_FLOWS = [
    flow
    for flow in FLOWS
    if flow.alias == "sandbox" or (flow.alias, flow.button) == ("lifepay", HOLD)
]


@pytest.mark.parametrize(
    ("language", "viewport"), [("ru", DESKTOP), ("en", MOBILE)], ids=["ru", "phone"]
)
def test_main_flows(
    shop: str,
    browser: Browser,
    shots: Shots,
    language: str,
    viewport: dict[str, int],
    monkeypatch: Any,
) -> None:
    context = new_context(browser, language=language, viewport=viewport)
    page = shots.page = context.new_page()
    for flow in MAIN_FLOWS:
        run_flow(page, shop, shots, flow, monkeypatch, language)
        if language == "ru":
            assert page.locator("html").get_attribute("lang") == "ru"
            expect_no_text(page, "Choose how to pay")
            expect_no_text(page, "Status:")
    context.close()
