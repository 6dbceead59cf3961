"""What the app's management commands share: progress on a terminal (count,
rate, time left), a summary, ``--json`` for scripts, and an exit code that
says whether something needs attention."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.dateparse import parse_duration
from django.utils.translation import gettext as _

#: The exit code when the run found something that needs attention.
ATTENTION = 1
#: The exit code of a usage error.
USAGE = 2

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SHORT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def duration(text: str) -> timedelta:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` or ``HH:MM:SS`` as a duration
    (an argparse ``type``)."""
    found = _SHORT.match(text)
    if found:
        return timedelta(seconds=float(found[1]) * _UNITS[found[2] or "s"])
    parsed = parse_duration(text)
    if parsed is None:
        raise ValueError(text)
    return parsed


def _clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressLine:
    """Progress of a run: on a terminal one line redrawn in place (count,
    rate, time left); elsewhere a plain line at each tenth of the way."""

    def __init__(
        self,
        stream: IO[str],
        label: str,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        isatty = getattr(stream, "isatty", None)
        self.tty = bool(isatty and isatty()) if tty is None else tty
        self.clock = clock
        self.started = clock()
        self.shown = -1
        self.drawn = False

    def text(self, done: int, total: int) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = done / elapsed
        left = (total - done) / rate if rate and total else None
        return _("%(label)s: %(done)s/%(total)s, %(rate).1f/s, %(left)s left") % {
            "label": self.label,
            "done": done,
            "total": total,
            "rate": rate,
            "left": _clock(left) if left is not None else "?",
        }

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + self.text(done, total))
            self.stream.flush()
            self.drawn = True
            return
        tenth = done * 10 // total
        if tenth != self.shown and (done == total or tenth > self.shown):
            self.shown = tenth
            self.stream.write(self.text(done, total) + "\n")

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False


class JobCommand(BaseCommand):
    """A command that runs a job: ``--json``, progress, a summary, the exit
    code (:data:`ATTENTION` when the report says so)."""

    #: The progress line's label (a lazy translation, read when it is shown).
    label: Any = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help=_("Print the report as JSON (no progress, no summary)."),
        )

    def progress(self, as_json: bool, verbosity: int) -> ProgressLine | None:
        """The progress line (on stderr), or None with ``--json`` or ``-v 0``."""
        if as_json or verbosity < 1:
            return None
        stream: IO[str] = self.stderr._out  # type: ignore[assignment]
        return ProgressLine(stream, self.label)

    def finish(self, report: dict[str, Any], as_json: bool, summary: list[str]) -> None:
        """Print the report; exit with :data:`ATTENTION` when it needs it."""
        if as_json:
            self.stdout.write(json.dumps(report, cls=DjangoJSONEncoder, indent=2))
        else:
            for line in summary:
                self.stdout.write(line)
        if report.get("needs_attention"):
            raise SystemExit(ATTENTION)

    def usage(self, message: str) -> CommandError:
        return CommandError(message, returncode=USAGE)
