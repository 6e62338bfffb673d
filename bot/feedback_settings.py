"""The one reader of the issue-21 config: [[programs]], [holidays], [ideas], [[departments]],
[[stores]], [[wording]] and survey.max_per_period, turned into one typed FeedbackSettings.
Every other module gets its part from here (config.feedback()), never from the raw values."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Mapping

from bot.durations import parse_duration
from flows.holidays import Blackouts
from flows.programs import CHOICE_KINDS, DEFAULT_PRIORITY, KINDS, TRIGGERS, Audience, ProgramSpec, Trigger
from flows.routing import Department, Routes, StoreManager
from flows.texts import SUPPORTED
from flows.wording import KEYS as WORDING_KEYS, Wording, WordingRule

ARRAY_SECTIONS = ("programs", "departments", "stores", "wording")
PROGRAM_TEXT_KEYS = ("question", "follow_up", "follow_up_low", "thanks", "other", "options")
_NAME = re.compile(r"[a-z0-9_]{1,32}")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackSettings:
    programs: tuple[ProgramSpec, ...] = ()
    max_per_period: int = 1  # the global limit: questions per customer per period, all programs and channels
    period: timedelta = timedelta(days=7)  # survey.fatigue_days
    blackouts: Blackouts = field(default_factory=Blackouts)
    idea_topics: tuple[str, ...] = ()
    routes: Routes = field(default_factory=Routes)
    wording: Wording = field(default_factory=Wording)
    # Programs an owner turned off on the dashboard: nothing new is scheduled or sent, but a
    # question already sent is still answered (and expires) with its texts.
    paused: tuple[ProgramSpec, ...] = ()
    # The [[programs]] tables as written and survey.touchpoints: what a dashboard edit is applied
    # over and checked against (with_overrides).
    program_tables: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, repr=False)
    touchpoints: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Programs configured; without any the purchase CSAT is the one program, as before."""
        return bool(self.programs or self.paused)

    def program(self, name: str) -> ProgramSpec | None:
        """A program that runs (configured, not turned off)."""
        return next((p for p in self.programs if p.name == name), None)

    def known_program(self, name: str) -> ProgramSpec | None:
        """A program that runs or is turned off: its questions already sent are still answered."""
        return self.program(name) or next((p for p in self.paused if p.name == name), None)

    def purchase_csat(self, touchpoint: str, store: str | None) -> ProgramSpec | None:
        """The csat program that asks about this purchase (first match), if programs are configured."""
        return next((p for p in self.programs if p.kind == "csat" and p.trigger.kind == "after_purchase"
                     and p.audience.takes_purchase(touchpoint, store)), None)

    def replacing_resolution_rating(self) -> ProgramSpec | None:
        """The ces program asked instead of a resolved complaint's 1-5 rating, if one is set so."""
        return next((p for p in self.programs if p.resolution_rating == "replace"), None)

    def csat_priority(self) -> int:
        found = next((p for p in self.programs if p.kind == "csat" and p.trigger.kind == "after_purchase"), None)
        return found.priority if found else DEFAULT_PRIORITY["csat"]


