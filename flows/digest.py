"""The owners' weekly digest, as pure logic: which week is which (ISO weeks in the shop's
time zone), the figures and their change against the previous week, the alert rule,
complaint themes, and the message text in Vietnamese or English with numbers formatted
for the locale (vi "87,5%" / "1.234", en "87.5%" / "1,234").

Figures come in as plain tallies (anything with the attributes the Protocols below name),
so this module knows nothing of the database.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Iterable, Mapping, Protocol, Sequence

from flows.texts import category_label, day_month, fmt_number, has, plural, text
from flows.tickets import ticket_number

SATISFIED = 4  # 4 and 5 count as satisfied: the standard CSAT cut
ALERT_DROP = 15.0  # percentage points below the 4-week average...
ALERT_MIN_ANSWERS = 5  # ...with at least this many answers this week (and in the 4 weeks)
BASELINE_WEEKS = 4
QUOTES = 3  # comments quoted per list
THEMES = 5
QUOTE_CHARS = 160
MAX_TEXT = 4000  # Telegram allows 4096 characters per message


# --- weeks ---------------------------------------------------------------------------

_WEEK = re.compile(r"^(\d{4})-?[Ww](\d{1,2})$")


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week ("2026-W47"): Monday to Sunday in the shop's time zone."""

    year: int
    number: int

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def shift(self, weeks: int) -> "Week":
        return week_of_date(self.monday + timedelta(weeks=weeks))


def week_of_date(day: date) -> Week:
    year, number, _ = day.isocalendar()
    return Week(year, number)


def parse_week(value: str) -> Week:
    """"2026-W47" (or "2026W47"); ValueError naming what was expected."""
    match = _WEEK.match(value.strip()) if isinstance(value, str) else None
    if match:
        year, number = int(match.group(1)), int(match.group(2))
        if 1970 <= year <= 9998:
            try:
                date.fromisocalendar(year, number, 1)  # W53 exists in some years only
                return Week(year, number)
            except ValueError:
                pass
    raise ValueError(f"expected an ISO week like 2026-W47, got {value!r}")


def week_of(at: datetime, tz: tzinfo) -> Week:
    return week_of_date(at.astimezone(tz).date())


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


def week_bounds(week: Week, tz: tzinfo) -> tuple[datetime, datetime]:
    """[Monday 00:00, next Monday 00:00) shop time, as UTC datetimes."""
    return _local_midnight(week.monday, tz), _local_midnight(week.monday + timedelta(weeks=1), tz)


def last_complete_week(now: datetime, tz: tzinfo) -> Week:
    return week_of(now, tz).shift(-1)


def due_at(week: Week, tz: tzinfo, weekday: int, at: time) -> datetime:
    """When the digest of `week` goes out: the first `weekday` (0 = Monday) at `at`, shop
    time, after the week has ended."""
    day = week.monday + timedelta(weeks=1, days=weekday)
    return datetime.combine(day, at, tzinfo=tz).astimezone(timezone.utc)


def latest_due_week(now: datetime, tz: tzinfo, weekday: int, at: time) -> Week:
    """The newest week whose digest is due by `now`. Only this one is sent: a bot that was
    down for weeks sends the latest digest when it comes back, not a backlog."""
    week = last_complete_week(now, tz)
    return week if due_at(week, tz, weekday, at) <= now else week.shift(-1)


# --- what comes in -------------------------------------------------------------------------


class CsatCellLike(Protocol):
    """CSAT answers and sends for one (touchpoint, store, tier) over one period."""

    touchpoint: str
    store: str
    tier: str
    answers: int
    satisfied: int
    score_sum: int
    sent: int
    sent_answered: int


class TallyLike(Protocol):
    answers: int
    satisfied: int
    score_sum: int


class OpenTicketLike(Protocol):
    id: int
    category: str
    created_at: datetime


class ComplaintStatsLike(Protocol):
    opened_by_category: Mapping[str, int]
    resolved: int
    first_response_s: Sequence[float]
    resolution_s: Sequence[float]
    sla_met: int
    sla_total: int
    resolution_scores: TallyLike
    reopened: int


