"""Clocks for tests and benchmarks: they only move when told to."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at


class FakeMonotonic:
    """A monotonic clock (seconds) for the sender's rate limits: call it for the time, and
    pass its `sleep` where the code under test sleeps: it moves the time instead of waiting."""

    def __init__(self, late: float = 0.0) -> None:
        self.now = 1000.0
        self.late = late  # every wake-up comes this much after the time asked for

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds) + self.late
        await asyncio.sleep(0)
