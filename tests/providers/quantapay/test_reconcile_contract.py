"""The reconciliation contract (:mod:`tests.contracts.reconcile`) on QuantaPay,
whose webhook is sent once and never retried: reconciliation is what finds a
payment whose webhook was lost."""

from __future__ import annotations

from tests.contracts.reconcile import ReconcileContract

from .adapter import QUANTAPAY


class TestQuantaPayReconcile(ReconcileContract):
    adapter = QUANTAPAY
