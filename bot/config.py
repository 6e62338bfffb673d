"""One TOML file (config.example.toml documents every key); secrets may come from env vars.

A bad value stops start-up with a ConfigError naming the key, e.g.
"survey.delay: expected a duration like '3h', '90m' or '1h30m', got 'soon'".
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from datetime import date, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.survey_routes import ZnsPolicy
from bot.durations import parse_duration
from bot.feedback_settings import ARRAY_SECTIONS, FeedbackSettings, SettingError, parse_settings
from flows.schedule import SurveyPolicy
from flows.texts import SUPPORTED
from flows.tickets import DEFAULT_KEYWORDS, ComplaintPolicy
from storage.db import open_database
from storage.rollups import RollupRule

if TYPE_CHECKING:
    from bot.services.accounts import AccountPolicy

# Secrets that may come from the environment instead of the file (the env wins).
ENV_SECRETS = {
    ("telegram", "token"): "FEEDBOT_TELEGRAM_TOKEN",
    ("telegram", "webhook_secret"): "FEEDBOT_TELEGRAM_WEBHOOK_SECRET",
    ("http", "api_token"): "FEEDBOT_API_TOKEN",
    ("zalo", "oa_secret_key"): "FEEDBOT_ZALO_OA_SECRET_KEY",
    ("zalo", "app_secret"): "FEEDBOT_ZALO_APP_SECRET",
    ("zalo", "access_token"): "FEEDBOT_ZALO_ACCESS_TOKEN",
    ("zalo", "refresh_token"): "FEEDBOT_ZALO_REFRESH_TOKEN",
    ("web", "customer_token_secret"): "FEEDBOT_WEB_SECRET",
    ("database", "url"): "FEEDBOT_DATABASE_URL",  # it may carry a password
}
CONFIG_ENV = "FEEDBOT_CONFIG"
DEFAULT_CONFIG_FILE = "config.toml"


class ConfigError(ValueError):
    pass


# --- value parsers: each raises ValueError with what it expected ---------------------

def _positive_duration(value: Any) -> timedelta:
    parsed = parse_duration(value)
    if parsed <= timedelta(0):
        raise ValueError(f"expected a duration above zero, got {value!r}")
    return parsed


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _nonempty_str(value: Any) -> str:
    if not _str(value).strip():
        raise ValueError("must not be empty")
    return value


MIN_TOKEN_CHARS = 16
MIN_TOKEN_DISTINCT = 8


def _api_token(value: Any) -> str:
    """Empty (one is generated), or a secret an attacker cannot guess: it is also the agents'
    sign-in. Long enough and not a repeated pattern (`feedbot api-token` makes 32 random ones)."""
    token = _str(value)
    if not token:
        return token
    if token != token.strip() or any(not c.isprintable() or c.isspace() for c in token):
        raise ValueError("must not contain spaces or control characters")
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) < MIN_TOKEN_DISTINCT:
        raise ValueError(f"too weak: use at least {MIN_TOKEN_CHARS} characters with at least {MIN_TOKEN_DISTINCT} "
                         "different ones (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`), "
                         "or leave it empty to have one generated")
    if not token.isascii():
        raise ValueError("use ASCII characters only (HTTP headers carry it)")
    return token


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _int_range(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    return parse


def _positive_number(value: Any) -> float:
    # Not inf or nan (TOML has both): no rate or delay is infinite, and nan compares false.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
        raise ValueError(f"expected a number above zero, got {value!r}")
    return float(value)


def _timezone(value: Any) -> str:
    try:
        if len(_str(value)) > 64:  # a longer name makes the file lookup fail with OSError
            raise ValueError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = value if not isinstance(value, str) or len(value) <= 64 else value[:64] + "..."
        raise ValueError(f"unknown time zone {shown!r} (use an IANA name like 'Asia/Ho_Chi_Minh')") from None
    return value


def _language(value: Any) -> str:
    if value not in SUPPORTED:
        raise ValueError(f"expected one of {', '.join(SUPPORTED)}, got {value!r}")
    return value


def _quiet_hours(value: Any) -> tuple[time, time]:
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", value) if isinstance(value, str) else None
    if match:
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60:
            return time(h1, m1), time(h2, m2)
    raise ValueError(f"expected 'HH:MM-HH:MM' like '21:00-08:00' (equal times: no quiet hours), got {value!r}")


def _url_or_empty(value: Any) -> str:
    text = _str(value).strip()
    if text:
        parsed = urlparse(text)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"expected an http(s) URL, got {value!r}")
    return text.rstrip("/")


def _database_url(value: Any) -> str:
    text = _str(value).strip()
    if text:
        parsed = urlparse(text)
        if parsed.scheme not in ("postgresql", "postgres") or not parsed.netloc:
            raise ValueError("expected a PostgreSQL URL like 'postgresql://feedbot@db.example:5432/feedbot', or empty for SQLite")
    return text


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _touchpoints(value: Any) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and re.fullmatch(r"[a-z0-9_]{1,32}", v) for v in value)
    ):
        raise ValueError(f"expected a non-empty list of names like ['delivery', 'in_store'], got {value!r}")
    return tuple(value)


def _chat_id(value: Any) -> str | None:
    if value in (0, "", None):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a Telegram chat id (a whole number, groups are negative), got {value!r}")
    return str(value)


def _id_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"expected a list of Telegram ids (whole numbers), got {value!r}")
    return tuple(str(v) for v in value)


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and re.fullmatch(r"[a-z0-9_]{1,32}", v) for v in value):
        raise ValueError(f"expected a list of names like ['delivery', 'other'], got {value!r}")
    return tuple(value)


def _dates(value: Any) -> tuple[Any, ...]:
    """Checked in bot/feedback_settings.py (each date named by its index); here only the list."""
    if not isinstance(value, list) or not all(isinstance(v, (str, date)) for v in value):
        raise ValueError(f"expected a list of dates like ['2026-04-30', '09-02'], got {value!r}")
    return tuple(value)


def _keywords(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"expected a list of words, got {value!r}")
    return tuple(v.strip() for v in value)


CHANNELS = ("telegram", "zalo", "web")


def _channel_order(value: Any) -> tuple[str, ...]:
    allowed = ("last_used", *CHANNELS)
    if not isinstance(value, list) or not value or not all(v in allowed for v in value):
        raise ValueError(f"expected a list of {', '.join(allowed)} like ['zalo', 'last_used'], got {value!r}")
    return tuple(value)


_ZNS_FIELDS = ("customer_name", "order_id", "shop", "link", "date", "ticket")
_ZNS_KEYS = ("enabled", "survey_templates", "rating_templates", "params", "resolution_templates", "resolution_params",
             "daily_messages", "daily_budget_vnd", "price_vnd", "night_ban", "api_base_url", "messages_per_second",
             "rating_poll_interval")


def _zns(value: Any) -> ZnsPolicy:
    """The [zalo.zns] table, parsed once: templates per language, parameter names, limits."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a [zalo.zns] table, got {value!r}")
    unknown = sorted(set(value) - set(_ZNS_KEYS))
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key (known: {', '.join(_ZNS_KEYS)})")

    def templates(key: str) -> tuple[tuple[str, str], ...]:
        given = value.get(key, {})
        if not isinstance(given, dict) or not all(
            lang in SUPPORTED and isinstance(t, (str, int)) and not isinstance(t, bool) and re.fullmatch(r"[0-9]{0,20}", str(t))
            for lang, t in given.items()
        ):
            raise ValueError(f"{key}: expected template ids per language like {{ vi = \"123456\", en = \"123457\" }}, got {given!r}")
        return tuple((lang, str(t)) for lang, t in given.items() if str(t))

    def param_names(key: str, default: dict[str, str]) -> tuple[tuple[str, str], ...]:
        params = value.get(key, default)
        if not isinstance(params, dict) or not all(
            k in _ZNS_FIELDS and isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_]{0,64}", v) for k, v in params.items()
        ):
            raise ValueError(f"{key}: expected our fields ({', '.join(_ZNS_FIELDS)}) mapped to the template's parameter"
                             f" names, like {{ order_id = \"order_code\" }}, got {params!r}")
        return tuple(params.items())

    params = param_names("params", {"customer_name": "customer_name", "order_id": "order_code", "shop": "shop_name",
                                    "link": "survey_link"})
    resolution_params = param_names("resolution_params", {"customer_name": "customer_name", "ticket": "ticket_code",
                                                          "shop": "shop_name"})
    try:
        night_start, night_end = _quiet_hours(value.get("night_ban", "22:00-06:00"))
    except ValueError as exc:
        raise ValueError(f"night_ban: {exc}") from None
    checks: list[tuple[str, Callable[[Any], Any], Any]] = [
        ("enabled", _bool, False), ("daily_messages", _int_range(0, 10**9), 0),
        ("daily_budget_vnd", _int_range(0, 10**15), 0), ("price_vnd", _int_range(0, 10**9), 200),
        ("api_base_url", _url_or_empty, "https://business.openapi.zalo.me"),
        ("messages_per_second", _positive_number, 5), ("rating_poll_interval", _positive_duration, "10m"),
    ]
    parsed: dict[str, Any] = {}
    for key, parse, default in checks:
        try:
            parsed[key] = parse(value.get(key, default))
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    policy = ZnsPolicy(
        survey_templates=templates("survey_templates"), rating_templates=templates("rating_templates"),
        params=params, resolution_templates=templates("resolution_templates"), resolution_params=resolution_params,
        night_start=night_start, night_end=night_end, **parsed,
    )
    if policy.enabled and not policy.survey_template("vi"):
        raise ValueError("enabled: ZNS is on but survey_templates names no template (e.g. { vi = \"123456\" })")
    return policy


