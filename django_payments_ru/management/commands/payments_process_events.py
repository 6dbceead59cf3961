"""``manage.py payments_process_events``: process the webhook events left
``received`` or ``failed`` (the sweeper,
:func:`django_payments_ru.jobs.sweep_events`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from ... import jobs
from ..base import JobCommand


class Command(JobCommand):
    help = _(
        "Process the webhook events left received or failed whose next attempt "
        "is due; flag those out of attempts, with their invoices."
    )
    label = _("Events")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--limit", type=int, default=None, help=_("At most this many events.")
        )
        parser.add_argument(
            "--alias", default=None, help=_("Only this provider alias's events.")
        )

    def handle(
        self,
        *args: Any,
        limit: int | None,
        alias: str | None,
        as_json: bool,
        verbosity: int,
        **options: Any,
    ) -> None:
        if limit is not None and limit < 0:
            raise self.usage(_("--limit must not be negative."))
        progress = self.progress(as_json, verbosity)
        try:
            report = jobs.sweep_events(
                limit=limit, alias=alias, progress=progress or jobs.no_progress
            )
        finally:
            if progress:
                progress.close()
        lines = [
            _(
                "%(processed)s event(s) processed, %(failed)s failed, "
                "%(gave_up)s given up and flagged."
            )
            % {
                "processed": len(report.processed),
                "failed": len(report.failed),
                "gave_up": len(report.gave_up),
            }
        ]
        lines += [
            _("Event %(event)s failed (attempt %(attempts)s): %(error)s") % failure
            for failure in report.failed
        ]
        lines += [
            _("Event %(event)s given up: its invoice is flagged.") % {"event": pk}
            for pk in report.gave_up
        ]
        self.finish(report.to_json(), as_json, lines)
