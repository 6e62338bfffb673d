"""The one reader of request bodies (the shop's API and the platforms' webhooks): a size
limit checked on the way in, the content type, and JSON parsed once."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class BodyError(Exception):
    """A body refused before anything is done with it: the HTTP status and why."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


async def read_bytes(request: web.Request, limit: int, *, any_type: bool = False) -> bytes:
    """The raw body of a JSON request, at most `limit` bytes (413 past it, 415 for another type;
    `any_type`: a platform that also sends form bodies, like WooCommerce's ping)."""
    if not any_type and request.content_type != "application/json":
        raise BodyError(415, "expected Content-Type: application/json")
    if request.content_length is not None and request.content_length > limit:
        raise BodyError(413, f"body larger than {limit} bytes")
    # read(n) returns what has arrived so far, not n bytes: loop to the end of the body
    # (a body that comes in several TCP segments or chunks is still one body).
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        raise BodyError(413, f"body larger than {limit} bytes")
    return bytes(raw)


async def read_json(request: web.Request, limit: int) -> tuple[Any, str]:
    """The body parsed, and as text (kept as received where it is stored)."""
    raw = await read_bytes(request, limit)
    try:
        text = raw.decode("utf-8")
        value = json.loads(text)
    except ValueError as exc:  # not UTF-8, not JSON, an integer of more than 4300 digits
        raise BodyError(400, f"body: not valid JSON: {str(exc)[:200]}", "body") from None
    except RecursionError:
        raise BodyError(400, "body: nested too deeply", "body") from None
    return value, text
