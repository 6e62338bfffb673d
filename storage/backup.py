"""Backups of the database: take one (SQLite's online backup API, or pg_dump), verify one,
restore one; the manifest beside each; the run lock that tells whether a bot has the file open.

A backup is two files in one folder, named for the UTC time it was taken:

    feedbot-20261205T083000Z.sqlite.gz          the database, gzip-compressed (SQLite)
    feedbot-20261205T083000Z.pgdump             pg_dump's custom format, compressed (PostgreSQL)
    feedbot-20261205T083000Z.manifest.json      what it holds: schema version, row counts per
                                                table, sizes, SHA-256 of the file

A label may follow the time (`feedbot-...Z-pre-migration-0020.sqlite.gz`). Files are written
under a `.partial` name and renamed when complete: a backup cut short by a crash is never
taken for a whole one, and the next backup removes its partial files (those no backup in
progress holds a flock on).

SQLite: the copy is made by sqlite3's backup API in ONE step on a connection of its own (in a
worker thread, off the event loop): one read transaction, a consistent snapshot. In WAL mode a
reader never blocks a writer, so webhooks and the sender go on writing while it runs (their
commits go to the WAL, which the snapshot does not see). A copy in many small steps would not
block writers less, and SQLite restarts a stepped copy from the start whenever another
connection writes between two steps: under steady writes it might never end.
"""
from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no run lock (feedbot runs on POSIX systems)
    fcntl = None  # type: ignore[assignment]

MANIFEST_FORMAT = 1
SQLITE_SUFFIX = ".sqlite.gz"
PG_SUFFIX = ".pgdump"
MANIFEST_SUFFIX = ".manifest.json"
PARTIAL = ".partial"
GZIP_LEVEL = 3  # bench/backup.py: about twice as fast as level 6 for a few % more bytes
CHUNK = 1 << 20
_NAME = re.compile(r"^feedbot-(\d{8}T\d{6}Z)(?:-([a-z0-9-]+))?(\.sqlite\.gz|\.pgdump|\.manifest\.json)$")
_TIME = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup that cannot be taken, verified or restored: the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    kind: str  # "sqlite" | "postgresql"
    created_at: str  # ISO 8601, UTC
    schema_version: int
    tables: dict[str, int]  # row counts
    file: str  # the backup file's name (same folder)
    sha256: str  # of that file
    size: int  # of that file, bytes
    database_bytes: int  # the database's size (SQLite: the uncompressed copy)
    database_sha256: str = ""  # SQLite: of the uncompressed copy
    label: str = ""
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise BackupError(f"{path.name}: manifest format {data.get('format')!r}, this feedbot reads {MANIFEST_FORMAT}")
            if not _plain_name(str(data["file"])):  # read beside the manifest, nowhere else
                raise ValueError(f"file {data['file']!r} is not a file name")
            return cls(kind=str(data["kind"]), created_at=str(data["created_at"]),
                       schema_version=int(data["schema_version"]),
                       tables={str(k): int(v) for k, v in dict(data["tables"]).items()},
                       file=str(data["file"]), sha256=str(data["sha256"]), size=int(data["size"]),
                       database_bytes=int(data["database_bytes"]), database_sha256=str(data.get("database_sha256", "")),
                       label=str(data.get("label", "")))
        except FileNotFoundError:
            raise BackupError(f"{path}: no manifest beside the backup (it names the checksum and row counts); "
                              "copy the .manifest.json file along with the backup") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackupError(f"{path.name}: not a feedbot backup manifest ({type(exc).__name__}: {exc})") from None
        except OSError as exc:
            raise BackupError(f"{path}: cannot read the manifest: {exc}") from None


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and Path(name).name == name


@dataclass(frozen=True)
class BackupFile:
    """One backup in a folder, as its name tells."""

    path: Path
    manifest_path: Path
    taken_at: datetime
    label: str


@dataclass
class BackupResult:
    path: Path
    manifest_path: Path
    manifest: Manifest
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def stem(now: datetime, label: str = "") -> str:
    name = "feedbot-" + now.astimezone(timezone.utc).strftime(_TIME)
    return f"{name}-{label}" if label else name


