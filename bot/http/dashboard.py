"""The owners' and store managers' dashboard at /dashboard: CSAT over time with the previous
period and breakdowns (from the rollups), comments with Vietnamese search, a customer's history,
and complaint figures. Static page + JSON; owners see every store, a manager only theirs (the
scope is applied in every query, whatever the request asks); agents are refused."""
from __future__ import annotations

import math
from collections import Counter
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.clock import Clock
from bot.http.static import StaticFiles
from bot.http.auth import WebAuth, as_json, error
from flows.dashboard import catalog
from storage import dashboard, ticket_rollups
from storage.accounts import SessionRow
from storage.dashboard import DIMENSIONS, Filters
from storage.db import Database

STATIC_DIR = Path(__file__).parent / "dashboard_static"
ROLES = ("owner", "manager")
MAX_DAYS = 366 * 2 + 1  # any range up to two years
# Dates the arithmetic can take: the previous period before `from`, the day after `to`, shop
# midnights in UTC (0001-01-01 or 9999-12-31 raised OverflowError: a 500).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
GROUPS = ("day", "week", "month")


class BadRequest(ValueError):
    pass


class Dashboard:
    def __init__(self, *, db: Database, clock: Clock, auth: WebAuth, timezone: tzinfo, language: str, shop_name: str) -> None:
        self.db = db
        self.clock = clock
        self.auth = auth
        self.tz = timezone
        self.lang = language
        self.shop_name = shop_name
        self.static = StaticFiles(STATIC_DIR, ("app.js", "app.css"))
        self.index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    def register(self, app: web.Application) -> None:
        r, auth = app.router, self.auth
        r.add_get("/dashboard", auth.page(self.index_page, ROLES))
        r.add_get("/dashboard/static/{name}", self.static.handle)
        for path, handler in self.routes().items():
            r.add_get(path, auth.guard(self.checked(handler), ROLES))

    def routes(self) -> dict[str, Any]:
        """Every JSON route (tests walk them all)."""
        return {
            "/dashboard/api/session": self.session_info,
            "/dashboard/api/csat": self.csat,
            "/dashboard/api/comments": self.comments,
            "/dashboard/api/complaints": self.complaints,
            "/dashboard/api/customers/{customer_id}": self.customer,
        }

    def checked(self, handler: Any) -> Any:
        async def run(request: web.Request, session: SessionRow) -> web.StreamResponse:
            if any("\x00" in value for value in request.query.values()):  # no text PostgreSQL (or the search) takes
                return error(400, "a query parameter with a NUL character")
            try:
                return as_json(await handler(request, session))
            except BadRequest as exc:
                return error(400, str(exc))
        return run

    async def index_page(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        return web.Response(text=self.index.replace("{{lang}}", self.lang), content_type="text/html")

    # --- the request -------------------------------------------------------------------------

    def _scope(self, request: web.Request, session: SessionRow) -> tuple[str, ...] | None:
        """The stores asked for (?store=), within the account's: a manager never gets more than theirs."""
        asked = [s for s in request.query.getall("store", []) if s]
        own = session.account.stores if session.account.role == "manager" else None
        if own is None:
            return tuple(asked) or None
        return tuple(s for s in asked if s in own) if asked else own

    def _range(self, request: web.Request) -> tuple[date, date]:
        """[from, to] shop days, both included; default: the last 30 days."""
        today = self.clock.now().astimezone(self.tz).date()
        try:
            hi = date.fromisoformat(request.query["to"]) if request.query.get("to") else today
            lo = date.fromisoformat(request.query["from"]) if request.query.get("from") else hi - timedelta(days=29)
        except ValueError:
            raise BadRequest("from, to: dates like 2026-11-30") from None
        if lo > hi:
            raise BadRequest("from: after to")
        if lo < FIRST_DAY or hi > LAST_DAY:
            raise BadRequest(f"from, to: between {FIRST_DAY} and {LAST_DAY}")
        if (hi - lo).days + 1 > MAX_DAYS:
            raise BadRequest("from, to: at most two years")
        return lo, hi

    def _bounds(self, lo: date, hi: date) -> tuple[datetime, datetime]:
        return (datetime.combine(lo, time(), self.tz), datetime.combine(hi + timedelta(days=1), time(), self.tz))

    # --- JSON --------------------------------------------------------------------------------

    async def session_info(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        account = session.account
        all_stores = await dashboard.stores(self.db.reader)
        return {
            "login": account.login, "name": account.name, "role": account.role, "csrf": session.csrf,
            "stores": list(account.stores) if account.role == "manager" else all_stores,
            "shop": self.shop_name, "language": self.lang,
            "strings": {"vi": catalog("vi"), "en": catalog("en")},
            "today": self.clock.now().astimezone(self.tz).date().isoformat(),
        }

    async def csat(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        lo, hi = self._range(request)
        group = request.query.get("group", "day")
        if group not in GROUPS:
            raise BadRequest(f"group: one of {', '.join(GROUPS)}")
        by = [d for d in request.query.getall("by", []) if d] or list(DIMENSIONS)
        if any(d not in DIMENSIONS for d in by):
            raise BadRequest(f"by: one of {', '.join(DIMENSIONS)}")
        q = request.query
        f = Filters(stores=self._scope(request, session), touchpoint=q.get("touchpoint", ""), tier=q.get("tier", ""),
                    channel=q.get("channel", ""))
        span = (hi - lo).days + 1
        p_lo, p_hi = lo - timedelta(days=span), lo - timedelta(days=1)
        conn = self.db.reader
        end = (hi + timedelta(days=1)).isoformat()
        days = await dashboard.csat_by_day(conn, p_lo.isoformat(), end, f)
        current = [d for d in days if d[0] >= lo.isoformat()]
        previous = [d for d in days if d[0] < lo.isoformat()]
        result = {
            "from": lo.isoformat(), "to": hi.isoformat(), "group": group,
            "previous_from": p_lo.isoformat(), "previous_to": p_hi.isoformat(),
            "totals": _figures(_sum(current)), "previous_totals": _figures(_sum(previous)),
            "series": _series(current, previous, lo, hi, p_lo, group),
            "breakdowns": _breakdowns(await dashboard.csat_combinations(conn, lo.isoformat(), end, f), by),
        }
        _add_response_rates(result, None if f.tier or f.channel else
                            await dashboard.csat_sends(conn, p_lo.isoformat(), lo.isoformat(), end, f))
        return result

    async def comments(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        lo, hi = self._range(request)
        start, end = self._bounds(lo, hi)
        q = request.query
        try:
            scores = [int(s) for s in q.getall("score", []) if s]
        except ValueError:
            raise BadRequest("score: 1 to 5") from None
        if any(not 1 <= s <= 5 for s in scores):
            raise BadRequest("score: 1 to 5")
        complaint = {"yes": True, "no": False}.get(q.get("complaint", ""))
        rows = await dashboard.comments(
            self.db.reader, start, end, stores=self._scope(request, session), query=q.get("q", "")[:200], scores=scores,
            touchpoint=q.get("touchpoint", ""), channel=q.get("channel", ""), has_complaint=complaint)
        return {"comments": [{
            "survey_id": c.survey_id, "answered_at": c.answered_at.astimezone(self.tz).strftime("%Y-%m-%d %H:%M"),
            "score": c.score, "comment": c.comment, "touchpoint": c.touchpoint, "store": c.store, "channel": c.channel,
            "customer_id": c.customer_id, "customer": c.customer_name, "order_id": c.order_id, "ticket_id": c.ticket_id,
        } for c in rows]}

    async def customer(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        raw = request.match_info["customer_id"]
        if not raw.isascii() or not raw.isdigit():  # int() takes "-1", " 1" and "١"
            raise BadRequest("customer: a number")
        customer_id = int(raw) if len(raw) < 19 else 0  # past 64 bits: no such customer (the database cannot take it)
        own = session.account.stores if session.account.role == "manager" else None
        history = await dashboard.customer_history(self.db.reader, customer_id, own)
        if history is None:
            raise web.HTTPNotFound(text='{"error": {"status": 404, "message": "not found"}}', content_type="application/json")
        fmt = "%Y-%m-%d %H:%M"
        for o in history["orders"]:
            o["purchased_at"] = o["purchased_at"].astimezone(self.tz).strftime(fmt)
            o["answered_at"] = o["answered_at"].astimezone(self.tz).strftime(fmt) if o["answered_at"] else None
        for t in history["tickets"]:
            t["number"] = ("KN-" if t["kind"] == "complaint" else "CH-") + f"{t['id']:04d}"
            t["created_at"] = t["created_at"].astimezone(self.tz).strftime(fmt)
            t["resolved_at"] = t["resolved_at"].astimezone(self.tz).strftime(fmt) if t["resolved_at"] else None
        return history

    async def complaints(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        """Complaint figures from the complaint rollups (storage/ticket_rollups.py): days x stores x
        categories rows, not tickets; times to a bucket's precision; the oldest open from an index."""
        lo, hi = self._range(request)
        scope = self._scope(request, session)
        conn = self.db.reader
        first, end = lo.isoformat(), (hi + timedelta(days=1)).isoformat()
        days = {day: (n_opened, n_resolved) for day, n_opened, n_resolved in await ticket_rollups.by_day(conn, first, end, scope)}
        by_category = await ticket_rollups.by_category(conn, first, end, scope)
        still_open = await ticket_rollups.open_before(conn, first, scope)
        categories = {c[0]: c[1] for c in by_category if c[1]}
        opened, reopened, _responded, closed, met = (sum(c[i] for c in by_category) for i in range(1, 6))
        over_time = []
        for i in range((hi - lo).days + 1):
            d = (lo + timedelta(days=i)).isoformat()
            n_opened, n_resolved = days.get(d, (0, 0))
            still_open += n_opened - n_resolved
            over_time.append({"day": d, "opened": n_opened, "resolved": n_resolved, "open": still_open})
        times = await ticket_rollups.durations(conn, first, end, scope)
        agents = await ticket_rollups.ratings_by_agent(conn, first, end, scope)
        now = self.clock.now()
        oldest = await ticket_rollups.oldest_open(conn, scope)
        return {
            "from": lo.isoformat(), "to": hi.isoformat(),
            "opened": opened, "resolved": closed,
            "over_time": over_time,
            "by_category": [{"key": k, "count": v} for k, v in sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))],
            "first_response_hours": {"median": _hours(_bucket_quantile(times["first_response"], 0.5)),
                                     "p90": _hours(_bucket_quantile(times["first_response"], 0.9))},
            "resolution_hours": {"median": _hours(_bucket_quantile(times["resolution"], 0.5)),
                                 "p90": _hours(_bucket_quantile(times["resolution"], 0.9))},
            "sla_compliance": round(100 * met / closed, 1) if closed else None,
            "reopen_rate": round(100 * reopened / opened, 1) if opened else None,
            "by_agent": _agents(agents),
            "oldest_open": [{"id": i, "number": f"KN-{i:04d}", "category": category,
                             "age_hours": round((now - created).total_seconds() / 3600, 1)} for i, category, created in oldest],
        }


# --- figures -----------------------------------------------------------------------------------


def _breakdowns(combinations: list[tuple], by: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each dimension's values, added up from the shop's combinations, most answers first."""
    result = {}
    for d in by:
        cells: dict[str, list[int]] = {}
        for combination in combinations:
            cell = cells.setdefault(combination[DIMENSIONS_ORDER.index(d)], [0, 0, 0, 0])
            for i in range(4):
                cell[i] += combination[4 + i]
        result[d] = [{"key": k, **_figures(v)} for k, v in sorted(cells.items(), key=lambda kv: (-kv[1][0], kv[0]))]
    return result


DIMENSIONS_ORDER = ("store", "touchpoint", "tier", "channel")  # a combination's columns


def _add_response_rates(result: dict[str, Any], sends: list[tuple[str, str, int, int]] | None) -> None:
    """Surveys sent and the response rate (answers / sent, %) in the totals and the store and
    touchpoint breakdowns; None where sends are not known (a tier or channel filter)."""
    def rate(figures: dict[str, Any], sent: int | None) -> None:
        figures["sent"] = sent
        figures["response_rate"] = round(100 * figures["answers"] / sent, 1) if sent else None

    rate(result["totals"], None if sends is None else sum(s[2] for s in sends))
    rate(result["previous_totals"], None if sends is None else sum(s[3] for s in sends))
    for dimension, column in (("store", 0), ("touchpoint", 1)):
        for row in result["breakdowns"].get(dimension, []):
            rate(row, None if sends is None else sum(s[2] for s in sends if s[column] == row["key"]))


def _sum(days: list[tuple[str, int, int, int, int]]) -> tuple[int, int, int, int]:
    return (sum(d[1] for d in days), sum(d[2] for d in days), sum(d[3] for d in days), sum(d[4] for d in days))


def _figures(cell: Any) -> dict[str, Any]:
    answers, satisfied, dissatisfied, score_sum = cell
    if not answers:
        return {"answers": 0, "csat": None, "mean": None, "dissatisfied": None}
    return {
        "answers": answers,
        "csat": round(100 * satisfied / answers, 1),  # % of 4-5
        "mean": round(score_sum / answers, 2),
        "dissatisfied": round(100 * dissatisfied / answers, 1),
    }


def _period_start(d: date, group: str) -> date:
    if group == "week":
        return d - timedelta(days=d.weekday())
    if group == "month":
        return d.replace(day=1)
    return d


def _series(current: list, previous: list, lo: date, hi: date, p_lo: date, group: str) -> list[dict[str, Any]]:
    """One point per period of the range, each with the same-offset period of the previous range.
    Two years by day are 730 points: each day's period is found by its offset from `lo` (a list
    index), not by date arithmetic per row."""
    lo_ordinal, offset = lo.toordinal(), (lo - p_lo).days
    starts: list[date] = []
    slot: list[int] = []  # the period of lo + i
    for i in range((hi - lo).days + 1):
        start = _period_start(lo + timedelta(days=i), group) if group != "day" else lo + timedelta(days=i)
        if not starts or starts[-1] != start:
            starts.append(start)
        slot.append(len(starts) - 1)
    cells = [[0, 0, 0, 0] for _ in starts]
    earlier = [[0, 0, 0, 0] for _ in starts]
    for rows, into, shift in ((current, cells, 0), (previous, earlier, offset)):
        for day, answers, satisfied, dissatisfied, score_sum in rows:
            i = date.fromisoformat(day).toordinal() + shift - lo_ordinal
            if 0 <= i < len(slot):
                cell = into[slot[i]]
                cell[0] += answers
                cell[1] += satisfied
                cell[2] += dissatisfied
                cell[3] += score_sum
    return [{"period": start.isoformat(), **_figures(cell), "previous": _figures(before)}
            for start, cell, before in zip(starts, cells, earlier)]


def _bucket_quantile(counts: dict[int, int], q: float) -> float | None:
    """The q-quantile (seconds) of durations counted in buckets (storage/ticket_rollups.py EDGES):
    the rank's bucket, and within it a linear interpolation (a bucket's only value: its middle; the
    last, open bucket: its lower edge).
    The true value lies in the same bucket as the one given."""
    total = sum(counts.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))  # the rank-th smallest, as the exact quantile over the tickets
    seen = 0
    for b in sorted(counts):
        if seen + counts[b] >= rank:
            lower, upper = ticket_rollups.bucket_bounds(b)
            if upper is None:
                return lower
            return lower + (upper - lower) * (rank - seen - 0.5) / counts[b]
        seen += counts[b]
    return None  # not reached


def _agents(rows: list[tuple[str, str, int, int, int, int]]) -> list[dict[str, Any]]:
    """Resolution ratings by agent (one agent under several names: the name with most ratings)."""
    cells: dict[str, list[int]] = {}
    names: dict[str, Counter[str]] = {}
    for agent_id, name, *values in rows:
        cell = cells.setdefault(agent_id, [0, 0, 0, 0])
        for i, v in enumerate(values):
            cell[i] += v
        names.setdefault(agent_id, Counter())[name] += values[0]
    return [{"key": agent_id, "name": names[agent_id].most_common(1)[0][0] or agent_id, **_figures(v)}
            for agent_id, v in sorted(cells.items(), key=lambda kv: (-kv[1][0], kv[0]))]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 1)


async def mount(app: web.Application, *, db: Database, clock: Clock, auth: WebAuth, timezone: tzinfo, language: str,
                shop_name: str) -> Dashboard:
    page = Dashboard(db=db, clock=clock, auth=auth, timezone=timezone, language=language, shop_name=shop_name)
    page.register(app)
    return page
