#!/usr/bin/env python3
"""Benchmark: `feedbot db backup` on a big database while the bot writes.

Generates the digest bench's synthetic shop (bench/digest.py: customers, purchases, one survey
per purchase, tickets) with --answers answered surveys, then opens it as the bot does
(storage.db.Database: WAL, one writer) and runs two writers on the event loop, like the bot's:

  - "webhooks": inline units (Database.unit, as the engine's inbound updates), one every ~2 ms;
  - "sender":   grouped writes (Database.write_grouped, as the sender's status updates), every ~2 ms;

and a 1 ms ticker that measures how late the event loop runs it (a stall of the loop would
hold up everything). Each write's latency (call to commit) is recorded for a quiet stretch
(no backup) and while storage.backup.backup_sqlite runs. Printed: the backup's time (copy,
compress), the longest and 99th-percentile write latency and loop lateness with and without
the backup, sizes (database vs compressed), then the time of a full restore (verify:
checksum, decompress, integrity_check, counts; then the rename).

    python bench/backup.py                      # 1M answers
    python bench/backup.py --answers 10000000   # 10M (generation alone takes several minutes)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import digest as digest_bench  # noqa: E402 - bench/digest.py's generator

from storage import backup as files  # noqa: E402
from storage.db import Database, migration_files  # noqa: E402

WRITE_SPACING_S = 0.002


class Load:
    """The two writers and the ticker; latencies in seconds, tagged by phase."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.phase = "quiet"
        self.latency: dict[str, list[float]] = {"quiet": [], "backup": []}
        self.lateness: dict[str, list[float]] = {"quiet": [], "backup": []}
        self.stop = asyncio.Event()
        self.n = 0

    async def webhooks(self) -> None:
        while not self.stop.is_set():
            self.n += 1
            t0 = time.perf_counter()
            async with self.db.unit() as tx:
                await tx.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                                 "value = excluded.value", (f"bench-hook-{self.n % 5000}", "x" * 200))
            self.latency[self.phase].append(time.perf_counter() - t0)
            await asyncio.sleep(WRITE_SPACING_S)

    async def sender(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            t0 = time.perf_counter()
            await self.db.write_grouped("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                                        "SET value = excluded.value", (f"bench-send-{n % 5000}", "y" * 100))
            self.latency[self.phase].append(time.perf_counter() - t0)
            await asyncio.sleep(WRITE_SPACING_S)

    async def ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(0.001)
            self.lateness[self.phase].append(loop.time() - t0 - 0.001)


def _stats(values: list[float]) -> str:
    if not values:
        return "no samples"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(values):,} samples, median {statistics.median(values) * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms, max {ordered[-1] * 1000:.1f} ms")


async def measure(path: Path, folder: Path, quiet_s: float) -> files.BackupResult:
    db = Database(path)
    await db.open()
    load = Load(db)
    tasks = [asyncio.create_task(load.webhooks()), asyncio.create_task(load.sender()), asyncio.create_task(load.ticker())]
    await asyncio.sleep(quiet_s)
    load.phase = "backup"
    result = await files.backup_sqlite(path, folder, datetime.now(timezone.utc))
    load.phase = "quiet"
    load.stop.set()
    await asyncio.gather(*tasks)
    await db.close()
    m = result.manifest
    print(f"backup: {result.seconds:.1f} s (copy {result.timings['copy']:.1f} s, compress + checksums "
          f"{result.timings['compress']:.1f} s); {m.tables.get('surveys', 0):,} surveys in the manifest")
    print(f"size: database {m.database_bytes / 2**20:,.0f} MiB -> {m.size / 2**20:,.0f} MiB gzip "
          f"(level {files.GZIP_LEVEL}, {m.size / m.database_bytes:.0%})")
    print(f"write latency without a backup ({quiet_s:.0f} s): {_stats(load.latency['quiet'])}")
    print(f"write latency during the backup:     {_stats(load.latency['backup'])}")
    print(f"event-loop lateness without a backup: {_stats(load.lateness['quiet'])}")
    print(f"event-loop lateness during the backup: {_stats(load.lateness['backup'])}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=1_000_000, help="answered surveys (default 1,000,000)")
    p.add_argument("--quiet", type=float, default=5.0, help="seconds of writes without a backup, for comparison")
    p.add_argument("--dir", help="work here (default: a temp dir, removed)")
    args = p.parse_args(argv)
    weeks = max(5, round(args.answers / digest_bench.ANSWERS_PER_WEEK))
    tickets = round(digest_bench.TICKETS_PER_WEEK * weeks)
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="feedbot-bench-backup-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "feedbot.db"
    try:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"backup bench: {args.answers:,} answers, {tickets:,} tickets; generating ...", flush=True)
        t0 = time.perf_counter()
        asyncio.run(digest_bench._migrate(path))
        digest_bench.generate(path, args.answers, tickets, weeks)
        print(f"generated in {time.perf_counter() - t0:.0f} s; file {os.path.getsize(path) / 2**20:,.0f} MiB", flush=True)
        result = asyncio.run(measure(path, workdir / "backups", args.quiet))
        t0 = time.perf_counter()
        verified = files.verify_sqlite_sync(result.path, workdir)
        verify_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        known = max(v for v, _, _ in migration_files())
        files.restore_sqlite_sync(result.path, workdir / "restored.db", known, datetime.now(timezone.utc))
        print(f"verify: {verify_s:.1f} s; restore (verify included): {time.perf_counter() - t0:.1f} s "
              f"({sum(verified.manifest.tables.values()):,} rows checked)")
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
