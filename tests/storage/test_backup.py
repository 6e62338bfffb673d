"""Backups (issue 23): taken under concurrent writes, verified, restored; damaged ones refused;
restore refused while the bot runs or from a newer schema; a failing migration; the scheduled
job's retention, post command and alert; erasure then purge. On the real app and real files."""
from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from bot.app import FeedbotApp, StartupError
from bot.cli.main import main as feedbot_main
from bot.services.backups import Backups, BackupSettings
from flows.backups import to_keep
from storage import backup as files
from storage.backup import BackupError
from storage.db import Database, migration_files
from testkit.clock import FakeClock
from tests.conftest import BOTH, VN, Harness, make_config

BACKENDS = BOTH
KNOWN = max(v for v, _, _ in migration_files())
NOW = datetime(2026, 12, 5, 3, 0, tzinfo=timezone.utc)


def _rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def _pg_rows(url: str, sql: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_a_backup_under_concurrent_writes_restores_every_row_committed_before_it(tmp_path, tg, clock, database_url):
    """Webhooks (inbound updates by long polling: inbox, conversation, outbox rows), the HTTP API
    (purchases) and the sender (outbox rows marked sent) write while the backup runs."""
    h = Harness(make_config(tmp_path, tg, database_url=database_url, backup={"folder": str(tmp_path / "b")}), tg, clock)
    await h.start()
    try:
        async with h.app.db.transaction() as tx:  # some bulk, so the copy is not instantaneous
            for n in range(3000):
                await tx.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (f"filler-{n}", "x" * 300))
        confirmed: list[str] = []
        stop = asyncio.Event()

        async def purchases() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                status, _ = await h.post_purchase(f"W-{n}", customer={"external_id": f"C-{n}", "name": "Lan"})
                assert status in (201, 202)
                confirmed.append(f"W-{n}")

        async def chats() -> None:
            user = 5000
            while not stop.is_set():
                user += 1
                await h.customer_says(user, "xin chào")  # a reply is queued; the sender sends it

        writers = [asyncio.create_task(purchases()), asyncio.create_task(chats())]
        while len(confirmed) < 20:
            await asyncio.sleep(0.01)
        before = list(confirmed)  # committed (answered 201) before the backup started
        result = await h.app.backups.take()
        during = len(confirmed) - len(before)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*writers)
        sent = await h.rows("SELECT count(*) AS n FROM outbox WHERE status = 'sent'")
        assert sent[0]["n"] > 0  # the sender was at work
    finally:
        await h.close()
    assert result.manifest.tables["purchases"] >= len(before)
    if database_url is None:
        restored = tmp_path / "restored" / "feedbot.db"
        files.restore_sqlite_sync(result.path, restored, KNOWN, NOW)
        assert _rows(restored, "PRAGMA integrity_check") == [("ok",)]
        orders = {r[0] for r in _rows(restored, "SELECT order_id FROM purchases")}
        inbox = _rows(restored, "SELECT count(*) FROM inbox")[0][0]
    else:
        await files.restore_pg(result.path, database_url, KNOWN, NOW, tmp_path / "aside")
        orders = {r[0] for r in await _pg_rows(database_url, "SELECT order_id FROM purchases")}
        inbox = (await _pg_rows(database_url, "SELECT count(*) FROM inbox"))[0][0]
        assert (await _pg_rows(database_url, "SELECT count(*) FROM settings WHERE key LIKE 'filler-%'")) == [(3000,)]
    assert set(before) <= orders
    assert len(orders) == result.manifest.tables["purchases"]
    assert inbox == result.manifest.tables["inbox"] > 0
    print(f"purchases confirmed while the backup ran: {during}")


async def _make_db(path: Path, n: int = 50) -> None:
    async with Database(path) as db:
        async with db.transaction() as tx:
            for i in range(n):
                await tx.execute("INSERT INTO settings (key, value) VALUES (?, ?)", (f"k{i}", f"v{i}" * 20))


