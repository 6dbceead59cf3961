"""What a provider may not do itself, and the services do for it: record the
details a provider accepted, keep transaction ids, decide that an event is
stale, judge a stored checkout and a provider's URL; and what a provider class
must implement for what it declares."""

from __future__ import annotations

import ast
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.test import override_settings
from django.utils import timezone

from django_payments_ru import providers as providers_package
from django_payments_ru import services
from django_payments_ru.checks import check_payments_settings
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import InvalidInput
from django_payments_ru.models import Invoice
from django_payments_ru.providers.base import (
    CAPABILITY_HOOKS,
    BaseProvider,
    Capability,
    Checkout,
)
from django_payments_ru.services import Result
from django_payments_ru.validation import safe_redirect_url

from .contracts import provider_packages
from .helpers import event, make_invoice

pytestmark = pytest.mark.django_db


# --- update_invoice_details ---------------------------------------------------


def test_details_a_provider_accepted_are_recorded_under_its_slug():
    invoice = make_invoice(metadata={"shop": 1, "sandbox": {"kept": True}})
    services.update_invoice_details(
        invoice,
        customer_email="new@example.com",
        provider_details={"is_recurrent": True},
    )
    assert invoice.customer_email == "new@example.com"  # the instance is fresh
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.customer_email == "new@example.com"
    assert stored.metadata == {
        "shop": 1,
        "sandbox": {"kept": True, "is_recurrent": True},
    }


def test_details_never_overwrite_what_a_webhook_wrote_meanwhile():
    invoice = make_invoice()
    stale = Invoice.objects.get(pk=invoice.pk)
    services.apply_event(event(invoice, EventType.PAID))
    services.update_invoice_details(stale, customer_phone="+79990000000")
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.status == "paid"
    assert stored.customer_phone == "+79990000000"
    assert stale.status == "paid"


@pytest.mark.parametrize(
    "fields",
    [{"status": "paid"}, {"amount": Decimal("1.00")}, {"paid_amount": Decimal(1)}],
)
def test_details_cannot_change_status_or_money(fields):
    invoice = make_invoice()
    with pytest.raises(TypeError, match="only customer_email, customer_phone"):
        services.update_invoice_details(invoice, **fields)
    assert Invoice.objects.get(pk=invoice.pk).status == "created"


def test_invalid_details_are_refused_and_nothing_is_written():
    invoice = make_invoice(customer_email="old@example.com")
    with pytest.raises(InvalidInput) as caught:
        services.update_invoice_details(
            invoice, customer_email="not an address", provider_details={"x": 1}
        )
    assert caught.value.field == "customer_email"
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.customer_email == "old@example.com"
    assert "sandbox" not in stored.metadata


# --- transaction ids ------------------------------------------------------------


def test_the_transaction_id_of_an_event_is_kept_on_the_invoice():
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.HELD, transaction_id="700001"))
    assert Invoice.objects.get(pk=invoice.pk).provider_transaction_id == "700001"


def test_a_repeat_still_brings_its_transaction_id():
    # A poll applied the hold first; the notification naming the charge is a
    # repeat of the same state and must still leave its id.
    invoice = make_invoice()
    services.apply_event(event(invoice, EventType.HELD))
    result = services.apply_event(
        event(invoice, EventType.HELD, transaction_id="700002")
    )
    assert result.result is Result.NOOP
    assert Invoice.objects.get(pk=invoice.pk).provider_transaction_id == "700002"


def test_a_rejected_event_leaves_no_transaction_id():
    invoice = make_invoice()
    services.apply_event(
        event(invoice, EventType.PAID, amount=Decimal("1.00"), transaction_id="700003")
    )
    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.needs_attention
    assert stored.provider_transaction_id == ""


def test_the_transaction_id_survives_the_inbox():
    # Celery mode and reprocessing rebuild the event from its stored JSON.
    invoice = make_invoice()
    original = event(invoice, EventType.HELD, transaction_id="700004")
    rebuilt = type(original).from_json(original.to_json())
    assert rebuilt.transaction_id == "700004"


# --- stale attempts: the state machine's rule, not a provider's -----------------


def _current(invoice: Invoice, payment_id: str) -> Invoice:
    services.apply_event(
        event(invoice, EventType.PENDING, provider_payment_id=payment_id)
    )
    Invoice.objects.filter(pk=invoice.pk).update(provider_payment_id=payment_id)
    return Invoice.objects.get(pk=invoice.pk)


@pytest.mark.parametrize("kind", [EventType.FAILED, EventType.EXPIRED])
def test_a_late_failure_of_an_earlier_attempt_is_ignored(kind):
    invoice = _current(make_invoice(), "pay_second")
    result = services.apply_event(event(invoice, kind, provider_payment_id="pay_first"))
    assert result.result is Result.IGNORED
    assert "pay_first" in result.reason and "pay_second" in result.reason
    assert Invoice.objects.get(pk=invoice.pk).status == "pending"


def test_a_failure_of_the_current_attempt_is_applied():
    invoice = _current(make_invoice(), "pay_second")
    result = services.apply_event(
        event(invoice, EventType.FAILED, provider_payment_id="pay_second")
    )
    assert result.result is Result.APPLIED
    assert Invoice.objects.get(pk=invoice.pk).status == "failed"


