"""Read-only admin of what the emulators remember, and injected faults."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import (
    EmulatedFault,
    EmulatedIdempotencyKey,
    EmulatedPayment,
    WebhookDelivery,
)
from .webhooks import send_webhook


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    )
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(EmulatedPayment)
class EmulatedPaymentAdmin(ReadOnlyAdmin):
    list_display = [
        "external_id",
        "slug",
        "status",
        "amount",
        "currency",
        "refunded_amount",
        "reference",
        "created_at",
    ]
    list_filter = ["slug", "status", "currency"]
    search_fields = ["external_id", "reference", "order_id", "customer_email"]
    date_hierarchy = "created_at"
    inlines = [WebhookDeliveryInline]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "slug",
        "event_type",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["slug", "status", "event_type"]
    search_fields = ["event_id", "url", "payment__external_id"]
    actions = ["send_now"]

    @admin.action(description=_("Send the selected webhooks again now"))
    def send_now(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]
    ) -> None:
        sent = [send_webhook(delivery) for delivery in queryset]
        delivered = sum(d.status == WebhookDelivery.Status.DELIVERED for d in sent)
        self.message_user(
            request,
            ngettext(
                "%(delivered)d of %(count)d webhook delivered.",
                "%(delivered)d of %(count)d webhooks delivered.",
                len(sent),
            )
            % {"delivered": delivered, "count": len(sent)},
            messages.SUCCESS if delivered == len(sent) else messages.WARNING,
        )


@admin.register(EmulatedIdempotencyKey)
class EmulatedIdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["key", "slug", "response_status", "created_at"]
    list_filter = ["slug"]
    search_fields = ["key"]


@admin.register(EmulatedFault)
class EmulatedFaultAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "endpoint",
        "status",
        "delay",
        "after",
        "remaining",
        "created_at",
    ]
    list_filter = ["slug"]