@pytest.mark.sqlite_only
@pytest.mark.parametrize("damage", ["truncated", "altered byte", "altered, manifest updated", "counts altered"])
async def test_a_truncated_or_altered_backup_is_refused_by_verify_and_restore(tmp_path, backend, damage):
    db_path = tmp_path / "feedbot.db"
    await _make_db(db_path)
    result = await files.backup_sqlite(db_path, tmp_path / "backups", NOW)
    data = result.path.read_bytes()
    manifest = json.loads(result.manifest_path.read_text())
    if damage == "truncated":
        result.path.write_bytes(data[: len(data) // 2])
    elif damage == "altered byte":
        result.path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "altered, manifest updated":  # the checksum matches: decompression or the db check fails
        raw = bytearray(gzip.decompress(data))
        raw[5000:5100] = b"\xff" * 100
        changed = gzip.compress(bytes(raw))
        result.path.write_bytes(changed)
        import hashlib
        manifest.update(sha256=hashlib.sha256(changed).hexdigest(), size=len(changed))
        result.manifest_path.write_text(json.dumps(manifest))
    else:
        manifest["tables"]["settings"] += 1
        result.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BackupError):
        files.verify_sqlite_sync(result.path)
    before = db_path.read_bytes()
    with pytest.raises(BackupError):
        files.restore_sqlite_sync(result.path, db_path, KNOWN, NOW)
    assert db_path.read_bytes() == before
    assert not list(tmp_path.glob("feedbot.db.replaced-*")) and not list(tmp_path.glob(".feedbot-restore-*"))
    # the CLI says so, exit 1
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db_path}"\n')
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "verify", str(result.path)]) == 1
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "restore", str(result.manifest_path)]) == 1


@pytest.mark.sqlite_only
async def test_verify_and_restore_of_a_sound_backup_keep_the_replaced_file(tmp_path, backend, capsys):
    db_path = tmp_path / "feedbot.db"
    await _make_db(db_path, 10)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db_path}"\n[backup]\nfolder = "{tmp_path / "b"}"\n')
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "backup"]) == 0
    (backup,) = files.list_backups(tmp_path / "b")
    async with Database(db_path) as db:  # a change after the backup: the restore undoes it
        await db.write_grouped("DELETE FROM settings WHERE key = 'k3'")
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "verify", str(backup.path)]) == 0
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "restore", str(backup.path)]) == 0
    out = capsys.readouterr().out
    assert "backup OK" in out and "replaced file is kept" in out
    assert _rows(db_path, "SELECT count(*) FROM settings WHERE key = 'k3'") == [(1,)]
    (aside,) = tmp_path.glob("feedbot.db.replaced-*[0-9Z]")
    assert _rows(aside, "SELECT count(*) FROM settings WHERE key = 'k3'") == [(0,)]
    async with Database(db_path) as db:  # the bot opens the restored file (WAL again)
        assert (await db.fetchone("SELECT count(*) FROM settings WHERE key LIKE 'k%'"))[0] == 10


async def test_restore_is_refused_while_the_bot_runs(tmp_path, clock, backend, database_url, capsys):
    config = make_config(tmp_path, database_url=database_url, backup={"folder": str(tmp_path / "b")})
    app = FeedbotApp(config, clock=clock)
    await app.start(scheduler=False)
    try:
        result = await app.backups.take()
        toml = tmp_path / "config.toml"
        toml.write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n'
                        + (f'url = "{database_url}"\n' if database_url else ""))
        code = await asyncio.to_thread(feedbot_main, ["--config", str(toml), "db", "restore", str(result.path)])
        assert code == 1
        err = capsys.readouterr().err
        assert ("stop the bot first" in err) if database_url is None else ("stop every bot" in err)
        assert await app.db.fetchone("SELECT count(*) FROM schema_migrations")  # still working
    finally:
        await app.stop()
    if database_url is None:
        assert not list(tmp_path.glob("feedbot.db.replaced-*"))
        # stopped: the same restore goes through, and a bot cannot start while one runs
        lock = files.RunLock(tmp_path / "feedbot.db")
        assert lock.acquire(exclusive=True)
        try:
            with pytest.raises(StartupError, match="restore"):
                await FeedbotApp(config, clock=clock).start(scheduler=False)
        finally:
            lock.release()
        assert files.restore_sqlite_sync(result.path, tmp_path / "feedbot.db", KNOWN, NOW)[1] is not None


@pytest.mark.sqlite_only
async def test_a_backup_from_a_newer_schema_is_refused(tmp_path, backend):
    db_path = tmp_path / "newer.db"
    await _make_db(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 'x')")
    conn.commit()
    conn.close()
    result = await files.backup_sqlite(db_path, tmp_path / "b", NOW)
    assert files.verify_sqlite_sync(result.path).manifest.schema_version == 9999  # sound, but newer
    target = tmp_path / "feedbot.db"
    await _make_db(target)
    with pytest.raises(BackupError, match="newer feedbot"):
        files.restore_sqlite_sync(result.path, target, KNOWN, NOW)
    assert _rows(target, "SELECT max(version) FROM schema_migrations") == [(KNOWN,)]


