"""The webhook inbox: :class:`WebhookEventAdmin`, a read-only page of what
the providers sent, with the "Reprocess" action for failed and rejected events.
Webhook payloads are stored already redacted; provider options are never shown.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import services
from ..models import WebhookEvent
from .base import OPERATION_ERRORS, _preformatted_field, _RecordAdmin, logger


@admin.register(WebhookEvent)
class WebhookEventAdmin(_RecordAdmin):
    """Read-only: events are facts a provider sent. Reprocess re-runs a failed or
    rejected one through the services."""

    list_display = (
        "dedupe_id",
        "provider",
        "event_type",
        "status",
        "invoice_link",
        "attempts",
        "needs_attention",
        "deliveries",
        "received_at",
    )
    date_hierarchy = "received_at"
    list_filter = ("status", "needs_attention", "provider", "event_type")
    search_fields = ("dedupe_id", "invoice__uuid", "invoice__order_id")
    actions = ("reprocess",)
    fields = (
        "provider",
        "dedupe_id",
        "event_type",
        "status",
        "invoice_link",
        "result",
        "traceback_display",
        "attempts",
        "needs_attention",
        "deliveries",
        "received_at",
        "last_attempt_at",
        "processed_at",
        "event_display",
        "payload_display",
    )
    readonly_fields = fields

    traceback_display = _preformatted_field("traceback", gettext_lazy("traceback"))
    event_display = _preformatted_field("event", gettext_lazy("event"), as_json=True)
    payload_display = _preformatted_field(
        "payload", gettext_lazy("payload"), as_json=True
    )

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )

    @admin.action(description=gettext_lazy("Reprocess"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for row in queryset.order_by("received_at", "pk"):
            label = str(row)
            if row.is_done and row.status != WebhookEvent.Status.REJECTED:
                # A processed or ignored event changed what it had to: running
                # it again would be a no-op (see services.process_webhook_event).
                self.message_user(
                    request,
                    _("%(event)s: already %(status)s; nothing to do.")
                    % {"event": label, "status": row.get_status_display()},
                    messages.INFO,
                )
                continue
            try:
                done = services.process_webhook_event(row.pk, force=True)
            except Exception as exc:
                # The services kept the error and traceback on the row.
                if not isinstance(exc, OPERATION_ERRORS):
                    logger.warning(
                        "Reprocessing webhook event %s failed: %s",
                        row.pk,
                        type(exc).__name__,
                    )
                self.message_user(
                    request,
                    _("%(event)s: failed again: %(error)s")
                    % {"event": label, "error": f"{type(exc).__name__}: {exc}"},
                    messages.ERROR,
                )
                continue
            self.message_user(
                request,
                _("%(event)s: %(status)s%(result)s")
                % {
                    "event": label,
                    "status": done.get_status_display(),
                    "result": f" ({done.result})" if done.result else "",
                },
                messages.SUCCESS
                if done.status != WebhookEvent.Status.FAILED
                else messages.ERROR,
            )