class QuestionStatsLike(Protocol):
    opened: int
    first_response_s: Sequence[float]


class CommentLike(Protocol):
    score: int
    comment: str
    touchpoint: str
    store: str


# --- arithmetic that never divides by zero ----------------------------------------------------


def share(part: float, whole: float) -> float | None:
    """part/whole in percent; None when there is nothing to divide."""
    return 100.0 * part / whole if whole else None


def change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else now - before


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (p in 0..100); the median is p=50."""
    if not values:
        return None
    ordered = sorted(values)
    h = (len(ordered) - 1) * p / 100.0
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


# --- the report --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """CSAT figures of one group over one week."""

    answers: int = 0
    satisfied: int = 0  # answers of 4 or 5
    score_sum: int = 0
    sent: int = 0  # surveys sent in the week
    sent_answered: int = 0  # of those, answered before the week ended

    @property
    def csat_pct(self) -> float | None:
        return share(self.satisfied, self.answers)

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.answers if self.answers else None

    @property
    def response_rate(self) -> float | None:
        return share(self.sent_answered, self.sent)

    def __add__(self, other: "Figures") -> "Figures":
        return Figures(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple[int, ...]:
        return (self.answers, self.satisfied, self.score_sum, self.sent, self.sent_answered)


@dataclass(frozen=True)
class CsatLine:
    name: str  # a touchpoint, store or tier ("" = the whole shop, or no store given)
    now: Figures
    before: Figures  # the previous week

    @property
    def csat_change(self) -> float | None:  # percentage points
        return change(self.now.csat_pct, self.before.csat_pct)


@dataclass(frozen=True)
class Csat:
    total: CsatLine
    by_touchpoint: tuple[CsatLine, ...]
    by_store: tuple[CsatLine, ...]
    by_tier: tuple[CsatLine, ...]


@dataclass(frozen=True)
class Durations:
    count: int
    median_s: float | None
    p90_s: float | None

    @staticmethod
    def of(values: Sequence[float]) -> "Durations":
        return Durations(len(values), percentile(values, 50), percentile(values, 90))


@dataclass(frozen=True)
class ComplaintFigures:
    """Complaint figures of one week."""

    opened: int = 0
    resolved: int = 0
    by_category: tuple[tuple[str, int], ...] = ()  # opened, most first
    first_response: Durations = Durations(0, None, None)
    resolution: Durations = Durations(0, None, None)
    sla_met: int = 0  # of the tickets resolved in the week, those within both targets
    sla_total: int = 0  # resolved in the week, and still open past a target at its end
    resolution_csat: Figures = Figures()  # customers' ratings of how it was handled
    reopened: int = 0

    @property
    def sla_pct(self) -> float | None:
        return share(self.sla_met, self.sla_total)


@dataclass(frozen=True)
class QuestionFigures:
    """Customers' questions of one week: how many, how fast they were first answered."""

    opened: int = 0
    first_response: Durations = Durations(0, None, None)


@dataclass(frozen=True)
class OpenItem:
    number: str  # KN-0042
    category: str
    opened_at: datetime


@dataclass(frozen=True)
class Complaints:
    now: ComplaintFigures
    before: ComplaintFigures
    still_open: int  # tickets opened before the week's end and not resolved yet
    oldest_open: tuple[OpenItem, ...]


@dataclass(frozen=True)
class Quote:
    score: int
    text: str
    touchpoint: str
    store: str


@dataclass(frozen=True)
class Voice:
    lowest: tuple[Quote, ...]  # the lowest-scored comments
    ideas: tuple[Quote, ...]  # the best improvement ideas from satisfied customers
    themes: tuple[tuple[str, int], ...]  # words/phrases in complaints, how many mention each


@dataclass(frozen=True)
class Alert:
    kind: str  # touchpoint | store
    name: str
    csat_pct: float
    baseline_pct: float  # the 4 weeks before
    answers: int

    @property
    def drop(self) -> float:
        return self.baseline_pct - self.csat_pct


