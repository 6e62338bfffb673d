"""Chat identities on each channel and the customer each one is linked to."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Collection, Sequence

from storage.db import Connection, Row, fetch_one
from storage.timefmt import from_db, to_db


@dataclass(frozen=True)
class ContactRecord:
    id: int
    channel: str
    platform_user_id: str
    chat_id: str
    customer_id: int | None
    display_name: str
    language: str
    opted_out: bool
    # The privacy notice and consent (bot/outbox/consent.py): the version shown, the version
    # consented to, and whether consent was withdrawn since.
    notice_version: str | None = None
    consent_version: str | None = None
    consent_withdrawn: bool = False


# The record's fields, in its order: built by position, not by column name (once or more per
# inbound update; a sqlite3.Row looks a name up by comparing it with each column's).
_COLUMNS = (
    "id, channel, platform_user_id, chat_id, customer_id, display_name, language, opted_out_at,"
    " notice_version, consent_version, consent_withdrawn_at"
)


def _record(row: Row) -> ContactRecord:
    (
        id_, channel, platform_user_id, chat_id, customer_id, display_name, language, opted_out_at,
        notice_version, consent_version, consent_withdrawn_at,
    ) = row
    return ContactRecord(
        id=id_, channel=channel, platform_user_id=platform_user_id, chat_id=chat_id, customer_id=customer_id,
        display_name=display_name, language=language, opted_out=opted_out_at is not None,
        notice_version=notice_version, consent_version=consent_version,
        consent_withdrawn=consent_withdrawn_at is not None,
    )


_UPSERT = (
    "INSERT INTO contacts (channel, platform_user_id, chat_id, display_name, language, created_at, last_seen_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, platform_user_id) DO UPDATE SET"
    " chat_id = excluded.chat_id, display_name = excluded.display_name, language = excluded.language,"
    f" last_seen_at = excluded.last_seen_at RETURNING {_COLUMNS}"
)


async def upsert_seen(
    conn: Connection,
    *,
    channel: str,
    platform_user_id: str,
    chat_id: str,
    display_name: str,
    language: str,
    now: datetime,
) -> ContactRecord:
    """Record that this user wrote to us (a new contact, or the one we know updated)."""
    at = to_db(now)
    rows = await conn.execute_fetchall(_UPSERT, (channel, platform_user_id, chat_id, display_name, language, at, at))
    return _record(rows[0])


@dataclass(frozen=True)
class SeenContact:
    """A contact that just wrote, with what the engine needs of it, read in one statement."""

    contact: ContactRecord
    state: str  # the conversation's ("idle" when there is none)
    data: dict[str, Any]
    customer_name: str | None  # the linked customer's (None: not linked)
    customer_opted_out: bool
    # Not linked: the customer the shop told us has this chat identity (a purchase naming the
    # Telegram / Zalo user id), if any.
    known_customer_id: int | None
    has_tickets: bool  # open, or resolved since `tickets_since`
    # Whether any outgoing webhook endpoint is active (else no event of this update is built
    # or looked up: bot/webhooks/events.py), read in this transaction.
    webhooks_active: bool = True


# The platform user id columns of customers, by channel (storage knows its columns).
_CUSTOMER_COLUMN = {"telegram": "telegram_user_id", "zalo": "zalo_user_id"}


def _seen_sql(channel: str) -> str:
    column = _CUSTOMER_COLUMN.get(channel)
    known = (
        f"CASE WHEN contacts.customer_id IS NULL THEN (SELECT k.id FROM customers k WHERE k.{column} = ?"
        " ORDER BY k.updated_at DESC LIMIT 1) END" if column else "NULL"
    )
    return (
        f"{_UPSERT},"
        " (SELECT v.state FROM conversations v WHERE v.contact_id = contacts.id),"
        " (SELECT v.data FROM conversations v WHERE v.contact_id = contacts.id),"
        " (SELECT c.name FROM customers c WHERE c.id = contacts.customer_id),"
        " (SELECT c.opted_out_at FROM customers c WHERE c.id = contacts.customer_id),"
        f" {known},"
        " EXISTS (SELECT 1 FROM tickets t WHERE t.contact_id = contacts.id"
        " AND (t.status != 'resolved' OR t.resolved_at >= ?)),"
        " EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.status = 'active')"
    )


_SEEN_SQL = {channel: _seen_sql(channel) for channel in (*_CUSTOMER_COLUMN, None)}


async def upsert_seen_with_context(
    conn: Connection,
    *,
    channel: str,
    platform_user_id: str,
    chat_id: str,
    display_name: str,
    language: str,
    now: datetime,
    tickets_since: datetime,
) -> SeenContact:
    """upsert_seen, and in the same statement the contact's conversation, its customer's name
    and opt-out, the customer the shop named for this chat identity (when not linked),
    whether it has tickets worth loading, and whether any webhook endpoint is active (one
    statement for what took three or four)."""
    at = to_db(now)
    sql = _SEEN_SQL.get(channel) or _SEEN_SQL[None]
    params: tuple[Any, ...] = (channel, platform_user_id, chat_id, display_name, language, at, at)
    if channel in _CUSTOMER_COLUMN:
        params += (platform_user_id,)
    rows = await conn.execute_fetchall(sql, (*params, to_db(tickets_since)))
    row = rows[0]
    state, data, customer_name, customer_opted_out_at, known, has_tickets, webhooks_active = row[11:]
    return SeenContact(
        _record(row[:11]), state or "idle", json.loads(data) if data else {}, customer_name,
        customer_opted_out_at is not None, known, bool(has_tickets), bool(webhooks_active),
    )


async def by_platform_user(conn: Connection, channel: str, platform_user_id: str) -> ContactRecord | None:
    row = await fetch_one(conn, 
        f"SELECT {_COLUMNS} FROM contacts WHERE channel = ? AND platform_user_id = ?", (channel, platform_user_id)
    )
    return _record(row) if row else None


async def by_id(conn: Connection, contact_id: int) -> ContactRecord | None:
    row = await fetch_one(conn, f"SELECT {_COLUMNS} FROM contacts WHERE id = ?", (contact_id,))
    return _record(row) if row else None


async def reachable_for_customer(
    conn: Connection,
    customer_id: int,
    channels: Collection[str] | None = None,
    order: Sequence[str] = ("last_used",),
) -> ContactRecord | None:
    """Where this customer's surveys go: by default the chat they used last. `order` lists
    channel names in preference ("last_used" = the most recent of the rest); `channels`,
    if given, are the ones we can send on now. A customer on none of the listed channels
    gets the chat they used last."""
    found = await ordered_for_customer(conn, customer_id, channels, order)
    return found[0] if found else None


async def ordered_for_customer(
    conn: Connection,
    customer_id: int,
    channels: Collection[str] | None = None,
    order: Sequence[str] = ("last_used",),
) -> list[ContactRecord]:
    """The customer's chats in the order `reachable_for_customer` prefers them (the first is
    its answer), each once: the survey route tries them in turn."""
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS} FROM contacts WHERE customer_id = ? ORDER BY last_seen_at DESC, id DESC", (customer_id,)
    )
    return _ordered(list(map(_record, rows)), channels, order)


async def reachable_for_customers(
    conn: Connection, customer_ids: Sequence[int], channels: Collection[str] | None = None,
    order: Sequence[str] = ("last_used",), usable: Callable[[ContactRecord, datetime | None], bool] | None = None,
) -> dict[int, ContactRecord]:
    """reachable_for_customer for many customers in one query (a dispatch pass's page);
    `usable(chat, last_seen_at)`: a chat it returns false for is passed over for the next one."""
    if not customer_ids:
        return {}
    rows = await conn.execute_fetchall(
        f"SELECT {_COLUMNS}, last_seen_at FROM contacts WHERE customer_id IN ({', '.join('?' * len(customer_ids))})"
        " ORDER BY customer_id, last_seen_at DESC, id DESC", tuple(customer_ids),
    )
    by_customer: dict[int, list[ContactRecord]] = {}
    seen: dict[int, datetime | None] = {}
    for row in rows:
        contact = _record(tuple(row)[:-1])
        assert contact.customer_id is not None
        by_customer.setdefault(contact.customer_id, []).append(contact)
        seen[contact.id] = from_db(row[-1])
    found = {cid: [c for c in _ordered(contacts, channels, order) if usable is None or usable(c, seen[c.id])]
             for cid, contacts in by_customer.items()}
    return {cid: chats[0] for cid, chats in found.items() if chats}


def _ordered(newest_first: list[ContactRecord], channels: Collection[str] | None, order: Sequence[str]) -> list[ContactRecord]:
    found = [c for c in newest_first if channels is None or c.channel in channels]
    ordered: list[ContactRecord] = []
    for wanted in order:
        ordered += [c for c in found if wanted in ("last_used", c.channel) and c not in ordered]
    return ordered + [c for c in found if c not in ordered]


NEVER_SEEN = "1970-01-01T00:00:00.000000Z"  # a contact the shop told us of: never "used last"


async def ensure_linked(conn: Connection, channel: str, platform_user_id: str, customer_id: int, now: datetime) -> None:
    """A chat identity the shop gave us (e.g. a Zalo user id with a purchase): created if new,
    linked to the customer if it was not linked yet. It never counts as the channel used last."""
    await conn.execute(
        "INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at, last_seen_at,"
        " verified_by) VALUES (?, ?, ?, ?, 'vi', ?, ?, 'shop') ON CONFLICT (channel, platform_user_id) DO UPDATE SET"
        " verified_by = CASE WHEN contacts.customer_id IS NULL THEN 'shop' ELSE contacts.verified_by END,"
        " customer_id = COALESCE(contacts.customer_id, excluded.customer_id)",
        (channel, platform_user_id, platform_user_id, customer_id, to_db(now), NEVER_SEEN),
    )


async def link_existing(conn: Connection, channel: str, platform_user_id: str, customer_id: int) -> bool:
    """Link the chat of this platform user to the customer if we know that chat and it is not
    linked yet (no new contact: a bot cannot write first to a Telegram user). True if linked.
    The shop named this user id: a proof (verified_by 'shop')."""
    cur = await conn.execute(
        "UPDATE contacts SET customer_id = ?, verified_by = 'shop' WHERE channel = ? AND platform_user_id = ?"
        " AND customer_id IS NULL",
        (customer_id, channel, platform_user_id),
    )
    return cur.rowcount > 0


async def link(conn: Connection, contact_id: int, customer_id: int, verified_by: str) -> None:
    """Make the chat the customer's: only on a proof the shop or the platform vouches for
    (`verified_by` says which; a receipt link alone is none, see storage/start_tokens.py)."""
    await conn.execute("UPDATE contacts SET customer_id = ?, verified_by = ? WHERE id = ?", (customer_id, verified_by, contact_id))


async def set_opted_out(conn: Connection, contact_id: int, opted_out: bool, now: datetime) -> None:
    # Only a change is written: a second /stop keeps the first one's time, and every /start
    # (which opts in) does not rewrite the row.
    await conn.execute(
        "UPDATE contacts SET opted_out_at = ? WHERE id = ? AND (opted_out_at IS NULL) = ?",
        (to_db(now) if opted_out else None, contact_id, opted_out),
    )
