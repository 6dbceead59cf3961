"""``manage.py payments_expire``: expire the invoices whose provider session
is over, each confirmed by a status query first
(:func:`django_payments_ru.jobs.expire`)."""

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
        "Expire the invoices whose payment session at the provider is over, "
        "once the provider confirms that they were not paid."
    )
    limit_help = _("At most this many invoices (default: EXPIRY_LIMIT).")

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--grace",
            type=duration,
            default=None,
            help=_(
                "How long after the session's end: 90s, 10m, 2h "
                "(default: EXPIRY_GRACE)."
            ),
        )

    def handle(self, *args: Any, grace: timedelta | None, **options: Any) -> None:
        self.run_job(jobs.expire, options, grace=grace)
