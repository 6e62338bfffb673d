"""The feedback rollups (storage/feedback_rollups.py: the purchase CSAT per journey stage and staff,
program answers per program, kind, score and choice) equal the raw aggregation of the answers:
for random answers on both backends (property test: CSAT answers with and without a store,
stage or staff; nps, ces, usage, brand and ideas answers about a purchase, a complaint or nothing;
an "other" answered again on a later day; demo answers; a crash before the commit), after an
erasure, after the retention purge and after a rebuild (each example adds to the same database:
the rollups must equal the raw aggregation whatever is there already); and the pages' reads use
the rollups' indexes."""
from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bot.services import rollups as rollup_service
from bot.services.data_rights import Privacy
from storage import feedback_reports, feedback_rollups, programs, surveys, ticket_rollups
from storage.db import Database
from storage.rollups import RollupRule
from storage.timefmt import to_db
from tests.conftest import open_db
from tests.storage.test_query_plans import _plans, _scans
from testkit.clock import FakeClock

BACKENDS = ("sqlite", "postgresql")
VN = ZoneInfo("Asia/Ho_Chi_Minh")
RULE = RollupRule(tz=VN)
START = datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)
CUSTOMERS = 3
EXAMPLES = itertools.count()  # customers' external ids stay unique across examples in one database


class Crash(Exception):
    """Stands for the process dying between the answer's writes and the commit."""


MINUTES = st.integers(0, 60 * 24 * 4) | st.integers(60 * 24 * 29, 60 * 24 * 32)  # around shop midnights (UTC+7)
csat = st.fixed_dictionaries({
    "program": st.just(None),
    "customer": st.integers(0, CUSTOMERS - 1),
    "store": st.sampled_from([None, "Q1", "Q3"]),
    "stage": st.sampled_from([None, "order", "delivery"]),
    "staff": st.sampled_from([None, "Hùng", "Mai"]),
    "score": st.integers(1, 5),
    "minutes": MINUTES,
    "crash": st.integers(0, 6).map(lambda n: n == 0),
    "demo": st.integers(0, 9).map(lambda n: n == 0),
})
program = st.fixed_dictionaries({
    "program": st.sampled_from([("nps_q", "nps"), ("ces_done", "ces"), ("usage_14d", "usage"), ("brand_new", "brand"),
                                ("ideas_ask", "ideas")]),
    "customer": st.integers(0, CUSTOMERS - 1),
    "about": st.sampled_from(["purchase", "ticket", "nothing"]),
    "store": st.sampled_from([None, "Q1", "Q3"]),
    "score": st.integers(0, 10),
    "choice": st.sampled_from(["Tiếp khách", "Làm quà", "other"]),
    "again": st.sampled_from([None, None, "Làm quà", "text"]),  # after "other": a choice after all, or the text
    "later": st.integers(1, 60 * 30),  # minutes until that second answer
    "follow_up": st.booleans(),  # a scale's "why"
    "minutes": MINUTES,
    "crash": st.integers(0, 6).map(lambda n: n == 0),
    "demo": st.integers(0, 9).map(lambda n: n == 0),
})


async def same(db: Database) -> None:
    raw = await feedback_rollups.aggregate_raw(db.reader, RULE.tz)
    assert await feedback_rollups.read(db.reader) == raw


async def _purchase(tx, customer_id: int, a: dict, at: datetime, n: str) -> int:
    cur = await tx.execute(
        "INSERT INTO purchases (order_id, customer_id, amount, currency, items, store, touchpoint, purchased_at,"
        " fingerprint, created_at, stage, staff) VALUES (?, ?, 100000, 'VND', '[]', ?, 'delivery', ?, 'x', ?, ?, ?)",
        (f"A-{n}", customer_id, a["store"], to_db(at), to_db(at), a.get("stage"), a.get("staff")))
    return cur.lastrowid


async def _csat(db: Database, a: dict, customer_id: int, contact_id: int, at: datetime, n: str) -> None:
    async with db.transaction() as tx:
        purchase_id = await _purchase(tx, customer_id, a, at - timedelta(seconds=1), n)
        cur = await tx.execute(
            "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, due_at, contact_id, created_at, demo)"
            " VALUES (?, ?, 'delivery', ?, 'scheduled', ?, ?, ?, ?)",
            (purchase_id, customer_id, a["store"], to_db(at), contact_id, to_db(at), int(a["demo"])))
        survey_id = cur.lastrowid
        await surveys.mark_sent(tx, survey_id, contact_id, "vi", at)
    try:
        async with db.transaction() as tx:
            assert await surveys.record_score(tx, survey_id, a["score"], at, RULE)
            if a["crash"]:
                raise Crash
    except Crash:
        pass