def _free_stem(folder: Path, now: datetime, label: str) -> str:
    """The name for a backup taken now; a second one within the same second gets -2, -3, ...
    (also while the first one is still being written: its .partial files)."""
    name, n = stem(now, label), 1
    while any((folder / (name + suffix + partial)).exists()
              for suffix in (SQLITE_SUFFIX, PG_SUFFIX, MANIFEST_SUFFIX, ".sqlite") for partial in ("", PARTIAL)):
        n += 1
        name = stem(now, f"{label}-{n}" if label else str(n))
    return name


def parse_name(name: str) -> tuple[datetime, str, str] | None:
    """(taken at, label, suffix) for a backup's file name, else None."""
    match = _NAME.match(name)
    if match is None:
        return None
    taken = datetime.strptime(match.group(1), _TIME).replace(tzinfo=timezone.utc)
    return taken, match.group(2) or "", match.group(3)


def list_backups(folder: Path) -> list[BackupFile]:
    """The complete backups in a folder (file and manifest), oldest first."""
    found = []
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        parsed = parse_name(entry.name)
        if parsed is None or parsed[2] == MANIFEST_SUFFIX:
            continue
        manifest = entry.with_name(entry.name[: -len(parsed[2])] + MANIFEST_SUFFIX)
        if manifest.exists():
            found.append(BackupFile(entry, manifest, parsed[0], parsed[1]))
    found.sort(key=lambda b: (b.taken_at, b.path.name))
    return found


def remove_backup(backup: BackupFile) -> None:
    for path in (backup.path, backup.manifest_path):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def manifest_path_for(path: Path) -> Path:
    """The manifest of a backup file (or the manifest itself)."""
    parsed = parse_name(path.name)
    if parsed is None:
        for suffix in (SQLITE_SUFFIX, PG_SUFFIX, MANIFEST_SUFFIX):
            if path.name.endswith(suffix):
                return path.with_name(path.name[: -len(suffix)] + MANIFEST_SUFFIX)
        raise BackupError(f"{path.name}: not a feedbot backup (expected a name ending in {SQLITE_SUFFIX}, "
                          f"{PG_SUFFIX} or {MANIFEST_SUFFIX})")
    return path.with_name(path.name[: -len(parsed[2])] + MANIFEST_SUFFIX)


# --- the run lock -----------------------------------------------------------------

class RunLock:
    """`<database>.lock`, flock'ed: shared by each running bot, exclusive for a restore.

    The kernel drops a flock when its process ends, however it ends: a crashed bot leaves no
    stale lock. (Not on the database file itself: closing any descriptor of that file would
    drop SQLite's own POSIX locks in this process.)"""

    def __init__(self, database_path: str | Path) -> None:
        self.path = Path(str(database_path) + ".lock")
        self._fd: int | None = None

    def acquire(self, exclusive: bool) -> bool:
        """Without waiting; False when another holder's lock conflicts."""
        if fcntl is None:  # pragma: no cover
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


# --- SQLite -----------------------------------------------------------------------

