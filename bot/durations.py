"""The config's one duration syntax ('3h', '90m', '1h30m', '7d'): read and written back.
Its own module so that every part of the config (bot/config.py, bot/feedback_settings.py)
reads durations the same way without importing each other."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


MAX_DURATION = timedelta(days=3650)  # longer: a typo (and times this far ahead overflow)


def parse_duration(value: Any) -> timedelta:
    if isinstance(value, str) and value.strip() and len(value) <= 40:
        match = _DURATION.match(value)
        if match and any(match.groups()):
            d, h, m, s = (int(g or 0) for g in match.groups())
            # Compared before timedelta() is built: it overflows past ~2.7 million years.
            if d * 86400 + h * 3600 + m * 60 + s > MAX_DURATION.total_seconds():
                raise ValueError(f"longer than {MAX_DURATION.days} days: {value!r}")
            return timedelta(days=d, hours=h, minutes=m, seconds=s)
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
    raise ValueError(f"expected a duration like '3h', '90m' or '1h30m', got {shown!r}")


def format_duration(value: timedelta) -> str:
    """A duration the way the config writes it: '3h', '1h30m', '72h', '7d' (the inverse of
    parse_duration; days from a week up, as config.example.toml writes its defaults)."""
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400) if seconds >= 7 * 86400 else (0, seconds)
    parts = [(days, "d"), (rest // 3600, "h"), (rest % 3600 // 60, "m"), (rest % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0m"
