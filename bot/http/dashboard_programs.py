"""The dashboard's survey-program page (/dashboard/programs, issue 21): each program's figures
over the chosen range (NPS as promoters - detractors, CES, CSAT, the choices), the journey view
(stages side by side, complaints and their categories per stage, the stage where the drop
started: flows/feedback_digest.journey, the digest's own rule) and CSAT per staff member; and,
for owners only, the programs' editing (bot/services/program_admin.py).

Who sees what: owners everything; a store's manager only their stores' figures (program answers
about no purchase belong to no store), staff of their stores only; agents nothing (403). The
range and store scope are the main dashboard's (bot/http/dashboard.py)."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from aiohttp import web

from bot.clock import Clock
from bot.http.auth import WebAuth, as_json, error
from bot.http.body import BodyError, read_json
from bot.http.dashboard import Dashboard
from bot.http.static import StaticFiles
from bot.services.program_admin import Editor, EditError, ProgramAdmin
from flows.dashboard_programs import catalog
from flows.feedback_digest import Tally, journey
from flows.programs import SCALES, ces, nps
from storage import dashboard_programs as q
from storage.accounts import SessionRow
from storage.db import Database

STATIC_DIR = Path(__file__).parent / "dashboard_static"
VIEWERS = ("owner", "manager")
OWNERS = ("owner",)
MAX_EDIT_BYTES = 32 * 1024


class Days(NamedTuple):
    """A range's shop days as the rollups key them: [first, after), and the period before it [previous, first)."""
    previous: str
    first: str
    after: str


