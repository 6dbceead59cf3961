"""The reconciliation contract (:mod:`tests.contracts.reconcile`) on Love&Pay,
asked through its batch (``BATCH_STATUS``: the list of pending invoices)."""

from __future__ import annotations

from tests.contracts.reconcile import ReconcileContract

from .adapter import LOVEANDPAY


class TestLoveAndPayReconcile(ReconcileContract):
    adapter = LOVEANDPAY
