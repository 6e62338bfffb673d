"""The web chat's HTTP side: the page, the widget script, and the WebSocket protocol.

Identity: a visitor's session id is random and signed (HMAC-SHA256 with a secret the bot
generates once and keeps in the settings table); the page gets it in an HttpOnly cookie,
the widget keeps it in localStorage and sends it in its first frame. Only a correctly
signed id is ever used: a forged or altered one gets a fresh session, so a visitor can
only read their own conversation. A shop's site may pass a customer token
(`feedbot web-token`, HMAC of the customer's external id with the shop's secret) that
links the visitor to that customer, like a Telegram deep link does.

Protocol (JSON text frames). Client -> server, the first one must be `hello`:
  {"type": "hello", "session": str|null, "resume": last seq seen, "start": link token|null,
   "customer_token": str|null, "lang": "vi"|"en"}
  {"type": "text", "id": client id, "text": str}
  {"type": "choice", "id": client id, "data": button data, "message_id": seq of the message with the button}
  {"type": "demo"} (demo mode: a demo purchase and its survey)     {"type": "ping"}
Server -> client: {"type": "welcome", "session", ...}; log entries {"type": "message" |
"edit" | "notice" | "visitor" | "document" (a /mydata file: "document": {"filename",
"mime_type", "data": base64}) | "reset" (after /forget: clear the page), "seq", ...}; {"type": "ack", "choice_id"}; {"type":
"accepted", "id"}; {"type": "error", "code", "message", "id"?}; {"type": "pong"}.
A frame that is malformed, too large or over the rate limit gets an error frame, is not
recorded, and the connection stays usable; a frame far over the size limit closes the
socket with 1009 (message too big).

Images (HTTP, not the socket): POST /chat/upload, the raw image as the body, the session in
the cookie or X-Feedbot-Session (the welcome's token: the widget), a client id in X-Feedbot-Id;
the same Origin check as the socket (CORS answers for the allowed origins). Refused with
{"type": "error", "code", "message"}: 401 no_session, 403 origin, 400 malformed, 413 too_large,
415 not_image (told by the bytes, never the Content-Type), 429 rate_limited. Accepted: stored
(web_uploads), a "visitor" entry {"text": "", "id", "upload": <id>} in the log, and the engine
gets it as the message's photos; GET /chat/upload/<seq> gives the visitor their own back.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any, Awaitable, Callable
from urllib.parse import urlparse

from aiohttp import WSMsgType, web

from bot.channels.base import Receive
from bot.channels.web.channel import NAME, SESSION_RE, WebChannel
from bot.clock import Clock
from bot.config import Config
from bot.http.body import BodyError, read_bytes, whole_image_type
from bot.http.connections import client_address
from bot.limits import MemoryWindow
from bot.limits import window as limit_window
from storage import contacts, customers, settings, web_messages, web_uploads
from storage.contacts import ContactRecord
from storage.db import Connection, Database, encodable

log = logging.getLogger(__name__)

# Not the sign-in's cookie name (bot/http/auth.py), on the same host: under one name the chat
# page replaced a signed-in owner's session with a visitor's. Chat pages kept theirs under the
# old name before: still read, and moved to the new one by the page.
COOKIE = "feedbot_chat"
OLD_COOKIE = "feedbot_session"
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
LINK_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
HELLO_TIMEOUT = 15.0
MAX_CHOICE_CHARS = 64  # Telegram's callback_data limit; our buttons fit it
SESSION_HEADER = "X-Feedbot-Session"  # an upload's session token when no cookie is sent (the widget)
ID_HEADER = "X-Feedbot-Id"  # an upload's client id, like a frame's: a retried upload is stored once
# An image goes back only as an image: never sniffed into a page, never cached by the way.
IMAGE_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "default-src 'none'; sandbox", "Content-Disposition": "inline"}
STATIC_TYPES = {".js": "application/javascript", ".css": "text/css", ".html": "text/html"}


# --- signed values ------------------------------------------------------------------------


def _mac(secret: str, purpose: str, value: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def new_session(secret: str) -> tuple[str, str]:
    """(session id, signed token)."""
    session_id = secrets.token_urlsafe(18)
    return session_id, sign_session(secret, session_id)


def sign_session(secret: str, session_id: str) -> str:
    return f"{session_id}.{_mac(secret, 'session', session_id)}"


def _same(given: str, expected: str) -> bool:
    """Constant-time, for any text: compare_digest refuses a str that is not ASCII (TypeError),
    and a header's bytes that are not UTF-8 arrive as surrogates."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def verify_session(secret: str, token: Any) -> str | None:
    if not isinstance(token, str) or token.count(".") != 1:
        return None
    session_id, mac = token.split(".")
    if not SESSION_RE.fullmatch(session_id) or not _same(mac, _mac(secret, "session", session_id)):
        return None
    return session_id