async def test_a_migration_that_fails_midway_leaves_the_old_database_and_the_pre_migration_backup(
        tmp_path, clock, backend, database_url, monkeypatch):
    config = make_config(tmp_path, database_url=database_url, backup={"folder": str(tmp_path / "b")})
    db = config.database.open()
    if database_url is not None:  # the fixture's database is migrated: start from an empty schema
        conn = await asyncpg.connect(database_url)
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        await conn.close()
    await db.open(migrate=False)
    try:
        await db.migrate(up_to=13) if database_url is None else await _pg_migrate_up_to(db, 13)
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
    finally:
        await db.close()
    module = "storage.pg" if database_url else "storage.db"
    real = __import__(module, fromlist=["migration_files"]).migration_files()
    broken = real + [(9000, "9000_broken.sql", "CREATE TABLE half_done (a INTEGER);\nINSERT INTO no_such_table VALUES (1);")]
    monkeypatch.setattr(f"{module}.migration_files", lambda: broken)
    app = FeedbotApp(config, clock=clock)
    with pytest.raises(StartupError) as failed:
        await app.start(scheduler=False)
    await app.stop()
    message = str(failed.value)
    assert "9000_broken.sql" in message and "nothing was applied" in message and "feedbot db restore" in message
    (backup,) = files.list_backups(tmp_path / "b")
    assert backup.label == "pre-migration-0014" and str(backup.path) in message
    monkeypatch.undo()
    db = config.database.open()
    await db.open(migrate=False)  # the old file, usable: 0014, 0015 (fine ones) were not applied either
    try:
        assert max(await db.applied_versions()) == 13
        assert (await db.fetchone("SELECT value FROM settings WHERE key = 'kept'"))[0] == "yes"
        tables = await db.fetchall("SELECT 1 FROM settings WHERE key = 'half_done'")  # any query works
        assert tables == []
    finally:
        await db.close()
    if database_url is None:
        assert _rows(tmp_path / "feedbot.db", "PRAGMA integrity_check") == [("ok",)]
        assert not _rows(tmp_path / "feedbot.db", "SELECT name FROM sqlite_master WHERE name = 'half_done'")
        assert files.verify_sqlite_sync(backup.path).manifest.schema_version == 13
    else:
        assert not await _pg_rows(database_url, "SELECT 1 FROM pg_tables WHERE tablename = 'half_done'")
        assert (await files.verify_pg(backup.path, database_url)).manifest.schema_version == 13


async def _pg_migrate_up_to(db, version: int) -> None:
    import storage.pg as pg

    real = pg.migration_files
    pg.migration_files = lambda: [m for m in real() if m[0] <= version]  # type: ignore[assignment]
    try:
        await db.migrate()
    finally:
        pg.migration_files = real  # type: ignore[assignment]


@pytest.mark.sqlite_only
async def test_no_backup_before_migrating_a_fresh_database(tmp_path, clock, backend):
    app = FeedbotApp(make_config(tmp_path, backup={"folder": str(tmp_path / "b")}), clock=clock)
    await app.start(scheduler=False)
    await app.stop()
    assert files.list_backups(tmp_path / "b") == []


def _settings(tmp_path: Path, **overrides) -> BackupSettings:
    config = make_config(tmp_path, backup={"folder": str(tmp_path / "b"), **overrides})
    return BackupSettings.from_config(config)


@pytest.mark.sqlite_only
async def test_the_scheduled_job_keeps_exactly_the_configured_number_of_copies(tmp_path, backend):
    await _make_db(tmp_path / "feedbot.db", 5)
    clock = FakeClock(datetime(2026, 9, 1, 1, 0, tzinfo=timezone.utc))
    backups = Backups(_settings(tmp_path, keep_daily=5, keep_weekly=3, retention_days=60), clock)
    for day in range(50):
        for hour in (0, 12):  # twice a day: only each day's newest counts
            clock.set(datetime(2026, 9, 1, 1, 0, tzinfo=timezone.utc) + timedelta(days=day, hours=hour))
            assert await backups.run()
    kept = files.list_backups(tmp_path / "b")
    assert len(kept) == 5 + 3
    local = [b.taken_at.astimezone(VN) for b in kept]
    assert len({t.date() for t in local}) == 8
    assert len({t.isocalendar()[:2] for t in local[:3]}) == 3  # the weekly ones: three different weeks
    assert [t.date() for t in local[3:]] == [(clock.now().astimezone(VN) - timedelta(days=d)).date() for d in (4, 3, 2, 1, 0)]
    status = json.loads((tmp_path / "b" / "last-backup.json").read_text())
    assert status["ok"] and backups.health()["status"] == "ok"


