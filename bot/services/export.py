"""`feedbot export`: surveys, tickets or messages of a date range as CSV or JSON Lines,
streamed batch by batch (memory stays flat however big the range) with progress on stderr."""
from __future__ import annotations

import csv
import json
import sys
from contextlib import aclosing
from datetime import datetime, tzinfo
from typing import Callable, TextIO

from storage import exports
from storage.db import Database
from storage.timefmt import from_db

BATCH = 2000


def _is_time(column: str) -> bool:
    return column == "at" or column.endswith("_at")


def _localiser(columns: tuple[str, ...], tz: tzinfo) -> Callable[[tuple], list]:
    """Stored UTC text -> ISO 8601 in shop time (what a spreadsheet user expects)."""
    times = [i for i, c in enumerate(columns) if _is_time(c)]

    def convert(row: tuple) -> list:
        values = list(row)
        for i in times:
            if values[i] is not None:
                values[i] = from_db(values[i]).astimezone(tz).isoformat()  # type: ignore[union-attr]
        return values

    return convert


class Progress:
    """A progress bar on a terminal, a line per 10% otherwise (logs); silent for small exports."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, min_total: int = 1000) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.enabled = total >= min_total
        self.tty = stream.isatty()
        self._last_step = -1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        pct = 100 * done // self.total if self.total else 100
        if self.tty:
            bar = "#" * (pct // 4) + "." * (25 - pct // 4)
            self.stream.write(f"\r{self.label} [{bar}] {pct:3d}% {done:,}/{self.total:,} rows")
            if done >= self.total:
                self.stream.write("\n")
        elif pct // 10 > self._last_step:
            self._last_step = pct // 10
            self.stream.write(f"{self.label}: {pct}% ({done:,}/{self.total:,} rows)\n")
        self.stream.flush()


async def export(
    db: Database,
    kind: str,
    fmt: str,
    start: datetime,
    end: datetime,
    out: TextIO,
    tz: tzinfo,
    progress_stream: TextIO = sys.stderr,
) -> int:
    """Write the rows created in [start, end); returns how many."""
    columns = exports.COLUMNS[kind]
    convert = _localiser(columns, tz)
    progress = Progress(f"exporting {kind}", await exports.count(db.reader, kind, start, end), progress_stream)
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    written = 0
    # aclosing: if writing fails (a closed pipe), the cursor is closed before the database.
    async with aclosing(exports.rows(db.reader, kind, start, end, BATCH)) as batches:
        async for batch in batches:
            for row in batch:
                values = convert(row)
                if writer is not None:
                    writer.writerow(values)
                else:
                    out.write(json.dumps(dict(zip(columns, values)), ensure_ascii=False) + "\n")
            written += len(batch)
            progress.update(written)
    progress.total = max(progress.total, written)
    progress.update(written)
    return written