@dataclass(frozen=True)
class WeekPoint:
    week: Week
    answers: int
    csat_pct: float | None


@dataclass(frozen=True)
class Digest:
    week: Week
    start: datetime  # UTC
    end: datetime
    tz: tzinfo
    shop: str
    complete: bool  # the week is over
    csat: Csat
    complaints: Complaints
    voice: Voice
    alerts: tuple[Alert, ...]
    series: tuple[WeekPoint, ...]  # CSAT per week, oldest first, this week last
    undelivered: int = 0  # surveys whose question never reached the customer (not in `sent`)
    questions: QuestionFigures = QuestionFigures()
    routes: tuple[tuple[str, int], ...] = ()  # surveys sent per route (cs, zns), when ZNS is in use
    zns_spend: tuple[int, int] = (0, 0)  # ZNS messages and VND this week
    resolution_zns: tuple[int, int] = (0, 0)  # resolved complaints' ratings by ZNS: asked, answered

    @property
    def empty(self) -> bool:
        """Nothing happened this week: no answers, no surveys sent, no tickets."""
        now = self.csat.total.now
        c = self.complaints.now
        q = self.questions
        return not (now.answers or now.sent or c.opened or c.resolved or c.reopened or self.undelivered
                    or q.opened or q.first_response.count)


ROUTE_LABELS = {"cs": "chat", "zns": "ZNS"}


# --- building it -----------------------------------------------------------------------------


def figures(cell: CsatCellLike | TallyLike) -> Figures:
    return Figures(
        cell.answers, cell.satisfied or 0, cell.score_sum or 0,
        getattr(cell, "sent", 0) or 0, getattr(cell, "sent_answered", 0) or 0,
    )


def rollup(cells: Iterable[CsatCellLike], key: str) -> dict[str, Figures]:
    """Sum (touchpoint, store, tier) cells by one of the three ("" for the whole shop)."""
    out: dict[str, Figures] = {}
    for cell in cells:
        name = getattr(cell, key) if key else ""
        out[name] = out.get(name, Figures()) + figures(cell)
    return out


def _lines(now: Mapping[str, Figures], before: Mapping[str, Figures]) -> tuple[CsatLine, ...]:
    # Groups with answers or sends this week, most answers first.
    names = [n for n, f in now.items() if f.answers or f.sent]
    names.sort(key=lambda n: (-now[n].answers, n))
    return tuple(CsatLine(n, now[n], before.get(n, Figures())) for n in names)


def csat_section(cells: Sequence[CsatCellLike], previous: Sequence[CsatCellLike]) -> Csat:
    total_now = rollup(cells, "").get("", Figures())
    total_before = rollup(previous, "").get("", Figures())
    return Csat(
        total=CsatLine("", total_now, total_before),
        by_touchpoint=_lines(rollup(cells, "touchpoint"), rollup(previous, "touchpoint")),
        by_store=_lines(rollup(cells, "store"), rollup(previous, "store")),
        by_tier=_lines(rollup(cells, "tier"), rollup(previous, "tier")),
    )


