"""The running bot's order sources: the config file's and those added by `feedbot source add`
(read again from the database when a delivery comes, at most every few seconds, so a source
added, removed, or removed and added again with another secret while the bot runs is what
the next delivery meets, without a restart), and one KiotViet API client per KiotViet
source and credentials."""
from __future__ import annotations

import time
from typing import Any

from bot.sources.kiotviet_api import KiotVietClient
from bot.sources.settings import SourceSettings, merged
from storage import orders

RELOAD_SPACING_S = 5.0


class SourceRegistry:
    def __init__(self, db: Any, configured: tuple[SourceSettings, ...], *, kiotviet_urls: tuple[str, str] | None = None) -> None:
        self.db = db
        self.configured = configured
        self.kiotviet_urls = kiotviet_urls  # (token URL, API URL) for tests against a fake KiotViet
        self.sources: dict[str, SourceSettings] = {s.name: s for s in configured}
        self._loaded_at = float("-inf")
        self._missed_at = float("-inf")  # the last reading caused by a name not known
        self._clients: dict[tuple[str, str, str, str], KiotVietClient] = {}

    async def load(self) -> dict[str, SourceSettings]:
        async with self.db.transaction() as tx:
            stored = await orders.stored_sources(tx)
        self.sources = merged(self.configured, stored)
        self._loaded_at = time.monotonic()
        return self.sources

    async def get(self, name: str) -> SourceSettings | None:
        # A known name: read again when the copy is a few seconds old (a source removed, or
        # added again with the right secret, must not wait for a restart). A name not known:
        # read again at once unless another unknown name just did (a new source's first
        # delivery must not be a 404: KiotViet stops sending on one), so scanners cost little.
        now = time.monotonic()
        if name not in self.sources:
            if now - self._missed_at > RELOAD_SPACING_S:
                self._missed_at = now
                await self.load()
        elif now - self._loaded_at > RELOAD_SPACING_S:
            await self.load()
        return self.sources.get(name)

    def kiotviet(self, source: SourceSettings) -> KiotVietClient | None:
        if source.platform != "kiotviet" or not (source.client_id and source.client_secret and source.retailer):
            return None
        key = (source.name, source.retailer, source.client_id, source.client_secret)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = client_for(source, self.kiotviet_urls)
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def client_for(source: SourceSettings, urls: tuple[str, str] | None = None) -> KiotVietClient:
    extra = {"token_url": urls[0], "api_url": urls[1]} if urls else {}
    return KiotVietClient(client_id=source.client_id, client_secret=source.client_secret, retailer=source.retailer,
                          **extra)
