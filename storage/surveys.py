"""CSAT surveys: scheduling, claiming due ones, answers, expiry."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
from datetime import datetime

from storage import feedback_rollups, rollups
from storage import customers
from storage.customers import CustomerRecord
from storage.db import Connection, Row, dialect, fetch_one
from storage.folding import fold
from storage.rollups import RollupRule
from storage.timefmt import from_db, to_db

OPEN_FOR_DISPATCH = ("scheduled", "awaiting_contact")
UNDELIVERABLE = "undeliverable:"  # skip_reason prefix: the question never reached the customer


@dataclass(frozen=True)
class SurveyRecord:
    id: int
    purchase_id: int
    customer_id: int
    order_id: str
    touchpoint: str
    status: str
    skip_reason: str | None
    due_at: datetime
    contact_id: int | None
    language: str | None
    sent_at: datetime | None
    reminded_at: datetime | None
    answered_at: datetime | None
    score: int | None
    comment: str | None
    store: str | None = None
    first_due_at: datetime | None = None  # before any postponement (NULL in the row: never postponed)

    @property
    def late_from(self) -> datetime:
        """What survey.max_lateness counts from: the first due time, not a postponement's."""
        return self.first_due_at or self.due_at


# The record's fields, in its order: built by position, not by column name (this runs for
# most inbound updates; a sqlite3.Row looks a name up by comparing it with each column's).
_SELECT = (
    "SELECT s.id, s.purchase_id, s.customer_id, p.order_id, s.touchpoint, s.status, s.skip_reason, s.due_at,"
    " s.contact_id, s.language, s.sent_at, s.reminded_at, s.answered_at, s.score, s.comment, s.store, s.first_due_at"
    " FROM surveys s JOIN purchases p ON p.id = s.purchase_id"
)


def _record(row: Row) -> SurveyRecord:
    (
        id_, purchase_id, customer_id, order_id, touchpoint, status, skip_reason, due_at,
        contact_id, language, sent_at, reminded_at, answered_at, score, comment, store, first_due_at,
    ) = row
    due = from_db(due_at)
    assert due is not None  # NOT NULL
    return SurveyRecord(
        id=id_, purchase_id=purchase_id, customer_id=customer_id, order_id=order_id, touchpoint=touchpoint,
        status=status, skip_reason=skip_reason, due_at=due, contact_id=contact_id, language=language,
        sent_at=from_db(sent_at), reminded_at=from_db(reminded_at), answered_at=from_db(answered_at),
        score=score, comment=comment, store=store, first_due_at=from_db(first_due_at),
    )


async def insert(
    conn: Connection,
    *,
    purchase_id: int,
    customer_id: int,
    touchpoint: str,
    store: str | None,
    due_at: datetime,
    status: str,
    skip_reason: str | None,
    now: datetime,
) -> int:
    cur = await conn.execute(
        "INSERT INTO surveys (purchase_id, customer_id, touchpoint, store, status, skip_reason, due_at,"
        " closed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            purchase_id,
            customer_id,
            touchpoint,
            store,
            status,
            skip_reason,
            to_db(due_at),
            to_db(now) if status == "skipped" else None,
            to_db(now),
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


async def get(conn: Connection, survey_id: int) -> SurveyRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE s.id = ?", (survey_id,))
    return _record(row) if row else None


async def by_purchase(conn: Connection, purchase_id: int) -> SurveyRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE s.purchase_id = ?", (purchase_id,))
    return _record(row) if row else None


def _claim(conn: Connection) -> str:
    """On PostgreSQL, where another instance may decide the same surveys at the same time (the
    leader's dispatch, a customer's /start on another instance): the rows are locked for this
    transaction, and rows another one holds are skipped (it decides them; nobody waits, so two
    transactions never wait on each other)."""
    return " FOR UPDATE OF s SKIP LOCKED" if dialect(conn) == "postgresql" else ""


async def due(conn: Connection, now: datetime, limit: int) -> list[SurveyRecord]:
    """Scheduled surveys whose time has come, oldest first."""
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.status = 'scheduled' AND s.due_at <= ? ORDER BY s.due_at, s.id LIMIT ?{_claim(conn)}",
        (to_db(now), limit),
    )]


