"""Timestamps are stored as fixed-width UTC ISO-8601 text, so string order is time order."""
from __future__ import annotations

from datetime import datetime, timezone

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TEXT = "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"  # _FORMAT's text, from the fields


# Times converted lately: one update stamps its `now` several times, between which it converts
# its received time, its tickets' window, a token's validity... (~11 calls, ~4 distinct times per
# inbound update). Keyed by the UTC datetime only: two datetimes of one zone compare (and hash)
# by their wall time, ignoring fold, so the repeated hour of a DST zone would share a key.
_recent: dict[datetime, str] = {}
_RECENT_MAX = 64


def to_db(at: datetime) -> str:
    utc = at
    if at.tzinfo is not timezone.utc:  # the clock's times are UTC already
        if at.tzinfo is None:
            raise ValueError("naive datetime: the database stores aware UTC times only")
        utc = at.astimezone(timezone.utc)
    text = _recent.get(utc)
    if text is not None:
        return text
    # %-formatting, not strftime(_FORMAT) or isoformat: the same text, ~2x faster than
    # isoformat, which formats through a printf-style parser (hot path: a few per update).
    text = _TEXT % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()
    _recent[utc] = text
    return text


def from_db(value: str | None) -> datetime | None:
    if value is None:
        return None
    if len(value) == 27 and value[-1] == "Z":  # what to_db writes: parsed in C, not by _strptime
        return datetime.fromisoformat(value)
    return datetime.strptime(value, _FORMAT).replace(tzinfo=timezone.utc)
