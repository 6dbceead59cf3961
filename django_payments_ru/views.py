"""The generic webhook view, the pay link and the customer's return view."""

from __future__ import annotations

import logging
import uuid

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from . import customer, services
from .conf import payments_settings
from .exceptions import (
    ConfigurationError,
    InvalidInput,
    InvalidOperation,
    OperationInFlight,
    PaymentsError,
    UnknownProvider,
    WebhookError,
)
from .models import Invoice, WebhookEvent
from .paylinks import read_token
from .providers.base import BaseProvider, Capability
from .providers.payload import webhook_parsing, webhook_verifying
from .registry import get_provider
from .status import PAYABLE
from .validation import check_return_url, safe_redirect_url

logger = logging.getLogger("django_payments_ru.webhooks")


@transaction.non_atomic_requests
@csrf_exempt
@require_POST
def webhook(request: HttpRequest, alias: str) -> HttpResponse:
    """``POST <prefix>/webhooks/<alias>/``: verify, parse, store, process, answer.

    Nothing is written unless the provider's verification passes. A verified
    body whose content cannot be understood or stored (malformed JSON or form,
    an invalid amount or currency, ids longer than their columns, NUL or other
    unsafe text, absurd numbers or nesting) is answered 400 with nothing
    written: the same body would fail again, so a retry is pointless. Each
    event is stored once; a redelivered event that was already processed is
    acknowledged without rework. A processing error is kept on the stored event
    (with its traceback) and answered with HTTP 500, so that the provider
    delivers again.

    Never inside the request's transaction (``ATOMIC_REQUESTS``): storing and
    processing use their own, so a processing failure cannot undo the stored
    event and locks are held only as long as processing takes.
    """
    try:
        provider = get_provider(alias)
    except UnknownProvider:
        raise Http404("No such payment provider") from None
    except ConfigurationError as exc:
        # A known alias whose settings are broken: the merchant must fix them,
        # and the provider should keep delivering until then. The message names
        # the setting; the answer says nothing about it.
        logger.error("The %s webhook cannot be served: %s", alias, exc)
        return HttpResponse(
            "provider misconfigured", status=500, content_type="text/plain"
        )
    try:
        with webhook_verifying(alias):
            provider.verify_webhook(request)
    except WebhookError as exc:
        return _refused(provider, request, exc)
    try:
        # webhook_parsing is the safety net for a provider whose parse_webhook
        # lets an InvalidAmount, KeyError, RecursionError... escape.
        with webhook_parsing(alias):
            events = provider.parse_webhook(request)
        if payments_settings.WEBHOOK_PROCESSING == "celery":
            pending = [
                row.pk
                for row in services.record_events(provider, events)
                if not row.is_done
            ]
            if pending and not _queue_after_commit(alias, pending):
                return HttpResponse(
                    "processing failed, please retry",
                    status=500,
                    content_type="text/plain",
                )
        elif not services.receive_webhook_events(provider, events):
            return HttpResponse(
                "processing failed, please retry",
                status=500,
                content_type="text/plain",
            )
    except WebhookError as exc:
        return _refused(provider, request, exc)
    return provider.webhook_response(request, events)


def _queue_after_commit(alias: str, pks: list[int]) -> bool:
    """Queue the processing of the stored events ``pks`` once they are committed
    (``WEBHOOK_PROCESSING = "celery"``). Returns False only when Celery runs
    eagerly and processing failed, which the webhook answers like ``"sync"``
    mode: with a 5xx, so that the provider delivers it again.

    The answer never depends on the broker: when it cannot take the task (down,
    unreachable, refusing), the events are stored already, so the webhook is
    still acknowledged and the failure logged once, as one warning per webhook
    without a traceback (a broker outage must not flood the logs). The events
    stay ``received`` until the sweeper (``manage.py payments_process_events``
    or its periodic task) or the provider's next delivery queues them."""
    from .tasks import process_webhook_event_task

    eager = bool(process_webhook_event_task.app.conf.task_always_eager)
    outcome = {"ok": True}

    def send() -> None:
        for index, pk in enumerate(pks):
            try:
                process_webhook_event_task.delay(pk)
            except Exception as exc:
                if eager:
                    # Processed in this process: the failure is kept on the row
                    # and logged by the services.
                    outcome["ok"] = False
                    continue
                # The broker is unreachable: the next events would fail the
                # same way, and each would wait for its own timeout.
                logger.warning(
                    "Could not queue %d stored %s webhook event(s) %s for "
                    "processing: the broker refused them (%s). They stay "
                    "received until the sweeper (manage.py "
                    "payments_process_events) queues them.",
                    len(pks) - index,
                    alias,
                    pks[index:],
                    # The class only: a broker's message may quote its URL.
                    type(exc).__name__,
                )
                return

    transaction.on_commit(send)
    return outcome["ok"]


def _refused(
    provider: BaseProvider, request: HttpRequest, exc: WebhookError
) -> HttpResponse:
    # The code and the class only: a message may quote the body.
    logger.warning(
        "Refused a %s webhook: %s (%s)", provider.alias, exc.code, type(exc).__name__
    )
    return provider.webhook_error_response(request, exc)