def customer_token(secret: str, external_id: str, expires_at: int) -> str:
    """What the shop's site passes to the widget for a logged-in customer:
    base64url(external_id) "." expiry (unix seconds, 0 = never) "." base64url(HMAC-SHA256(secret,
    "customer:" + external_id + ":" + expiry)), padding stripped."""
    encoded = base64.urlsafe_b64encode(external_id.encode()).decode().rstrip("=")
    return f"{encoded}.{expires_at}.{_mac(secret, 'customer', f'{external_id}:{expires_at}')}"


def verify_customer_token(secret: str, token: Any, now: float) -> str | None:
    """The customer's external id, or None for a token that is malformed, forged or expired."""
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 400:
        return None
    encoded, expiry, mac = token.split(".")
    try:
        external_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        expires_at = int(expiry)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not _same(mac, _mac(secret, "customer", f"{external_id}:{expiry}")):
        return None
    if expires_at and expires_at < now:
        return None
    return external_id


# --- limits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebLimits:
    max_message_chars: int = 2000
    max_frame_bytes: int = 16 * 1024
    messages_per_minute: int = 30
    allowed_origins: tuple[str, ...] = ()
    # Anonymous visitors can write without any account: what one address (and everyone
    # together) may open. An address is the client's (behind http.trusted_proxies: from
    # X-Forwarded-For), an IPv6 client's /64.
    max_sockets_per_session: int = 10
    max_sockets_per_address: int = 50
    new_sessions_per_minute: int = 10
    new_sessions_per_minute_total: int = 300
    demos_per_minute: int = 3
    demos_per_minute_total: int = 30
    anonymous_tickets_per_hour: int = 3
    anonymous_tickets_per_hour_total: int = 60
    trusted_proxies: tuple[Any, ...] = ()
    # Images (POST /chat/upload): the largest, and how many a minute per session, per address, in total.
    max_upload_bytes: int = 5 * 1024 * 1024
    uploads_per_minute: int = 5
    uploads_per_minute_per_address: int = 20
    uploads_per_minute_total: int = 120

    @classmethod
    def from_config(cls, config: Config) -> "WebLimits":
        w = config.web
        return cls(
            w.max_message_chars, w.max_frame_bytes, w.messages_per_minute, w.allowed_origins,
            w.max_sockets_per_session, w.max_sockets_per_address, w.new_sessions_per_minute,
            w.new_sessions_per_minute_total, w.demos_per_minute, w.demos_per_minute_total,
            w.anonymous_tickets_per_hour, w.anonymous_tickets_per_hour_total,
            config.http.trusted_proxies, w.max_upload_bytes, w.uploads_per_minute,
            w.uploads_per_minute_per_address, w.uploads_per_minute_total,
        )


@dataclass(frozen=True)
class WebSecrets:
    session: str  # signs visitors' session ids; generated once, never leaves the bot
    customer: str  # signs customer tokens; the shop's site knows it too


