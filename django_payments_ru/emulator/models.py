"""What the emulated providers remember: payments, idempotency keys, webhook
deliveries and injected faults.

Each emulator has its own status alphabet (``pending``/``succeeded`` for the
sandbox, ``PAID``/``EXPIRED`` for Love&Pay...), so statuses are free strings;
fields only one provider has go in :attr:`EmulatedPayment.data`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from ..exceptions import InvalidInput
from ..money import DECIMAL_PLACES, MAX_DIGITS, format_amount
from . import clock


def _now() -> datetime:
    # Late-bound, so a test that moves the emulator clock moves these too.
    # The migrations name this function: keep its name.
    return clock.now()


def _money_field(verbose_name: Any, **kwargs: Any) -> models.DecimalField:
    return models.DecimalField(
        verbose_name, max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs
    )


class EmulatedPayment(models.Model):
    """A payment as the emulated provider sees it."""

    slug = models.CharField(_("provider"), max_length=32)
    #: The provider's id of the payment (``pay_<16 hex>`` for the sandbox).
    external_id = models.CharField(_("provider payment id"), max_length=64)
    status = models.CharField(_("status"), max_length=32)
    amount = _money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3)
    refunded_amount = _money_field(_("refunded"), default=Decimal(0))
    #: The merchant's reference of the payment (our invoice's UUID).
    reference = models.CharField(_("reference"), max_length=255, blank=True)
    order_id = models.CharField(_("order id"), max_length=255, blank=True)
    description = models.TextField(_("description"), blank=True)
    customer_email = models.CharField(_("customer e-mail"), max_length=254, blank=True)
    return_url = models.CharField(_("return URL"), max_length=2000, blank=True)
    webhook_url = models.CharField(_("webhook URL"), max_length=2000, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    #: Provider-specific fields (refunds, failure reason, payment URL...).
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=_now)
    updated_at = models.DateTimeField(_("updated"), default=_now)

    class Meta:
        verbose_name = _("emulated payment")
        verbose_name_plural = _("emulated payments")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug", "external_id"], name="payments_ru_emu_payment_id"
            ),
        ]
        indexes = [
            models.Index(fields=["slug", "reference"], name="payments_ru_emu_pay_ref"),
            models.Index(fields=["slug", "status"], name="payments_ru_emu_pay_st"),
        ]

    def __str__(self) -> str:
        try:
            amount = format_amount(self.amount, self.currency)
        except InvalidInput:  # a currency the app does not know
            amount = str(self.amount)
        return (
            f"{self.slug} {self.external_id}: {amount} {self.currency} ({self.status})"
        )

    def save(self, **kwargs: Any) -> None:
        # Keywords only: Django 5.1 deprecates save()'s positional arguments
        # (gone in 6.0), and a positional update_fields would skip updated_at.
        self.updated_at = clock.now()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "updated_at" not in update_fields:
            kwargs["update_fields"] = [*update_fields, "updated_at"]
        super().save(**kwargs)

    @property
    def refundable_amount(self) -> Decimal:
        return self.amount - self.refunded_amount

    def is_expired_at(self, when: datetime) -> bool:
        return self.expires_at is not None and when >= self.expires_at


class EmulatedIdempotencyKey(models.Model):
    """The first answer to a request carrying an idempotency key: the same key
    with the same request gets it again, with another request a conflict."""

    slug = models.CharField(_("provider"), max_length=32)
    key = models.CharField(_("key"), max_length=255)
    #: SHA-256 of the method, path and (canonical) body of the first request.
    request_hash = models.CharField(_("request hash"), max_length=64)
    response_status = models.PositiveSmallIntegerField(_("response status"))
    response_body = models.TextField(_("response body"), blank=True)
    response_content_type = models.CharField(
        _("response content type"), max_length=100, blank=True
    )
    created_at = models.DateTimeField(_("created"), default=_now)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug", "key"], name="payments_ru_emu_idem_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} {self.key}"


class WebhookDelivery(models.Model):
    """One webhook the emulator sends to the merchant, with its attempts."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("webhook delivery", "Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", pgettext_lazy("webhook delivery", "Failed")

    slug = models.CharField(_("provider"), max_length=32)
    payment = models.ForeignKey(
        EmulatedPayment,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_deliveries",
        verbose_name=_("payment"),
    )
    event_id = models.CharField(_("event id"), max_length=128, blank=True)
    event_type = models.CharField(_("event type"), max_length=64, blank=True)
    url = models.CharField(_("URL"), max_length=2000)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    body = models.TextField(_("body"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_status_code = models.PositiveSmallIntegerField(
        _("last HTTP status"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True)
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    #: When the retry runner sends it next; empty once delivered or given up.
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    #: Seconds to wait after the 1st, 2nd... failed attempt; its length is the
    #: number of retries.
    retry_schedule = models.JSONField(_("retry schedule"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"), default=_now)

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"], name="payments_ru_emu_wh_due"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} {self.event_type or 'webhook'} -> {self.url}"


class EmulatedFault(models.Model):
    """A fault injected into an emulator endpoint (see :mod:`.faults`)."""

    slug = models.CharField(_("provider"), max_length=32)
    #: The endpoint's name given by the emulator (``create``, ``get``...) or
    #: ``*`` for all of them.
    endpoint = models.CharField(_("endpoint"), max_length=64, default="*")
    #: The HTTP status to answer with; empty: answer normally (after the delay).
    status = models.PositiveSmallIntegerField(
        _("HTTP status"), null=True, blank=True, default=500
    )
    delay = models.FloatField(_("delay (seconds)"), default=0.0)
    #: Do the work first, then fail: the answer of a committed change is lost.
    after = models.BooleanField(_("fail after the work"), default=False)
    #: How many more calls it hits; empty: every call.
    remaining = models.PositiveIntegerField(
        _("remaining calls"), null=True, blank=True, default=1
    )
    created_at = models.DateTimeField(_("created"), default=_now)

    class Meta:
        verbose_name = _("injected fault")
        verbose_name_plural = _("injected faults")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        what = f"HTTP {self.status}" if self.status else _("delay")
        return f"{self.slug} {self.endpoint}: {what}"
