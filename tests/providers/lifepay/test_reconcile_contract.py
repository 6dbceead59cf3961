"""The reconciliation contract (:mod:`tests.contracts.reconcile`) on the three
Life-Pay aliases."""

from __future__ import annotations

from tests.contracts.reconcile import ReconcileContract

from .adapter import LIFEPAY, LIFEPAY_ECOM, LIFEPAY_V1


class TestA1LiteReconcile(ReconcileContract):
    adapter = LIFEPAY


class TestA1LiteV1Reconcile(ReconcileContract):
    adapter = LIFEPAY_V1


class TestEcomReconcile(ReconcileContract):
    adapter = LIFEPAY_ECOM