def complaint_figures(stats: ComplaintStatsLike) -> ComplaintFigures:
    by_category = sorted(stats.opened_by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    return ComplaintFigures(
        opened=sum(stats.opened_by_category.values()),
        resolved=stats.resolved,
        by_category=tuple(by_category),
        first_response=Durations.of(stats.first_response_s),
        resolution=Durations.of(stats.resolution_s),
        sla_met=stats.sla_met,
        sla_total=stats.sla_total,
        resolution_csat=figures(stats.resolution_scores),
        reopened=stats.reopened,
    )


def alerts(
    cells: Sequence[CsatCellLike],
    baseline: Sequence[CsatCellLike],
    *,
    drop: float = ALERT_DROP,
    min_answers: int = ALERT_MIN_ANSWERS,
) -> tuple[Alert, ...]:
    """A touchpoint or store whose CSAT fell `drop` points or more below its pooled average
    of the 4 weeks before, with enough answers in both to be more than noise."""
    found = []
    for kind in ("touchpoint", "store"):
        base = rollup(baseline, kind)
        for name, now in rollup(cells, kind).items():
            before = base.get(name)
            if before is None or now.answers < min_answers or before.answers < min_answers:
                continue
            assert now.csat_pct is not None and before.csat_pct is not None
            if before.csat_pct - now.csat_pct >= drop - 1e-9:
                found.append(Alert(kind, name, now.csat_pct, before.csat_pct, now.answers))
    found.sort(key=lambda a: (-a.drop, a.kind, a.name))
    return tuple(found)


def series(weeks: Sequence[Week], tallies: Sequence[TallyLike]) -> tuple[WeekPoint, ...]:
    return tuple(WeekPoint(w, t.answers, share(t.satisfied or 0, t.answers)) for w, t in zip(weeks, tallies))


def _quote(c: CommentLike) -> Quote:
    body = " ".join(c.comment.split())
    if len(body) > QUOTE_CHARS:
        body = body[: QUOTE_CHARS - 1].rstrip() + "…"
    return Quote(c.score, body, c.touchpoint, c.store)


def _distinct(comments: Iterable[CommentLike], limit: int) -> tuple[Quote, ...]:
    """The first `limit` comments, the same words quoted once."""
    seen: set[str] = set()
    out: list[Quote] = []
    for c in comments:
        key = " ".join(_tokens(c.comment))
        if key not in seen:
            seen.add(key)
            out.append(_quote(c))
        if len(out) == limit:
            break
    return tuple(out)


def lowest_comments(comments: Sequence[CommentLike], limit: int = QUOTES) -> tuple[Quote, ...]:
    """Comments of 1–3 answers, lowest score first (then in the order given: oldest first)."""
    low = [c for c in comments if c.score < SATISFIED and c.comment.strip()]
    low.sort(key=lambda c: c.score)  # stable
    return _distinct(low, limit)


# Words that mark a suggestion rather than plain praise ("nên có thêm…", "could you…").
IDEA_MARKERS = (
    "nên", "giá như", "mong", "hy vọng", "hi vọng", "thêm", "hơn", "cải thiện", "góp ý", "đề xuất", "giá mà",
    "muốn", "should", "could", "would", "wish", "suggest", "improve", "better", "please", "add", "more",
)
_MIN_IDEA_WORDS = 3


_MARKER = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(m) for m in IDEA_MARKERS) + r")(?!\w)")


def _has_marker(body: str) -> bool:
    return _MARKER.search(_normalise(body)) is not None


def best_ideas(comments: Sequence[CommentLike], limit: int = QUOTES) -> tuple[Quote, ...]:
    """Comments of satisfied customers (4–5) that read like a suggestion, the fullest first;
    when none does, the fullest comments."""
    happy = [c for c in comments if c.score >= SATISFIED and len(c.comment.split()) >= _MIN_IDEA_WORDS]
    happy.sort(key=lambda c: (not _has_marker(c.comment), -len(c.comment.split()), c.comment))
    return _distinct(happy, limit)


# Words that say nothing about what went wrong, Vietnamese and English.
STOP_WORDS = frozenset(
    """
    và là của có không bị đã được cho với các những một thì mà này đó kia rất quá lại nên cũng em anh chị
    tôi mình shop ạ nhé nha ơi rồi vẫn còn thế như vì để khi từ ra vào trong ngày hôm nay lắm luôn đến tới
    về người bạn chúng ta họ nó gì sao nào vậy đâu hay hoặc nhưng nữa mới chỉ cả đều phải làm thấy đang sẽ
    chưa bao giờ lúc sau trước bên ở nhiều ít vừa cái con chiếc bằng theo tại hơn nhất thêm đi lần mấy đơn
    ko k dc đc vs nhen á à ừ dạ vâng
    the a an and or but is are was were be been being to of in on at for with by from my our your i me we
    you it its this that these those not no so too very have has had do does did just can could would should
    will there their they them he she his her as if then than also again only about after before into out up
    order orders got get
    """.split()
)


def _normalise(body: str) -> str:
    return unicodedata.normalize("NFC", body).lower()