@transaction.non_atomic_requests
@csrf_exempt
@require_http_methods(["GET", "POST", "HEAD"])
def return_view(request: HttpRequest, ref: str | uuid.UUID) -> HttpResponse:
    """Where the provider sends the customer back.

    Whatever the provider put in the URL or form is ignored: the browser is never
    proof of payment. The view shows the stored status, asking the provider first
    when the invoice still waits for it, then sends the customer to the invoice's
    ``return_url`` (the shop's order page) if it has one and it still passes the
    checks of :func:`~django_payments_ru.services.create_invoice` (a row stored
    before them, or since a host was removed from ``RETURN_URL_HOSTS``, gets the
    page instead). It never answers with a server error: a failed status check
    is logged and the stored status shown.

    Never inside the request's transaction (``ATOMIC_REQUESTS``): the status
    check calls the provider, which the services refuse inside a transaction.
    """
    try:
        key = ref if isinstance(ref, uuid.UUID) else uuid.UUID(str(ref))
    except ValueError:
        raise Http404("No such invoice") from None
    invoice = get_object_or_404(Invoice, uuid=key)
    if invoice.is_awaiting_provider and payments_settings.REFRESH_ON_RETURN:
        try:
            provider = invoice.get_provider()
            if provider.supports(Capability.STATUS):
                invoice = services.refresh_invoice(invoice)
        except (PaymentsError, ConfigurationError) as exc:
            logger.warning(
                "Status check on return failed for %s: %s",
                invoice.uuid,
                type(exc).__name__,
            )
        except Exception:  # the customer still gets the page
            logger.exception("Status check on return failed for %s", invoice.uuid)
            invoice.refresh_from_db()
    if invoice.return_url:
        try:
            return HttpResponseRedirect(check_return_url(invoice.return_url))
        except (InvalidInput, ConfigurationError) as exc:
            logger.warning(
                "Not redirecting invoice %s to its return_url: %s", invoice.uuid, exc
            )
    return render(
        request, "django_payments_ru/return.html", customer.page_context(invoice)
    )


def _pay_page(
    request: HttpRequest, invoice: Invoice, status: int = 200, **values: object
) -> HttpResponse:
    context = {
        **customer.page_context(invoice),
        "state": "status",
        "provider_name": customer.provider_name(invoice),
        **values,
    }
    return render(request, "django_payments_ru/pay.html", context, status=status)


@transaction.non_atomic_requests
@never_cache
@require_http_methods(["GET", "HEAD"])
def pay_view(request: HttpRequest, token: str) -> HttpResponse:
    """``<prefix>/pay/<token>/``: the invoice's pay link.

    Starts the payment on first use (:func:`~django_payments_ru.services.start_payment`;
    later visits reuse the stored checkout while it is valid) and sends the
    customer on: a redirect for a GET checkout (a page with the link when the
    checkout has a QR code), an auto-submitting form with a button for a POST
    checkout. An invoice that cannot be paid shows its state; a provider that
    fails shows "try again" with HTTP 503, never a server error. A token not
    signed by this project is 404. ``HEAD`` (a link preview) starts nothing.

    Never inside the request's transaction (``ATOMIC_REQUESTS``): starting
    calls the provider, which the services refuse inside a transaction.
    """
    key = read_token(token)
    if key is None:
        raise Http404("No such invoice")
    invoice = get_object_or_404(Invoice, uuid=key)
    if request.method == "HEAD" or invoice.status not in PAYABLE:
        return _pay_page(request, invoice)
    try:
        checkout = services.start_payment(invoice, request)
        if not safe_redirect_url(checkout.url):
            raise PaymentsError(
                "The provider returned a payment URL that is not http(s).",
                provider=invoice.provider,
            )
    except OperationInFlight:
        # Another tab is starting it and did not finish in time.
        return _pay_page(request, invoice, status=503, state="error")
    except InvalidOperation as exc:
        # Paid, cancelled or put on hold meanwhile (start_payment re-read it),
        # or its order was paid through another invoice.
        logger.info("Pay link of invoice %s: %s", invoice.uuid, exc)
        if invoice.status in PAYABLE:
            return _pay_page(
                request, invoice, status_message=customer.paid_elsewhere_message()
            )
        return _pay_page(request, invoice)
    except (PaymentsError, ImproperlyConfigured) as exc:
        logger.warning(
            "Cannot start the payment of invoice %s: %s: %s",
            invoice.uuid,
            type(exc).__name__,
            exc,
        )
        return _pay_page(request, invoice, status=503, state="error")
    except Exception:
        # A provider bug must not become an error page for the customer.
        logger.exception("Cannot start the payment of invoice %s", invoice.uuid)
        return _pay_page(request, invoice, status=503, state="error")
    qr = customer.checkout_qr(invoice, checkout)
    if checkout.method == "GET" and qr is None:
        return HttpResponseRedirect(checkout.url)
    name = customer.provider_name(invoice)
    return _pay_page(
        request,
        invoice,
        state="checkout",
        checkout=checkout,
        qr=qr,
        # A list of pairs: a template lookup of ``fields.items`` would return a
        # field named "items" instead of calling the method.
        fields=list(checkout.fields.items()),
        dom_id=f"payments-ru-checkout-{invoice.uuid}",
        nonce=getattr(request, "csp_nonce", ""),
        label=_("Pay with %(provider)s") % {"provider": name},
    )


__all__ = ["WebhookEvent", "pay_view", "return_view", "webhook"]
