"""The reconciliation contract (:mod:`tests.contracts.reconcile`) on the sandbox."""

from __future__ import annotations

from tests.contracts.reconcile import ReconcileContract

from .adapter import SANDBOX


class TestSandboxReconcile(ReconcileContract):
    adapter = SANDBOX
