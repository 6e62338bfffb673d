"""A person's data, table by table: find it, export it, erase it; and the retention purge.

Export and erase are one list of per-table steps (STEPS). A table that holds personal data
gets one `Step` entry here: what to export of the subject's rows, and how to erase them.
Erase keeps what statistics need (scores, touchpoints, stores, amounts, times, statuses)
and removes or blanks everything that names, reaches or quotes the person; rows stay as
anonymous tombstones where other tables point to them.

A subject is a shop customer (all their chats) or one chat contact never linked to a
customer ("contact:<n>").
"""
from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, Sequence

from storage import ticket_rollups, web_messages, webhooks
from storage.db import Connection, Database, dialect, fetch_one
from storage.timefmt import to_db

ERASED = "erased"  # prefix of the unique keys of anonymised rows
PURGED = "{}"  # an inbox or outbox payload after erasure or retention
FINISHED = ("sent", "failed", "unknown")  # outbox rows the sender is done with
MIN_QUOTE_CHARS = 8  # shorter texts are not searched for in other people's messages
MY_DATA_TTL = timedelta(hours=24)  # a /mydata file on a web page or behind a Zalo link, then dropped
EARLIER_EXPORT = "(an earlier export of this data)"


@dataclass(frozen=True)
class Subject:
    label: str  # "C-42" (the shop's customer id) or "contact:7"
    customer_id: int | None
    contact_ids: tuple[int, ...]
    ticket_ids: tuple[int, ...] = ()
    quotes: tuple[str, ...] = field(default=(), compare=False)  # names, phone, what they wrote: searched for


def _marks(ids: Sequence[Any]) -> str:
    return ",".join("?" * len(ids)) or "NULL"


async def _with_tickets(conn: Connection, label: str, customer_id: int | None, contact_ids: tuple[int, ...]) -> Subject:
    rows = await conn.execute_fetchall(
        f"SELECT id FROM tickets WHERE contact_id IN ({_marks(contact_ids)})"
        + (" OR customer_id = ?" if customer_id is not None else "") + " ORDER BY id",
        (*contact_ids, *((customer_id,) if customer_id is not None else ())),
    )
    return Subject(label, customer_id, contact_ids, tuple(r[0] for r in rows))


async def find(conn: Connection, ident: str) -> Subject | None:
    """The shop's external customer id, or "contact:<n>" for a chat never linked to one.
    Erased customers and contacts are not found again."""
    ident = ident.strip()
    if ident.startswith("contact:"):
        number = ident.removeprefix("contact:")
        if not number.isascii() or not number.isdigit():
            return None
        row = await fetch_one(conn, "SELECT id, customer_id FROM contacts WHERE id = ? AND erased_at IS NULL", (int(number),))
        if row is None:
            return None
        if row["customer_id"] is not None:
            return await of_customer(conn, row["customer_id"])
        return await _with_tickets(conn, ident, None, (row["id"],))
    row = await fetch_one(conn, "SELECT id FROM customers WHERE external_id = ? AND erased_at IS NULL", (ident,))
    return await of_customer(conn, row["id"]) if row else None


async def of_customer(conn: Connection, customer_id: int) -> Subject:
    row = await fetch_one(conn, "SELECT external_id FROM customers WHERE id = ?", (customer_id,))
    contact_rows = await conn.execute_fetchall("SELECT id FROM contacts WHERE customer_id = ? ORDER BY id", (customer_id,))
    return await _with_tickets(conn, row["external_id"] if row else str(customer_id), customer_id,
                               tuple(r[0] for r in contact_rows))


async def of_contact(conn: Connection, contact_id: int) -> Subject:
    """What /mydata and /forget act on: the linked customer's data, else this chat's own."""
    row = await fetch_one(conn, "SELECT customer_id FROM contacts WHERE id = ?", (contact_id,))
    if row is not None and row["customer_id"] is not None:
        return await of_customer(conn, row["customer_id"])
    return await _with_tickets(conn, f"contact:{contact_id}", None, (contact_id,))


# --- export ------------------------------------------------------------------------------

JSON_COLUMNS = {"payload", "items", "data", "photos"}


