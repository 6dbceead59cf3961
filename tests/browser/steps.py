"""The steps a customer and a merchant take in the browser, each checked
against what the page shows and photographed (``shots``).

The words a page must show are looked up in the app's and the shop's
catalogues (:func:`words`), so one test reads the same in English and in
Russian; the Russian run also checks that the page is not in English.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils import translation

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from .conftest import Shots

EMAIL = "buyer@example.com"
#: The product the ``shop`` fixture puts on sale (conftest.py).
PRODUCT_NAME = "Самовар электрический"


def words(language: str, message: str, **values: str) -> str:
    """``message`` (a msgid of the app or the shop) as a page in ``language``
    shows it."""
    with translation.override(language):
        text = translation.gettext(message)
    return text % values if values else text


def no_overflow(page: Page) -> None:
    """Nothing sticks out sideways: a phone's reader never scrolls across."""
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], (
        f"{page.url} is {widths[0]} px wide in a {widths[1]} px window"
    )


def check(page: Page, shots: Shots, step: str) -> None:
    """The screenshot of ``step``, then the checks every page passes: no page
    is wider than the window, except the admin's on a desktop (its Russian
    invoice page is 1303 px wide at 1280 px: its layout is the admin's own,
    reported, not fixed here)."""
    page.wait_for_load_state()
    shots(step, page)
    viewport = page.viewport_size or {"width": 0}
    if "/admin/" not in page.url or viewport["width"] < 600:
        no_overflow(page)


# --- the customer ------------------------------------------------------------------


@dataclass
class Order:
    url: str
    language: str


def buy(page: Page, shop: str, shots: Shots, language: str = "en") -> Order:
    """From the product list to the new order's page."""
    page.goto(shop + "/")
    check(page, shots, "products")
    # The product of the shop fixture (the shop's data migration may have
    # left others on sale before the first flush).
    product = page.locator(".products li").filter(has_text=PRODUCT_NAME)
    product.get_by_role("link", name=words(language, "Buy")).click()
    check(page, shots, "product")
    page.get_by_label(words(language, "E-mail")).fill(EMAIL)
    page.get_by_role("button", name=words(language, "Continue to payment")).click()
    page.wait_for_url(re.compile(r"/orders/[0-9a-f-]+/$"))
    check(page, shots, "order")
    expect_order(page, "awaiting_payment", language)
    assert page.get_by_text(words(language, "Choose how to pay")).is_visible()
    return Order(page.url, language)


def reference(page: Page, alias: str) -> str:
    """The order id of the invoice behind ``alias``'s pay button."""
    option = page.locator(f'li[data-provider="{alias}"] [data-payment-reference]')
    value = option.get_attribute("data-payment-reference")
    assert value, f"no payment reference for {alias} on {page.url}"
    return value


def open_pay_link(page: Page, alias: str, shots: Shots) -> None:
    """Follow ``alias``'s pay button to its emulator's hosted page (through the
    app's pay page where the provider shows one: Love&Pay's SBP QR)."""
    page.locator(f'li[data-provider="{alias}"] a.payments-ru-button').click()
    page.wait_for_load_state()
    if "/emulator/" not in page.url:
        check(page, shots, "pay page")
        page.locator("main a.payments-ru-button").click()
    page.wait_for_url(re.compile(r"/emulator/"))
    check(page, shots, "emulator")


def press(page: Page, label: str, shots: Shots, language: str = "en") -> None:
    """Press the emulator page's button ``label`` (an English msgid)."""
    page.get_by_role("button", name=words(language, label), exact=True).click()
    page.wait_for_load_state()
    check(page, shots, f"after {label}")


def expect_order(
    page: Page, status: str, language: str, *, timeout: float = 10.0
) -> None:
    """The order page says the order is ``status`` (``data-order-status``),
    reloading while a webhook may still be on its way (as the page itself
    tells the customer to)."""
    marker = page.locator("[data-order-status]")
    deadline = time.monotonic() + timeout
    while marker.get_attribute("data-order-status") != status:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"order {page.url} is "
                f"{marker.get_attribute('data-order-status')!r}, not {status!r}:\n"
                + page.locator("main").inner_text()
            )
        time.sleep(0.3)
        page.reload()


def expect_text(page: Page, text: str) -> None:
    main = page.locator("main, #content").first.inner_text()
    assert text in main, f"{text!r} is not on {page.url}:\n{main}"


def expect_no_text(page: Page, text: str) -> None:
    main = page.locator("main, #content").first.inner_text()
    assert text not in main, f"{text!r} is on {page.url}:\n{main}"


def back_to_order(page: Page, order: Order, *, reload: bool = False) -> None:
    """The customer is back on the order page: sent there by the provider's
    page, or by opening it again where the provider sends nobody back
    (``reload``: again in any case, after something changed behind it)."""
    if page.url != order.url:
        page.goto(order.url)
    elif reload:
        page.reload()


# --- the merchant ------------------------------------------------------------------


def log_in(page: Page, shop: str, shots: Shots, language: str = "en") -> None:
    page.goto(shop + "/admin/")
    page.locator("#id_username").fill("admin")
    page.locator("#id_password").fill("admin")
    check(page, shots, "admin login")
    page.locator("#login-form [type=submit]").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    check(page, shots, "admin index")


def find_invoice(page: Page, shop: str, order_id: str, shots: Shots) -> None:
    """Search the invoice list for ``order_id`` and open that invoice."""
    page.goto(shop + "/admin/django_payments_ru/invoice/")
    page.locator("#searchbar").fill(order_id)
    page.locator("#searchbar").press("Enter")
    page.wait_for_url(re.compile(r"\?q="))
    check(page, shots, "invoice search")
    page.locator("#result_list").get_by_role("link", name=order_id, exact=True).click()
    page.wait_for_url(re.compile(r"/invoice/\d+/change/"))
    check(page, shots, "invoice")


def messages(page: Page) -> str:
    return page.locator("ul.messagelist").inner_text()


def field(page: Page, name: str) -> str:
    """The value shown for the read-only field ``name`` of an admin page."""
    return page.locator(f".field-{name} .readonly").first.inner_text().strip()
