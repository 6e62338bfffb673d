"""`feedbot db copy`: a shop's SQLite file into a PostgreSQL database, verified table by table.

Tables go in foreign-key order, in batches ordered by primary key, each batch committed on its
own: a copy that stops half-way is resumed by running it again (a table with an integer key
goes on after the largest key already there; the few others insert what is missing). Then
every table is compared: row counts, and a SHA-256 over a canonical text of its rows in key
order, computed the same way on both sides. The identity sequences are set past the largest
ids, so new rows get new ids.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TextIO

import asyncpg

from storage.backup import RunLock
from storage.db import Database
from storage.pg import PgDatabase

BATCH = 5000
# Each database keeps its own schema_migrations (the target is migrated by PgDatabase); leases and
# rate_counts (the shared abuse limits) are live state; csat_months, csat_days, csat_store_days and
# survey_sends_months are kept by the target's own triggers from the csat_rollups and survey_sends
# rows copied (copying them too would count everything twice).
SKIPPED = {"schema_migrations", "leases", "rate_counts", "csat_months", "csat_days", "csat_store_days",
           "survey_sends_months"}


class CopyError(Exception):
    """Bad arguments or a database that cannot be used: the message says which."""


@dataclass(frozen=True)
class TableCheck:
    table: str
    source_rows: int
    target_rows: int
    source_sum: str
    target_sum: str

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_sum == self.target_sum


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    key: str
    integer_key: bool


def canonical(value: Any) -> str:
    """One value as text, the same for SQLite's and PostgreSQL's form of it."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
        return format(number.normalize(), "f") if number == number else "NaN"
    if isinstance(value, bytes):
        return value.hex()
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _row_text(row: Any) -> bytes:
    return ("\t".join(canonical(v) for v in row) + "\n").encode("utf-8")


