"""Backups as a service: the [backup] settings, the scheduled job (backup, post command,
retention, one alert to the owners per failing streak), the pre-migration backup, the state
that `feedbot check-config` and /healthz show. The files themselves: storage/backup.py."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Awaitable, Callable

from bot.clock import Clock
from bot.config import Config
from bot.durations import format_duration
from flows.backups import to_keep
from storage import backup as files
from storage.backup import BackupError, BackupResult

log = logging.getLogger(__name__)

STATUS_FILE = "last-backup.json"  # in the backup folder: what the last scheduled run did
FIRST_RUN_DELAY = timedelta(minutes=1)  # not in the middle of start-up


@dataclass(frozen=True)
class BackupSettings:
    """The [backup] section, read here only, with where the database is."""

    enabled: bool
    interval: timedelta
    folder: Path
    keep_daily: int
    keep_weekly: int
    retention: timedelta
    post_command: str
    post_command_timeout: float
    before_migrations: bool
    database_path: Path
    database_url: str
    tz: tzinfo

    @classmethod
    def from_config(cls, config: Config) -> "BackupSettings":
        b = config.backup
        path = Path(config.database.path)
        url = config.database.url
        folder = Path(b.folder) if b.folder else (Path("backups") if url else path.parent / "backups")
        return cls(enabled=b.enabled, interval=b.interval, folder=folder, keep_daily=b.keep_daily,
                   keep_weekly=b.keep_weekly, retention=timedelta(days=b.retention_days),
                   post_command=b.post_command, post_command_timeout=b.post_command_timeout.total_seconds(),
                   before_migrations=b.before_migrations, database_path=path, database_url=url, tz=config.tz)


class Backups:
    """alert: how the owners are told (a text; None: nobody to tell)."""

    def __init__(self, settings: BackupSettings, clock: Clock,
                 alert: Callable[[str, str], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.alert = alert

    # --- taking one ---------------------------------------------------------

    async def take(self, folder: Path | None = None, label: str = "") -> BackupResult:
        s = self.settings
        target = folder or s.folder
        if s.database_url:
            return await files.backup_pg(s.database_url, target, self.clock.now(), label=label)
        return await files.backup_sqlite(s.database_path, target, self.clock.now(), label=label)

    async def before_migrating(self, db: Any) -> BackupResult | None:
        """A backup labelled pre-migration-NNNN when migrations are pending on a database that
        has been migrated before (a fresh one has nothing to lose); raises BackupError."""
        if not self.settings.before_migrations:
            return None
        pending = await db.pending_migrations()
        if not pending or not await db.applied_versions():
            return None
        result = await self.take(label="pre-migration-" + pending[0][:4])
        log.warning("new migrations to apply (%s): backup taken first: %s", ", ".join(pending), result.path)
        return result

    # --- the scheduled job -----------------------------------------------------

    def first_run(self, now: datetime) -> datetime:
        """The newest backup's time + the interval, not sooner than a minute from now (the
        scheduler's time: the real one)."""
        backups = files.list_backups(self.settings.folder)
        due = backups[-1].taken_at + self.settings.interval if backups else now
        return max(due, now + FIRST_RUN_DELAY)

    async def run(self) -> bool:
        """One scheduled backup: take it, run the post command, prune; True when all went well.
        A failure is logged, kept in the status file, and told to the owners once per streak."""
        try:
            result = await self.take()
            await self._post_command(result)
        except (BackupError, OSError) as exc:
            await self._failed(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a job that raises is only logged by APScheduler
            log.exception("backup failed")
            await self._failed(f"{type(exc).__name__}: {exc}")
            return False
        removed = self.prune()
        self._write_status({"ok": True, "at": self.clock.now().isoformat(), "file": result.path.name,
                            "bytes": result.manifest.size, "seconds": round(result.seconds, 3), "alerted": False})
        log.info("backup taken: %s (%d bytes, %.1f s)%s", result.path, result.manifest.size, result.seconds,
                 f"; {len(removed)} older removed" if removed else "")
        return True

    async def _post_command(self, result: BackupResult) -> None:
        command = self.settings.post_command
        if not command:
            return
        env = {**os.environ, "FEEDBOT_BACKUP_FILE": str(result.path.resolve()),
               "FEEDBOT_BACKUP_MANIFEST": str(result.manifest_path.resolve()),
               "FEEDBOT_BACKUP_FOLDER": str(result.path.parent.resolve())}
        process = await asyncio.create_subprocess_shell(
            command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        try:
            _, err = await asyncio.wait_for(process.communicate(), self.settings.post_command_timeout)
        except asyncio.TimeoutError:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # the shell and what it started
            except ProcessLookupError:
                pass
            await process.wait()
            raise BackupError(f"backup.post_command ran past {self.settings.post_command_timeout:.0f} s and was "
                              f"stopped (the backup itself is {result.path.name})") from None
        if process.returncode != 0:
            tail = err.decode("utf-8", "replace").strip().splitlines()[-2:]
            raise BackupError(f"backup.post_command exited with status {process.returncode}"
                              + (f": {' / '.join(tail)}" if tail else "")
                              + f" (the backup itself is {result.path.name})")

    async def _failed(self, error: str) -> None:
        log.error("backup failed: %s", error)
        previous = self.status()
        alerted = bool(previous and not previous.get("ok") and previous.get("alerted"))
        status = {"ok": False, "at": self.clock.now().isoformat(), "error": error[:500], "alerted": alerted}
        if not alerted and self.alert is not None:
            newest = files.list_backups(self.settings.folder)
            last = newest[-1].taken_at.astimezone(self.settings.tz).strftime("%Y-%m-%d %H:%M") if newest else "—"
            try:
                await self.alert(error[:200], last)
                status["alerted"] = True
            except Exception as exc:  # noqa: BLE001 - the database may be what fails
                log.error("backup failed and the owners could not be told: %s", exc)
        self._write_status(status)

    # --- retention ------------------------------------------------------------

    def prune(self) -> list[Path]:
        """Delete the backups the keep policy does not keep; returns their paths."""
        s = self.settings
        backups = files.list_backups(s.folder)
        keep = to_keep([b.taken_at for b in backups], self.clock.now(), daily=s.keep_daily, weekly=s.keep_weekly,
                       max_age=s.retention, tz=s.tz)
        removed = [b for b in backups if b.taken_at not in keep]
        for b in removed:
            files.remove_backup(b)
        return [b.path for b in removed]

    def purge_old(self) -> list[Path]:
        """Delete the backups older than backup.retention_days (the privacy bound), whatever
        their kind (pre-migration ones too)."""
        now = self.clock.now()
        removed = [b for b in files.list_backups(self.settings.folder) if now - b.taken_at > self.settings.retention]
        for b in removed:
            files.remove_backup(b)
        return [b.path for b in removed]

    def held_until(self) -> datetime:
        """When the last backup taken now will be gone: erased data is out of every backup then."""
        return self.clock.now() + self.settings.retention

    # --- state ------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.settings.folder / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write_status(self, status: dict[str, Any]) -> None:
        target = self.settings.folder / STATUS_FILE
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            partial.write_text(json.dumps(status), encoding="utf-8")
            os.replace(partial, target)
        except OSError as exc:
            log.error("cannot write %s: %s", target, exc)

    def health(self) -> dict[str, str]:
        """For /healthz: "off", "ok", "failed" (not "down": a failing backup is no reason to
        restart the bot), or "pending" before the first scheduled run."""
        if not self.settings.enabled:
            return {"status": "off"}
        status = self.status()
        if status is None:
            return {"status": "pending"}
        if status.get("ok"):
            return {"status": "ok", "last": str(status.get("at", "")), "file": str(status.get("file", ""))}
        return {"status": "failed", "since": str(status.get("at", "")), "error": str(status.get("error", ""))}

    def describe(self) -> list[str]:
        """For `feedbot check-config`."""
        s = self.settings
        lines = []
        if s.enabled:
            weekly = f" + {s.keep_weekly} weekly" if s.keep_weekly else ""
            lines.append(f"  backups: every {_duration(s.interval)} into {s.folder}, keeping {s.keep_daily} daily{weekly},"
                         f" none older than {s.retention.days} days"
                         + (", then backup.post_command" if s.post_command else ""))
        else:
            lines.append(f"  backups: scheduled backups off (backup.enabled); `feedbot db backup` into {s.folder}")
        status = self.status()
        if status is not None and status.get("ok"):
            lines.append(f"  last backup: ok at {status.get('at')} ({status.get('file')})")
        elif status is not None:
            lines.append(f"  last backup: FAILED at {status.get('at')}: {status.get('error')}")
        backups = files.list_backups(s.folder)
        if backups:
            lines.append(f"  backups kept: {len(backups)}, newest {backups[-1].path.name}")
        return lines


def _duration(value: timedelta) -> str:
    return format_duration(value)

