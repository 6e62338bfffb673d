"""Customers as the shop knows them, and their deep-link tokens."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from storage.db import Connection, Row, fetch_one
from storage.timefmt import to_db


@dataclass(frozen=True)
class CustomerRecord:
    id: int
    external_id: str
    name: str
    phone: str | None
    telegram_user_id: str | None
    link_token: str
    opted_out: bool
    zalo_user_id: str | None = None


# The record's fields, in its order: built by position, not by column name (see contacts).
_SELECT = "SELECT id, external_id, name, phone, telegram_user_id, link_token, opted_out_at, zalo_user_id FROM customers"


def _record(row: Row) -> CustomerRecord:
    id_, external_id, name, phone, telegram_user_id, link_token, opted_out_at, zalo_user_id = row
    return CustomerRecord(
        id=id_, external_id=external_id, name=name, phone=phone, telegram_user_id=telegram_user_id,
        link_token=link_token, opted_out=opted_out_at is not None, zalo_user_id=zalo_user_id,
    )


async def mark_demo(conn: Connection, customer_id: int) -> None:
    """A demo customer: their surveys and tickets never count in reports (migration 0014)."""
    await conn.execute("UPDATE customers SET demo = 1 WHERE id = ?", (customer_id,))


def new_link_token() -> str:
    # The customer's old deep-link token, kept unique (migration 0013 made it their latest
    # order's start token); receipt links are per order now: storage/start_tokens.py.
    return secrets.token_urlsafe(16)


async def upsert(
    conn: Connection,
    *,
    external_id: str,
    name: str,
    phone: str | None,
    telegram_user_id: str | None,
    now: datetime,
    zalo_user_id: str | None = None,
) -> CustomerRecord:
    """Create the customer, or refresh what the shop told us about them."""
    at = to_db(now)
    await conn.execute(
        "INSERT INTO customers (external_id, name, phone, telegram_user_id, zalo_user_id, link_token, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (external_id) DO UPDATE SET"
        "  name = excluded.name,"
        "  phone = COALESCE(excluded.phone, customers.phone),"
        "  telegram_user_id = COALESCE(excluded.telegram_user_id, customers.telegram_user_id),"
        "  zalo_user_id = COALESCE(excluded.zalo_user_id, customers.zalo_user_id),"
        "  updated_at = excluded.updated_at",
        (external_id, name, phone, telegram_user_id, zalo_user_id, new_link_token(), at, at),
    )
    found = await by_external_id(conn, external_id)
    assert found is not None
    return found


async def by_external_id(conn: Connection, external_id: str) -> CustomerRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE external_id = ?", (external_id,))
    return _record(row) if row else None


async def by_id(conn: Connection, customer_id: int) -> CustomerRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE id = ?", (customer_id,))
    return _record(row) if row else None


async def by_telegram_user(conn: Connection, telegram_user_id: str) -> CustomerRecord | None:
    row = await fetch_one(conn, 
        f"{_SELECT} WHERE telegram_user_id = ? ORDER BY updated_at DESC LIMIT 1",
        (telegram_user_id,),
    )
    return _record(row) if row else None


async def by_platform_user(conn: Connection, channel: str, user_id: str) -> CustomerRecord | None:
    """The customer the shop told us has this chat identity (Telegram or Zalo user id)."""
    if channel == "telegram":
        return await by_telegram_user(conn, user_id)
    if channel == "zalo":
        row = await fetch_one(
            conn, f"{_SELECT} WHERE zalo_user_id = ? ORDER BY updated_at DESC LIMIT 1", (user_id,)
        )
        return _record(row) if row else None
    return None


async def set_opted_out(conn: Connection, customer_id: int, opted_out: bool, now: datetime) -> None:
    # Only a change is written (see contacts.set_opted_out): updated_at moves only then.
    await conn.execute(
        "UPDATE customers SET opted_out_at = ?, updated_at = ? WHERE id = ? AND (opted_out_at IS NULL) = ?",
        (to_db(now) if opted_out else None, to_db(now), customer_id, opted_out),
    )
