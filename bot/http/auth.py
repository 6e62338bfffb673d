"""Signing in to the web pages (/agent, /dashboard) with an account: /login, /logout, the
first owner's /setup, and the guards every page and JSON
route goes through (session, role, CSRF).

The cookie holds a random session token; the server keeps its SHA-256 (`account_sessions`)
and reads it on every request, so signing out, a disabled or removed account, or a new
password ends the session at once. State-changing requests also need the session's CSRF
token (header X-CSRF-Token, or form field csrf). The shared API token no longer signs in
to the web: who tries gets a message saying what to do instead.

"Log in with Telegram" (accounts.telegram_login): the sign-in page also shows the Telegram Login
Widget; /login/telegram checks its signed data (bot/channels/telegram/login_widget.py) and opens
the same session as a password for the account linked to that Telegram user.
"""
from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, quote, urlsplit

from aiohttp import web

from bot.channels.telegram import login_widget
from bot.http.connections import client_address
from bot.services.accounts import AccountError, Accounts
from flows.agent_page import catalog, page_text
from storage.accounts import SessionRow

log = logging.getLogger(__name__)

COOKIE = "feedbot_session"
CSRF_HEADER = "X-CSRF-Token"
HOME = {"owner": "/dashboard", "manager": "/dashboard", "agent": "/agent"}
NEXT_ALLOWED = ("/agent", "/dashboard")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

# The sign-in page with the Telegram widget also lets the browser load it from telegram.org.
WIDGET_CSP = "; ".join(
    f"{d} {login_widget.CSP_SOURCES['script-src']}" if d.startswith("script-src") else d
    for d in SECURITY_HEADERS["Content-Security-Policy"].split("; ")
) + f"; frame-src {login_widget.CSP_SOURCES['frame-src']}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SessionHandler = Callable[[web.Request, SessionRow], Awaitable[web.StreamResponse]]


