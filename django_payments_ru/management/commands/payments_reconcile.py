"""``manage.py payments_reconcile``: ask the providers about the invoices
still waiting for them (:func:`django_payments_ru.jobs.reconcile`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils.translation import gettext as _

from ... import jobs
from ..base import duration
from ._runs import InvoiceJobCommand


class Command(InvoiceJobCommand):
    help = _(
        "Ask the providers where the invoices still waiting for them stand "
        "(oldest first) and apply the answers."
    )
    limit_help = _("At most this many invoices (default: RECONCILE_LIMIT).")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
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

    def handle(
        self,
        *args: Any,
        older_than: timedelta | None,
        after: int | None,
        resume: bool,
        **options: Any,
    ) -> None:
        self.run_job(
            jobs.reconcile, options, older_than=older_than, after=after, resume=resume
        )
