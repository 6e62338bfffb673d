"""Which route a survey takes, and the ZNS rules: pure decisions over plain data.

A customer known on Zalo whose last interaction with the OA is inside the customer-care
window gets the conversational (CS) message; outside it, or unknown on Zalo but with a phone
number, a ZNS template; otherwise the other chats as `survey.channel_order` says. No route:
the survey is skipped as unreachable, with the reason. ZNS sends stop in the night ban and
when the day's message quota or VND budget would be passed (never overspent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo

CS = "cs"  # a conversational message on the contact's chat (Zalo CS, Telegram, web chat)
ZNS = "zns"  # a ZNS template to the customer's phone

CS_WINDOW = timedelta(days=7)  # Zalo: CS messages only within 7 days of the user's last interaction


@dataclass(frozen=True)
class ZnsPolicy:
    """`[zalo.zns]`, parsed once (bot/config.py) and handed to whoever needs it."""

    enabled: bool = False
    survey_templates: tuple[tuple[str, str], ...] = ()  # (language, template id)
    rating_templates: tuple[tuple[str, str], ...] = ()  # the "service rating" templates read back
    params: tuple[tuple[str, str], ...] = ()  # (our field, the template's parameter name)
    # A resolved complaint's rating ("service rating" templates, read back like the survey's)
    # where its chat cannot take a message now; and their parameter names.
    resolution_templates: tuple[tuple[str, str], ...] = ()
    resolution_params: tuple[tuple[str, str], ...] = ()
    daily_messages: int = 0  # 0: no limit of ours (Zalo's own quota still answers)
    daily_budget_vnd: int = 0  # 0: no limit
    price_vnd: int = 200
    night_start: time = time(22, 0)
    night_end: time = time(6, 0)
    timezone: tzinfo | None = None  # the night ban and the quota day are in the shop's time zone
    api_base_url: str = "https://business.openapi.zalo.me"
    messages_per_second: float = 5.0
    rating_poll_interval: timedelta = timedelta(minutes=10)
    window: timedelta = CS_WINDOW

    def survey_template(self, language: str) -> str | None:
        return _by_language(self.survey_templates, language)

    def resolution_template(self, language: str) -> str | None:
        return _by_language(self.resolution_templates, language)

    @property
    def usable(self) -> bool:
        return self.enabled and bool(self.survey_template("vi"))

    @property
    def resolution_usable(self) -> bool:
        return self.enabled and bool(self.resolution_template("vi"))

    @property
    def read_back(self) -> tuple[str, ...]:
        """The rating templates whose answers are read back: the surveys' and the resolutions'."""
        return tuple(dict.fromkeys(t for _, t in (*self.rating_templates, *self.resolution_templates)))


def _by_language(templates: tuple[tuple[str, str], ...], language: str) -> str | None:
    found = dict(templates)
    return found.get(language) or found.get("vi") or next(iter(found.values()), None)


@dataclass(frozen=True)
class Route:
    kind: str  # CS | ZNS
    reason: str
    contact_id: int | None = None  # CS: the chat that gets it


@dataclass(frozen=True)
class Unreachable:
    reason: str


@dataclass(frozen=True)
class Candidate:
    """A chat of the customer we could write to, in the order survey.channel_order gives."""

    contact_id: int
    channel: str
    # Zalo only: when the user last interacted with the OA (ours or Zalo's answer), None if never/unknown.
    last_interaction: datetime | None = None


def choose_route(
    *, now: datetime, candidates: list[Candidate], phone: str | None, zns_usable: bool, window: timedelta = CS_WINDOW,
) -> Route | Unreachable:
    """The first candidate chat that can take a CS message now; ZNS if none can and there is a phone."""
    closed = None
    for c in candidates:
        if c.channel != "zalo":
            return Route(CS, f"{c.channel}_chat", c.contact_id)
        if c.last_interaction is not None and now - c.last_interaction < window:
            return Route(CS, "zalo_window_open", c.contact_id)
        closed = closed or c
    if phone and zns_usable:
        return Route(ZNS, "zalo_window_closed" if closed else "phone_only")
    if closed is not None:
        return Unreachable("zalo_window_closed_no_zns" if phone else "zalo_window_closed_no_phone")
    return Unreachable("no_chat_no_zns" if phone else "no_chat_no_phone")


def resolution_route(
    *, now: datetime, chat: Candidate | None, phone: str | None, zns_usable: bool, window: timedelta = CS_WINDOW,
) -> Route | Unreachable:
    """Where a resolved complaint's rating question goes: its own chat if that can take a
    conversational message now (`chat`: None when it cannot take any, a phone-only contact),
    else the resolution template to the phone; Unreachable when neither."""
    return choose_route(now=now, candidates=[chat] if chat else [], phone=phone, zns_usable=zns_usable, window=window)


def open_chat(*, now: datetime, candidates: list[Candidate], window: timedelta = CS_WINDOW) -> int | None:
    """The first of the customer's chats that can take a conversational message now (a
    rating read back from ZNS is followed up there as a tap would be); None: no such chat."""
    route = choose_route(now=now, candidates=candidates, phone=None, zns_usable=False, window=window)
    return route.contact_id if isinstance(route, Route) else None


# --- ZNS rules ----------------------------------------------------------------------------


def in_night_ban(at: datetime, policy: ZnsPolicy) -> bool:
    local = at.astimezone(policy.timezone).time() if policy.timezone else at.time()
    start, end = policy.night_start, policy.night_end
    if start == end:
        return False
    return start <= local or local < end if start > end else start <= local < end


def night_ban_ends(at: datetime, policy: ZnsPolicy) -> datetime:
    """The first moment after `at` outside the night ban (`at` itself if it is outside)."""
    if not in_night_ban(at, policy):
        return at
    local = at.astimezone(policy.timezone) if policy.timezone else at
    end = local.replace(hour=policy.night_end.hour, minute=policy.night_end.minute, second=0, microsecond=0)
    if end <= local:
        end = _next_day(end, policy)
    return end.astimezone(at.tzinfo)


def _next_day(local: datetime, policy: ZnsPolicy) -> datetime:
    nxt = (local + timedelta(days=1)).date()
    return datetime.combine(nxt, local.timetz().replace(tzinfo=None), tzinfo=local.tzinfo)


def quota_day(at: datetime, policy: ZnsPolicy) -> date:
    return (at.astimezone(policy.timezone) if policy.timezone else at).date()


def next_quota_day(at: datetime, policy: ZnsPolicy) -> datetime:
    """Midnight starting the next quota day (shop time), as a moment."""
    tz = policy.timezone or at.tzinfo
    local = at.astimezone(tz)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0, 0), tzinfo=tz)
    return night_ban_ends(midnight.astimezone(at.tzinfo), policy)


@dataclass(frozen=True)
class Spent:
    messages: int = 0
    vnd: int = 0


@dataclass(frozen=True)
class BudgetCheck:
    allowed: bool
    reason: str = ""  # daily_quota | daily_budget


def may_spend(spent: Spent, policy: ZnsPolicy) -> BudgetCheck:
    """One more message keeps within the day's quota and the owner's budget (never overspend)."""
    if policy.daily_messages and spent.messages + 1 > policy.daily_messages:
        return BudgetCheck(False, "daily_quota")
    if policy.daily_budget_vnd and spent.vnd + policy.price_vnd > policy.daily_budget_vnd:
        return BudgetCheck(False, "daily_budget")
    return BudgetCheck(True)


def template_data(policy: ZnsPolicy, values: dict[str, str], *, resolution: bool = False) -> dict[str, str]:
    """The template's parameters from our fields (`params`, or `resolution_params` for the
    resolution template, map field -> parameter name); fields the template does not name are
    left out. Zalo caps parameter values (30 characters for names, 200 for others as its
    templates are commonly set up): clipped, never refused."""
    out: dict[str, str] = {}
    for ours, theirs in policy.resolution_params if resolution else policy.params:
        if ours in values and theirs:
            limit = 200 if ours == "link" else 30 if ours == "customer_name" else 100
            out[theirs] = values[ours][:limit]
    return out


@dataclass(frozen=True)
class RatingItem:
    """One answer read back from a ZNS service-rating template."""

    rating_id: str  # Zalo's msg id of the rated message: the dedupe key
    tracking_id: str  # ours: the outbox row that sent it
    score: int
    note: str = ""
    feedbacks: tuple[str, ...] = field(default=())


def rating_comment(item: RatingItem) -> str:
    parts = [*item.feedbacks, item.note.strip()]
    return "; ".join(p for p in parts if p)