def _decode(row: Any) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS & out.keys():
        if isinstance(out[key], str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass
    if isinstance(out.get("payload"), dict) and "document_base64" in out["payload"]:
        out["payload"] = {**out["payload"], "document_base64": EARLIER_EXPORT}
    return out


def _select(sql: str, params: Callable[[Subject], Sequence[Any]]) -> Callable[[Connection, Subject], Awaitable[list[dict[str, Any]]]]:
    """An exporter: `sql` may use {contacts} and {tickets} for the subject's id lists."""

    async def export(conn: Connection, s: Subject) -> list[dict[str, Any]]:
        query = sql.format(contacts=_marks(s.contact_ids), tickets=_marks(s.ticket_ids))
        return [_decode(r) for r in await conn.execute_fetchall(query, params(s))]

    return export


def _customer_id(s: Subject) -> tuple[Any, ...]:
    return (s.customer_id if s.customer_id is not None else -1,)


# --- erase -------------------------------------------------------------------------------


# (position, name, type, not null) of each column, as SQLite's PRAGMA table_info gives them.
_PG_COLUMNS = (
    "SELECT ordinal_position, column_name, data_type, is_nullable = 'NO' FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
)


async def _columns(conn: Connection, table: str) -> list[tuple[str, bool, bool]]:
    """(name, not null, an integer column) of each column."""
    if dialect(conn) == "postgresql":
        rows = await conn.execute_fetchall(_PG_COLUMNS, (table,))
    else:
        rows = await conn.execute_fetchall(f"PRAGMA table_info({table})")
    return [(r[1], bool(r[3]), "int" in r[2].lower()) for r in rows]


async def _anonymise(conn: Connection, table: str, ids: Sequence[int], keep: set[str], fixed: dict[str, str], now: datetime) -> int:
    """Blank every column of these rows except `keep` (ids, times, statuses) and `fixed`
    (unique keys, set to "erased:<id>"-style values): a column added later by another
    migration is erased without touching this code."""
    if not ids:
        return 0
    sets, values = ["erased_at = ?"], [to_db(now)]
    for name, not_null, integer in await _columns(conn, table):
        if name in keep or name == "erased_at":
            continue
        if name in fixed:
            sets.append(f"{name} = {fixed[name]}")
        else:
            sets.append(f"{name} = {'?' if not_null else 'NULL'}")
            if not_null:  # the blank of its type (PostgreSQL takes no '' for a number)
                values.append(0 if integer else "")
    cur = await conn.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE id IN ({_marks(ids)})", (*values, *ids))
    return cur.rowcount


CUSTOMER_KEEP = {"id", "created_at", "updated_at", "opted_out_at"}
CONTACT_KEEP = {
    "id", "channel", "customer_id", "language", "created_at", "last_seen_at", "opted_out_at",
    "notice_version", "notice_at", "consent_version", "consent_at", "consent_withdrawn_at",
}


async def _erase_customer(conn: Connection, s: Subject, now: datetime) -> int:
    if s.customer_id is None:
        return 0
    await conn.execute("UPDATE customers SET opted_out_at = COALESCE(opted_out_at, ?) WHERE id = ?", (to_db(now), s.customer_id))
    # A new random link token: the old deep link (on printed receipts) no longer finds anyone.
    return await _anonymise(conn, "customers", [s.customer_id], CUSTOMER_KEEP, {
        "external_id": f"'{ERASED}:' || id", "link_token": f"'{ERASED}:{secrets.token_urlsafe(16)}'",
    }, now)


async def _erase_contacts(conn: Connection, s: Subject, now: datetime) -> int:
    # platform_user_id changes: the same person writing again starts afresh as a new contact.
    return await _anonymise(conn, "contacts", s.contact_ids, CONTACT_KEEP, {
        "platform_user_id": f"'{ERASED}:' || id",
    }, now)


async def _erase_purchases(conn: Connection, s: Subject, now: datetime) -> int:
    # Amount, currency, store, touchpoint and date stay (tiers, spend statistics); the order
    # id (a key into the shop's records of the person) and the items go.
    cur = await conn.execute(
        f"UPDATE purchases SET order_id = '{ERASED}:' || id, items = '[]', fingerprint = '' WHERE customer_id = ?",
        _customer_id(s),
    )
    return cur.rowcount


async def _erase_surveys(conn: Connection, s: Subject, now: datetime) -> int:
    # Scores, touchpoints, stores and times stay for the reports; the comment goes.
    return await _close_and_blank("surveys", "'scheduled', 'awaiting_contact'", conn, s, now)


async def _close_and_blank(table: str, unsent: str, conn: Connection, s: Subject, now: datetime) -> int:
    """A survey table's rows of the subject: nothing more is asked (unsent ones skipped, sent
    ones expired), and what the person wrote goes. The subject's rows are the customer's and
    those sent to the subject's chats (a receipt's link chat answers its order's survey, which
    is the customer's: what that chat wrote is its own)."""
    at = to_db(now)
    theirs = f"(customer_id = ? OR contact_id IN ({_marks(s.contact_ids)}))"
    params = (*_customer_id(s), *s.contact_ids)
    await conn.execute(
        f"UPDATE {table} SET status = 'skipped', skip_reason = 'erased', closed_at = ?"
        f" WHERE customer_id = ? AND status IN ({unsent})", (at, *_customer_id(s)))
    await conn.execute(
        f"UPDATE {table} SET status = 'expired', closed_at = ? WHERE {theirs} AND status = 'sent'", (at, *params))
    # surveys keep a folded copy of the comment for the dashboard's search: it goes too.
    blank = "comment = NULL, comment_folded = NULL" if table == "surveys" else "comment = NULL"
    cur = await conn.execute(f"UPDATE {table} SET {blank} WHERE {theirs} AND comment IS NOT NULL", params)
    if table == "surveys" and cur.rowcount and dialect(conn) == "sqlite":
        # The search index's triggers deleted the comments' entries, but FTS5 only marks them
        # deleted in a newer segment: merging every segment into one drops the erased trigrams
        # (their pages are zeroed by secure_delete, the WAL by the erasure's checkpoint).
        await conn.execute("INSERT INTO comments_fts (comments_fts) VALUES ('optimize')")
    return cur.rowcount


async def _erase_program_surveys(conn: Connection, s: Subject, now: datetime) -> int:
    # Scores and chosen options stay for the reports (an option is the shop's own text).
    return await _close_and_blank("program_surveys", "'scheduled'", conn, s, now)


async def _erase_ideas(conn: Connection, s: Subject, now: datetime) -> int:
    # The topic and the time stay (how many ideas on prices this week); the text and who wrote it go.
    cur = await conn.execute(
        f"UPDATE ideas SET text = NULL, customer_id = NULL, contact_id = NULL WHERE customer_id = ?"
        f" OR contact_id IN ({_marks(s.contact_ids)})", (*_customer_id(s), *s.contact_ids))
    return cur.rowcount


async def _erase_conversations(conn: Connection, s: Subject, now: datetime) -> int:
    cur = await conn.execute(f"DELETE FROM conversations WHERE contact_id IN ({_marks(s.contact_ids)})", s.contact_ids)
    return cur.rowcount


async def _erase_tickets(conn: Connection, s: Subject, now: datetime) -> int:
    # Category, priority, tier, status and times stay; what the customer wrote and sent goes.
    # An open ticket is closed: nobody is left to answer.
    at = to_db(now)
    tally = await ticket_rollups.Tally(conn, s.ticket_ids).before()  # closing one moves the complaint rollups
    await conn.execute(
        f"UPDATE tickets SET status = 'resolved', resolved_at = ? WHERE id IN ({_marks(s.ticket_ids)}) AND status != 'resolved'",
        (at, *s.ticket_ids))
    await tally.after()
    cur = await conn.execute(
        f"UPDATE tickets SET description = '', photos = '[]' WHERE id IN ({_marks(s.ticket_ids)})", s.ticket_ids)
    return cur.rowcount


async def _erase_ticket_events(conn: Connection, s: Subject, now: datetime) -> int:
    # Every message body of their tickets (both ways: agents' replies quote and address the
    # customer), and the customer's own name as an actor; agents' names stay (audit trail).
    cur = await conn.execute(
        f"UPDATE ticket_events SET body = NULL,"
        f" actor_name = CASE WHEN actor = 'customer' THEN NULL ELSE actor_name END,"
        f" actor_id = CASE WHEN actor = 'customer' THEN NULL ELSE actor_id END"
        f" WHERE ticket_id IN ({_marks(s.ticket_ids)})"
        f" OR (actor = 'customer' AND actor_id IN ({_marks(s.contact_ids)}))",
        (*s.ticket_ids, *(str(c) for c in s.contact_ids)),
    )
    return cur.rowcount


async def _erase_inbox(conn: Connection, s: Subject, now: datetime) -> int:
    """Their updates; and agents' messages in the group that quote them (a reply carries the
    card or relay it answers, with the customer's name and words)."""
    # A failed update's error may quote what it carried: it goes too.
    cur = await conn.execute(
        f"UPDATE inbox SET payload = '{PURGED}', text = NULL,"
        f" error = CASE WHEN error IS NULL THEN NULL ELSE '{ERASED}' END WHERE contact_id IN ({_marks(s.contact_ids)})",
        s.contact_ids)
    count = cur.rowcount
    for quote in _quote_forms(s.quotes):
        cur = await conn.execute(
            f"UPDATE inbox SET payload = '{PURGED}', text = NULL WHERE contact_id IS NULL AND processed_at IS NOT NULL"
            f" AND payload <> '{PURGED}' AND (instr(payload, ?) > 0 OR instr(text, ?) > 0)", (quote, quote))
        count += cur.rowcount
    return count


async def _erase_outbox(conn: Connection, s: Subject, now: datetime) -> int:
    """Messages to their chats and about their tickets (the agents' cards and relays):
    blanked, and never sent if still waiting; chat ids of finished ones go too. Owners'
    digests quote comments: a message that quotes what this person wrote is blanked."""
    where = f"(contact_id IN ({_marks(s.contact_ids)}) OR ticket_id IN ({_marks(s.ticket_ids)}))"
    params = (*s.contact_ids, *s.ticket_ids)
    await conn.execute(
        f"UPDATE outbox SET status = 'failed', last_error = 'erased' WHERE {where} AND status = 'pending'", params)
    await conn.execute(
        f"UPDATE outbox SET chat_id = '' WHERE contact_id IN ({_marks(s.contact_ids)}) AND status != 'sending'", s.contact_ids)
    cur = await conn.execute(f"UPDATE outbox SET payload = '{PURGED}' WHERE {where}", params)
    count = cur.rowcount
    for quote in _quote_forms(s.quotes):
        cur = await conn.execute(
            f"UPDATE outbox SET payload = '{PURGED}' WHERE contact_id IS NULL AND payload <> '{PURGED}'"
            " AND instr(payload, ?) > 0", (quote,))
        count += cur.rowcount
    return count


def _quote_forms(texts: Sequence[str]) -> set[str]:
    """How a text can appear inside a JSON payload: as written, with whitespace folded (the
    digest quotes it so), and its first 40 characters (quotes are shortened)."""
    forms: set[str] = set()
    for t in texts:
        for variant in (t, " ".join(t.split())):
            escaped = json.dumps(variant, ensure_ascii=False)[1:-1]
            forms.add(escaped)
            forms.add(escaped[:40].rstrip())
    return {f for f in forms if len(f) >= MIN_QUOTE_CHARS}


# The web chat's log (web_messages): a web contact's chat_id is its session id.
WEB_SESSIONS = "SELECT chat_id FROM contacts WHERE channel = 'web' AND chat_id <> '' AND id IN ({contacts})"


async def _export_web(conn: Connection, s: Subject) -> list[dict[str, Any]]:
    rows = await conn.execute_fetchall(
        f"SELECT * FROM web_messages WHERE session_id IN ({WEB_SESSIONS.format(contacts=_marks(s.contact_ids))})"
        " ORDER BY id", s.contact_ids)
    out = []
    for row in rows:
        entry = dict(row)
        body = json.loads(entry["body"])
        if isinstance(body.get("document"), dict) and "data" in body["document"]:
            body["document"] = {**body["document"], "data": EARLIER_EXPORT}
        out.append({**entry, "body": body})
    return out


async def _erase_web(conn: Connection, s: Subject, now: datetime) -> int:
    """Their sessions' logs go. Ids are the pages' resume cursors and SQLite reuses the
    largest rowid once it is deleted: the table's last row, if theirs, stays as an empty
    tombstone of no session, so ids never go backwards."""
    sessions = WEB_SESSIONS.format(contacts=_marks(s.contact_ids))
    cur = await conn.execute(
        "UPDATE web_messages SET session_id = '', kind = 'erased', client_id = NULL, body = '{}'"
        f" WHERE id = (SELECT MAX(id) FROM web_messages) AND session_id IN ({sessions})", s.contact_ids)
    kept = cur.rowcount
    cur = await conn.execute(f"DELETE FROM web_messages WHERE session_id IN ({sessions})", s.contact_ids)
    return kept + cur.rowcount


async def _export_uploads(conn: Connection, s: Subject) -> list[dict[str, Any]]:
    """The images they attached in the web chat: what and when, not the bytes (a reference: the
    log entry that showed it, and the "web:<id>" their tickets name it by)."""
    rows = await conn.execute_fetchall(
        "SELECT id, message_id, mime_type, size, created_at FROM web_uploads WHERE session_id IN"
        f" ({WEB_SESSIONS.format(contacts=_marks(s.contact_ids))}) ORDER BY id", s.contact_ids)
    return [{**dict(r), "ref": f"web:{r['id']}"} for r in rows]


async def _erase_uploads(conn: Connection, s: Subject, now: datetime) -> int:
    cur = await conn.execute(
        f"DELETE FROM web_uploads WHERE session_id IN ({WEB_SESSIONS.format(contacts=_marks(s.contact_ids))})",
        s.contact_ids)
    return cur.rowcount


async def _erase_links(conn: Connection, s: Subject, now: datetime) -> int:
    cur = await conn.execute(f"DELETE FROM my_data_links WHERE contact_id IN ({_marks(s.contact_ids)})", s.contact_ids)
    return cur.rowcount


async def _erase_start_tokens(conn: Connection, s: Subject, now: datetime) -> int:
    """The customer's receipt links stop working, and the chats' record of opening one goes."""
    cur = await conn.execute(
        f"DELETE FROM start_token_uses WHERE contact_id IN ({_marks(s.contact_ids)})"
        " OR token_id IN (SELECT id FROM start_tokens WHERE customer_id = ?)", (*s.contact_ids, *_customer_id(s)))
    count = cur.rowcount
    cur = await conn.execute("DELETE FROM start_tokens WHERE customer_id = ?", _customer_id(s))
    return count + cur.rowcount


# --- order deliveries a sales system sent that could not be handled -----------------------
# A failed delivery keeps its raw body (names, phones, addresses) for a look until the
# retention purge (PURGES below); a person's erasure cannot wait for that. The body is the
# sales system's own JSON, so the person is found by what identifies them in it: their phone
# in any writing (0912 345 678, +84912345678, 84-912-345-678, a number), their name, and the
# customer and order numbers that system gave them (our external id and order ids keep them
# after "<source>:"). Deliveries still pending are left to be handled (the person's new order
# makes a new customer, as any order after an erasure does).

_DIGIT_RUN = re.compile(r"\+?\d[\d\s().\-/]{5,24}\d")
DELIVERY_PAGE = 500


def _phone_digits(raw: Any) -> str | None:
    """A phone number's national digits (912345678 for 0912 345 678, +84 912 345 678 or
    0084912345678); None when it cannot be one."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    digits = re.sub(r"\D", "", str(raw))
    if digits.startswith("0084"):
        digits = digits[4:]
    elif digits.startswith("84") and len(digits) >= 11:
        digits = digits[2:]
    digits = digits.lstrip("0")
    return digits if 8 <= len(digits) <= 10 else None


@dataclass(frozen=True)
class _Marks:
    """What identifies the subject in a sales system's delivery."""

    phones: frozenset[str]
    names: frozenset[str]  # folded (case, whitespace)
    ids: frozenset[tuple[str, str]]  # (source, the system's own customer or order number)

    def __bool__(self) -> bool:
        return bool(self.phones or self.names or self.ids)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _after_source(value: str) -> tuple[str, str] | None:
    source, sep, own = value.partition(":")
    return (source, own) if sep and own and not source.startswith(ERASED) else None


async def _delivery_marks(conn: Connection, s: Subject) -> _Marks:
    if s.customer_id is None:
        return _Marks(frozenset(), frozenset(), frozenset())
    row = await fetch_one(conn, "SELECT name, phone, external_id FROM customers WHERE id = ?", (s.customer_id,))
    orders = await conn.execute_fetchall("SELECT order_id FROM purchases WHERE customer_id = ?", (s.customer_id,))
    phone = _phone_digits(row["phone"]) if row and row["phone"] else None
    name = _fold(row["name"]) if row and row["name"] else ""
    ids = [_after_source(v) for v in [row["external_id"] if row else "", *(r[0] for r in orders)] if v]
    return _Marks(frozenset({phone} if phone else ()), frozenset({name} if len(name) >= 4 else ()),
                  frozenset(i for i in ids if i is not None))


def _mentions(body: str, source: str, marks: _Marks) -> bool:
    """Whether a delivery's body names the subject (its JSON values; the raw text if it is not JSON)."""
    own_ids = {own for src, own in marks.ids if src == source}
    try:
        values: list[Any] = [json.loads(body)]
    except ValueError:
        values = [body]
        texts = [body]
    else:
        texts = []
    while values:
        value = values.pop()
        if isinstance(value, dict):
            values.extend(value.values())
        elif isinstance(value, list):
            values.extend(value)
        elif isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value)
            if _phone_digits(text) in marks.phones or text.lstrip("#") in {i.lstrip("#") for i in own_ids}:
                return True
            folded = _fold(text)
            if any(name == folded or (len(name) >= 8 and name in folded) for name in marks.names):
                return True
            texts.append(text)
    # A phone inside a longer text (an address line, a note): every run of digits.
    return any(_phone_digits(m.group(0)) in marks.phones for t in texts for m in _DIGIT_RUN.finditer(t))


