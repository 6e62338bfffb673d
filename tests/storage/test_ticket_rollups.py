"""The complaint rollups equal the raw aggregation of the tickets: for random ticket histories
(opened, answered, claimed, resolved, rated, reopened, escalated; property test, SQLite), after an
erasure, after the retention purge, after a crash mid-transaction, and after a rebuild; and on
PostgreSQL for a fixed history. Also the bucket arithmetic the dashboard's medians rest on."""
from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bot.services.data_rights import Privacy
from storage import ticket_rollups, tickets
from storage.db import Database
from storage.timefmt import to_db
from tests.conftest import open_db
from testkit.clock import FakeClock

BACKENDS = ("sqlite", "postgresql")
VN = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 3, 1, 15, 0, tzinfo=timezone.utc)  # 22:00 in Vietnam: tickets straddle shop midnights


class Crash(Exception):
    """Stands for the process dying between the ticket's writes and the commit."""


step = st.fixed_dictionaries({
    "action": st.sampled_from(["open", "open", "respond", "claim", "resolve", "rate", "reopen", "escalate"]),
    "ticket": st.integers(0, 5),       # which of the tickets opened so far (modulo)
    "customer": st.integers(0, 2),
    "store": st.sampled_from([None, "Q1", "Q3"]),
    "category": st.sampled_from(["delivery", "product"]),
    "kind": st.sampled_from(["complaint", "complaint", "question"]),
    "minutes": st.integers(1, 60 * 40),  # time passing before the step
    "score": st.integers(1, 5),
    "agent": st.sampled_from([("a1", "Lan"), ("a2", "Bình"), ("a2", "Bình Trần")]),
    "crash": st.integers(0, 5).map(lambda n: n == 0),
})


async def check(db: Database) -> None:
    expected = (await ticket_rollups.aggregate_raw(db.reader, VN)).nonzero()
    assert await ticket_rollups.read(db.reader) == expected


async def scenario(db: Database, steps: list[dict], erase: int | None) -> None:
    clock = FakeClock(START)
    at = to_db(START)
    async with db.transaction() as tx:
        await ticket_rollups.rebuild(tx, VN)  # records the shop's time zone, as the app's start does
        for n in range(3):
            await tx.execute("INSERT INTO customers (external_id, name, link_token, created_at, updated_at, demo)"
                             " VALUES (?, ?, ?, ?, ?, ?)", (f"C-{n}", f"Khách {n}", f"tok{n}", at, at, int(n == 2)))
            await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at,"
                             " last_seen_at, customer_id) VALUES ('telegram', ?, ?, 'vi', ?, ?, ?)",
                             (f"{n}", f"{n}", at, at, n + 1))
    opened: list[int] = []
    for i, s in enumerate(steps):
        clock.advance(timedelta(minutes=s["minutes"]))
        now = clock.now()
        try:
            async with db.transaction() as tx:
                if s["action"] == "open" or not opened:
                    cur = await tx.execute(
                        "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint,"
                        " purchased_at, fingerprint, created_at) VALUES (?, ?, 1000, 'VND', '[]', ?, 'delivery', ?, 'x', ?)",
                        (f"T-{i}", s["customer"] + 1, s["store"], to_db(now), to_db(now)))
                    ticket_id = await tickets.insert(
                        tx, contact_id=s["customer"] + 1, customer_id=s["customer"] + 1, purchase_id=cur.lastrowid,
                        survey_id=None, source="command", category=s["category"], description="Có vấn đề", photos=[],
                        tier="regular", priority="normal", first_response_due_at=now + timedelta(hours=2),
                        resolution_due_at=now + timedelta(hours=24), agents_chat_id=None, now=now, kind=s["kind"])
                    if not s["crash"]:
                        opened.append(ticket_id)
                else:
                    t = await tickets.get(tx, opened[s["ticket"] % len(opened)])
                    assert t is not None
                    agent_id, agent_name = s["agent"]
                    if s["action"] == "respond" and t.first_response_at is None and t.status != "resolved":
                        await tickets.update(tx, t.id, first_response_at=now, status="claimed", assignee_id=agent_id,
                                             assignee_name=agent_name, claimed_at=now)
                    elif s["action"] == "claim" and t.status != "resolved":
                        await tickets.update(tx, t.id, status="claimed", assignee_id=agent_id, assignee_name=agent_name,
                                             claimed_at=now)
                    elif s["action"] == "resolve" and t.status != "resolved":
                        await tickets.update(tx, t.id, status="resolved", resolved_at=now,
                                             assignee_id=t.assignee_id or agent_id, assignee_name=t.assignee_name or agent_name)
                    elif s["action"] == "rate" and t.status == "resolved":
                        await tickets.update(tx, t.id, resolution_score=s["score"])
                    elif s["action"] == "reopen" and t.status == "resolved":
                        await tickets.reopen(tx, t.id, now + timedelta(hours=2), now + timedelta(hours=24))
                    elif s["action"] == "escalate" and t.status != "resolved":
                        await tickets.update(tx, t.id, priority="high", resolution_due_at=now + timedelta(hours=1))
                if s["crash"]:
                    raise Crash
        except Crash:
            pass
        await check(db)
    if erase is not None:
        await Privacy(db, clock, retention_days=30).erase(f"C-{erase}")  # closes their open tickets
        await check(db)
    clock.advance(timedelta(days=400))
    await Privacy(db, clock, retention_days=30).purge()
    await check(db)
    before = await ticket_rollups.read(db.reader)
    async with db.transaction() as tx:
        await ticket_rollups.rebuild(tx, VN)
    assert await ticket_rollups.read(db.reader) == before
    counts = before[0]
    real = await db.reader.execute_fetchall("SELECT COUNT(*) FROM tickets WHERE demo = 0")
    assert sum(v[0] for v in counts.values()) == real[0][0]  # every ticket opened once, demo ones not at all


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=30), st.one_of(st.none(), st.integers(0, 2)))
def test_ticket_rollups_equal_the_raw_aggregation_for_random_histories(steps, erase):
    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            db = Database(Path(folder) / "feedbot.db")
            await db.open()
            try:
                await scenario(db, steps, erase)
            finally:
                await db.close()

    asyncio.run(run())