def _tokens(body: str) -> list[str]:
    return re.findall(r"[^\W\d_]+", _normalise(body))


def _meaningful(word: str) -> bool:
    return len(word) > 1 and word not in STOP_WORDS


def themes(texts: Iterable[str], limit: int = THEMES, min_count: int = 2) -> tuple[tuple[str, int], ...]:
    """The words and two-word phrases most complaints mention (each text counts once per
    term). Vietnamese words are often two syllables ("giao hàng", "chất lượng"), so a
    phrase seen in `min_count` texts or more wins over its single syllables."""
    words: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    for body in texts:
        seen_words: set[str] = set()
        seen_phrases: set[str] = set()
        for clause in re.split(r"[^\w\s]+", _normalise(body)):  # a phrase never spans punctuation
            tokens = _tokens(clause)
            seen_words.update(t for t in tokens if _meaningful(t))
            seen_phrases.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:]) if _meaningful(a) and _meaningful(b))
        words.update(seen_words)
        phrases.update(seen_phrases)
    chosen = sorted(((p, n) for p, n in phrases.items() if n >= min_count), key=lambda pn: (-pn[1], pn[0]))[:limit]
    covered = {w for p, _ in chosen for w in p.split()}
    singles = [(w, n) for w, n in words.items() if n >= min_count and w not in covered]
    merged = [(p, n, 0) for p, n in chosen] + [(w, n, 1) for w, n in singles]
    merged.sort(key=lambda t: (-t[1], t[2], t[0]))
    return tuple((term, n) for term, n, _ in merged[:limit])


@dataclass(frozen=True)
class Settings:
    drop: float = ALERT_DROP
    min_answers: int = ALERT_MIN_ANSWERS


def make_digest(
    *,
    week: Week,
    tz: tzinfo,
    now: datetime,
    shop: str,
    cells: Sequence[CsatCellLike],
    previous_cells: Sequence[CsatCellLike],
    baseline_cells: Sequence[CsatCellLike],
    complaints_now: ComplaintStatsLike,
    complaints_before: ComplaintStatsLike,
    still_open: int,
    oldest_open: Sequence[OpenTicketLike],
    low_comments: Sequence[CommentLike],
    high_comments: Sequence[CommentLike],
    complaint_texts: Sequence[str],
    series_weeks: Sequence[Week],
    series_tallies: Sequence[TallyLike],
    settings: Settings = Settings(),
    undelivered: int = 0,
    questions: QuestionStatsLike | None = None,
    routes: Sequence[tuple[str, int]] = (),
    zns_spend: tuple[int, int] = (0, 0),
    resolution_zns: tuple[int, int] = (0, 0),
) -> Digest:
    start, end = week_bounds(week, tz)
    return Digest(
        week=week,
        start=start,
        end=end,
        tz=tz,
        shop=shop,
        complete=end <= now,
        csat=csat_section(cells, previous_cells),
        complaints=Complaints(
            now=complaint_figures(complaints_now),
            before=complaint_figures(complaints_before),
            still_open=still_open,
            oldest_open=tuple(OpenItem(ticket_number(t.id), t.category, t.created_at) for t in oldest_open),
        ),
        voice=Voice(
            lowest=lowest_comments(low_comments),
            ideas=best_ideas(high_comments),
            themes=themes(complaint_texts),
        ),
        alerts=alerts(cells, baseline_cells, drop=settings.drop, min_answers=settings.min_answers),
        series=series(series_weeks, series_tallies),
        undelivered=undelivered,
        routes=tuple(sorted(routes)),
        zns_spend=zns_spend,
        resolution_zns=resolution_zns,
        questions=QuestionFigures() if questions is None else QuestionFigures(
            questions.opened, Durations.of(questions.first_response_s)
        ),
    )


# --- JSON (the HTTP API and `feedbot digest --format json`) ------------------------------------


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _figures_json(f: Figures) -> dict[str, Any]:
    return {
        "answers": f.answers,
        "csat_pct": _r(f.csat_pct),
        "mean": _r(f.mean, 2),
        "sent": f.sent,
        "response_rate": _r(f.response_rate),
    }


