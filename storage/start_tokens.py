"""Start tokens: the deep link on a receipt, one per order, and the chats that opened one.

A token is usable while not revoked and until `ttl` after its order's survey closed
(answered, expired or skipped); a chat that opened it may answer that order's survey and
complain about that order (a "grant"), for as long as the token is usable."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db

# A token's survey closed this long ago or more: expired. Unanswered surveys close too
# (expired / skipped), so every token expires.
_USABLE = (
    "t.revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.purchase_id = t.purchase_id"
    " AND COALESCE(s.closed_at, s.answered_at) IS NOT NULL AND COALESCE(s.closed_at, s.answered_at) <= ?)"
)


@dataclass(frozen=True)
class StartToken:
    id: int
    purchase_id: int
    customer_id: int
    order_id: str
    customer_name: str
    usable: bool  # not revoked, not expired
    external_id: str = ""  # the shop's id of the customer
    opened_here: bool = False  # the chat lookup() was given opened this token before
    opened_elsewhere: bool = False  # another chat did


def new_token() -> str:
    # 16 random bytes -> 22 chars of A-Za-z0-9_-: fits Telegram's 64-char /start payload.
    return secrets.token_urlsafe(16)


async def create(conn: Connection, purchase_id: int, customer_id: int, now: datetime) -> str:
    token = new_token()
    await conn.execute(
        "INSERT INTO start_tokens (token, purchase_id, customer_id, created_at) VALUES (?, ?, ?, ?)",
        (token, purchase_id, customer_id, to_db(now)),
    )
    return token


async def current(conn: Connection, purchase_id: int) -> str | None:
    """The order's live token (None once revoked and not replaced, or erased)."""
    row = await fetch_one(
        conn, "SELECT token FROM start_tokens WHERE purchase_id = ? AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
        (purchase_id,),
    )
    return row[0] if row else None


async def rotate(conn: Connection, purchase_id: int, customer_id: int, now: datetime) -> str:
    """Revoke the order's tokens (the chats that opened them lose their grant) and make a new one."""
    await conn.execute(
        "UPDATE start_tokens SET revoked_at = ? WHERE purchase_id = ? AND revoked_at IS NULL", (to_db(now), purchase_id)
    )
    return await create(conn, purchase_id, customer_id, now)


async def lookup(conn: Connection, token: str, now: datetime, ttl: timedelta, contact_id: int) -> StartToken | None:
    """The token, and whether this chat (`contact_id`) or another opened it before (one statement)."""
    row = await fetch_one(
        conn,
        f"SELECT t.id, t.purchase_id, t.customer_id, p.order_id, c.name, {_USABLE}, c.external_id,"
        " EXISTS (SELECT 1 FROM start_token_uses u WHERE u.token_id = t.id AND u.contact_id = ?),"
        " EXISTS (SELECT 1 FROM start_token_uses u WHERE u.token_id = t.id AND u.contact_id != ?)"
        " FROM start_tokens t JOIN purchases p ON p.id = t.purchase_id JOIN customers c ON c.id = t.customer_id"
        " WHERE t.token = ? AND c.erased_at IS NULL",
        (to_db(now - ttl), contact_id, contact_id, token),
    )
    if row is None:
        return None
    id_, purchase_id, customer_id, order_id, name, usable, external_id, here, elsewhere = row
    return StartToken(id_, purchase_id, customer_id, order_id, name, bool(usable), external_id, bool(here), bool(elsewhere))


async def use(conn: Connection, token_id: int, contact_id: int, now: datetime) -> None:
    """Record that this chat opened the token (its grant)."""
    await conn.execute(
        "INSERT INTO start_token_uses (token_id, purchase_id, contact_id, used_at)"
        " SELECT id, purchase_id, ?, ? FROM start_tokens WHERE id = ? ON CONFLICT (token_id, contact_id) DO NOTHING",
        (contact_id, to_db(now), token_id),
    )


async def granted_orders(
    conn: Connection, contact_id: int, now: datetime, ttl: timedelta, limit: int = 5
) -> list[tuple[int, str, datetime]]:
    """(purchase id, order id, purchased at) of the orders this chat holds a usable token of, newest first."""
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT p.id, p.order_id, p.purchased_at FROM start_token_uses u"
        " JOIN start_tokens t ON t.id = u.token_id JOIN purchases p ON p.id = u.purchase_id"
        f" WHERE u.contact_id = ? AND {_USABLE} ORDER BY p.purchased_at DESC LIMIT ?",
        (contact_id, to_db(now - ttl), limit),
    )
    return [(r[0], r[1], from_db(r[2])) for r in rows]  # type: ignore[misc]


class ChatSurvey(NamedTuple):
    """What a chat is shown of a survey it refers to (the engine's SurveyView, field for field)."""

    id: int
    customer_id: int
    order_id: str
    status: str
    score: int | None
    touchpoint: str
    store: str | None


async def survey_for_chat(
    conn: Connection, survey_id: int, contact_id: int, customer_id: int | None, now: datetime, ttl: timedelta
) -> ChatSurvey | None:
    """The survey, if this chat may see it: its customer's (the chat is linked to them), or
    that of an order whose receipt link this chat opened (a usable token); else None. Only
    the columns a chat is shown (most inbound updates read one: no times parsed, no record)."""
    row = await fetch_one(
        conn,
        "SELECT s.id, s.customer_id, p.order_id, s.status, s.score, s.touchpoint, s.store"
        " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
        " WHERE s.id = ? AND (s.customer_id = ? OR EXISTS (SELECT 1 FROM start_token_uses u"
        f" JOIN start_tokens t ON t.id = u.token_id WHERE u.contact_id = ? AND u.purchase_id = s.purchase_id"
        f" AND {_USABLE}))",
        (survey_id, customer_id, contact_id, to_db(now - ttl)),
    )
    return ChatSurvey(*row) if row else None


async def is_granted(conn: Connection, contact_id: int, purchase_id: int, now: datetime, ttl: timedelta) -> bool:
    row = await fetch_one(
        conn,
        "SELECT 1 FROM start_token_uses u JOIN start_tokens t ON t.id = u.token_id"
        f" WHERE u.contact_id = ? AND u.purchase_id = ? AND {_USABLE} LIMIT 1",
        (contact_id, purchase_id, to_db(now - ttl)),
    )
    return row is not None


async def latest_chat(conn: Connection, purchase_id: int, now: datetime, ttl: timedelta) -> int | None:
    """The contact that opened this order's usable token last: where its survey goes."""
    row = await fetch_one(
        conn,
        "SELECT u.contact_id FROM start_token_uses u JOIN start_tokens t ON t.id = u.token_id"
        " JOIN contacts c ON c.id = u.contact_id"
        f" WHERE u.purchase_id = ? AND c.erased_at IS NULL AND {_USABLE} ORDER BY u.used_at DESC, u.id DESC LIMIT 1",
        (purchase_id, to_db(now - ttl)),
    )
    return row[0] if row else None


async def chats_to_tell(conn: Connection, customer_id: int, token_id: int | None) -> list[int]:
    """The customer's own chats (proved to be theirs) and, given a token, the chats that opened it."""
    rows = await conn.execute_fetchall(
        "SELECT id FROM contacts WHERE customer_id = ? AND erased_at IS NULL"
        " UNION SELECT u.contact_id FROM start_token_uses u JOIN contacts c ON c.id = u.contact_id"
        " WHERE u.token_id = ? AND c.erased_at IS NULL ORDER BY 1",
        (customer_id, token_id if token_id is not None else -1),
    )
    return [r[0] for r in rows]
