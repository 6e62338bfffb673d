#!/usr/bin/env python3
"""Benchmark: the dashboard's JSON API over HTTP on a big history.

Generates a shop with bench/digest.py's generator (answers over --weeks, 30 % of them with a
comment, tickets), folds the comments, rebuilds the CSAT rollups (timed: `feedbot rollups
rebuild`), starts the real app on that database (no Telegram), signs in as an owner and times
every dashboard route for ranges from a week to two years: p50 and p95 over --runs requests
each, client-side (aiohttp on the same machine, so HTTP and JSON are included).

    python bench/dashboard.py                                   # 1M answers, 100k tickets, 2 years
    python bench/dashboard.py --answers 10000000 --tickets 1000000

Run from the repo root; needs only the project's dependencies.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

import aiohttp  # noqa: E402

from bench.digest import LAST_WEEK, _migrate, generate  # noqa: E402
from bot.app import FeedbotApp  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.services import rollups as rollup_service  # noqa: E402
from flows.digest import week_bounds  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.folding import fold  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402

PASSWORD = "bench-password-1"


def fold_comments(path: Path) -> float:
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for (comment,) in conn.execute("SELECT DISTINCT comment FROM surveys WHERE comment IS NOT NULL").fetchall():
        conn.execute("UPDATE surveys SET comment_folded = ? WHERE comment = ?", (fold(comment), comment))
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


async def rebuild(path: Path, config) -> float:
    t0 = time.perf_counter()
    async with Database(path) as db:
        await rollup_service.rebuild(db, config.rollup_rule())
    return time.perf_counter() - t0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def fts_optimize(path: Path) -> float:
    """What an erasure adds on SQLite: merging the comment index's segments (storage/privacy.py)."""
    conn = sqlite3.connect(path, isolation_level=None)
    t0 = time.perf_counter()
    conn.execute("INSERT INTO comments_fts (comments_fts) VALUES ('optimize')")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def time_api(path: Path, runs: int) -> None:
    config = parse_config({"database": {"path": str(path)}, "http": {"port": 0}, "web": {"enabled": False}}, {})
    now = week_bounds(LAST_WEEK, config.tz)[1] + timedelta(hours=9)
    app = FeedbotApp(config, clock=FakeClock(now))
    await app.start(scheduler=False)
    try:
        if await app.accounts.get("owner") is None:
            await app.accounts.add("owner", "owner", PASSWORD)
        base = f"http://127.0.0.1:{app.port}"
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.post(f"{base}/login", data={"login": "owner", "password": PASSWORD}, allow_redirects=False) as r:
                assert r.status == 303, await r.text()
            today = now.astimezone(config.tz).date()

            def span(days: int) -> str:
                return f"from={(today - timedelta(days=days - 1)).isoformat()}&to={today.isoformat()}"

            cases = [
                ("csat 7 days by day", f"/dashboard/api/csat?{span(7)}&group=day"),
                ("csat 30 days by day", f"/dashboard/api/csat?{span(30)}&group=day"),
                ("csat 1 year by week", f"/dashboard/api/csat?{span(365)}&group=week"),
                ("csat 2 years by day", f"/dashboard/api/csat?{span(730)}&group=day"),
                ("csat 2 years by month, store Q1", f"/dashboard/api/csat?{span(730)}&group=month&store=Q1"),
                ("csat 2 years by day, store Q1", f"/dashboard/api/csat?{span(730)}&group=day&store=Q1"),
                ("comments 30 days, no search", f"/dashboard/api/comments?{span(30)}"),
                ("comments 30 days, search 'dong goi'", f"/dashboard/api/comments?{span(30)}&q=dong+goi"),
                ("comments 2 years, search 'giao hang cham'", f"/dashboard/api/comments?{span(730)}&q=giao+hang+cham"),
                ("comments 2 years, search absent word", f"/dashboard/api/comments?{span(730)}&q=khongcotu"),
                ("comments 2 years, score 1", f"/dashboard/api/comments?{span(730)}&score=1"),
                ("complaints 30 days", f"/dashboard/api/complaints?{span(30)}"),
                ("complaints 1 year", f"/dashboard/api/complaints?{span(365)}"),
                ("complaints 2 years", f"/dashboard/api/complaints?{span(730)}"),
                ("complaints 2 years, store Q1", f"/dashboard/api/complaints?{span(730)}&store=Q1"),
            ]
            print(f"load average before: {_load()}")
            print(f"{'route':45} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  (answer size)")
            for label, url in cases:
                times = []
                size = 0
                for _ in range(runs):
                    t0 = time.perf_counter()
                    async with http.get(base + url) as r:
                        body = await r.read()
                        assert r.status == 200, body[:200]
                    times.append(time.perf_counter() - t0)
                    size = len(body)
                print(f"{label:45} {statistics.median(times) * 1000:8.1f} {pct(times, 0.95) * 1000:8.1f}"
                      f" {max(times) * 1000:8.1f}  ({size / 1024:.0f} KiB)", flush=True)
            print(f"load average after: {_load()}")
    finally:
        await app.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=1_000_000)
    p.add_argument("--tickets", type=int, default=100_000)
    p.add_argument("--weeks", type=int, default=104, help="history length (default 104: two years)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--db", help="keep the database here (default: a temp dir, removed)")
    p.add_argument("--reuse", action="store_true", help="time an existing --db without generating")
    args = p.parse_args(argv)
    workdir = None
    if args.db:
        path = Path(args.db)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="feedbot-bench-"))
        path = workdir / "feedbot.db"
    try:
        print(f"dashboard bench: {args.answers:,} answers over {args.weeks} weeks, {args.tickets:,} tickets", flush=True)
        config = parse_config({"database": {"path": str(path)}}, {})
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            asyncio.run(_migrate(path))
            t0 = time.perf_counter()
            generate(path, args.answers, args.tickets, args.weeks)
            print(f"generated in {time.perf_counter() - t0:.1f} s; file {os.path.getsize(path) / 2**30:.2f} GiB", flush=True)
            print(f"comments folded in {fold_comments(path):.1f} s", flush=True)
        else:
            t0 = time.perf_counter()
            asyncio.run(_migrate(path))  # a database from an older version: its new migrations
            print(f"migrated in {time.perf_counter() - t0:.1f} s", flush=True)
        print(f"rollups rebuilt (feedbot rollups rebuild) in {asyncio.run(rebuild(path, config)):.1f} s", flush=True)
        print(f"comment index merged (what an erasure adds) in {fts_optimize(path):.2f} s", flush=True)
        asyncio.run(time_api(path, args.runs))
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
