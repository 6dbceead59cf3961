"""How the shop learns that an order was paid: the ``invoice_paid`` signal.

It is sent once, after the transaction that marked the invoice paid has
committed, whichever way the news came (webhook, status check, admin).
"""

import logging

from django.dispatch import receiver
from django.utils import timezone

from django_payments_ru.signals import invoice_paid, invoice_paid_twice

from .models import Order

logger = logging.getLogger("shop")


@receiver(invoice_paid, dispatch_uid="shop.mark_order_paid")
def mark_order_paid(sender, invoice, **kwargs):
    orders = Order.objects.filter(attempts__invoice=invoice, paid_at__isnull=True)
    for order in orders:
        # The conditional update makes a second payment (another provider, a
        # customer who paid twice) leave the first payment time alone.
        if Order.objects.filter(pk=order.pk, paid_at__isnull=True).update(
            paid_at=timezone.now()
        ):
            # A real shop would ship the order and send the receipt here.
            logger.info(
                "Order %s paid through %s (invoice %s)",
                order.number,
                invoice.provider,
                invoice.uuid,
            )


@receiver(invoice_paid_twice, dispatch_uid="shop.order_paid_twice")
def order_paid_twice(sender, invoice, other_invoice, **kwargs):
    # The invoice is flagged "paid twice" in the admin, where the merchant
    # refunds one of the payments; a real shop would also tell its staff here.
    logger.warning(
        "Order paid twice: invoice %s (%s) after invoice %s (%s); refund one",
        invoice.uuid,
        invoice.provider,
        other_invoice.uuid,
        other_invoice.provider,
    )
