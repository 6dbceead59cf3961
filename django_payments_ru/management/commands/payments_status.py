"""``manage.py payments_status``: what needs the merchant, per provider
(:func:`django_payments_ru.jobs.status_summary`; the admin shows the same)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from ... import jobs
from ..base import JobCommand

COLUMNS = ("failed", "received", "gave_up", "flagged", "waiting")


def headers() -> dict[str, str]:
    return {
        "failed": _("events failed"),
        "received": _("events pending"),
        "gave_up": _("events given up"),
        "flagged": _("invoices flagged"),
        "waiting": _("invoices waiting"),
    }


def run_line(job: str, run: dict[str, Any] | None) -> str:
    names = {"reconcile": _("Last reconciliation"), "expire": _("Last expiry")}
    if not run:
        return _("%(job)s: never") % {"job": names[job]}
    return _(
        "%(job)s: %(at)s, %(asked)s asked, %(changed)s changed, %(errors)s "
        "error(s), unreachable: %(unreachable)s"
    ) % {
        "job": names[job],
        "at": run.get("at", "?"),
        "asked": run.get("asked", 0),
        "changed": run.get("changed", 0),
        "errors": run.get("errors", 0),
        "unreachable": ", ".join(run.get("unreachable") or []) or "-",
    }


class Command(JobCommand):
    help = _(
        "Show the webhook events failed or pending, the invoices flagged or "
        "waiting for the provider, and the last reconciliation, per provider."
    )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        summary = jobs.status_summary()
        titles = headers()
        names = [_("provider"), *(titles[c] for c in COLUMNS)]
        table = [
            [alias, *(str(counts[c]) for c in COLUMNS)]
            for alias, counts in summary["providers"].items()
        ]
        table.append([_("total"), *(str(summary["totals"][c]) for c in COLUMNS)])
        widths = [
            max(len(row[i]) for row in [names, *table]) for i in range(len(names))
        ]
        lines = [
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
            for row in [names, *table]
        ]
        lines += [run_line(job, run) for job, run in summary["last_runs"].items()]
        lines.append(
            _("Needs attention.") if summary["needs_attention"] else _("All is well.")
        )
        self.finish(summary, as_json, lines)
