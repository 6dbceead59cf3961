"""``manage.py payments_expire``: expire the invoices whose provider session
is over, each confirmed by a status query first
(:func:`django_payments_ru.jobs.expire`)."""

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
        "Expire the invoices whose payment session at the provider is over, "
        "once the provider confirms that they were not paid."
    )
    label = _("Invoices")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--alias", default=None, help=_("Only this provider alias's invoices.")
        )
        parser.add_argument(
            "--grace",
            type=duration,
            default=None,
            help=_(
                "How long after the session's end: 90s, 10m, 2h "
                "(default: EXPIRY_GRACE)."
            ),
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help=_("At most this many invoices (default: EXPIRY_LIMIT)."),
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
        grace: timedelta | None,
        limit: int | None,
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
            report = jobs.expire(
                alias=alias,
                grace=grace,
                limit=limit,
                dry_run=dry_run,
                progress=progress or jobs.no_progress,
            )
        finally:
            if progress:
                progress.close()
        self.finish(report.to_json(), as_json, report_lines(report))