def _sla_pair(value: Any) -> tuple[timedelta, timedelta]:
    if isinstance(value, str) and value.count("/") == 1:
        first, resolution = (_positive_duration(part.strip()) for part in value.split("/"))
        if first <= resolution:
            return first, resolution
    raise ValueError(f"expected 'first response/resolution' like '2h/48h' (first no longer than resolution), got {value!r}")


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _weekday(value: Any) -> int:
    if not isinstance(value, str) or value.strip().lower() not in WEEKDAYS:
        raise ValueError(f"expected a day of the week like 'monday', got {value!r}")
    return WEEKDAYS.index(value.strip().lower())


def _clock_time(value: Any) -> time:
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*$", value) if isinstance(value, str) else None
    if match and int(match.group(1)) < 24 and int(match.group(2)) < 60:
        return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"expected a time of day 'HH:MM' like '08:00', got {value!r}")


def _percent_points(value: Any) -> float:
    number = _positive_number(value)
    if number > 100:
        raise ValueError(f"expected percentage points above 0 and at most 100, got {value!r}")
    return number


def _supervisor(value: Any) -> str:
    text = _str(value).strip()
    if text and not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", text):
        raise ValueError(f"expected a Telegram @username, got {value!r}")
    return text


def _origins(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        origins = []
        for v in value:
            parsed = urlparse(v.strip())
            if v.strip() != "*" and (parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/")):
                break
            origins.append(v.strip().rstrip("/").lower())
        else:
            return tuple(origins)
    raise ValueError(f"expected a list of origins like ['https://shop.example.com'], got {value!r}")


def _networks(value: Any) -> tuple[Any, ...]:
    """Addresses or networks ("10.0.0.5", "10.0.0.0/8", "::1")."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        try:
            return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in value)
        except ValueError:
            pass
    raise ValueError(f"expected a list of IP addresses or networks like ['127.0.0.1', '10.0.0.0/8'], got {value!r}")


def _seconds_up_to(high: int) -> Callable[[Any], timedelta]:
    def parse(value: Any) -> timedelta:
        parsed = _positive_duration(value)
        if parsed > timedelta(seconds=high):
            raise ValueError(f"expected at most {high} s, got {value!r}")
        return parsed

    return parse


def _seconds_between(low: int, high: int) -> Callable[[Any], timedelta]:
    def parse(value: Any) -> timedelta:
        parsed = _positive_duration(value)
        if not timedelta(seconds=low) <= parsed <= timedelta(seconds=high):
            raise ValueError(f"expected {low} s to {high} s, got {value!r}")
        return parsed

    return parse


def _auto_bool(value: Any) -> bool | None:
    if value == "auto":
        return None
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true, false or 'auto', got {value!r}")


# --- the schema: section -> key -> (parser, default) --------------------------------

SCHEMA: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "shop": {
        "name": (_nonempty_str, "Cửa hàng"),
        "timezone": (_timezone, "Asia/Ho_Chi_Minh"),
        "language": (_language, "vi"),
    },
    "database": {
        "path": (_nonempty_str, "feedbot.db"),
        "url": (_database_url, ""),
    },
    "http": {
        "host": (_nonempty_str, "127.0.0.1"),
        "port": (_int_range(0, 65535), 8080),
        "api_token": (_api_token, ""),
        "max_body_bytes": (_int_range(1024, 10 * 1024 * 1024), 64 * 1024),
        "public_url": (_url_or_empty, ""),
        "header_timeout": (_seconds_up_to(3600), "10s"),
        "body_timeout": (_seconds_up_to(3600), "30s"),
        "keepalive_timeout": (_seconds_up_to(7200), "75s"),
        "max_connections": (_int_range(1, 1_000_000), 1000),
        "max_connections_per_address": (_int_range(0, 1_000_000), 100),
        "trusted_proxies": (_networks, []),
    },
    "telegram": {
        "token": (_str, ""),
        "api_base_url": (_url_or_empty, "https://api.telegram.org"),
        "bot_username": (_str, ""),
        "mode": (_one_of("auto", "polling", "webhook"), "auto"),
        "webhook_secret": (_str, ""),
        "poll_timeout": (_int_range(0, 50), 30),
    },
    "survey": {
        "delay": (parse_duration, "3h"),
        "quiet_hours": (_quiet_hours, "21:00-08:00"),
        "expires_after": (_positive_duration, "72h"),
        "reminder": (_bool, False),
        "reminder_after": (_positive_duration, "24h"),
        "fatigue_days": (_int_range(0, 365), 7),
        "max_lateness": (_positive_duration, "48h"),
        "comment_window": (_positive_duration, "24h"),
        "touchpoints": (_touchpoints, ["delivery", "in_store", "online"]),
        "dispatch_interval": (_positive_duration, "30s"),
        "channel_order": (_channel_order, ["last_used"]),
        # The global limit (issue 21): at most this many questions per customer per fatigue_days,
        # across every program and channel; the most valuable pending one wins.
        "max_per_period": (_int_range(1, 100), 1),
        # The journey's stages in the order a customer lives them: a purchase may name its
        # stage; the digest's journey view shows them side by side.
        "stages": (_names, ["consult", "order", "payment", "delivery", "after_sales"]),
    },
    "holidays": {
        "tet": (_bool, True),
        "tet_days_before": (_int_range(0, 10), 1),
        "tet_days_after": (_int_range(0, 15), 4),
        "dates": (_dates, []),
    },
    "ideas": {
        "topics": (_names, ["product", "price", "service", "delivery", "other"]),
    },
    "agents": {
        "chat_id": (_chat_id, 0),
        "agent_ids": (_id_list, []),
        "supervisor": (_supervisor, ""),
        "owner_chat_ids": (_id_list, []),
        "language": (_language, "vi"),
        "topics": (_bool, True),
    },
    "complaints": {
        "low_score": (_int_range(0, 5), 2),
        "categories": (_names, ["delivery", "product_quality", "staff_attitude", "price_billing", "other"]),
        "severe_categories": (_names, ["product_quality"]),
        "keywords": (_keywords, list(DEFAULT_KEYWORDS)),
        "reopen_window": (_positive_duration, "7d"),
        "max_photos": (_int_range(0, 10), 5),
        "vip_spend_12m": (_int_range(0, 10**15), 10_000_000),
        "vip_orders_12m": (_int_range(1, 100_000), 10),
    },
    "questions": {
        "first_response": (_positive_duration, "4h"),
        "follow_up_window": (_positive_duration, "24h"),
    },
    "sla": {
        "normal": (_sla_pair, "2h/48h"),
        "high": (_sla_pair, "30m/24h"),
        "urgent": (_sla_pair, "15m/8h"),
        "watchdog_interval": (_positive_duration, "1m"),
    },
    "digest": {
        "enabled": (_bool, True),
        "weekday": (_weekday, "monday"),
        "time": (_clock_time, "08:00"),
        "language": (_language, "vi"),
        "english_owner_chat_ids": (_id_list, []),
        "weeks_in_chart": (_int_range(4, 52), 12),
        "alert_drop": (_percent_points, 15),
        "alert_min_answers": (_int_range(1, 100_000), 5),
        "check_interval": (_positive_duration, "10m"),
    },
    "sender": {
        "messages_per_second": (_positive_number, 30),
        "per_chat_interval": (_positive_number, 1.0),
        "group_messages_per_minute": (_positive_number, 20),
        "max_attempts": (_int_range(1, 100), 5),
        "backoff_base": (_positive_number, 1.0),
        "backoff_max": (_positive_number, 300.0),
        "request_timeout": (_positive_number, 15.0),
    },
    "logging": {
        "level": (_one_of("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
    },
    "zalo": {
        "app_id": (_str, ""),
        "oa_secret_key": (_str, ""),
        "app_secret": (_str, ""),
        "access_token": (_str, ""),
        "refresh_token": (_str, ""),
        "api_base_url": (_url_or_empty, "https://openapi.zalo.me"),
        "oauth_base_url": (_url_or_empty, "https://oauth.zaloapp.com"),
        "max_event_age": (_positive_duration, "2h"),
        "buttons": (_bool, False),
        "messages_per_second": (_positive_number, 10),
        "refresh_margin": (_positive_duration, "10m"),
        "refresh_every": (_positive_duration, "20h"),
        "zns": (_zns, {}),
    },
    "accounts": {
        "max_failed_logins": (_int_range(1, 100), 5),
        "lockout": (_positive_duration, "15m"),
        "telegram_login": (_bool, False),
    },
    "agent_page": {
        "enabled": (_bool, True),
        "session_lifetime": (_positive_duration, "12h"),
        "poll_interval": (_positive_duration, "30s"),
        "streams_per_account": (_int_range(1, 50), 4),
    },
    "web": {
        "enabled": (_bool, True),
        "demo": (_auto_bool, "auto"),
        "max_message_chars": (_int_range(1, 4096), 2000),
        "max_frame_bytes": (_int_range(1024, 1024 * 1024), 16 * 1024),
        "messages_per_minute": (_int_range(1, 600), 30),
        "allowed_origins": (_origins, []),
        "customer_token_secret": (_str, ""),
        "max_sockets_per_session": (_int_range(1, 1000), 10),
        "max_sockets_per_address": (_int_range(1, 100_000), 50),
        "new_sessions_per_minute": (_int_range(1, 100_000), 10),
        "new_sessions_per_minute_total": (_int_range(1, 1_000_000), 300),
        "demos_per_minute": (_int_range(1, 10_000), 3),
        "demos_per_minute_total": (_int_range(1, 100_000), 30),
        "anonymous_tickets_per_hour": (_int_range(1, 10_000), 3),
        "anonymous_tickets_per_hour_total": (_int_range(1, 100_000), 60),
        "max_upload_bytes": (_int_range(1024, 20 * 1024 * 1024), 5 * 1024 * 1024),
        "uploads_per_minute": (_int_range(1, 600), 5),
        "uploads_per_minute_per_address": (_int_range(1, 100_000), 20),
        "uploads_per_minute_total": (_int_range(1, 1_000_000), 120),
    },
    "orders": {
        "kiotviet_token_url": (_url_or_empty, "https://id.kiotviet.vn/connect/token"),
        "kiotviet_api_url": (_url_or_empty, "https://public.kiotapi.com"),
    },
    "backup": {
        "enabled": (_bool, True),
        "interval": (_positive_duration, "24h"),
        "folder": (_str, ""),
        "keep_daily": (_int_range(1, 3650), 7),
        "keep_weekly": (_int_range(0, 520), 4),
        "retention_days": (_int_range(1, 36500), 35),
        "post_command": (_str, ""),
        "post_command_timeout": (_positive_duration, "10m"),
        "before_migrations": (_bool, True),
    },
    "cluster": {
        "lease": (_seconds_between(1, 300), "10s"),
        "instance_name": (_str, ""),
    },
    "privacy": {
        "retention_days": (_int_range(1, 36500), 365),
        "purge_interval": (_positive_duration, "1h"),
        "start_token_days": (_int_range(1, 3650), 30),
        "trust_first_token_chat": (_bool, False),
    },
    "webhooks": {
        "enabled": (_bool, True),
        "timeout": (_seconds_up_to(120), "15s"),
        "concurrency": (_int_range(1, 256), 16),
        "poll_interval": (_seconds_up_to(3600), "2s"),
        "rotation_overlap": (_positive_duration, "24h"),
    },
}


# --- typed sections: one frozen dataclass per SCHEMA section, its fields named as its keys ---
# Built from SCHEMA's parsed values (`Section.of`); SCHEMA stays the one table of parsers and
# defaults. A key added to SCHEMA gets its field here too (tests/test_config.py checks both
# agree), and code reads it as `config.<section>.<key>`.

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Section:
    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Any:
        """The section from its parsed values (tests/test_config.py checks the class has a
        field for every key SCHEMA has)."""
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ShopSection(Section):
    name: str
    timezone: str
    language: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class DatabaseSection(Section):
    path: str
    url: str  # PostgreSQL when set, else SQLite at `path`

    def open(self) -> Any:
        """The configured storage backend (not yet open)."""
        return open_database(self.path, self.url or None)

    def describe(self) -> str:
        """Where the data is, for messages (never the URL: it may carry a password)."""
        return "PostgreSQL" if self.url else self.path


@dataclass(frozen=True)
class HttpSection(Section):
    host: str
    port: int
    api_token: str
    max_body_bytes: int
    public_url: str
    header_timeout: timedelta
    body_timeout: timedelta
    keepalive_timeout: timedelta
    max_connections: int
    max_connections_per_address: int
    trusted_proxies: tuple[Network, ...]


@dataclass(frozen=True)
class TelegramSection(Section):
    token: str
    api_base_url: str
    bot_username: str
    mode: str  # auto, polling, webhook
    webhook_secret: str
    poll_timeout: int


@dataclass(frozen=True)
class SurveySection(Section):
    delay: timedelta
    quiet_hours: tuple[time, time]
    expires_after: timedelta
    reminder: bool
    reminder_after: timedelta
    fatigue_days: int
    max_lateness: timedelta
    comment_window: timedelta
    touchpoints: tuple[str, ...]
    dispatch_interval: timedelta
    channel_order: tuple[str, ...]
    max_per_period: int  # the global limit: questions per customer per fatigue_days, every program and channel
    stages: tuple[str, ...]  # the journey's stages in order (a purchase's "stage")


@dataclass(frozen=True)
class HolidaysSection(Section):
    tet: bool
    tet_days_before: int
    tet_days_after: int
    dates: tuple[Any, ...]  # checked by bot/feedback_settings.py


@dataclass(frozen=True)
class IdeasSection(Section):
    topics: tuple[str, ...]


@dataclass(frozen=True)
class AgentsSection(Section):
    chat_id: str | None  # the agents' group, None: none
    agent_ids: tuple[str, ...]
    supervisor: str
    owner_chat_ids: tuple[str, ...]
    language: str
    topics: bool


@dataclass(frozen=True)
class ComplaintsSection(Section):
    low_score: int
    categories: tuple[str, ...]
    severe_categories: tuple[str, ...]
    keywords: tuple[str, ...]
    reopen_window: timedelta
    max_photos: int
    vip_spend_12m: int
    vip_orders_12m: int


@dataclass(frozen=True)
class QuestionsSection(Section):
    first_response: timedelta
    follow_up_window: timedelta


@dataclass(frozen=True)
class SlaSection(Section):
    normal: tuple[timedelta, timedelta]  # first response, resolution
    high: tuple[timedelta, timedelta]
    urgent: tuple[timedelta, timedelta]
    watchdog_interval: timedelta


@dataclass(frozen=True)
class DigestSection(Section):
    enabled: bool
    weekday: int  # 0 = Monday
    time: time
    language: str
    english_owner_chat_ids: tuple[str, ...]
    weeks_in_chart: int
    alert_drop: float
    alert_min_answers: int
    check_interval: timedelta


@dataclass(frozen=True)
class SenderSection(Section):
    messages_per_second: float
    per_chat_interval: float
    group_messages_per_minute: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    request_timeout: float


@dataclass(frozen=True)
class LoggingSection(Section):
    level: str


@dataclass(frozen=True)
class ZaloSection(Section):
    app_id: str
    oa_secret_key: str
    app_secret: str
    access_token: str
    refresh_token: str
    api_base_url: str
    oauth_base_url: str
    max_event_age: timedelta
    buttons: bool
    messages_per_second: float
    refresh_margin: timedelta
    refresh_every: timedelta
    zns: ZnsPolicy  # [zalo.zns]; Config.zns_policy() adds the shop's time zone


@dataclass(frozen=True)
class AccountsSection(Section):
    max_failed_logins: int
    lockout: timedelta
    telegram_login: bool  # "Log in with Telegram" on the sign-in page (needs telegram.token)


@dataclass(frozen=True)
class AgentPageSection(Section):
    enabled: bool
    session_lifetime: timedelta
    poll_interval: timedelta
    streams_per_account: int


@dataclass(frozen=True)
class WebSection(Section):
    enabled: bool
    demo: bool | None  # None: 'auto'
    max_message_chars: int
    max_frame_bytes: int
    messages_per_minute: int
    allowed_origins: tuple[str, ...]
    customer_token_secret: str
    max_sockets_per_session: int
    max_sockets_per_address: int
    new_sessions_per_minute: int
    new_sessions_per_minute_total: int
    demos_per_minute: int
    demos_per_minute_total: int
    anonymous_tickets_per_hour: int
    anonymous_tickets_per_hour_total: int
    max_upload_bytes: int
    uploads_per_minute: int
    uploads_per_minute_per_address: int
    uploads_per_minute_total: int


@dataclass(frozen=True)
class BackupSection(Section):
    enabled: bool
    interval: timedelta
    folder: str  # "" = `backups` next to database.path
    keep_daily: int
    keep_weekly: int
    retention_days: int
    post_command: str
    post_command_timeout: timedelta
    before_migrations: bool


@dataclass(frozen=True)
class ClusterSection(Section):
    lease: timedelta  # the leader's lease and an outbox claim's (PostgreSQL; bot/cluster.py)
    instance_name: str  # empty: host-pid-random


@dataclass(frozen=True)
class PrivacySection(Section):
    retention_days: int
    purge_interval: timedelta
    start_token_days: int
    trust_first_token_chat: bool


@dataclass(frozen=True)
class OrdersSection(Section):
    kiotviet_token_url: str
    kiotviet_api_url: str


@dataclass(frozen=True)
class WebhooksSection(Section):
    enabled: bool
    timeout: timedelta
    concurrency: int
    poll_interval: timedelta
    rotation_overlap: timedelta


@dataclass(frozen=True)
class Config:
    """The parsed config: one typed section per SCHEMA section (`config.survey.delay`)."""

    shop: ShopSection
    database: DatabaseSection
    http: HttpSection
    telegram: TelegramSection
    survey: SurveySection
    holidays: HolidaysSection
    ideas: IdeasSection
    agents: AgentsSection
    complaints: ComplaintsSection
    questions: QuestionsSection
    sla: SlaSection
    digest: DigestSection
    sender: SenderSection
    logging: LoggingSection
    zalo: ZaloSection
    accounts: AccountsSection
    agent_page: AgentPageSection
    web: WebSection
    orders: OrdersSection
    backup: BackupSection
    cluster: ClusterSection
    privacy: PrivacySection
    webhooks: WebhooksSection
    values: Mapping[str, Mapping[str, Any]]  # every parsed value by section and key
    source: str = "embedded defaults"
    sources: tuple[Any, ...] = ()  # [[sources]]: bot.sources.settings.SourceSettings, one per sales system
    feedback: FeedbackSettings = field(default_factory=FeedbackSettings)  # programs, holidays, ideas, routing, wording

    @classmethod
    def from_values(cls, values: Mapping[str, Mapping[str, Any]], source: str, sources: tuple[Any, ...] = ()) -> "Config":
        names = [f.name for f in fields(cls) if f.name not in ("values", "source", "sources", "feedback")]
        return cls(**{name: SECTION_TYPES[name].of(values[name]) for name in names}, values=values, source=source,
                   sources=sources)

    def secrets(self) -> list[str]:
        """Every value that may be a secret (ENV_SECRETS, the order sources' keys), to keep them out of logs."""
        sources = [value for s in self.sources for value in (s.secret, s.verify_token, s.client_secret) if value]
        return [self.values[section][key] for section, key in ENV_SECRETS] + sources

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram.token)

    @property
    def telegram_webhook(self) -> bool:
        mode = self.telegram.mode
        if mode == "auto":
            return bool(self.http.public_url)
        return mode == "webhook"

    @property
    def zalo_enabled(self) -> bool:
        return bool(self.zalo.app_id)

    @property
    def web_demo(self) -> bool:
        """Demo mode of the web chat: on by default only in the first-run setup (no Telegram
        token and no Zalo app): a shop that serves real customers gets no anonymous demo button."""
        demo = self.web.demo
        first_run = not self.telegram_enabled and not self.zalo_enabled
        return self.web.enabled and (first_run if demo is None else demo)

    @property
    def tz(self) -> ZoneInfo:
        return self.shop.tz

    def local_url(self) -> str:
        """This server's address as configured: http.public_url, else http://host:port."""
        return self.http.public_url or f"http://{self.http.host}:{self.http.port}"

    def survey_policy(self) -> SurveyPolicy:
        s = self.survey
        quiet_start, quiet_end = s.quiet_hours
        return SurveyPolicy(
            timezone=self.tz,
            delay=s.delay,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
            expires_after=s.expires_after,
            reminder_after=s.reminder_after if s.reminder else None,
            fatigue=timedelta(days=s.fatigue_days),
            max_lateness=s.max_lateness,
            comment_window=s.comment_window,
            blackouts=self.feedback.blackouts,
        )

    def account_policy(self) -> AccountPolicy:
        """The accounts' sign-in rules, read here only ([accounts], agent_page.session_lifetime)."""
        from bot.services.accounts import AccountPolicy

        a = self.accounts
        return AccountPolicy(max_failed_logins=a.max_failed_logins, lockout=a.lockout,
                             session_lifetime=self.agent_page.session_lifetime)

    def rollup_rule(self) -> RollupRule:
        """What the CSAT rollups' day and tier mean: shop time, the complaints' VIP rule."""
        c = self.complaints
        return RollupRule(tz=self.tz, vip_spend=Decimal(c.vip_spend_12m), vip_orders=c.vip_orders_12m)

    def zns_policy(self) -> ZnsPolicy:
        """[zalo.zns] with the shop's time zone (its night ban and quota day); off without Zalo."""
        policy = self.zalo.zns
        return replace(policy, timezone=self.tz, enabled=policy.enabled and self.zalo_enabled)

    def complaint_policy(self) -> ComplaintPolicy:
        c = self.complaints
        return ComplaintPolicy(
            low_score=c.low_score,
            categories=c.categories,
            severe_categories=c.severe_categories,
            keywords=c.keywords,
            reopen_window=c.reopen_window,
            max_photos=c.max_photos,
            vip_spend_12m=Decimal(c.vip_spend_12m),
            vip_orders_12m=c.vip_orders_12m,
            sla={"normal": self.sla.normal, "high": self.sla.high, "urgent": self.sla.urgent},
            question_first_response=self.questions.first_response,
            question_window=self.questions.follow_up_window,
        )


# Each section's class, by its SCHEMA name.
SECTION_TYPES: dict[str, type[Section]] = {
    "shop": ShopSection, "database": DatabaseSection, "http": HttpSection, "telegram": TelegramSection,
    "survey": SurveySection, "holidays": HolidaysSection, "ideas": IdeasSection, "agents": AgentsSection, "complaints": ComplaintsSection,
    "questions": QuestionsSection, "sla": SlaSection, "digest": DigestSection, "sender": SenderSection,
    "logging": LoggingSection, "zalo": ZaloSection, "accounts": AccountsSection, "agent_page": AgentPageSection, "web": WebSection,
    "orders": OrdersSection, "backup": BackupSection, "cluster": ClusterSection, "privacy": PrivacySection,
    "webhooks": WebhooksSection,
}


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str], source: str = "<memory>") -> Config:
    from bot.sources.settings import SourceError, parse_sources  # (it imports the platform modules)

    raw = dict(raw)
    try:
        sources = parse_sources(raw.pop("sources", []))
    except SourceError as exc:
        raise ConfigError(str(exc)) from None
    unknown_sections = set(raw) - set(SCHEMA) - set(ARRAY_SECTIONS)
    if unknown_sections:
        raise ConfigError(f"{sorted(unknown_sections)[0]}: unknown section (known: {', '.join(SCHEMA)}, sources)")
    values: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if isinstance(given, list) and section not in ARRAY_SECTIONS:
            raise ConfigError(f"{section}: expected a [{section}] table, not [[{section}]]")
        if not isinstance(given, dict):
            raise ConfigError(f"{section}: expected a [{section}] table")
        unknown = set(given) - set(keys)
        if unknown:
            raise ConfigError(f"{section}.{sorted(unknown)[0]}: unknown key (known: {', '.join(keys)})")
        values[section] = {}
        for key, (parse, default) in keys.items():
            value = given.get(key, default)
            env_name = ENV_SECRETS.get((section, key))
            if env_name and env.get(env_name):
                value = env[env_name]
            try:
                values[section][key] = parse(value)
            except ValueError as exc:
                origin = f" (from ${env_name})" if env_name and env.get(env_name) else ""
                raise ConfigError(f"{section}.{key}{origin}: {exc}") from None
    config = Config.from_values(values, source, sources)
    _check_consistency(config)
    try:
        feedback = parse_settings(raw, config)
    except SettingError as exc:
        raise ConfigError(str(exc)) from None
    return replace(config, feedback=feedback)