def test_the_keep_policy_never_keeps_past_the_maximum_age():
    now = datetime(2026, 12, 5, tzinfo=timezone.utc)
    taken = [now - timedelta(days=d) for d in range(100)]
    keep = to_keep(taken, now, daily=7, weekly=10, max_age=timedelta(days=30), tz=VN)
    assert max(now - t for t in keep) <= timedelta(days=30)
    assert len([t for t in keep if now - t < timedelta(days=7)]) == 7


async def test_the_scheduler_runs_the_backup_job_at_the_configured_interval(tmp_path, clock, backend, database_url):
    app = FeedbotApp(make_config(tmp_path, database_url=database_url, backup={"folder": str(tmp_path / "b"), "interval": "6h"}),
                     clock=clock)
    await app.start(scheduler=True)
    try:
        job = app.scheduler.get_job("backup")
        assert job.trigger.interval == timedelta(hours=6)
        assert job.next_run_time > datetime.now(timezone.utc)  # not in the middle of start-up
        assert app.liveness()["backup"] == {"status": "pending"}
        assert await app.backups.run()
        assert app.liveness()["backup"]["status"] == "ok"
    finally:
        await app.stop()


@pytest.mark.sqlite_only
async def test_post_command_runs_with_the_files_and_its_exit_status_counts(tmp_path, backend, capsys):
    await _make_db(tmp_path / "feedbot.db", 5)
    clock = FakeClock(NOW)
    told: list[tuple[str, str]] = []

    async def alert(error: str, last: str) -> None:
        told.append((error, last))

    copied = tmp_path / "offsite"
    ok_cmd = f'mkdir -p {copied} && cp "$FEEDBOT_BACKUP_FILE" "$FEEDBOT_BACKUP_MANIFEST" {copied}/'
    backups = Backups(_settings(tmp_path, post_command=ok_cmd), clock, alert=alert)
    assert await backups.run()
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        [files.list_backups(tmp_path / "b")[0].path.name, files.list_backups(tmp_path / "b")[0].manifest_path.name])

    failing = Backups(_settings(tmp_path, post_command="echo no route to host >&2; exit 3"), clock, alert=alert)
    for _ in range(3):  # one alert for the whole streak
        clock.advance(timedelta(hours=1))
        assert not await failing.run()
    assert len(told) == 1 and "status 3" in told[0][0] and "no route to host" in told[0][0]
    assert failing.health()["status"] == "failed"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n[backup]\nfolder = "{tmp_path / "b"}"\n')
    assert await asyncio.to_thread(feedbot_main, ["--config", str(config), "check-config"]) == 0
    assert "last backup: FAILED" in capsys.readouterr().out
    clock.advance(timedelta(hours=1))
    assert await backups.run()  # works again: the next failure is told again
    clock.advance(timedelta(hours=1))
    assert not await failing.run()
    assert len(told) == 2
    slow = Backups(_settings(tmp_path, post_command="sleep 30", post_command_timeout="1s"), clock, alert=alert)
    clock.advance(timedelta(hours=1))
    assert not await slow.run()
    assert "ran past" in slow.status()["error"]


async def test_a_failed_scheduled_backup_alerts_the_owner_chat_once(tmp_path, tg, clock, backend, database_url):
    owner = 777
    config = make_config(tmp_path, tg, database_url=database_url,
                         agents={"owner_chat_ids": [owner]},
                         backup={"folder": str(tmp_path / "b"), "post_command": "exit 1"})
    h = Harness(config, tg, clock)
    await h.start()
    try:
        assert not await h.app.backups.run()
        assert not await h.app.backups.run()
        messages = await tg.wait_for_messages(owner, 1)
        await asyncio.sleep(0.3)
        assert len(tg.sent_messages(owner)) == 1
        assert "sao lưu" in messages[0].text.lower()
    finally:
        await h.close()