def _line_json(line: CsatLine) -> dict[str, Any]:
    now, before = line.now, line.before
    return {
        "name": line.name,
        **_figures_json(now),
        "previous": _figures_json(before),
        "change": {
            "csat_pct": _r(line.csat_change),
            "mean": _r(change(now.mean, before.mean), 2),
            "answers": now.answers - before.answers,
            "response_rate": _r(change(now.response_rate, before.response_rate)),
        },
    }


def _durations_json(d: Durations) -> dict[str, Any]:
    return {"count": d.count, "median_s": _r(d.median_s, 0), "p90_s": _r(d.p90_s, 0)}


def _complaints_json(c: ComplaintFigures) -> dict[str, Any]:
    return {
        "opened": c.opened,
        "resolved": c.resolved,
        "by_category": dict(c.by_category),
        "first_response": _durations_json(c.first_response),
        "resolution": _durations_json(c.resolution),
        "sla_pct": _r(c.sla_pct),
        "sla_counted": c.sla_total,
        "resolution_csat": {k: v for k, v in _figures_json(c.resolution_csat).items() if k in ("answers", "csat_pct", "mean")},
        "reopened": c.reopened,
    }


def _quote_json(q: Quote) -> dict[str, Any]:
    return {"score": q.score, "text": q.text, "touchpoint": q.touchpoint, "store": q.store}


def to_json(d: Digest) -> dict[str, Any]:
    local = lambda at: at.astimezone(d.tz).isoformat()  # noqa: E731
    now_c, before_c = d.complaints.now, d.complaints.before
    return {
        "week": str(d.week),
        "timezone": str(d.tz),
        "from": local(d.start),
        "to": local(d.end),
        "complete": d.complete,
        "empty": d.empty,
        "csat": {
            **_line_json(d.csat.total),
            "by_touchpoint": [_line_json(line) for line in d.csat.by_touchpoint],
            "by_store": [_line_json(line) for line in d.csat.by_store],
            "by_tier": [_line_json(line) for line in d.csat.by_tier],
            "undelivered": d.undelivered,
            "by_route": dict(d.routes),
            "zns_spend": {"messages": d.zns_spend[0], "vnd": d.zns_spend[1]},
        },
        "complaints": {
            **_complaints_json(now_c),
            "resolution_by_zns": {"asked": d.resolution_zns[0], "answered": d.resolution_zns[1]},
            "still_open": d.complaints.still_open,
            "oldest_open": [
                {"number": o.number, "category": o.category, "opened_at": local(o.opened_at)}
                for o in d.complaints.oldest_open
            ],
            "previous": _complaints_json(before_c),
            "change": {
                "opened": now_c.opened - before_c.opened,
                "resolved": now_c.resolved - before_c.resolved,
                "sla_pct": _r(change(now_c.sla_pct, before_c.sla_pct)),
                "first_response_median_s": _r(change(now_c.first_response.median_s, before_c.first_response.median_s), 0),
                "resolution_median_s": _r(change(now_c.resolution.median_s, before_c.resolution.median_s), 0),
                "reopened": now_c.reopened - before_c.reopened,
            },
        },
        "questions": {"opened": d.questions.opened, "first_response": _durations_json(d.questions.first_response)},
        "voice": {
            "lowest": [_quote_json(q) for q in d.voice.lowest],
            "ideas": [_quote_json(q) for q in d.voice.ideas],
            "themes": [{"term": t, "count": n} for t, n in d.voice.themes],
        },
        "alerts": [
            {"kind": a.kind, "name": a.name, "csat_pct": _r(a.csat_pct), "baseline_pct": _r(a.baseline_pct),
             "drop": _r(a.drop), "answers": a.answers}
            for a in d.alerts
        ],
        "series": [{"week": str(p.week), "answers": p.answers, "csat_pct": _r(p.csat_pct)} for p in d.series],
    }



# --- numbers as each language writes them --------------------------------------------------


def fmt_pct(value: float | None, language: str) -> str:
    return "–" if value is None else f"{fmt_number(value, language, 1)}%"


