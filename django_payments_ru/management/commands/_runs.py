"""What ``payments_reconcile`` and ``payments_expire`` share: the options of
a run over invoices (``--alias``, ``--limit``, ``--dry-run``), its checks and
its progress, and the summary lines of its report."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ... import jobs
from ...jobs import RunReport
from ..base import JobCommand


class InvoiceJobCommand(JobCommand):
    """A command that runs a job over invoices, one alias or all."""

    label = gettext_lazy("Invoices")
    #: The help of ``--limit`` (it names the setting of the default).
    limit_help: Any = ""

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--alias", default=None, help=_("Only this provider alias's invoices.")
        )
        parser.add_argument("--limit", type=int, default=None, help=self.limit_help)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("List the invoices that would be asked; ask nobody."),
        )

    def run_job(
        self, job: Callable[..., RunReport], options: dict[str, Any], **params: Any
    ) -> None:
        """Check the shared ``options``, run ``job`` with them, ``params`` and a
        progress line, and report."""
        alias, limit, dry_run = options["alias"], options["limit"], options["dry_run"]
        as_json, verbosity = options["as_json"], options["verbosity"]
        if limit is not None and limit < 1:
            raise self.usage(_("--limit must be at least 1."))
        if alias and alias not in jobs.registry.aliases():
            raise self.usage(
                _("Unknown provider alias %(alias)s.") % {"alias": repr(alias)}
            )
        progress = None if dry_run else self.progress(as_json, verbosity)
        try:
            report = job(
                alias=alias,
                limit=limit,
                dry_run=dry_run,
                progress=progress or jobs.no_progress,
                **params,
            )
        finally:
            if progress:
                progress.close()
        self.finish(report.to_json(), as_json, report_lines(report))


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