@pytest.mark.sqlite_only
async def test_erasure_then_purge_removes_the_customer_from_backups_older_than_the_retention(tmp_path, tg, backend, capsys):
    real_now = datetime.now(timezone.utc)
    clock = FakeClock(real_now - timedelta(days=40))
    config = make_config(tmp_path, tg, backup={"folder": str(tmp_path / "b"), "retention_days": 35})
    h = Harness(config, tg, clock)
    await h.start()
    try:
        status, _ = await h.post_purchase("A-1", customer={"external_id": "C-9", "name": "Trần Văn Bình"},
                                          purchased_at=clock.now().isoformat())
        assert status in (201, 202)
        old = await h.app.backups.take()  # 40 days ago: holds the customer
    finally:
        await h.close()
    toml = tmp_path / "config.toml"
    toml.write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n[backup]\nfolder = "{tmp_path / "b"}"\n'
                    'retention_days = 35\n')
    assert await asyncio.to_thread(feedbot_main, ["--config", str(toml), "customer", "erase", "C-9", "--yes"]) == 0
    err = capsys.readouterr().err
    assert "backups taken before now" in err and "retention_days = 35" in err
    clock.set(real_now)
    new = await Backups(BackupSettings.from_config(config), clock).take()

    def holds_customer(path: Path) -> bool:
        verified = files.verify_sqlite_sync(path, tmp_path / "check", keep=True)
        try:
            return bool(_rows(verified.unpacked, "SELECT 1 FROM customers WHERE name = 'Trần Văn Bình'"))
        finally:
            verified.unpacked.unlink()

    assert holds_customer(old.path) and not holds_customer(new.path)
    assert await asyncio.to_thread(feedbot_main, ["--config", str(toml), "privacy", "purge"]) == 0
    assert "deleted: 1" in capsys.readouterr().out
    remaining = files.list_backups(tmp_path / "b")
    assert [b.path for b in remaining] == [new.path]
    assert not any(holds_customer(b.path) for b in remaining)


@pytest.mark.sqlite_only
def test_manifest_names_and_bad_input(tmp_path, backend):
    assert files.parse_name("feedbot-20261205T083000Z-pre-migration-0020.sqlite.gz")[1] == "pre-migration-0020"
    assert files.parse_name("notes.txt") is None
    with pytest.raises(BackupError, match="not a feedbot backup"):
        files.verify_sqlite_sync(_touch(tmp_path / "x.txt"))
    orphan = _touch(tmp_path / "feedbot-20261205T083000Z.sqlite.gz")
    with pytest.raises(BackupError, match="no manifest"):
        files.verify_sqlite_sync(orphan)
    (tmp_path / "feedbot-20261205T083000Z.manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="not a feedbot backup manifest"):
        files.verify_sqlite_sync(orphan)


def _touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path


async def _take(tmp_path: Path, database_url: str | None, folder: Path, now: datetime = NOW) -> files.BackupResult:
    if database_url:
        return await files.backup_pg(database_url, folder, now)
    db_path = tmp_path / "feedbot.db"
    if not db_path.exists():
        await _make_db(db_path)
    return await files.backup_sqlite(db_path, folder, now)


async def test_a_backup_that_fails_at_its_manifest_leaves_no_file_behind(tmp_path, backend, database_url, monkeypatch):
    """A full disk when the manifest is written: before, the renamed database file stayed with no
    manifest; list_backups ignores such a file, so no pruning ever removed it, and each failing
    run left another one on the full disk."""
    folder = tmp_path / "b"
    good = await _take(tmp_path, database_url, folder)

    def disk_full(self):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.Manifest, "to_json", disk_full)
    with pytest.raises(BackupError, match="No space left"):
        await _take(tmp_path, database_url, folder, NOW + timedelta(days=1))
    assert sorted(p.name for p in folder.iterdir()) == sorted([good.path.name, good.manifest_path.name])


async def test_backup_files_are_readable_by_their_owner_only(tmp_path, backend, database_url):
    """They hold customers' names, phones and messages: not for every user of the machine."""
    result = await _take(tmp_path, database_url, tmp_path / "b")
    for path in (result.path, result.manifest_path, tmp_path / "b"):
        assert path.stat().st_mode & 0o077 == 0, f"{path.name}: {oct(path.stat().st_mode)}"


