#!/usr/bin/env python3
"""Benchmark: survey programs (issue 21).

1. Scheduling cost: one dispatch pass (ProgramService.dispatch_due) over --customers
   customers (default 100,000) and 6 programs: a purchase CSAT (after_purchase, kept in
   `surveys`), an NPS every 90 days for active customers (scheduled by the pass itself), a
   CES after resolved complaints (1 % of the customers), usage 14 days after a purchase,
   brand after a purchase and an on-demand ideas question; every customer has a Telegram
   chat. The pass schedules the periodic ones, then decides every customer with a due
   survey under the global limit (one per 7 days; 10 % were asked 3 days ago) and queues
   the winners' questions in the outbox. Prints the pass's time and the time per customer.

2. The digest with programs: the weekly digest's computation on --answers CSAT answers
   (default 1,000,000, the history of bench/digest.py: 2 years at the same weekly volume),
   every purchase with a journey stage and a staff member, plus program answers (half as
   many as CSAT answers) and ideas, then every rollup built from them. Times the owners' CSAT digest alone (DigestService.build)
   against it plus the feedback page, 2 departments' and 5 stores' pages
   (bench goal: at most 1.2x).

Figures are noisy on a shared machine: medians of --runs runs. Run from the repo root:

    python bench/programs.py                  # both parts
    python bench/programs.py --part dispatch --customers 20000
"""
from __future__ import annotations

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
from datetime import datetime, timedelta, timezone  # noqa: E402

from bench.digest import ANSWERS_PER_WEEK, LAST_WEEK, TICKETS_PER_WEEK, _case, _migrate, _ts, _tz, generate  # noqa: E402
from bot.app import feedback_digest_for  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.outbox.effects import Effects  # noqa: E402
from bot.services import rollups as rollup_service  # noqa: E402
from bot.services.digest import service_for  # noqa: E402
from bot.services.programs import ProgramService  # noqa: E402
from flows.digest import week_bounds  # noqa: E402
from storage.db import Database  # noqa: E402
from testkit.clock import FakeClock  # noqa: E402

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=timezone.utc)  # Monday 11:00 shop time: outside quiet hours

PROGRAMS = [
    {"name": "csat_purchase", "kind": "csat", "trigger": "after_purchase"},
    {"name": "nps_quarterly", "kind": "nps", "trigger": "every", "every_days": 90, "fatigue_days": 90},
    {"name": "ces_resolved", "kind": "ces", "trigger": "complaint_resolved"},
    {"name": "usage_14d", "kind": "usage", "trigger": "days_after_purchase", "days": 14},
    {"name": "brand_new", "kind": "brand", "trigger": "after_purchase", "delay": "1d"},
    {"name": "ideas_ask", "kind": "ideas", "trigger": "on_demand"},
]
STAGES = ("consult", "order", "payment", "delivery", "after_sales")


class _Channel:
    """The sender is not part of the pass: questions stop at the outbox."""

    name = "telegram"
    conversational = True
    reply_window = None

    def fits(self, text: str, buttons: list) -> bool:
        return True


def _config(path: Path, **extra):
    return parse_config({"database": {"path": str(path)}, "programs": PROGRAMS, **extra}, {})


# --- 1. one dispatch pass -----------------------------------------------------------------------