async def test_ticket_rollups_on_both_backends(tmp_path, database_url):
    plan = [  # (action, ticket, customer, store, kind, crash)
        ("open", 0, 0, "Q1", "complaint", False), ("open", 0, 1, None, "question", False),
        ("open", 0, 2, "Q3", "complaint", False),  # a demo customer's: counted nowhere
        ("respond", 0, 0, None, "", False), ("resolve", 0, 0, None, "", False), ("rate", 0, 0, None, "", False),
        ("respond", 1, 0, None, "", True),  # crashed: nothing of it stays
        ("respond", 1, 0, None, "", False), ("resolve", 1, 0, None, "", False), ("reopen", 0, 0, None, "", False),
        ("open", 0, 0, "Q3", "complaint", False), ("escalate", 3, 0, None, "", False), ("claim", 3, 0, None, "", False),
        ("respond", 0, 0, None, "", False), ("resolve", 0, 0, None, "", False), ("rate", 0, 0, None, "", False),
        ("open", 0, 1, "Q1", "complaint", True),
    ]
    fixed = [{"action": a, "ticket": t, "customer": c, "store": store, "category": ["delivery", "product"][i % 2],
              "kind": kind or "complaint", "minutes": 37 + i * 191, "score": i % 5 + 1,
              "agent": [("a1", "Lan"), ("a2", "Bình")][i % 2], "crash": crash}
             for i, (a, t, c, store, kind, crash) in enumerate(plan)]
    db = open_db(tmp_path, database_url)
    await db.open()
    try:
        await scenario(db, fixed, erase=0)
        counts, durations, ratings = await ticket_rollups.read(db.reader)
        assert {k[3] for k in counts} == {"complaint", "question"} and durations and ratings
        assert {k[3] for k in durations} == {"first_response", "resolution"}
    finally:
        await db.close()


@pytest.mark.parametrize("seconds, expected", [(0, 0), (899, 0), (900, 1), (3599, 3), (3600, 4), (5 * 3600, 7),
                                               (30 * 86400, len(ticket_rollups.EDGES)), (-5, 0)])
def test_buckets(seconds, expected):
    assert ticket_rollups.bucket(seconds) == expected
    lower, upper = ticket_rollups.bucket_bounds(expected)
    assert lower <= max(0, seconds) and (upper is None or max(0, seconds) < upper)


def test_time_zones_round_trip():
    assert ticket_rollups.tz_from_text(ticket_rollups.tz_text(VN)) == VN
    plus7 = timezone(timedelta(hours=7))
    assert ticket_rollups.tz_from_text(ticket_rollups.tz_text(plus7)).utcoffset(None) == timedelta(hours=7)
    assert ticket_rollups.tz_from_text("Not/AZone") == timezone.utc
