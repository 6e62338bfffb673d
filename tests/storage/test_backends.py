"""The two storage backends side by side: one migration set each (every SQLite migration has a
PostgreSQL twin), instances migrating an empty PostgreSQL database at once, refusing a database
migrated by a newer feedbot, SQL translation, and `feedbot db copy`."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from storage import customers, purchases, reports, surveys
from storage.rollups import RollupRule
from storage.db import Database, MigrationError, migration_files
from storage.pg import PgDatabase, translate
from storage.pg import migration_files as pg_migration_files
from tests.conftest import BOTH, START, open_db
from tests.pg import SERVER, require_server

BACKENDS = BOTH


def test_every_sqlite_migration_has_a_postgresql_twin():
    sqlite = {version: name for version, name, _ in migration_files()}
    postgresql = {version: name for version, name, _ in pg_migration_files()}
    missing = {v: n for v, n in sqlite.items() if postgresql.get(v) != n}
    assert missing == {}, f"add storage/migrations/postgresql/<same name> for: {sorted(missing.values())}"
    assert set(postgresql) <= set(sqlite), "a PostgreSQL migration with no SQLite one"


def test_placeholders_are_translated_once_and_literals_left_alone():
    q = translate("SELECT '?', ':x', a::text FROM t WHERE b = ? AND c = ? AND +d = ?1", frozenset())
    assert q.text == "SELECT '?', ':x', a::text FROM t WHERE b = $1 AND c = $2 AND d = $1"
    named = translate("SELECT 1 WHERE a >= :start AND b < :end AND c < :end", frozenset())
    assert named.text == "SELECT 1 WHERE a >= $1 AND b < $2 AND c < $2"
    assert named.args({"end": 2, "start": 1}) == [1, 2]
    insert = translate("INSERT INTO outbox (a) VALUES (?)", frozenset({"outbox"}))
    assert insert.text.endswith("RETURNING id") and insert.insert
    assert not translate("INSERT INTO settings (key, value) VALUES (?, ?)", frozenset({"outbox"})).insert


def test_messages_name_the_database_without_its_password():
    assert PgDatabase("postgresql://feedbot:s3cret@db.example:5432/shop").path == "postgresql://feedbot@db.example:5432/shop"


async def test_a_database_migrated_by_a_newer_feedbot_is_refused(tmp_path, backend):
    if backend == "postgresql":
        await require_server()
        url = await SERVER.empty_database()
    else:
        url = None
    try:
        async with open_db(tmp_path, url) as db:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'x.sql', 'now')")
        for migrate in (True, False):
            db = open_db(tmp_path, url)
            with pytest.raises(MigrationError, match="schema version 9999.*newer feedbot"):
                await db.open(migrate=migrate)
            await db.close()
    finally:
        if url:
            await SERVER.drop(url)


@pytest.mark.postgresql_only  # SQLite's concurrent first start: tests/storage/test_storage.py
async def test_instances_starting_at_once_on_an_empty_postgresql_database_migrate_it_once(tmp_path, backend):
    await require_server()
    url = await SERVER.empty_database()
    dbs = [PgDatabase(url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(d.open() for d in dbs), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        rows = await dbs[0].fetchall("SELECT version, COUNT(*) FROM schema_migrations GROUP BY version ORDER BY version")
        assert [(r[0], r[1]) for r in rows] == [(v, 1) for v, _, _ in pg_migration_files()]
    finally:
        for d in dbs:
            await d.close()
        await SERVER.drop(url)


async def test_reports_give_the_same_figures(tmp_path, database_url):
    """Sums of booleans, julianday arithmetic, numeric amounts: as SQLite computes them."""
    async with open_db(tmp_path, database_url) as db:
        async with db.transaction() as tx:
            customer = await customers.upsert(tx, external_id="C-1", name="An", phone=None, telegram_user_id=None, now=START)
            for i, score in enumerate((5, 4, 2)):
                pid = await purchases.insert(
                    tx, order_id=f"A-{i}", customer_id=customer.id, amount=Decimal("1500000.5") if i else Decimal(2),
                    currency="VND", items=[], store="Q1", touchpoint="delivery", purchased_at=START,
                    fingerprint="f", now=START)
                sid = await surveys.insert(tx, purchase_id=pid, customer_id=customer.id, touchpoint="delivery",
                                           store="Q1", due_at=START, status="scheduled", skip_reason=None, now=START)
                await tx.execute("UPDATE surveys SET status = 'answered', sent_at = ?, answered_at = ?, score = ?"
                                 " WHERE id = ?", (surveys_time(i), surveys_time(i + 1), score, sid))
            await tx.execute(
                "INSERT INTO contacts (channel, platform_user_id, chat_id, language, created_at, last_seen_at)"
                " VALUES ('telegram', '1', '1', 'vi', 'a', 'a')")
            await tx.execute(
                "INSERT INTO tickets (contact_id, source, category, description, tier, priority, status, created_at,"
                " first_response_at, first_response_due_at, resolution_due_at)"
                " VALUES (1, 'command', 'delivery', 'x', 'regular', 'normal', 'claimed', ?, ?, ?, ?)",
                (surveys_time(0), surveys_time(0, minutes=90.5), surveys_time(2), surveys_time(3)))
        cells = await reports.csat_cells(db.reader, START, START + timedelta(days=1),
                                         reports.VipRule(spend=Decimal(3_000_000), orders=10))
        assert [(c.tier, c.answers, c.satisfied, c.score_sum, c.sent, c.sent_answered) for c in cells] == [
            ("vip", 3, 2, 11, 3, 3)]
        series = await reports.csat_series(db.reader, [(START, START + timedelta(hours=2)), (START, START + timedelta(days=1))])
        assert [(t.answers, t.satisfied, t.score_sum) for t in series] == [(1, 1, 5), (3, 2, 11)]
        stats = await reports.complaint_stats(db.reader, START, START + timedelta(days=1))
        assert stats.first_response_s == (5430.0,)
        spend = await db.fetchone("SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM purchases")
        assert (spend[0], spend[1]) == (3000003.0, 3)


def surveys_time(hours: int, minutes: float = 0):
    from storage.timefmt import to_db

    return to_db(START + timedelta(hours=hours, minutes=minutes))


# --- feedbot db copy ----------------------------------------------------------------------


async def _shop_file(path) -> None:
    """A SQLite file with rows in most tables, awkward values included."""
    from storage import inbox, outbox, settings

    survey_ids: list[int] = []
    async with Database(path) as db:
        async with db.transaction() as tx:
            await settings.get_or_create(tx, "api_token", lambda: "tok\tline\nbreak")
            c = await customers.upsert(tx, external_id="C-1", name="Nguyễn Thị Lan", phone="+84 912", telegram_user_id="7",
                                       now=START)
            for i in range(7):
                pid = await purchases.insert(tx, order_id=f"A-{i}", customer_id=c.id, amount=Decimal("1500.5") if i % 2 else Decimal(250000),
                                             currency="VND", items=[{"sku": "TEA", "name": "Trà sen"}], store=None,
                                             touchpoint="delivery", purchased_at=START, fingerprint="f", now=START)
                survey_ids.append(await surveys.insert(tx, purchase_id=pid, customer_id=c.id, touchpoint="delivery", store="Q1",
                                                       due_at=START, status="scheduled", skip_reason=None, now=START))
            await tx.execute(
                "INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at, last_seen_at)"
                " VALUES ('telegram', '7', '7', ?, 'vi', 'a', 'a')", (c.id,))
            for survey_id in survey_ids[:2]:  # answers in the rollups (csat_months follows csat_rollups by triggers)
                await surveys.mark_sent(tx, survey_id, 1, "vi", START)
                assert await surveys.record_score(tx, survey_id, 5, START, RollupRule())
            await tx.execute("INSERT INTO conversations (contact_id, state, data, updated_at) VALUES (1, 's', '{}', 'a')")
            for i in range(23):
                await inbox.record(tx, "telegram", str(i), f'{{"text": "xin chào {i}"}}', START)
                await outbox.enqueue(tx, channel="telegram", chat_id="7", contact_id=1, method="send_text",
                                     payload={"text": f"cảm ơn {i}"}, now=START)


def _copy(source, url, *args):
    from tests.cli.test_main import feedbot

    return feedbot("db", "copy", "--from", str(source), "--to", url, *args, cwd=source.parent, timeout=120)


@pytest.mark.postgresql_only
async def test_db_copy_moves_every_row_verified_resumes_and_sets_the_sequences(tmp_path, backend):
    await require_server()
    source = tmp_path / "feedbot.db"
    await _shop_file(source)
    url = await SERVER.empty_database()
    try:
        first = _copy(source, url, "--batch", "5")
        assert first.returncode == 0, first.stderr
        assert "copy inbox: 23/23 rows (100%)" in first.stderr and "copy verified" in first.stdout
        lines = {line.split()[0]: line.split() for line in first.stdout.splitlines()[1:-1]}
        assert lines["inbox"][1:3] == ["23", "23"] and lines["purchases"][1:3] == ["7", "7"]
        assert all(line[-1] == "yes" for line in lines.values()) and {"settings", "conversations", "outbox"} <= lines.keys()

        async with PgDatabase(url) as pg:
            await pg.writer.execute("DELETE FROM inbox WHERE id > 10")  # a copy stopped half-way
            resumed = _copy(source, url, "--batch", "5")
            assert resumed.returncode == 0 and "copy inbox: 10/23 rows" in resumed.stderr, resumed.stderr
            again = await pg.fetchall("SELECT id, payload FROM inbox ORDER BY id")
            assert [r[0] for r in again] == list(range(1, 24)) and again[0][1] == '{"text": "xin chào 0"}'
            # The month rollups are the target's own (its triggers), not copied on top: each answer once.
            assert [tuple(r) for r in await pg.fetchall("SELECT month, answers FROM csat_months")] == [(START.strftime("%Y-%m"), 2)]
            amounts = [r[0] for r in await pg.fetchall("SELECT amount FROM purchases ORDER BY id")]
            assert amounts[:2] == [250000, 1500.5]
            async with pg.transaction() as tx:
                cur = await tx.execute("INSERT INTO inbox (platform, update_id, payload, received_at) VALUES ('t', 'new', '{}', 'a')")
            assert cur.lastrowid == 24  # the sequence went past the copied ids

            await pg.writer.execute("UPDATE customers SET name = 'X'")  # a difference is reported, not hidden
            differs = _copy(source, url)
            assert differs.returncode == 1 and "copy differs in customers, inbox" in differs.stderr
    finally:
        await SERVER.drop(url)


def test_db_copy_bad_arguments_exit_2_with_a_clear_message(tmp_path):
    assert "expected a postgresql:// URL" in (r := _copy(tmp_path / "x.db", "feedbot.db")).stderr and r.returncode == 2
    missing = _copy(tmp_path / "missing.db", "postgresql://postgres@127.0.0.1:5432/x")
    assert missing.returncode == 2 and "no SQLite file" in missing.stderr
    (tmp_path / "x.db").write_bytes(b"")  # the SQLite side is there: the server is what is missing
    unreachable = _copy(tmp_path / "x.db", "postgresql://postgres@127.0.0.1:1/feedbot")
    assert unreachable.returncode == 2 and "--to: cannot use the PostgreSQL database" in unreachable.stderr


# --- units (group commit) on both backends --------------------------------------------------


async def test_units_at_once_all_commit_and_a_failing_one_undoes_only_its_own(tmp_path, database_url):
    async with open_db(tmp_path, database_url) as db:
        async def unit(i: int) -> None:
            async with db.unit() as tx:
                await tx.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (f"k{i:02}", str(i)))
                if i == 7:
                    raise ValueError("unit 7 fails")

        results = await asyncio.gather(*(unit(i) for i in range(20)), return_exceptions=True)
        assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [7]
        rows = await db.fetchall("SELECT key FROM settings WHERE key LIKE 'k%' ORDER BY key")
        assert [r[0] for r in rows] == [f"k{i:02}" for i in range(20) if i != 7]  # committed on return, seen by readers
        async with db.transaction() as tx:  # a transaction after units: theirs committed first, ours works
            await tx.execute("INSERT INTO settings (key, value) VALUES ('after', '1')")
        assert await db.fetchone("SELECT value FROM settings WHERE key = 'after'") is not None


async def test_start_up_without_a_reachable_postgresql_names_database_url(tmp_path):
    from bot.app import FeedbotApp, StartupError
    from tests.conftest import make_config

    app = FeedbotApp(make_config(tmp_path, database_url="postgresql://feedbot:s3cret@127.0.0.1:1/feedbot"))
    with pytest.raises(StartupError) as info:
        await app.start(scheduler=False)
    message = str(info.value)
    assert message.startswith("database.url: cannot open or write the database on PostgreSQL")
    assert "cannot connect" in message and "s3cret" not in message


@pytest.mark.postgresql_only
async def test_vacuum_after_an_erasure_waits_for_an_older_snapshot_held_in_another_database(tmp_path, backend, database_url):
    """VACUUM FULL keeps rows an open snapshot may still see, and a session of *any* database
    holds that horizon back; the rewrite after an erasure waits for it to end."""
    from pathlib import Path

    import asyncpg

    from tests.pg import url_of

    other = await asyncpg.connect(url_of("postgres"))
    async with open_db(tmp_path, database_url) as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('probe', 'ERASED-SECRET-7731')")
        holder = other.transaction(isolation="repeatable_read")
        await holder.start()
        await other.fetchval("SELECT 1")  # the snapshot is taken here, before the erasure
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM settings WHERE key = 'probe'")
        db.erased = True
        asyncio.get_running_loop().call_later(0.3, lambda: asyncio.ensure_future(holder.rollback()))
        await db.checkpoint()
        assert not db.erased  # the rewrite ran after the snapshot ended: nothing left to redo
        row = await db.fetchone(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath('settings')")
        assert b"ERASED-SECRET-7731" not in Path(row[0]).read_bytes()
    await other.close()
