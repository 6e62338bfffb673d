"""The WAL file shrinks back after a burst of writes (issue 19, item 3: it grew to 68 MB and
stayed so)."""
from __future__ import annotations

import asyncio
import os

from storage.db import JOURNAL_SIZE_LIMIT, Database


async def test_the_wal_file_is_cut_back_after_a_burst(tmp_path):
    path = str(tmp_path / "feedbot.db")
    db = Database(path)
    await db.open()
    try:
        async with db.transaction() as tx:
            await tx.execute("CREATE TABLE burst (body BLOB)")
        async with db.transaction() as tx:  # one burst: ~12 MB through the WAL
            for _ in range(12):
                await tx.execute("INSERT INTO burst VALUES (randomblob(1024 * 1024))")
        assert os.path.getsize(path + "-wal") > 3 * JOURNAL_SIZE_LIMIT
        for _ in range(100):  # the background checkpoint copies it into the file...
            await asyncio.sleep(0.1)
            async with db.transaction() as tx:  # ... and the next write starts the WAL over
                await tx.execute("INSERT INTO burst VALUES (x'00')")
            if os.path.getsize(path + "-wal") <= JOURNAL_SIZE_LIMIT:
                break
        assert os.path.getsize(path + "-wal") <= JOURNAL_SIZE_LIMIT
    finally:
        await db.close()
