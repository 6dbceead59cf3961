"""The generic webhook view and the customer's return view."""

from __future__ import annotations

import logging
from functools import partial

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from . import services
from .conf import payments_settings
from .exceptions import ConfigurationError, PaymentsError, WebhookError
from .models import Invoice, WebhookEvent
from .providers.base import Capability
from .registry import get_provider

logger = logging.getLogger("django_payments_ru.webhooks")


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, alias: str) -> HttpResponse:
    """``POST <prefix>/webhooks/<alias>/``: verify, parse, store, process, answer.

    Nothing is written unless the provider's verification passes. Each event is
    stored once; a redelivered event that was already processed is acknowledged
    without rework. A processing error is kept on the stored event (with its
    traceback) and answered with HTTP 500, so that the provider delivers again.
    """
    try:
        provider = get_provider(alias)
    except ConfigurationError:
        raise Http404("No such payment provider") from None
    try:
        provider.verify_webhook(request)
        events = provider.parse_webhook(request)
    except WebhookError as exc:
        logger.warning(
            "Refused a %s webhook: %s (%s)", alias, exc.code, type(exc).__name__
        )
        return provider.webhook_error_response(request, exc)

    rows = services.record_events(provider, events)
    if payments_settings.WEBHOOK_PROCESSING == "celery":
        from django.db import transaction

        from .tasks import process_webhook_event_task

        for row in rows:
            if not row.is_done:
                transaction.on_commit(partial(process_webhook_event_task.delay, row.pk))
    else:
        failed = False
        for row in rows:
            if row.is_done:
                continue
            try:
                services.process_webhook_event(row.pk)
            except Exception:  # kept on the row; the provider will deliver again
                failed = True
        if failed:
            return HttpResponse(
                "processing failed, please retry",
                status=500,
                content_type="text/plain",
            )
    return provider.webhook_response(request, events)


@csrf_exempt
@require_http_methods(["GET", "POST", "HEAD"])
def return_view(request: HttpRequest, ref: str) -> HttpResponse:
    """Where the provider sends the customer back.

    Whatever the provider put in the URL or form is ignored: the browser is never
    proof of payment. The view shows the stored status, asking the provider first
    when the invoice still waits for it, then sends the customer to the invoice's
    ``return_url`` (the shop's order page) if it has one.
    """
    invoice = get_object_or_404(Invoice, uuid=ref)
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
    if invoice.return_url:
        return redirect(invoice.return_url)
    return render(request, "django_payments_ru/return.html", {"invoice": invoice})


__all__ = ["WebhookEvent", "return_view", "webhook"]
