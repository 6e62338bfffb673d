"""Zalo channel storage: the OA's rotating token pair, customers by phone, the buttons of
the last message a Zalo user got (for numbered replies)."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db



@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: datetime | None  # None: unknown (the pair given in the config)


async def load_tokens(conn: Connection) -> TokenPair | None:
    row = await fetch_one(conn, "SELECT access_token, refresh_token, expires_at FROM zalo_tokens WHERE id = 1")
    if row is None:
        return None
    return TokenPair(row["access_token"], row["refresh_token"], from_db(row["expires_at"]))


async def save_tokens(conn: Connection, pair: TokenPair, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO zalo_tokens (id, access_token, refresh_token, expires_at, updated_at) VALUES (1, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,"
        " refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        (pair.access_token, pair.refresh_token, to_db(pair.expires_at) if pair.expires_at else None, to_db(now)),
    )


CONFIGURED_KEY = "zalo.configured_refresh_sha256"  # settings: the config's pair the stored one came from


def fingerprint(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def phone_key(phone: str) -> str | None:
    """A Vietnamese phone number in one form: '+84 912 345 678', '0912345678', Zalo's
    '84912345678', '0084 912 345 678', '+84 (0) 912 345 678' and '912345678' (the 0 a
    spreadsheet dropped, a form Zalo Cloud names for ZNS) all give '84912345678'."""
    written = (phone or "").strip()
    digits = re.sub(r"\D", "", written)
    if digits.startswith("00"):  # the international prefix
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = "84" + digits[1:]
    elif len(digits) == 9 and digits[0] in "35789" and not written.startswith("+"):
        digits = "84" + digits  # a mobile number without its 0 (a "+" would say a country code is there)
    if digits.startswith("840"):  # the trunk 0 kept after the country code: no Vietnamese number starts so
        digits = "84" + digits[3:]
    return digits if len(digits) >= 9 else None


async def customer_id_by_phone(conn: Connection, phone: str) -> int | None:
    """The customer with this phone number (the most recently updated one if several)."""
    key = phone_key(phone)
    if key is None:
        return None
    # The last 9 digits, separators allowed between them: a coarse filter, checked exactly below.
    pattern = "%" + "%".join(key[-9:]) + "%"
    rows = await conn.execute_fetchall(
        "SELECT id, phone FROM customers WHERE phone LIKE ? ORDER BY updated_at DESC", (pattern,)
    )
    for row in rows:
        if phone_key(row["phone"]) == key:
            return row["id"]
    return None


async def last_message(conn: Connection, user_id: str) -> tuple[str, datetime] | None:
    """The msg_id of the last message this Zalo user sent us, and when we got it (a reply names it)."""
    row = await fetch_one(
        conn,
        "SELECT update_id, received_at FROM inbox WHERE contact_id = (SELECT id FROM contacts WHERE channel = 'zalo'"
        " AND platform_user_id = ?) AND platform = 'zalo' AND update_id LIKE 'user%' ORDER BY id DESC LIMIT 1",
        (user_id,),
    )
    if row is None or ":" not in row["update_id"]:
        return None
    at = from_db(row["received_at"])
    return (row["update_id"].split(":", 1)[1], at) if at is not None else None


async def last_buttons(conn: Connection, chat_id: str) -> tuple[list[str], str | None]:
    """The button data of the last message queued for this Zalo chat, flattened in the
    order they were numbered (empty if that message had none), and its platform id."""
    row = await fetch_one(
        conn,
        "SELECT payload, platform_message_id FROM outbox WHERE channel = 'zalo' AND chat_id = ?"
        " AND method = 'send_text' ORDER BY id DESC LIMIT 1",
        (chat_id,),
    )
    if row is None:
        return [], None
    payload = json.loads(row["payload"])
    return [b["data"] for r in payload.get("buttons") or [] for b in r], row["platform_message_id"]


async def last_button_labels(conn: Connection, chat_id: str) -> list[str]:
    """The labels of last_buttons' choices, in the same order."""
    row = await fetch_one(
        conn,
        "SELECT payload FROM outbox WHERE channel = 'zalo' AND chat_id = ? AND method = 'send_text' ORDER BY id DESC LIMIT 1",
        (chat_id,),
    )
    if row is None:
        return []
    return [b["label"] for r in json.loads(row["payload"]).get("buttons") or [] for b in r]


async def tokens_updated_at(conn: Connection) -> datetime | None:
    """When the stored pair was last rotated (None: the config's pair, never rotated)."""
    row = await fetch_one(conn, "SELECT updated_at FROM zalo_tokens WHERE id = 1")
    return from_db(row[0]) if row else None