@pytest.mark.sqlite_only
async def test_a_backup_into_a_folder_that_cannot_be_one_is_a_clear_error(tmp_path, backend, capsys):
    db_path = tmp_path / "feedbot.db"
    await _make_db(db_path)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db_path}"\n')
    not_a_folder = _touch(tmp_path / "notes.txt")
    code = await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "backup", "--output", str(not_a_folder)])
    assert code == 1
    err = capsys.readouterr().err
    assert "notes.txt" in err and "Traceback" not in err


@pytest.mark.postgresql_only
async def test_a_postgresql_backup_from_an_older_feedbot_restores_and_the_bot_migrates_it(tmp_path, backend, database_url):
    """pg_restore --clean drops only what the archive holds: a table a newer migration created
    stayed, with its rows, and the bot's next start failed re-creating it ("already exists")."""
    from storage.db import open_database
    from storage.backend import CREATE_SCHEMA_MIGRATIONS
    from storage.pg import migration_files as pg_files

    # The newest migration that creates a table (0062: spent_logins); the previous feedbot
    # stopped just before it.
    newest = max(f for f in pg_files() if "CREATE TABLE" in f[2])
    created = newest[2].split("CREATE TABLE", 1)[1].split("(", 1)[0].strip()
    known = max(pg_files())[0]
    conn = await asyncpg.connect(database_url)
    try:  # the database as the previous feedbot left it: its migrations only
        await conn.execute(files._DROP_ALL)
        await conn.execute(CREATE_SCHEMA_MIGRATIONS)
        for version, name, sql in pg_files():
            if version < newest[0]:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, 'x')",
                                   version, name)
        await conn.execute("INSERT INTO settings (key, value) VALUES ('before-upgrade', 'x')")
    finally:
        await conn.close()
    older = await files.backup_pg(database_url, tmp_path / "b", NOW)
    assert older.manifest.schema_version == newest[0] - 1
    db = open_database(tmp_path / "unused.db", database_url)
    await db.open()  # the upgrade: the newest migration applied, the table used
    await db.write_grouped(f"INSERT INTO {created} (key, expires_at) VALUES ('k', 'x')")
    await db.write_grouped("DELETE FROM settings WHERE key = 'before-upgrade'")
    await db.close()
    await files.restore_pg(older.path, database_url, known, NOW, tmp_path / "b")
    db = open_database(tmp_path / "unused.db", database_url)
    await db.open()  # the bot's next start applies the newer migration again
    try:
        assert await db.fetchone("SELECT value FROM settings WHERE key = 'before-upgrade'") is not None
        assert (await db.fetchone(f"SELECT count(*) FROM {created}"))[0] == 0
        assert (await db.fetchone("SELECT max(version) FROM schema_migrations"))[0] == known
    finally:
        await db.close()