async def _program(db: Database, a: dict, customer_id: int, contact_id: int, at: datetime, n: str) -> None:
    name, kind = a["program"]
    async with db.transaction() as tx:
        purchase_id = ticket_id = None
        if a["about"] != "nothing":
            purchase_id = await _purchase(tx, customer_id, a, at - timedelta(days=1), n)
        if a["about"] == "ticket":
            cur = await tx.execute(
                "INSERT INTO tickets (contact_id, customer_id, purchase_id, source, category, description, tier, priority,"
                " status, created_at, resolved_at, first_response_due_at, resolution_due_at) VALUES"
                " (?, ?, ?, 'command', 'delivery', 'Giao trễ', 'regular', 'normal', 'resolved', ?, ?, ?, ?)",
                (contact_id, customer_id, purchase_id, *[to_db(at - timedelta(hours=2))] * 4))
            ticket_id = cur.lastrowid
            await ticket_rollups.added(tx, ticket_id)
            purchase_id = None  # it follows the complaint, which is about the purchase
        survey_id = await programs.insert(tx, program=name, kind=kind, customer_id=customer_id, priority=40, due_at=at,
                                          deadline_at=at + timedelta(days=3), now=at, purchase_id=purchase_id,
                                          ticket_id=ticket_id)
        assert survey_id is not None
        await programs.mark_sent(tx, survey_id, contact_id, "vi", at)
        if a["demo"]:
            await tx.execute("UPDATE program_surveys SET demo = 1 WHERE id = ?", (survey_id,))
    try:
        async with db.transaction() as tx:
            if kind == "ideas":
                assert await programs.record_answer(tx, survey_id, at, text="Bán thêm trà ô long")
            elif kind in ("usage", "brand"):
                assert await programs.record_answer(tx, survey_id, at, choice=a["choice"])
            else:
                assert await programs.record_answer(tx, survey_id, at, score=a["score"])
            if a["crash"]:
                raise Crash
    except Crash:
        return
    await same(db)
    later = at + timedelta(minutes=a["later"])
    async with db.transaction() as tx:
        if kind in ("usage", "brand") and a["choice"] == "other" and a["again"] == "Làm quà":
            assert await programs.record_answer(tx, survey_id, later, choice="Làm quà")  # answered again: its day moves
        elif kind in ("usage", "brand") and a["choice"] == "other" and a["again"] == "text":
            assert await programs.record_answer(tx, survey_id, later, text="Để pha cho mẹ")
        elif kind in ("nps", "ces") and a["follow_up"]:
            assert await programs.record_answer(tx, survey_id, later, text="Giao nhanh")


async def scenario(db: Database, answers: list[dict], erase: int | None) -> None:
    example = next(EXAMPLES)
    clock = FakeClock(START)
    at = to_db(START)
    await rollup_service.rebuild(db, RULE)  # records the shop's time zone, as the app's start does
    customers, contacts = [], []
    async with db.transaction() as tx:
        for c in range(CUSTOMERS):
            cur = await tx.execute("INSERT INTO customers (external_id, name, link_token, created_at, updated_at)"
                                   " VALUES (?, ?, ?, ?, ?)", (f"C-{example}-{c}", f"Khách {c}", f"tok{example}-{c}", at, at))
            customers.append(cur.lastrowid)
            cur = await tx.execute("INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at,"
                                   " last_seen_at, customer_id) VALUES ('telegram', ?, ?, 'vi', ?, ?, ?)",
                                   (f"{example}-{c}", f"{example}-{c}", at, at, cur.lastrowid))
            contacts.append(cur.lastrowid)
    for i, a in enumerate(sorted(answers, key=lambda a: a["minutes"])):
        answered = START + timedelta(minutes=a["minutes"], seconds=i)
        record = _csat if a["program"] is None else _program
        await record(db, a, customers[a["customer"]], contacts[a["customer"]], answered, f"{example}-{i}")
        await same(db)
    if erase is not None:
        await Privacy(db, clock, retention_days=30).erase(f"C-{example}-{erase}")
        await same(db)
    clock.advance(timedelta(days=400))  # the retention purge, then a rebuild: still the raw aggregation
    await Privacy(db, clock, retention_days=30).purge()
    await same(db)
    await rollup_service.rebuild(db, RULE)
    await same(db)


