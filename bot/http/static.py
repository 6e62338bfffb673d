"""A page's static files (its script and stylesheet), read once at start and served with the
pages' security headers; anything else under the prefix is a 404."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.http.auth import error, secured

TYPES = {".js": "application/javascript", ".css": "text/css"}


class StaticFiles:
    def __init__(self, folder: Path, names: tuple[str, ...]) -> None:
        self.files = {name: ((folder / name).read_bytes(), TYPES[Path(name).suffix]) for name in names}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        found = self.files.get(request.match_info["name"])
        if found is None:
            return error(404, "not found")
        body, content_type = found
        response = web.Response(body=body, content_type=content_type, charset="utf-8")
        response.headers["Cache-Control"] = "no-cache"
        return secured(response)