async def _failed_deliveries(conn: Connection, s: Subject, *, by_name: bool) -> list[dict[str, Any]]:
    marks = await _delivery_marks(conn, s)
    if not by_name:
        marks = _Marks(marks.phones, frozenset(), marks.ids)
    found: list[dict[str, Any]] = []
    if not marks:
        return found
    after = 0
    while True:
        rows = await conn.execute_fetchall(
            "SELECT id, source, delivery_id, topic, status, outcome, body, received_at FROM order_deliveries"
            " WHERE id > ? AND body IS NOT NULL AND status = 'failed' ORDER BY id LIMIT ?", (after, DELIVERY_PAGE))
        found += [dict(r) for r in rows if _mentions(r["body"], r["source"], marks)]
        if len(rows) < DELIVERY_PAGE:
            return found
        after = rows[-1]["id"]


async def _export_deliveries(conn: Connection, s: Subject) -> list[dict[str, Any]]:
    # Not by the name alone: names repeat, and a namesake's delivery (their address, their
    # phone) must not reach this person. The erasure errs the other way: it blanks those too.
    return await _failed_deliveries(conn, s, by_name=False)


async def _erase_deliveries(conn: Connection, s: Subject, now: datetime) -> int:
    ids = [d["id"] for d in await _failed_deliveries(conn, s, by_name=True)]
    if not ids:
        return 0
    cur = await conn.execute(f"UPDATE order_deliveries SET body = NULL WHERE id IN ({_marks(ids)})", ids)
    return cur.rowcount


