"""A call about an invoice's payment (a refund) needs the provider's id of that
payment: without one (a payment never registered, a notification that carried
no id) the provider refuses before any request, with the reason, instead of
sending one to ``payments//refunds`` and answering a 502
(:meth:`BaseProvider.payment_id
<django_payments_ru.providers.base.BaseProvider.payment_id>`)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import override_settings

from django_payments_ru import services
from django_payments_ru.events import EventType
from django_payments_ru.exceptions import NotSupported
from django_payments_ru.providers.http import HttpClient
from tests.helpers import event
from tests.providers.payconnect import cases as payconnect
from tests.settings import PAYMENTS_RU

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("alias", ["sandbox", payconnect.ALIAS])
def test_a_refund_without_a_payment_id_is_refused_before_any_request(alias):
    with override_settings(PAYMENTS_RU=payconnect.with_payconnect(PAYMENTS_RU)):
        invoice = services.create_invoice(
            provider=alias, amount="100.00", customer_email="buyer@example.com"
        )
        services.apply_event(event(invoice, EventType.PAID))
        invoice.refresh_from_db()
        assert invoice.is_paid and not invoice.provider_payment_id
        with (
            mock.patch.object(HttpClient, "request") as request,
            pytest.raises(NotSupported, match="payment is known"),
        ):
            services.refund_invoice(invoice, "40.00")
        request.assert_not_called()
        invoice.refresh_from_db()
        assert invoice.refunded_amount == 0
