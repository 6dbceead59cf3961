"""The summary lines of a reconciliation or expiry report (shared by
``payments_reconcile`` and ``payments_expire``)."""

from __future__ import annotations

from django.utils.translation import gettext as _

from ...jobs import RunReport


def report_lines(report: RunReport) -> list[str]:
    if report.dry_run:
        lines = [
            _("Dry run: %(count)s invoice(s) would be asked; nothing changed.")
            % {"count": len(report.asked)}
        ]
        lines += [_("Invoice %(pk)s") % {"pk": pk} for pk in report.asked]
    else:
        lines = [
            _("%(asked)s invoice(s) asked, %(changed)s changed, %(errors)s error(s).")
            % {
                "asked": len(report.asked),
                "changed": len(report.changes),
                "errors": len(report.errors),
            }
        ]
    lines += [
        _("Invoice %(invoice)s (%(alias)s): %(old)s -> %(new)s")
        % {"invoice": c.invoice, "alias": c.alias, "old": c.old, "new": c.new}
        for c in report.changes
    ]
    lines += [
        _("Invoice %(invoice)s (%(alias)s) could not be asked: %(error)s") % error
        for error in report.errors
    ]
    lines += [
        _("%(alias)s is unreachable, its invoices are unchanged: %(error)s")
        % {"alias": alias, "error": error}
        for alias, error in sorted(report.unreachable.items())
    ]
    if report.cursor is not None:
        lines.append(
            _("Stopped at the limit; continue with --after %(cursor)s (or --resume).")
            % {"cursor": report.cursor}
        )
    return lines
