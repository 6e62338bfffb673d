"""Tickets for the agent page's tests, written straight into the database (with a store, a
customer, photos), and a small Server-Sent Events reader."""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from storage.timefmt import to_db
from tests.digest_data import ShopData, local


class Desk(ShopData):
    async def telegram_contact(self, user: int, customer_id: int | None) -> int:
        at = to_db(local(1, month=1))
        return await self._insert(
            "INSERT INTO contacts (channel, platform_user_id, chat_id, language, display_name, customer_id, created_at,"
            " last_seen_at) VALUES ('telegram', ?, ?, 'vi', ?, ?, ?, ?)",
            (str(user), str(user), f"Khách {user}", customer_id, at, at))

    async def complaint(self, *, customer_id: int | None, purchase_id: int | None, user: int,
                        description: str = "Hộp bị móp", photos: tuple[str, ...] = ()) -> int:
        """An open complaint from this customer's Telegram chat, with its "opened" event."""
        contact_id = await self.telegram_contact(user, customer_id)
        at = local(22, 9)
        ticket_id = await self._insert(
            "INSERT INTO tickets (contact_id, customer_id, purchase_id, source, category, description, photos, tier,"
            " priority, status, created_at, first_response_due_at, resolution_due_at)"
            " VALUES (?, ?, ?, 'command', 'delivery', ?, ?, 'regular', 'normal', 'open', ?, ?, ?)",
            (contact_id, customer_id, purchase_id, description, json.dumps(list(photos)), to_db(at), to_db(local(22, 11)),
             to_db(local(24, 9))))
        await self.event(ticket_id, "opened", at, description)
        return ticket_id


@dataclass
class SseMessage:
    event: str = "message"
    id: str | None = None
    data: Any = None
    comments: list[str] = field(default_factory=list)


class Sse:
    """One open /agent/api/stream response, read message by message."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.last_id: str | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str, last_event_id: str | None = None) -> "Sse":
        headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
        resp = await http.get(url, headers=headers)
        return cls(resp)

    async def next(self, timeout: float = 5.0, comments: bool = False) -> SseMessage:
        """The next message (a keep-alive comment too, with comments=True)."""
        return await asyncio.wait_for(self._next(comments), timeout)

    async def _next(self, comments: bool) -> SseMessage:
        message = SseMessage()
        data: list[str] = []
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\n")
            if line == "":
                if data or message.id is not None or (comments and message.comments):
                    message.data = json.loads("\n".join(data)) if data else None
                    if message.id is not None:
                        self.last_id = message.id
                    return message
                continue
            if line.startswith(":"):
                message.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "id":
                message.id = value
            elif name == "event":
                message.event = value

    async def tickets(self, count: int, timeout: float = 5.0) -> list[dict]:
        """The next `count` ticket events' data."""
        got = []
        while len(got) < count:
            message = await self.next(timeout)
            if message.event == "ticket":
                got.append(message.data)
        return got

    def close(self) -> None:
        self.resp.close()
