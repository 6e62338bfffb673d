"""The CSAT rollups (answers, and surveys sent for the response rate) equal the raw aggregation of
the surveys: for random answers (property test, SQLite), after erasure, after the retention purge,
after a crash mid-transaction, after a send taken back (undeliverable), and after a rebuild; and on
PostgreSQL for a fixed set."""
from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bot.services.data_rights import Privacy
from storage import dashboard, rollups, surveys
from storage.dashboard import Filters
from storage.db import Database
from storage.rollups import RollupRule
from storage.timefmt import to_db
from tests.conftest import open_db
from testkit.clock import FakeClock

BACKENDS = ("sqlite", "postgresql")
VN = ZoneInfo("Asia/Ho_Chi_Minh")
RULE = RollupRule(tz=VN, vip_spend=Decimal(1_000_000), vip_orders=3)
START = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)
CHANNELS = ("telegram", "zalo", "web")


class Crash(Exception):
    """Stands for the process dying between the answer's writes and the commit."""


answer = st.fixed_dictionaries({
    "customer": st.integers(0, 3),
    "store": st.sampled_from([None, "Q1", "Q3"]),
    "touchpoint": st.sampled_from(["delivery", "in_store"]),
    "channel": st.integers(0, 2),
    "score": st.integers(1, 5),
    "minutes": st.integers(0, 60 * 24 * 6) | st.integers(60 * 24 * 29, 60 * 24 * 32),  # around shop midnights and
    # the end of March (shop time UTC+7): days and months
    "amount": st.sampled_from([100_000, 600_000]),
    "crash": st.booleans(),
    "demo": st.integers(0, 9).map(lambda n: n == 0),
    "comment": st.sampled_from([None, "Giao hàng nhanh", "đóng gói kém"]),
    "lost": st.integers(0, 5).map(lambda n: n == 0),  # the question never arrived: not sent after all
    "resent_hours": st.none() | st.integers(1, 30),  # marked sent again at another time: the count moves to its day
})


async def same(db: Database) -> None:
    raw = await rollups.aggregate_raw(db.reader, RULE)
    assert await rollups.read(db.reader) == raw
    assert await rollups.read_months(db.reader) == rollups.by_month(raw)  # the months' triggers
    assert await rollups.read_days(db.reader) == rollups.by_day(raw)  # the days' and store days' triggers
    sends = await rollups.sends_raw(db.reader, RULE.tz)
    assert await rollups.read_sends(db.reader) == sends
    assert await rollups.read_sends_months(db.reader) == rollups.sends_by_month(sends)  # the sends' months' triggers
    await dashboard_reads_agree(db)


# (previous from, from, to): ranges with and without whole months, across the end of March
RANGES = (("2026-01-15", "2026-03-01", "2026-04-01"), ("2026-02-27", "2026-03-02", "2026-04-03"),
          ("2026-03-01", "2026-03-31", "2026-05-01"), ("2026-03-02", "2026-03-03", "2026-03-04"))


async def dashboard_reads_agree(db: Database) -> None:
    """The dashboard's CSAT by day and sends, read from the day totals and the months, equal the
    same figures added up from the day rows."""
    cells, sends = await rollups.read(db.reader), await rollups.read_sends(db.reader)
    for stores in (None, ("Q1",), ("Q1", "Q3"), ("",)):
        for touchpoint in ("", "delivery"):
            f = Filters(stores=stores, touchpoint=touchpoint)
            for p_lo, lo, hi in RANGES:
                by_day: dict[str, list[int]] = {}
                for (day, store, tp, *_), cell in cells.items():
                    if p_lo <= day < hi and (stores is None or store in stores) and touchpoint in ("", tp):
                        row = by_day.setdefault(day, [0, 0, 0, 0])
                        for i, v in enumerate(cell.as_tuple()):
                            row[i] += v
                read = await dashboard.csat_by_day(db.reader, p_lo, hi, f)
                assert [r for r in read if r[1]] == [(d, *v) for d, v in sorted(by_day.items()) if v[0]]
                sent: dict[tuple[str, str], list[int]] = {}
                for (day, store, tp), n in sends.items():
                    if p_lo <= day < hi and (stores is None or store in stores) and touchpoint in ("", tp):
                        sent.setdefault((store, tp), [0, 0])[0 if day >= lo else 1] += n
                read_sends = await dashboard.csat_sends(db.reader, p_lo, lo, hi, f)
                assert {(s, t): [a, b] for s, t, a, b in read_sends if a or b} == {k: v for k, v in sent.items() if any(v)}