def test_without_attempt_ids_every_failure_is_the_invoices(monkeypatch):
    # A provider whose ids do not name attempts (Life-Pay A1Lite: the invoice
    # keeps the first transaction it saw) must not lose a retry's failure.
    from django_payments_ru.providers.sandbox import Provider

    monkeypatch.setattr(Provider, "payment_per_attempt", False)
    invoice = _current(make_invoice(), "pay_second")
    result = services.apply_event(
        event(invoice, EventType.FAILED, provider_payment_id="pay_first")
    )
    assert result.result is Result.APPLIED
    assert Invoice.objects.get(pk=invoice.pk).status == "failed"


# --- one rule for a stored checkout, one for a provider's URL -----------------


def _with_checkout(expires_in: timedelta | None, status: str = "pending") -> Invoice:
    invoice = make_invoice()
    expires = timezone.now() + expires_in if expires_in is not None else None
    checkout = Checkout(method="GET", url="https://pay.example/x", expires_at=expires)
    Invoice.objects.filter(pk=invoice.pk).update(
        checkout=checkout.to_json(), status=status
    )
    return Invoice.objects.get(pk=invoice.pk)


@pytest.mark.parametrize(
    ("expires_in", "status", "usable"),
    [
        (timedelta(minutes=5), "pending", True),
        (None, "pending", True),
        (timedelta(minutes=-1), "pending", False),
        (timedelta(minutes=5), "failed", False),
    ],
)
def test_checkout_usable(expires_in, status, usable):
    assert services.checkout_usable(_with_checkout(expires_in, status)) is usable


def test_no_checkout_is_not_usable():
    assert services.checkout_usable(make_invoice()) is False


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://pay.example/p/1", True),
        ("http://127.0.0.1:8000/emulator/", True),
        ("javascript:alert(1)", False),
        ("data:text/html,<script>", False),
        ("/relative/path", False),
        ("//pay.example/no-scheme", False),
        ("https://pay.example/\r\nSet-Cookie: x", False),
        ("", False),
    ],
)
def test_safe_redirect_url(url, safe):
    assert safe_redirect_url(url) is safe


# --- capabilities need their hooks -------------------------------------------------


def _builtin_classes() -> list[type[BaseProvider]]:
    """Every concrete class an alias of a built-in provider can be."""
    classes = provider_packages().values()
    return [surface for cls in classes for surface in (cls.surfaces or (cls,))]


def test_there_are_builtin_providers_to_check():
    assert len(_builtin_classes()) >= 3


@pytest.mark.parametrize("cls", _builtin_classes(), ids=lambda c: c.__qualname__)
def test_every_declared_capability_is_implemented(cls):
    assert cls.missing_hooks() == []


class _Boasting(BaseProvider):
    slug = "boasting"
    display_name = "Boasting"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.HOLD, Capability.REFUND}
    )

    def capture(self, invoice: Any, amount: Any = None, *, key: str = "") -> Any:
        return None


def test_a_capability_without_its_hook_is_named():
    assert _Boasting.missing_hooks() == [
        (Capability.HOLD, "release"),
        (Capability.REFUND, "refund"),
    ]
    assert set(CAPABILITY_HOOKS) >= {Capability.REFUND, Capability.HOLD}


def test_a_capability_without_its_hook_fails_check_e017():
    path = f"{__name__}._Boasting"
    with override_settings(
        PAYMENTS_RU={"PROVIDERS": {"boast": {"BACKEND": path, "OPTIONS": {}}}}
    ):
        messages = [m for m in check_payments_settings() if m.id.endswith("E017")]
    assert [m.id for m in messages] == ["payments_ru.E017", "payments_ru.E017"]
    assert "release()" in messages[0].msg
    assert "refund()" in messages[1].msg


# --- providers never write models -------------------------------------------------


def _runtime_model_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import the app's models outside ``if
    TYPE_CHECKING:`` (a type annotation is fine; a query or a save is not)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(child) for child in ast.walk(node)}
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and node.level > 0
        and (node.module or "").split(".")[-1] == "models"
        and id(node) not in typing_only
    ]


def _provider_modules() -> list[Path]:
    root = Path(providers_package.__file__).parent
    return [
        path
        for path in sorted(root.rglob("*.py"))
        # An emulator is the provider's fake server: its own tables are its state.
        if "emulator" not in path.relative_to(root).parts and path.stem != "emulator"
    ]


def test_there_are_provider_modules_to_check():
    assert len(_provider_modules()) >= 10


@pytest.mark.parametrize("path", _provider_modules(), ids=lambda p: p.stem)
def test_a_provider_module_never_touches_the_models(path):
    # DESIGN: a provider turns answers into events; the services apply them
    # and record what it accepted (update_invoice_details).
    assert _runtime_model_imports(path) == [], path


def test_the_model_import_check_can_fail(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ...models import Invoice\n"
        "def f():\n"
        "    from ...models import Invoice\n"
    )
    assert _runtime_model_imports(sample) == [5]
