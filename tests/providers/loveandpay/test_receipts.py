"""Receipts and Love&Pay, which prints none
(:class:`tests.contracts.receipts.NoReceiptContract`): an invoice with lines is
refused unless the shop prints its receipts elsewhere."""

from __future__ import annotations

from tests.contracts.receipts import NoReceiptContract

from .adapter import LOVEANDPAY


class TestLoveAndPayWithoutReceipts(NoReceiptContract):
    adapter = LOVEANDPAY
