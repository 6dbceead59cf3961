"""``manage.py payments_reconcile``: ask the providers about the invoices
still waiting for them (:func:`django_payments_ru.jobs.reconcile`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from ... import jobs
from ..base import JobCommand, duration
from ._runs import report_lines


class Command(JobCommand):
    help = _(
        "Ask the providers where the invoices still waiting for them stand "
        "(oldest first) and apply the answers."
    )
    label = _("Invoices")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--alias", default=None, help=_("Only this provider alias's invoices.")
        )
        parser.add_argument(
            "--older-than",
            type=duration,
            default=None,
            help=_(
                "Only invoices created this long ago: 90s, 10m, 2h, 1d "
                "(default: RECONCILE_AFTER)."
            ),
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=_("At most this many invoices (default: RECONCILE_LIMIT)."),
        )
        parser.add_argument(
            "--after",
            type=int,
            default=None,
            metavar="PK",
            help=_("Continue after this invoice (the cursor a run printed)."),
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help=_("Continue after where the last run stopped."),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("List the invoices that would be asked; ask nobody."),
        )

    def handle(
        self,
        *args: Any,
        alias: str | None,
        older_than: timedelta | None,
        limit: int | None,
        after: int | None,
        resume: bool,
        dry_run: bool,
        as_json: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        if limit is not None and limit < 1:
            raise self.usage(_("--limit must be at least 1."))
        if alias and alias not in jobs.registry.aliases():
            raise self.usage(
                _("Unknown provider alias %(alias)s.") % {"alias": repr(alias)}
            )
        progress = None if dry_run else self.progress(as_json, verbosity)
        try:
            report = jobs.reconcile(
                alias=alias,
                older_than=older_than,
                limit=limit,
                after=after,
                resume=resume,
                dry_run=dry_run,
                progress=progress or jobs.no_progress,
            )
        finally:
            if progress:
                progress.close()
        self.finish(report.to_json(), as_json, report_lines(report))