def _signed(value: float, language: str, decimals: int) -> str:
    body = fmt_number(abs(value), language, decimals)
    return f"+{body}" if round(value, decimals) > 0 else f"-{body}" if round(value, decimals) < 0 else f"±{body}"


def fmt_points(delta: float | None, language: str) -> str | None:
    """A change of a percentage, in percentage points ("+5,0 điểm" / "+5.0 pts")."""
    return None if delta is None else text(language, "digest.points", value=_signed(delta, language, 1))


def fmt_duration(seconds: float | None, language: str) -> str:
    if seconds is None:
        return "–"
    if seconds < 3600:
        return text(language, "digest.minutes", value=fmt_number(max(1, round(seconds / 60)), language))
    if seconds < 48 * 3600:
        return text(language, "digest.hours", value=fmt_number(seconds / 3600, language, 1))
    return text(language, "digest.days", value=fmt_number(seconds / 86400, language, 1))


def label(language: str, kind: str, name: str) -> str:
    """How a touchpoint, store, tier or category reads in the message."""
    if kind == "category":
        return category_label(language, name)
    if kind == "store":
        return name or text(language, "digest.no_store")
    key = f"{kind}.{name}"
    return text(language, key) if has(language, key) else name.replace("_", " ")


# --- the message ------------------------------------------------------------------------------


def _paren(*parts: str | None) -> str:
    shown = [p for p in parts if p]
    return f" ({', '.join(shown)})" if shown else ""


def _groups(language: str, kind: str, lines: Sequence[CsatLine]) -> str:
    return " · ".join(
        f"{label(language, kind, line.name)} {fmt_pct(line.now.csat_pct, language)} ({fmt_number(line.now.answers, language)})"
        for line in lines
        if line.now.answers
    )


def _quote_line(language: str, q: Quote, with_score: bool) -> str:
    where = label(language, "touchpoint", q.touchpoint) + (f", {q.store}" if q.store else "")
    score = f"{q.score}/5 " if with_score else ""
    return f"• {score}“{q.text}” ({where})"


