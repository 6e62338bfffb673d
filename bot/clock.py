"""Time comes from a clock object so tests can move it (surveys are due hours later; the
tests' clock is testkit/clock.py)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)
