"""PostgreSQL through asyncpg, behind the surface storage/db.py's Database gives the repositories.

The repositories keep their SQL (SQLite's `?` placeholders, `cur.lastrowid`, `cur.rowcount`):
each SQL text is translated once (cached) to PostgreSQL's `$n`, and an INSERT into a table
with an `id` column gets `RETURNING id` for its lastrowid. SQLite functions the queries use
(julianday, instr, printf, json_extract) exist in the PostgreSQL schema as small SQL
functions (storage/migrations/postgresql/0001_initial.sql), so report SQL is the same text.

Each process keeps SQLite's concurrency model: one writer connection, serialised by a lock
(every transaction() / unit() / write_grouped() of this process goes through it), and a small
pool of reader connections. Several processes share one database (bot/cluster.py): each has
its own writer, outbox claims skip rows another process is claiming (FOR UPDATE SKIP LOCKED,
storage/outbox.py) and carry a lease (storage/leases.py), and processes tell each other
about new work through LISTEN/NOTIFY (listen(), notify() below).
"""
from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from storage.backend import CREATE_SCHEMA_MIGRATIONS, Backend, MigrationError, check_not_newer, conflicted, load_migrations
from storage.backend import settled as _settled
from storage.rollup_lock import Pending
from storage.timefmt import to_db

log = logging.getLogger(__name__)

DIALECT = "postgresql"
READER_POOL = 4
VACUUM_WAIT_SECONDS = 10.0  # after an erasure: how long VACUUM FULL waits for older snapshots to end
# pg_advisory_lock key held while migrating: instances starting at once migrate one by one.
MIGRATION_LOCK = 0x6665_6462_6F74  # "fedbot"
# A string literal or quoted name (left alone), `?NNN`, `?`, `:name` (not `::type`), or SQLite's
# NULL-safe `IS [NOT] <value>` (PostgreSQL: IS [NOT] DISTINCT FROM).
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"[^\"]*\"|\?(\d+)|\?|(?<![:\w]):([A-Za-z_]\w*)"
    r"|\b(IS\s+NOT)\s+(?!NULL\b|DISTINCT\b|TRUE\b|FALSE\b)|\b(IS)\s+(?!NOT\b|NULL\b|DISTINCT\b|TRUE\b|FALSE\b)",
    re.IGNORECASE)
# SQLite's planner hint "+column" (not by this column's index): unary plus on text in PostgreSQL.
_NO_INDEX_HINT = re.compile(r"\b(AND|OR|WHERE|ON|BY)\s+\+(?=[A-Za-z_])", re.IGNORECASE)
_INSERT_OR_IGNORE = re.compile(r"^(\s*)INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_RETURNS_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW|TABLE)\b|\bRETURNING\b", re.IGNORECASE)


class Unavailable(OSError):
    """The server cannot be reached or refuses us (start-up reports it like an unusable file)."""


def without_password(url: str) -> str:
    """The URL as messages may show it: the password, if any, left out."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def is_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(("postgresql://", "postgres://"))


class _Sql:
    """One repository SQL text, translated: the PostgreSQL text and how to bind its parameters."""

    __slots__ = ("text", "names", "rows", "insert")

    def __init__(self, text: str, names: tuple[str, ...] | None, rows: bool, insert: bool) -> None:
        self.text = text
        self.names = names  # named parameters (:name) in $n order, else None
        self.rows = rows  # returns rows: fetch, else execute (status with the row count)
        self.insert = insert  # RETURNING id appended: lastrowid

    def args(self, params: Any) -> Sequence[Any]:
        if self.names is None:
            return params
        return [params[name] for name in self.names]


def translate(sql: str, id_tables: frozenset[str] = frozenset()) -> _Sql:
    """`?`, `?NNN` and `:name` become `$n`; an INSERT into a table with an id column returns it."""
    counter = 0
    names: list[str] = []

    def swap(match: re.Match[str]) -> str:
        nonlocal counter
        token = match.group(0)
        if token[0] in "'\"":
            return token
        if match.group(3) is not None:
            return "IS DISTINCT FROM "
        if match.group(4) is not None:
            return "IS NOT DISTINCT FROM "
        if match.group(1) is not None:
            return f"${match.group(1)}"
        if match.group(2) is not None:
            name = match.group(2)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"
        counter += 1
        return f"${counter}"

    text = _NO_INDEX_HINT.sub(r"\1 ", _TOKEN.sub(swap, sql))
    ignore = _INSERT_OR_IGNORE.match(text)
    if ignore:  # SQLite's INSERT OR IGNORE: skip rows that break a unique key
        text = f"{ignore.group(1)}INSERT INTO{text[ignore.end():].rstrip().rstrip(';')} ON CONFLICT DO NOTHING"
    insert = False
    target = _INSERT_INTO.match(text)
    if target and target.group(1).lower() in id_tables and not re.search(r"\bRETURNING\b", text, re.IGNORECASE):
        text = text.rstrip().rstrip(";") + " RETURNING id"
        insert = True
    return _Sql(text, tuple(names) if names else None, insert or bool(_RETURNS_ROWS.search(text)), insert)


def _count(status: str) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 1"); -1 when it has none."""
    last = status.rpartition(" ")[2]
    return int(last) if last.isdigit() else -1