def test_feedback_rollups_equal_the_raw_aggregation_for_random_answers(tmp_path, database_url):
    # Fewer examples on PostgreSQL: its round trips make each example (erasure, purge, rebuilds) slower.
    @settings(max_examples=25 if database_url is None else 12, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(csat | program, max_size=14), st.one_of(st.none(), st.integers(0, CUSTOMERS - 1)))
    def check(answers: list[dict], erase: int | None) -> None:
        async def run() -> None:
            async with open_db(tmp_path, database_url) as db:
                await scenario(db, answers, erase)

        asyncio.run(run())

    check()


async def test_what_the_pages_read_on_both_backends(db):
    """The readers over a range of shop days: stage and staff per store, a store's scope, program
    answers with None for no score or choice, an answer moved by answering again."""
    fixed = [
        {"program": None, "customer": 0, "store": "Q1", "stage": "order", "staff": "Hùng", "score": 5,
         "minutes": 60 * 18, "crash": False, "demo": False},  # 01:00 on 2 March, shop time
        {"program": None, "customer": 1, "store": "Q3", "stage": "order", "staff": None, "score": 2,
         "minutes": 60 * 20, "crash": False, "demo": False},
        {"program": None, "customer": 1, "store": "Q3", "stage": "order", "staff": None, "score": 1,
         "minutes": 60 * 21, "crash": True, "demo": False},  # never committed
        {"program": ("usage_14d", "usage"), "customer": 2, "about": "ticket", "store": "Q3", "score": 0,
         "choice": "other", "again": "Làm quà", "later": 60 * 24, "follow_up": False, "minutes": 60 * 19,
         "crash": False, "demo": False},  # "other" on 2 March, then a choice on 3 March
        {"program": ("ideas_ask", "ideas"), "customer": 2, "about": "nothing", "store": None, "score": 0,
         "choice": "other", "again": None, "later": 1, "follow_up": False, "minutes": 60 * 19,
         "crash": False, "demo": False},
    ]
    await scenario(db, fixed, erase=0)
    conn = db.reader
    assert sorted(await feedback_rollups.csat_by(conn, "stage", "2026-03-02", "2026-03-03")) == [
        ("Q1", "order", 1, 1, 5), ("Q3", "order", 1, 0, 2)]
    assert await feedback_rollups.csat_by(conn, "staff", "2026-03-02", "2026-03-03", ("Q3",)) == [("Q3", "", 1, 0, 2)]
    assert await feedback_rollups.csat_by(conn, "staff", "2026-03-02", "2026-03-03", ()) == []
    assert await feedback_rollups.csat_by(conn, "stage", "2026-03-03", "2026-03-10") == []
    assert sorted(await feedback_rollups.program_answers(conn, "2026-03-01", "2026-03-10"), key=str) == [
        ("ideas_ask", "ideas", None, None, 1), ("usage_14d", "usage", None, "Làm quà", 1)]
    assert await feedback_rollups.program_answers(conn, "2026-03-03", "2026-03-04", ("Q3",)) == [
        ("usage_14d", "usage", None, "Làm quà", 1)]  # the complaint's purchase's store; the idea has none


@pytest.mark.sqlite_only
async def test_the_pages_read_a_range_of_days_by_index(db):
    """The feedback pages' reads search the rollups' indexes by day (or store and day); never a scan."""
    async def reads() -> None:
        async with db.transaction() as tx:
            await feedback_rollups.csat_by(tx, "stage", "2026-03-01", "2026-03-08")
            await feedback_rollups.csat_by(tx, "staff", "2026-03-01", "2026-03-08", ("Q1", "Q3"))
            await feedback_rollups.program_answers(tx, "2026-03-01", "2026-03-08", ("Q1",))
            await feedback_reports.store_csat(tx, "Q1", "2026-03-01", "2026-03-08")
    plans = await _plans(db, reads)
    assert len(plans) == 4
    for sql, plan in plans:
        assert not _scans(plan), f"{plan}\n{sql}"
