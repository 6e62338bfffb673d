"""bot/limits.py: abuse limits in sliding windows, counted in the database when several
instances share one PostgreSQL database (storage/rate_counts.py), in memory on SQLite."""
from __future__ import annotations

import pytest

from bot.limits import MemoryWindow, SharedWindow, window
from storage import rate_counts
from tests.conftest import BOTH, open_db

BACKENDS = BOTH


async def test_the_count_slides_over_the_previous_window(tmp_path, database_url):
    async with open_db(tmp_path, database_url) as db:
        at = 6000.0  # the start of a 60 s window
        assert [await rate_counts.hit(db, "t", "k", 3, 60.0, at + i) for i in range(4)] == [True, True, True, False]
        assert await rate_counts.hit(db, "t", "other", 3, 60.0, at)  # per key
        # 10 s into the next window, 5/6 of the last one's count (4: the refused one counts) still
        # weighs: 4 * 5/6 + 1 > 3 ...
        assert not await rate_counts.hit(db, "t", "k", 3, 60.0, at + 70.0)
        # ... and once it has slid past, the key is free again.
        assert await rate_counts.hit(db, "t", "k", 3, 60.0, at + 185.0)
        assert await rate_counts.purge(db, at + 10_000.0) == 2


async def test_on_postgresql_instances_share_one_count_on_sqlite_it_is_in_memory(tmp_path, database_url, backend):
    async with open_db(tmp_path, database_url) as first:
        if backend == "sqlite":
            assert isinstance(window(first, "web.messages", 3), MemoryWindow)
            return
        async with open_db(tmp_path, database_url) as second:  # another instance's connections
            a, b = window(first, "web.messages", 3), window(second, "web.messages", 3)
            assert isinstance(a, SharedWindow) and isinstance(b, SharedWindow)
            assert [await a.hit("session-1"), await b.hit("session-1"), await a.hit("session-1")] == [True] * 3
            assert not await b.hit("session-1")  # the 4th in the minute, on either instance
            assert await b.hit("session-2")


@pytest.mark.postgresql_only
async def test_a_shared_limit_counts_in_memory_while_the_database_is_unreachable(tmp_path, database_url):
    async with open_db(tmp_path, database_url) as db:
        limit = SharedWindow(db, "web.messages", 2)

        async def broken(*args, **kwargs):
            raise OSError("connection refused")

        limit.db = type("Gone", (), {"dialect": "postgresql", "reader": type("R", (), {"execute_fetchall": broken})()})()
        assert [await limit.hit("s"), await limit.hit("s"), await limit.hit("s")] == [True, True, False]