class DashboardPrograms:
    def __init__(self, *, db: Database, clock: Clock, auth: WebAuth, dashboard: Dashboard, admin: ProgramAdmin | None,
                 stages: tuple[str, ...], drop_points: float, min_answers: int, language: str) -> None:
        self.db = db
        self.clock = clock
        self.auth = auth
        self.dashboard = dashboard  # its range and store scope
        self.admin = admin  # None: no [[programs]] configured, nothing to edit
        self.stages = stages
        self.drop_points = drop_points
        self.min_answers = min_answers
        self.lang = language
        self.static = StaticFiles(STATIC_DIR, ("programs.js",))
        page = (STATIC_DIR / "programs.html").read_text(encoding="utf-8")
        strings = json.dumps({"vi": catalog("vi"), "en": catalog("en")}, ensure_ascii=False).replace("<", "\\u003c")
        self.page = page.replace("{{strings}}", strings)

    def register(self, app: web.Application) -> None:
        r, auth = app.router, self.auth
        r.add_get("/dashboard/programs", auth.page(self.index_page, VIEWERS))
        r.add_get("/dashboard/programs/static/{name}", self.static.handle)
        for path, (handler, roles) in self.routes().items():
            r.add_get(path, auth.guard(self.dashboard.checked(handler), roles))
        r.add_post("/dashboard/api/programs/{name}", auth.guard(self.edit, OWNERS, change=True))
        r.add_post("/dashboard/api/programs/{name}/reset", auth.guard(self.reset, OWNERS, change=True))

    def routes(self) -> dict[str, tuple[Any, tuple[str, ...]]]:
        """Every JSON GET route and who may read it (tests walk them all as each role)."""
        return {
            "/dashboard/api/programs/figures": (self.figures, VIEWERS),
            "/dashboard/api/journey": (self.journey, VIEWERS),
            "/dashboard/api/staff": (self.staff, VIEWERS),
            "/dashboard/api/programs": (self.programs, OWNERS),
        }

    async def index_page(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        return web.Response(text=self.page.replace("{{lang}}", self.lang), content_type="text/html")

    def _window(self, request: web.Request) -> tuple[str, str, Any, Any, Days]:
        """The range (first and last day, shop midnights around it) and its shop days for the rollups."""
        lo, hi = self.dashboard._range(request)
        start, end = self.dashboard._bounds(lo, hi)
        span = hi - lo + timedelta(days=1)
        return lo.isoformat(), hi.isoformat(), start, end, Days((lo - span).isoformat(), lo.isoformat(),
                                                              (hi + timedelta(days=1)).isoformat())

    # --- figures -------------------------------------------------------------------------------

    async def figures(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        lo, hi, _, _, days = self._window(request)
        rows = await q.program_answers(self.db.reader, days.first, days.after, self.dashboard._scope(request, session))
        by_program: dict[tuple[str, str], dict[tuple[int | None, str | None], int]] = {}
        for program, kind, score, choice, n in rows:
            by_program.setdefault((program, kind), {})[(score, choice)] = n
        return {"from": lo, "to": hi, "programs": [program_figures(name, kind, counts)
                                                  for (name, kind), counts in sorted(by_program.items())]}

    async def journey(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        lo, hi, start, end, days = self._window(request)
        scope = self.dashboard._scope(request, session)
        conn = self.db.reader
        now_rows = await q.csat_by(conn, "stage", days.first, days.after, scope)
        before_rows = await q.csat_by(conn, "stage", days.previous, days.first, scope)
        complaints = await q.complaints_by_stage(conn, start, end, scope)
        view = journey(self.stages, _by_name(now_rows), _by_name(before_rows), complaints,
                       drop_points=self.drop_points, min_answers=self.min_answers)
        return {
            "from": lo, "to": hi, "drop_started_at": view.drop_started_at,
            "stages": [{
                "stage": s.stage, "answers": s.now.answers, "csat": _round(s.now.pct),
                "previous_answers": s.before.answers, "previous_csat": _round(s.before.pct),
                "complaints": s.complaints, "top_category": s.top_category,
                "categories": [{"key": k, "count": v} for k, v in sorted(complaints.get(s.stage, {}).items(),
                                                                         key=lambda kv: (-kv[1], kv[0]))],
            } for s in view.stages],
        }

    async def staff(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        """CSAT per staff member and store: owners every store's, a manager their stores' only."""
        lo, hi, _, _, days = self._window(request)
        rows = await q.csat_by(self.db.reader, "staff", days.first, days.after, self.dashboard._scope(request, session))
        staff = [{"store": store, "staff": name, "answers": n, "csat": _round(100 * sat / n if n else None),
                  "mean": round(total / n, 2) if n else None}
                 for store, name, n, sat, total in rows if name]
        staff.sort(key=lambda r: (r["csat"] if r["csat"] is not None else 101, r["store"], r["staff"]))
        return {"from": lo, "to": hi, "staff": staff}

    # --- editing (owners) ----------------------------------------------------------------------

    async def programs(self, request: web.Request, session: SessionRow) -> dict[str, Any]:
        return {"programs": await self.admin.list() if self.admin else [], "csrf": session.csrf}

    async def edit(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        if self.admin is None:
            return error(404, "no [[programs]] configured")
        try:
            body, _ = await read_json(request, MAX_EDIT_BYTES)
        except BodyError as exc:
            return error(exc.status, exc.message)
        if not isinstance(body, dict):
            return error(400, "body: expected an object with enabled and/or changes")
        enabled, changes = body.get("enabled"), body.get("changes")
        if enabled is not None and not isinstance(enabled, bool):
            return error(400, "enabled: true or false")
        if changes is not None and not isinstance(changes, dict):
            return error(400, "changes: an object of the program's keys")
        try:
            await self.admin.edit(request.match_info["name"], _editor(session), enabled=enabled, changes=changes)
        except KeyError:
            return error(404, "no such program in [[programs]]")
        except EditError as exc:
            return error(400, str(exc))
        return as_json({"programs": await self.admin.list()})

    async def reset(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        if self.admin is None:
            return error(404, "no [[programs]] configured")
        try:
            await self.admin.reset(request.match_info["name"], _editor(session))
        except KeyError:
            return error(404, "no such program in [[programs]]")
        return as_json({"programs": await self.admin.list()})


def _editor(session: SessionRow) -> Editor:
    return Editor(session.account.id, session.account.login)


def program_figures(name: str, kind: str, counts: dict[tuple[int | None, str | None], int]) -> dict[str, Any]:
    """One program's figures from its answers' counts: the arithmetic of flows/programs.py."""
    scores = [(s, n) for (s, _), n in counts.items() if s is not None]
    choices: dict[str, int] = {}
    for (_, c), n in counts.items():
        if c is not None:
            choices[c] = choices.get(c, 0) + n
    out: dict[str, Any] = {"name": name, "kind": kind, "answers": sum(counts.values()),
                           "choices": [{"key": k, "count": v} for k, v in sorted(choices.items(), key=lambda kv: (-kv[1], kv[0]))]}
    every = (s for s, n in scores for _ in range(n))
    if kind == "nps":
        f = nps(every)
        out["nps"] = {"score": _round(f.score), "promoters": f.promoters, "passives": f.passives,
                      "detractors": f.detractors, "answers": f.answers}
    elif kind == "ces":
        c = ces(every)
        out["ces"] = {"mean": None if c.mean is None else round(c.mean, 2), "easy": _round(c.easy_share),
                      "easy_answers": c.easy, "hard_answers": c.hard, "answers": c.answers}
    elif kind == "csat" and kind in SCALES:
        answered = sum(n for _, n in scores)
        satisfied = sum(n for s, n in scores if s >= 4)
        out["csat"] = {"csat": _round(100 * satisfied / answered if answered else None), "answers": answered,
                       "mean": round(sum(s * n for s, n in scores) / answered, 2) if answered else None}
    return out


def _by_name(rows: list[tuple[str, str, int, int, int]]) -> dict[str, Tally]:
    sums: dict[str, list[int]] = {}
    for _, name, n, sat, _total in rows:
        cell = sums.setdefault(name, [0, 0])
        cell[0] += n
        cell[1] += sat
    return {k: Tally(*v) for k, v in sums.items()}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def mount(app: web.Application, **kwargs: Any) -> DashboardPrograms:
    page = DashboardPrograms(**kwargs)
    page.register(app)
    return page