# What names, reaches or quotes a person in a webhook event's data (bot/webhooks/events.py):
# set to null on erasure; the rest (ids, scores, times, categories) stays.
WEBHOOK_PERSONAL = frozenset({"customer", "comment", "description", "contact_name"})


def _blank_webhook(value: Any, quotes: Sequence[str], personal: bool) -> Any:
    """`value` with the personal keys (when it is the subject's event) and any text quoting
    one of `quotes` set to null."""
    if isinstance(value, dict):
        return {k: None if personal and k in WEBHOOK_PERSONAL else _blank_webhook(v, quotes, personal)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_webhook(v, quotes, personal) for v in value]
    if isinstance(value, str) and any(q in " ".join(value.split()) or q in value for q in quotes):
        return None
    return value


async def _erase_webhooks(conn: Connection, s: Subject, now: datetime) -> int:
    """Their events (delivered or not: a redelivery sends what is left) lose what names or
    quotes them; so do undelivered events of nobody in particular (a digest) that quote them.
    Same webhook-id, same type: receivers still dedupe, and the body says less."""
    quotes = [q for q in {" ".join(t.split()) for t in s.quotes} | set(s.quotes) if len(q) >= MIN_QUOTE_CHARS]
    own = await webhooks.messages_of(conn, s.customer_id, s.contact_ids, s.ticket_ids)
    others = await webhooks.unfinished_quoting(conn, sorted(_quote_forms(s.quotes)))
    count = 0
    for rows, personal in ((own, True), (others, False)):
        for message_id, payload in rows:
            if payload == PURGED:
                continue
            blanked = json.dumps(_blank_webhook(json.loads(payload), quotes, personal), ensure_ascii=False,
                                 separators=(",", ":"))
            if blanked != payload:
                await webhooks.set_payload(conn, message_id, blanked)
                count += 1
    return count


