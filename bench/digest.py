#!/usr/bin/env python3
"""Benchmark: the weekly digest's computation on a big history.

Generates a synthetic shop in a fresh SQLite file (schema from the real migrations):
customers, purchases, one survey per purchase (ANSWERS answered, a further 30 % sent and
expired), tickets with first responses, resolutions, ratings and reopenings, all spread
evenly over the history at a fixed weekly volume. Then times DigestService.build() (every
SQL aggregation of the digest, plus the pure report building) for the last complete week
and for a week in the middle of the history; median of --runs runs each, the first run
shown apart. The chart is timed separately (it does not depend on the history).

The point: the digest reads index ranges of a few weeks, so 10x the history at the same
weekly volume must cost about the same. Compare:

    python bench/digest.py                        # 1M answers, 100k tickets, 2 years
    python bench/digest.py --answers 10000000     # 10M answers at the same weekly volume (20 years)

Generation is SQL inside SQLite (recursive CTEs), with the journal and fsync off and the
secondary indexes built after the load; the bot's own settings apply again for timing.
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

from testkit.clock import FakeClock  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.services.digest import render_chart, service_for  # noqa: E402
from flows.digest import Week, render_text, to_json, week_bounds  # noqa: E402
from storage.db import Database  # noqa: E402

LAST_WEEK = Week(2026, 47)  # the history ends on Sunday 22 Nov 2026, shop time
ANSWERS_PER_WEEK = 1_000_000 / 104  # the default run: 1M answers over 2 years
TICKETS_PER_WEEK = 100_000 / 104
UNANSWERED = 0.3  # surveys sent but never answered, per answered one
ANSWERS_PER_CUSTOMER = 5
TABLES = ("customers", "purchases", "surveys", "tickets", "ticket_events")

COMMENTS = (
    "Giao hàng nhanh, đóng gói cẩn thận", "Nên có thêm size nhỏ cho trẻ em", "Trà ngon, sẽ mua lại",
    "Nhân viên nhiệt tình", "Giao hàng chậm quá", "Hộp bị móp khi nhận", "Giá hơi cao so với chất lượng",
    "Could you add more payment options?", "Great tea, fast delivery",
)
DESCRIPTIONS = (
    "Giao hàng chậm 3 ngày", "Shipper giao hàng trễ, hộp bị móp", "Trà bị mốc, không uống được",
    "Nhân viên thái độ không tốt", "Tính sai tiền trên hoá đơn", "Thiếu hàng trong đơn",
    "Late delivery and the box was damaged", "Wrong item in my order",
)


def _case(values: tuple[str, ...], pick: str) -> str:
    """SQL picking one of `values` by `pick` (bench data, our own constants)."""
    whens = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"(CASE ({pick}) % {len(values)} {whens} END)"


def _ts(epoch_sql: str) -> str:
    """Epoch seconds (SQL) as the stored fixed-width UTC text."""
    return f"(strftime('%Y-%m-%dT%H:%M:%S', {epoch_sql}, 'unixepoch') || '.000000Z')"


def generate(path: Path, answers: int, tickets: int, weeks: int) -> dict[str, float]:
    """Fill the migrated database at `path`; returns seconds per phase."""
    timings: dict[str, float] = {}
    surveys = int(answers * (1 + UNANSWERED))
    customers = max(1, answers // ANSWERS_PER_CUSTOMER)
    end = int(week_bounds(LAST_WEEK, _tz())[1].timestamp())
    span = weeks * 7 * 86400
    start = end - span
    conn = sqlite3.connect(path, isolation_level=None)
    # Generation only: no journal, no fsync, a big cache. The bot never runs like this.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    conn.execute("PRAGMA temp_store=MEMORY")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (%s)"
        % ",".join("?" * len(TABLES)), TABLES,
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")

    def phase(name: str, sql: str, params: dict) -> None:
        t0 = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute(sql, params)
        conn.execute("COMMIT")
        timings[name] = time.perf_counter() - t0
        print(f"  {name}: {timings[name]:.1f} s", flush=True)

    seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
    at0 = _ts(":start")
    phase("customers", seq + (
        "INSERT INTO customers (id, external_id, name, link_token, created_at, updated_at)"
        f" SELECT i, printf('C-%09d', i), 'Khách ' || i, printf('tok%09d', i), {at0}, {at0} FROM n"
    ), {"count": customers, "start": start})
    conn.execute(
        "INSERT INTO contacts (id, channel, platform_user_id, chat_id, language, created_at, last_seen_at)"
        f" VALUES (1, 'telegram', '1', '1', 'vi', {at0}, {at0})", {"start": start},
    )
    bought = "(:start + (i * :span) / :count + abs(random()) % 600)"
    phase("purchases", seq + (
        "INSERT INTO purchases (id, order_id, customer_id, amount, currency, items, store, touchpoint,"
        " purchased_at, fingerprint, created_at)"
        f" SELECT i, printf('A-%010d', i), 1 + abs(random()) % :customers, 50000 + abs(random()) % 2000000, 'VND', '[]',"
        f" 'Q' || (1 + abs(random()) % 5), {_case(('delivery', 'in_store', 'online'), 'i')},"
        f" {_ts(bought)}, 'x', {at0} FROM n"
    ), {"count": surveys, "start": start, "span": span, "customers": customers})
    # One survey per purchase, sent 3 h later; `answers` of them answered within 2 h. Columns
    # the digest never reads get cheap values (the time text costs more than anything else).
    sent = "(strftime('%s', p.purchased_at) + 10800)"
    # Exactly `answers` of the ids 1..surveys, spread evenly: where id * answers / surveys steps up.
    answered = f"((p.id * {answers}) / {surveys} != ((p.id - 1) * {answers}) / {surveys})"
    phase("surveys", (
        "INSERT INTO surveys (id, purchase_id, customer_id, touchpoint, store, status, due_at, sent_at, answered_at,"
        " score, comment, closed_at, created_at, language, contact_id)"
        f" SELECT p.id, p.id, p.customer_id, p.touchpoint, p.store,"
        f" CASE WHEN {answered} THEN 'answered' ELSE 'expired' END, p.purchased_at, {_ts(sent)},"
        f" CASE WHEN {answered} THEN {_ts(sent + ' + abs(random()) % 7200')} END,"
        f" CASE WHEN {answered} THEN (CASE abs(random()) % 10 WHEN 0 THEN 1 WHEN 1 THEN 2 WHEN 2 THEN 3"
        "  WHEN 3 THEN 4 WHEN 4 THEN 4 WHEN 5 THEN 4 ELSE 5 END) END,"
        f" CASE WHEN {answered} AND abs(random()) % 10 < 3 THEN {_case(COMMENTS, 'abs(random())')} END,"
        " NULL, p.purchased_at, 'vi', 1"
        " FROM purchases p"
    ), {})
    opened = "(:start + (i * :span) / :count + abs(random()) % 3600)"
    recent = f"({opened} > :end - 14 * 86400)"  # only the last two weeks still have open tickets
    phase("tickets", seq + (
        "INSERT INTO tickets (id, contact_id, customer_id, source, category, description, tier, priority, status,"
        " created_at, first_response_at, resolved_at, first_response_due_at, resolution_due_at)"
        " SELECT i, 1, 1 + abs(random()) % :customers, 'command',"
        f" {_case(('delivery', 'product_quality', 'staff_attitude', 'price_billing', 'other'), 'i')},"
        f" {_case(DESCRIPTIONS, 'abs(random())')}, 'regular', 'normal',"
        f" CASE WHEN {recent} AND i % 2 = 0 THEN 'claimed' ELSE 'resolved' END,"
        f" {_ts(opened)}, {_ts(opened + ' + 60 + abs(random()) % 14400')},"
        f" CASE WHEN {recent} AND i % 2 = 0 THEN NULL ELSE {_ts(opened + ' + 3600 + abs(random()) % 259200')} END,"
        f" {_ts(opened + ' + 7200')}, {_ts(opened + ' + 172800')} FROM n"
    ), {"count": tickets, "start": start, "span": span, "end": end, "customers": customers})
    later = lambda seconds: _ts(f"strftime('%s', resolved_at) + {seconds}")  # noqa: E731
    phase("ticket events", (
        "INSERT INTO ticket_events (ticket_id, at, actor, action, body)"
        f" SELECT id, {later(3600)}, 'customer', 'rated', CAST(1 + abs(random()) % 5 AS TEXT)"
        " FROM tickets WHERE resolved_at IS NOT NULL AND abs(random()) % 10 < 7"
        f" UNION ALL SELECT id, {later(7200)}, 'customer', 'reopened', NULL"
        " FROM tickets WHERE resolved_at IS NOT NULL AND abs(random()) % 50 = 0"
    ), {})
    t0 = time.perf_counter()
    for _, sql in indexes:
        conn.execute(sql)
    timings["indexes"] = time.perf_counter() - t0
    print(f"  indexes: {timings['indexes']:.1f} s", flush=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    return timings


def _tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Ho_Chi_Minh")


async def time_digest(path: Path, runs: int, weeks: int) -> dict[str, object]:
    config = parse_config({"database": {"path": str(path)}}, {})
    now = week_bounds(LAST_WEEK, config.tz)[1] + timedelta(hours=9)
    async with Database(path) as db:
        service = service_for(config, db, FakeClock(now), owners=False)
        results: dict[str, object] = {}
        for label, week in (("last week", LAST_WEEK), ("mid-history week", LAST_WEEK.shift(-(weeks // 2)))):
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                digest = await service.build(week)
                times.append(time.perf_counter() - t0)
            body = to_json(digest)
            results[label] = (times, week, body)
        digest = await service.build(LAST_WEEK)
        t0 = time.perf_counter()
        render_chart(digest, "vi")
        results["chart_first"] = time.perf_counter() - t0  # includes importing matplotlib
        t0 = time.perf_counter()
        render_chart(digest, "vi")
        results["chart"] = time.perf_counter() - t0
        results["text"] = render_text(digest, "vi")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=1_000_000, help="answered surveys (default 1,000,000)")
    p.add_argument("--tickets", type=int, help="tickets (default: the same weekly volume as 100,000 over 2 years)")
    p.add_argument("--answers-per-week", type=float, default=ANSWERS_PER_WEEK,
                   help=f"weekly volume; the history spans answers / this (default {ANSWERS_PER_WEEK:.0f})")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--db", help="keep the database here (default: a temp dir, removed)")
    p.add_argument("--reuse", action="store_true", help="time an existing --db without generating")
    p.add_argument("--show", action="store_true", help="print the digest text too")
    args = p.parse_args(argv)

    weeks = max(5, round(args.answers / args.answers_per_week))
    tickets = args.tickets if args.tickets is not None else round(TICKETS_PER_WEEK * weeks)
    workdir = None
    if args.db:
        path = Path(args.db)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="feedbot-bench-"))
        path = workdir / "feedbot.db"
    try:
        print(f"digest bench: {args.answers:,} answers (+{UNANSWERED:.0%} unanswered), {tickets:,} tickets,"
              f" {weeks} weeks (~{args.answers / weeks:,.0f} answers and ~{tickets / weeks:,.0f} tickets a week)", flush=True)
        if not args.reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            asyncio.run(_migrate(path))
            print("generating ...", flush=True)
            t0 = time.perf_counter()
            generate(path, args.answers, tickets, weeks)
            print(f"generated in {time.perf_counter() - t0:.1f} s; file {os.path.getsize(path) / 2**30:.2f} GiB", flush=True)
        results = asyncio.run(time_digest(path, args.runs, weeks))
        for label in ("last week", "mid-history week"):
            times, week, body = results[label]  # type: ignore[misc]
            print(f"digest {week} ({label}): median {statistics.median(times) * 1000:.0f} ms over {len(times)} runs"
                  f" (first {times[0] * 1000:.0f} ms); {body['csat']['answers']:,} answers,"
                  f" {body['csat']['sent']:,} sent, {body['complaints']['opened']:,} tickets opened", flush=True)
        print(f"chart: {results['chart'] * 1000:.0f} ms ({results['chart_first'] * 1000:.0f} ms the first time, with"
              " matplotlib's import); independent of the history")
        if args.show:
            print(results["text"])
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


async def _migrate(path: Path) -> None:
    async with Database(path):
        pass


if __name__ == "__main__":
    sys.exit(main())