def _connect_file(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _contents(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
    """(schema version, row count of every table) of a SQLite database."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    counts = {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}
    version = 0
    if "schema_migrations" in counts:
        version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    return version, counts


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _private_folder(folder: Path) -> None:
    """The backup folder, created readable by its owner only (an existing one is left as it is)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _private_file(path: Path) -> int:
    """A new file readable by its owner only: backups hold customers' personal data,
    and SQLite, gzip and pg_dump would create theirs readable by every user of the machine.
    flock'ed while its descriptor is open: a backup in progress (_remove_stale_partials).
    Never another backup's file (O_EXCL): two taking the same name at once, one fails."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _remove_stale_partials(folder: Path) -> None:
    """The .partial files (and SQLite's -journal of one) of backups cut short by a kill or a
    crash, each the size of the database: those no backup in progress holds."""
    for entry in folder.glob("feedbot-*" + PARTIAL):
        try:
            fd = os.open(entry, os.O_RDONLY)
        except OSError:
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being written
            for path in (entry, Path(f"{entry}-journal")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            os.close(fd)
    for journal in folder.glob("feedbot-*" + PARTIAL + "-journal"):  # its partial already gone
        if not journal.with_name(journal.name.removesuffix("-journal")).exists():
            with contextlib.suppress(FileNotFoundError):
                journal.unlink()


def _write_manifest(folder: Path, name: str, manifest: Manifest) -> Path:
    target = folder / (name + MANIFEST_SUFFIX)
    partial = target.with_name(target.name + PARTIAL)
    try:
        with os.fdopen(_private_file(partial), "w", encoding="utf-8") as f:
            f.write(manifest.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    _fsync_dir(folder)
    return target


def backup_sqlite_sync(database: str | Path, folder: str | Path, now: datetime, *, label: str = "",
                       level: int = GZIP_LEVEL) -> BackupResult:
    """Copy the database (one consistent snapshot), count its rows, compress it, write the
    manifest. Blocking: run it in a thread (backup_sqlite)."""
    source_path = Path(database)
    if not source_path.exists():
        raise BackupError(f"{source_path}: no such database file")
    folder = Path(folder)
    try:
        _private_folder(folder)
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write the backup there: {exc}") from exc
    name = _free_stem(folder, now, label)
    target = folder / (name + SQLITE_SUFFIX)
    raw = folder / (name + ".sqlite" + PARTIAL)
    packed = target.with_name(target.name + PARTIAL)
    _remove_stale_partials(folder)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    complete = False
    held: int | None = None
    try:
        # SQLite takes an empty file for a new database, and keeps its mode. The descriptor
        # (its flock) stays open until the end: closing it while SQLite has the file open
        # would drop SQLite's own locks on it.
        held = _private_file(raw)
        source = _connect_file(source_path)
        try:
            copy = sqlite3.connect(raw, isolation_level=None)
            try:
                source.backup(copy)  # pages=-1: one step, one snapshot (see the module's docstring)
                timings["copy"] = time.perf_counter() - started
                # A file that stands alone (no -wal beside it, read-only opens work); the bot
                # switches a restored file back to WAL when it opens it.
                copy.execute("PRAGMA journal_mode=DELETE").fetchall()
                version, counts = _contents(copy)
            finally:
                copy.close()
        finally:
            source.close()
        mark = time.perf_counter()
        db_hash, packed_hash = hashlib.sha256(), hashlib.sha256()
        database_bytes = 0
        with raw.open("rb") as src, os.fdopen(_private_file(packed), "wb") as out:
            class _Hashing:  # gzip writes through this: the compressed bytes are hashed as they go
                def write(self, data: bytes) -> int:
                    packed_hash.update(data)
                    return out.write(data)

                def flush(self) -> None:
                    out.flush()

            with gzip.GzipFile(filename=name + ".sqlite", mode="wb", fileobj=_Hashing(), compresslevel=level, mtime=0) as gz:  # type: ignore[arg-type]
                while chunk := src.read(CHUNK):
                    database_bytes += len(chunk)
                    db_hash.update(chunk)
                    gz.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        timings["compress"] = time.perf_counter() - mark
        os.replace(packed, target)
        manifest = Manifest(
            kind="sqlite", created_at=now.astimezone(timezone.utc).isoformat(), schema_version=version,
            tables=counts, file=target.name, sha256=packed_hash.hexdigest(), size=target.stat().st_size,
            database_bytes=database_bytes, database_sha256=db_hash.hexdigest(), label=label)
        manifest_path = _write_manifest(folder, name, manifest)
        complete = True
    except sqlite3.Error as exc:
        raise BackupError(f"{source_path}: the copy failed: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write the backup: {exc}") from exc
    finally:
        # Without its manifest the file is no backup (list_backups skips it, so no pruning
        # would ever remove it): a failure at the manifest removes it too.
        for leftover in (raw, packed) + (() if complete else (target,)):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if held is not None:
            os.close(held)
    return BackupResult(target, manifest_path, manifest, time.perf_counter() - started, timings)


async def backup_sqlite(database: str | Path, folder: str | Path, now: datetime, *, label: str = "",
                        level: int = GZIP_LEVEL) -> BackupResult:
    """backup_sqlite_sync in a worker thread: sqlite3 and zlib let go of the GIL while they work,
    so the event loop (webhooks, the sender) goes on meanwhile."""
    return await asyncio.to_thread(backup_sqlite_sync, database, folder, now, label=label, level=level)


def _check_file(path: Path) -> Manifest:
    """The manifest, once the file's size and SHA-256 match it."""
    if not path.exists():
        raise BackupError(f"{path}: no such file")
    manifest_file = manifest_path_for(path)
    manifest = Manifest.load(manifest_file)
    data = manifest_file.with_name(manifest.file)
    if not data.exists():
        raise BackupError(f"{data}: the backup file named by {manifest_file.name} is missing")
    try:
        size = data.stat().st_size
        if size != manifest.size:
            raise BackupError(f"{data.name}: {size} bytes, the manifest says {manifest.size}: "
                              "the file is truncated or was altered; use another backup")
        digest = _hash_file(data)
    except OSError as exc:
        raise BackupError(f"{data}: cannot read it: {exc}") from None
    if digest != manifest.sha256:
        raise BackupError(f"{data.name}: its SHA-256 differs from the manifest's: the file was altered or "
                          "damaged; use another backup")
    return manifest


def _compare(name: str, manifest: Manifest, version: int, counts: dict[str, int]) -> None:
    """The restored copy's schema version and row counts against the manifest."""
    if version != manifest.schema_version:
        raise BackupError(f"{name}: schema version {version}, the manifest says {manifest.schema_version}")
    if counts != manifest.tables:
        differ = sorted(t for t in set(counts) | set(manifest.tables) if counts.get(t) != manifest.tables.get(t))
        raise BackupError(f"{name}: row counts differ from the manifest in {', '.join(differ)}")


def _restorable(path: Path, manifest: Manifest, kind: str, known_version: int) -> None:
    if manifest.kind != kind:
        where = "database.path is a SQLite file" if kind == "sqlite" else "database.url is PostgreSQL"
        raise BackupError(f"{path.name}: a {manifest.kind} backup; {where}")
    if manifest.schema_version > known_version:
        raise BackupError(f"{path.name}: schema version {manifest.schema_version}, this feedbot knows up to "
                          f"{known_version}: it was taken by a newer feedbot; restore it with that version")


@dataclass(frozen=True)
class Verified:
    manifest: Manifest
    path: Path  # the backup file
    unpacked: Path | None  # SQLite: the checked, uncompressed copy (the caller removes it)


def verify_sqlite_sync(path: Path, unpack_to: Path | None = None, *, keep: bool = False) -> Verified:
    """Checksum, then decompress (into unpack_to, a folder), PRAGMA integrity_check, and the row
    counts and schema version against the manifest. keep: leave the copy for the caller."""
    manifest = _check_file(path)
    if manifest.kind != "sqlite":
        raise BackupError(f"{path.name}: a {manifest.kind} backup; this database is SQLite")
    data = manifest_path_for(path).with_name(manifest.file)
    folder = unpack_to or Path(tempfile.gettempdir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".feedbot-restore-", suffix=".sqlite", dir=folder)
    except OSError as exc:
        raise BackupError(f"{folder}: cannot decompress the backup there: {exc}") from None
    unpacked = Path(name)
    ok = False
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, gzip.open(data, "rb") as gz:
            while chunk := gz.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if manifest.database_sha256 and digest.hexdigest() != manifest.database_sha256:
            raise BackupError(f"{data.name}: the decompressed database differs from the manifest's checksum")
        conn = sqlite3.connect(f"file:{unpacked}?mode=ro", uri=True, isolation_level=None)
        try:
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise BackupError(f"{data.name}: PRAGMA integrity_check: {'; '.join(problems)}")
            version, counts = _contents(conn)
        finally:
            conn.close()
        _compare(data.name, manifest, version, counts)
        ok = True
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BackupError(f"{data.name}: cannot decompress ({type(exc).__name__}: {exc}): truncated or damaged") from None
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{data.name}: not a sound SQLite database ({exc})") from None
    except OSError as exc:  # a full disk where it is decompressed, most likely
        raise BackupError(f"{data.name}: cannot decompress it into {folder}: {exc}") from None
    finally:
        for side in (Path(f"{unpacked}-wal"), Path(f"{unpacked}-shm")) + (() if ok and keep else (unpacked,)):
            with contextlib.suppress(FileNotFoundError):
                side.unlink()
    return Verified(manifest, data, unpacked if keep else None)


def _checkpointed(database: Path) -> bool:
    """The database's -wal written into the file and removed (a bot killed mid-run leaves its
    last commits there); False when that cannot be done (a damaged file)."""
    try:
        conn = _connect_file(database)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()  # the last connection: SQLite removes the -wal
    except sqlite3.Error:
        return False
    return not busy and not Path(f"{database}-wal").exists()


def _same_owner_and_mode(copy: Path, database: Path) -> None:
    """The restored file as the one it replaces: a temporary file is 0600, and one made by
    `sudo feedbot db restore` is root's, which the bot, running as its own user, cannot open."""
    st = database.stat()
    os.chmod(copy, st.st_mode & 0o7777)
    with contextlib.suppress(PermissionError):  # only root may give a file away
        os.chown(copy, st.st_uid, st.st_gid)


def _linked(target: Path, aside: Path) -> bool:
    """A second name for the database (the replaced file kept) while it stays in place."""
    try:
        os.link(target, aside)
    except OSError:  # a file system without hard links (FAT, some network ones)
        return False
    return True


def restore_sqlite_sync(path: Path, database: str | Path, known_version: int, now: datetime) -> tuple[Manifest, Path | None]:
    """Put the backup in place of the database: only with no bot running (the run lock), after
    a full verify, never from a newer schema. The replaced file (its -wal checkpointed into it)
    is kept as `<database>.replaced-<time>`; returns (the manifest, that path or None when there was no file)."""
    target = Path(database)
    manifest = _check_file(path)  # the cheap checks first: refuse a newer schema before unpacking
    _restorable(path, manifest, "sqlite", known_version)
    lock = RunLock(target)
    if not lock.acquire(exclusive=True):
        raise BackupError(f"{target}: feedbot is running on this database (it holds {lock.path.name}); "
                          "stop the bot first, then restore")
    try:
        verified = verify_sqlite_sync(path, target.parent, keep=True)
        assert verified.unpacked is not None
        aside = None
        try:
            if target.exists():
                _same_owner_and_mode(verified.unpacked, target)
                aside = target.with_name(f"{target.name}.replaced-{now.astimezone(timezone.utc).strftime(_TIME)}")
                if _checkpointed(target) and _linked(target, aside):
                    # One rename replaces the file: cut short at any point, database.path holds
                    # either the old database, whole, or the backup.
                    os.replace(verified.unpacked, target)
                else:  # no WAL-free file or no hard links: moved aside, then the backup put in
                    for suffix in ("-wal", "-shm"):  # moved with it: its last commits may be in the WAL
                        side = Path(str(target) + suffix)
                        if side.exists():
                            os.replace(side, Path(str(aside) + suffix))
                    os.replace(target, aside)
                    os.replace(verified.unpacked, target)
            else:
                os.replace(verified.unpacked, target)
            _fsync_dir(target.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                verified.unpacked.unlink()
            if aside is not None and target.exists() and aside.exists() and os.path.samefile(target, aside):
                aside.unlink()  # the old database stayed in place: no second name for it
            raise
    finally:
        lock.release()
    return manifest, aside


# --- PostgreSQL -------------------------------------------------------------------

def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools (the server's major version)")
    return found


def _tool_env(args: list[str], url: str) -> tuple[list[str], dict[str, str]]:
    """A password in the URL goes by $PGPASSWORD, not on the command line (which any user of
    the machine may read in the process list)."""
    from urllib.parse import unquote, urlsplit

    from storage.pg import without_password

    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    password = urlsplit(url).password
    if password is not None:
        env["PGPASSWORD"] = unquote(password)
        args = [arg.replace(url, without_password(url)) for arg in args]
    return args, env


def _failed(what: str, code: int, stderr: bytes) -> BackupError:
    message = stderr.decode("utf-8", "replace").strip().splitlines()
    return BackupError(f"{what} failed (exit {code}): {' / '.join(message[-3:]) or 'no message'}")


def _run_tool(args: list[str], url: str, what: str) -> subprocess.CompletedProcess[bytes]:
    """A PostgreSQL client tool (see _tool_env)."""
    args, env = _tool_env(args, url)
    result = subprocess.run(args, env=env, capture_output=True)
    if result.returncode != 0:
        raise _failed(what, result.returncode, result.stderr)
    return result


# Everything of feedbot's schema, before a restore: pg_restore --clean drops only what the
# archive holds, so what a newer migration created (a table, with its rows; a function) would
# stay, and the bot's next start would fail re-applying that migration ("already exists").
# Objects of extensions are left to their extension.
_DROP_ALL = """DO $feedbot$ DECLARE s text; BEGIN
FOR s IN
    SELECT format('DROP VIEW IF EXISTS %I.%I CASCADE', schemaname, viewname) FROM pg_views
     WHERE schemaname = current_schema()
    UNION ALL
    SELECT format('DROP TABLE IF EXISTS %I.%I CASCADE', schemaname, tablename) FROM pg_tables
     WHERE schemaname = current_schema()
LOOP EXECUTE s; END LOOP;
FOR s IN
    SELECT format('DROP SEQUENCE IF EXISTS %I.%I CASCADE', schemaname, sequencename) FROM pg_sequences
     WHERE schemaname = current_schema()
    UNION ALL
    SELECT format(CASE p.prokind WHEN 'a' THEN 'DROP AGGREGATE IF EXISTS %s CASCADE'
                  ELSE 'DROP ROUTINE IF EXISTS %s CASCADE' END, p.oid::regprocedure)
      FROM pg_proc p
     WHERE p.pronamespace = current_schema()::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
     ORDER BY 1  -- DROP AGGREGATE before DROP ROUTINE: an aggregate uses its step function
LOOP EXECUTE s; END LOOP;
END $feedbot$"""


def _restore_replacing(archive: Path, url: str) -> None:
    """The database made exactly the archive's, in ONE transaction of our own: BEGIN, _DROP_ALL,
    pg_restore's script, and COMMIT only once pg_restore has ended well. An error stops psql,
    and a script cut short (pg_restore failed, or we were killed) reaches no COMMIT: the server
    rolls it all back when psql disconnects. (psql --single-transaction would commit at the
    end of its input, however that came.)"""
    restore, psql = _pg_tool("pg_restore"), _pg_tool("psql")
    args, env = _tool_env([psql, "--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--file=-",
                           f"--dbname={url}"], url)
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        apply = subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err)
        assert apply.stdin is not None
        code = None
        try:
            script = subprocess.Popen([restore, "--clean", "--if-exists", "--no-owner", "--file=-", str(archive)],
                                      stdout=subprocess.PIPE, stderr=restore_err)
            assert script.stdout is not None
            with script.stdout:
                apply.stdin.write(f"BEGIN;\n{_DROP_ALL};\n".encode())
                while chunk := script.stdout.read(CHUNK):
                    apply.stdin.write(chunk)
            code = script.wait()
            if code == 0:
                apply.stdin.write(b"\nCOMMIT;\n")
        except BrokenPipeError:
            pass  # psql stopped at an error: its message is below
        finally:
            with contextlib.suppress(BrokenPipeError):
                apply.stdin.close()
            psql_code = apply.wait()
        if code is not None and code != 0:
            restore_err.seek(0)
            raise _failed("pg_restore (nothing restored)", code, restore_err.read())
        if psql_code != 0:
            psql_err.seek(0)
            raise _failed("the restore (psql; rolled back, nothing changed)", psql_code, psql_err.read())


async def _pg_connect(url: str) -> Any:
    """A connection, or a BackupError that says the server is unreachable (not a traceback)."""
    import asyncpg

    try:
        return await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
        raise BackupError(f"cannot connect to PostgreSQL: {type(exc).__name__}: {exc}") from None


async def _pg_counts(conn: Any) -> tuple[int, dict[str, int]]:
    names = [r[0] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
    counts = {}
    for name in names:
        counts[name] = await conn.fetchval(f'SELECT count(*) FROM "{name}"')
    version = 0
    if "schema_migrations" in counts:
        version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations")
    return int(version), counts


async def backup_pg(url: str, folder: str | Path, now: datetime, *, label: str = "") -> BackupResult:
    """pg_dump (custom format, compressed) of an exported snapshot, counted in that same snapshot:
    the counts in the manifest are exactly what the dump holds, whatever writes go on."""
    dump = _pg_tool("pg_dump")
    folder = Path(folder)
    try:
        _private_folder(folder)
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write the backup there: {exc}") from exc
    name = _free_stem(folder, now, label)
    target = folder / (name + PG_SUFFIX)
    partial = target.with_name(target.name + PARTIAL)
    _remove_stale_partials(folder)
    started = time.perf_counter()
    complete = False
    conn = await _pg_connect(url)
    held: int | None = None
    try:
        held = _private_file(partial)  # pg_dump writes into it, keeping its mode; held (flock) meanwhile
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
            version, counts = await _pg_counts(conn)
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            await asyncio.to_thread(_run_tool, [dump, "--format=custom", "--no-owner", f"--snapshot={snapshot}",
                                                f"--file={partial}", f"--dbname={url}"], url, "pg_dump")
        os.replace(partial, target)
        manifest = Manifest(kind="postgresql", created_at=now.astimezone(timezone.utc).isoformat(),
                            schema_version=version, tables=counts, file=target.name,
                            sha256=await asyncio.to_thread(_hash_file, target), size=target.stat().st_size,
                            database_bytes=int(size), label=label)
        manifest_path = _write_manifest(folder, name, manifest)
        complete = True
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write the backup: {exc}") from exc
    finally:
        await conn.close()
        for leftover in (partial,) + (() if complete else (target,)):  # as in backup_sqlite_sync
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if held is not None:
            os.close(held)
    return BackupResult(target, manifest_path, manifest, time.perf_counter() - started)


def _scratch_url(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def verify_pg(path: Path, url: str) -> Verified:
    """Checksum; pg_restore --list (the archive reads); then a restore into a scratch database
    on the same server, its row counts and schema version against the manifest; dropped after."""
    import asyncpg

    manifest = await asyncio.to_thread(_check_file, path)
    if manifest.kind != "postgresql":
        raise BackupError(f"{path.name}: a {manifest.kind} backup; database.url is PostgreSQL")
    data = manifest_path_for(path).with_name(manifest.file)
    restore = _pg_tool("pg_restore")
    await asyncio.to_thread(_run_tool, [restore, "--list", str(data)], url, "pg_restore --list")
    scratch = f"feedbot_verify_{os.getpid()}_{int(time.time())}"
    admin = await _pg_connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    except asyncpg.PostgresError as exc:
        await admin.close()
        raise BackupError(f"cannot create a scratch database to check the counts ({exc}); "
                          "the checksum and the archive's table of contents are fine") from None
    try:
        scratch_url = _scratch_url(url, scratch)
        await asyncio.to_thread(_run_tool, [restore, "--no-owner", "--exit-on-error", f"--dbname={scratch_url}", str(data)],
                                scratch_url, "pg_restore")
        conn = await _pg_connect(scratch_url)
        try:
            version, counts = await _pg_counts(conn)
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}"')
        await admin.close()
    _compare(data.name, manifest, version, counts)
    return Verified(manifest, data, None)


async def other_sessions(url: str) -> int:
    """Other connections to this database now (a running bot keeps some open)."""
    conn = await _pg_connect(url)
    try:
        return int(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await conn.close()


async def restore_pg(path: Path, url: str, known_version: int, now: datetime, aside_folder: Path) -> tuple[Manifest, Path]:
    """Verify (scratch restore), refuse a newer schema or a database in use, dump the current
    database aside (a backup labelled before-restore), then, in one transaction, drop every table,
    view, sequence and function of the schema and run pg_restore's script (psql)."""
    manifest = await asyncio.to_thread(_check_file, path)
    _restorable(path, manifest, "postgresql", known_version)
    if await other_sessions(url):
        raise BackupError("the database has other connections (a running feedbot?): stop every bot "
                          "instance first, then restore")
    verified = await verify_pg(path, url)
    aside = await backup_pg(url, aside_folder, now, label="before-restore")
    await asyncio.to_thread(_restore_replacing, verified.path, url)
    return manifest, aside.path
