"""The shop's HTTP API (bearer token) and the app's root: the platforms' webhooks, the web
chat and the agent page add their routes to it.

Errors are JSON: {"error": {"status": 400, "message": "customer.name: required", "field": "customer.name"}}.
Bad input changes nothing: validation happens before the one write transaction.
"""
from __future__ import annotations

import asyncio
import hmac
import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import segno
from aiohttp import web

from bot.http.auth import LoginThrottle
from bot.clock import Clock
from bot.services.digest import DigestService
from bot.http.body import BodyError, read_json
from bot.http.connections import client_address
from bot.services.purchases import (InputError, PurchaseConflict, is_identifier, parse_purchase, parse_revoke_link,
                                    record_purchase)
from flows.digest import parse_week
from flows.schedule import SurveyPolicy
from storage import purchases
from storage.db import Database, schema_versions
from storage.timefmt import from_db

log = logging.getLogger(__name__)

WEBHOOK_MAX_BYTES = 1024 * 1024
OPENAPI_PATH = "/api/v1/openapi.json"
OPENAPI_FILE = Path(__file__).parent / "openapi.json"
HEALTH_WRITE_SPACING_S = 2.0  # /healthz answers from its last write test if that is newer
HEALTH_WRITE_TIMEOUT_S = 5.0


def error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if field:
        body["field"] = field
    return web.json_response({"error": body}, status=status, headers=headers)


