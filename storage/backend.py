"""What the two backends share around their connections: storage/db.py (SQLite) and
storage/pg.py (PostgreSQL) each subclass Backend and keep their own transactions.

Shared here: `async with db`, the writer and reader guards, fetchall / fetchone, the
heartbeat, the migration files and the schema_migrations bookkeeping around them (the
table, pending migrations, refusing a database migrated by a newer feedbot).
"""
from __future__ import annotations

import asyncio
import random
import re
from importlib import resources
from typing import Any, Awaitable, Sequence

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
CREATE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def dialect(conn: Any) -> str:
    """"sqlite" or "postgresql": which SQL variant a repository gives this connection."""
    return getattr(conn, "dialect", "sqlite")


class MigrationError(RuntimeError):
    pass


# PostgreSQL gives up a transaction when it cannot order it against another: deadlock_detected
# (two instances locking the same rows in opposite orders) and serialization_failure. The work
# itself was fine; done again once the other has committed, it succeeds. (SQLite has one
# writer: it never answers either.)
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
CONFLICT_RETRIES = 3  # tries after the first
CONFLICT_BACKOFF_S = 0.02  # the first retry waits up to this long (random), each next one twice as long


def conflicted(exc: BaseException | None) -> bool:
    """The error (or one it was raised from) is a deadlock or serialization failure: the
    transaction was rolled back and may be run again as it was."""
    seen = 0
    while exc is not None and seen < 10:
        if getattr(exc, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


async def conflict_backoff(attempt: int) -> None:
    """Before retry number `attempt` (0 for the first): a short random wait, so that the two
    transactions that collided do not meet again in step."""
    await asyncio.sleep(random.uniform(0.5, 1.0) * CONFLICT_BACKOFF_S * 2 ** attempt)


def check_not_newer(applied: Any, files: list[tuple[int, str, str]], where: str) -> None:
    """Refuse a database migrated by a newer feedbot: this code does not know its schema."""
    known = max((v for v, _, _ in files), default=0)
    newest = max(applied, default=0)
    if newest > known:
        raise MigrationError(
            f"{where}: the database is at schema version {newest}, this feedbot knows up to {known}:"
            " it was migrated by a newer feedbot; run that version (or restore a backup)")


def load_migrations(*folder: str, label: str = "") -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration in storage/<folder>, in order."""
    found = []
    for entry in resources.files("storage").joinpath(*folder).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two {label}migrations share a version: {versions}")
    return found


async def settled(statement: Awaitable[Any]) -> None:
    """Await a transaction-control statement even if we are cancelled meanwhile, then pass the
    cancellation on. The statement runs on the database's side whatever happens to the
    awaiting task; releasing the write lock before it has finished would leave the next
    caller a connection in an unknown state (an open transaction: 'cannot start a
    transaction within a transaction' on every later write)."""
    pending = asyncio.ensure_future(statement)
    try:
        await asyncio.shield(pending)
    except asyncio.CancelledError:
        await pending
        raise


class Backend:
    """The shell both Database classes share. A subclass sets `_writer` / `_reader` in open(),
    clears them in close(), and gives migration_files(), applied_versions(), write_grouped()."""

    path: str
    _writer: Any = None
    _reader: Any = None

    @staticmethod
    def migration_files() -> list[tuple[int, str, str]]:
        raise NotImplementedError

    async def open(self, migrate: bool = True) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def applied_versions(self) -> list[int]:
        raise NotImplementedError

    async def write_grouped(self, sql: str, params: Sequence[Any] = ()) -> tuple[int | None, int]:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def writer(self) -> Any:
        if self._writer is None:
            raise RuntimeError("database is not open")
        return self._writer

    @property
    def reader(self) -> Any:
        """For reads outside a transaction: sees every committed write, never blocks one."""
        return self._reader or self.writer

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def heartbeat(self, at: str) -> None:
        """A tiny committed write (the settings row 'heartbeat'): raises when the database
        cannot take writes now (a read-only file or directory, a full disk, an I/O error, a
        server that refuses)."""
        await self.write_grouped(
            "INSERT INTO settings (key, value) VALUES ('heartbeat', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (at,),
        )

    async def pending_migrations(self) -> list[str]:
        """The names of the migrations not applied yet."""
        applied = set(await self.applied_versions())
        return [name for version, name, _ in self.migration_files() if version not in applied]

    async def _check_version(self) -> None:
        check_not_newer(await self.applied_versions(), self.migration_files(), self.path)

    async def schema_versions(self) -> tuple[int, int]:
        """(applied, known): the newest migration applied to the database, the newest this code has."""
        rows = await self.reader.execute_fetchall("SELECT MAX(version) FROM schema_migrations")
        return (rows[0][0] or 0) if rows else 0, max((v for v, _, _ in self.migration_files()), default=0)