def fill_dispatch(path: Path, customers: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    now, day = NOW.timestamp(), 86400
    ts = lambda sql: _ts(sql)  # noqa: E731
    seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
    at = ts(f"{now} - 20 * {day}")
    conn.execute("BEGIN")
    conn.execute(seq + "INSERT INTO customers (id, external_id, name, link_token, created_at, updated_at)"
                 f" SELECT i, printf('C-%09d', i), 'Khách ' || i, printf('tok%09d', i), {at}, {at} FROM n", {"count": customers})
    conn.execute(seq + "INSERT INTO contacts (id, channel, platform_user_id, chat_id, customer_id, language, created_at,"
                 f" last_seen_at, notice_version) SELECT i, 'telegram', i, i, i, 'vi', {at}, {at}, '2026-11-v1' FROM n",
                 {"count": customers})
    bought = f"({now} - 14 * {day} - 3600 - (i % 600))"
    conn.execute(seq + "INSERT INTO purchases (id, order_id, customer_id, amount, currency, items, store, touchpoint,"
                 f" purchased_at, fingerprint, created_at) SELECT i, printf('A-%010d', i), i, 250000, 'VND', '[]',"
                 f" 'Q' || (1 + i % 5), {_case(('delivery', 'in_store', 'online'), 'i')}, {ts(bought)}, 'x', {at} FROM n",
                 {"count": customers})
    # the purchase CSAT: due for half of them (the others were answered long ago)
    conn.execute(seq + "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, due_at, created_at)"
                 f" SELECT i, i, 'delivery', 'Q1', CASE WHEN i % 2 = 0 THEN 'scheduled' ELSE 'answered' END,"
                 f" {ts(f'{now} - 600')}, {at} FROM n", {"count": customers})
    # 10 % were asked something 3 days ago: the global limit holds them back
    conn.execute(f"UPDATE surveys SET sent_at = {ts(f'{now} - 3 * {day}')} WHERE customer_id % 10 = 3 AND status = 'answered'")
    # usage (14 days after the purchase), brand (a day after), ideas (on demand): due now
    for program, kind, priority, share in (("usage_14d", "usage", 30, 1), ("brand_new", "brand", 20, 3), ("ideas_ask", "ideas", 10, 4)):
        conn.execute(seq + "INSERT INTO program_surveys (program, kind, customer_id, purchase_id, status, priority, due_at,"
                     f" deadline_at, created_at) SELECT '{program}', '{kind}', i, i, 'scheduled', {priority},"
                     f" {ts(f'{now} - 300')}, {ts(f'{now} + 3 * {day}')}, {at} FROM n WHERE i % {share} = 0",
                     {"count": customers})
    # complaints resolved 2 hours ago for 1 % of them: the CES program follows each
    conn.execute(seq + "INSERT INTO tickets (contact_id, customer_id, purchase_id, source, category, description, tier,"
                 " priority, status, created_at, resolved_at, first_response_due_at, resolution_due_at)"
                 f" SELECT i, i, i, 'command', 'delivery', 'Giao trễ', 'regular', 'normal', 'resolved', {at},"
                 f" {ts(f'{now} - 7200')}, {at}, {at} FROM n WHERE i % 100 = 7", {"count": customers})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


async def time_dispatch(path: Path) -> tuple[float, dict, int]:
    config = _config(path)
    async with Database(path) as db:
        effects = Effects({"telegram": _Channel()})
        service = ProgramService(db, FakeClock(NOW), config.feedback, config.survey_policy(), "Shop An", effects)
        service.register(effects)
        t0 = time.perf_counter()
        outcome = await service.dispatch_due()
        elapsed = time.perf_counter() - t0
        queued = (await db.fetchall("SELECT COUNT(*) FROM outbox"))[0][0]
    return elapsed, dict(outcome), queued


# --- 2. the digest with programs -------------------------------------------------------------


def fill_programs(path: Path, answers: int, weeks: int) -> None:
    """Stages and staff on every purchase; program answers (half as many as CSAT answers)
    and ideas, over the same history."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-1000000")
    end = int(week_bounds(LAST_WEEK, _tz())[1].timestamp())
    span = weeks * 7 * 86400
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute(f"UPDATE purchases SET stage = {_case(STAGES, 'id')},"
                 f" staff = 'NV-' || (1 + abs(random()) % 40)")
    seq = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
    at = "(:start + (i * :span) / :count + abs(random()) % 3600)"
    kinds = (("nps_quarterly", "nps", "abs(random()) % 11", "NULL"),
             ("ces_resolved", "ces", "1 + abs(random()) % 7", "NULL"),
             ("usage_14d", "usage", "NULL", _case(("Uống hằng ngày", "Tiếp khách", "Làm quà", "other"), "abs(random())")),
             ("brand_new", "brand", "NULL", _case(("Facebook", "TikTok", "Google", "Bạn bè"), "abs(random())")),
             ("csat_program", "csat", "1 + abs(random()) % 5", "NULL"))
    per = answers // 2 // len(kinds)
    customers = max(1, answers // 5)
    for program, kind, score, choice in kinds:
        conn.execute(seq + "INSERT INTO program_surveys (program, kind, customer_id, status, priority, due_at, deadline_at,"
                     " sent_at, answered_at, score, choice, created_at)"
                     f" SELECT '{program}', '{kind}', 1 + abs(random()) % :customers, 'answered', 40, {_ts(at)}, {_ts(at)},"
                     f" {_ts(at)}, {_ts(at + ' + 600')}, {score}, {choice}, {_ts(at)} FROM n",
                     {"count": per, "start": end - span, "span": span, "customers": customers})
    conn.execute(seq + "INSERT INTO ideas (customer_id, topic, text, created_at)"
                 f" SELECT 1 + abs(random()) % :customers, {_case(('product', 'price', 'service', 'delivery', 'other'), 'i')},"
                 f" 'Ý tưởng ' || i, {_ts(at)} FROM n",
                 {"count": answers // 20, "start": end - span, "span": span, "customers": customers})
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    print(f"  stages, staff, {per * len(kinds):,} program answers, {answers // 20:,} ideas: {time.perf_counter() - t0:.1f} s",
          flush=True)


async def build_rollups(path: Path) -> None:
    """The history above was written by SQL, past the app's writes: its rollups (CSAT, complaints,
    journey stages and staff, programs) are built once, as `feedbot rollups rebuild` does."""
    config = _config(path)
    t0 = time.perf_counter()
    async with Database(path) as db:
        written = await rollup_service.rebuild(db, config.rollup_rule())
    print(f"  rollups rebuilt: {written:,} rows in {time.perf_counter() - t0:.1f} s", flush=True)


async def time_digests(path: Path, runs: int) -> tuple[list[float], list[float], str]:
    extra = {
        "agents": {"owner_chat_ids": [900]},
        "departments": [{"name": "logistics", "chat_id": -1001, "categories": ["delivery"], "idea_topics": ["delivery"]},
                        {"name": "product", "chat_id": -1002, "categories": ["product_quality"], "idea_topics": ["product", "price"]}],
        "stores": [{"store": f"Q{i}", "manager_chat_id": 500 + i} for i in range(1, 6)],
    }
    config = _config(path, **extra)
    now = week_bounds(LAST_WEEK, config.tz)[1] + timedelta(hours=9)
    async with Database(path) as db:
        clock = FakeClock(now)
        csat = service_for(config, db, clock, owners=False)
        feedback = feedback_digest_for(config, db, clock, telegram=True)
        alone, together = [], []
        text = ""
        for _ in range(runs):
            t0 = time.perf_counter()
            await csat.build(LAST_WEEK)
            alone.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await csat.build(LAST_WEEK)
            pages = await feedback.texts(LAST_WEEK)
            together.append(time.perf_counter() - t0)
            text = pages[0][3]
    return alone, together, text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("dispatch", "digest", "both"), default="both")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--answers", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--show", action="store_true", help="print the owners' feedback page")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="feedbot-programs-bench-"))
    try:
        if args.part in ("dispatch", "both"):
            path = workdir / "dispatch.db"
            asyncio.run(_migrate(path))
            t0 = time.perf_counter()
            fill_dispatch(path, args.customers)
            print(f"dispatch bench: {args.customers:,} customers, 6 programs (generated in {time.perf_counter() - t0:.1f} s)",
                  flush=True)
            elapsed, outcome, queued = asyncio.run(time_dispatch(path))
            print(f"one dispatch pass: {elapsed:.2f} s, {elapsed / args.customers * 1e6:.0f} µs per customer;"
                  f" {queued:,} outbox rows; {outcome}", flush=True)
        if args.part in ("digest", "both"):
            path = workdir / "digest.db"
            asyncio.run(_migrate(path))
            weeks = max(5, round(args.answers / ANSWERS_PER_WEEK))
            print(f"digest bench: {args.answers:,} CSAT answers over {weeks} weeks; generating ...", flush=True)
            generate(path, args.answers, round(TICKETS_PER_WEEK * weeks), weeks)
            fill_programs(path, args.answers, weeks)
            asyncio.run(build_rollups(path))
            alone, together, text = asyncio.run(time_digests(path, args.runs))
            a, b = statistics.median(alone), statistics.median(together)
            print(f"CSAT-only digest: median {a * 1000:.0f} ms; with programs (feedback page, 2 departments,"
                  f" 5 stores): median {b * 1000:.0f} ms over {args.runs} runs: {b / a:.2f}x (goal <= 1.2x)")
            if args.show:
                print(text)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