class HttpApi:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        policy: SurveyPolicy,
        touchpoints: tuple[str, ...],
        api_token: str,
        max_body_bytes: int,
        bot_username: Callable[[], str | None],
        reports: DigestService | None = None,
        web_link: Callable[[str], str] | None = None,
        liveness: Callable[[], dict[str, dict[str, str]]] | None = None,
        programs: Any = None,  # bot.services.programs.ProgramService: purchases start programs; on-demand sends
        stages: tuple[str, ...] = (),  # survey.stages: a purchase's "stage" is one of these
        role: Callable[[], str] | None = None,
        trusted_proxies: tuple[Any, ...] = (),  # http.trusted_proxies: the wrong-token wait counts their clients
    ) -> None:
        self.trusted_proxies = trusted_proxies
        self.programs = programs
        self.stages = stages
        self.db = db
        self.clock = clock
        self.policy = policy
        self.touchpoints = touchpoints
        self.api_token = api_token
        self.max_body_bytes = max_body_bytes
        self.bot_username = bot_username
        self.reports = reports
        self.web_link = web_link  # the web chat's survey page for a link token (web channel on)
        self.throttle = LoginThrottle()  # wrong bearer tokens per address, as on the web sign-in
        self.liveness = liveness  # the sender's and the scheduler's status, for /healthz
        self.role = role  # this instance's part in a cluster ("leader" / "follower"), for /readyz
        self._db_health: tuple[float, dict[str, str]] | None = None  # (monotonic time, status) of the last write test
        self._db_health_lock = asyncio.Lock()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=max(self.max_body_bytes, WEBHOOK_MAX_BYTES), middlewares=[self._errors])
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/readyz", self.ready)
        app.router.add_get(OPENAPI_PATH, self.openapi)
        app.router.add_post("/api/v1/purchases", self._authorized(self.post_purchase))
        app.router.add_get("/api/v1/purchases/{order_id}", self._authorized(self.get_purchase))
        app.router.add_get("/api/v1/purchases/{order_id}/qr.png", self._authorized(self.purchase_qr))
        if self.reports is not None:
            app.router.add_get("/api/v1/reports/weekly", self._authorized(self.weekly_report))
        if self.programs is not None:
            app.router.add_post("/api/v1/programs/{name}/send", self._authorized(self.program_send))
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return error(exc.status, exc.reason)
            raise
        except Exception:
            log.exception("HTTP %s %s failed", request.method, _route(request))
            return error(500, "internal error; see the bot's log")

    def _authorized(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def checked(request: web.Request) -> web.StreamResponse:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return error(401, "missing API token: send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
            address = client_address(request, self.trusted_proxies) or "?"  # behind a proxy: its client, not the proxy
            wait = self.throttle.wait_left(address)
            if wait > 0:  # even the right token: else the lockout tells a guesser when it guessed right
                return error(429, f"too many wrong API tokens from this address; try again in {int(wait) + 1} s",
                             headers={"Retry-After": str(int(wait) + 1)})
            # Header bytes that are not UTF-8 arrive as surrogates: compared as the bytes they were.
            given = token.strip().encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, self.api_token.encode()):
                self._wrong_token(address, request)
                return error(401, "wrong API token", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return await handler(request)

        return checked

    def _wrong_token(self, address: str, request: web.Request) -> None:
        """Counted per address like the agent page's sign-in; logged without the token."""
        self.throttle.failed(address)
        if self.throttle.wait_left(address) > 0:
            log.warning("HTTP API: wrong bearer token from %s (%s %s); %d wrong in %d min: this address is "
                        "refused for %d min", address, request.method, _route(request), self.throttle.max_failures,
                        self.throttle.window // 60, self.throttle.window // 60)
        else:
            log.warning("HTTP API: wrong bearer token from %s (%s %s)", address, request.method, _route(request))

    # --- handlers ---------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        """Each part's status; 503 when one is down. The database is tested with a real write
        (a heartbeat row), at most every HEALTH_WRITE_SPACING_S: anyone may call this."""
        parts = {"database": await self._database_health()}
        if self.liveness is not None:
            parts.update(self.liveness())
        ok = all(part["status"] != "down" for part in parts.values())
        return web.json_response({"ok": ok, "parts": parts}, status=200 if ok else 503,
                                 headers={"Cache-Control": "no-store"})

    async def ready(self, request: web.Request) -> web.Response:
        """For a load balancer: may this instance take traffic? The database reachable and
        writable (the same write test as /healthz) and at the schema this code knows; and
        its role (a follower takes webhooks, chat and API calls like the leader)."""
        parts = {"database": await self._database_health(), "migrations": await self._migrations()}
        ok = all(part["status"] == "ok" for part in parts.values())
        body = {"ok": ok, "role": self.role() if self.role is not None else "leader", "parts": parts}
        return web.json_response(body, status=200 if ok else 503, headers={"Cache-Control": "no-store"})

    async def _migrations(self) -> dict[str, Any]:
        try:
            applied, known = await asyncio.wait_for(schema_versions(self.db), HEALTH_WRITE_TIMEOUT_S)
        except Exception as exc:
            return {"status": "down", "error": f"cannot read the schema version: {type(exc).__name__}: {exc}"}
        if applied != known:
            return {"status": "down", "applied": applied, "known": known,
                    "error": f"the database is at schema version {applied}, this feedbot's is {known}"}
        return {"status": "ok", "applied": applied, "known": known}

    async def _database_health(self) -> dict[str, str]:
        async with self._db_health_lock:  # callers at the same time share one write
            loop = asyncio.get_running_loop()
            if self._db_health is not None and loop.time() - self._db_health[0] < HEALTH_WRITE_SPACING_S:
                return self._db_health[1]
            try:
                await asyncio.wait_for(self.db.heartbeat(self.clock.now().isoformat()), HEALTH_WRITE_TIMEOUT_S)
                status = {"status": "ok"}
            except asyncio.TimeoutError:
                status = {"status": "down", "error": f"a write did not finish within {HEALTH_WRITE_TIMEOUT_S:.0f} s"}
            except Exception as exc:  # sqlite3.Error mostly: a read-only file, a full disk
                log.error("healthz: the database does not take writes: %s: %s", type(exc).__name__, exc)
                status = {"status": "down", "error": f"writes fail: {type(exc).__name__}: {exc}"}
            self._db_health = (loop.time(), status)
            return status

    async def openapi(self, request: web.Request) -> web.Response:
        """The API's description (OpenAPI 3.1), public like the routes it describes."""
        return web.Response(body=OPENAPI_FILE.read_bytes(), content_type="application/json", charset="utf-8")

    async def post_purchase(self, request: web.Request) -> web.Response:
        try:
            body, _ = await read_json(request, self.max_body_bytes)
            data = parse_purchase(body, touchpoints=self.touchpoints, timezone=self.policy.timezone, now=self.clock.now(),
                                  stages=self.stages)
            revoke_link = parse_revoke_link(body)
        except BodyError as exc:
            return error(exc.status, exc.message, exc.field)
        except InputError as exc:
            return error(400, str(exc), exc.field)
        try:
            outcome = await record_purchase(self.db, self.clock, self.policy, data, revoke_link=revoke_link,
                                            programs=self.programs)
        except PurchaseConflict as exc:
            return error(409, str(exc), "order_id")
        return web.json_response(
            {
                "order_id": outcome.order_id,
                "duplicate": not outcome.created,
                "survey": {
                    "id": outcome.survey_id,
                    "status": outcome.survey_status,
                    "skip_reason": outcome.skip_reason,
                    "due_at": self._shop_time(outcome.due_at),
                },
                "links": self._links(outcome.order_id, outcome.link_token),
            },
            status=202 if outcome.created else 200,
        )

    async def program_send(self, request: web.Request) -> web.Response:
        """A program's question to these customers now (an "on demand" trigger), within the
        global limit: {"customers": ["C-42", ...]} -> each id's outcome."""
        name = request.match_info["name"]
        try:
            body, _ = await read_json(request, self.max_body_bytes)
        except BodyError as exc:
            return error(exc.status, exc.message, exc.field)
        ids = body.get("customers") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or len(ids) > 1000 or not all(
                isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
            return error(400, "customers: expected a list of 1-1000 customer external ids", "customers")
        try:
            outcome = await self.programs.on_demand(name, ids)
        except KeyError:
            return error(404, f"no program named {name[:64]!r} in [[programs]]")
        return web.json_response({"program": name, "customers": outcome}, status=202)

    def _shop_time(self, at: datetime | None) -> str | None:
        """One format for every time the API answers: ISO 8601 in shop time, with its offset."""
        return None if at is None else at.astimezone(self.policy.timezone).isoformat()

    async def get_purchase(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        # An id no purchase can have is looked up by nobody (a NUL in it: PostgreSQL raises).
        row = await purchases.with_survey(self.db, order_id) if is_identifier(order_id) else None
        if row is None:
            return error(404, f"no purchase with order_id {order_id!r}", "order_id")
        return web.json_response(
            {
                "order_id": row["order_id"],
                "survey": {
                    "id": row["id"],
                    "status": row["status"],
                    "skip_reason": row["skip_reason"],
                    "due_at": self._shop_time(from_db(row["due_at"])),
                    "sent_at": self._shop_time(from_db(row["sent_at"])),
                    "score": row["score"],
                    "comment": row["comment"],
                },
                "links": self._links(row["order_id"], row["link_token"]),
            }
        )

    async def purchase_qr(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        row = await purchases.link_token(self.db.reader, order_id) if is_identifier(order_id) else None
        if row is None:
            return error(404, f"no purchase with order_id {order_id!r}", "order_id")
        link = self._telegram_link(row[0])
        if link is None:
            return error(409, "no Telegram bot configured (telegram.token / telegram.bot_username): no link to encode")
        buffer = io.BytesIO()
        segno.make(link, error="m").save(buffer, kind="png", scale=8, border=4)
        return web.Response(body=buffer.getvalue(), content_type="image/png")

    async def weekly_report(self, request: web.Request) -> web.Response:
        """The weekly digest's figures as JSON (the same as `feedbot digest --format json`);
        ?week=2026-W47, default the last complete week."""
        assert self.reports is not None
        raw = request.query.get("week", "").strip()
        try:
            week = parse_week(raw) if raw else self.reports.default_week()
        except ValueError as exc:
            return error(400, f"week: {exc}", "week")
        return web.json_response(await self.reports.report_json(week), dumps=_dumps)

    def _telegram_link(self, token: str) -> str | None:
        username = self.bot_username()
        return f"https://t.me/{username}?start={token}" if username else None

    def _links(self, order_id: str, token: str) -> dict[str, str | None]:
        return {
            "telegram": self._telegram_link(token),
            "web": self.web_link(token) if self.web_link else None,
            "qr_png": f"/api/v1/purchases/{quote(order_id, safe='')}/qr.png",
        }



def _route(request: web.Request) -> str:
    """The route's pattern, for logs: /api/v1/purchases/{order_id}, never the order id itself."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _dumps(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)