async def _tables(source: Database) -> list[_Table]:
    """The source's tables, each after the tables its foreign keys point to."""
    conn = source.reader
    rows = await conn.execute_fetchall(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
    # A search index (FTS5) and its shadow tables are not data: the target's own index is kept
    # by its own triggers (SQLite) or is an ordinary index (PostgreSQL).
    virtual = [r[0] for r in rows if (r[1] or "").upper().startswith("CREATE VIRTUAL TABLE")]
    names = [r[0] for r in rows if not any(r[0] == v or r[0].startswith(v + "_") for v in virtual)]
    tables: dict[str, _Table] = {}
    depends: dict[str, set[str]] = {}
    for name in names:
        if name in SKIPPED:
            continue
        info = await conn.execute_fetchall(f"PRAGMA table_info({name})")
        keys = [r for r in info if r[5]]
        if len(keys) != 1:
            raise CopyError(f"table {name}: no single-column primary key to copy it by")
        key = keys[0]
        tables[name] = _Table(name, tuple(r[1] for r in info), key[1], key[2].upper() == "INTEGER")
        depends[name] = {r[2] for r in await conn.execute_fetchall(f"PRAGMA foreign_key_list({name})")} - {name}
    ordered: list[_Table] = []
    done: set[str] = set()
    while len(ordered) < len(tables):
        ready = [n for n in sorted(tables) if n not in done and depends[n] <= done | (depends[n] - tables.keys())]
        if not ready:
            raise CopyError(f"foreign keys form a cycle among {sorted(set(tables) - done)}")
        for name in ready:
            ordered.append(tables[name])
            done.add(name)
    return ordered


def _coercers(types: dict[str, str], columns: tuple[str, ...]) -> list[Callable[[Any], Any]]:
    """Per column: a SQLite value as the PostgreSQL column's type wants it."""
    def text(v: Any) -> Any:
        return v if v is None or isinstance(v, str) else str(v)

    def integer(v: Any) -> Any:
        return v if v is None or isinstance(v, int) else int(v)

    def numeric(v: Any) -> Any:
        return v if v is None else Decimal(str(v))

    kinds = {"text": text, "character varying": text, "bigint": integer, "integer": integer,
             "smallint": integer, "numeric": numeric}
    missing = [c for c in columns if c not in types]
    if missing:
        raise CopyError(f"the PostgreSQL database has no column(s) {missing}: is it at the same feedbot version?")
    return [kinds.get(types[c], lambda v: v) for c in columns]


async def copy_database(source_path: str | Path, target_url: str, *, batch: int = BATCH,
                        progress: TextIO = sys.stderr) -> list[TableCheck]:
    """Copy every table, then compare both sides; one TableCheck per table."""
    if not Path(source_path).is_file():
        raise CopyError(f"--from: no SQLite file at {source_path}")
    # Held to the end, as a restore does: no bot writes to the file during the copy (what it
    # wrote after a table was read would stay behind), and none starts meanwhile.
    lock = RunLock(source_path)
    if not lock.acquire(exclusive=True):
        raise CopyError(f"--from: feedbot is running on {source_path} (it holds {lock.path.name}); "
                        "stop the bot first: the copy must see its last writes")
    try:
        return await _copy_locked(source_path, target_url, batch, progress)
    finally:
        lock.release()


async def _copy_locked(source_path: str | Path, target_url: str, batch: int, progress: TextIO) -> list[TableCheck]:
    source = Database(source_path)
    try:
        await source.open()  # brings an older file up to this feedbot's schema first
    except Exception as exc:
        raise CopyError(f"--from: cannot open {source_path} as a feedbot database: {exc}") from exc
    try:
        target = PgDatabase(target_url)
        try:
            await target.open()  # migrates an empty database
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise CopyError(f"--to: cannot use the PostgreSQL database: {exc.__class__.__name__}: {exc}") from exc
        await target.close()
        conn = await asyncpg.connect(target_url)  # plain codecs: COPY's binary format
        try:
            tables = await _tables(source)
            for table in tables:
                await _copy_table(source, conn, table, batch, progress)
            await _set_sequences(conn, tables)
            return [await _check(source, conn, table, batch) for table in tables]
        finally:
            await conn.close()
    finally:
        await source.close()


async def _copy_table(source: Database, conn: asyncpg.Connection, table: _Table, batch: int, out: TextIO) -> None:
    types = {r[0]: r[1] for r in await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1", table.name)}
    coerce = _coercers(types, table.columns)
    total = (await source.reader.execute_fetchall(f"SELECT COUNT(*) FROM {table.name}"))[0][0]
    columns = ", ".join(table.columns)
    if table.integer_key:
        after = await conn.fetchval(f"SELECT MAX({table.key}) FROM {table.name}")
        done = await conn.fetchval(f"SELECT COUNT(*) FROM {table.name}")
        after = -(2**31) if after is None else after
    else:
        after, done = "", 0
    _progress(out, table.name, done, total)
    while True:
        rows = await source.reader.execute_fetchall(
            f"SELECT {columns} FROM {table.name} WHERE {table.key} > ? ORDER BY {table.key} LIMIT ?", (after, batch))
        if not rows:
            break
        records = [tuple(f(v) for f, v in zip(coerce, row)) for row in rows]
        async with conn.transaction():
            if table.integer_key:
                await conn.copy_records_to_table(table.name, records=records, columns=list(table.columns))
            else:  # a few rows (settings): what is already there stays
                marks = ", ".join(f"${i + 1}" for i in range(len(table.columns)))
                await conn.executemany(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING", records)
        after = rows[-1][table.columns.index(table.key)]
        done += len(rows)
        _progress(out, table.name, done, total)
    out.write("\n")
    out.flush()


def _progress(out: TextIO, table: str, done: int, total: int) -> None:
    share = 100 * done // total if total else 100
    out.write(f"\rcopy {table}: {done}/{total} rows ({share}%)")
    out.flush()


async def _set_sequences(conn: asyncpg.Connection, tables: list[_Table]) -> None:
    """Each identity sequence past the largest id copied: new rows never collide."""
    for table in tables:
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence($1, $2)", table.name, table.key)
        if sequence is not None:
            await conn.execute(
                f"SELECT setval($1, GREATEST(COALESCE((SELECT MAX({table.key}) FROM {table.name}), 0), 1),"
                f" (SELECT MAX({table.key}) FROM {table.name}) IS NOT NULL)", sequence)


async def _check(source: Database, conn: asyncpg.Connection, table: _Table, batch: int) -> TableCheck:
    columns = ", ".join(table.columns)
    start = -(2**31) if table.integer_key else ""
    source_sum, target_sum = hashlib.sha256(), hashlib.sha256()
    source_rows = target_rows = 0
    after: Any = start
    while True:
        rows = await source.reader.execute_fetchall(
            f"SELECT {columns} FROM {table.name} WHERE {table.key} > ? ORDER BY {table.key} LIMIT ?", (after, batch))
        if not rows:
            break
        for row in rows:
            source_sum.update(_row_text(row))
        source_rows += len(rows)
        after = rows[-1][table.columns.index(table.key)]
    after = start
    # COLLATE "C" columns: text keys come in the same (byte) order as SQLite's.
    while True:
        rows = await conn.fetch(
            f"SELECT {columns} FROM {table.name} WHERE {table.key} > $1 ORDER BY {table.key} LIMIT $2", after, batch)
        if not rows:
            break
        for row in rows:
            target_sum.update(_row_text(row))
        target_rows += len(rows)
        after = rows[-1][table.key]
    return TableCheck(table.name, source_rows, target_rows, source_sum.hexdigest()[:16], target_sum.hexdigest()[:16])