async def open_for_customer(conn: Connection, customer_id: int, now: datetime) -> list[SurveyRecord]:
    """This customer's due surveys not sent yet (waiting for a chat, or for the next dispatch)."""
    # "+s.status": not by the status index, which SQLite would pick and then read every
    # customer's surveys awaiting a chat (thousands, on every /start); a customer has a few.
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.customer_id = ? AND +s.status IN ('scheduled', 'awaiting_contact')"
        f" AND s.due_at <= ? ORDER BY s.due_at, s.id{_claim(conn)}",
        (customer_id, to_db(now)),
    )]


async def open_for_customers(conn: Connection, customer_ids: Sequence[int], now: datetime) -> list[SurveyRecord]:
    """open_for_customer for many customers in one query (a program dispatch pass's page)."""
    if not customer_ids:
        return []
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.customer_id IN ({', '.join('?' * len(customer_ids))})"
        " AND +s.status IN ('scheduled', 'awaiting_contact') AND s.due_at <= ? ORDER BY s.due_at, s.id",
        (*customer_ids, to_db(now)),
    )]


async def open_for_token(conn: Connection, token_id: int, now: datetime) -> list[SurveyRecord]:
    """The survey of a start token's order, if it is due and not sent yet."""
    rows = await conn.execute_fetchall(
        f"{_SELECT} WHERE s.purchase_id = (SELECT purchase_id FROM start_tokens WHERE id = ?)"
        f" AND +s.status IN ('scheduled', 'awaiting_contact') AND s.due_at <= ?{_claim(conn)}", (token_id, to_db(now)),
    )
    return [_record(r) for r in rows]


async def awaiting_contact_before(conn: Connection, due_before: datetime, limit: int) -> list[SurveyRecord]:
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.status = 'awaiting_contact' AND s.due_at < ? ORDER BY s.due_at LIMIT ?",
        (to_db(due_before), limit),
    )]


async def dispatch_facts(conn: Connection, customer_id: int) -> tuple[CustomerRecord | None, datetime | None, bool]:
    """What deciding a survey's dispatch reads of its customer, in one statement: the
    customer, when they were last sent a survey, and whether a complaint of theirs is open
    (an open question does not hold back a survey)."""
    row = await fetch_one(
        conn,
        f"{customers._SELECT.replace(' FROM customers', '')},"
        " (SELECT MAX(s.sent_at) FROM surveys s WHERE s.customer_id = customers.id AND s.sent_at IS NOT NULL),"
        " EXISTS (SELECT 1 FROM tickets t WHERE t.customer_id = customers.id AND t.status != 'resolved'"
        " AND t.kind = 'complaint')"
        " FROM customers WHERE id = ?",
        (customer_id,),
    )
    if row is None:
        return None, None, False
    return customers._record(row[:8]), from_db(row[8]), bool(row[9])



async def mark_sent(conn: Connection, survey_id: int, contact_id: int, language: str, now: datetime) -> None:
    before = await rollups.send_before(conn, survey_id)  # the response rate's sends, in this transaction
    await conn.execute(
        "UPDATE surveys SET status = 'sent', sent_at = ?, contact_id = ?, language = ? WHERE id = ?",
        (to_db(now), contact_id, language, survey_id),
    )
    if before is not None:
        await rollups.count_send(conn, before, now)


async def mark_skipped(conn: Connection, survey_id: int, reason: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE surveys SET status = 'skipped', skip_reason = ?, closed_at = ? WHERE id = ?",
        (reason, to_db(now), survey_id),
    )


async def postpone(conn: Connection, survey_id: int, until: datetime) -> None:
    await conn.execute(
        "UPDATE surveys SET status = 'scheduled', first_due_at = COALESCE(first_due_at, due_at), due_at = ? WHERE id = ?",
        (to_db(until), survey_id),
    )


async def mark_awaiting_contact(conn: Connection, survey_id: int) -> None:
    await conn.execute("UPDATE surveys SET status = 'awaiting_contact' WHERE id = ?", (survey_id,))


async def record_score(conn: Connection, survey_id: int, score: int, now: datetime, rule: RollupRule) -> bool:
    """The answer, and its count in the rollups, in the caller's one transaction."""
    cur = await conn.execute(
        "UPDATE surveys SET status = 'answered', score = ?, answered_at = ? WHERE id = ? AND status = 'sent'",
        (score, to_db(now), survey_id),
    )
    if cur.rowcount != 1:
        return False
    await rollups.add_answer(conn, survey_id, now, rule)
    await feedback_rollups.add_answer(conn, survey_id, rule.day(now))  # per journey stage and staff
    return True


