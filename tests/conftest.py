"""Shared fixtures: a fake Telegram Bot API, a real SQLite file, the real app object."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from bot.app import FeedbotApp
from testkit.clock import FakeClock
from bot.config import Config, parse_config
from testkit.telegram_api import FakeTelegramServer
from tests.pg import SERVER, require_server

pytest_plugins = ["tests.secrets_guard"]  # issue 7 item 8: no secret in any log of the run

# Loopback only: a proxy variable in the environment must not capture test traffic.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

BOT_TOKEN = "123456789:TESTtokenABCDEFGHIJKLMNOPQRSTUVWXYZabc"
API_TOKEN = "test-api-token-0123456789"
VN = ZoneInfo("Asia/Ho_Chi_Minh")
START = datetime(2026, 11, 23, 9, 0, tzinfo=VN)  # a Monday morning, shop time


# Both storage backends: a test module that sets BACKENDS = BOTH runs each test using the
# `backend` fixture (directly or through `database_url`, `harness`, ...) once per backend.
BOTH = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    backends = getattr(metafunc.module, "BACKENDS", None)
    if backends and "backend" in metafunc.fixturenames:
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ("sqlite",)
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            backends = ("postgresql",)
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request) -> str:
    return getattr(request, "param", "sqlite")


@pytest.fixture
async def database_url(backend) -> AsyncIterator[str | None]:
    """A fresh migrated PostgreSQL database's URL, or None on SQLite."""
    if backend != "postgresql":
        yield None
        return
    await require_server()
    url = await SERVER.fresh_database()
    yield url
    await SERVER.drop(url)


@pytest.fixture(scope="session", autouse=True)
def _postgres_template():
    yield
    if SERVER.template_ready:
        asyncio.run(SERVER.finish())


def open_db(tmp_path, url: str | None):
    """The backend's Database for a test (not yet open)."""
    from storage.db import open_database

    return open_database(tmp_path / "feedbot.db", url)


@pytest.fixture
async def db(tmp_path, database_url):
    """A fresh migrated database of the module's backend, open (modules may define their own)."""
    database = open_db(tmp_path, database_url)
    await database.open()
    yield database
    await database.close()


def make_config(tmp_path, fake_telegram: FakeTelegramServer | None = None, *, database_url: str | None = None,
                arrays: dict[str, list[dict[str, Any]]] | None = None, **sections: dict[str, Any]) -> Config:
    """`arrays`: [[programs]], [[departments]], ... tables; `sections`: keys of [section] tables."""
    database: dict[str, Any] = {"path": str(tmp_path / "feedbot.db")}
    if database_url:
        database["url"] = database_url
    raw: dict[str, dict[str, Any]] = {
        "shop": {"name": "Shop An"},
        "database": database,
        "http": {"port": 0, "api_token": API_TOKEN},
        # Fast pacing keeps end-to-end tests quick; test_sender checks the real pacing.
        "sender": {"backoff_base": 0.05, "request_timeout": 2.0, "per_chat_interval": 0.05},
        # On PostgreSQL the default folder is ./backups of the working directory: not the checkout's.
        "backup": {"folder": str(tmp_path / "backups")},
    }
    if fake_telegram is not None:
        raw["telegram"] = {"token": BOT_TOKEN, "api_base_url": fake_telegram.api_root, "poll_timeout": 1}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config({**raw, **(arrays or {})}, {})


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer(BOT_TOKEN) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


class Harness:
    """The real application against the fake Bot API, with helpers for what a test does."""

    def __init__(self, config: Config, tg: FakeTelegramServer | None, clock: FakeClock) -> None:
        self.config = config
        self.tg = tg
        self.clock = clock
        self.app: FeedbotApp | None = None
        self.http: aiohttp.ClientSession | None = None

    async def start(self, scheduler: bool = False) -> FeedbotApp:
        self.app = FeedbotApp(self.config, clock=self.clock)
        await self.app.start(scheduler=scheduler)
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self.app

    async def stop(self) -> None:
        if self.app is not None:
            await self.app.stop()
            self.app = None

    async def close(self) -> None:
        await self.stop()
        if self.http is not None:
            await self.http.close()

    @property
    def url(self) -> str:
        assert self.app is not None
        return self.app.base_url

    async def post_purchase(self, order_id: str = "A-1001", **overrides: Any) -> tuple[int, dict]:
        body = purchase_body(order_id, **overrides)
        async with self.http.post(
            f"{self.url}/api/v1/purchases", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as resp:
            return resp.status, await resp.json()

    async def customer_says(self, user_id: int, text: str, language_code: str = "vi") -> dict:
        update = self.tg.push_update(self.tg.make_message_update(user_id, text, language_code=language_code))
        await self.processed(update["update_id"])
        return update

    async def customer_taps(self, user_id: int, data: str, message_id: int) -> dict:
        update = self.tg.push_update(self.tg.make_callback_update(user_id, data, message_id))
        await self.processed(update["update_id"])
        return update

    async def deliver(self, update: dict) -> dict:
        """Queue any update for the bot's long polling and wait until it is handled."""
        self.tg.push_update(update)
        await self.processed(update["update_id"])
        return update

    async def processed(self, update_id: int, timeout: float = 5.0) -> None:
        """Wait until the bot has polled and handled this update."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            rows = await self.rows(
                "SELECT processed_at FROM inbox WHERE platform = 'telegram' AND update_id = ?", (str(update_id),)
            )
            if rows and rows[0]["processed_at"]:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"update {update_id} was not processed within {timeout}s")

    async def outbox_settled(self, timeout: float = 5.0) -> list[dict]:
        """Wait until the sender is done with every outbox row; all rows, in order."""
        for _ in range(int(timeout / 0.02)):
            if not await self.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')"):
                return await self.rows("SELECT * FROM outbox ORDER BY id")
            await asyncio.sleep(0.02)
        raise AssertionError(await self.rows("SELECT * FROM outbox WHERE status IN ('pending', 'sending')"))

    async def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        assert self.app is not None
        return [dict(r) for r in await self.app.db.fetchall(sql, params)]


def purchase_body(order_id: str = "A-1001", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_id": order_id,
        "customer": {"external_id": "C-42", "name": "Nguyễn Thị Lan", "phone": "+84 912 345 678"},
        "amount": 250000,
        "currency": "VND",
        "items": [{"sku": "TEA-01", "name": "Trà sen", "qty": 2, "price": 125000}],
        "store": "Q1",
        "touchpoint": "delivery",
        "purchased_at": START.isoformat(),
    }
    body.update(overrides)
    return body


@pytest.fixture
async def harness(tmp_path, tg, clock, database_url) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    yield h
    await h.close()


def hours(n: float) -> timedelta:
    return timedelta(hours=n)

