"""SQLite through aiosqlite: WAL, busy_timeout, BEGIN IMMEDIATE writes, ordered migrations.

One writer connection serialised by an asyncio lock (SQLite has one writer anyway; the
lock keeps two coroutines from interleaving statements inside one transaction), and
one reader connection that WAL lets run beside it.
"""
from __future__ import annotations

import asyncio
import json
import re
import logging
import sqlite3
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import aiosqlite

from storage.backend import CREATE_SCHEMA_MIGRATIONS, Backend, MigrationError, check_not_newer, dialect, load_migrations
from storage.backend import settled as _settled
from storage.rollup_lock import Pending
from storage.timefmt import to_db

__all__ = ["MigrationError", "check_not_newer", "dialect"]  # shared with storage/pg.py, imported from here too

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# Checkpoints (copying the WAL into the database file, with its fsyncs) run on a connection
# of their own, off the event loop: at most this often while writes go on...
CHECKPOINT_SPACING_S = 0.25
# ... and holding off writers only when the WAL has grown past this many pages (PAGE_SIZE
# each in new files) without one completing: under steady writes it could otherwise grow
# without end.
WAL_LIMIT_PAGES = 4000
# Pages of a new database file. Smaller than SQLite's 4096: each update dirties a few pages
# at random places (a contact's row, its entries in several indexes), and every dirty page is
# written whole to the WAL at COMMIT and copied again at the checkpoint; at 1 KiB that traffic
# halves (bench/inbound_vs_ptb.py: ~32 -> ~15 KB per update). An existing file keeps its size.
PAGE_SIZE = 1024
# checkpoint() (after an erasure): each TRUNCATE try waits this long at most for readers of
# older WAL frames while it holds the write lock, then writers go on for SCRUB_RETRY_S and it
# tries again, for SCRUB_TIMEOUT_S in all.
SCRUB_WAIT_MS = 200
SCRUB_RETRY_S = 0.05
SCRUB_TIMEOUT_S = 30.0
# The WAL file is cut back to this many bytes when it starts over after a checkpoint: without
# it, a burst of writes leaves a WAL file as large as the burst on disk for good.
JOURNAL_SIZE_LIMIT = 4 * 1024 * 1024

Connection = aiosqlite.Connection
Row = aiosqlite.Row

# None and bool parameters bind as they always do (NULL; 0 or 1), by a registered adapter
# instead of sqlite3's fallback: for any type other than exact int, float and str, that
# fallback looks up an adapter protocol that does not exist, an AttributeError made and
# dropped inside sqlite3 each time (~6 per inbound update, ~1% of its CPU: the outbox row's
# empty survey, ticket and coalesce columns). Process-wide, and the binding is the same.
sqlite3.register_adapter(type(None), lambda _: None)
sqlite3.register_adapter(bool, int)

# The JSON text columns (payloads, conversation state), Unicode kept as is, the same text as
# json.dumps(value, ensure_ascii=False). This runs ~3 times per inbound update: the C encoder
# is built once here, where JSONEncoder.encode builds one per call (~1.2 instead of ~2.3 us).
# Our values are trees we build, so no check for cycles.
_json_encoder = json.JSONEncoder(ensure_ascii=False, check_circular=False)
if json.encoder.c_make_encoder is not None:
    _c_encode_json = json.encoder.c_make_encoder(
        None, _json_encoder.default, json.encoder.encode_basestring, None, ": ", ", ", False, False, True,
    )

    def to_json(value: Any) -> str:
        return "".join(_c_encode_json(value, 0))
else:  # pragma: no cover - a Python built without the _json accelerator
    to_json = _json_encoder.encode


# U+0000 as to_json writes it: "\u0000" after an even number of backslashes (an odd one
# would make it the text "\u0000", a backslash escaped and five characters).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encodable(value: Any) -> bool:
    """False when a parsed JSON value holds a string with a lone surrogate ("\\ud800" is valid
    JSON, but no text: the database, the platforms and the log cannot encode it) or a NUL
    character ("\\u0000": PostgreSQL's text cannot hold one; refused on SQLite too, alike)."""
    text = to_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\\u0000" not in text or not _NUL_ESCAPE.search(text)


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
    """One row, in one round trip to the database thread (a cursor costs three)."""
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


