"""When a survey may go out: delay, quiet hours, fatigue, lateness, expiry, reminder."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from flows.holidays import NO_BLACKOUTS, Blackouts


@dataclass(frozen=True)
class SurveyPolicy:
    timezone: tzinfo = ZoneInfo("Asia/Ho_Chi_Minh")
    delay: timedelta = timedelta(hours=3)  # purchase -> survey
    quiet_start: time = time(21, 0)  # shop time; no survey from here ...
    quiet_end: time = time(8, 0)  # ... to here
    expires_after: timedelta = timedelta(hours=72)  # unanswered this long after sending: expired
    reminder_after: timedelta | None = None  # one reminder at most; off by default
    fatigue: timedelta = timedelta(days=7)  # at most one survey per customer per this period
    max_lateness: timedelta = timedelta(hours=48)  # a survey this late after its due time is skipped
    comment_window: timedelta = timedelta(hours=24)  # how long a score's follow-up waits for text
    blackouts: Blackouts = NO_BLACKOUTS  # whole days without surveys (Tết, config dates), on top of quiet hours


def in_quiet_hours(at: datetime, policy: SurveyPolicy) -> bool:
    """Quiet hours, or a blackout day."""
    local_at = at.astimezone(policy.timezone)
    if policy.blackouts is not NO_BLACKOUTS and policy.blackouts.is_blackout(local_at.date()):
        return True
    local = local_at.time()
    start, end = policy.quiet_start, policy.quiet_end
    if start == end:
        return False  # no quiet hours
    if start < end:  # e.g. 12:00-14:00
        return start <= local < end
    return local >= start or local < end  # wraps midnight, e.g. 21:00-08:00


def end_of_quiet_hours(at: datetime, policy: SurveyPolicy) -> datetime:
    """The first moment at or after `at` outside quiet hours and blackout days."""
    for _ in range(4):  # quiet hours may end on a blackout day, and a blackout at a quiet midnight
        if not in_quiet_hours(at, policy):
            return at
        if policy.blackouts is not NO_BLACKOUTS:
            at = policy.blackouts.end_of(at, policy.timezone)  # the midnight after the last blackout day
            if not in_quiet_hours(at, policy):
                return at
        at = _end_of_clock_quiet(at, policy)
    return at


def _end_of_clock_quiet(at: datetime, policy: SurveyPolicy) -> datetime:
    local = at.astimezone(policy.timezone)
    end = local.replace(
        hour=policy.quiet_end.hour, minute=policy.quiet_end.minute, second=0, microsecond=0
    )
    if end <= local:
        end = _next_day_at(local, policy.quiet_end, policy.timezone)
    return end.astimezone(at.tzinfo)


def _next_day_at(local: datetime, wall: time, tz: tzinfo) -> datetime:
    day = local.date() + timedelta(days=1)
    return datetime.combine(day, wall, tzinfo=tz)


def due_time(purchased_at: datetime, policy: SurveyPolicy) -> datetime:
    # In UTC: `+` on a datetime of a DST zone adds wall-clock time (an hour off across a change).
    return end_of_quiet_hours(purchased_at.astimezone(timezone.utc) + policy.delay, policy)


# --- the dispatch decision for one due survey ---------------------------------


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Skip:
    reason: str  # opted_out | too_late | fatigue


@dataclass(frozen=True)
class Postpone:
    until: datetime


@dataclass(frozen=True)
class AwaitContact:
    """The customer has no chat we can write to yet (they have not opened the deep link)."""


Dispatch = Send | Skip | Postpone | AwaitContact


def is_too_late(now: datetime, due_at: datetime, policy: SurveyPolicy) -> bool:
    return now > deadline(due_at, policy.max_lateness, policy)


# --- lateness and blackouts -----------------------------------------------------------
# A survey may go out until `max_lateness` after its due time, but blackout days (Tết, the
# shop's holidays) do not count: the clock stops on them. A CSAT due the evening before the
# eve waits through Tết and goes out the first morning after with the lateness it had left,
# instead of being skipped as too late; one due far from a blackout is unchanged.


def deadline(due_at: datetime, lateness: timedelta, policy: SurveyPolicy) -> datetime:
    """The moment `lateness` of time outside blackout days has passed since `due_at`."""
    return _open_time(due_at, lateness, policy, forward=True)


def due_cutoff(now: datetime, lateness: timedelta, policy: SurveyPolicy) -> datetime:
    """The inverse: a survey due before this is too late at `now` (for queries by due time)."""
    return _open_time(now, lateness, policy, forward=False)


def _open_time(at: datetime, span: timedelta, policy: SurveyPolicy, *, forward: bool) -> datetime:
    blackouts = policy.blackouts
    if blackouts is NO_BLACKOUTS or not (blackouts.tet or blackouts.dates or blackouts.yearly):
        t = at.astimezone(timezone.utc)  # real time, not the wall clock of a DST zone
        return (t + span if forward else t - span).astimezone(at.tzinfo)
    tz = policy.timezone
    t = at.astimezone(timezone.utc)
    left = span
    for _ in range(4000):  # days of the span plus the blackout days met (a year at most: a config mistake)
        if forward:
            day = t.astimezone(tz).date()
            boundary = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(timezone.utc)
        else:
            day = (t - timedelta(microseconds=1)).astimezone(tz).date()
            boundary = datetime.combine(day, time(), tzinfo=tz).astimezone(timezone.utc)
        if blackouts.is_blackout(day):
            t = boundary
            continue
        step = abs(boundary - t)
        if step >= left:
            t = t + left if forward else t - left
            break
        left -= step
        t = boundary
    while not forward:  # ended where a blackout ends: a due anywhere in it has this same deadline
        day = (t - timedelta(microseconds=1)).astimezone(tz).date()
        start = datetime.combine(day, time(), tzinfo=tz).astimezone(timezone.utc)
        if t.astimezone(tz).time() != time() or not blackouts.is_blackout(day):
            break
        t = start
    return t.astimezone(at.tzinfo)


def decide_dispatch(
    *,
    now: datetime,
    due_at: datetime,
    opted_out: bool,
    has_contact: bool,
    last_sent_at: datetime | None,
    policy: SurveyPolicy,
    open_complaint: bool = False,
) -> Dispatch:
    if opted_out:
        return Skip("opted_out")
    if open_complaint:  # asking "how satisfied are you?" mid-complaint reads as not listening
        return Skip("open_complaint")
    if is_too_late(now, due_at, policy):
        return Skip("too_late")
    if last_sent_at is not None and now - last_sent_at < policy.fatigue:
        return Skip("fatigue")
    if not has_contact:
        return AwaitContact()
    if in_quiet_hours(now, policy):
        resume = end_of_quiet_hours(now, policy)
        if is_too_late(resume, due_at, policy):
            return Skip("too_late")
        return Postpone(resume)
    return Send()


def is_expired(now: datetime, sent_at: datetime, policy: SurveyPolicy) -> bool:
    return now >= sent_at + policy.expires_after


def reminder_due(
    now: datetime, sent_at: datetime, reminded: bool, policy: SurveyPolicy
) -> bool:
    if policy.reminder_after is None or reminded:
        return False
    if is_expired(now, sent_at, policy) or in_quiet_hours(now, policy):
        return False
    return now >= sent_at + policy.reminder_after
