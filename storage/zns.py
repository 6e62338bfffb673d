"""Survey routes and ZNS bookkeeping: the route on each survey, the day's ZNS spend, ratings
read back (once each), the token keep-alive's health, request_user_info sent once."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db


async def set_route(conn: Connection, survey_id: int, route: str | None, reason: str) -> None:
    await conn.execute("UPDATE surveys SET route = ?, route_reason = ? WHERE id = ?", (route, reason[:200], survey_id))


async def route_counts(conn: Connection, start: datetime, end: datetime) -> dict[str, int]:
    """Surveys sent in [start, end) per route (older surveys without one count as 'cs')."""
    rows = await conn.execute_fetchall(
        "SELECT COALESCE(route, 'cs') AS r, COUNT(*) AS n FROM surveys WHERE sent_at IS NOT NULL AND sent_at >= ?"
        " AND sent_at < ? AND demo = 0 GROUP BY COALESCE(route, 'cs')",
        (to_db(start), to_db(end)),
    )
    return {row[0]: row[1] for row in rows}


# --- spend ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaySpend:
    messages: int
    vnd: int
    alerted: bool


async def spend_of(conn: Connection, day: date) -> DaySpend:
    row = await fetch_one(conn, "SELECT messages, vnd, alerted_at FROM zns_spend WHERE day = ?", (day.isoformat(),))
    return DaySpend(row[0], row[1], row[2] is not None) if row else DaySpend(0, 0, False)


async def reserve(conn: Connection, day: date, vnd: int) -> None:
    """One message of `vnd` counted against the day, in the transaction that queues it."""
    await conn.execute(
        "INSERT INTO zns_spend (day, messages, vnd) VALUES (?, 1, ?) ON CONFLICT (day) DO UPDATE SET"
        " messages = zns_spend.messages + 1, vnd = zns_spend.vnd + excluded.vnd",
        (day.isoformat(), vnd),
    )


async def mark_alerted(conn: Connection, day: date, now: datetime) -> bool:
    """True the first time the day's limit is reported (the owners are told once)."""
    await conn.execute("INSERT INTO zns_spend (day) VALUES (?) ON CONFLICT (day) DO NOTHING", (day.isoformat(),))
    cur = await conn.execute(
        "UPDATE zns_spend SET alerted_at = ? WHERE day = ? AND alerted_at IS NULL", (to_db(now), day.isoformat())
    )
    return cur.rowcount == 1


async def spend_between(conn: Connection, first: date, last: date) -> tuple[int, int]:
    """(messages, VND) over the days first..last inclusive."""
    row = await fetch_one(
        conn, "SELECT COALESCE(SUM(messages), 0), COALESCE(SUM(vnd), 0) FROM zns_spend WHERE day >= ? AND day <= ?",
        (first.isoformat(), last.isoformat()),
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)


# --- the ZNS outbox row -----------------------------------------------------------------------


async def set_tracking_id(conn: Connection, outbox_id: int, payload: dict[str, Any]) -> None:
    """The row's own id as its tracking_id: a resend of the row is the same ZNS message."""
    await conn.execute(
        "UPDATE outbox SET payload = ? WHERE id = ?",
        (json.dumps({**payload, "tracking_id": str(outbox_id)}, ensure_ascii=False), outbox_id),
    )


@dataclass(frozen=True)
class Tracked:
    """What a ZNS message was about, found by its tracking_id (our outbox row's id)."""

    survey_id: int | None
    ticket_id: int | None  # a resolved complaint's rating
    queued_at: datetime


async def of_tracking_id(conn: Connection, tracking_id: str) -> Tracked | None:
    if not tracking_id.isdigit() or len(tracking_id) > 18:
        return None
    row = await fetch_one(
        conn, "SELECT survey_id, ticket_id, created_at FROM outbox WHERE id = ? AND channel = 'zns'", (int(tracking_id),)
    )
    return Tracked(row[0], row[1], from_db(row[2])) if row else None  # type: ignore[arg-type]


# --- ratings ------------------------------------------------------------------------------------


