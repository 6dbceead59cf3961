"""The emulators' clock.

Every emulator reads the time through :func:`now` and waits through
:func:`sleep`, looked up on this module at call time, so a test can move time
forward (``monkeypatch.setattr(clock, "now", ...)``) to expire a payment or make
a webhook retry due, and make an injected delay instant.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    """The current time (aware, UTC)."""
    return timezone.now()


def timestamp() -> int:
    """The current time as Unix seconds, read through :func:`now`."""
    return int(now().timestamp())


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (an injected delay)."""
    if seconds > 0:
        time.sleep(seconds)
