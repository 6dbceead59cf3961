"""``manage.py emulator_deliver_webhooks``: the emulators' background work:
expire the payments whose time ran out (``Emulator.expire_due``), then retry
the webhooks that are due."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...models import WebhookDelivery
from ...registry import emulator_modules
from ...webhooks import retry_due


class Command(BaseCommand):
    help = (
        "Expire the emulated payments whose time ran out, then send the "
        "emulators' webhooks whose next attempt is due (failed deliveries on "
        "their retry schedule, and any never sent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--slug", default=None, help="Only this emulator's webhooks."
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="At most this many deliveries per round.",
        )
        parser.add_argument(
            "--loop",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Keep running, one round every SECONDS (stop with Ctrl-C).",
        )

    def handle(
        self, *args: Any, slug: str | None, limit: int, loop: float, **options: Any
    ) -> None:
        while True:
            expired = sum(
                module.emulator.expire_due(limit=limit)
                for name, module in sorted(emulator_modules().items())
                if slug in (None, name)
            )
            sent = retry_due(slug=slug, limit=limit)
            delivered = sum(d.status == WebhookDelivery.Status.DELIVERED for d in sent)
            if expired or sent or not loop:
                self.stdout.write(
                    f"{expired} payment(s) expired, {len(sent)} webhook(s) sent, "
                    f"{delivered} delivered, {len(sent) - delivered} failed."
                )
            if not loop:
                return
            time.sleep(loop)