@pytest.mark.postgresql_only
async def test_a_postgresql_restore_cut_short_changes_nothing(tmp_path, backend, database_url):
    result = await files.backup_pg(database_url, tmp_path / "b", NOW)
    data = result.path.read_bytes()
    cut = tmp_path / "cut.pgdump"
    cut.write_bytes(data[: len(data) * 3 // 4])  # pg_restore reads the start, then fails
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO settings (key, value) VALUES ('after-backup', 'x')")
        with pytest.raises(BackupError, match="pg_restore"):
            await asyncio.to_thread(files._restore_replacing, cut, database_url)
        assert await conn.fetchval("SELECT count(*) FROM settings WHERE key = 'after-backup'") == 1
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == result.manifest.schema_version
    finally:
        await conn.close()


def _crashed_copy(source: Path, target: Path) -> None:
    """target: the database as a bot killed mid-run leaves it, its last commit only in the -wal."""
    conn = sqlite3.connect(source, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("INSERT INTO settings (key, value) VALUES ('in-the-wal', 'x')")
        target.write_bytes(source.read_bytes())
        Path(f"{target}-wal").write_bytes(Path(f"{source}-wal").read_bytes())
    finally:
        conn.close()


@pytest.mark.sqlite_only
async def test_a_restore_cut_short_leaves_the_previous_database_in_place(tmp_path, backend, monkeypatch):
    """Before, the database (and its -wal) was renamed aside first and the backup renamed in
    after: killed in between, there was no database at database.path at all (the next bot
    would have started on a new empty one), and the -wal sat apart from its file."""
    source = tmp_path / "source.db"
    await _make_db(source)
    result = await files.backup_sqlite(source, tmp_path / "b", NOW)
    target = tmp_path / "feedbot.db"
    _crashed_copy(source, target)
    assert Path(f"{target}-wal").stat().st_size > 0
    real_replace = files.os.replace

    def killed_when_the_backup_goes_in(src, dst):
        if Path(src).name.startswith(".feedbot-restore-"):
            raise KeyboardInterrupt  # as a kill at that instant: nothing after it runs
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_when_the_backup_goes_in)
    with pytest.raises(KeyboardInterrupt):
        files.restore_sqlite_sync(result.path, target, KNOWN, NOW)
    monkeypatch.undo()
    assert _rows(target, "SELECT count(*) FROM settings WHERE key = 'in-the-wal'") == [(1,)]
    # and the restore, run again, goes through and keeps that database aside, whole
    _, aside = files.restore_sqlite_sync(result.path, target, KNOWN, NOW + timedelta(seconds=1))
    assert _rows(target, "SELECT count(*) FROM settings WHERE key = 'in-the-wal'") == [(0,)]
    assert _rows(aside, "SELECT count(*) FROM settings WHERE key = 'in-the-wal'") == [(1,)]
    assert not Path(f"{target}-wal").exists() or Path(f"{target}-wal").stat().st_size == 0


@pytest.mark.sqlite_only
async def test_verify_on_a_full_disk_or_with_a_foreign_manifest_is_a_clear_error(tmp_path, backend, monkeypatch, capsys):
    db_path = tmp_path / "feedbot.db"
    await _make_db(db_path)
    result = await files.backup_sqlite(db_path, tmp_path / "b", NOW)
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{db_path}"\n')
    unpack = tmp_path / "tmp"
    monkeypatch.setattr(files.tempfile, "tempdir", str(unpack))  # where verify decompresses

    real_fsync = files.os.fsync

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    code = await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "verify", str(result.path)])
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    err = capsys.readouterr().err
    assert code == 1 and "No space left" in err and "Traceback" not in err
    assert list(unpack.iterdir()) == []
    manifest = json.loads(result.manifest_path.read_text())
    for name in ("../feedbot.db", ""):  # a manifest not written by feedbot
        result.manifest_path.write_text(json.dumps({**manifest, "file": name}))
        code = await asyncio.to_thread(feedbot_main, ["--config", str(config), "db", "verify", str(result.path)])
        err = capsys.readouterr().err
        assert code == 1 and "not a feedbot backup manifest" in err, err


