"""A local webhook receiver (aiohttp) for tests and benchmarks: it records every request
(headers, exact body) and answers what it is told, in turn (a status, headers, a delay),
else 200. It can hold requests until released (a delivery in flight when the worker dies)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a timeout, when longer than the sender waits)


class WebhookReceiver:
    def __init__(self, *, keep_bodies: bool = True) -> None:
        self.received: list[Received] = []
        self.count = 0
        self.keep_bodies = keep_bodies  # the bench counts only, in flat memory
        self.answers: list[Answer] = []  # consumed in order; then `default`
        self.default = Answer()
        self.hold: asyncio.Event | None = None  # set: requests wait for it
        self.arrived = asyncio.Event()  # set on each request
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> "WebhookReceiver":
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.hold is not None:
            self.hold.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.count += 1
        if self.keep_bodies:
            self.received.append(Received(dict(request.headers), body, request.path))
        self.arrived.set()
        answer = self.answers.pop(0) if self.answers else self.default
        if self.hold is not None:
            await self.hold.wait()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, headers=answer.headers, text="ok" if answer.status < 300 else "no")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.count < count:
            if loop.time() > end:
                raise AssertionError(f"expected {count} webhook requests, got {self.count}")
            await asyncio.sleep(0.01)
        return self.received