def _run_in_transaction(raw: sqlite3.Connection, statements: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[int | None, int]]:
    """On the database thread: BEGIN IMMEDIATE, every statement, COMMIT (ROLLBACK on error)."""
    _begin_waiting(raw)
    try:
        results = []
        for sql, params in statements:
            cur = raw.execute(sql, params)
            results.append((cur.lastrowid, cur.rowcount))
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return results


def _truncate_wal(raw: sqlite3.Connection) -> bool:
    """On the database thread: PRAGMA wal_checkpoint(TRUNCATE), waiting at most SCRUB_WAIT_MS
    for readers of older frames (not the connection's full busy timeout: the caller holds the
    write lock meanwhile). True when SQLite reports it busy (not done)."""
    raw.execute(f"PRAGMA busy_timeout={SCRUB_WAIT_MS}").fetchall()
    try:
        busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        raw.execute("PRAGMA busy_timeout=0").fetchall()  # the writer's (Database._open)
    return bool(busy)


def _begin_if_free(raw: sqlite3.Connection) -> bool:
    """BEGIN IMMEDIATE right here if SQLite's write lock is free now; False, without
    waiting, if another process holds it (waiting here would stall the event loop). The
    writer's busy timeout is 0 (Database._open), so SQLite answers at once."""
    try:
        raw.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as exc:
        if raw.in_transaction or "locked" not in str(exc):
            raise
        return False


def _begin_waiting(raw: sqlite3.Connection) -> None:
    """On the database thread: BEGIN IMMEDIATE, waiting up to BUSY_TIMEOUT_MS for another
    process's write lock. The writer's busy timeout is 0 (set once, in Database._open, so an
    inline BEGIN costs no PRAGMA): the wait is turned on only when the lock is taken."""
    if _begin_if_free(raw):
        return
    raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}").fetchall()
    try:
        raw.execute("BEGIN IMMEDIATE")
    finally:
        raw.execute("PRAGMA busy_timeout=0").fetchall()


def _commit(raw: sqlite3.Connection) -> None:
    try:
        raw.execute("COMMIT")
    except Exception:
        if raw.in_transaction:  # a COMMIT that failed may leave the transaction open
            raw.execute("ROLLBACK")
        raise


@asynccontextmanager
async def savepoint(tx: aiosqlite.Connection, name: str = "step") -> AsyncIterator[None]:
    """Inside a transaction: an error in the block undoes the block's writes only, then
    propagates; the transaction goes on. Rollup deltas the transaction gathers for its COMMIT
    (storage/rollup_lock.py) are undone with them: the block gathers its own, which join the
    transaction's only if it succeeds (on both backends: storage/pg.py uses this one too)."""
    outer: Pending | None = getattr(tx, "rollups", None)
    if outer is not None:
        tx.rollups = Pending()  # type: ignore[attr-defined]
    try:
        await tx.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await tx.execute(f"ROLLBACK TO {name}")
            await tx.execute(f"RELEASE {name}")
            raise
        await tx.execute(f"RELEASE {name}")
        if outer is not None:
            outer.merge(tx.rollups)  # type: ignore[attr-defined]
    finally:
        if outer is not None:
            tx.rollups = outer  # type: ignore[attr-defined]