def _check_consistency(config: Config) -> None:
    tg = config.telegram
    if tg.token:
        _check_bot_token(tg.token)
    if re.search(r"/bot(\d+:[^/]*)?$", tg.api_base_url, re.IGNORECASE):
        raise ConfigError(f"telegram.api_base_url: give the server's address without the /bot suffix"
                          f" (the bot adds /bot<token>/ itself), like {API_BASE_URL_EXAMPLE!r}")
    if tg.mode == "webhook" and not config.http.public_url:
        raise ConfigError("http.public_url: telegram.mode = 'webhook' needs the public https URL of this server")
    if tg.bot_username and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", tg.bot_username.lstrip("@")):
        raise ConfigError(f"telegram.bot_username: not a Telegram username: {tg.bot_username!r}")
    if config.accounts.telegram_login and not tg.token:
        raise ConfigError("accounts.telegram_login: \"Log in with Telegram\" checks the sign-in with the bot's token:"
                          " set telegram.token, or turn telegram_login off")
    unknown = set(config.complaints.severe_categories) - set(config.complaints.categories)
    if unknown:
        raise ConfigError(f"complaints.severe_categories: {sorted(unknown)[0]!r} is not in complaints.categories")
    if config.agents.chat_id is not None and not config.agents.chat_id.startswith("-"):
        raise ConfigError("agents.chat_id: the agents' chat must be a group (its id is negative, e.g. -1001234567890)")
    english = set(config.digest.english_owner_chat_ids) - set(config.agents.owner_chat_ids)
    if english:
        raise ConfigError(f"digest.english_owner_chat_ids: {sorted(english)[0]} is not in agents.owner_chat_ids")
    zalo = config.zalo
    if zalo.app_id:
        if not zalo.oa_secret_key:
            raise ConfigError("zalo.oa_secret_key: required when zalo.app_id is set (or $FEEDBOT_ZALO_OA_SECRET_KEY)")
        if not (zalo.access_token or zalo.refresh_token):
            raise ConfigError("zalo.access_token: zalo.app_id is set but no access or refresh token is given"
                              " (or $FEEDBOT_ZALO_ACCESS_TOKEN / $FEEDBOT_ZALO_REFRESH_TOKEN)")
    if tg.webhook_secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", tg.webhook_secret):
        raise ConfigError("telegram.webhook_secret: 1-256 characters of A-Z, a-z, 0-9, _ and - only")