class SettingError(ValueError):
    """A bad value, with the key it is about (config.py turns it into a ConfigError)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")


def _names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.fullmatch(v) for v in value):
        raise SettingError(key, f"expected a list of names like ['delivery', 'q1'], got {value!r}")
    return tuple(value)


def _stores(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 100 for v in value):
        raise SettingError(key, f"expected a list of store names as the purchases give them, got {value!r}")
    return tuple(value)


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SettingError(key, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _duration(key: str, value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise SettingError(key, str(exc)) from None


def _chat(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise SettingError(key, f"expected a Telegram chat id (a whole number, groups are negative), got {value!r}")
    return str(value)


def _texts(key: str, table: Mapping[str, Any], allowed: tuple[str, ...]) -> tuple[dict, dict]:
    texts: dict[str, dict[str, str]] = {}
    options: dict[str, tuple[str, ...]] = {}
    for lang in SUPPORTED:
        given = table.get(lang, {})
        if not isinstance(given, dict):
            raise SettingError(f"{key}.{lang}", "expected a table of texts")
        unknown = set(given) - set(allowed)
        if unknown:
            raise SettingError(f"{key}.{lang}.{sorted(unknown)[0]}", f"unknown text (known: {', '.join(allowed)})")
        for name, value in given.items():
            if name == "options":
                if not isinstance(value, list) or not value or len(value) > 10 or not all(
                        isinstance(o, str) and 0 < len(o) <= 60 for o in value):
                    raise SettingError(f"{key}.{lang}.options", "expected 1-10 choices, each 1-60 characters")
                options[lang] = tuple(value)
            elif not isinstance(value, str) or not value.strip():
                raise SettingError(f"{key}.{lang}.{name}", "expected a non-empty text")
            else:
                texts.setdefault(lang, {})[name] = value
    return texts, options


PROGRAM_KEYS = ("name", "kind", "trigger", "delay", "days", "every_days", "active_days", "touchpoints", "stores",
                "tiers", "channels", "fatigue_days", "priority", "max_lateness", "expires_after", "resolution_rating",
                *SUPPORTED)
RESOLUTION_RATING = ("follow", "replace")


def parse_program(i: int, raw: Any, touchpoints: tuple[str, ...]) -> ProgramSpec:
    key = f"programs[{i}]"
    if not isinstance(raw, dict):
        raise SettingError(key, "expected a [[programs]] table")
    unknown = set(raw) - set(PROGRAM_KEYS)
    if unknown:
        raise SettingError(f"{key}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(PROGRAM_KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingError(f"{key}.name", f"required, a name like 'nps_quarterly', got {name!r}")
    key = f"programs.{name}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise SettingError(f"{key}.kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    trigger_kind = raw.get("trigger", "complaint_resolved" if kind == "ces" else "on_demand" if kind == "ideas" else "after_purchase")
    if trigger_kind not in TRIGGERS:
        raise SettingError(f"{key}.trigger", f"expected one of {', '.join(TRIGGERS)}, got {trigger_kind!r}")
    days = _int(f"{key}.days", raw.get("days", 14), 1, 3650)
    every = _int(f"{key}.every_days", raw.get("every_days", 90), 1, 3650)
    trigger = Trigger(
        kind=trigger_kind,
        delay=_duration(f"{key}.delay", raw.get("delay", "1h" if trigger_kind == "complaint_resolved" else "3h")),
        days=every if trigger_kind == "every" else days,
        active_days=_int(f"{key}.active_days", raw.get("active_days", 90), 1, 3650),
    )
    audience = Audience(
        touchpoints=_names(f"{key}.touchpoints", raw.get("touchpoints", [])),
        stores=_stores(f"{key}.stores", raw.get("stores", [])),
        tiers=_names(f"{key}.tiers", raw.get("tiers", [])),
        channels=_names(f"{key}.channels", raw.get("channels", [])),
    )
    unknown_tp = set(audience.touchpoints) - set(touchpoints)
    if unknown_tp:
        raise SettingError(f"{key}.touchpoints", f"{sorted(unknown_tp)[0]!r} is not in survey.touchpoints")
    if set(audience.tiers) - {"vip", "regular"}:
        raise SettingError(f"{key}.tiers", "expected 'vip' and/or 'regular'")
    if set(audience.channels) - {"telegram", "zalo", "web"}:
        raise SettingError(f"{key}.channels", "expected some of 'telegram', 'zalo', 'web'")
    resolution_rating = raw.get("resolution_rating", "follow")
    if resolution_rating not in RESOLUTION_RATING:
        raise SettingError(f"{key}.resolution_rating", f"expected 'follow' or 'replace', got {resolution_rating!r}")
    if resolution_rating == "replace" and (kind != "ces" or trigger_kind != "complaint_resolved"):
        raise SettingError(f"{key}.resolution_rating", "only a ces program after complaint_resolved replaces the rating")
    texts, options = _texts(key, raw, PROGRAM_TEXT_KEYS)
    if options and kind not in CHOICE_KINDS:
        raise SettingError(f"{key}.vi.options", f"only {' and '.join(CHOICE_KINDS)} programs have options")
    return ProgramSpec(
        name=name, kind=kind, trigger=trigger, audience=audience, texts=texts, options=options,
        fatigue=timedelta(days=_int(f"{key}.fatigue_days", raw.get("fatigue_days", 30), 0, 3650)),
        priority=_int(f"{key}.priority", raw.get("priority", DEFAULT_PRIORITY[kind]), 0, 1000),
        max_lateness=_duration(f"{key}.max_lateness", raw.get("max_lateness", "3d")),
        expires_after=_duration(f"{key}.expires_after", raw.get("expires_after", "72h")),
        resolution_rating=resolution_rating,
    )


def _date(key: str, value: Any) -> tuple[date | None, tuple[int, int] | None]:
    if isinstance(value, date):  # TOML's own date literal
        return value, None
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                return date.fromisoformat(value), None
            if re.fullmatch(r"\d{2}-\d{2}", value):
                month, day = (int(x) for x in value.split("-"))
                date(2024, month, day)  # a leap year: 02-29 is a real day
                return None, (month, day)
        except ValueError:
            pass
    raise SettingError(key, f"expected a date 'YYYY-MM-DD', or 'MM-DD' for every year, got {value!r}")


def parse_settings(raw: Mapping[str, Any], config: Any) -> FeedbackSettings:
    """`raw`: the TOML file's tables; `config`: the typed sections parsed from it (bot/config.py)."""
    touchpoints = config.survey.touchpoints
    programs_raw = raw.get("programs", [])
    if not isinstance(programs_raw, list):
        raise SettingError("programs", "expected [[programs]] tables")
    programs = tuple(parse_program(i, p, touchpoints) for i, p in enumerate(programs_raw))
    seen: set[str] = set()
    for p in programs:
        if p.name in seen:
            raise SettingError(f"programs.{p.name}", "two programs have this name")
        seen.add(p.name)
    h = config.holidays
    single, yearly = set(), set()
    for i, d in enumerate(h.dates):
        one, every = _date(f"holidays.dates[{i}]", d)
        if one:
            single.add(one)
        if every:
            yearly.add(every)
    blackouts = Blackouts(tet=h.tet, tet_before=h.tet_days_before, tet_after=h.tet_days_after,
                          dates=frozenset(single), yearly=frozenset(yearly))
    topics = config.ideas.topics
    departments = []
    for i, d in enumerate(_list(raw, "departments")):
        key = f"departments[{i}]"
        _only(key, d, ("name", "chat_id", "categories", "idea_topics", "language"))
        name = d.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SettingError(f"{key}.name", f"required, a name like 'logistics', got {name!r}")
        categories = _names(f"departments.{name}.categories", d.get("categories", []))
        unknown = set(categories) - set(config.complaints.categories)
        if unknown:
            raise SettingError(f"departments.{name}.categories", f"{sorted(unknown)[0]!r} is not in complaints.categories")
        own_topics = _names(f"departments.{name}.idea_topics", d.get("idea_topics", []))
        unknown = set(own_topics) - set(topics) - {"other"}
        if unknown:
            raise SettingError(f"departments.{name}.idea_topics", f"{sorted(unknown)[0]!r} is not in ideas.topics")
        departments.append(Department(name, _chat(f"departments.{name}.chat_id", d.get("chat_id")), categories,
                                      own_topics, _language(f"departments.{name}.language", d.get("language", "vi"))))
    stores = []
    for i, s in enumerate(_list(raw, "stores")):
        key = f"stores[{i}]"
        _only(key, s, ("store", "manager_chat_id", "language"))
        store = s.get("store")
        if not isinstance(store, str) or not 0 < len(store) <= 100:
            raise SettingError(f"{key}.store", "required, the store's name as purchases give it")
        stores.append(StoreManager(store, _chat(f"stores.{store}.manager_chat_id", s.get("manager_chat_id")),
                                   _language(f"stores.{store}.language", s.get("language", "vi"))))
    rules = []
    for i, w in enumerate(_list(raw, "wording")):
        key = f"wording[{i}]"
        _only(key, w, ("touchpoint", "store", *SUPPORTED))
        touchpoint = w.get("touchpoint", "")
        if touchpoint and touchpoint not in touchpoints:
            raise SettingError(f"{key}.touchpoint", f"{touchpoint!r} is not in survey.touchpoints")
        store = w.get("store", "")
        if not isinstance(store, str):
            raise SettingError(f"{key}.store", "expected the store's name")
        texts, _ = _texts(key, w, WORDING_KEYS)
        rules.append(WordingRule(touchpoint, store, texts))
    return FeedbackSettings(
        programs=programs,
        program_tables=tuple(programs_raw),
        touchpoints=touchpoints,
        max_per_period=config.survey.max_per_period,
        period=timedelta(days=config.survey.fatigue_days),
        blackouts=blackouts,
        idea_topics=topics,
        routes=Routes(tuple(departments), tuple(stores)),
        wording=Wording(tuple(rules)),
    )