@dataclass(frozen=True)
class Step:
    table: str
    export: Callable[[Connection, Subject], Awaitable[list[dict[str, Any]]]]
    erase: Callable[[Connection, Subject, datetime], Awaitable[int]]


# One entry per table holding personal data. Adding a table = adding a Step.
STEPS: tuple[Step, ...] = (
    # First: it finds the deliveries by the customer's name, phone and order numbers.
    Step("order_deliveries", _export_deliveries, _erase_deliveries),
    Step("customers", _select("SELECT * FROM customers WHERE id = ?", _customer_id), _erase_customer),
    # Before "contacts", which blanks the chat ids (a web contact's chat id is its session).
    Step("web_uploads", _export_uploads, _erase_uploads),
    Step("web_messages", _export_web, _erase_web),
    Step("my_data_links", _select(
        "SELECT id, contact_id, created_at, expires_at FROM my_data_links WHERE contact_id IN ({contacts}) ORDER BY id",
        lambda s: s.contact_ids), _erase_links),
    Step("contacts", _select("SELECT * FROM contacts WHERE id IN ({contacts}) ORDER BY id", lambda s: s.contact_ids),
         _erase_contacts),
    Step("purchases", _select("SELECT * FROM purchases WHERE customer_id = ? ORDER BY purchased_at, id", _customer_id),
         _erase_purchases),
    # The tokens themselves are keys: exported without them.
    Step("start_tokens", _select(
        "SELECT t.id, t.purchase_id, t.created_at, t.revoked_at, u.contact_id, u.used_at FROM start_tokens t"
        " LEFT JOIN start_token_uses u ON u.token_id = t.id WHERE t.customer_id = ?"
        " UNION SELECT u.token_id, u.purchase_id, NULL, NULL, u.contact_id, u.used_at FROM start_token_uses u"
        " WHERE u.contact_id IN ({contacts}) ORDER BY 1, 5",
        lambda s: (*_customer_id(s), *s.contact_ids)), _erase_start_tokens),
    # The customer's, and those sent to the subject's chats (a receipt's link chat's answer).
    Step("surveys", _select("SELECT * FROM surveys WHERE customer_id = ? OR contact_id IN ({contacts}) ORDER BY id",
                            lambda s: (*_customer_id(s), *s.contact_ids)), _erase_surveys),
    Step("program_surveys", _select(
        "SELECT * FROM program_surveys WHERE customer_id = ? OR contact_id IN ({contacts}) ORDER BY id",
        lambda s: (*_customer_id(s), *s.contact_ids)), _erase_program_surveys),
    Step("ideas", _select("SELECT * FROM ideas WHERE customer_id = ? OR contact_id IN ({contacts}) ORDER BY id",
                          lambda s: (*_customer_id(s), *s.contact_ids)), _erase_ideas),
    Step("conversations", _select("SELECT * FROM conversations WHERE contact_id IN ({contacts})", lambda s: s.contact_ids),
         _erase_conversations),
    Step("tickets", _select("SELECT * FROM tickets WHERE id IN ({tickets}) ORDER BY id", lambda s: s.ticket_ids),
         _erase_tickets),
    Step("ticket_events", _select(
        "SELECT * FROM ticket_events WHERE ticket_id IN ({tickets})"
        " OR (actor = 'customer' AND actor_id IN ({contacts})) ORDER BY id",
        lambda s: (*s.ticket_ids, *(str(c) for c in s.contact_ids))), _erase_ticket_events),
    Step("inbox", _select("SELECT * FROM inbox WHERE contact_id IN ({contacts}) ORDER BY id", lambda s: s.contact_ids),
         _erase_inbox),
    Step("outbox", _select(
        "SELECT * FROM outbox WHERE contact_id IN ({contacts}) OR ticket_id IN ({tickets}) ORDER BY id",
        lambda s: (*s.contact_ids, *s.ticket_ids)), _erase_outbox),
    Step("webhook_messages", _select(
        "SELECT id, msg_id, type, payload, created_at FROM webhook_messages WHERE customer_id = ?"
        " OR contact_id IN ({contacts}) OR ticket_id IN ({tickets}) ORDER BY id",
        lambda s: (s.customer_id, *s.contact_ids, *s.ticket_ids)), _erase_webhooks),
)


