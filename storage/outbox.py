"""Outgoing messages: written with the state change that caused them, drained by the sender."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from storage.db import Connection, Row, dialect, fetch_one, to_json
from storage.leases import clock_sql
from storage.timefmt import to_db


@dataclass(frozen=True)
class OutboxItem:
    id: int
    channel: str
    chat_id: str
    method: str
    payload: dict[str, Any]
    attempts: int
    survey_id: int | None
    ticket_id: int | None = None
    coalesce_key: str | None = None


async def enqueue(
    conn: Connection,
    *,
    channel: str,
    chat_id: str,
    contact_id: int | None,
    method: str,
    payload: dict[str, Any],
    now: datetime,
    survey_id: int | None = None,
    priority: int = 0,
    ticket_id: int | None = None,
    coalesce_key: str | None = None,
    after_id: int | None = None,
) -> int:
    """A row to send; `after_id`: it goes only once that row is done (sent, failed or unknown)."""
    cur = await conn.execute(
        "INSERT INTO outbox (channel, chat_id, contact_id, method, payload, survey_id, priority, ticket_id,"
        " coalesce_key, after_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            channel, chat_id, contact_id, method, to_json(payload), survey_id, priority,
            ticket_id, coalesce_key, after_id, to_db(now),
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def ready(
    conn: Connection, now: datetime, limit: int, skip_channels: tuple[str, ...] = ()
) -> list[OutboxItem]:
    """Pending messages whose retry time (if any) has come: interactive ones first, then in
    the order they were written (none of `skip_channels`: paused platforms). A ticket's
    messages to one chat keep their order across retries (the forum topic before the card,
    the card before the customer's next message), and a row written to wait for another
    (`after_id`) waits until that one is done."""
    skip = f" AND channel NOT IN ({_in(list(skip_channels))})" if skip_channels else ""
    return [_item(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?){skip}"
        f" AND {_NOT_WAITING} ORDER BY priority, id LIMIT ?",
        (to_db(now), *skip_channels, limit),
    )]


_UNFINISHED = "('pending', 'sending')"
_NOT_WAITING = (
    "(ticket_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox e WHERE e.ticket_id = outbox.ticket_id"
    f" AND e.chat_id = outbox.chat_id AND e.id < outbox.id AND e.status IN {_UNFINISHED}))"
    " AND (after_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox a WHERE a.id = outbox.after_id"
    f" AND a.status IN {_UNFINISHED}))"
)
_SELECT = "SELECT id, channel, chat_id, method, payload, attempts, survey_id, ticket_id, coalesce_key FROM outbox"


def _item(r: Row) -> OutboxItem:
    return OutboxItem(
        r["id"], r["channel"], r["chat_id"], r["method"], json.loads(r["payload"]), r["attempts"],
        r["survey_id"], r["ticket_id"], r["coalesce_key"],
    )


async def take_coalescable(conn: Connection, item: OutboxItem, max_chars: int) -> list[OutboxItem]:
    """Pending rows that may ride along with `item` (same chat, same key, after it, in
    order, within the size budget): marked sent as part of it."""
    if item.coalesce_key is None:
        return []
    candidates = [_item(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE status = 'pending' AND chat_id = ? AND coalesce_key = ? AND id > ? ORDER BY id LIMIT 50",
        (item.chat_id, item.coalesce_key, item.id),
    )]
    taken: list[OutboxItem] = []
    size = len(item.payload.get("text", ""))
    for other in candidates:
        size += len(other.payload.get("text", "")) + 1
        if other.method != item.method or size > max_chars:
            break
        taken.append(other)
    for other in taken:
        # They share the first row's fate from here on (sent, retried or failed together).
        await conn.execute(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, last_error = ? WHERE id = ?",
            (f"merged into {item.id}", other.id),
        )
    return taken


async def first_of_ticket(conn: Connection, ticket_id: int, chat_id: str, method: str) -> int | None:
    """The id of a ticket's first row of this method to this chat (its card), if any."""
    row = await fetch_one(conn,
        "SELECT MIN(id) FROM outbox WHERE ticket_id = ? AND chat_id = ? AND method = ?", (ticket_id, chat_id, method)
    )
    return row[0] if row else None


async def waiting_on(conn: Connection, item_id: int) -> list[tuple[int, int | None, dict[str, Any]]]:
    """Pending rows written to wait for this one: (id, contact id, payload)."""
    return [(r["id"], r["contact_id"], json.loads(r["payload"])) for r in await conn.execute_fetchall(
        "SELECT id, contact_id, payload FROM outbox WHERE after_id = ? AND status = 'pending' ORDER BY id", (item_id,)
    )]


async def release(conn: Connection, item_id: int, payload: dict[str, Any]) -> None:
    """A waiting row goes now, with this payload."""
    await conn.execute("UPDATE outbox SET after_id = NULL, payload = ? WHERE id = ?", (to_json(payload), item_id))


async def next_retry_at(conn: Connection) -> str | None:
    row = await fetch_one(conn, 
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending' AND next_attempt_at IS NOT NULL"
    )
    return row[0] if row else None


CLAIM_LEASE_S = 60.0  # a claim's default lease (an instance renews its claims while it lives)


async def mark_sending(conn: Connection, item_id: int, claimed_by: str | None = None,
                       lease_seconds: float = CLAIM_LEASE_S) -> bool:
    """Claim a pending row for `lease_seconds`; False if someone else claimed it first. On
    PostgreSQL a row another instance is claiming right now is skipped, not waited for
    (FOR UPDATE SKIP LOCKED): the loser moves on to its next row at once."""
    cur = await conn.execute(*_claim(conn, item_id, claimed_by, lease_seconds))
    return cur.rowcount == 1


async def claim(db: Any, item_id: int, claimed_by: str | None = None, lease_seconds: float = CLAIM_LEASE_S) -> bool:
    """mark_sending in a transaction of its own, committed before this returns; on PostgreSQL
    the statement alone (one round trip instead of three) beside the process's writer
    (db.write_beside: a long transaction of ours, a dispatch batch, does not hold up the sends)."""
    if dialect(db) != "postgresql":
        async with db.transaction() as tx:
            return await mark_sending(tx, item_id, claimed_by, lease_seconds)
    _, count = await db.write_beside(*_claim(db, item_id, claimed_by, lease_seconds))
    return count == 1


def _claim(conn: Any, item_id: int, claimed_by: str | None, lease_seconds: float) -> tuple[str, tuple[Any, ...]]:
    lease, lease_args = clock_sql(conn, lease_seconds)
    where = ("id = (SELECT id FROM outbox WHERE id = ? AND status = 'pending' FOR UPDATE SKIP LOCKED)"
             if dialect(conn) == "postgresql" else "id = ? AND status = 'pending'")
    return (f"UPDATE outbox SET status = 'sending', attempts = attempts + 1, claimed_by = ?, lease_until = {lease}"
            f" WHERE {where}", (claimed_by, *lease_args, item_id))


async def renew_claims(conn: Connection, claimed_by: str, lease_seconds: float) -> int:
    """Move the lease of every row this instance is sending forward (it is alive). On
    PostgreSQL rows locked right now are left as they are (their send is being recorded):
    the renewal, on a connection of its own, never waits for the instance's own writes."""
    lease, lease_args = clock_sql(conn, lease_seconds)
    skip = " FOR UPDATE SKIP LOCKED" if dialect(conn) == "postgresql" else ""
    cur = await conn.execute(
        f"UPDATE outbox SET lease_until = {lease} WHERE id IN (SELECT id FROM outbox"
        f" WHERE status = 'sending' AND claimed_by = ?{skip})",
        (*lease_args, claimed_by),
    )
    return cur.rowcount


def _in(ids: list[int]) -> str:
    return ", ".join("?" * len(ids))


async def mark_sent(conn: Connection, ids: list[int], platform_message_id: str | None, now: datetime) -> None:
    await conn.execute(*_sent(ids, platform_message_id, now))


async def record_sent(db: Any, ids: list[int], platform_message_id: str | None, now: datetime) -> None:
    """mark_sent in a transaction of its own (on PostgreSQL the statement alone beside the
    writer, as claim())."""
    if dialect(db) != "postgresql":
        async with db.transaction() as tx:
            await mark_sent(tx, ids, platform_message_id, now)
        return
    await db.write_beside(*_sent(ids, platform_message_id, now))


def _sent(ids: list[int], platform_message_id: str | None, now: datetime) -> tuple[str, tuple[Any, ...]]:
    return (f"UPDATE outbox SET status = 'sent', platform_message_id = ?, sent_at = ? WHERE id IN ({_in(ids)})",
            (platform_message_id, to_db(now), *ids))


async def mark_retry(conn: Connection, ids: list[int], at: datetime, error: str, count_attempt: bool = True) -> None:
    # A 429 is the platform pacing us, not a failed attempt: it does not use up retries.
    await conn.execute(
        "UPDATE outbox SET status = 'pending', next_attempt_at = ?, last_error = ?,"
        f" attempts = attempts - ? WHERE id IN ({_in(ids)})",
        (to_db(at), error[:1000], 0 if count_attempt else 1, *ids),
    )


async def mark_final(conn: Connection, ids: list[int], status: str, error: str) -> None:
    """failed: dead letter, never retried; unknown: may have arrived, never resent."""
    assert status in ("failed", "unknown")
    await conn.execute(
        f"UPDATE outbox SET status = ?, last_error = ? WHERE id IN ({_in(ids)})", (status, error[:1000], *ids)
    )


def _expired(conn: Connection, expired_only: bool) -> tuple[str, tuple[Any, ...]]:
    """The condition for rows whose sender is gone: every 'sending' row at a lone instance's
    start; with `expired_only` (several instances), those whose claim ran out (or that were
    claimed before claims had leases)."""
    if not expired_only:
        return "", ()
    now, now_args = clock_sql(conn, 0)
    return f" AND (lease_until IS NULL OR lease_until < {now})", now_args


async def requeue_in_flight(conn: Connection, resend_channels: Sequence[str] = (), *, expired_only: bool = False) -> int:
    """Rows left 'sending' by a crash that go out again; call before recover_in_flight.
    Scheduled survey questions (bulk, priority 1): a question that never arrived is lost
    feedback, one that arrives twice is one extra message (the rule: every due survey is
    sent, at most the in-flight ones twice). Rows on `resend_channels`, whose delivery is our
    own write (the web chat): a resend costs at most a repeated line in the chat log."""
    expired, expired_args = _expired(conn, expired_only)
    cur = await conn.execute(
        "UPDATE outbox SET status = 'pending', last_error = 'in flight when the bot stopped; sent again'"
        " WHERE status = 'sending' AND ((survey_id IS NOT NULL AND priority = 1 AND method = 'send_text')"
        f" OR channel IN ({','.join('?' * len(resend_channels)) or 'NULL'})){expired}",
        (*resend_channels, *expired_args),
    )
    return cur.rowcount


async def recover_in_flight(conn: Connection, *, expired_only: bool = False) -> int:
    """Rows left 'sending' by a crash: we cannot know whether they arrived, so never resend."""
    expired, expired_args = _expired(conn, expired_only)
    cur = await conn.execute(
        "UPDATE outbox SET status = 'unknown', last_error = 'in flight when the bot stopped'"
        f" WHERE status = 'sending'{expired}", expired_args,
    )
    return cur.rowcount


async def unfinished(db: Any) -> list[Any]:
    """Rows still pending or being sent (the sender's drain, for tests and benchmarks)."""
    return list(await db.fetchall(
        "SELECT id, status, attempts, next_attempt_at, last_error FROM outbox WHERE status IN ('pending', 'sending')"
    ))
