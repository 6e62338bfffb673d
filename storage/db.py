"""SQLite through aiosqlite: WAL, busy_timeout, BEGIN IMMEDIATE writes, ordered migrations.

One writer connection serialised by an asyncio lock (SQLite has one writer anyway; the
lock keeps two coroutines from interleaving statements inside one transaction), and
one reader connection that WAL lets run beside it.
"""
from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import aiosqlite

from storage.timefmt import to_db

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

Connection = aiosqlite.Connection
Row = aiosqlite.Row


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
    """One row, in one round trip to the database thread (a cursor costs three)."""
    rows = await conn.execute_fetchall(sql, params)
    return next(iter(rows), None)


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every packaged migration, in order."""
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {versions}")
    return found


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def open(self, migrate: bool = True) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        mode = await self._enable_wal()
        if self.path != ":memory:" and mode != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode})")
        if migrate:
            await self.migrate()
        self._reader = await self._connect()

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
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        # execute_fetchall, not execute: a PRAGMA that returns a row keeps its statement
        # (and a read lock) open until the row is fetched, which blocks the other connection.
        await conn.execute_fetchall(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await conn.execute_fetchall("PRAGMA foreign_keys=ON")
        await conn.execute_fetchall("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no commit's integrity
        # Deleted and overwritten content is zeroed on disk, not left in free space: erased
        # personal data is really gone (storage/privacy.py).
        await conn.execute_fetchall("PRAGMA secure_delete=ON")
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def __aenter__(self) -> "Database":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def writer(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @property
    def reader(self) -> aiosqlite.Connection:
        """For reads outside a transaction: sees every committed write, never blocks one."""
        return self._reader or self.writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: BEGIN IMMEDIATE takes the write lock up front, so a
        transaction never fails half-way with SQLITE_BUSY on upgrade."""
        async with self._write_lock:
            conn = self.writer
            try:
                # Inside the try: a task cancelled while BEGIN is queued (a job stopped at
                # shutdown) must not leave the connection inside a transaction; the
                # connection's thread runs the ROLLBACK after the BEGIN.
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
            except BaseException:
                try:
                    await conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass  # the BEGIN itself failed: no transaction to roll back
                raise
            else:
                await conn.execute("COMMIT")

    async def checkpoint(self) -> None:
        """Copy the WAL into the database file and empty it (best effort: readers may hold
        older frames), so overwritten pages do not linger in the WAL file."""
        async with self._write_lock:
            await self.writer.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[aiosqlite.Row]:
        return list(await self.reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    # --- migrations -----------------------------------------------------------

    async def applied_versions(self) -> list[int]:
        conn = self.writer
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        return [row[0] for row in await conn.execute_fetchall("SELECT version FROM schema_migrations ORDER BY version")]

    async def migrate(self) -> list[str]:
        """Apply every migration not applied yet, each in its own transaction."""
        applied = set(await self.applied_versions())
        done = []
        for version, name, sql in migration_files():
            if version in applied:
                continue
            if await self._apply(version, name, sql):
                log.info("applied migration %s", name)
                done.append(name)
        return done

    async def _apply(self, version: int, name: str, sql: str) -> bool:
        """Apply one migration; False when another process applied it first."""
        async with self._write_lock:
            conn = self.writer
            now = to_db(datetime.now(timezone.utc))
            # The version row goes in first: a second process racing to the same migration
            # waits for our write lock, then fails on the primary key before running any DDL.
            script = (
                "BEGIN IMMEDIATE;\n"
                f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({version}, '{name}', '{now}');\n"
                f"{sql}\n;"
                "COMMIT;"
            )
            try:
                await conn.executescript(script)
            except Exception as exc:
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                if version in await self.applied_versions():
                    return False
                raise MigrationError(f"migration {name} failed: {exc}") from exc
            return True