async def export(conn: Connection, s: Subject) -> dict[str, list[dict[str, Any]]]:
    return {step.table: await step.export(conn, s) for step in STEPS}


async def _quotes(conn: Connection, s: Subject) -> tuple[str, ...]:
    """What names the person or what they wrote (name, phone, chat names, comments,
    complaint texts, messages), looked for in other people's messages before it is erased."""
    rows = await conn.execute_fetchall(
        "SELECT name FROM customers WHERE id = ? UNION SELECT phone FROM customers WHERE id = ?"
        f" UNION SELECT display_name FROM contacts WHERE id IN ({_marks(s.contact_ids)})"
        f" UNION SELECT comment FROM surveys WHERE (customer_id = ? OR contact_id IN ({_marks(s.contact_ids)}))"
        " AND comment IS NOT NULL"
        f" UNION SELECT comment FROM program_surveys WHERE (customer_id = ? OR contact_id IN ({_marks(s.contact_ids)}))"
        " AND comment IS NOT NULL"
        f" UNION SELECT text FROM ideas WHERE contact_id IN ({_marks(s.contact_ids)}) AND text IS NOT NULL"
        f" UNION SELECT description FROM tickets WHERE id IN ({_marks(s.ticket_ids)})"
        f" UNION SELECT body FROM ticket_events WHERE ticket_id IN ({_marks(s.ticket_ids)}) AND actor = 'customer'"
        " AND body IS NOT NULL",
        (*_customer_id(s), *_customer_id(s), *s.contact_ids, *_customer_id(s), *s.contact_ids,
         *_customer_id(s), *s.contact_ids, *s.contact_ids, *s.ticket_ids, *s.ticket_ids),
    )
    return tuple(r[0] for r in rows if r[0])


