"""POST /webhooks/telegram: check the secret token Telegram echoes back, read the update and
hand it to `receive` (the engine's), which records and handles it before the 200 goes back
(Telegram redelivers until it gets a 2xx; the inbox dedupes by update_id)."""
from __future__ import annotations

import hmac

from aiohttp import web

from bot.channels.base import Receive
from bot.http.body import BodyError, read_json

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/webhooks/telegram"
MAX_BODY_BYTES = 1024 * 1024

_OK = b'{"ok": true}'


class TelegramWebhook:
    def __init__(self, receive: Receive, *, secret: str) -> None:
        self.receive = receive
        self.secret = secret

    def register(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        # Header bytes that are not UTF-8 arrive as surrogates: compared as the bytes they were.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.secret.encode()):
            return _error(401, "missing or wrong secret token")
        try:
            payload, text = await read_json(request, MAX_BODY_BYTES)
        except BodyError as exc:
            return _error(exc.status, exc.message, exc.field)
        if not isinstance(payload, dict):
            return _error(400, "expected a JSON object")
        try:
            await self.receive("telegram", payload, raw=text)
        except ValueError as exc:
            return _error(400, str(exc))
        return web.Response(body=_OK, content_type="application/json")


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    """The same error body as the shop's API (bot/http/api.py)."""
    body: dict[str, object] = {"status": status, "message": message}
    if field:
        body["field"] = field
    return web.json_response({"error": body}, status=status)
