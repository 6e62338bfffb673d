"""The agents' web page at /agent: see the tickets, answer customers, keep notes, claim,
resolve and escalate; without Telegram or beside it.

Every action goes through the ticket desk, exactly like an agent's action in the
Telegram group (the customer gets the same messages; the group's card, if there is a
group, is kept in sync), as Actor("agent", "account:<id>", <the account's name>).

Signing in is the accounts' (bot/http/auth.py): every role may use this page; a store
manager sees only the tickets of their stores (storage/agent_views.TICKET_STORE: the store of
the order a ticket is about, else of the customer's latest purchase; a ticket with no store
at all is for owners and agents).

News is pushed (bot/http/agent_feed.py: Server-Sent Events at /agent/api/stream); the page
reloads its list every agent_page.poll_interval only while that stream is down.

Photos: a Telegram complaint's photos are shown through /agent/api/tickets/<id>/photos/<n>,
which asks Telegram for the file (getFile, then the download, inside the bot: the token never
reaches the browser) on every view and keeps no copy: a disk cache would be one more copy of a
customer's photo for /forget to find, and a ticket's photos are looked at a few times at most.
A web chat visitor's images (POST /chat/upload) are in our database (web_uploads): the same
route serves them from there, only for the ticket of the session that sent them.
Zalo's photos are links on Zalo's servers: counted, not shown.

Canned replies: owners add, change and delete them here (audited under their account); every
role may insert one into the reply box, its placeholders filled (flows/canned.py).
"""
from __future__ import annotations

import html
import logging
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web

from bot.clock import Clock
from bot.config import Config
from bot.http.agent_feed import DeskFeed, DeskStream
from bot.http.static import StaticFiles
from bot.http.auth import WebAuth, as_json, error, redirect
from bot.http.body import BodyError, image_type, read_json
from bot.services.accounts import ROLES
from bot.services.desk import Actor, AgentDesk, desk_view
from flows import canned
from flows.agent_page import ACTIONS, catalog, page_text, refusal
from flows.model import parse_id
from flows.texts import category_label, local_time, text
from flows.tickets import PRIORITIES, QUESTION, TicketClock, breaches, ticket_number
from storage import accounts as account_rows
from storage import agent_views, canned_replies, contacts, tickets, web_uploads
from storage.accounts import SessionRow
from storage.agent_views import EventRecord, ListedTicket
from storage.db import Database, encodable
from storage.tickets import TicketRecord

log = logging.getLogger(__name__)

AGENT_BODY_MAX = 64 * 1024  # bytes of an agent's JSON body

STATIC_DIR = Path(__file__).parent / "agent"
RESOLVED_SHOWN = timedelta(days=2)  # resolved tickets stay in the list this long
PHOTO_MAX_BYTES = 10 * 1024 * 1024  # Telegram's own limit for a photo
OWNERS = ("owner",)

Download = Callable[[str, int], Awaitable[bytes | None]]  # (file id, max bytes) -> the file


# --- the page -------------------------------------------------------------------------------