async def erase(conn: Connection, s: Subject, now: datetime) -> dict[str, int]:
    """Every step, in the caller's transaction: rows touched per table."""
    s = Subject(s.label, s.customer_id, s.contact_ids, s.ticket_ids, await _quotes(conn, s))
    if dialect(conn) == "postgresql":
        conn.after_erasure()  # type: ignore[attr-defined]  # its checkpoint rewrites the tables
    return {step.table: await step.erase(conn, s, now) for step in STEPS}


async def ticket_erased(conn: Connection, ticket_id: int) -> bool:
    """Whether the ticket's chat or customer was erased: what arrives for it later (a rating
    read back from Zalo) must not bring anything of them back."""
    row = await fetch_one(
        conn, "SELECT 1 FROM tickets t LEFT JOIN contacts c ON c.id = t.contact_id"
        " LEFT JOIN customers u ON u.id = t.customer_id WHERE t.id = ?"
        " AND (c.erased_at IS NOT NULL OR u.erased_at IS NOT NULL)", (ticket_id,))
    return row is not None


async def scrub_if_erased(conn: Connection, inbox_id: int, contact_id: int) -> None:
    """The update that asked for erasure is recorded after the erase ran: blank it too."""
    await conn.execute(
        f"UPDATE inbox SET payload = '{PURGED}', text = NULL WHERE id = ?"
        " AND EXISTS (SELECT 1 FROM contacts WHERE id = ? AND erased_at IS NOT NULL)",
        (inbox_id, contact_id),
    )


# --- retention ---------------------------------------------------------------------------

# Each: one batch of at most ? rows older than ? -> rows changed. Unprocessed inbox rows and
# outbox rows the sender has not finished are never touched; scores, statuses and times are.
# The "my_data*" rules are not retention rules: a /mydata file is a copy of everything, kept
# only until it is sent (outbox: it gets `now` instead of the retention cutoff), or for
# MY_DATA_TTL where it is the delivery itself (a web page's download, a Zalo link); see purge().
SILENT_WEB_SESSION_TTL = timedelta(hours=1)  # a web session that never said anything (see purge())
PURGES: tuple[tuple[str, str], ...] = (
    ("my_data", f"UPDATE outbox SET payload = '{PURGED}' WHERE id IN ("
                f"SELECT id FROM outbox WHERE payload <> '{PURGED}' AND created_at < ? AND method = 'send_document'"
                f" AND status IN {FINISHED} LIMIT ?)"),
    # The page keeps the caption and the file's name, marked expired (kind 'message' again).
    ("my_data_web", "UPDATE web_messages SET kind = 'message', body = json_set(json_remove(body, '$.document.data'),"
                    " '$.document.expired', json('true')) WHERE id IN ("
                    "SELECT id FROM web_messages WHERE kind = 'document' AND created_at < ? LIMIT ?)"),
    ("my_data_links", "DELETE FROM my_data_links WHERE id IN (SELECT id FROM my_data_links WHERE expires_at < ? LIMIT ?)"),
    # Old entries of the web chat's log go, but never the table's last row (see _erase_web):
    # a page resuming after an id that is gone just gets what came after it.
    ("web_messages", "DELETE FROM web_messages WHERE id IN (SELECT id FROM web_messages WHERE created_at < ?1"
                     " AND id < (SELECT MAX(id) FROM web_messages) ORDER BY created_at LIMIT ?2)"),
    # ...and that last row, once as old, stays only as an empty tombstone of no session (?2: the
    # batch, unused here: one row at most).
    ("web_messages_last", "UPDATE web_messages SET session_id = '', kind = 'erased', client_id = NULL, body = '{}'"
                          " WHERE id = (SELECT MAX(id) FROM web_messages) AND created_at < ?1 AND kind <> 'erased'"
                          " AND ?2 > 0"),
    # The web chat's images: as old as the log entries that showed them.
    ("web_uploads", "DELETE FROM web_uploads WHERE id IN (SELECT id FROM web_uploads WHERE created_at < ?"
                    " ORDER BY created_at LIMIT ?)"),
    ("inbox", f"UPDATE inbox SET payload = '{PURGED}', text = NULL WHERE id IN ("
              f"SELECT id FROM inbox WHERE payload <> '{PURGED}' AND received_at < ? AND processed_at IS NOT NULL"
              " ORDER BY received_at LIMIT ?)"),
    ("outbox", f"UPDATE outbox SET payload = '{PURGED}' WHERE id IN ("
               f"SELECT id FROM outbox WHERE payload <> '{PURGED}' AND created_at < ?"
               f" AND status IN {FINISHED} ORDER BY created_at LIMIT ?)"),
    ("ticket_events", "UPDATE ticket_events SET body = NULL WHERE id IN ("
                      "SELECT e.id FROM ticket_events e LEFT JOIN tickets t ON t.id = e.ticket_id"
                      " WHERE e.body IS NOT NULL AND e.at < ?1 AND (t.id IS NULL OR (t.status = 'resolved'"
                      " AND t.resolved_at < ?1)) ORDER BY e.at LIMIT ?2)"),
    # Order deliveries keep their body only while pending or failed (names, phones): a failed
    # one until this (a pending one is handled at the next start).
    ("order_deliveries", "UPDATE order_deliveries SET body = NULL WHERE id IN (SELECT id FROM order_deliveries"
                         " WHERE body IS NOT NULL AND status = 'failed' AND received_at < ? ORDER BY id LIMIT ?)"),
    # Webhook events nobody still has to deliver (a purged one cannot be redelivered).
    ("webhook_messages", f"UPDATE webhook_messages SET payload = '{PURGED}' WHERE id IN ("
                         f"SELECT m.id FROM webhook_messages m WHERE m.payload <> '{PURGED}' AND m.created_at < ?"
                         " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id"
                         " AND d.status IN ('pending', 'sending')) ORDER BY m.created_at LIMIT ?)"),
    ("conversations", "DELETE FROM conversations WHERE contact_id IN ("
                      "SELECT contact_id FROM conversations WHERE updated_at < ? LIMIT ?)"),
)