class LoginThrottle:
    """At most `max_failures` wrong sign-ins per address within `window` seconds (beside the
    per-account lockout: this one slows down guessing many logins from one place)."""

    max_addresses = 10_000  # kept at most; past it the quietest are forgotten (their wait with them)

    def __init__(self, max_failures: int = 5, window: float = 900.0) -> None:
        self.max_failures = max_failures
        self.window = window
        self.failures: dict[str, deque[float]] = {}
        self._pruned = time.monotonic()

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
        now = time.monotonic()
        self._recent(address, now).append(now)
        # An address's list empties only when it comes back: the ones that went away are
        # dropped here, once a window (and at once past the cap: many addresses, IPv6 /64s).
        if len(self.failures) > self.max_addresses or now - self._pruned >= self.window:
            self._pruned = now
            for key in list(self.failures):
                if not self._recent(key, now):
                    del self.failures[key]
            if len(self.failures) > self.max_addresses:  # all within the window: keep the latest half
                latest = sorted(self.failures, key=lambda k: self.failures[k][-1])[-self.max_addresses // 2:]
                self.failures = {k: self.failures[k] for k in latest}

    def succeeded(self, address: str) -> None:
        self.failures.pop(address, None)


@dataclass(frozen=True)
class TelegramSignIn:
    """"Log in with Telegram" is on: the bot whose token signs the widget's data, and its username
    (from getMe) that the widget names."""
    bot_username: str
    bot_token: str = field(repr=False)


class WebAuth:
    failure_delay = 0.3  # seconds added to every refused sign-in, against guessing

    def __init__(self, accounts: Accounts, *, api_token: str, shop_name: str, language: str, public_url: str,
                 telegram: TelegramSignIn | None = None, trusted_proxies: tuple[Any, ...] = ()) -> None:
        self.accounts = accounts
        # Behind these, the client is named by X-Forwarded-For: else every sign-in through the
        # proxy counts for one address, and a stranger's wrong guesses make everyone wait.
        self.trusted_proxies = trusted_proxies
        self.telegram = telegram
        self.api_token = api_token
        self.shop_name = shop_name
        self.lang = language
        public = urlsplit(public_url)
        self.public_origin = f"{public.scheme}://{public.netloc}" if public.netloc else ""
        self.secure_cookie = public.scheme == "https"
        self.throttle = LoginThrottle(max_failures=20)  # the accounts lock themselves after 5
        self.setup_code: str | None = None  # the first owner's one-time link, while no account exists

    def register(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/login", self.login_form)
        r.add_post("/login", self.login)
        r.add_get("/login/telegram", self.telegram_login)
        r.add_post("/logout", self.guard(self.logout, roles=None, change=True))
        r.add_get("/setup", self.setup_form)
        r.add_post("/setup", self.setup)

    async def offer_setup(self, base_url: str) -> str | None:
        """With no account at all, a one-time link that creates the first owner (printed at start)."""
        if await self.accounts.count() > 0:
            self.setup_code = None
            return None
        self.setup_code = secrets.token_urlsafe(24)
        return f"{base_url.rstrip('/')}/setup?code={self.setup_code}"

    # --- guards ------------------------------------------------------------------------------

    async def session(self, request: web.Request) -> SessionRow | None:
        return await self.accounts.session(request.cookies.get(COOKIE))

    def page(self, handler: SessionHandler, roles: tuple[str, ...]) -> Handler:
        """An HTML page: without a session, to the sign-in form; a role it is not for gets 403."""
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await self.session(request)
            if session is None:
                return redirect(f"/login?next={quote(request.path)}")
            if session.account.role not in roles:
                return self._page(page_text(self.lang, "login.no_access", login=session.account.login), status=403,
                                  signed_in=session)
            response = await handler(request, session)
            response.headers["Cache-Control"] = "no-store"
            return secured(response)

        return checked

    def guard(self, handler: SessionHandler, roles: tuple[str, ...] | None, change: bool = False) -> Handler:
        """A JSON route: 401 without a session, 403 for another role or without the CSRF token."""
        async def checked(request: web.Request) -> web.StreamResponse:
            session = await self.session(request)
            if session is None:
                return error(401, page_text(self.lang, "error.session"))
            if roles is not None and session.account.role not in roles:
                return error(403, page_text(self.lang, "login.no_access", login=session.account.login))
            if change:
                given = request.headers.get(CSRF_HEADER, "")
                if not given and request.content_type == "application/x-www-form-urlencoded":
                    form = await read_form(request)
                    given = str(form.get("csrf", "")) if form is not None else ""
                # A header's bytes that are not UTF-8 arrive as surrogates: compared as the bytes they were.
                if not given or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), session.csrf.encode()):
                    log.warning("%s %s without a valid CSRF token", request.method, request.path)
                    return error(403, "missing or wrong CSRF token")
            response = await handler(request, session)
            response.headers["Cache-Control"] = "no-store"
            return secured(response)

        return checked

    # --- sign in and out ---------------------------------------------------------------------

    def _cross_site(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        # Behind a proxy that rewrites Host, http.public_url is the page's own origin.
        return bool(origin) and urlsplit(origin).netloc != request.host and origin.rstrip("/") != self.public_origin

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        session = await self.session(request)
        if session is not None:
            return redirect(_next(request.query.get("next"), session))
        return self._page(nxt=request.query.get("next", "")[:200], request=request)  # kept by the form: back there once signed in

    async def login(self, request: web.Request) -> web.StreamResponse:
        if self._cross_site(request):
            return self._page(page_text(self.lang, "login.forbidden"), status=403)
        form = await read_form(request)
        if form is None:
            return error(400, UNREADABLE_FORM)
        login = str(form.get("login", form.get("name", "")))[:100]
        nxt = str(form.get("next", request.query.get("next", "")))[:200]
        address = client_address(request, self.trusted_proxies) or "?"
        wait = self.throttle.wait_left(address)
        if wait > 0:
            return self._too_many(wait, login, nxt)
        password = str(form.get("password", ""))
        old_token = str(form.get("token", ""))
        if "token" in form or (password and hmac.compare_digest(password.encode(), self.api_token.encode())):
            # The shared API token signed agents in before accounts: say what to do now.
            if hmac.compare_digest((old_token or password).encode(), self.api_token.encode()):
                log.warning("web sign-in with the API token refused (accounts now): from %s", address)
                return self._page(page_text(self.lang, "login.token_retired"), login, nxt, status=401)
            self.throttle.failed(address)
            await asyncio.sleep(self.failure_delay)
            return self._page(page_text(self.lang, "login.wrong"), login, nxt, status=401)
        result = await self.accounts.sign_in(login, password, address)
        if result.session is None:
            self.throttle.failed(address)
            await asyncio.sleep(self.failure_delay)
            if result.refused == "locked":
                return self._locked(result.locked_until, login, nxt)
            key = "login.disabled" if result.refused == "disabled" else "login.wrong"
            return self._page(page_text(self.lang, key), login, nxt, status=401 if key == "login.wrong" else 403,
                              request=request)
        self.throttle.succeeded(address)
        return self._signed_in(result.token, _next(nxt, result.session))

    async def telegram_login(self, request: web.Request) -> web.StreamResponse:
        """The Telegram widget's auth URL: its signed data in the query (and our `next`)."""
        pairs = list(request.query.items())
        nxt = request.query.get("next", "")
        if "?" in nxt:  # its fields appended after a second "?" (our auth URL's next never has one)
            nxt, _, appended = nxt.partition("?")
            pairs += parse_qsl(appended, keep_blank_values=True)
        nxt = nxt[:200]
        if self.telegram is None:
            return self._page(page_text(self.lang, "login.telegram_off"), nxt=nxt, status=404)
        address = client_address(request, self.trusted_proxies) or "?"
        wait = self.throttle.wait_left(address)
        if wait > 0:
            return self._too_many(wait, "", nxt)
        try:
            who = login_widget.check(pairs, self.telegram.bot_token, self.accounts.clock.now())
        except login_widget.LoginRejected as exc:
            self.throttle.failed(address)
            await asyncio.sleep(self.failure_delay)
            log.warning("Telegram sign-in refused from %s: %s", address, exc)
            key = "login.telegram_stale" if exc.reason in ("stale", "future") else "login.telegram_invalid"
            return self._page(page_text(self.lang, key), nxt=nxt, status=401, request=request)
        result = await self.accounts.sign_in_telegram(
            who.user_id, address, spent=(who.spent_key, who.auth_date + login_widget.MAX_AGE))
        if result.session is None:
            await asyncio.sleep(self.failure_delay)
            if result.refused == "locked":
                return self._locked(result.locked_until, "", nxt)
            if result.refused == "spent":
                log.warning("Telegram sign-in refused from %s: its data was used before", address)
                return self._page(page_text(self.lang, "login.telegram_stale"), nxt=nxt, status=401, request=request)
            if result.refused == "unlinked":
                log.info("Telegram sign-in from %s by a Telegram user linked to no account", address)
                message = page_text(self.lang, "login.telegram_unlinked", id=who.user_id)
            else:
                message = page_text(self.lang, "login.disabled")
            return self._page(message, nxt=nxt, status=403, request=request)
        self.throttle.succeeded(address)
        # Not a redirect: this request came from telegram.org's frame, and the SameSite=Strict
        # cookie would not go with a redirect in that navigation; a page of ours that moves on does.
        return self._signed_in(result.token, _next(nxt, result.session), moving_page=True)

    def _too_many(self, wait: float, login: str, nxt: str) -> web.Response:
        return self._page(page_text(self.lang, "login.too_many", minutes=max(1, round(wait / 60))), login, nxt,
                          status=429, headers={"Retry-After": str(int(wait) + 1)})

    def _locked(self, until: Any, login: str, nxt: str) -> web.Response:
        assert until is not None
        left = (until - self.accounts.clock.now()).total_seconds()
        return self._page(page_text(self.lang, "login.locked", minutes=max(1, round(left / 60))), login, nxt,
                          status=429, headers={"Retry-After": str(int(left) + 1)})

    def _signed_in(self, token: str, location: str, moving_page: bool = False) -> web.Response:
        if moving_page:
            e = html.escape
            response = self._shell(f'<p><a href="{e(location)}">{e(page_text(self.lang, "login.continue"))}</a></p>', 200,
                                   head=f'<meta http-equiv="refresh" content="0;url={e(location)}">')
        else:
            response = redirect(location)
        response.set_cookie(COOKIE, token, max_age=int(self.accounts.policy.session_lifetime.total_seconds()), path="/",
                            httponly=True, samesite="Strict", secure=self.secure_cookie)
        return response

    async def logout(self, request: web.Request, session: SessionRow) -> web.StreamResponse:
        await self.accounts.sign_out(session)
        response = redirect("/login")
        response.del_cookie(COOKIE, path="/")
        return response

    # --- the first owner -----------------------------------------------------------------------

    def _setup_code_ok(self, given: str) -> bool:
        return self.setup_code is not None and bool(given) and hmac.compare_digest(given.encode(), self.setup_code.encode())

    async def setup_form(self, request: web.Request) -> web.StreamResponse:
        if not self._setup_code_ok(request.query.get("code", "")) or await self.accounts.count() > 0:
            return self._page(page_text(self.lang, "setup.used"), status=403)
        return self._setup_page(request.query["code"])

    async def setup(self, request: web.Request) -> web.StreamResponse:
        if self._cross_site(request):
            return self._page(page_text(self.lang, "login.forbidden"), status=403)
        form = await read_form(request)
        if form is None:
            return error(400, UNREADABLE_FORM)
        code = str(form.get("code", ""))
        if not self._setup_code_ok(code):
            return self._page(page_text(self.lang, "setup.used"), status=403)
        login, name = str(form.get("login", "")), str(form.get("name", ""))
        password, again = str(form.get("password", "")), str(form.get("password2", ""))
        if password != again:
            return self._setup_page(code, page_text(self.lang, "setup.mismatch"), login, name, status=400)
        try:
            await self.accounts.add(login, "owner", password, name=name, by="setup", only_if_none=True)
        except AccountError as exc:
            return self._setup_page(code, str(exc), login, name, status=400)
        self.setup_code = None  # once
        result = await self.accounts.sign_in(login, password, client_address(request, self.trusted_proxies) or "?")
        assert result.session is not None
        return self._signed_in(result.token, "/dashboard")

    # --- HTML --------------------------------------------------------------------------------

    def _shell(self, body: str, status: int, headers: dict[str, str] | None = None, head: str = "") -> web.Response:
        e = html.escape
        text = f"""<!doctype html>
<html lang="{e(self.lang)}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(page_text(self.lang, "title", shop=self.shop_name))}</title>
<link rel="stylesheet" href="/agent/static/app.css">{head}</head>
<body class="login">
<main>
{body}
</main>
</body></html>"""
        response = web.Response(text=text, content_type="text/html", status=status, headers=headers)
        response.headers["Cache-Control"] = "no-store"
        return secured(response)

    def _page(self, message: str = "", login: str = "", nxt: str = "", status: int = 200,
              headers: dict[str, str] | None = None, signed_in: SessionRow | None = None,
              request: web.Request | None = None) -> web.Response:
        """The sign-in form (with the Telegram widget when that is on and `request` is given)."""
        t = catalog(self.lang)
        e = html.escape
        alert = f'<p class="alert" role="alert" id="login-error">{e(message)}</p>' if message else ""
        if signed_in is not None:  # signed in, but not for this page: only the sign-out
            return self._shell(f"""<h1>{e(t["login.heading"])}</h1>
{alert}
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{e(signed_in.csrf)}">
<button type="submit">{e(t["logout"])}</button></form>""", status, headers)
        described = ' aria-describedby="login-error"' if message else ""
        response = self._shell(f"""<h1>{e(t["login.heading"])}</h1>
{alert}
<form method="post" action="/login">
<input type="hidden" name="next" value="{e(nxt)}">
<label for="login">{e(t["login.login"])}</label>
<input id="login" name="login" autocomplete="username" required maxlength="40" value="{e(login)}"{described}>
<label for="password">{e(t["login.password"])}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{described}>
<button type="submit">{e(t["login.submit"])}</button>
</form>
{self._widget(request, nxt)}<p class="help">{e(t["login.help"])}</p>""", status, headers)
        if self.telegram is not None and request is not None:
            response.headers["Content-Security-Policy"] = WIDGET_CSP
        return response

    def _widget(self, request: web.Request | None, nxt: str) -> str:
        if self.telegram is None or request is None:
            return ""
        origin = self.public_origin or f"{request.scheme}://{request.host}"
        path = nxt.split("?")[0]  # Telegram adds its fields to this URL: no query of ours but next
        auth_url = f"{origin}/login/telegram" + (f"?next={quote(path, safe='/')}" if path else "")
        return (f'<div class="telegram-login"><p>{html.escape(page_text(self.lang, "login.telegram_or"))}</p>\n'
                f'{login_widget.widget_html(self.telegram.bot_username, auth_url)}</div>\n')

    def _setup_page(self, code: str, message: str = "", login: str = "", name: str = "", status: int = 200) -> web.Response:
        t = catalog(self.lang)
        e = html.escape
        alert = f'<p class="alert" role="alert">{e(message)}</p>' if message else ""
        return self._shell(f"""<h1>{e(t["setup.heading"])}</h1>
<p class="help">{e(t["setup.help"])}</p>
{alert}
<form method="post" action="/setup">
<input type="hidden" name="code" value="{e(code)}">
<label for="login">{e(t["login.login"])}</label>
<input id="login" name="login" autocomplete="username" required maxlength="40" value="{e(login)}">
<label for="name">{e(t["setup.name"])}</label>
<input id="name" name="name" maxlength="40" value="{e(name)}">
<label for="password">{e(t["login.password"])}</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="10">
<label for="password2">{e(t["setup.password2"])}</label>
<input id="password2" name="password2" type="password" autocomplete="new-password" required minlength="10">
<button type="submit">{e(t["login.submit"])}</button>
</form>""", status)


def _next(given: str | None, session: SessionRow) -> str:
    """Where to go after signing in: the page asked for, if it is one of ours, else the role's home."""
    # Printable only: a line break in the Location header makes aiohttp drop the connection.
    if given and given.isprintable() and given.split("?")[0].rstrip("/") in NEXT_ALLOWED:
        return given
    return HOME[session.account.role]


UNREADABLE_FORM = "expected a form (application/x-www-form-urlencoded or multipart/form-data, UTF-8)"


async def read_form(request: web.Request) -> Any:
    """The posted form, or None when it cannot be read: request.post() raises for a multipart
    body without a boundary, a charset Python does not know, or bytes that charset cannot decode."""
    try:
        return await request.post()
    except (ValueError, LookupError):  # UnicodeDecodeError is a ValueError
        return None


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def secured(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def error(status: int, message: str) -> web.Response:
    return secured(web.json_response({"error": {"status": status, "message": message}}, status=status))


def as_json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda b: json.dumps(b, ensure_ascii=False))

