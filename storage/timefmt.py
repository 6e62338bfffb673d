"""Timestamps are stored as fixed-width UTC ISO-8601 text, so string order is time order."""
from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_db(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: the database stores aware UTC times only")
    return at.astimezone(timezone.utc).strftime(_FORMAT)


def from_db(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc)