def _text(value: Any) -> str:
    # SQLite stores whatever it is given; PostgreSQL's text codec wants str (an int chat id).
    # PostgreSQL text cannot hold U+0000, which anyone may send (a chat message, a form, an
    # API body): it is dropped here, for every statement, instead of failing the transaction.
    text = str(int(value)) if isinstance(value, bool) else str(value)
    return text.replace("\x00", "") if "\x00" in text else text


def _integer(value: Any) -> str:
    return str(int(value))  # "42" and True bind to an integer column as in SQLite


def _number(text: str) -> int | float:
    # NUMERIC reads back as SQLite's NUMERIC affinity gives it: an int when whole, else a float.
    try:
        return int(text)
    except ValueError:
        return float(text)


async def _setup(conn: asyncpg.Connection) -> None:
    """Codecs that bind and read values the way SQLite does (the repositories rely on it)."""
    for name in ("text", "varchar"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_text, decoder=str, format="text")
    for name in ("int2", "int4", "int8"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_integer, decoder=int, format="text")
    await conn.set_type_codec("numeric", schema="pg_catalog", encoder=str, decoder=_number, format="text")


class PgCursor:
    """What execute() gives, like sqlite3's cursor: lastrowid, rowcount, fetch*."""

    __slots__ = ("_rows", "_at", "lastrowid", "rowcount")

    def __init__(self, rows: list[asyncpg.Record], rowcount: int, lastrowid: int | None) -> None:
        self._rows = rows
        self._at = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    async def fetchone(self) -> asyncpg.Record | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    async def fetchmany(self, size: int = 1) -> list[asyncpg.Record]:
        chunk = self._rows[self._at:self._at + size]
        self._at += len(chunk)
        return chunk

    async def fetchall(self) -> list[asyncpg.Record]:
        chunk = self._rows[self._at:]
        self._at = len(self._rows)
        return chunk

    async def close(self) -> None:
        self._rows = []


class _Pending:
    """execute()'s result: awaitable (the cursor) and an async context manager, like aiosqlite's."""

    __slots__ = ("_run", "_cursor")

    def __init__(self, run: Any) -> None:
        self._run = run
        self._cursor: PgCursor | None = None

    def __await__(self) -> Any:
        return self._run.__await__()

    async def __aenter__(self) -> PgCursor:
        self._cursor = await self._run
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class PgConnection:
    """One asyncpg connection with the methods the repositories call on an aiosqlite one."""

    dialect = DIALECT
    # Inside a writer transaction (a unit's, transaction()'s): its rollup deltas, written at its
    # COMMIT in one order (storage/rollup_lock.py). None elsewhere: written at once.
    rollups: Pending | None = None

    def __init__(self, db: "PgDatabase", conn: asyncpg.Connection) -> None:
        self._db = db
        self.raw = conn

    @property
    def in_transaction(self) -> bool:
        return self.raw.is_in_transaction()

    def after_erasure(self) -> None:
        """storage/privacy.erase ran in this transaction: once it is committed, the tables are
        rewritten (checkpoint(): VACUUM FULL), on every path (chat /forget included)."""
        self._db.erased = True
        self._db.vacuum_after_commit()

    def execute(self, sql: str, parameters: Any = ()) -> _Pending:
        return _Pending(self._execute(sql, parameters))

    async def _execute(self, sql: str, parameters: Any) -> PgCursor:
        q = self._db.sql(sql)
        args = q.args(parameters)
        if q.rows:
            rows = await self.raw.fetch(q.text, *args)
            if q.insert:
                return PgCursor(rows, len(rows), rows[0][0] if rows else None)
            return PgCursor(rows, len(rows), None)
        return PgCursor([], _count(await self.raw.execute(q.text, *args)), None)

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[asyncpg.Record]:
        q = self._db.sql(sql)
        return await self.raw.fetch(q.text, *q.args(parameters))

    def executemany(self, sql: str, parameters: Any) -> _Pending:
        return _Pending(self._executemany(sql, parameters))

    async def _executemany(self, sql: str, parameters: Any) -> PgCursor:
        q = self._db.sql(sql)
        await self.raw.executemany(q.text, [q.args(p) for p in parameters])
        return PgCursor([], -1, None)

    async def executescript(self, script: str) -> None:
        await self.raw.execute(script)  # the simple protocol: several statements, no parameters


