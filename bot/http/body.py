"""The one reader of request bodies (the shop's API, the platforms' webhooks, the web chat's
image uploads): a size limit checked on the way in, the content type, JSON parsed once, and
what an image is by its own bytes (never by the Content-Type a client claims)."""
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


def image_type(data: bytes) -> str | None:
    """The image type of these bytes by their signature; None for anything else (never served)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def whole_image_type(data: bytes) -> str | None:
    """Like image_type, for bytes a stranger sent: the signature and the file's frame too (PNG:
    its header chunk first and its end chunk last; JPEG: its end marker; GIF: its trailer;
    WebP: the RIFF length), so that a text or a page with an image's first bytes glued on is
    refused. It does not decode the image (the browser does, as an <img> only)."""
    kind = image_type(data)
    tail = data.rstrip(b"\x00")  # some writers pad the end
    if kind == "image/png":
        ok = data[12:16] == b"IHDR" and data.endswith(b"IEND\xaeB`\x82")
    elif kind == "image/jpeg":
        ok = len(data) > 4 and b"\xff\xd9" in tail[-1024:]
    elif kind == "image/gif":
        ok = len(data) > 13 and tail.endswith(b"\x3b")
    elif kind == "image/webp":
        ok = int.from_bytes(data[4:8], "little") + 8 in (len(data), len(data) - 1)
    else:
        ok = False
    return kind if ok else None
