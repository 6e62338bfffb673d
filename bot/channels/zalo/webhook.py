"""POST /webhooks/zalo: verify the signature on the raw body, drop stale events (200, logged:
a non-2xx answer brings retries and then a disabled webhook), answer Zalo's unsigned test
POST ({} when the URL is saved) with 200 and nothing stored, record
the event in the inbox (dedupe) and answer 200 fast; the event is handled right after,
within a short time budget, or in the background when it takes longer (Zalo wants its
answer within ~2 s and disables webhooks that keep failing)."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot.channels.base import Process, Record
from bot.channels.zalo.channel import SIGNATURE_HEADER, WEBHOOK_PATH, Rejected, Stale, WebhookPing, ZaloChannel, verify
from bot.clock import Clock
from bot.http.body import BodyError, read_bytes

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
HANDLE_BUDGET_S = 1.0  # handled within this, or finished after the answer


class ZaloWebhook:
    def __init__(
        self, record: Record, process: Process, channel: ZaloChannel, *, oa_secret_key: str, max_event_age: timedelta,
        clock: Clock,
    ) -> None:
        self.record = record  # the engine's: the inbox row first, the answer, then the handling
        self.process = process
        self.channel = channel
        self.oa_secret_key = oa_secret_key
        self.max_event_age = max_event_age
        self.clock = clock
        self._background: set[asyncio.Task[Any]] = set()

    def register(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        try:
            raw = await read_bytes(request, MAX_BODY_BYTES)  # the signature covers the raw bytes
        except BodyError as exc:
            return _answer(exc.status, exc.message)
        try:
            payload = verify(
                raw, request.headers.get(SIGNATURE_HEADER, ""), app_id=self.channel.app_id,
                oa_secret_key=self.oa_secret_key, max_age=self.max_event_age, now=self.clock.now(),
            )
            inbox_id = await self.record("zalo", payload)
        except WebhookPing:
            log.info("zalo webhook: Zalo's test POST (the URL was saved): answered 200, nothing stored")
            return web.json_response({"error": 0, "message": "ok"})
        except Stale as exc:
            log.warning("zalo webhook: signed event dropped as stale (answered 200 so Zalo does not retry): %s", exc)
            return web.json_response({"error": 0, "message": "stale event dropped"})
        except Rejected as exc:
            log.warning("zalo webhook refused (%s): %s", exc.status, exc.message)
            return _answer(exc.status, exc.message)
        except ValueError as exc:
            return _answer(400, str(exc))
        if inbox_id is not None:
            task = asyncio.create_task(self.process(inbox_id, self.channel, payload))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            # Shielded: a slow event keeps going after we answered (recorded first, so a stop
            # in between leaves it unprocessed in the inbox, replayed at the next start).
            await asyncio.wait({task}, timeout=HANDLE_BUDGET_S)
        return web.json_response({"error": 0, "message": "ok"})

    async def drain(self, timeout: float = 5.0) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


def _answer(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message}}, status=status)
