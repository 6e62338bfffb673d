#!/usr/bin/env python3
"""Benchmark: one feedbot instance on PostgreSQL against one on SQLite, and `db copy`'s cost.

Inbound: bench/inbound_vs_ptb.py's load (the same realistic mix of /start, score taps,
comments and complaints, C webhook requests in flight, the sender held) against our server on
SQLite and on PostgreSQL, in the same run, alternating the order per round; each PostgreSQL
round gets a fresh database filled from the prepared SQLite file by `db copy` (the copy of
the preparation is timed too). The PostgreSQL server is the local one: on this 2-core
machine it shares the cores with the bot and the load generator.

Copy: a SQLite file with --copy-rows inbox and as many outbox rows (plus the preparation's
rows) copied into a fresh database, verified; the time per million rows is extrapolated.

    .venv/bin/python bench/postgres.py [--updates N] [--rounds R] [--copy-rows N]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.harness as h  # noqa: E402  (sets sys.path and NO_PROXY)
import bench.inbound_vs_ptb as inbound  # noqa: E402

import argparse  # noqa: E402
import asyncio  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import asynccontextmanager  # noqa: E402
from typing import Any, AsyncIterator  # noqa: E402
from urllib.parse import urlsplit, urlunsplit  # noqa: E402

import asyncpg  # noqa: E402

from storage.copy import copy_database  # noqa: E402
from storage.db import Database  # noqa: E402

SERVER_URL = os.environ.get("FEEDBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _url_of(name: str) -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))


async def _fresh_database(name: str) -> str:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return _url_of(name)


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(SERVER_URL)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@asynccontextmanager
async def scratch_database(name: str) -> AsyncIterator[str]:
    """A fresh database on the bench server (its URL), dropped afterwards (bench/cluster.py too)."""
    url = await _fresh_database(name)
    try:
        yield url
    finally:
        await _drop(name)


async def query(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One statement on a connection of its own (the benches' checks and set-up steps)."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _copy(source: Path, url: str) -> tuple[int, float]:
    """(rows copied, seconds), verified."""
    started = time.monotonic()
    checks = await copy_database(source, url, progress=io.StringIO())
    elapsed = time.monotonic() - started
    bad = [c.table for c in checks if not c.ok]
    if bad:
        raise RuntimeError(f"db copy differs in {bad}")
    return sum(c.source_rows for c in checks), elapsed


async def _big_file(path: Path, rows: int) -> None:
    """A migrated SQLite file with `rows` inbox and `rows` outbox rows, written in bulk."""
    async with Database(path):
        pass
    conn = sqlite3.connect(path)
    at = "2026-11-23T02:00:00.000000Z"
    with conn:
        conn.executemany(
            "INSERT INTO inbox (platform, update_id, payload, received_at, processed_at, kind, text)"
            " VALUES ('telegram', ?, ?, ?, ?, 'text', ?)",
            ((str(i), f'{{"update_id": {i}, "message": {{"text": "Giao hàng nhanh, cảm ơn shop {i}"}}}}', at, at,
              f"Giao hàng nhanh, cảm ơn shop {i}") for i in range(rows)))
        conn.executemany(
            "INSERT INTO outbox (channel, chat_id, method, payload, status, created_at, sent_at)"
            " VALUES ('telegram', ?, 'send_text', ?, 'sent', ?, ?)",
            ((str(1000 + i % 5000), f'{{"text": "Cảm ơn bạn đã chấm 5/5! {i}"}}', at, at) for i in range(rows)))
    conn.close()


async def main_async(args: argparse.Namespace) -> int:
    load_before = h.host_line()
    per_kind = args.updates // len(inbound.KINDS)
    lines: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="feedbot-pg-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "template").mkdir()
        print(f"postgres bench: preparing {per_kind * len(inbound.KINDS)} customers ...", flush=True)
        prep = await inbound.prepare(workdir / "template", per_kind, args.warmup, args.seed)
        rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        cpu: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        copies: list[tuple[int, float]] = []
        for rnd in range(1, args.rounds + 1):
            order = ["sqlite", "postgresql"] if rnd % 2 else ["postgresql", "sqlite"]
            for backend in order:
                (workdir / backend).mkdir(exist_ok=True)
                if backend == "postgresql":
                    async with scratch_database(f"feedbot_bench_{os.getpid()}_{rnd}") as url:
                        copies.append(await _copy(prep.db_file, url))
                        run = await inbound.run_one("ours", rnd, prep, args, workdir / backend, database_url=url)
                else:
                    run = await inbound.run_one("ours", rnd, prep, args, workdir / backend)
                rates[backend].append(run.updates_per_s)
                cpu[backend].append(run.cpu_per_update)
                problems += [f"{backend} round {rnd}: {p}" for p in run.problems]
                print(f"  round {rnd} {backend:10}: {run.updates_per_s:6.0f} updates/s, request -> handled "
                      f"{h.p50_p99(run.latencies)}, CPU {run.cpu_per_update * 1000:.2f} ms/update", flush=True)
        sqlite_rate, pg_rate = statistics.median(rates["sqlite"]), statistics.median(rates["postgresql"])
        lines.append(f"inbound: {len(prep.measured)} updates per round, {args.concurrency} in flight, {args.rounds} round(s)")
        for backend, rate in (("SQLite", sqlite_rate), ("PostgreSQL", pg_rate)):
            key = backend.lower()
            lines.append(f"  {backend}: median {rate:.0f} updates/s (rounds: {', '.join(f'{x:.0f}' for x in rates[key])});"
                         f" bot CPU {statistics.median(cpu[key]) * 1000:.2f} ms per update")
        lines.append(f"  ratio PostgreSQL / SQLite: {pg_rate / sqlite_rate:.2f} (one instance each, same run)")
        rows, seconds = copies[0]
        lines.append(f"db copy of the prepared file: {rows} rows in {seconds:.2f} s (verified)")

        big = workdir / "big.db"
        print(f"postgres bench: writing a SQLite file of {2 * args.copy_rows} inbox/outbox rows ...", flush=True)
        await _big_file(big, args.copy_rows)
        async with scratch_database(f"feedbot_bench_{os.getpid()}_copy") as url:
            rows, seconds = await _copy(big, url)
        lines.append(f"db copy: {rows} rows in {seconds:.1f} s ({rows / seconds:.0f} rows/s, copy + verify);"
                     f" per million rows: {seconds * 1_000_000 / rows:.0f} s (extrapolated)")
    lines.append(f"before: {load_before}")
    lines.append(f"after:  {h.host_line()}")
    lines.append("correctness: " + ("FAILED" if problems else "OK (every update handled and processed without error)"))
    lines += [f"  - {p}" for p in problems[:10]]
    print(h.summary("PostgreSQL vs SQLite: one instance inbound, and db copy", lines), flush=True)
    return 1 if problems else 0


def add_inbound_arguments(p: argparse.ArgumentParser) -> None:
    """The inbound load's options (bench/inbound_vs_ptb.py's mix), shared with bench/cluster.py."""
    p.add_argument("--updates", "-n", type=int, default=1000, help="measured updates per round (default 1000)")
    p.add_argument("--concurrency", "-c", type=int, default=40, help="connections in flight (default 40)")
    p.add_argument("--rounds", "-r", type=int, default=3, help="rounds per configuration (default 3)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up updates per round (default 200)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for a round (default 300)")
    p.add_argument("--seed", type=int, default=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="postgres.py", description=__doc__.split("\n\n")[0])
    add_inbound_arguments(p)
    p.add_argument("--copy-rows", type=int, default=50_000, help="inbox rows (and as many outbox rows) to copy (default 50000)")
    args = p.parse_args(argv)
    args.profile = None
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
