"""The admin's status page: what ``manage.py payments_status`` shows (webhook
events failed, pending or given up; invoices flagged or waiting for the
provider; the last reconciliation and expiry), per provider, linked from the
invoice list. :class:`StatusPage` adds its URL to the invoice admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.translation import gettext as _

from .. import jobs


def _rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"alias": alias, **counts} for alias, counts in summary["providers"].items()
    ]


def _runs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    names = {"reconcile": _("Last reconciliation"), "expire": _("Last expiry")}
    return [
        {"name": names[job], "run": run, "at": jobs.run_time(run)}
        for job, run in summary["last_runs"].items()
    ]


class StatusPage(admin.ModelAdmin):
    """The ``status/`` page of the invoice admin
    (``admin:django_payments_ru_invoice_status``)."""

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "status/",
                self.admin_site.admin_view(self.status_view),
                name="{}_{}_status".format(*info),
            ),
            *super().get_urls(),
        ]

    def _webhooks_url(self) -> str:
        try:
            return reverse(
                f"admin:{self.opts.app_label}_webhookevent_changelist",
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:  # the inbox is not registered on this site
            return ""

    def status_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        summary = jobs.status_summary()
        context = {
            **self.admin_site.each_context(request),
            "title": _("Payments status"),
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "summary": summary,
            "rows": _rows(summary),
            "totals": summary["totals"],
            "runs": _runs(summary),
            "changelist_url": reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist",
                current_app=self.admin_site.name,
            ),
            "webhooks_url": self._webhooks_url(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_payments_ru/status.html", context
        )
