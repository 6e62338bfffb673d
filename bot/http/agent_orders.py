"""/agent/orders on the agents' page: "Gửi khảo sát" (a survey by hand for a phone number or a
chat) and an order import form (the same import as `feedbot import`). Plain server-rendered
forms (no script), behind the page's session and its CSRF token."""
from __future__ import annotations

import hmac
import html
import logging
from typing import Any

from aiohttp import web

from bot.http.agent_page import AgentPage
from bot.http.auth import UNREADABLE_FORM, read_form, secured
from bot.services.accounts import ROLES
from bot.services.manual_survey import send_survey
from bot.services.order_import import KINDS, ImportError_, import_orders, read_rows
from bot.services.orders import OrderIntake
from bot.services.purchases import InputError
from flows.agent_page import catalog, page_text
from flows.schedule import SurveyPolicy
from storage.accounts import SessionRow as Session

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_LINES_SHOWN = 50
# Importing writes many purchases at once: the shop's owner and store managers, not every agent.
IMPORT_ROLES = ("owner", "manager")
IMPORT_NAMES = {"kiotviet-export": "kiotviet", "sapo-export": "sapo", "haravan-export": "haravan", "generic": "import"}


class AgentOrders:
    def __init__(self, page: AgentPage, intake: OrderIntake, policy: SurveyPolicy, touchpoints: tuple[str, ...]) -> None:
        self.page = page
        self.intake = intake
        self.policy = policy
        self.touchpoints = touchpoints

    def register(self, app: web.Application) -> None:
        auth = self.page.auth
        app.router.add_get("/agent/orders", auth.page(self.show, ROLES))
        app.router.add_post("/agent/orders/survey", auth.page(self.survey, ROLES))
        app.router.add_post("/agent/orders/import", auth.page(self.upload, IMPORT_ROLES))

    async def show(self, request: web.Request, session: Session) -> web.StreamResponse:
        return self._render(session)

    async def survey(self, request: web.Request, session: Session) -> web.StreamResponse:
        form = await read_form(request)
        if form is None:
            return self._render(session, error=UNREADABLE_FORM, status=400)
        if not _csrf_ok(session, str(form.get("csrf", ""))):
            return self._render(session, error="missing or wrong CSRF token", status=403)
        lang = self.page.lang
        touchpoint = str(form.get("touchpoint", ""))
        if touchpoint not in self.touchpoints:
            touchpoint = self.touchpoints[0]
        try:
            outcome = await send_survey(self.intake.db, self.intake.clock, self.policy, self.touchpoints,
                                        target=str(form.get("target", "")), name=str(form.get("name", "")),
                                        touchpoint=touchpoint, note=str(form.get("note", "")))
        except InputError as exc:
            return self._render(session, error=exc.message, status=400, values=form)
        self.page.desk.wake_sender()
        log.info("agent page: %s asked for a survey by hand (%s)", session.account.name, outcome.order_id)
        return self._render(session, message=page_text(lang, "orders.sent", order=outcome.order_id,
                                                      status=outcome.survey_status))

    async def upload(self, request: web.Request, session: Session) -> web.StreamResponse:
        lang = self.page.lang
        if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
            return self._render(session, error=page_text(lang, "orders.too_big", mb=MAX_UPLOAD_BYTES // 2**20), status=413)
        fields: dict[str, Any] = {}
        data = b""
        filename = ""
        try:
            reader = await request.multipart()
            async for part in reader:
                if part.name == "file":
                    filename = part.filename or ""
                    chunks = bytearray()
                    while chunk := await part.read_chunk(256 * 1024):
                        chunks += chunk
                        if len(chunks) > MAX_UPLOAD_BYTES:
                            return self._render(session, status=413,
                                                error=page_text(lang, "orders.too_big", mb=MAX_UPLOAD_BYTES // 2**20))
                    data = bytes(chunks)
                elif part.name in ("csrf", "kind", "dry_run"):
                    fields[part.name] = (await part.text())[:200]
        except (ValueError, AssertionError, LookupError):  # LookupError: a part's charset Python does not know
            return self._render(session, error="expected a multipart form", status=400)
        if not _csrf_ok(session, fields.get("csrf", "")):
            return self._render(session, error="missing or wrong CSRF token", status=403)
        if not data:
            return self._render(session, error=page_text(lang, "orders.no_file"), status=400)
        kind = fields.get("kind", "generic")
        if kind not in KINDS:
            kind = "generic"
        dry_run = bool(fields.get("dry_run"))
        try:
            report = await import_orders(self.intake, read_rows(filename or "upload.csv", data), kind=kind,
                                         source=IMPORT_NAMES[kind], dry_run=dry_run,
                                         stores=self.page._scope(session))  # a manager: their stores' orders only
        except ImportError_ as exc:
            return self._render(session, error=str(exc), status=400)
        if not dry_run:
            self.page.desk.wake_sender()
        log.info("agent page: %s imported %s (%s): %d recorded", session.account.name, kind, "dry run" if dry_run else "written",
                 report.recorded)
        t = catalog(lang)
        done = (t["orders.report_dry"].format(valid=report.valid) if dry_run else t["orders.report_done"].format(
            recorded=report.recorded, scheduled=report.scheduled, already=report.already))
        summary = t["orders.report"].format(rows=report.rows, orders=report.orders, done=done,
                                            cancelled=report.skipped_cancelled, duplicates=len(report.duplicates),
                                            errors=len(report.errors))
        problems = sorted(report.duplicates + report.errors, key=lambda p: p.line)
        lines = [t["orders.line"].format(line=p.line, message=p.message) for p in problems[:MAX_LINES_SHOWN]]
        if dry_run:
            lines = [f"{p['line']}: {p['order_id']} · {p['customer']} · {p['phone'] or '-'} · {p['amount']} "
                     f"{p['currency']} · {p['touchpoint']} · {p['purchased_at']}" for p in report.preview] + lines
        return self._render(session, message=summary, lines=lines)

    # --- the page -------------------------------------------------------------------------------

    def _render(self, session: Session, *, message: str = "", error: str = "", lines: list[str] | None = None,
                status: int = 200, values: Any = None) -> web.Response:
        t = catalog(self.page.lang)
        e = html.escape
        csrf = e(session.csrf)
        values = values or {}
        options = "".join(f'<option value="{e(tp)}">{e(tp)}</option>' for tp in self.touchpoints)
        kinds = "".join(f'<option value="{e(k)}">{e(k)}</option>' for k in KINDS)
        note = ""
        if error:
            note = f'<p class="alert" role="alert">{e(error)}</p>'
        elif message:
            note = f'<p class="status" role="status">{e(message)}</p>'
        listing = "".join(f"<li>{e(line)}</li>" for line in lines or [])
        listing = f'<ul class="report">{listing}</ul>' if listing else ""
        body = f"""<!doctype html>
<html lang="{e(self.page.lang)}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(page_text(self.page.lang, "orders.title", shop=self.page.shop_name))}</title>
<link rel="stylesheet" href="/agent/static/app.css"></head>
<body class="orders">
<header class="bar"><p><a href="/agent">{e(t["orders.back"])}</a></p>
<p>{e(page_text(self.page.lang, "signed_in_as", agent=session.account.name))}</p></header>
<main id="main">
{note}{listing}
<section aria-labelledby="survey-heading">
<h2 id="survey-heading">{e(t["orders.survey_heading"])}</h2>
<p class="help">{e(t["orders.survey_help"])}</p>
<form method="post" action="/agent/orders/survey">
<input type="hidden" name="csrf" value="{csrf}">
<label for="target">{e(t["orders.target"])}</label>
<input id="target" name="target" required maxlength="40" value="{e(str(values.get("target", "")))}">
<label for="cname">{e(t["orders.name"])}</label>
<input id="cname" name="name" maxlength="200" value="{e(str(values.get("name", "")))}">
<label for="touchpoint">{e(t["orders.touchpoint"])}</label>
<select id="touchpoint" name="touchpoint">{options}</select>
<label for="note">{e(t["orders.note"])}</label>
<input id="note" name="note" maxlength="200">
<button type="submit">{e(t["orders.send"])}</button>
</form>
</section>
<section aria-labelledby="import-heading">
<h2 id="import-heading">{e(t["orders.import_heading"])}</h2>
<p class="help">{e(t["orders.import_help"])}</p>
<form method="post" action="/agent/orders/import" enctype="multipart/form-data">
<input type="hidden" name="csrf" value="{csrf}">
<label for="file">{e(t["orders.file"])}</label>
<input id="file" name="file" type="file" accept=".csv,.xlsx" required>
<label for="kind">{e(t["orders.kind"])}</label>
<select id="kind" name="kind">{kinds}</select>
<label><input type="checkbox" name="dry_run" value="1" checked> {e(t["orders.dry_run"])}</label>
<button type="submit">{e(t["orders.upload"])}</button>
</form>
</section>
</main>
</body></html>"""
        response = web.Response(text=body, content_type="text/html", status=status)
        response.headers["Cache-Control"] = "no-store"
        return secured(response)



def _csrf_ok(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())