class AgentPage:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        desk: AgentDesk,
        auth: WebAuth,
        shop_name: str,
        language: str,
        timezone: tzinfo,
        poll_seconds: float,
        anonymous_channels: frozenset[str] = frozenset(),
        feed: DeskFeed | None = None,
        download: Download | None = None,
        streams_per_account: int = 4,
        photo_stores: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.desk = desk
        self.auth = auth
        self.shop_name = shop_name
        self.lang = language
        self.tz = timezone
        self.poll_seconds = poll_seconds
        self.anonymous_channels = anonymous_channels  # channels that do not prove who writes
        self.feed = feed or DeskFeed(db)
        self.stream = DeskStream(self.feed, scope=self._scope, session=auth.accounts.session, language=language,
                                 per_account=streams_per_account)
        self.download = download  # Telegram's files, when Telegram is on
        # Where each channel's customer photos are kept (Channel.photos): "platform", "ours".
        self.photo_stores = photo_stores if photo_stores is not None else {}
        self.static = StaticFiles(STATIC_DIR, ("app.js", "app.css"))
        index = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.index = index.replace("{{lang}}", html.escape(language)).replace(
            "{{title}}", html.escape(page_text(language, "title", shop=shop_name))
        ).replace("{{orders_link}}", html.escape(page_text(language, "orders.link")))

    def register(self, app: web.Application) -> None:
        r = app.router
        auth, roles = self.auth, ROLES
        r.add_get("/agent", auth.page(self.index_page, roles))
        r.add_get("/agent/", self.to_index)
        r.add_get("/agent/login", self.to_login)  # the old sign-in address (bookmarks)
        r.add_post("/agent/login", auth.login)  # an old form: told what to do now
        r.add_post("/agent/logout", auth.guard(auth.logout, None, change=True))
        r.add_get("/agent/static/{name}", self.static.handle)
        r.add_get("/agent/api/session", auth.guard(self.session_info, roles))
        r.add_get("/agent/api/tickets", auth.guard(self.list_tickets, roles))
        r.add_get("/agent/api/tickets/{ticket_id}", auth.guard(self.ticket_detail, roles))
        r.add_get("/agent/api/stream", auth.guard(self.stream.handle, roles))
        r.add_get("/agent/api/tickets/{ticket_id}/photos/{n}", auth.guard(self.photo, roles))
        r.add_post("/agent/api/tickets/{ticket_id}/{action}", auth.guard(self.act, roles, change=True))
        r.add_get("/agent/api/canned", auth.guard(self.canned_list, roles))
        r.add_post("/agent/api/canned", auth.guard(self.canned_add, OWNERS, change=True))
        r.add_post("/agent/api/canned/{reply_id}", auth.guard(self.canned_change, OWNERS, change=True))
        r.add_post("/agent/api/canned/{reply_id}/delete", auth.guard(self.canned_delete, OWNERS, change=True))

    async def to_index(self, request: web.Request) -> web.StreamResponse:
        return redirect("/agent")

    async def to_login(self, request: web.Request) -> web.StreamResponse:
        return redirect("/login?next=/agent")

    def _scope(self, session: SessionRow) -> tuple[str, ...] | None:
        """The stores whose tickets this account sees: a manager's own, everyone else all (None)."""
        return session.account.stores if session.account.role == "manager" else None

    # --- the page and its files -----------------------------------------------------------

    async def index_page(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        response = web.Response(text=self.index, content_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- JSON -----------------------------------------------------------------------------

    async def session_info(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        return as_json({
            "agent": session.account.name,
            "login": session.account.login,
            "role": session.account.role,
            "csrf": session.csrf,
            "language": self.lang,
            "shop": self.shop_name,
            "poll_seconds": self.poll_seconds,  # only while the push stream is down
            "owner": session.account.role == "owner",  # manages the canned replies
            "strings": catalog(self.lang),
        })

    async def list_tickets(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        now = self.clock.now()
        cursor = await self.feed.fresh_cursor()  # read before the list: the stream starts here, nothing between is lost
        rows = await agent_views.desk_tickets(self.db.reader, now - RESOLVED_SHOWN, stores=self._scope(session))
        return as_json({
            "updated_at": local_time(now, self.tz, self.lang),
            "tickets": [self._listed(row, now) for row in rows],
            "cursor": cursor,
        })

    async def ticket_detail(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        ticket_id = parse_id(request.match_info["ticket_id"])
        since = parse_id(request.query.get("since", "")) or 0
        detail = None
        if ticket_id is not None and await self._visible(ticket_id, session):
            detail = await self._detail(ticket_id, since)
        if detail is None:
            return error(404, page_text(self.lang, "not_found"))
        return as_json(detail)

    async def act(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        action = request.match_info["action"]
        ticket_id = parse_id(request.match_info["ticket_id"])
        if action not in ACTIONS or ticket_id is None or not await self._visible(ticket_id, session):
            return error(404, page_text(self.lang, "not_found"))
        body = ""
        if action in ("reply", "note"):
            data = await _json_body(request)
            if isinstance(data, web.StreamResponse):
                return data
            if not isinstance(data, dict) or not isinstance(data.get("text"), str):
                return error(400, "text: required")
            body = data["text"].strip()
        agent = Actor("agent", f"account:{session.account.id}", session.account.name)
        why = None
        done = None  # the message for the agent, when not the action's usual one
        async with self.db.transaction() as tx:
            ticket = await tickets.get(tx, ticket_id)
            if ticket is not None:
                now = self.clock.now()
                why = refusal(action, desk_view(ticket), agent.id or "", body)
                if why is None:
                    done = await self._carry_out(tx, action, ticket, agent, body, now)
                elif why[0] in ("refused.resolved", "refused.claimed"):
                    await self.desk.deny(tx, ticket.id, agent, action, now)  # audited like the group's refusals
        if ticket is None:
            return error(404, page_text(self.lang, "not_found"))
        if why is not None:
            key, params = why
            return error(400 if key in ("refused.empty", "refused.too_long") else 409, page_text(self.lang, key, **params))
        self.desk.wake_sender()
        number = ticket_number(ticket.id, ticket.kind)
        log.info("agent page: %s %s %s", session.account.login, action, number)
        detail = await self._detail(ticket.id, 0)
        assert detail is not None
        at_top = action == "escalate" and ticket.priority == PRIORITIES[-1]  # recorded, nobody pinged again
        if done is None:
            done = "done.close_question" if action == "resolve" and ticket.kind == QUESTION else f"done.{action}"
        detail["message"] = page_text(self.lang, "done.escalate_top" if at_top else done, number=number)
        return as_json(detail)

    async def _carry_out(
        self, tx: Any, action: str, ticket: TicketRecord, agent: Actor, body: str, now: datetime,
    ) -> str | None:
        """Carry the action out; the key of the message for the agent when not the usual one."""
        match action:
            case "reply":
                if not await self.desk.relay_to_customer(tx, ticket, agent, body, (), now):
                    return "done.reply_no_chat"
            case "note":
                await self.desk.note(tx, ticket, agent, body, now)
            case "claim":
                if ticket.status != "claimed":  # claiming one's own ticket again changes nothing
                    await self.desk.claim(tx, ticket, agent, now)
            case "resolve":
                await self.desk.resolve(tx, ticket, agent, now)
            case "escalate":
                await self.desk.escalate(tx, ticket, agent, now)
        return None

    async def _visible(self, ticket_id: int, session: SessionRow) -> bool:
        stores = self._scope(session)
        return stores is None or await agent_views.ticket_store(self.db.reader, ticket_id) in stores

    # --- photos ---------------------------------------------------------------------------

    async def photo(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        """One of a Telegram complaint's photos, fetched from Telegram now (no copy is kept)."""
        ticket_id = parse_id(request.match_info["ticket_id"])
        raw = request.match_info["n"]
        n = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else -1  # isdigit() alone takes "²"
        ticket = None
        if ticket_id is not None and await self._visible(ticket_id, session):
            ticket = await tickets.get(self.db.reader, ticket_id)
        if ticket is None or not 0 <= n < len(ticket.photos):
            return error(404, page_text(self.lang, "not_found"))
        people = await agent_views.ticket_people(self.db.reader, ticket)
        if not self._shown(ticket.photos[n], people["channel"]):
            return error(404, page_text(self.lang, "not_found"))
        upload_id = web_uploads.parse_ref(ticket.photos[n])
        if upload_id is not None:
            return await self._web_upload(ticket, upload_id, n)
        assert self.download is not None
        data = await self.download(ticket.photos[n], PHOTO_MAX_BYTES)
        kind = image_type(data) if data is not None else None
        if data is None or kind is None:  # gone from Telegram, too big, or not an image: never served as is
            return error(502, page_text(self.lang, "photo.unavailable", n=n + 1))
        return web.Response(body=data, content_type=kind, headers={"Content-Disposition": "inline"})

    def _shown(self, photo: str, channel: str | None) -> bool:
        """Photos a platform keeps (fetched through the bot) and uploads we keep are shown, each
        from the channel that keeps them that way (Channel.photos)."""
        store = self.photo_stores.get(channel or "")
        if store == "ours":
            return web_uploads.parse_ref(photo) is not None
        return store == "platform" and self.download is not None

    async def _web_upload(self, ticket: TicketRecord, upload_id: int, n: int) -> web.StreamResponse:
        """A web chat visitor's image, from the database: only one their own session sent."""
        reader = self.db.reader
        upload = await web_uploads.get(reader, upload_id)
        contact = await contacts.by_id(reader, ticket.contact_id)
        if upload is None or contact is None or upload.session_id != contact.platform_user_id:
            return error(404, page_text(self.lang, "photo.unavailable", n=n + 1))  # erased or purged
        return web.Response(body=upload.data, content_type=upload.mime_type, headers={
            "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})

    # --- canned replies -------------------------------------------------------------------

    async def canned_list(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        """The replies as written (placeholders unfilled), for the owners' settings."""
        replies = await canned_replies.all_replies(self.db.reader)
        return as_json({"replies": [{"id": r.id, "title": r.title, "body": r.body} for r in replies],
                        "placeholders": list(canned.PLACEHOLDERS),
                        "title_max": canned.TITLE_MAX, "body_max": canned.BODY_MAX})

    async def _canned_input(self, request: web.Request) -> tuple[str, str] | web.StreamResponse:
        data = await _json_body(request)
        if isinstance(data, web.StreamResponse):
            return data
        if not isinstance(data, dict) or not isinstance(data.get("title"), str) or not isinstance(data.get("body"), str):
            return error(400, "title, body: required")
        title, body = data["title"].strip(), data["body"].strip()
        why = canned.problem(title, body)
        if why is not None:
            return error(400, page_text(self.lang, why, names=", ".join(canned.unknown_placeholders(body)),
                                        title_max=canned.TITLE_MAX, body_max=canned.BODY_MAX,
                                        ten_khach="{ten_khach}", ma_phieu="{ma_phieu}"))
        return title, body

    async def canned_add(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        given = await self._canned_input(request)
        if not isinstance(given, tuple):
            return given
        title, body = given
        account, now = session.account, self.clock.now()
        async with self.db.transaction() as tx:
            reply_id = await canned_replies.add(tx, title, body, account.login, now)
            await account_rows.log_event(tx, account.id, account.login, "canned_reply.added", now,
                                         detail=f"#{reply_id} {title}", by=account.login)
        return as_json({"id": reply_id, "message": page_text(self.lang, "canned.added", title=title)})

    async def canned_change(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        reply_id = parse_id(request.match_info["reply_id"])
        given = await self._canned_input(request)
        if not isinstance(given, tuple):
            return given
        title, body = given
        account, now = session.account, self.clock.now()
        async with self.db.transaction() as tx:
            found = reply_id is not None and await canned_replies.update(tx, reply_id, title, body, now)
            if found:
                await account_rows.log_event(tx, account.id, account.login, "canned_reply.changed", now,
                                             detail=f"#{reply_id} {title}", by=account.login)
        if not found:
            return error(404, page_text(self.lang, "not_found"))
        return as_json({"id": reply_id, "message": page_text(self.lang, "canned.saved", title=title)})

    async def canned_delete(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        reply_id = parse_id(request.match_info["reply_id"])
        account, now = session.account, self.clock.now()
        async with self.db.transaction() as tx:
            reply = await canned_replies.get(tx, reply_id) if reply_id is not None else None
            if reply is not None:
                await canned_replies.delete(tx, reply.id)
                await account_rows.log_event(tx, account.id, account.login, "canned_reply.deleted", now,
                                             detail=f"#{reply.id} {reply.title}", by=account.login)
        if reply is None:
            return error(404, page_text(self.lang, "not_found"))
        return as_json({"id": reply.id, "message": page_text(self.lang, "canned.deleted", title=reply.title)})

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

    def _unverified(self, ticket: TicketRecord, channel: str | None) -> bool:
        """From a chat that does not prove who writes (Channel.proves_identity), with no shop
        customer behind it and no receipt's link of the order it is about."""
        return ticket.customer_id is None and ticket.purchase_id is None and channel in self.anonymous_channels

    def _listed(self, row: ListedTicket, now: datetime) -> dict[str, Any]:
        return {
            **self._ticket_fields(row.ticket, now),
            "customer": row.customer_name,
            "channel": row.channel,
            "escalated": row.escalated,
            "last_event_id": row.last_event_id,
            "unverified": self._unverified(row.ticket, row.channel),
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
        shown = [self._shown(photo, people["channel"]) for photo in ticket.photos]
        number = ticket_number(ticket.id, ticket.kind)
        replies = await canned_replies.all_replies(reader)
        return {
            "ticket": {
                **self._ticket_fields(ticket, now),
                "description": ticket.description,
                "photos": [f"/agent/api/tickets/{ticket.id}/photos/{n}" for n, ok in enumerate(shown) if ok],
                "photos_elsewhere": shown.count(False),
                "reopened": ticket.reopened_count,
                "resolution_score": ticket.resolution_score,
                "escalated": any(e.action in ("escalated", "sla_breach") for e in events),
                "unverified": self._unverified(ticket, people["channel"]),
                "demo": await agent_views.is_demo(reader, ticket.id),
            },
            "customer": {**people, "past_csat": list(past)},
            "order": order,
            "events": [self._event(e, ticket.kind) for e in events if e.id > since],
            "canned": [{"id": r.id, "title": r.title,
                        "text": canned.fill(r.body, customer_name=people["name"], ticket_number=number)}
                       for r in replies],
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


async def mount(app: web.Application, config: Config, db: Database, clock: Clock, desk: AgentDesk,
                auth: WebAuth, anonymous_channels: frozenset[str] = frozenset(),
                download: Download | None = None, photo_stores: Mapping[str, str] | None = None) -> AgentPage | None:
    """Add the agents' page to the bot's HTTP server (unless agent_page.enabled is false);
    `anonymous_channels`: the channels that do not prove who writes (Channel.proves_identity);
    `download`: Telegram's files (TelegramChannel.download), None without Telegram;
    `photo_stores`: where each channel keeps its customers' photos (Channel.photos).
    Its push feed starts here and stops with the HTTP server (on_shutdown ends the streams)."""
    section = config.agent_page
    if not section.enabled:
        return None
    page = AgentPage(
        db=db,
        clock=clock,
        desk=desk,
        auth=auth,
        shop_name=config.shop.name,
        language=config.agents.language,
        timezone=config.tz,
        poll_seconds=section.poll_interval.total_seconds(),
        anonymous_channels=anonymous_channels,
        feed=DeskFeed(db),
        download=download,
        streams_per_account=section.streams_per_account,
        photo_stores=photo_stores,
    )
    page.register(app)
    await page.feed.start()

    async def stop_feed(_app: web.Application) -> None:
        await page.feed.close()

    app.on_shutdown.append(stop_feed)
    return page


async def _json_body(request: web.Request) -> Any:
    """An agent's JSON body (a reply, a note, a canned reply), or the error response: the same
    reader and limits as the shop's API (a reply is at most a few KB; 64 KB leaves room)."""
    try:
        value, _ = await read_json(request, AGENT_BODY_MAX)
    except BodyError as exc:
        return error(exc.status, exc.message)
    if not encodable(value):  # "\ud800" and "\u0000" are valid JSON, but no text the database can store
        return error(400, "body: a string with an unpaired surrogate (like \\ud800) or a NUL character: not text")
    return value