# PostgreSQL's forms of the rules whose SQLite SQL has no twin there (JSON editing).
PG_PURGES = {
    "my_data_web": "UPDATE web_messages SET kind = 'message', body = jsonb_set(body::jsonb #- '{document,data}',"
                   " '{document,expired}', 'true')::text WHERE id IN ("
                   "SELECT id FROM web_messages WHERE kind = 'document' AND created_at < ? LIMIT ?)",
}


async def purge(db: Database, cutoff: datetime, now: datetime, batch: int = 500) -> dict[str, int]:
    """Retention: clear raw payloads and message texts older than `cutoff`, `batch` rows per
    transaction so the write lock is never held long. Also drops the chat ids of finished
    messages to erased contacts (the goodbye after /forget)."""
    done: dict[str, int] = {}
    cutoffs = {"my_data": now, "my_data_links": now, "my_data_web": now - MY_DATA_TTL}
    variants = PG_PURGES if dialect(db) == "postgresql" else {}
    for table, sql in PURGES:
        sql = variants.get(table, sql)
        total = 0
        while True:
            async with db.transaction() as tx:
                cur = await tx.execute(sql, (to_db(cutoffs.get(table, cutoff)), batch))
            total += cur.rowcount
            if cur.rowcount < batch:
                break
        done[table] = total
    async with db.transaction() as tx:
        cur = await tx.execute(
            "UPDATE outbox SET chat_id = '', payload = ? WHERE chat_id <> '' AND status IN"
            f" {FINISHED} AND contact_id IN (SELECT id FROM contacts WHERE erased_at IS NOT NULL)", (PURGED,))
        done["erased_chats"] = cur.rowcount
    return done


async def purge_silent_web_sessions(db: Database, now: datetime, batch: int = 500) -> int:
    """Anonymous web visitors who never said anything: gone an hour (or two) after."""
    total = 0
    while True:
        async with db.transaction() as tx:
            count = await web_messages.purge_silent_sessions(tx, now - SILENT_WEB_SESSION_TTL, batch)
        total += count
        if count < batch:
            return total


# --- the notice and consent (contacts) -------------------------------------------------


async def mark_notice_shown(conn: Connection, contact_id: int, version: str, now: datetime) -> str | None:
    """Record that this version of the notice goes to the contact now; returns the contact's
    language if it had not been shown it yet, else None (one indexed row read otherwise)."""
    rows = await conn.execute_fetchall(
        "UPDATE contacts SET notice_version = ?, notice_at = ? WHERE id = ? AND erased_at IS NULL"
        " AND (notice_version IS NULL OR notice_version <> ?) RETURNING language",
        (version, to_db(now), contact_id, version),
    )
    return next((r[0] for r in rows), None)


async def record_consent(conn: Connection, contact_id: int, version: str, now: datetime, *, renew: bool) -> bool:
    """Consent to `version`, if the contact was shown that notice and has not consented to it
    yet; after a withdrawal only when `renew` (an explicit /start)."""
    cur = await conn.execute(
        "UPDATE contacts SET consent_at = ?, consent_version = ?, consent_withdrawn_at = NULL"
        " WHERE id = ? AND notice_version = ?"
        " AND ((consent_withdrawn_at IS NULL AND consent_version IS DISTINCT FROM ?) OR (consent_withdrawn_at IS NOT NULL AND ?))",
        (to_db(now), version, contact_id, version, version, renew),
    )
    return cur.rowcount == 1


async def withdraw_consent(conn: Connection, contact_id: int, now: datetime) -> None:
    await conn.execute(
        "UPDATE contacts SET consent_withdrawn_at = ? WHERE id = ? AND consent_withdrawn_at IS NULL", (to_db(now), contact_id))