class _Inline:
    """The writer connection inside transaction(inline=True): execute / execute_fetchall /
    executemany run on the calling (event loop) thread, on the sqlite3 connection under the
    aiosqlite one, and answer as aiosqlite's would: `await tx.execute(...)` gives a cursor
    (lastrowid, rowcount, awaitable fetch*), `async with tx.execute(...) as cur` works too;
    execute_fetchall gives a list of rows. Anything else goes to the aiosqlite connection."""

    # A unit's rollup deltas, gathered for the shared COMMIT (storage/rollup_lock.py); None:
    # written at once.
    rollups: Pending | None = None

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._async = conn
        self._raw: sqlite3.Connection = conn._conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> "_InlineResult":
        return _InlineResult(_InlineCursor(self._raw.execute(sql, parameters)))

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._raw.execute(sql, parameters).fetchall()

    def executemany(self, sql: str, parameters: Any) -> "_InlineResult":
        return _InlineResult(_InlineCursor(self._raw.executemany(sql, parameters)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._async, name)


class _InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.lastrowid = cursor.lastrowid
        self.rowcount = cursor.rowcount
        self.description = cursor.description

    async def fetchone(self) -> sqlite3.Row | None:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[sqlite3.Row]:
        return self._cursor.fetchmany(size) if size is not None else self._cursor.fetchmany()

    async def fetchall(self) -> list[sqlite3.Row]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _InlineResult:
    """What execute() returns: awaitable (the cursor) and an async context manager (closes it)."""

    def __init__(self, cursor: _InlineCursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Any:
        if False:  # pragma: no cover - makes this a generator: nothing to wait for
            yield
        return self._cursor

    async def __aenter__(self) -> _InlineCursor:
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


def open_database(path: str | Path, url: str | None = None) -> Any:
    """The configured backend: PostgreSQL when a database URL is given, else the SQLite file."""
    if url:
        from storage.pg import PgDatabase  # asyncpg is loaded only by those who use it

        return PgDatabase(url)
    return Database(path)


async def schema_versions(db: Any) -> tuple[int, int]:
    """(applied, known): the newest migration applied to the database, the newest this code has."""
    return await db.schema_versions()


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every packaged migration, in order."""
    return load_migrations("migrations")


class Database(Backend):
    migration_files = staticmethod(migration_files)

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._grouped: list[tuple[str, tuple[Any, ...], asyncio.Future[tuple[int | None, int]]]] = []
        self._group_tasks: set[asyncio.Task[None]] = set()
        # While units (unit()) share an open transaction: one future per unit that has run,
        # each told of the shared COMMIT.
        self._unit_waiters: list[asyncio.Future[None]] | None = None
        # The rollup deltas of the units' transaction so far, written at its COMMIT
        # (storage/rollup_lock.py).
        self._unit_rollups = Pending()
        self._checkpointer: aiosqlite.Connection | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._wrote = asyncio.Event()
        # Called (no arguments, must not block) after every write transaction of this process
        # ended: SQLite has one process, so this is how a reader learns of new rows at once
        # (the agents' page push, bot/http/agent_feed.py). PostgreSQL uses NOTIFY instead.
        self.write_listeners: list[Callable[[], None]] = []
        self._checkpoint_lock = asyncio.Lock()  # one at a time: a second would find SQLite busy
        self._scrub_pending = False  # a TRUNCATE checkpoint (checkpoint()) has not completed yet

    async def open(self, migrate: bool = True) -> None:
        """Connect, switch to WAL, migrate. On any failure the connections made so far are
        closed again (their threads would otherwise keep the process alive: a bot that
        cannot start must exit, so that its supervisor sees it)."""
        try:
            await self._open(migrate)
        except BaseException:
            await self.close()
            raise

    async def _open(self, migrate: bool) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        if self.path != ":memory:":  # takes effect on a new file only (see PAGE_SIZE)
            await self.writer.execute_fetchall(f"PRAGMA page_size={PAGE_SIZE}")
        mode = await self._enable_wal()
        if self.path != ":memory:" and mode != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        if migrate:
            await self.migrate()
        else:
            await self._check_version()
        self._reader = await self._connect()
        # Once migrated, the writer never waits inside SQLite: every transaction begins by
        # _begin_if_free (inline, on the loop) or _begin_waiting (on its thread, where it turns
        # the busy timeout on for that one BEGIN when another process holds the write lock);
        # past BEGIN IMMEDIATE, WAL has nothing left to wait for.
        await self.writer.execute_fetchall("PRAGMA busy_timeout=0")
        if self.path != ":memory:":
            # Our commits never checkpoint (that would stall the event loop, inline commits
            # run on it): _checkpoints does it on its own connection and thread.
            await self.writer.execute_fetchall("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = await self._connect()
            self._checkpoint_task = asyncio.create_task(self._checkpoints(), name="sqlite-checkpoints")

    async def _enable_wal(self) -> str:
        """Switching a fresh file to WAL needs an exclusive lock, and SQLite answers "database
        is locked" at once (busy_timeout does not apply: the pragma already holds a read lock)
        while another process is opening the same file: retry within the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                return list(await self.writer.execute_fetchall("PRAGMA journal_mode=WAL"))[0][0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        # check_same_thread=False: transaction(inline=True) runs statements on the event loop
        # thread while the write lock keeps every other user off this connection.
        pending = aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn = await pending
        except BaseException:
            # aiosqlite stops its thread when the connect fails: let it finish while the loop
            # runs (else it reports to a closed loop, with a traceback, at exit).
            await asyncio.to_thread(pending._thread.join, 1.0)
            raise
        conn.row_factory = aiosqlite.Row
        try:
            # execute_fetchall, not execute: a PRAGMA that returns a row keeps its statement
            # (and a read lock) open until the row is fetched, which blocks the other connection.
            await conn.execute_fetchall(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await conn.execute_fetchall("PRAGMA foreign_keys=ON")
            await conn.execute_fetchall("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no commit's integrity
            # Deleted and overwritten content is zeroed on disk, not left in free space: erased
            # personal data is really gone (storage/privacy.py).
            await conn.execute_fetchall("PRAGMA secure_delete=ON")
            await conn.execute_fetchall(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        except BaseException:  # e.g. "file is not a database": the connection's thread ends too
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
            self._checkpoint_task = None
        if self._writer is not None:
            async with self._locked():  # commits units still waiting for their group's commit
                pass
        for conn in (self._checkpointer, self._reader, self._writer):
            if conn is not None:
                await conn.close()  # the last one checkpoints the WAL into the file
        self._checkpointer = self._reader = self._writer = None

    async def _checkpoints(self) -> None:
        """After writes, copy the WAL into the database file (PASSIVE: never waits for or
        blocks a writer or reader). Should steady writes keep it from ever completing, the
        WAL's pages are not reused and it grows: past WAL_LIMIT_PAGES, one checkpoint is
        made holding the write lock, so it completes and the next write starts the WAL over."""
        assert self._checkpointer is not None
        conn = self._checkpointer
        while True:
            await self._wrote.wait()
            self._wrote.clear()
            try:
                async with self._checkpoint_lock:
                    if self._scrub_pending:  # an erasure's checkpoint() gave up: again until one completes
                        async with self._locked():  # (which also wakes this loop again)
                            await self._truncate(self.writer)
                    else:
                        _, wal_pages, copied = (await conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)"))[0]
                        if wal_pages > WAL_LIMIT_PAGES and copied < wal_pages:
                            async with self._locked():
                                await conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # e.g. a disk error: the next write tries again
                log.warning("WAL checkpoint failed: %s", exc)
            await asyncio.sleep(CHECKPOINT_SPACING_S)

    @asynccontextmanager
    async def transaction(self, *, inline: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock up front, so a
        transaction never fails half-way with SQLITE_BUSY on upgrade.

        inline=True: BEGIN, the statements inside and COMMIT run right on the event loop
        thread instead of one round trip each to the database thread (BEGIN waits there, off
        the loop, when another process holds SQLite's write lock). For short transactions of
        small indexed statements only, like one inbound update's (bot/engine.py): tens of
        microseconds each, where a round trip costs hundreds under load. Never for bulk work:
        it would stall the loop. (No COMMIT checkpoints the WAL: _checkpoints does, off the
        loop.)"""
        async with self._locked():
            conn = self.writer
            await self._begin(conn, inline)
            try:
                yield _Inline(conn) if inline else conn  # type: ignore[misc]
            except BaseException:
                await _settled(conn.execute("ROLLBACK"))
                raise
            else:
                if inline:
                    _commit(conn._conn)
                else:
                    try:
                        await _settled(conn.execute("COMMIT"))
                    except Exception:
                        if conn._conn.in_transaction:  # a COMMIT that failed may leave it open
                            await _settled(conn.execute("ROLLBACK"))
                        raise

    async def _begin(self, conn: aiosqlite.Connection, inline: bool) -> None:
        if inline and _begin_if_free(conn._conn):
            return
        try:
            await _settled(conn._execute(_begin_waiting, conn._conn))
        except asyncio.CancelledError:
            if conn._conn.in_transaction:  # it ran on the database thread all the same
                await _settled(conn.execute("ROLLBACK"))
            raise

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The write lock, with no units' transaction left open: every writer but unit() starts
        from a connection outside any transaction."""
        async with self._write_lock:
            self._commit_units()
            try:
                yield
            finally:
                self._wrote.set()
                for listener in self.write_listeners:
                    listener()

    def unit(self, *, fresh: bool = False) -> "_Unit":
        """A small unit of writes, committed before this returns, sharing its transaction with
        the units that run right after it: group commit for inline transactions.

        Like transaction(inline=True) (statements on the loop thread, the same rules), but the
        unit runs in a savepoint of a transaction that stays open after it: the units that
        were already waiting for the write lock (typically requests that arrived together)
        join it, and one COMMIT ends them all, made by a task queued behind them on the lock
        (or by any other writer, which commits it first). One unit failing rolls back only
        its own writes. The block returns once the shared COMMIT is done; if that COMMIT
        fails, every unit in it raises. fresh=True: the unit begins a transaction of its own
        (as on PostgreSQL, where a retry after a deadlock needs one)."""
        return _Unit(self, fresh)

    async def _commit_units_later(self) -> None:
        """Queued on the write lock behind the units waiting when the transaction began."""
        async with self._locked():
            pass

    def _commit_units(self) -> None:
        """COMMIT the units' open transaction, if any (under the write lock)."""
        waiters, self._unit_waiters = self._unit_waiters, None
        if waiters is None:
            return
        raw = self.writer._conn
        try:
            for upsert, rows in self._unit_rollups.drain():
                raw.executemany(upsert, rows)
            _commit(raw)
        except Exception as exc:  # rolled back: the units hear of it, the writer asking goes on
            self._unit_rollups = Pending()
            if raw.in_transaction:  # the rollup writes failed: nothing of the units is kept
                raw.execute("ROLLBACK")
            log.error("a shared transaction of units: COMMIT failed, rolled back: %s", exc)
            for waiter in waiters:
                if not waiter.done():  # else its unit was cancelled meanwhile
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def write_grouped(self, sql: str, params: Sequence[Any] = ()) -> tuple[int | None, int]:
        """One write statement, committed before this returns: (lastrowid, rowcount).

        Group commit: statements that arrive while another write holds the lock wait
        together, then run in ONE transaction and one trip to the database thread (BEGIN
        IMMEDIATE, each statement, COMMIT), so many concurrent writers cost one round trip
        instead of three each. If that transaction fails, each statement is retried in a
        transaction of its own: one bad statement fails only its caller. The group is written
        by a task of its own: a caller that is cancelled does not take the others down."""
        future: asyncio.Future[tuple[int | None, int]] = asyncio.get_running_loop().create_future()
        self._grouped.append((sql, tuple(params), future))
        if len(self._grouped) == 1:  # the first of a new group: start its writer
            task = asyncio.create_task(self._write_group())
            self._group_tasks.add(task)
            task.add_done_callback(self._group_tasks.discard)
        return await future

    async def _write_group(self) -> None:
        async with self._locked():
            batch, self._grouped = self._grouped, []  # everyone who joined while we waited
            await self._write_batch(batch)

    async def _write_batch(self, batch: list[tuple[str, tuple[Any, ...], asyncio.Future[tuple[int | None, int]]]]) -> None:
        conn = self.writer
        try:
            try:
                results = await conn._execute(_run_in_transaction, conn._conn, [(sql, p) for sql, p, _ in batch])
            except Exception:
                if len(batch) == 1:
                    raise
                for item in batch:  # find the bad one: each on its own
                    await self._write_batch([item])
                return
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("write interrupted"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)

    async def checkpoint(self, timeout: float = SCRUB_TIMEOUT_S) -> bool:
        """Copy the WAL into the database file and truncate it to nothing, so no file of the
        database keeps an older image of a page: after an erasure, the erased text is gone
        from the WAL too (secure_delete already zeroes it in the main file). True when done.

        TRUNCATE has to wait until no reader still reads older frames of the WAL (its
        snapshot): each try waits for them briefly holding the write lock, then lets writers
        go on and tries again, until `timeout`. If it never completes, the background
        checkpointer keeps trying TRUNCATE instead of PASSIVE until one does."""
        if self.path == ":memory:":
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._scrub_pending = True
        while True:
            async with self._checkpoint_lock, self._locked():
                if await self._truncate(self.writer):
                    return True
            if loop.time() > deadline:
                log.error("WAL checkpoint (TRUNCATE) after an erasure did not complete within %.0fs (a reader "
                          "holds an old snapshot); the background checkpointer keeps trying", timeout)
                return False
            await asyncio.sleep(SCRUB_RETRY_S)

    async def _truncate(self, conn: aiosqlite.Connection) -> bool:
        """One TRUNCATE checkpoint (waiting SCRUB_WAIT_MS at most for readers); True if the WAL
        is now empty. Under the checkpoint lock and the write lock."""
        try:
            busy = await conn._execute(_truncate_wal, conn._conn)
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint (TRUNCATE) failed: %s", exc)
            return False
        if busy:
            return False
        self._scrub_pending = False
        return True

    # --- migrations -----------------------------------------------------------

    async def applied_versions(self) -> list[int]:
        conn = self.writer
        await conn.execute(CREATE_SCHEMA_MIGRATIONS)
        return [row[0] for row in await conn.execute_fetchall("SELECT version FROM schema_migrations ORDER BY version")]

    async def migrate(self, up_to: int | None = None) -> list[str]:
        """Apply every migration not applied yet (up to version up_to, if given), all in ONE
        transaction: if one fails, none is applied and the file is as it was (SQLite's DDL is
        transactional)."""
        applied = set(await self.applied_versions())
        files = migration_files()
        check_not_newer(applied, files, self.path)
        pending = [(version, name, sql) for version, name, sql in files
                   if version not in applied and (up_to is None or version <= up_to)]
        if not pending:
            return []
        async with self._locked():
            conn = self.writer
            now = to_db(datetime.now(timezone.utc))
            try:
                await conn._execute(_run_migrations, conn._conn, pending, now)
            except _MigrationFailed as failed:
                exc = failed.__cause__
                now_applied = set(await self.applied_versions())
                if all(v in now_applied for v, _, _ in pending):
                    return []  # another process applied them first (it held the write lock)
                raise MigrationError(f"migration {failed.name} failed: {exc}; nothing was applied, the "
                                     "database is as it was before") from exc
        for _, name, _ in pending:
            log.info("applied migration %s", name)
        return [name for _, name, _ in pending]


class _MigrationFailed(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _statements(script: str) -> list[str]:
    """A SQL script cut into its statements (a trigger's body stays whole: sqlite3 says when a
    statement is complete)."""
    statements, start = [], 0
    for end, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start:end + 1]):
            statements.append(script[start:end + 1])
            start = end + 1
    if script[start:].strip():
        statements.append(script[start:])
    return statements


def _run_migrations(raw: sqlite3.Connection, pending: list[tuple[int, str, str]], now: str) -> None:
    """On the database thread: BEGIN IMMEDIATE, each migration's version row then its SQL, COMMIT;
    ROLLBACK of all on any error. The version row goes in first: a second process racing to
    the same migration waits for our write lock, then fails on the primary key before any DDL."""
    _begin_waiting(raw)
    try:
        for version, name, sql in pending:
            try:
                raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                            (version, name, now))
                for statement in _statements(sql):
                    raw.execute(statement)
            except sqlite3.Error as exc:
                raise _MigrationFailed(name) from exc
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise


class _Unit:
    """Database.unit(): a class, not a generator context manager around savepoint() (which it
    does the work of, with the same rollback rule), as it runs once per inbound update: about
    4 us less per unit, ~1% of an update's CPU (40 units at a time, measured 2026-11-30)."""

    __slots__ = ("_db", "_raw", "_waiters", "_first", "_fresh", "_tx")

    def __init__(self, db: Database, fresh: bool = False) -> None:
        self._db = db
        self._fresh = fresh

    async def __aenter__(self) -> aiosqlite.Connection:
        db = self._db
        await db._write_lock.acquire()
        try:
            if self._fresh:
                db._commit_units()
            conn = db.writer
            self._raw = conn._conn
            # The first unit of a transaction needs no savepoint: should it fail, nothing else
            # is in the transaction yet (the write lock is held), so all of it is rolled back.
            self._first = db._unit_waiters is None
            if self._first:
                await db._begin(conn, inline=True)
                db._unit_rollups = Pending()
                db._unit_waiters = []
                task = asyncio.create_task(db._commit_units_later())
                db._group_tasks.add(task)
                task.add_done_callback(db._group_tasks.discard)
            else:
                self._raw.execute("SAVEPOINT unit")
            self._waiters = db._unit_waiters
        except BaseException:
            db._write_lock.release()
            raise
        self._tx = _Inline(conn)
        self._tx.rollups = Pending()  # this unit's; they join the transaction's if it succeeds
        return self._tx  # type: ignore[return-value]

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        mine, self._tx.rollups = self._tx.rollups, None  # the block's connection writes at once from here
        try:
            if exc_type is None and mine:
                self._db._unit_rollups.merge(mine)
            if self._first:
                if exc_type is not None:  # the transaction held this unit's writes only
                    self._db._unit_waiters = None  # its COMMIT task finds nothing to commit
                    if self._raw.in_transaction:
                        self._raw.execute("ROLLBACK")
            else:
                if exc_type is not None:  # this unit's writes only; the shared transaction goes on
                    self._raw.execute("ROLLBACK TO unit")
                self._raw.execute("RELEASE unit")
        finally:
            self._db._write_lock.release()
        if exc_type is None:
            # A future of its own: a unit cancelled while it waits cancels only its wait.
            committed = asyncio.get_running_loop().create_future()
            self._waiters.append(committed)
            await committed
