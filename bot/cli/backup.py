"""`feedbot db backup|verify|restore` (registered by bot/cli/main.py under `feedbot db`)."""
from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path

from bot.clock import SystemClock
from bot.config import Config
from bot.services.backups import Backups, BackupSettings
from storage import backup as files
from storage.backup import BackupError

COMMANDS = ("backup", "verify", "restore")


def add_commands(db_sub: argparse._SubParsersAction, config_help: str) -> None:
    take = db_sub.add_parser(
        "backup", help="back up the database now (safe while the bot runs)",
        description="Take a consistent backup of the database while the bot may be running: SQLite's online "
        "backup, gzip-compressed (PostgreSQL: pg_dump, custom format), named for the UTC time, with a manifest "
        "beside it (schema version, row counts per table, SHA-256). Prints the file's path. Exit 1 if it fails.")
    take.add_argument("--output", metavar="DIR", help="the folder to write it in (default: backup.folder)")
    take.add_argument("--config", help=config_help)
    verify = db_sub.add_parser(
        "verify", help="check a backup without restoring it",
        description="Check a backup against its manifest: size and SHA-256, then (SQLite) decompress it, run "
        "PRAGMA integrity_check and compare the row counts and schema version; (PostgreSQL) restore it into a "
        "scratch database on the server and compare the same. Exit 0 when sound, 1 otherwise.")
    verify.add_argument("file", metavar="FILE", help="the backup (.sqlite.gz or .pgdump) or its .manifest.json")
    verify.add_argument("--config", help=config_help)
    restore = db_sub.add_parser(
        "restore", help="replace the database with a backup (the bot must be stopped)",
        description="Verify the backup first (as `feedbot db verify`), refuse one taken by a newer feedbot "
        "(a newer schema) and refuse while the bot runs; then put it in place of the database. The replaced "
        "SQLite file is kept as <database.path>.replaced-<time>; on PostgreSQL a backup labelled before-restore "
        "is taken first. Exit 1 (changing nothing) on any refusal.")
    restore.add_argument("file", metavar="FILE", help="the backup (.sqlite.gz or .pgdump) or its .manifest.json")
    restore.add_argument("--config", help=config_help)


def _known_version(url: str) -> int:
    if url:
        from storage.pg import migration_files as pg_files

        return max(v for v, _, _ in pg_files())
    from storage.db import migration_files

    return max(v for v, _, _ in migration_files())


async def run(config: Config, args: argparse.Namespace) -> int:
    settings = BackupSettings.from_config(config)
    service = Backups(settings, SystemClock())
    url = settings.database_url
    try:
        if args.db_command == "backup":
            if not url and not settings.database_path.exists():
                print(f"feedbot: database.path: no database at {settings.database_path}", file=sys.stderr)
                return 1
            result = await service.take(Path(args.output) if args.output else None)
            m = result.manifest
            print(f"backup written: {result.path}")
            print(f"  manifest: {result.manifest_path}")
            print(f"  schema version {m.schema_version}, {sum(m.tables.values())} rows in {len(m.tables)} tables, "
                  f"{_size(m.size)} (database {_size(m.database_bytes)}), {result.seconds:.1f} s")
            return 0
        path = Path(args.file)
        if args.db_command == "verify":
            if url or _kind(path) == "postgresql":
                verified = await files.verify_pg(path, url) if url else _pg_needs_url()
            else:
                verified = await asyncio.to_thread(files.verify_sqlite_sync, path)
            m = verified.manifest
            print(f"backup OK: {verified.path.name} ({m.kind}, taken {m.created_at}, schema version {m.schema_version})")
            for table, n in sorted(m.tables.items()):
                print(f"  {table:<28} {n:>10}")
            return 0
        # restore
        now = SystemClock().now()
        erased = await _erased(settings)
        if url:
            manifest, aside = await files.restore_pg(path, url, _known_version(url), now, settings.folder)
            print(f"restored {path.name} into the PostgreSQL database (schema version {manifest.schema_version})")
            print(f"  the database as it was is kept in {aside}")
        else:
            manifest, aside_file = await asyncio.to_thread(
                files.restore_sqlite_sync, path, settings.database_path, _known_version(url), now)
            print(f"restored {path.name} to {settings.database_path} (schema version {manifest.schema_version})")
            if aside_file is not None:
                print(f"  the replaced file is kept as {aside_file}")
        if manifest.schema_version < _known_version(url):
            print("  the bot applies the newer migrations at its next start (after backing it up again)")
        again = await _erased_again(settings, erased)
        if again:
            print(f"  {len(again)} customer(s) erased since this backup was taken are in it again: erase them again")
            for ident in again:
                print(f"    feedbot customer erase --yes {ident}")
        return 0
    except BackupError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 1


# Erased customers and chats stay as tombstones (their ids, erased_at set): the database being
# replaced names those erased after the backup was taken, which the backup still holds.
_ERASED_SQL = ("SELECT id FROM customers WHERE erased_at IS NOT NULL",
               "SELECT id FROM contacts WHERE erased_at IS NOT NULL")
_KEPT_SQL = ("SELECT id, external_id FROM customers WHERE erased_at IS NULL",
             "SELECT c.id, cu.external_id FROM contacts c LEFT JOIN customers cu ON cu.id = c.customer_id"
             " WHERE c.erased_at IS NULL")


async def _query(settings: BackupSettings, queries: tuple[str, ...]) -> list[list[tuple]] | None:
    """The rows of each query on the database; None when it cannot be read (no database yet,
    a damaged one): then there is nothing to compare."""
    try:
        if settings.database_url:
            import asyncpg

            conn = await asyncpg.connect(settings.database_url)
            try:
                return [[tuple(r) for r in await conn.fetch(q)] for q in queries]
            finally:
                await conn.close()
        if not settings.database_path.exists():
            return None
        lite = sqlite3.connect(f"file:{settings.database_path}?mode=ro", uri=True)
        try:
            return [lite.execute(q).fetchall() for q in queries]
        finally:
            lite.close()
    except Exception:  # noqa: BLE001 - a note to print, never a reason to fail the restore
        return None


async def _erased(settings: BackupSettings) -> tuple[set[int], set[int]]:
    """Ids of the customers and of the chats erased in the database as it is."""
    rows = await _query(settings, _ERASED_SQL)
    return ({r[0] for r in rows[0]}, {r[0] for r in rows[1]}) if rows else (set(), set())


async def _erased_again(settings: BackupSettings, erased: tuple[set[int], set[int]]) -> list[str]:
    """`feedbot customer erase` ids of those erased before the restore, not erased after it."""
    customers, contacts = erased
    if not customers and not contacts:
        return []
    rows = await _query(settings, _KEPT_SQL)
    if rows is None:
        return []
    found = {external for id_, external in rows[0] if id_ in customers}
    found |= {external or f"contact:{id_}" for id_, external in rows[1] if id_ in contacts}
    return sorted(found)


def _kind(path: Path) -> str:
    return "postgresql" if path.name.endswith(files.PG_SUFFIX) else "sqlite"


def _pg_needs_url() -> files.Verified:
    raise BackupError("a PostgreSQL backup is verified by restoring it into a scratch database: "
                      "set database.url to the server")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
