"""`feedbot db backup|verify|restore` (registered by bot/cli/main.py under `feedbot db`)."""
from __future__ import annotations

import argparse
import asyncio
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
        return 0
    except BackupError as exc:
        print(f"feedbot: {exc}", file=sys.stderr)
        return 1


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