async def record_rating(conn: Connection, rating_id: str, survey_id: int | None, score: int, now: datetime,
                        ticket_id: int | None = None) -> bool:
    """True the first time this rating is seen (it is handled once, however often it is read)."""
    cur = await conn.execute(
        "INSERT INTO zns_ratings (rating_id, survey_id, ticket_id, score, received_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (rating_id) DO NOTHING",
        (rating_id[:100], survey_id, ticket_id, score, to_db(now)),
    )
    return cur.rowcount == 1


# Resolution ratings by ZNS: asked (the templates queued) and answered (read back) in [start, end).
RESOLUTIONS_ASKED = ("SELECT COUNT(*) FROM outbox WHERE created_at >= ? AND created_at < ? AND channel = 'zns'"
                     " AND ticket_id IS NOT NULL")
RESOLUTIONS_ANSWERED = ("SELECT COUNT(*) FROM zns_ratings WHERE received_at >= ? AND received_at < ?"
                        " AND ticket_id IS NOT NULL")


async def resolution_counts(conn: Connection, start: datetime, end: datetime) -> tuple[int, int]:
    """(asked, answered): resolved complaints' ratings by the ZNS template in [start, end)."""
    counts = []
    for sql in (RESOLUTIONS_ASKED, RESOLUTIONS_ANSWERED):
        row = await fetch_one(conn, sql, (to_db(start), to_db(end)))
        counts.append(int(row[0]) if row else 0)
    return counts[0], counts[1]


async def last_rating_at(conn: Connection) -> datetime | None:
    row = await fetch_one(conn, "SELECT MAX(received_at) FROM zns_ratings")
    return from_db(row[0]) if row and row[0] else None


# --- the token keep-alive -------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    refreshed_at: datetime | None
    failed_at: datetime | None
    failure: str | None


async def health(conn: Connection) -> Health:
    row = await fetch_one(conn, "SELECT refreshed_at, failed_at, failure FROM zalo_health WHERE id = 1")
    if row is None:
        return Health(None, None, None)
    return Health(from_db(row[0]), from_db(row[1]), row[2])


async def refreshed(conn: Connection, now: datetime) -> None:
    await conn.execute(
        "INSERT INTO zalo_health (id, refreshed_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET"
        " refreshed_at = excluded.refreshed_at, failed_at = NULL, failure = NULL, alerted_at = NULL",
        (to_db(now),),
    )


async def refresh_failed(conn: Connection, now: datetime, failure: str) -> bool:
    """Record a failed refresh; True if the owners have not been told of this failure yet."""
    await conn.execute(
        "INSERT INTO zalo_health (id, failed_at, failure) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET"
        " failed_at = excluded.failed_at, failure = excluded.failure",
        (to_db(now), failure[:500]),
    )
    cur = await conn.execute("UPDATE zalo_health SET alerted_at = ? WHERE id = 1 AND alerted_at IS NULL", (to_db(now),))
    return cur.rowcount == 1


# --- request_user_info ------------------------------------------------------------------------------


async def mark_info_requested(conn: Connection, contact_id: int, now: datetime) -> bool:
    """True the first time: a follower is asked for their phone once."""
    cur = await conn.execute(
        "UPDATE contacts SET info_requested_at = ? WHERE id = ? AND info_requested_at IS NULL", (to_db(now), contact_id)
    )
    return cur.rowcount == 1


async def zalo_last_seen(conn: Connection, customer_id: int) -> dict[int, tuple[str, datetime | None]]:
    """The customer's Zalo chats: contact id -> (Zalo user id, when they last wrote to us; None: never)."""
    rows = await conn.execute_fetchall(
        "SELECT id, platform_user_id, last_seen_at FROM contacts WHERE customer_id = ? AND channel = 'zalo'",
        (customer_id,),
    )
    return {row[0]: (row[1], None if row[2].startswith("1970-") else from_db(row[2])) for row in rows}


async def last_seen_of(conn: Connection, contact_id: int) -> datetime | None:
    """When this chat last wrote to us (None: never)."""
    row = await fetch_one(conn, "SELECT last_seen_at FROM contacts WHERE id = ?", (contact_id,))
    return None if row is None or row[0].startswith("1970-") else from_db(row[0])