async def record_comment(conn: Connection, survey_id: int, comment: str, now: datetime) -> bool:
    cur = await conn.execute(
        "UPDATE surveys SET comment = ?, comment_folded = ?, commented_at = ? WHERE id = ? AND status = 'answered'",
        (comment, fold(comment), to_db(now), survey_id),
    )
    return cur.rowcount == 1


async def expire_sent_before(conn: Connection, sent_before: datetime, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE surveys SET status = 'expired', closed_at = ? WHERE status = 'sent' AND sent_at <= ?",
        (to_db(now), to_db(sent_before)),
    )
    return cur.rowcount


async def unreminded_sent_before(conn: Connection, sent_before: datetime, limit: int) -> list[SurveyRecord]:
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.status = 'sent' AND s.reminded_at IS NULL AND s.sent_at <= ?"
        " ORDER BY s.sent_at LIMIT ?",
        (to_db(sent_before), limit),
    )]


async def mark_reminded(conn: Connection, survey_id: int, now: datetime) -> None:
    await conn.execute("UPDATE surveys SET reminded_at = ? WHERE id = ?", (to_db(now), survey_id))


async def mark_undeliverable(conn: Connection, outbox_ids: list[int], reason: str, now: datetime) -> int:
    """Surveys whose question (these failed outbox rows) never reached the customer: closed
    as skipped, not counted as sent and unanswered, nor against the customer's fatigue."""
    marks = ", ".join("?" * len(outbox_ids))
    which = (f" WHERE status = 'sent' AND reminded_at IS NULL AND id IN (SELECT survey_id FROM outbox WHERE id IN ({marks})"
             " AND survey_id IS NOT NULL AND method = 'send_text')")
    ids = [r[0] for r in await conn.execute_fetchall(f"SELECT id FROM surveys{which}", outbox_ids)]
    if not ids:
        return 0
    tally = await rollups.SendTally(conn, ids).before()  # no longer counted as sent
    cur = await conn.execute(
        "UPDATE surveys SET status = 'skipped', skip_reason = ?, closed_at = ?, sent_at = NULL" + which,
        (UNDELIVERABLE + reason[:200], to_db(now), *outbox_ids),
    )
    await tally.after()
    return cur.rowcount


async def undelivered_count(conn: Connection, start: datetime, end: datetime) -> int:
    row = await fetch_one(
        conn,
        "SELECT COUNT(*) FROM surveys WHERE status = 'skipped' AND closed_at >= ? AND closed_at < ?"
        " AND (skip_reason LIKE ? OR skip_reason IN ('unreachable', 'zns_daily_quota', 'zns_daily_budget')) AND demo = 0",
        (to_db(start), to_db(end), UNDELIVERABLE + "%"),
    )
    return row[0] if row else 0


async def fold_missing_comments(conn: Connection, batch: int = 5000) -> int:
    """Fold a batch of comments stored before the folded column existed; how many it did."""
    rows = await conn.execute_fetchall(
        "SELECT id, comment FROM surveys WHERE comment IS NOT NULL AND comment_folded IS NULL LIMIT ?", (batch,))
    for survey_id, comment in rows:
        await conn.execute("UPDATE surveys SET comment_folded = ? WHERE id = ?", (fold(comment), survey_id))
    return len(rows)


async def sent_by_zns_for_token(conn: Connection, token_id: int) -> list[SurveyRecord]:
    """The unanswered survey of a start token's order that went out as a ZNS template: the chat
    that opens the receipt link (the template's button) gets its question there."""
    rows = await conn.execute_fetchall(
        f"{_SELECT} WHERE s.purchase_id = (SELECT purchase_id FROM start_tokens WHERE id = ?)"
        " AND +s.status = 'sent' AND s.route = 'zns'", (token_id,),
    )
    return [_record(r) for r in rows]


async def move_to_chat(conn: Connection, survey_id: int, from_contact: int, to_contact: int) -> bool:
    """The survey's conversation moves to this chat, once (False if it moved already)."""
    cur = await conn.execute(
        "UPDATE surveys SET contact_id = ? WHERE id = ? AND contact_id = ? AND status = 'sent'",
        (to_contact, survey_id, from_contact),
    )
    return cur.rowcount == 1
