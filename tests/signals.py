"""The one recorder of the invoice signals, for every test that counts them.

Use it as a context manager (``with SignalRecorder() as log:``), or connect and
disconnect it around a test (the emulator cases do). It records from any thread:
the live-server tests process webhooks in the server's threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_payments_ru import signals
from django_payments_ru.models import Invoice


@dataclass
class RecordedSignal:
    name: str
    invoice_id: int
    old_status: str
    new_status: str
    kwargs: dict[str, Any]


class SignalRecorder:
    """Every invoice signal sent while connected (from any thread)."""

    NAMES = (
        "invoice_status_changed",
        "invoice_paid",
        "invoice_failed",
        "invoice_refunded",
    )

    def __init__(self) -> None:
        self.sent: list[RecordedSignal] = []
        self._receivers: list[tuple[Any, Callable[..., None]]] = []

    def connect(self) -> None:
        for name in self.NAMES:
            signal = getattr(signals, name)

            def receiver(sender: Any, *, _name: str = name, **kwargs: Any) -> None:
                self.sent.append(
                    RecordedSignal(
                        _name,
                        kwargs["invoice"].pk,
                        kwargs.get("old_status", ""),
                        kwargs.get("new_status", ""),
                        kwargs,
                    )
                )

            signal.connect(receiver, weak=False)
            self._receivers.append((signal, receiver))

    def disconnect(self) -> None:
        for signal, receiver in self._receivers:
            signal.disconnect(receiver)
        self._receivers.clear()

    def __enter__(self) -> SignalRecorder:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # --- reading ------------------------------------------------------------

    def named(self, name: str, invoice: Invoice | None = None) -> list[RecordedSignal]:
        return [
            s
            for s in self.sent
            if s.name == name and (invoice is None or s.invoice_id == invoice.pk)
        ]

    def count(self, name: str, invoice: Invoice | None = None) -> int:
        return len(self.named(name, invoice))

    def names(self) -> list[str]:
        """The signals' names, in the order they were sent."""
        return [s.name for s in self.sent]

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """``(name, kwargs)`` of each signal, in the order they were sent."""
        return [(s.name, s.kwargs) for s in self.sent]
