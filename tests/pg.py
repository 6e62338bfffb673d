"""A fresh PostgreSQL database per test: CREATE DATABASE ... TEMPLATE of one migrated per session.

The server comes from $FEEDBOT_TEST_POSTGRES_URL (default: the local one, trust auth). Without a
reachable server the PostgreSQL tests skip, saying why; with FEEDBOT_REQUIRE_POSTGRES=1 (set
by .ci/run) they fail instead, so CI never passes by skipping them.
"""
from __future__ import annotations

import asyncio
import itertools
import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

SERVER_URL = os.environ.get("FEEDBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_PREFIX = f"feedbot_t{os.getpid()}"
_TEMPLATE = f"{_PREFIX}_tpl"
_numbers = itertools.count(1)


def url_of(name: str) -> str:
    """The server's URL with another database name."""
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


class Server:
    """Per test session: the template database, made on first use, dropped at the end."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self.template_ready = False

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(SERVER_URL, timeout=5)

    async def reachable(self) -> bool:
        if self.problem is not None:
            return False
        try:
            conn = await self.admin()
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            self.problem = f"no PostgreSQL server at {SERVER_URL} ({exc.__class__.__name__}: {exc})"
            return False
        await conn.close()
        return True

    async def fresh_database(self) -> str:
        """A new, migrated, empty database; its URL."""
        from storage.pg import PgDatabase

        conn = await self.admin()
        try:
            if not self.template_ready:
                await conn.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE}")
                await conn.execute(f"CREATE DATABASE {_TEMPLATE}")
                async with PgDatabase(url_of(_TEMPLATE)):
                    pass  # migrates it
                self.template_ready = True
            name = f"{_PREFIX}_{next(_numbers)}"
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}")
        finally:
            await conn.close()
        return url_of(name)

    async def drop(self, url: str) -> None:
        conn = await self.admin()
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {urlsplit(url).path.lstrip('/')} WITH (FORCE)")
        finally:
            await conn.close()

    async def empty_database(self) -> str:
        """A new database with no schema at all (migration tests)."""
        conn = await self.admin()
        try:
            name = f"{_PREFIX}_{next(_numbers)}"
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return url_of(name)

    async def finish(self) -> None:
        if self.template_ready:
            conn = await self.admin()
            try:
                await conn.execute(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)")
            finally:
                await conn.close()


SERVER = Server()


async def require_server() -> None:
    """Skip (or, when PostgreSQL is required, fail) the test without a reachable server."""
    if await SERVER.reachable():
        return
    if os.environ.get("FEEDBOT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"FEEDBOT_REQUIRE_POSTGRES=1 but {SERVER.problem}")
    pytest.skip(SERVER.problem or "no PostgreSQL server")