async def load_secrets(tx: Connection, config: Config) -> WebSecrets:
    """The configured customer-token secret, else generated once and kept (like the API token)."""
    session = await settings.get_or_create(tx, "web_session_secret", lambda: secrets.token_urlsafe(32))
    customer = config.web.customer_token_secret or await settings.get_or_create(
        tx, "web_customer_token_secret", lambda: secrets.token_urlsafe(32)
    )
    return WebSecrets(session, customer)


RateLimiter = MemoryWindow  # events per key in a sliding window, in this process (bot/limits.py)


class AddressAndTotal:
    """One limit per client address and one for everyone together (shared by the instances
    on PostgreSQL: bot/limits.py)."""

    def __init__(self, per_address: int, total: int, window: float, db: Any = None, name: str = "") -> None:
        self.per_address = limit_window(db, f"{name}.address", per_address, window)
        self.total = limit_window(db, f"{name}.total", total, window)

    async def allow(self, address: str) -> str | None:
        """None when allowed, else which limit refused ("address" or "total")."""
        if not await self.per_address.hit(address):
            return "address"
        if not await self.total.hit(""):
            return "total"
        return None


class _Hourly:
    """The anonymous tickets' limit: asked synchronously inside the engine's transaction, so
    counted in this process (bot/limits.py says why)."""

    def __init__(self, per_address: int, total: int, window: float) -> None:
        self.per_address = MemoryWindow(per_address, window)
        self.total = MemoryWindow(total, window)

    def allow(self, address: str) -> str | None:
        if not self.per_address.allow(address):
            return "address"
        if not self.total.allow(""):
            return "total"
        return None