def _list(raw: Mapping[str, Any], name: str) -> list[Any]:
    value = raw.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SettingError(name, f"expected [[{name}]] tables")
    return value


def _only(key: str, table: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = set(table) - set(known)
    if unknown:
        raise SettingError(f"{key}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(known)})")


def _language(key: str, value: Any) -> str:
    if value not in SUPPORTED:
        raise SettingError(key, f"expected one of {', '.join(SUPPORTED)}, got {value!r}")
    return value


# --- edits from the dashboard (bot/services/program_admin.py) --------------------------------
# The config defines each program (its name, kind and trigger); an owner may turn it off and
# change these keys, kept in the database and applied over the config's table with the same
# checks. "Reset to config" deletes the edit. A program removed from the config is gone, edit or not.
EDITABLE_KEYS = ("delay", "days", "every_days", "touchpoints", "stores", "tiers", "channels", *SUPPORTED)


def edited_program(settings: FeedbackSettings, name: str, changes: Mapping[str, Any]) -> ProgramSpec:
    """The program as the config defines it with these changes (SettingError if a change is bad)."""
    unknown = set(changes) - set(EDITABLE_KEYS)
    if unknown:
        raise SettingError(sorted(unknown)[0], f"not editable here (editable: {', '.join(EDITABLE_KEYS)})")
    for i, table in enumerate(settings.program_tables):
        if table.get("name") == name:
            return parse_program(i, {**table, **changes}, settings.touchpoints)
    raise KeyError(name)


def with_overrides(settings: FeedbackSettings, overrides: Mapping[str, tuple[bool, Mapping[str, Any]]]) -> FeedbackSettings:
    """The settings with the owners' edits: name -> (enabled, changes). An edit that no longer
    passes the checks (the config changed under it) is left out: the config's program runs."""
    running, paused = [], []
    for table in settings.program_tables:
        name = table.get("name")
        enabled, changes = overrides.get(name, (True, {}))
        try:
            spec = edited_program(settings, name, changes)
        except (SettingError, KeyError):
            log.warning("program %s: the dashboard's edit no longer fits the config; the config's is used", name)
            spec = edited_program(settings, name, {})
        (running if enabled else paused).append(spec)
    return replace(settings, programs=tuple(running), paused=tuple(paused))