async def scenario(db: Database, answers: list[dict], erase: int | None) -> None:
    clock = FakeClock(START)
    at = to_db(START)
    async with db.transaction() as tx:
        await rollups.rebuild(tx, RULE)  # records the shop's time zone, as the app's start does
        for n in range(4):
            await tx.execute("INSERT INTO customers (external_id, name, link_token, created_at, updated_at)"
                             " VALUES (?, ?, ?, ?, ?)", (f"C-{n}", f"Khách {n}", f"tok{n}", at, at))
            for ch in CHANNELS:
                await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at,"
                                 " last_seen_at, customer_id) VALUES (?, ?, ?, 'vi', ?, ?, ?)",
                                 (ch, f"{n}", f"{n}", at, at, n + 1))
    # In time order, as answers arrive (a customer's tier is as of each answer).
    for i, a in enumerate(sorted(answers, key=lambda a: a["minutes"])):
        answered = START + timedelta(minutes=a["minutes"], seconds=i)
        # Just before the answer: a purchase written later is never dated before an earlier answer
        # (its tier as of then would count it in the raw aggregation but not when it was recorded).
        bought = answered - timedelta(seconds=1)
        customer_id = a["customer"] + 1
        async with db.transaction() as tx:
            cur = await tx.execute(
                "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint, purchased_at,"
                " fingerprint, created_at) VALUES (?, ?, ?, 'VND', '[]', ?, ?, ?, 'x', ?)",
                (f"A-{i}", customer_id, a["amount"], a["store"], a["touchpoint"], to_db(bought), to_db(bought)))
            contact_id = a["customer"] * 3 + a["channel"] + 1
            cur = await tx.execute(
                "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, due_at, contact_id,"
                " created_at, demo) VALUES (?, ?, ?, ?, 'scheduled', ?, ?, ?, ?)",
                (cur.lastrowid, customer_id, a["touchpoint"], a["store"], to_db(bought), contact_id,
                 to_db(bought), int(a["demo"])))
            survey_id = cur.lastrowid
            await surveys.mark_sent(tx, survey_id, contact_id, "vi", bought)
        if a.get("resent_hours") is not None:
            async with db.transaction() as tx:
                await surveys.mark_sent(tx, survey_id, contact_id, "vi", bought - timedelta(hours=a["resent_hours"]))
            await same(db)
        if a.get("lost"):
            async with db.transaction() as tx:
                cur = await tx.execute(
                    "INSERT INTO outbox (channel, chat_id, contact_id, method, payload, survey_id, created_at)"
                    " VALUES ('telegram', '1', ?, 'send_text', '{}', ?, ?)", (contact_id, survey_id, to_db(bought)))
                assert await surveys.mark_undeliverable(tx, [cur.lastrowid], "blocked", answered) == 1
            await same(db)
            continue
        try:
            async with db.transaction() as tx:
                assert await surveys.record_score(tx, survey_id, a["score"], answered, RULE)
                if a["comment"]:
                    await surveys.record_comment(tx, survey_id, a["comment"], answered)
                if a["crash"]:
                    raise Crash
        except Crash:
            pass
        await same(db)
    if erase is not None:
        await Privacy(db, clock, retention_days=30).erase(f"C-{erase}")
        await same(db)
    clock.advance(timedelta(days=400))
    await Privacy(db, clock, retention_days=30).purge()
    expected = await rollups.aggregate_raw(db.reader, RULE)
    assert await rollups.read(db.reader) == expected
    sends = await rollups.read_sends(db.reader)
    await same(db)
    async with db.transaction() as tx:
        await rollups.rebuild(tx, RULE)
    assert await rollups.read(db.reader) == expected and await rollups.read_sends(db.reader) == sends
    assert await rollups.read_months(db.reader) == rollups.by_month(expected)
    assert await rollups.read_days(db.reader) == rollups.by_day(expected)
    assert await rollups.read_sends_months(db.reader) == rollups.sends_by_month(sends)
    counted = [a for a in answers if not a["demo"] and not a.get("lost")]
    assert sum(c.answers for c in expected.values()) == sum(1 for a in counted if not a["crash"])
    assert sum(sends.values()) == len(counted)  # a crashed answer's survey was still sent


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(answer, max_size=25), st.one_of(st.none(), st.integers(0, 3)))
def test_rollups_equal_the_raw_aggregation_for_random_answers(answers, erase):
    async def run() -> None:
        with tempfile.TemporaryDirectory() as folder:
            db = Database(Path(folder) / "feedbot.db")
            await db.open()
            try:
                await scenario(db, answers, erase)
            finally:
                await db.close()

    asyncio.run(run())


