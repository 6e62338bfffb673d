"""The agents' web page at /agent: sign in with a name and the API token, see the tickets,
answer customers, keep notes, claim, resolve and escalate; without Telegram or beside it.

Every action goes through the ticket desk, exactly like an agent's action in the
Telegram group (the customer gets the same messages; the group's card, if there is a
group, is kept in sync), as Actor("agent", "web:<name>", <name>).

Sessions are a signed cookie (HMAC-SHA256 with a secret kept in the settings table,
keyed with the API token too, so a new API token signs everyone out); state-changing
requests also need the session's CSRF token (header X-CSRF-Token, or form field csrf).
Pages answer an unauthenticated request with a redirect to the login form, JSON
endpoints with 401.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.clock import Clock
from bot.config import Config
from bot.services.desk import Actor, AgentDesk, desk_view
from flows.agent_page import ACTIONS, catalog, page_text, refusal
from flows.model import parse_id
from flows.texts import category_label, local_time, text
from flows.tickets import PRIORITIES, QUESTION, TicketClock, breaches, ticket_number
from storage import agent_sessions, agent_views, settings, tickets
from storage.agent_views import EventRecord, ListedTicket
from storage.db import Database
from storage.tickets import TicketRecord

log = logging.getLogger(__name__)

COOKIE = "feedbot_agent"
CSRF_HEADER = "X-CSRF-Token"
SECRET_SETTING = "agent_page.session_secret"
STATIC_DIR = Path(__file__).parent / "agent"
STATIC_TYPES = {"app.js": "application/javascript", "app.css": "text/css"}
RESOLVED_SHOWN = timedelta(days=2)  # resolved tickets stay in the list this long
MAX_NAME = 40
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    agent: str
    sid: str
    expires: int  # unix seconds


class Sessions:
    """Signed, self-contained session cookies: name, expiry and a random id, with a MAC."""

    def __init__(self, secret: str, api_token: str, lifetime: timedelta) -> None:
        self.key = hmac.new(secret.encode(), api_token.encode(), hashlib.sha256).digest()
        self.lifetime = lifetime

    def _mac(self, message: str) -> str:
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    def issue(self, agent: str, now: datetime) -> tuple[str, Session]:
        session = Session(agent, secrets.token_urlsafe(16), int((now + self.lifetime).timestamp()))
        name = base64.urlsafe_b64encode(agent.encode()).decode().rstrip("=")
        body = f"{name}.{session.expires}.{session.sid}"
        return f"{body}.{self._mac(body)}", session

    def read(self, value: str | None, now: datetime) -> Session | None:
        parts = (value or "").split(".")
        if len(parts) != 4:
            return None
        name, expires, sid, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{name}.{expires}.{sid}")):
            return None
        try:
            agent = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
            expiry = int(expires)
        except ValueError:
            return None
        if expiry <= now.timestamp():
            return None
        return Session(agent, sid, expiry)

    def csrf(self, session: Session) -> str:
        return self._mac(f"csrf:{session.sid}")[:40]

    def csrf_ok(self, session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf(session).encode())


class LoginThrottle:
    """At most `max_failures` wrong tokens per address within `window` seconds."""

    def __init__(self, max_failures: int = 5, window: float = 900.0) -> None:
        self.max_failures = max_failures
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self.failures.setdefault(address, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def wait_left(self, address: str) -> float:
        now = time.monotonic()
        times = self._recent(address, now)
        return times[0] + self.window - now if len(times) >= self.max_failures else 0.0

    def failed(self, address: str) -> None:
        self._recent(address, time.monotonic()).append(time.monotonic())
        if len(self.failures) > 10_000:  # many addresses: forget the quiet ones
            for key in [k for k, v in self.failures.items() if not v]:
                del self.failures[key]

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)


def _clean_name(raw: str) -> str | None:
    name = " ".join(raw.split())
    if not 1 <= len(name) <= MAX_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        return None
    return name


# --- the page -------------------------------------------------------------------------------


class AgentPage:
    failure_delay = 0.3  # seconds added to every wrong token, against guessing

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        desk: AgentDesk,
        sessions: Sessions,
        api_token: str,
        shop_name: str,
        language: str,
        timezone: tzinfo,
        public_url: str,
        poll_seconds: float,
    ) -> None:
        self.db = db
        self.clock = clock
        self.desk = desk
        self.sessions = sessions
        self.api_token = api_token
        self.shop_name = shop_name
        self.lang = language
        self.tz = timezone
        public = urlsplit(public_url)
        self.public_origin = f"{public.scheme}://{public.netloc}" if public.netloc else ""
        self.secure_cookie = public.scheme == "https"
        self.poll_seconds = poll_seconds
        self.throttle = LoginThrottle()
        self.static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_TYPES}
        index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.index = index.replace("{{lang}}", html.escape(language)).replace(
            "{{title}}", html.escape(page_text(language, "title", shop=shop_name))
        )

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/agent", self.page(self.index_page))
        r.add_get("/agent/", self.to_index)
        r.add_get("/agent/login", self.login_form)
        r.add_post("/agent/login", self.login)
        r.add_post("/agent/logout", self.api(self.logout, change=True))
        r.add_get("/agent/static/{name}", self.static_file)
        r.add_get("/agent/api/session", self.api(self.session_info))
        r.add_get("/agent/api/tickets", self.api(self.list_tickets))
        r.add_get("/agent/api/tickets/{ticket_id}", self.api(self.ticket_detail))
        r.add_post("/agent/api/tickets/{ticket_id}/{action}", self.api(self.act, change=True))

    async def to_index(self, request: web.Request) -> web.StreamResponse:
        return _redirect("/agent")

    # --- guards ---------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> Session | None:
        """The request's session: signed, not expired, and not signed out (checked on the server)."""
        session = self.sessions.read(request.cookies.get(COOKIE), self.clock.now())
        if session is not None and await agent_sessions.is_revoked(self.db.reader, session.sid):
            return None
        return session

    def page(self, handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]]) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await self._session(request)
            if session is None:
                return _redirect("/agent/login")
            return _secured(await handler(request, session))

        return checked

    def api(self, handler: Callable[[web.Request, Session], Awaitable[web.StreamResponse]], change: bool = False) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await self._session(request)
            if session is None:
                return self._error(401, page_text(self.lang, "error.session"))
            if change:
                given = request.headers.get(CSRF_HEADER, "")
                if not given and request.content_type == "application/x-www-form-urlencoded":
                    given = str((await request.post()).get("csrf", ""))
                if not self.sessions.csrf_ok(session, given):
                    log.warning("agent page: %s %s without a valid CSRF token", request.method, request.path)
                    return self._error(403, "missing or wrong CSRF token")
            response = await handler(request, session)
            response.headers["Cache-Control"] = "no-store"
            return _secured(response)

        return checked

    def _error(self, status: int, message: str) -> web.Response:
        return _secured(web.json_response({"error": {"status": status, "message": message}}, status=status))

    # --- sign in and out ------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if await self._session(request) is not None:
            return _redirect("/agent")
        return self._login_page()

    async def login(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        # A cross-site form post is refused (behind a proxy that rewrites Host, the public
        # address in http.public_url is the page's own origin).
        if origin and urlsplit(origin).netloc != request.host and origin.rstrip("/") != self.public_origin:
            return self._login_page(page_text(self.lang, "login.forbidden"), status=403)
        form = await request.post()
        raw_name = str(form.get("name", ""))
        address = request.remote or "?"
        wait = self.throttle.wait_left(address)
        if wait > 0:
            minutes = max(1, round(wait / 60))
            return self._login_page(page_text(self.lang, "login.too_many", minutes=minutes), raw_name, status=429,
                                    headers={"Retry-After": str(int(wait) + 1)})
        token = str(form.get("token", "")).strip()
        if not hmac.compare_digest(token.encode(), self.api_token.encode()):
            self.throttle.failed(address)
            log.warning("agent page: wrong token from %s", address)
            await asyncio.sleep(self.failure_delay)
            return self._login_page(page_text(self.lang, "login.wrong"), raw_name, status=401)
        name = _clean_name(raw_name)
        if name is None:
            return self._login_page(page_text(self.lang, "login.bad_name"), raw_name, status=400)
        self.throttle.succeeded(address)
        value, session = self.sessions.issue(name, self.clock.now())
        response = _redirect("/agent")
        response.set_cookie(
            COOKIE, value, max_age=int(self.sessions.lifetime.total_seconds()), path="/agent",
            httponly=True, samesite="Strict", secure=self.secure_cookie,
        )
        log.info("agent page: %s signed in", name)
        return response

    async def logout(self, request: web.Request, session: Session) -> web.StreamResponse:
        # Revoked on the server: a copy of the cookie (another tab, a stolen one) stops working too.
        async with self.db.transaction() as tx:
            await agent_sessions.revoke(tx, session.sid, session.expires, int(self.clock.now().timestamp()))
        log.info("agent page: %s signed out", session.agent)
        response = _redirect("/agent/login")
        response.del_cookie(COOKIE, path="/agent")
        return response

    def _login_page(self, message: str = "", name: str = "", status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        t = catalog(self.lang)
        e = html.escape
        alert = f'<p class="alert" role="alert" id="login-error">{e(message)}</p>' if message else ""
        described = ' aria-describedby="login-error"' if message else ""
        body = f"""<!doctype html>
<html lang="{e(self.lang)}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(page_text(self.lang, "title", shop=self.shop_name))}</title>
<link rel="stylesheet" href="/agent/static/app.css"></head>
<body class="login">
<main>
<h1>{e(t["login.heading"])}</h1>
{alert}
<form method="post" action="/agent/login">
<label for="name">{e(t["login.name"])}</label>
<input id="name" name="name" autocomplete="username" required maxlength="{MAX_NAME}" value="{e(name)}"{described}>
<label for="token">{e(t["login.token"])}</label>
<input id="token" name="token" type="password" autocomplete="current-password" required{described}>
<button type="submit">{e(t["login.submit"])}</button>
</form>
<p class="help">{e(t["login.help"])}</p>
</main>
</body></html>"""
        response = web.Response(text=body, content_type="text/html", status=status, headers=headers)
        response.headers["Cache-Control"] = "no-store"
        return _secured(response)

    # --- the page and its files -----------------------------------------------------------

    async def index_page(self, request: web.Request, session: Session) -> web.StreamResponse:
        response = web.Response(text=self.index, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.static:
            return self._error(404, "not found")
        response = web.Response(body=self.static[name], content_type=STATIC_TYPES[name], charset="utf-8")
        response.headers["Cache-Control"] = "no-cache"
        return _secured(response)

    # --- JSON -----------------------------------------------------------------------------

    async def session_info(self, request: web.Request, session: Session) -> web.StreamResponse:
        return _json({
            "agent": session.agent,
            "csrf": self.sessions.csrf(session),
            "language": self.lang,
            "shop": self.shop_name,
            "poll_seconds": self.poll_seconds,
            "strings": catalog(self.lang),
        })

    async def list_tickets(self, request: web.Request, session: Session) -> web.StreamResponse:
        now = self.clock.now()
        rows = await agent_views.desk_tickets(self.db.reader, now - RESOLVED_SHOWN)
        return _json({
            "updated_at": local_time(now, self.tz, self.lang),
            "tickets": [self._listed(row, now) for row in rows],
        })

    async def ticket_detail(self, request: web.Request, session: Session) -> web.StreamResponse:
        ticket_id = parse_id(request.match_info["ticket_id"])
        since = parse_id(request.query.get("since", "")) or 0
        detail = await self._detail(ticket_id, since) if ticket_id is not None else None
        if detail is None:
            return self._error(404, page_text(self.lang, "not_found"))
        return _json(detail)

    async def act(self, request: web.Request, session: Session) -> web.StreamResponse:
        action = request.match_info["action"]
        ticket_id = parse_id(request.match_info["ticket_id"])
        if action not in ACTIONS or ticket_id is None:
            return self._error(404, page_text(self.lang, "not_found"))
        body = ""
        if action in ("reply", "note"):
            if request.content_type != "application/json":
                return self._error(415, "expected Content-Type: application/json")
            try:
                data = await request.json()
            except (ValueError, UnicodeDecodeError):
                return self._error(400, "body: not valid JSON")
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                return self._error(400, "text: required")
            body = data["text"].strip()
        agent = Actor("agent", f"web:{session.agent}", session.agent)
        why = None
        async with self.db.transaction() as tx:
            ticket = await tickets.get(tx, ticket_id)
            if ticket is not None:
                now = self.clock.now()
                why = refusal(action, desk_view(ticket), agent.id or "", body)
                if why is None:
                    await self._carry_out(tx, action, ticket, agent, body, now)
                elif why[0] in ("refused.resolved", "refused.claimed"):
                    await self.desk.deny(tx, ticket.id, agent, action, now)  # audited like the group's refusals
        if ticket is None:
            return self._error(404, page_text(self.lang, "not_found"))
        if why is not None:
            key, params = why
            return self._error(400 if key in ("refused.empty", "refused.too_long") else 409, page_text(self.lang, key, **params))
        self.desk.wake_sender()
        number = ticket_number(ticket.id, ticket.kind)
        log.info("agent page: %s %s %s", session.agent, action, number)
        detail = await self._detail(ticket.id, 0)
        assert detail is not None
        at_top = action == "escalate" and ticket.priority == PRIORITIES[-1]  # recorded, nobody pinged again
        done = "done.close_question" if action == "resolve" and ticket.kind == QUESTION else f"done.{action}"
        detail["message"] = page_text(self.lang, "done.escalate_top" if at_top else done, number=number)
        return _json(detail)

    async def _carry_out(self, tx: Any, action: str, ticket: TicketRecord, agent: Actor, body: str, now: datetime) -> None:
        match action:
            case "reply":
                await self.desk.relay_to_customer(tx, ticket, agent, body, (), now)
            case "note":
                await self.desk.note(tx, ticket, agent, body, now)
            case "claim":
                if ticket.status != "claimed":  # claiming one's own ticket again changes nothing
                    await self.desk.claim(tx, ticket, agent, now)
            case "resolve":
                await self.desk.resolve(tx, ticket, agent, now)
            case "escalate":
                await self.desk.escalate(tx, ticket, agent, now)

    # --- what the page shows --------------------------------------------------------------

    def _ticket_fields(self, t: TicketRecord, now: datetime) -> dict[str, Any]:
        lang = self.lang
        clock = TicketClock(t.status, t.first_response_at, t.first_response_due_at, t.resolution_due_at,
                            t.first_response_breached, t.resolution_breached)
        breached = t.first_response_breached or t.resolution_breached or bool(breaches(clock, now))
        return {
            "id": t.id,
            "number": ticket_number(t.id, t.kind),
            "kind": t.kind,
            "kind_label": page_text(lang, f"kind.{t.kind}"),
            "status": t.status,
            "status_label": page_text(lang, f"status.{t.status}"),
            "priority": t.priority,
            "priority_label": text(lang, f"priority.{t.priority}"),
            "tier": t.tier,
            "tier_label": text(lang, f"tier.{t.tier}"),
            "category": t.category,
            "category_label": category_label(lang, t.category),
            "assignee": t.assignee_name,
            "order_id": t.order_id,
            "created_at": local_time(t.created_at, self.tz, self.lang),
            "first_response_due": local_time(t.first_response_due_at, self.tz, self.lang),
            "resolution_due": local_time(t.resolution_due_at, self.tz, self.lang),
            "first_response_at": local_time(t.first_response_at, self.tz, self.lang) if t.first_response_at else None,
            "resolved_at": local_time(t.resolved_at, self.tz, self.lang) if t.resolved_at else None,
            "breached": breached,
            "card_undelivered": t.card_undelivered is not None,  # agents see it here only
        }

    def _listed(self, row: ListedTicket, now: datetime) -> dict[str, Any]:
        return {
            **self._ticket_fields(row.ticket, now),
            "customer": row.customer_name,
            "channel": row.channel,
            "escalated": row.escalated,
            "last_event_id": row.last_event_id,
            "unverified": row.unverified,
            "demo": row.demo,
        }

    async def _detail(self, ticket_id: int, since: int) -> dict[str, Any] | None:
        reader = self.db.reader
        ticket = await tickets.get(reader, ticket_id)
        if ticket is None:
            return None
        now = self.clock.now()
        people = await agent_views.ticket_people(reader, ticket)
        order = people.pop("order")
        if order is not None:
            order["purchased_at"] = local_time(order["purchased_at"], self.tz, self.lang)
            order["amount"] = _amount(order["amount"], self.lang)
        past = await tickets.past_scores(reader, ticket.customer_id) if ticket.customer_id else ()
        events = await agent_views.events(reader, ticket.id)  # a ticket's events are few: all, then the new ones
        return {
            "ticket": {
                **self._ticket_fields(ticket, now),
                "description": ticket.description,
                "photos": len(ticket.photos),
                "reopened": ticket.reopened_count,
                "resolution_score": ticket.resolution_score,
                "escalated": any(e.action in ("escalated", "sla_breach") for e in events),
                # No shop customer behind the chat, and no receipt's link of the order it is about.
                "unverified": ticket.customer_id is None and ticket.purchase_id is None and people["channel"] == "web",
                "demo": await agent_views.is_demo(reader, ticket.id),
            },
            "customer": {**people, "past_csat": list(past)},
            "order": order,
            "events": [self._event(e, ticket.kind) for e in events if e.id > since],
        }

    def _event(self, e: EventRecord, kind: str = "complaint") -> dict[str, Any]:
        t = catalog(self.lang)
        who = e.actor_name or t.get(f"actor.{e.actor}", e.actor)
        action = "asked" if kind == QUESTION and e.action == "opened" else e.action  # "Khách hỏi", not "gửi khiếu nại"
        return {
            "id": e.id,
            "at": local_time(e.at, self.tz, self.lang),
            "actor": e.actor,
            "who": who,
            "action": e.action,
            "label": t.get(f"event.{action}", e.action),
            "body": e.body,
        }


def _amount(raw: str, language: str) -> str:
    """250000 -> "250.000" (Vietnamese) or "250,000"; other values as stored."""
    try:
        value = Decimal(raw)
    except ArithmeticError:
        return raw
    if value != value.to_integral_value():
        return raw
    grouped = f"{int(value):,}"
    return grouped.replace(",", ".") if language == "vi" else grouped


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda b: json.dumps(b, ensure_ascii=False))


async def mount(app: web.Application, config: Config, db: Database, clock: Clock, desk: AgentDesk, api_token: str) -> AgentPage | None:
    """Add the agents' page to the bot's HTTP server (unless agent_page.enabled is false)."""
    section = config.agent_page
    if not section.enabled:
        return None
    async with db.transaction() as tx:
        secret = await settings.get_or_create(tx, SECRET_SETTING, lambda: secrets.token_urlsafe(32))
    page = AgentPage(
        db=db,
        clock=clock,
        desk=desk,
        sessions=Sessions(secret, api_token, section.session_lifetime),
        api_token=api_token,
        shop_name=config.shop.name,
        language=config.agents.language,
        timezone=config.tz,
        public_url=config.http.public_url,
        poll_seconds=section.poll_interval.total_seconds(),
    )
    page.register(app)
    return page