API_BASE_URL_EXAMPLE = "https://api.telegram.org"
BOT_TOKEN_EXAMPLE = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"  # the form @BotFather gives


def _check_bot_token(token: str) -> None:
    """Say what is wrong with a token (never echoing it): the id, the colon or the secret part."""
    bot_id, colon, secret = token.partition(":")
    problem = None
    if not colon:
        problem = "it has no ':'"
    elif not bot_id.isascii() or not bot_id.isdigit():
        problem = "the part before ':' must be the bot's numeric id"
    elif not re.fullmatch(r"[A-Za-z0-9_-]*", secret):
        problem = "the part after ':' may only hold letters, digits, '_' and '-' (spaces or quotes copied with it?)"
    elif len(secret) < 20:
        problem = f"the part after ':' has {len(secret)} characters, a real token has about 35"
    if problem:
        raise ConfigError(f"telegram.token: not a bot token from @BotFather: {problem}"
                          f" (a token looks like '{BOT_TOKEN_EXAMPLE}')")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file: the given path, else $FEEDBOT_CONFIG, else ./config.toml if it
    exists, else the embedded defaults."""
    env = os.environ if env is None else env
    chosen = path or env.get(CONFIG_ENV) or None
    if chosen is None and Path(DEFAULT_CONFIG_FILE).is_file():
        chosen = DEFAULT_CONFIG_FILE
    if chosen is None:
        return parse_config({}, env, "embedded defaults")
    file = Path(chosen)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except RecursionError:
        raise ConfigError(f"{file}: not valid TOML: nested too deeply") from None
    except OSError as exc:  # a directory, no permission to read it, ...
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror or exc}") from None
    return parse_config(raw, env, str(file))
