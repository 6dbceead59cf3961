"""Products, orders, and the invoices through which an order is paid."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import django
from django.core.validators import MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from django_payments_ru.models import Invoice
from django_payments_ru.status import InvoiceStatus

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

#: Statuses in which an invoice can no longer be paid: a retry needs a new one.
ENDED = frozenset(
    {InvoiceStatus.FAILED, InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED}
)


#: The smallest price and order amount: nothing is sold for free or less.
MIN_PRICE = Decimal("0.01")


def positive(field: str, name: str, message: _StrOrPromise) -> models.CheckConstraint:
    """``field > 0`` for every row; Django 5.1 renamed ``check=`` to
    ``condition=`` (and 6.0 drops ``check=``), 4.2 knows only ``check=``."""
    keyword = "condition" if django.VERSION >= (5, 1) else "check"
    condition: dict[str, Any] = {keyword: models.Q(**{f"{field}__gt": 0})}
    return models.CheckConstraint(
        name=name, violation_error_message=message, **condition
    )


class Product(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    price = models.DecimalField(
        _("price"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(MIN_PRICE)],
    )
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    is_active = models.BooleanField(_("on sale"), default=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["price", "id"]
        constraints = [
            # Also for rows written without full_clean() (fixtures, the shell,
            # update()): a payment provider refuses a zero or negative amount.
            positive(
                "price",
                "shop_product_price_positive",
                _("A product's price must be positive."),
            )
        ]

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    class Status(models.TextChoices):
        AWAITING_PAYMENT = "awaiting_payment", _("Awaiting payment")
        PAID = "paid", _("Paid")
        DECLINED = "declined", _("Payment declined")
        REFUNDED = "refunded", _("Refunded")

    # The order page is reached by this reference, not by the guessable number.
    uuid = models.UUIDField(
        _("reference"), default=uuid.uuid4, unique=True, editable=False
    )
    product = models.ForeignKey(
        Product,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("product"),
    )
    # Copied from the product: a later price change does not change the order.
    amount = models.DecimalField(
        _("amount"),
        max_digits=12,
        decimal_places=2,
        validators=[MinValueValidator(MIN_PRICE)],
    )
    currency = models.CharField(_("currency"), max_length=3, default="RUB")
    email = models.EmailField(_("e-mail"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    #: Set by the ``invoice_paid`` signal receiver (see receivers.py).
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        constraints = [
            positive(
                "amount",
                "shop_order_amount_positive",
                _("An order's amount must be positive."),
            )
        ]

    def __str__(self) -> str:
        return _("Order %(number)s") % {"number": self.number}

    def get_absolute_url(self) -> str:
        return reverse("shop:order", kwargs={"ref": self.uuid})

    @property
    def number(self) -> str:
        return str(self.pk or "")

    def invoices(self) -> list[Invoice]:
        """Every invoice of this order, oldest first."""
        return [attempt.invoice for attempt in self.attempts.all()]

    def latest_invoices(self) -> dict[str, Invoice]:
        """The newest invoice of each provider alias."""
        return {invoice.provider: invoice for invoice in self.invoices()}

    @property
    def status(self) -> Order.Status:
        """Derived from the invoices: the provider's word, not the browser's."""
        invoices = self.invoices()
        statuses = {invoice.status for invoice in invoices}
        if statuses & {InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_REFUNDED}:
            return self.Status.PAID
        if InvoiceStatus.REFUNDED in statuses:
            return self.Status.REFUNDED
        # Until a payment succeeds, the last attempt that ended says how it went;
        # a new attempt started after a decline does not hide the decline.
        ended = [i for i in invoices if i.status in ENDED]
        if ended:
            last = max(ended, key=lambda i: (i.status_changed_at or i.created_at, i.pk))
            if last.status == InvoiceStatus.FAILED:
                return self.Status.DECLINED
        return self.Status.AWAITING_PAYMENT

    @property
    def paid_invoice(self) -> Invoice | None:
        """The invoice that paid the order (the first, if it was paid twice)."""
        paid = [i for i in self.invoices() if i.is_paid]
        return min(paid, key=lambda i: (i.paid_at or i.created_at, i.pk), default=None)

    def get_status_display(self) -> str:
        return str(self.status.label)

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID


class PaymentAttempt(models.Model):
    """One invoice of an order: one per provider, and a new one for each retry
    (after a decline, an expiry or a cancellation)."""

    order = models.ForeignKey(
        Order,
        on_delete=models.CASCADE,
        related_name="attempts",
        verbose_name=_("order"),
    )
    # PROTECT: the record of money that moved outlives a deleted order.
    invoice = models.OneToOneField(
        Invoice,
        on_delete=models.PROTECT,
        related_name="shop_attempt",
        verbose_name=_("invoice"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment attempt")
        verbose_name_plural = _("payment attempts")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.order} / {self.invoice.provider}"
