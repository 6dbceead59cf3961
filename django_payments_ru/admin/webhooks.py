"""The webhook inbox: :class:`WebhookEventAdmin`, a read-only page of what
the providers sent, with the "Reprocess" action for failed and rejected events.
Webhook payloads are stored already redacted; provider options are never shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import services
from ..models import WebhookEvent
from .base import (
    OPERATION_ERRORS,
    _alias_name,
    _preformatted_field,
    _RecordAdmin,
    _result_field,
    logger,
)
from .scale import (
    EstimatedCountPaginator,
    IndexedChangeList,
    ProviderFilter,
    search_webhook_events,
)

#: The statuses whose event's page offers "Reprocess": the ones that did not
#: do what they came for.
REPROCESS_BUTTON = frozenset({WebhookEvent.Status.FAILED, WebhookEvent.Status.REJECTED})

#: How many characters of an event id the list shows.
SHORT_ID = 20


def _shorten(text: str) -> str:
    return text if len(text) <= SHORT_ID else text[: SHORT_ID - 1] + "…"


def _event_label(row: WebhookEvent) -> str:
    """ "Sandbox, Paid, evt_1": the event in a message, by the provider's name."""
    return _("%(provider)s, %(type)s, %(id)s") % {
        "provider": _alias_name(row.provider),
        "type": row.get_event_type_display(),
        "id": _shorten(row.dedupe_id),
    }


@admin.register(WebhookEvent)
class WebhookEventAdmin(_RecordAdmin):
    """Read-only: events are facts a provider sent. Reprocess re-runs a failed or
    rejected one through the services."""

    list_display = (
        "event_id_display",
        "provider_display",
        "event_type",
        "status",
        "invoice_link",
        "attempts",
        "needs_attention",
        "deliveries",
        "received_at",
    )
    list_display_links = ("event_id_display",)
    # The columns an index sorts either way at a million rows (admin/scale.py).
    sortable_by = ("provider_display", "event_type", "status", "received_at")
    change_form_template = "admin/django_payments_ru/webhookevent/change_form.html"
    list_filter = ("status", "needs_attention", ProviderFilter, "event_type")
    # What the search looks at; get_search_results builds the lookups
    # (admin/scale.py): no join of the invoice table.
    search_fields = ("dedupe_id", "invoice__uuid", "invoice__order_id")
    search_help_text = gettext_lazy(
        "The event id, whole or its beginning; the invoice's order id, whole or "
        "its beginning, or its whole reference (UUID)."
    )
    # At scale: no full count, no date hierarchy, no facet counts.
    show_full_result_count = False
    if hasattr(admin, "ShowFacets"):  # Django 5.0+; 4.2 counts no facets
        show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = ("reprocess",)
    fields = (
        "provider",
        "dedupe_id",
        "event_type",
        "status",
        "invoice_link",
        "result_display",
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
    result_display = _result_field("result_text")
    event_display = _preformatted_field("event", gettext_lazy("event"), as_json=True)
    payload_display = _preformatted_field(
        "payload", gettext_lazy("payload"), as_json=True
    )

    # --- columns -------------------------------------------------------------------

    def get_changelist(
        self, request: HttpRequest, **kwargs: Any
    ) -> type[IndexedChangeList]:
        return IndexedChangeList

    @admin.display(description=gettext_lazy("event id"), ordering="dedupe_id")
    def event_id_display(self, obj: WebhookEvent) -> SafeString:
        # Some ids are 60+ characters (a hash of the signed payload): the list
        # shows the start, the full id on hover and on the event's page.
        return format_html(
            '<span title="{}">{}</span>', obj.dedupe_id, _shorten(obj.dedupe_id)
        )

    @admin.display(description=gettext_lazy("provider"), ordering="provider")
    def provider_display(self, obj: WebhookEvent) -> str:
        return _alias_name(obj.provider)

    # --- reprocessing: the action, and the button on the event's page ---------

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        return search_webhook_events(queryset, search_term), False

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/reprocess/",
                self.admin_site.admin_view(self.reprocess_view),
                name="{}_{}_reprocess".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = dict(extra_context or {})
        row = self.get_object(request, unquote(object_id))
        if (
            row is not None
            and row.status in REPROCESS_BUTTON
            and self.has_reprocess_permission(request)
        ):
            extra["payments_ru_reprocess_url"] = reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_reprocess",
                args=[row.pk],
                current_app=self.admin_site.name,
            )
        return super().change_view(request, object_id, form_url, extra)

    def reprocess_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The event page's "Reprocess" button: POST only, then back to the page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reprocess_permission(request):
            raise PermissionDenied
        row = self.get_object(request, unquote(object_id))
        if row is None:
            raise Http404(_("No such webhook event."))
        self._reprocess(request, row)
        return HttpResponseRedirect(
            reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                args=[row.pk],
                current_app=self.admin_site.name,
            )
        )

    @admin.action(description=gettext_lazy("Reprocess"), permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for row in queryset.order_by("received_at", "pk"):
            self._reprocess(request, row)

    def _reprocess(self, request: HttpRequest, row: WebhookEvent) -> None:
        """Run ``row`` again and say how it went."""
        label = _event_label(row)
        if row.is_done and row.status != WebhookEvent.Status.REJECTED:
            # A processed or ignored event changed what it had to: running
            # it again would be a no-op (see services.process_webhook_event).
            self.message_user(
                request,
                _("%(event)s: already %(status)s; nothing to do.")
                % {"event": label, "status": row.get_status_display()},
                messages.INFO,
            )
            return
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
            return
        self.message_user(
            request,
            _("%(event)s: %(status)s%(result)s")
            % {
                "event": label,
                "status": done.get_status_display(),
                "result": f" ({done.result_text})" if done.result_text else "",
            },
            messages.SUCCESS
            if done.status != WebhookEvent.Status.FAILED
            else messages.ERROR,
        )