class _Refused(Exception):
    """An upload refused: the HTTP status and the page's error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class _Duplicate(Exception):
    """An upload whose client id was stored before: its transaction is undone."""


class _Reject(Exception):
    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


def _origin_of(url: str) -> str:
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}".lower()


# --- the server side -----------------------------------------------------------------------


class WebChat:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        receive: Receive,
        channel: WebChannel,
        secrets: WebSecrets,
        limits: WebLimits,
        shop_name: str,
        public_url: str = "",
        demo: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.receive = receive  # the engine's: records and handles a frame before it is acknowledged
        self.channel = channel
        self.session_secret = secrets.session
        self.customer_secret = secrets.customer
        self.limits = limits
        self.shop_name = shop_name
        self.public_url = public_url
        self.demo = demo
        # Per session (all of a visitor's tabs, on any instance), per address, in total.
        self.rate = limit_window(db, "web.messages", limits.messages_per_minute, 60.0)
        self._sockets: set[web.WebSocketResponse] = set()
        self._by_address: Counter[str] = Counter()
        self._by_session: Counter[str] = Counter()
        self._address_of: dict[str, str] = {}  # session -> the address of its latest socket
        self._said: dict[str, float] = {}  # limit -> when it was last logged
        self.new_sessions = AddressAndTotal(limits.new_sessions_per_minute, limits.new_sessions_per_minute_total, 60.0,
                                            db, "web.new_sessions")
        self.demos = AddressAndTotal(limits.demos_per_minute, limits.demos_per_minute_total, 60.0, db, "web.demos")
        self.upload_rate = limit_window(db, "web.uploads.session", limits.uploads_per_minute, 60.0)
        self.uploads = AddressAndTotal(limits.uploads_per_minute_per_address, limits.uploads_per_minute_total, 60.0,
                                       db, "web.uploads")
        self.tickets = _Hourly(limits.anonymous_tickets_per_hour, limits.anonymous_tickets_per_hour_total, 3600.0)
        self._static = resources.files("bot.channels.web").joinpath("static")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/chat", self.page)
        app.router.add_get("/chat/ws", self.websocket)
        app.router.add_get("/chat/static/{name}", self.static)
        app.router.add_get("/widget.js", self.widget)
        app.router.add_post("/chat/upload", self.upload)
        app.router.add_get("/chat/upload/{seq}", self.uploaded)
        app.router.add_route("OPTIONS", "/chat/upload", self.preflight)
        app.router.add_route("OPTIONS", "/chat/upload/{seq}", self.preflight)
        app.on_shutdown.append(self._close_sockets)

    async def _close_sockets(self, app: web.Application) -> None:
        """At stop: open sockets are told "going away" (1001); the pages reconnect later."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server stopping")

    # --- page and files -------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        html = self._read("chat.html").replace("__SHOP__", _html_escape(self.shop_name))
        # The address may hold a survey link's token (/chat?start=...): no Referer carries it
        # elsewhere. (No CSP or frame rule here: shops may embed the page.)
        response = web.Response(text=html, content_type="text/html", headers={
            "Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff"})
        if verify_session(self.session_secret, request.cookies.get(COOKIE)) is None:
            old = verify_session(self.session_secret, request.cookies.get(OLD_COOKIE))
            token = sign_session(self.session_secret, old) if old else new_session(self.session_secret)[1]
            response.set_cookie(
                COOKIE, token, max_age=365 * 24 * 3600, path="/chat", httponly=True, samesite="Lax",
                secure=request.secure or self.public_url.startswith("https://"),
            )
        return response

    async def widget(self, request: web.Request) -> web.Response:
        return web.Response(text=self._read("widget.js"), content_type=STATIC_TYPES[".js"],
                            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        suffix = name[name.rfind("."):] if "." in name else ""
        if not re.fullmatch(r"[a-z0-9_-]+\.(js|css)", name):
            raise web.HTTPNotFound()
        try:
            body = self._read(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(text=body, content_type=STATIC_TYPES[suffix],
                            headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"})

    def _read(self, name: str) -> str:
        return self._static.joinpath(name).read_text(encoding="utf-8")

    # --- the socket -------------------------------------------------------------------------

    def origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: the Origin check protects browsers' visitors only
        allowed = {_origin_of(f"{request.scheme}://{request.host}"), *(o.lower() for o in self.limits.allowed_origins)}
        if self.public_url:
            allowed.add(_origin_of(self.public_url))
        return origin.lower() in allowed or "*" in allowed

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request):
            log.info("web chat: refused a socket from origin %r", request.headers.get("Origin"))
            raise web.HTTPForbidden(reason="origin not allowed (web.allowed_origins)")
        address = client_address(request, self.limits.trusted_proxies)
        if self._by_address[address] >= self.limits.max_sockets_per_address:
            self._log_limit("sockets per address", address)
            raise web.HTTPTooManyRequests(reason=f"more than {self.limits.max_sockets_per_address} chat sockets "
                                          "from this address (web.max_sockets_per_address)")
        # Far over the limit: aiohttp closes with 1009; just over it: an error frame (below).
        ws = web.WebSocketResponse(max_msg_size=self.limits.max_frame_bytes * 4, heartbeat=30.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        self._by_address[address] += 1
        counted: str | None = None  # the session this socket counts for
        outgoing: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        session_id: str | None = None
        writer: asyncio.Task[None] | None = None
        try:
            hello = await self._hello(ws)
            if hello is None:
                return ws
            session_id = self._cookie_session(request) or verify_session(self.session_secret, hello.get("session"))
            fresh = session_id is None
            # New: no session, or a signed one with nothing stored yet (the page hands out
            # signed ids freely: GET /chat sets one in its cookie).
            if fresh or await web_messages.count(self.db.reader, session_id) == 0:  # type: ignore[arg-type]
                refused = await self.new_sessions.allow(address)
                if refused is not None:
                    self._log_limit(f"new sessions ({refused})", address)
                    await _refuse(ws, "rate_limited", "too many new chat sessions from here; try again in a minute")
                    return ws
            if session_id is None:
                session_id, token = new_session(self.session_secret)
            else:
                token = sign_session(self.session_secret, session_id)
            if self._by_session[session_id] >= self.limits.max_sockets_per_session:
                self._log_limit("sockets per session", address)
                await _refuse(ws, "too_many_sockets", f"more than {self.limits.max_sockets_per_session} open tabs "
                              "of this chat; close one")
                return ws
            self._by_session[session_id] += 1
            counted = session_id
            self._address_of[session_id] = address
            self.channel.subscribe(session_id, outgoing.put_nowait)
            resume = hello.get("resume")
            last_seq = resume if _is_seq(resume) else 0
            await ws.send_json({
                "type": "welcome", "session": token, "demo": self.demo is not None,
                "max_message_chars": self.limits.max_message_chars, "max_upload_bytes": self.limits.max_upload_bytes,
            })
            for entry in await web_messages.after(self.db.reader, session_id, last_seq, limit=10_000):
                await ws.send_json(entry.frame())
                last_seq = entry.id
            writer = asyncio.create_task(self._write(ws, outgoing, last_seq))
            await self._bootstrap(session_id, hello, fresh, outgoing.put_nowait)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._frame(session_id, hello, msg.data, outgoing.put_nowait, address)
                elif msg.type == WSMsgType.BINARY:
                    outgoing.put_nowait(_error("malformed", "binary frames are not accepted"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._sockets.discard(ws)
            _uncount(self._by_address, address)
            if counted is not None:
                _uncount(self._by_session, counted)
                if counted not in self._by_session:
                    self._address_of.pop(counted, None)
            if session_id is not None:
                self.channel.unsubscribe(session_id, outgoing.put_nowait)
            if writer is not None:
                outgoing.put_nowait(None)
                await asyncio.gather(writer, return_exceptions=True)
        return ws

    # --- images (HTTP: a WebSocket frame is no place for megabytes) --------------------------

    def _cors(self, request: web.Request) -> dict[str, str]:
        """The widget runs on the shop's site: its origin (when allowed) may read our answers."""
        origin = request.headers.get("Origin")
        if origin is None or not self.origin_allowed(request):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def preflight(self, request: web.Request) -> web.Response:
        if not self.origin_allowed(request):
            raise web.HTTPForbidden(reason="origin not allowed (web.allowed_origins)")
        return web.Response(status=204, headers={
            **self._cors(request), "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": f"Content-Type, {SESSION_HEADER}, {ID_HEADER}",
            "Access-Control-Max-Age": "600",
        })

    def _session_of(self, request: web.Request) -> str | None:
        """The visitor's signed session: the page's cookie, else the token the socket's welcome
        gave (the widget, on another site, has no cookie of ours)."""
        return self._cookie_session(request) or verify_session(self.session_secret, request.headers.get(SESSION_HEADER))

    def _cookie_session(self, request: web.Request) -> str | None:
        return verify_session(self.session_secret, request.cookies.get(COOKIE)) or verify_session(
            self.session_secret, request.cookies.get(OLD_COOKIE))

    async def upload(self, request: web.Request) -> web.Response:
        """One image from a visitor: checked, stored (web_uploads), echoed in their log, and
        handed to the engine like a Telegram photo (payload "photos": ["web:<id>"])."""
        cors = self._cors(request)
        try:
            session_id, frame_id, address = await self._upload_allowed(request)
            try:
                data = await read_bytes(request, self.limits.max_upload_bytes, any_type=True)
            except BodyError as exc:
                raise _Refused(exc.status, "too_large" if exc.status == 413 else "malformed", exc.message) from None
            kind = whole_image_type(data)
            if kind is None:
                raise _Refused(415, "not_image", "not a JPEG, PNG, WebP or GIF image")
            echo = await self._store_upload(session_id, frame_id, kind, data)
        except _Refused as exc:
            return web.json_response(_error(exc.code, exc.message), status=exc.status, headers=cors)
        if echo is not None:  # None: this id was stored before (a retry): nothing new to do
            self.channel.push(session_id, echo.frame())
            upload_id = echo.body["upload"]
            lang = request.query.get("lang")
            await self._receive(session_id, lang, frame_id, text="", photos=[web_uploads.ref(upload_id)])
            log.info("web chat: an image of %d bytes (%s) from a visitor", len(data), kind)
        return web.json_response({"type": "accepted", "id": frame_id, "seq": echo.id if echo else None}, headers=cors)

    async def _upload_allowed(self, request: web.Request) -> tuple[str, str, str]:
        """(session, client id, address) of an upload that may be read; else _Refused."""
        if not self.origin_allowed(request):
            log.info("web chat: refused an upload from origin %r", request.headers.get("Origin"))
            raise _Refused(403, "origin", "origin not allowed (web.allowed_origins)")
        session_id = self._session_of(request)
        # Only a session that has talked over the socket (its contact exists): the socket's
        # limit on new sessions stays the one way in.
        if session_id is None or await contacts.by_platform_user(self.db.reader, NAME, session_id) is None:
            raise _Refused(401, "no_session", "no chat session: open the chat first")
        frame_id = request.headers.get(ID_HEADER, "")
        if not CLIENT_ID.fullmatch(frame_id):
            raise _Refused(400, "malformed", f"{ID_HEADER}: expected 1-64 characters of A-Z a-z 0-9 _ -")
        if request.content_length is not None and request.content_length > self.limits.max_upload_bytes:
            raise _Refused(413, "too_large", f"larger than {self.limits.max_upload_bytes} bytes (web.max_upload_bytes)")
        address = client_address(request, self.limits.trusted_proxies)
        if not await self.upload_rate.hit(session_id):
            raise _Refused(429, "rate_limited", f"more than {self.limits.uploads_per_minute} images a minute; wait a moment")
        refused = await self.uploads.allow(address)
        if refused is not None:
            self._log_limit(f"images ({refused})", address)
            raise _Refused(429, "rate_limited", "too many images from here; try again in a minute")
        if not await self.rate.hit(session_id):
            raise _Refused(429, "rate_limited", f"more than {self.limits.messages_per_minute} messages a minute; "
                           "wait a moment")
        return session_id, frame_id, address

    async def _store_upload(self, session_id: str, frame_id: str, kind: str, data: bytes) -> Any:
        """The image and the log entry that shows it, in one transaction; None for an id stored before."""
        try:
            async with self.db.transaction() as tx:
                upload_id = await web_uploads.add(tx, session_id, kind, data, self.clock.now())
                echo = await web_messages.append(tx, session_id, "visitor", {"text": "", "id": frame_id,
                                                                             "upload": upload_id}, self.clock.now(),
                                                 client_id=frame_id)
                if echo is None:
                    raise _Duplicate()
                await web_uploads.link(tx, upload_id, echo.id)
        except _Duplicate:
            return None
        return echo

    async def uploaded(self, request: web.Request) -> web.Response:
        """A visitor's own image, as their log shows it (their session only)."""
        cors = self._cors(request)
        raw = request.match_info["seq"]
        session_id = self._session_of(request)
        found = None
        if session_id is not None and raw.isascii() and raw.isdigit() and len(raw) < 19:
            found = await web_uploads.of_message(self.db.reader, session_id, int(raw))
        if found is None:
            return web.json_response(_error("not_found", "no such image"), status=404, headers=cors)
        return web.Response(body=found.data, content_type=found.mime_type, headers={**cors, **IMAGE_HEADERS})

    async def _hello(self, ws: web.WebSocketResponse) -> dict[str, Any] | None:
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT)
        except asyncio.TimeoutError:
            await ws.close(code=4408, message=b"no hello")
            return None
        if msg.type != WSMsgType.TEXT:
            await ws.close(code=1003 if msg.type == WSMsgType.BINARY else 1000)
            return None
        try:
            hello = json.loads(msg.data)
        except (ValueError, RecursionError):  # not JSON, nested too deep, an int of 5,000 digits
            hello = None
        if not encodable(hello):
            hello = None
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            await ws.send_json(_error("malformed", "the first frame must be {\"type\": \"hello\", ...}"))
            await ws.close(code=1008, message=b"expected hello")
            return None
        return hello

    @staticmethod
    async def _write(ws: web.WebSocketResponse, outgoing: asyncio.Queue, last_seq: int) -> None:
        """The one writer of this socket: live pushes in order, none that the backlog already sent."""
        while (frame := await outgoing.get()) is not None:
            seq = frame.get("seq")
            if isinstance(seq, int):
                if seq <= last_seq:
                    continue
                last_seq = seq
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):
                return

    async def _bootstrap(self, session_id: str, hello: dict[str, Any], fresh: bool,
                         send: Callable[[dict], None]) -> None:
        """A survey link (?start=<token>), a shop customer token, or a first visit: like /start."""
        lang = hello.get("lang")
        start = hello.get("start")
        if isinstance(start, str) and LINK_TOKEN.fullmatch(start):
            await self._opening(session_id, send, lang, f"start:{start}", text=f"/start {start}")
            return
        external_id = verify_customer_token(self.customer_secret, hello.get("customer_token"), time.time())
        if external_id is not None:
            customer = await customers.by_external_id(self.db.reader, external_id)
            contact = await contacts.by_platform_user(self.db.reader, NAME, session_id)
            if customer is not None and (contact is None or contact.customer_id != customer.id):
                # The shop site vouches for this customer: the session becomes theirs.
                await self._opening(session_id, send, lang, f"link:{customer.id}", text="/start", customer=external_id)
                return
        elif hello.get("customer_token"):
            log.info("web chat: a visitor sent an invalid or expired customer token")
        if fresh or await web_messages.count(self.db.reader, session_id) == 0:
            # Not counted: a session with nothing stored yet is counted by new_sessions instead.
            await self._receive(session_id, lang, "start:", text="/start")

    async def _opening(self, session_id: str, send: Callable[[dict], None], lang: Any, frame_id: str,
                       **fields: Any) -> None:
        """A hello's link for the engine, counted like a frame: else reconnecting the same
        session with a new link each time recorded one per socket, past messages_per_minute."""
        if not await self.rate.hit(session_id):
            send(_error("rate_limited", f"more than {self.limits.messages_per_minute} messages a minute; wait a moment"))
            return
        await self._receive(session_id, lang, frame_id, **fields)

    async def _frame(
        self, session_id: str, hello: dict[str, Any], data: str, send: Callable[[dict], None], address: str = ""
    ) -> None:
        lang = hello.get("lang")
        try:
            if len(data.encode("utf-8")) > self.limits.max_frame_bytes:
                raise _Reject("too_large", f"frame larger than {self.limits.max_frame_bytes} bytes")
            try:
                frame = json.loads(data)
            except (ValueError, RecursionError):  # not JSON, nested too deep, an int of 5,000 digits
                raise _Reject("malformed", "not JSON") from None
            if not encodable(frame):
                raise _Reject("malformed", "a string with an unpaired surrogate or a NUL character: not text")
            if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
                raise _Reject("malformed", "expected a JSON object with a type")
            kind = frame["type"]
            if kind == "ping":
                send({"type": "pong"})
                return
            frame_id = frame.get("id") if isinstance(frame.get("id"), str) else None
            if not await self.rate.hit(session_id):
                raise _Reject("rate_limited", f"more than {self.limits.messages_per_minute} messages a minute; "
                              "wait a moment", frame_id)
            if kind == "demo":
                await self._demo(session_id, lang, address)
                return
            if kind not in ("text", "choice"):
                raise _Reject("malformed", f"unknown frame type {kind[:20]!r}")
            if frame_id is None or not CLIENT_ID.fullmatch(frame_id):
                raise _Reject("malformed", "id: expected 1-64 characters of A-Z a-z 0-9 _ -")
            if kind == "text":
                await self._text(session_id, lang, frame_id, frame.get("text"))
            else:
                await self._choice(session_id, lang, frame_id, frame.get("data"), frame.get("message_id"))
            send({"type": "accepted", "id": frame_id})
        except _Reject as exc:
            send(_error(exc.code, exc.message, exc.frame_id))

    async def _text(self, session_id: str, lang: Any, frame_id: str, text: Any) -> None:
        if not isinstance(text, str) or not text.strip():
            raise _Reject("malformed", "text: expected a non-empty string", frame_id)
        if len(text) > self.limits.max_message_chars:
            raise _Reject("too_long", f"text longer than {self.limits.max_message_chars} characters", frame_id)
        async with self.db.transaction() as tx:
            echo = await web_messages.append(tx, session_id, "visitor", {"text": text, "id": frame_id},
                                             self.clock.now(), client_id=frame_id)
        if echo is not None:  # the visitor's other tabs see it too
            self.channel.push(session_id, echo.frame())
        await self._receive(session_id, lang, frame_id, text=text)

    async def _choice(self, session_id: str, lang: Any, frame_id: str, data: Any, message_id: Any) -> None:
        if not isinstance(data, str) or not 0 < len(data) <= MAX_CHOICE_CHARS:
            raise _Reject("malformed", f"data: expected a string of 1-{MAX_CHOICE_CHARS} characters", frame_id)
        if not _is_seq(message_id) or message_id == 0:
            raise _Reject("malformed", "message_id: expected the seq of the message with the button", frame_id)
        await self._receive(session_id, lang, frame_id, choice=data, message_id=message_id)

    async def _demo(self, session_id: str, lang: Any, address: str) -> None:
        if self.demo is None:
            raise _Reject("unavailable", "demo mode is off (web.demo)")
        refused = await self.demos.allow(address)
        if refused is not None:
            self._log_limit(f"demo surveys ({refused})", address)
            raise _Reject("rate_limited", "too many demo surveys from here; try again in a minute")
        outcome = await self.demo()
        await self._receive(session_id, lang, f"demo:{outcome.survey_id}", text=f"/start {outcome.link_token}")

    def _log_limit(self, what: str, address: str) -> None:
        """One line per limit a minute: an attack hits a limit thousands of times."""
        now = time.monotonic()
        if now - self._said.get(what, -60.0) >= 60.0:
            self._said[what] = now
            log.warning("web chat: refused %s from %s (more may follow this minute, not logged)", what, address)

    def ticket_allowed(self, contact: ContactRecord) -> bool:
        """The engine asks before it opens a ticket: an anonymous web visitor's (no shop
        customer behind the chat) count against their address's and everyone's hourly limit."""
        if contact.channel != NAME or contact.customer_id is not None:
            return True
        address = self._address_of.get(contact.platform_user_id, "")
        refused = self.tickets.allow(address)
        if refused is not None:
            self._log_limit(f"anonymous tickets ({refused})", address)
            return False
        return True

    async def _receive(self, session_id: str, lang: Any, frame_id: str, **fields: Any) -> None:
        payload = {"session": session_id, "id": frame_id, "lang": lang if lang in ("vi", "en") else None,
                   "name": f"web-{session_id[:6]}", **fields}
        await self.receive(NAME, payload)



def _is_seq(value: Any) -> bool:
    """A message number as the page may send it: a whole number SQLite can store (1e30 cannot)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _uncount(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


async def _refuse(ws: web.WebSocketResponse, code: str, message: str) -> None:
    await ws.send_json(_error(code, message))
    await ws.close(code=4429, message=code.encode())


def _error(code: str, message: str, frame_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if frame_id is not None:
        frame["id"] = frame_id
    return frame


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def chat_url(base_url: str, link_token: str | None = None) -> str:
    """The web chat page; with a customer's link token, the page that opens their survey."""
    return f"{base_url.rstrip('/')}/chat" + (f"?start={link_token}" if link_token else "")


def expiry(now: datetime, days: int) -> int:
    return int(now.timestamp()) + days * 86400 if days > 0 else 0
