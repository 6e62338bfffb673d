"""Abuse limits in sliding windows (web chat frames per session, new chat sessions and demo
surveys per address and in total): in this process's memory when it is alone on its database
(SQLite), in the database (storage/rate_counts.py) when several instances share one PostgreSQL
database, so that a limit holds for the bot as a whole and not once per instance.

What stays per instance, and why: connection caps (sockets per session and per address,
bot/http/connections.py) count what this process holds open, which is what they protect; the
sign-in throttle per address (bot/http/auth.py LoginThrottle) is a speed bump beside the
per-account lockout, and the lockout itself lives in the accounts table (cluster-wide); the
anonymous tickets per address and hour are asked inside the engine's transaction, synchronously.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Callable, Protocol

from storage import rate_counts
from storage.db import dialect

log = logging.getLogger(__name__)

PURGE_EVERY = 600.0  # s: keys of past windows are deleted at most this often per process


class Window(Protocol):
    async def hit(self, key: str) -> bool:
        """Count one event for `key`; False when it is over the limit (refused)."""


class MemoryWindow:
    """Events per key in a sliding window, in memory (one process)."""

    def __init__(self, limit: int, window: float = 60.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = self.limit = limit  # per window (per_minute: the web chat's name for it)
        self.window = window
        self.monotonic = monotonic
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.monotonic()
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.limit:
            return False
        seen.append(now)
        if len(self._seen) > 10_000:  # forget idle keys
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
        return True

    async def hit(self, key: str) -> bool:
        return self.allow(key)


class SharedWindow:
    """Events per key in a sliding window, counted in the database every instance shares.
    If the database cannot be reached, this process's own count decides meanwhile."""

    def __init__(self, db: Any, name: str, limit: int, window: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.name = name
        self.limit = limit
        self.window = window
        self.clock = clock
        self.fallback = MemoryWindow(limit, window)
        self._next_purge = 0.0
        self._purging: asyncio.Task[None] | None = None

    async def hit(self, key: str) -> bool:
        now = self.clock()
        try:
            allowed = await rate_counts.hit(self.db, self.name, key, self.limit, self.window, now)
        except Exception as exc:
            log.warning("limit %s: the shared count failed (%s: %s); counting in this instance meanwhile",
                        self.name, type(exc).__name__, exc)
            return self.fallback.allow(key)
        if now >= self._next_purge and (self._purging is None or self._purging.done()):
            self._next_purge = now + PURGE_EVERY
            self._purging = asyncio.create_task(self._purge(now))
        return allowed

    async def _purge(self, now: float) -> None:
        try:
            await rate_counts.purge(self.db, now)
        except Exception as exc:
            log.warning("limit %s: could not forget past windows: %s", self.name, exc)


def window(db: Any, name: str, limit: int, seconds: float = 60.0) -> MemoryWindow | SharedWindow:
    """A limit of `limit` events per `seconds` per key: shared by the instances on PostgreSQL."""
    if db is not None and dialect(db) == "postgresql":
        return SharedWindow(db, name, limit, seconds)
    return MemoryWindow(limit, seconds)
