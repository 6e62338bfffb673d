"""The real app with order sources configured, one per platform."""
from __future__ import annotations

import dataclasses
from typing import Any, AsyncIterator

import pytest

from bot.sources.settings import parse_sources
from tests.conftest import Harness, make_config

SECRETS = {
    "haravan": "hrv-webhook-auth-string-1",
    "sapo": "sapo-app-secret-0001",
    "kiotviet": "kv-webhook-secret-01",
    "shopify": "shpss_signing_key_0001",
    "woocommerce": "wc-secret-000001",
}


def sources(**extra: dict[str, Any]) -> list[dict[str, Any]]:
    """One source per platform, named like the platform (extra keys per platform)."""
    return [{"name": p, "platform": p, "secret": s, **extra.get(p, {})} for p, s in SECRETS.items()]


class OrdersHarness(Harness):
    async def deliver(self, source: str, headers: dict[str, str], raw: bytes, method: str = "POST",
                      params: dict[str, str] | None = None) -> tuple[int, str]:
        assert self.http is not None
        async with self.http.request(method, f"{self.url}/webhooks/orders/{source}", data=raw, headers=headers,
                                     params=params) as resp:
            return resp.status, await resp.text()

    async def purchases(self) -> list[dict]:
        return await self.rows(
            "SELECT p.order_id, p.store, p.touchpoint, p.amount, c.name, c.phone, c.external_id, s.status, s.skip_reason"
            " FROM purchases p JOIN customers c ON c.id = p.customer_id JOIN surveys s ON s.purchase_id = p.id"
            " ORDER BY p.id")


@pytest.fixture
async def orders_app(tmp_path, clock, database_url) -> AsyncIterator[OrdersHarness]:
    config = make_config(tmp_path, None, database_url=database_url)
    config = dataclasses.replace(config, sources=parse_sources(sources()))
    h = OrdersHarness(config, None, clock)
    await h.start()
    yield h
    await h.close()