async def test_rollups_on_both_backends(tmp_path, database_url):
    fixed = [
        {"customer": c % 4, "store": [None, "Q1", "Q3"][c % 3], "touchpoint": ["delivery", "in_store"][c % 2],
         "channel": c % 3, "score": c % 5 + 1, "minutes": c * 1597, "amount": [100_000, 600_000][c % 2],
         "crash": c % 7 == 3, "demo": c % 11 == 5, "comment": "Giao hàng nhanh" if c % 2 else None, "lost": c % 9 == 4}
        for c in range(30)
    ]
    db = open_db(tmp_path, database_url)
    await db.open()
    try:
        await scenario(db, fixed, erase=1)
        cells = await rollups.read(db.reader)
        assert {k[3] for k in cells} == {"regular", "vip"} and {k[4] for k in cells} == set(CHANNELS)
        # Days are shop days: 23:30 UTC is the next morning in Vietnam.
        assert RULE.day(datetime(2026, 3, 1, 23, 30, tzinfo=timezone.utc)) == "2026-03-02"
    finally:
        await db.close()


@pytest.mark.parametrize("score", [1, 5])
def test_cell_counts(score):
    cell = rollups.Cell()
    cell.add(score)
    assert cell.as_tuple() == (1, int(score >= 4), int(score <= 2), score)


async def test_the_app_rebuilds_when_the_rule_changed_or_never_was(tmp_path):
    from bot.services import rollups as rollup_service

    db = Database(tmp_path / "feedbot.db")
    await db.open()
    try:
        await scenario(db, [{"customer": 0, "store": "Q1", "touchpoint": "delivery", "channel": 0, "score": 5,
                             "minutes": 60 * 20, "amount": 100_000, "crash": False, "demo": False, "comment": None}], None)
        assert await rollup_service.ensure_current(db, RULE)  # never built under a recorded rule
        assert not await rollup_service.ensure_current(db, RULE)
        [(day, *_)] = (await rollups.read(db.reader)).keys()
        assert day == "2026-03-02"  # 20:00 UTC is 03:00 the next day in Vietnam
        utc = RollupRule(tz=timezone.utc, vip_spend=RULE.vip_spend, vip_orders=RULE.vip_orders)
        assert await rollup_service.ensure_current(db, utc)  # shop.timezone changed: days move
        [(day, *_)] = (await rollups.read(db.reader)).keys()
        assert day == "2026-03-01"
    finally:
        await db.close()
