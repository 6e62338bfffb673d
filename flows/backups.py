"""Which backups to keep: the newest of each of the last `daily` days, then the newest of each of
the `weekly` ISO weeks before those days, and none older than `max_age` (the privacy bound)."""
from __future__ import annotations

from datetime import datetime, timedelta, tzinfo


def to_keep(taken: list[datetime], now: datetime, *, daily: int, weekly: int, max_age: timedelta,
            tz: tzinfo) -> set[datetime]:
    """The times (from `taken`) of the backups to keep; every other one is deleted.

    Days and weeks are the shop's (tz). With backups every day for long enough, exactly
    daily + weekly are kept, as long as max_age reaches back that far."""
    fresh = sorted((t for t in taken if now - t <= max_age), reverse=True)
    keep: set[datetime] = set()
    days: list = []
    for t in fresh:
        day = t.astimezone(tz).date()
        if day in days:
            continue
        if len(days) >= daily:
            break
        days.append(day)
        keep.add(t)
    oldest_day = days[-1] if len(days) >= daily and days else None
    weeks: list = []
    for t in fresh:
        local = t.astimezone(tz)
        if oldest_day is None or local.date() >= oldest_day:
            continue  # within the daily copies' days
        week = local.isocalendar()[:2]
        if week in weeks:
            continue
        if len(weeks) >= weekly:
            break
        weeks.append(week)
        keep.add(t)
    return keep