class _PoolReader:
    """Database.reader: each call on a connection of the reader pool (reads run side by side)."""

    dialect = DIALECT

    def __init__(self, db: "PgDatabase", pool: asyncpg.Pool) -> None:
        self._db = db
        self._pool = pool

    def execute(self, sql: str, parameters: Any = ()) -> "_Streaming":
        return _Streaming(self, sql, parameters)

    async def _execute(self, sql: str, parameters: Any) -> PgCursor:
        async with self._pool.acquire() as conn:
            return await PgConnection(self._db, conn)._execute(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[asyncpg.Record]:
        q = self._db.sql(sql)
        async with self._pool.acquire() as conn:
            return await conn.fetch(q.text, *q.args(parameters))


class _Streaming:
    """reader.execute(): awaited, the whole result (like a cursor); `async with`, a server-side
    cursor in a read-only transaction on a pool connection, held until the block ends, so an
    export of millions of rows pages through them (fetchmany) instead of loading them all."""

    def __init__(self, reader: _PoolReader, sql: str, parameters: Any) -> None:
        self._reader = reader
        self._sql = sql
        self._parameters = parameters
        self._conn: Any = None
        self._tx: Any = None

    def __await__(self) -> Any:
        return self._reader._execute(self._sql, self._parameters).__await__()

    async def __aenter__(self) -> "_ServerCursor":
        q = self._reader._db.sql(self._sql)
        self._conn = await self._reader._pool.acquire()
        try:
            self._tx = self._conn.transaction(readonly=True)
            await self._tx.start()
            return _ServerCursor(await self._conn.cursor(q.text, *q.args(self._parameters)))
        except BaseException:
            await self._reader._pool.release(self._conn)
            raise

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._tx.rollback()  # read only: nothing to keep
        finally:
            await self._reader._pool.release(self._conn)


class _ServerCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount = -1
        self.lastrowid = None

    async def fetchone(self) -> asyncpg.Record | None:
        return await self._cursor.fetchrow()

    async def fetchmany(self, size: int = 1) -> list[asyncpg.Record]:
        return await self._cursor.fetch(size)

    async def fetchall(self) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = []
        while chunk := await self._cursor.fetch(1000):
            rows.extend(chunk)
        return rows


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every PostgreSQL migration, in order."""
    return load_migrations("migrations", "postgresql", label="PostgreSQL ")


class PgDatabase(Backend):
    """The PostgreSQL backend: the same public surface as storage.db.Database."""

    dialect = DIALECT
    migration_files = staticmethod(migration_files)

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = without_password(url)  # what messages name as "the database"
        self._writer: PgConnection | None = None
        self._reader: _PoolReader | None = None
        self._pool: asyncpg.Pool | None = None
        self._write_lock = asyncio.Lock()
        self._sql: dict[str, _Sql] = {}
        self._id_tables: frozenset[str] = frozenset()
        # While units (unit()) share an open transaction: one future per unit that has run,
        # each told of the shared COMMIT (as in storage/db.py).
        self._unit_waiters: list[asyncio.Future[None]] | None = None
        self._unit_rollups = Pending()  # the rollup deltas of the units' transaction so far
        self._tasks: set[asyncio.Task[None]] = set()
        self.erased = False  # an erasure since the last checkpoint(): see there
        self._vacuum_lock = asyncio.Lock()  # one VACUUM at a time: a checkpoint() waits for one under way
        # LISTEN: one connection of its own, reopened by keep_listening() when it was lost.
        self._listener: asyncpg.Connection | None = None
        self._listening: dict[str, list[Callable[[str], None]]] = {}
        # side_transaction(): a connection of its own for the cluster's lease, beside the writer.
        self._side: asyncpg.Connection | None = None
        self._side_lock = asyncio.Lock()

    def sql(self, text: str) -> _Sql:
        """The translation of one SQL text, made once per text."""
        q = self._sql.get(text)
        if q is None:
            q = self._sql[text] = translate(text, self._id_tables)
        return q

    async def open(self, migrate: bool = True) -> None:
        try:
            conn = await asyncpg.connect(self.url)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from exc
        await _setup(conn)
        self._writer = PgConnection(self, conn)
        if migrate:
            await self.migrate()
        else:
            await self._check_version()
        await self._load_id_tables()
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=READER_POOL, init=_setup)
        self._reader = _PoolReader(self, self._pool)

    async def _load_id_tables(self) -> None:
        rows = await self.writer.raw.fetch(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND column_name = 'id'")
        self._id_tables = frozenset(r[0] for r in rows)
        self._sql.clear()

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await _settled(listener.close())
        async with self._side_lock:
            side, self._side = self._side, None
            if side is not None:
                await _settled(side.close())
        if self._writer is not None:
            async with self._write_lock:
                await self._commit_units()
            await asyncio.gather(*self._tasks, return_exceptions=True)  # a VACUUM after an erasure
            async with self._write_lock:
                await self._writer.raw.close()
        if self._pool is not None:
            await self._pool.close()
        self._writer = self._reader = self._pool = None

    @asynccontextmanager
    async def transaction(self, *, inline: bool = False) -> AsyncIterator[PgConnection]:
        """A write transaction on the writer connection (inline: accepted, the same here)."""
        async with self._write_lock:
            await self._commit_units()
            conn = self.writer
            await conn.raw.execute("BEGIN")
            conn.rollups = Pending()
            try:
                yield conn
                await conn.rollups.flush(conn)
            except BaseException:
                conn.rollups = None
                await _settled(conn.raw.execute("ROLLBACK"))
                raise
            else:
                conn.rollups = None
                try:
                    await _settled(conn.raw.execute("COMMIT"))
                except Exception:
                    if conn.in_transaction:
                        await _settled(conn.raw.execute("ROLLBACK"))
                    raise

    def unit(self, *, fresh: bool = False) -> "_PgUnit":
        """A small unit of writes, committed before the block returns, sharing its transaction
        (and its one COMMIT, the one fsync) with the units queued behind it: group commit, as
        storage/db.py's unit() does; each unit after the first in a savepoint, so one failing undoes
        only its own (the first, failing, rolls back the transaction, which holds nothing else yet).

        fresh=True: the unit begins a transaction of its own (the open one is committed first),
        for a retry after a deadlock: the locks the earlier units hold are let go first."""
        return _PgUnit(self, fresh)

    async def _commit_units_later(self) -> None:
        async with self._write_lock:
            await self._commit_units()

    async def _commit_units(self) -> None:
        """COMMIT the units' open transaction, if any (under the write lock)."""
        waiters, self._unit_waiters = self._unit_waiters, None
        if waiters is None:
            return
        raw = self.writer.raw
        try:
            if self._unit_rollups:
                await self._unit_rollups.flush(self.writer)
            await _settled(raw.execute("COMMIT"))
        except Exception as exc:
            self._unit_rollups = Pending()
            log.error("a shared transaction of units: COMMIT failed, rolled back: %s", exc)
            if raw.is_in_transaction():
                await _settled(raw.execute("ROLLBACK"))
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
            return
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def write_beside(self, sql: str, params: Sequence[Any] = ()) -> tuple[int | None, int]:
        """One write statement, committed before this returns, on a connection of the pool:
        not behind this process's writer lock, so it never waits for a long transaction of
        this process (a dispatch batch of 200 surveys holds the writer for a second or more
        under load). For the sender's claims and sent marks: single statements on outbox rows
        that no open writer transaction of ours holds, whose waits would stall the sends."""
        cur = await self.reader._execute(sql, params)
        return cur.lastrowid, cur.rowcount

    async def write_grouped(self, sql: str, params: Sequence[Any] = ()) -> tuple[int | None, int]:
        """One write statement, committed before this returns: (lastrowid, rowcount). The
        statement is its own transaction: one round trip, not three (BEGIN, it, COMMIT)."""
        async with self._write_lock:
            await self._commit_units()
            cur = await self.writer._execute(sql, params)
        return cur.lastrowid, cur.rowcount

    def vacuum_after_commit(self) -> None:
        """A checkpoint() as soon as the writer's current transaction (or units') is committed."""
        task = asyncio.create_task(self._vacuum_after_commit())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _vacuum_after_commit(self) -> None:
        async with self._write_lock:  # taken once the erasing transaction has ended
            await self._commit_units()
        try:
            await self.checkpoint()
        except Exception as exc:  # the next checkpoint (the hourly purge) tries again
            self.erased = True
            log.error("VACUUM after an erasure failed: %s: %s", type(exc).__name__, exc)

    async def checkpoint(self) -> None:
        """After an erasure: VACUUM FULL of our tables, which writes each table and its indexes
        into new files and deletes the old ones (a plain VACUUM frees the old row versions'
        space but can leave their bytes in the pages until overwritten: seen in the tests), then
        CHECKPOINT where the role may. Each table is locked while it is rewritten (seconds for
        a big inbox), so after a retention purge (hourly) only a plain VACUUM, which locks
        nothing. On a connection of its own (VACUUM runs outside transactions). The server's
        WAL, replicas and backups are the README's part ("PostgreSQL")."""
        async with self._vacuum_lock:
            full, self.erased = self.erased, False
            try:
                await self._vacuum(full)
            except BaseException:
                self.erased = self.erased or full
                raise

    async def _vacuum(self, full: bool) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            tables = [r[0] for r in await conn.fetch(
                "SELECT quote_ident(table_name) FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
            if full and not await self._older_snapshots_gone(conn):
                self.erased = True  # the next checkpoint() (hourly purge) rewrites again
                log.warning("VACUUM FULL after an erasure ran while an older transaction was still "
                            "open; the erased rows may stay on disk until the next purge")
            await conn.execute(f"VACUUM {'FULL ' if full else ''}{', '.join(tables)}")
            try:
                await conn.execute("CHECKPOINT")
            except asyncpg.InsufficientPrivilegeError:
                pass  # needs pg_checkpoint (or superuser): the server's own comes within checkpoint_timeout
        finally:
            await conn.close()

    @staticmethod
    async def _older_snapshots_gone(conn: asyncpg.Connection, wait: float = VACUUM_WAIT_SECONDS) -> bool:
        """Wait (up to `wait` s) until no other session holds a snapshot from before the
        erasure: VACUUM FULL copies rows still visible to one ("recently dead"), so the erased
        rows would survive the rewrite. Sessions of every database count: one still connecting
        holds the horizon back for all of them (seen with other databases being created)."""
        horizon = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            older = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_xmin IS NOT NULL"
                " AND age(backend_xmin) >= age($1::text::xid)", str(horizon % 2**32))
            if not older:
                return True
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    @asynccontextmanager
    async def side_transaction(self) -> AsyncIterator[PgConnection]:
        """A short transaction on a connection of its own, not behind this process's writer
        lock: the cluster's lease renewal must not wait for a long write (a dispatch batch, a
        group of units) or the lease could run out while the process is busy, not dead."""
        async with self._side_lock:
            if self._side is None or self._side.is_closed():
                self._side = await asyncpg.connect(self.url)
                await _setup(self._side)
            conn = PgConnection(self, self._side)
            async with self._side.transaction():
                yield conn

    # --- LISTEN / NOTIFY between processes ------------------------------------

    async def listen(self, channel: str, callback: Callable[[str], None]) -> None:
        """callback(payload) for every NOTIFY on `channel` (this process's own included)."""
        self._listening.setdefault(channel, []).append(callback)
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.add_listener(channel, self._dispatch)
        else:
            await self.keep_listening()

    async def keep_listening(self) -> bool:
        """Reopen the listening connection if it was lost (a server restart, a network cut);
        True when it was reopened: notifications in between were missed."""
        if not self._listening or (self._listener is not None and not self._listener.is_closed()):
            return False
        conn = await asyncpg.connect(self.url)
        for channel in self._listening:
            await conn.add_listener(channel, self._dispatch)
        self._listener = conn
        return True

    def _dispatch(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        for callback in self._listening.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("a NOTIFY handler on %s failed", channel)

    async def notify(self, channel: str, payload: str = "") -> None:
        """Tell every listening process (payloads up to 8000 bytes)."""
        await self.reader.execute_fetchall("SELECT pg_notify(?, ?)", (channel, payload))

    # --- migrations -----------------------------------------------------------

    async def applied_versions(self) -> list[int]:
        raw = self.writer.raw
        if await raw.fetchval("SELECT to_regclass('schema_migrations')") is None:
            # Under the migrations' lock: two instances starting at once on an empty database
            # would both CREATE (IF NOT EXISTS does not stop the race on the type's name).
            async with raw.transaction():
                await raw.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                await raw.execute(CREATE_SCHEMA_MIGRATIONS)
        return [r[0] for r in await raw.fetch("SELECT version FROM schema_migrations ORDER BY version")]

    async def migrate(self) -> list[str]:
        """Apply every migration not applied yet, each in its own transaction, holding an
        advisory lock: instances starting together take turns, the later ones find it done."""
        raw = self.writer.raw
        done = []
        async with self._write_lock:
            await raw.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                applied = set(await self.applied_versions())
                files = migration_files()
                check_not_newer(applied, files, self.path)
                now = to_db(datetime.now(timezone.utc))
                pending = [(version, name, sql) for version, name, sql in files if version not in applied]
                if pending:  # all in one transaction: one failing leaves the database as it was
                    async with raw.transaction():
                        for version, name, sql in pending:
                            try:
                                async with raw.transaction():  # a savepoint: names the one that failed
                                    await raw.execute(
                                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                                        version, name, now)
                                    await raw.execute(sql)
                            except Exception as exc:
                                raise MigrationError(f"migration postgresql/{name} failed: {exc}; nothing was "
                                                     "applied, the database is as it was before") from exc
                for _, name, _ in pending:
                    log.info("applied migration postgresql/%s", name)
                    done.append(name)
            finally:
                await raw.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await self._load_id_tables()
        return done


class _PgUnit:
    """PgDatabase.unit(): the write lock, a savepoint in the shared transaction (none for its
    first unit, as on SQLite), the wait for its COMMIT."""

    __slots__ = ("_db", "_waiters", "_first", "_fresh")

    def __init__(self, db: PgDatabase, fresh: bool = False) -> None:
        self._db = db
        self._fresh = fresh

    async def __aenter__(self) -> PgConnection:
        db = self._db
        await db._write_lock.acquire()
        try:
            raw = db.writer.raw
            if self._fresh:
                await db._commit_units()
            # The first unit of a transaction needs no savepoint: should it fail, nothing else
            # is in the transaction yet (the write lock is held), so all of it is rolled back.
            self._first = db._unit_waiters is None
            if self._first:
                await _settled(raw.execute("BEGIN"))
                db._unit_rollups = Pending()
                db._unit_waiters = []
                task = asyncio.create_task(db._commit_units_later())
                db._tasks.add(task)
                task.add_done_callback(db._tasks.discard)
            else:
                await _settled(raw.execute("SAVEPOINT unit"))
            self._waiters = db._unit_waiters
        except BaseException:
            db._write_lock.release()
            raise
        db.writer.rollups = Pending()  # this unit's; they join the transaction's if it succeeds
        return db.writer

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        db = self._db
        raw = db.writer.raw
        mine, db.writer.rollups = db.writer.rollups, None
        try:
            if exc_type is None and mine:
                db._unit_rollups.merge(mine)
            if self._first:
                if exc_type is not None:  # the transaction held this unit's writes only
                    db._unit_waiters = None  # its COMMIT task finds nothing to commit
                    await _settled(raw.execute("ROLLBACK"))
            else:
                if exc_type is not None:  # this unit's writes only; the shared transaction goes on
                    await _settled(raw.execute("ROLLBACK TO SAVEPOINT unit"))
                await _settled(raw.execute("RELEASE SAVEPOINT unit"))
                if conflicted(exc):
                    # A deadlock: the other transaction may be waiting for rows the earlier units
                    # hold. Committed now, not after the units queued behind this one, which could
                    # meet it again (each after deadlock_timeout).
                    await db._commit_units()
        finally:
            db._write_lock.release()
        if exc_type is None:
            committed = asyncio.get_running_loop().create_future()
            self._waiters.append(committed)
            await committed
