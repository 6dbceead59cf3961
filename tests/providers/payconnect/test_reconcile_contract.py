"""The reconciliation contract (:mod:`tests.contracts.reconcile`) on PayConnect."""

from __future__ import annotations

from tests.contracts.reconcile import ReconcileContract

from .adapter import PAYCONNECT


class TestPayConnectReconcile(ReconcileContract):
    adapter = PAYCONNECT