def render_text(d: Digest, language: str) -> str:
    """The digest as one chat message (under Telegram's 4096 characters)."""
    t = lambda key, **kw: text(language, key, **kw)  # noqa: E731
    n = lambda value: fmt_number(value, language)  # noqa: E731
    first = d.start.astimezone(d.tz)
    last = d.end.astimezone(d.tz) - timedelta(days=1)
    out = [t("digest.title", shop=d.shop, week=str(d.week), first=day_month(first, language), last=day_month(last, language))]
    if not d.complete:
        out.append(t("digest.partial"))
    if d.empty:
        out.append("")
        out.append(t("digest.empty", week=str(d.week)))
        if d.complaints.still_open:
            out.append(plural(language, "digest.still_open_only", d.complaints.still_open, count=n(d.complaints.still_open)))
        return "\n".join(out)

    csat = d.csat.total
    out.append("")
    if csat.now.answers:
        answers_change = csat.now.answers - csat.before.answers if csat.before.answers else None
        out.append(t(
            "digest.csat",
            csat=fmt_pct(csat.now.csat_pct, language) + _paren(fmt_points(csat.csat_change, language)),
            mean=fmt_number(csat.now.mean or 0, language, 1)
            + _paren(None if csat.before.mean is None else _signed((csat.now.mean or 0) - csat.before.mean, language, 1)),
            answers=plural(language, "digest.n_answers", csat.now.answers, n=n(csat.now.answers)),
            answers_change=_paren(None if answers_change is None else _signed(answers_change, language, 0)),
            rate=fmt_pct(csat.now.response_rate, language),
        ))
        for kind, lines in (("touchpoint", d.csat.by_touchpoint), ("store", d.csat.by_store), ("tier", d.csat.by_tier)):
            items = _groups(language, kind, lines)
            if items:
                out.append(t(f"digest.by_{kind}", items=items))
    else:
        out.append(t("digest.csat_none", sent=plural(language, "digest.n_sent", csat.now.sent, n=n(csat.now.sent))))
    if d.undelivered:
        out.append(t("digest.undelivered", count=n(d.undelivered)))
    if any(route == "zns" for route, _ in d.routes) or d.zns_spend[0]:
        out.append(t("digest.routes", routes=", ".join(f"{ROUTE_LABELS.get(r, r)} {n(c)}" for r, c in d.routes)))
        out.append(t("digest.zns_spend", messages=n(d.zns_spend[0]), vnd=n(d.zns_spend[1])))

    c, before = d.complaints.now, d.complaints.before
    out.append("")
    out.append(t(
        "digest.complaints",
        opened=n(c.opened),
        opened_change=_paren(_signed(c.opened - before.opened, language, 0) if before.opened or c.opened else None),
        resolved=n(c.resolved),
        still_open=n(d.complaints.still_open),
    ))
    if c.by_category:
        out.append(t("digest.categories", items=" · ".join(f"{label(language, 'category', k)} {n(v)}" for k, v in c.by_category)))
    if c.first_response.count or c.resolution.count:
        out.append(t(
            "digest.times",
            first_median=fmt_duration(c.first_response.median_s, language),
            first_p90=fmt_duration(c.first_response.p90_s, language),
            resolution_median=fmt_duration(c.resolution.median_s, language),
            resolution_p90=fmt_duration(c.resolution.p90_s, language),
        ))
    if c.sla_total or c.resolution_csat.answers or c.reopened:
        out.append(t(
            "digest.sla",
            sla=fmt_pct(c.sla_pct, language) + _paren(fmt_points(change(c.sla_pct, before.sla_pct), language)),
            resolution_csat=fmt_pct(c.resolution_csat.csat_pct, language) + f" ({n(c.resolution_csat.answers)})",
            reopened=n(c.reopened),
        ))
    if d.resolution_zns[0] or d.resolution_zns[1]:
        out.append(t("digest.resolution_zns", asked=n(d.resolution_zns[0]), answered=n(d.resolution_zns[1])))
    if d.complaints.oldest_open:
        items = " · ".join(
            t("digest.open_item", number=o.number, category=label(language, "category", o.category),
              date=day_month(o.opened_at.astimezone(d.tz), language))
            for o in d.complaints.oldest_open
        )
        out.append(t("digest.oldest", items=items))
    q = d.questions
    if q.opened or q.first_response.count:
        out.append(t("digest.questions", opened=n(q.opened), first_median=fmt_duration(q.first_response.median_s, language)))

    v = d.voice
    out.append("")
    out.append(t("digest.voice"))
    if v.lowest:
        out.append(t("digest.lowest"))
        out.extend(_quote_line(language, q, True) for q in v.lowest)
    if v.ideas:
        out.append(t("digest.ideas"))
        out.extend(_quote_line(language, q, False) for q in v.ideas)
    if v.themes:
        out.append(t("digest.themes", items=", ".join(f"{term} ({n(count)})" for term, count in v.themes)))
    if not (v.lowest or v.ideas or v.themes):
        out.append(t("digest.voice_none"))

    if d.alerts:
        out.append("")
        for a in d.alerts:
            out.append(t(
                "digest.alert", kind=t(f"digest.kind_{a.kind}"), name=label(language, a.kind, a.name),
                csat=fmt_pct(a.csat_pct, language), baseline=fmt_pct(a.baseline_pct, language),
                drop=fmt_points(-a.drop, language), answers=plural(language, "digest.n_answers", a.answers, n=n(a.answers)),
            ))
    return _fit("\n".join(out))


def _utf16(body: str) -> int:
    return len(body.encode("utf-16-le")) // 2  # how Telegram counts (an emoji is 2)


def _fit(message: str) -> str:
    """Whole lines up to Telegram's limit; quotes are already short, so this rarely bites."""
    if _utf16(message) <= MAX_TEXT:
        return message
    kept: list[str] = []
    for line in message.split("\n"):
        if _utf16("\n".join([*kept, line, "…"])) > MAX_TEXT:
            break
        kept.append(line)
    return "\n".join([*kept, "…"])