async def test_a_restore_names_the_customers_erased_since_the_backup(tmp_path, tg, clock, backend, database_url, capsys):
    """The README: "a restore brings erased customers back: erase them again". Only the
    database being replaced knows who was erased since the backup: the restore must say."""
    config = make_config(tmp_path, tg, database_url=database_url, backup={"folder": str(tmp_path / "b")})
    h = Harness(config, tg, clock)
    await h.start()
    try:
        for customer in ("C-9", "C-10"):
            status, _ = await h.post_purchase(f"A-{customer}", customer={"external_id": customer, "name": "Trần Văn Bình"},
                                              purchased_at=clock.now().isoformat())
            assert status in (201, 202)
        backup = await h.app.backups.take()
    finally:
        await h.close()
    toml = tmp_path / "config.toml"
    toml.write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n'
                    + (f'url = "{database_url}"\n' if database_url else "")
                    + f'[backup]\nfolder = "{tmp_path / "b"}"\n')
    assert await asyncio.to_thread(feedbot_main, ["--config", str(toml), "customer", "erase", "C-9", "--yes"]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(feedbot_main, ["--config", str(toml), "db", "restore", str(backup.path)]) == 0
    out = capsys.readouterr().out
    assert "erased since" in out and "feedbot customer erase --yes C-9" in out and "C-10" not in out
    # the command it names does it
    assert await asyncio.to_thread(feedbot_main, ["--config", str(toml), "customer", "erase", "C-9", "--yes"]) == 0


@pytest.mark.sqlite_only  # no server: PostgreSQL down
@pytest.mark.parametrize("command", ["verify", "restore"])
async def test_verify_and_restore_with_postgresql_down_are_a_clear_error(tmp_path, backend, command, capsys, monkeypatch):
    import hashlib

    data = tmp_path / "feedbot-20261205T030000Z.pgdump"
    data.write_bytes(b"PGDMP")
    manifest = files.Manifest(kind="postgresql", created_at=NOW.isoformat(), schema_version=1, tables={},
                              file=data.name, sha256=hashlib.sha256(b"PGDMP").hexdigest(), size=5, database_bytes=5)
    data.with_name("feedbot-20261205T030000Z.manifest.json").write_text(manifest.to_json())
    toml = tmp_path / "config.toml"
    toml.write_text('[database]\nurl = "postgresql://feedbot:s3cret-pw@127.0.0.1:1/feedbot"\n'
                    f'[backup]\nfolder = "{tmp_path / "b"}"\n')
    if command == "verify":  # past pg_restore --list (as if the archive read well), to the server
        monkeypatch.setattr(files, "_run_tool", lambda *args: None)
    code = await asyncio.to_thread(feedbot_main, ["--config", str(toml), "db", command, str(data)])
    err = capsys.readouterr().err
    assert code == 1 and "cannot connect to PostgreSQL" in err and "Traceback" not in err and "s3cret" not in err


async def test_the_partial_files_of_a_backup_killed_midway_are_removed_by_the_next_one(tmp_path, backend, database_url):
    """A kill (a power cut, the OOM killer) during a backup leaves its .partial files, each the
    size of the database; nothing removed them, and every such crash kept one more."""
    import fcntl

    folder = tmp_path / "b"
    folder.mkdir()
    stale = [folder / "feedbot-20261201T000000Z.sqlite.partial", folder / "feedbot-20261201T000000Z.sqlite.partial-journal",
             folder / "feedbot-20261201T000000Z.sqlite.gz.partial", folder / "feedbot-20261201T000000Z.pgdump.partial"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    busy = folder / "feedbot-20261202T000000Z.sqlite.gz.partial"  # another backup still writing it
    with busy.open("wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = await _take(tmp_path, database_url, folder)
        assert busy.exists()
    assert not any(path.exists() for path in stale)
    assert {p.name for p in folder.iterdir()} == {result.path.name, result.manifest_path.name, busy.name}


@pytest.mark.sqlite_only
async def test_db_copy_is_refused_while_a_bot_runs_on_the_file(tmp_path, backend, capsys):
    """The README: stop the bot first, "the copy must see the last writes". Before, the copy
    went on (and first migrated the file under the running bot); what the bot wrote after the
    copy read a table stayed behind in SQLite."""
    db_path = tmp_path / "feedbot.db"
    await _make_db(db_path)
    bot = files.RunLock(db_path)
    assert bot.acquire(exclusive=False)  # as `feedbot run` holds it
    try:
        code = await asyncio.to_thread(feedbot_main, ["db", "copy", "--from", str(db_path),
                                                      "--to", "postgresql://feedbot@127.0.0.1:1/feedbot"])
    finally:
        bot.release()
    assert code == 2
    assert "stop the bot" in capsys.readouterr().err


@pytest.mark.sqlite_only
async def test_a_restored_file_keeps_the_replaced_files_owner_and_mode(tmp_path, backend):
    """Restored as root (`sudo feedbot db restore`), the file came out root's, mode 0600 (a
    temporary file's): the bot, running as its own user, could not open its database."""
    import os

    source = tmp_path / "source.db"
    await _make_db(source)
    result = await files.backup_sqlite(source, tmp_path / "b", NOW)
    target = tmp_path / "feedbot.db"
    await _make_db(target)
    target.chmod(0o640)
    as_root = os.geteuid() == 0
    if as_root:  # the bot's user, say
        os.chown(target, 4321, 4322)
    files.restore_sqlite_sync(result.path, target, KNOWN, NOW)
    st = target.stat()
    assert st.st_mode & 0o777 == 0o640
    if as_root:
        assert (st.st_uid, st.st_gid) == (4321, 4322)


async def test_two_backups_in_the_same_second_do_not_write_into_each_others_files(tmp_path, backend, database_url):
    """The scheduled one and a `feedbot db backup` started in the same second took the same
    name, and so the same .partial files: one truncated the other's half-written file."""
    import fcntl

    folder = tmp_path / "b"
    folder.mkdir()
    busy = folder / (files.stem(NOW) + (files.PG_SUFFIX if database_url else files.SQLITE_SUFFIX) + files.PARTIAL)
    with busy.open("wb") as held:  # the other backup, half-way through
        held.write(b"half a backup")
        held.flush()
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = await _take(tmp_path, database_url, folder)
        assert busy.read_bytes() == b"half a backup"
    assert result.path.name.startswith(files.stem(NOW) + "-2")
