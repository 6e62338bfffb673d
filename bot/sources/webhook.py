"""/webhooks/orders/<source name>: the one inlet of every sales system. The platform's set-up
requests are answered (Haravan's hub.challenge, WooCommerce's ping); a delivery is checked
(size, signature, JSON), then recorded (dedupe per delivery id) and handled in one
transaction before the answer (milliseconds); one that needs the platform's API (a KiotViet
customer lookup) is recorded, and handled within a short budget or in the background. A refused request stores nothing but a count: answered 200 where
the platform stops sending on a 4xx (KiotViet, WooCommerce), else 401/400/413, and the
owners are told once."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web

from bot.http.body import BodyError, read_bytes
from bot.services.orders import OrderIntake
from bot.sources.base import header, without_nul
from bot.sources.settings import WEBHOOK_PATH, SourceSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # a Shopify order with hundreds of lines is a few hundred KB
HANDLE_BUDGET_S = 1.0


class OrderWebhooks:
    def __init__(self, intake: OrderIntake, sources: Callable[[str], Awaitable[SourceSettings | None]],
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.intake = intake
        self.sources = sources
        self.max_body_bytes = max_body_bytes
        self._background: set[asyncio.Task[Any]] = set()

    def register(self, app: web.Application) -> None:
        path = WEBHOOK_PATH.format(name="{name}")
        app.router.add_get(path, self.handle)
        app.router.add_post(path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        source = await self.sources(request.match_info["name"])
        if source is None:
            return _answer(404, "no such order source")
        if not source.enabled:
            # Turned off by the owner: nothing is taken, but 200, not 404: KiotViet stops sending
            # for good on a 404, and Shopify and WooCommerce drop a webhook that keeps failing, so
            # turning it on again would not bring the deliveries back.
            log.info("order source %s is turned off: a delivery not taken", source.name)
            return _answer(200, "this order source is turned off: delivery not taken")
        platform = source.module
        try:
            raw = await read_bytes(request, self.max_body_bytes, any_type=True) if request.method == "POST" else b""
        except BodyError as exc:
            return await self._refuse(source, exc.status, exc.message)
        handshake = platform.handshake(request.method, request.query, request.headers, raw, source.verify_token)
        if handshake is not None:
            log.info("order source %s: %s set-up request answered %s", source.name, source.platform, handshake.status)
            return web.Response(status=handshake.status, text=handshake.text)
        if request.method != "POST":
            return _answer(200 if platform.punishes_4xx else 405, "POST order deliveries here")
        form = platform.verify(request.headers, raw, source.secret, source.signature)
        if form is None:
            return await self._refuse(source, 401, f"bad or missing {platform.signature_header}")
        try:
            text = raw.decode("utf-8")
            body = without_nul(json.loads(text))
        except (ValueError, RecursionError):
            return await self._refuse(source, 400, "body is not JSON")
        if source.platform == "kiotviet":
            log.info("order source %s: X-Hub-Signature matched as %s", source.name, form)
        topic = platform.topic(request.headers, body)
        test = bool(platform.test_header) and header(request.headers, platform.test_header).strip().lower() == "true"
        row, pending = await self.intake.ingest(source, platform.delivery_id(request.headers, raw, body), topic, text,
                                                body, form, test=test)
        if row is not None and pending:
            task = asyncio.create_task(self.intake.process(source, row, topic, text))
            self._background.add(task)
            task.add_done_callback(self._done)
            # Shielded: a slow one goes on after the answer (recorded first: a stop in between
            # leaves it pending, handled at the next start).
            await asyncio.wait({task}, timeout=HANDLE_BUDGET_S)
        return web.json_response({"ok": True, "duplicate": row is None})

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("order delivery failed: %r", task.exception())

    async def _refuse(self, source: SourceSettings, status: int, reason: str) -> web.Response:
        await self.intake.refused(source, reason)
        # KiotViet stops sending on 400/401/403/404/405, WooCommerce disables after 5 failures.
        return _answer(200 if source.module.punishes_4xx else status, reason)

    async def drain(self, timeout: float = 5.0) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


def _answer(status: int, message: str) -> web.Response:
    body = {"ok": True, "note": message} if status == 200 else {"error": {"status": status, "message": message}}
    return web.json_response(body, status=status)
