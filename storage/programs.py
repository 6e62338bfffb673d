"""Survey programs' surveys (program_surveys), ideas, and the sends the global per-customer
limit counts (both survey tables)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from storage import feedback_rollups
from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db


@dataclass(frozen=True)
class ProgramSurveyRecord:
    id: int
    program: str
    kind: str
    customer_id: int
    purchase_id: int | None
    ticket_id: int | None
    status: str
    priority: int
    due_at: datetime
    deadline_at: datetime
    contact_id: int | None
    language: str | None
    sent_at: datetime | None
    score: int | None
    choice: str | None
    comment: str | None
    order_id: str | None


_SELECT = (
    "SELECT s.id, s.program, s.kind, s.customer_id, s.purchase_id, s.ticket_id, s.status, s.priority, s.due_at,"
    " s.deadline_at, s.contact_id, s.language, s.sent_at, s.score, s.choice, s.comment, p.order_id"
    " FROM program_surveys s LEFT JOIN purchases p ON p.id = s.purchase_id"
)


def _record(row: Sequence) -> ProgramSurveyRecord:
    (id_, program, kind, customer_id, purchase_id, ticket_id, status, priority, due_at, deadline_at, contact_id,
     language, sent_at, score, choice, comment, order_id) = row
    due, deadline = from_db(due_at), from_db(deadline_at)
    assert due is not None and deadline is not None  # NOT NULL
    return ProgramSurveyRecord(
        id=id_, program=program, kind=kind, customer_id=customer_id, purchase_id=purchase_id, ticket_id=ticket_id,
        status=status, priority=priority, due_at=due, deadline_at=deadline, contact_id=contact_id,
        language=language, sent_at=from_db(sent_at), score=score, choice=choice, comment=comment, order_id=order_id,
    )


async def insert(
    conn: Connection, *, program: str, kind: str, customer_id: int, priority: int, due_at: datetime,
    deadline_at: datetime, now: datetime, purchase_id: int | None = None, ticket_id: int | None = None,
) -> int | None:
    """Schedule one: its id; None when this program already follows that purchase or ticket."""
    cur = await conn.execute(
        "INSERT OR IGNORE INTO program_surveys (program, kind, customer_id, purchase_id, ticket_id, status, priority,"
        " due_at, deadline_at, created_at, demo) VALUES (?, ?, ?, ?, ?, 'scheduled', ?, ?, ?, ?,"
        " (SELECT demo FROM customers WHERE id = ?))",
        (program, kind, customer_id, purchase_id, ticket_id, priority, to_db(due_at), to_db(deadline_at), to_db(now),
         customer_id),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


async def schedule_after_resolved(
    conn: Connection, *, program: str, priority: int, delay_s: int, deadline: Callable[[datetime], datetime],
    since: datetime, now: datetime,
) -> int:
    """A CES program: one survey per complaint resolved since `since` that it does not follow yet
    (due `delay_s` after the resolution), for tickets of a known customer."""
    rows = await conn.execute_fetchall(
        "SELECT t.id, t.customer_id, t.resolved_at FROM tickets t WHERE t.status = 'resolved' AND t.resolved_at >= ?"
        " AND t.kind = 'complaint' AND t.customer_id IS NOT NULL AND t.demo = 0"
        " AND NOT EXISTS (SELECT 1 FROM program_surveys s WHERE s.program = ? AND s.ticket_id = t.id)",
        (to_db(since), program),
    )
    made = 0
    for ticket_id, customer_id, resolved_at in rows:
        resolved = from_db(resolved_at)
        assert resolved is not None
        due = resolved + timedelta(seconds=delay_s)
        made += await insert(conn, program=program, kind="ces", customer_id=customer_id, priority=priority,
                             due_at=due, deadline_at=deadline(due), now=now, ticket_id=ticket_id) is not None
    return made


async def schedule_every(
    conn: Connection, *, program: str, kind: str, priority: int, every_since: datetime, active_since: datetime,
    due_at: datetime, deadline_at: datetime, now: datetime, stores: tuple[str, ...], touchpoints: tuple[str, ...],
) -> int:
    """A periodic program: one survey for each active customer (a purchase since `active_since`,
    at one of the stores / touchpoints if given) this program has not asked since `every_since`."""
    where = ["p.purchased_at >= ?"]
    params: list = [program, kind, priority, to_db(due_at), to_db(deadline_at), to_db(now), to_db(active_since)]
    if stores:
        where.append(f"p.store IN ({', '.join('?' * len(stores))})")
        params += stores
    if touchpoints:
        where.append(f"p.touchpoint IN ({', '.join('?' * len(touchpoints))})")
        params += touchpoints
    params += [program, to_db(every_since)]
    cur = await conn.execute(
        "INSERT INTO program_surveys (program, kind, customer_id, status, priority, due_at, deadline_at, created_at, demo)"
        " SELECT ?, ?, c.id, 'scheduled', ?, ?, ?, ?, c.demo FROM customers c"
        f" WHERE c.opted_out_at IS NULL AND c.demo = 0 AND EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = c.id"
        f" AND {' AND '.join(where)})"
        " AND NOT EXISTS (SELECT 1 FROM program_surveys s WHERE s.customer_id = c.id AND s.program = ? AND s.created_at >= ?)",
        tuple(params),
    )
    return max(cur.rowcount, 0)


async def get(conn: Connection, survey_id: int) -> ProgramSurveyRecord | None:
    row = await fetch_one(conn, f"{_SELECT} WHERE s.id = ?", (survey_id,))
    return _record(row) if row else None


async def due_customers(conn: Connection, now: datetime, limit: int, after: int = 0) -> list[int]:
    """Customers with a scheduled program survey due, in id order from `after` (a pass pages through them)."""
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT customer_id FROM program_surveys WHERE status = 'scheduled' AND due_at <= ? AND customer_id > ?"
        " ORDER BY customer_id LIMIT ?",
        (to_db(now), after, limit),
    )
    return [r[0] for r in rows]


async def due_for_customers(conn: Connection, customer_ids: Sequence[int], now: datetime) -> list[ProgramSurveyRecord]:
    if not customer_ids:
        return []
    marks = ", ".join("?" * len(customer_ids))
    return [_record(r) for r in await conn.execute_fetchall(
        f"{_SELECT} WHERE s.customer_id IN ({marks}) AND +s.status = 'scheduled' AND s.due_at <= ? ORDER BY s.id",
        (*customer_ids, to_db(now)),
    )]


async def sends_since(conn: Connection, customer_ids: Sequence[int], since: datetime) -> dict[int, list[datetime]]:
    """Every question sent to these customers since `since`, on any program or channel: the
    purchase CSAT (`surveys`) and the programs' (`program_surveys`)."""
    if not customer_ids:
        return {}
    marks = ", ".join("?" * len(customer_ids))
    rows = await conn.execute_fetchall(
        f"SELECT customer_id, sent_at FROM surveys WHERE customer_id IN ({marks}) AND sent_at >= ?"
        f" UNION ALL SELECT customer_id, sent_at FROM program_surveys WHERE customer_id IN ({marks}) AND sent_at >= ?",
        (*customer_ids, to_db(since), *customer_ids, to_db(since)),
    )
    sent: dict[int, list[datetime]] = {}
    for customer_id, at in rows:
        parsed = from_db(at)
        if parsed is not None:
            sent.setdefault(customer_id, []).append(parsed)
    return sent


async def nth_latest_send(conn: Connection, customer_id: int, n: int, since: datetime) -> datetime | None:
    """The n-th newest question sent to this customer since `since` (any program), or None when
    fewer were: the global limit is reached until that one is a period old."""
    sent = sorted((await sends_since(conn, [customer_id], since)).get(customer_id, []), reverse=True)
    return sent[n - 1] if len(sent) >= n else None


async def last_of_program(conn: Connection, customer_ids: Sequence[int], program: str) -> dict[int, datetime]:
    """When each customer was last sent this program's question."""
    if not customer_ids:
        return {}
    marks = ", ".join("?" * len(customer_ids))
    rows = await conn.execute_fetchall(
        f"SELECT customer_id, MAX(sent_at) FROM program_surveys WHERE customer_id IN ({marks}) AND program = ?"
        " AND sent_at IS NOT NULL GROUP BY customer_id",
        (*customer_ids, program),
    )
    return {r[0]: at for r in rows if (at := from_db(r[1])) is not None}


async def mark_sent(conn: Connection, survey_id: int, contact_id: int, language: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE program_surveys SET status = 'sent', sent_at = ?, contact_id = ?, language = ? WHERE id = ?",
        (to_db(now), contact_id, language, survey_id),
    )


async def mark_skipped(conn: Connection, survey_ids: Sequence[int], reason: str, now: datetime) -> None:
    if survey_ids:
        await conn.executemany(
            "UPDATE program_surveys SET status = 'skipped', skip_reason = ?, closed_at = ? WHERE id = ?",
            [(reason, to_db(now), i) for i in survey_ids],
        )


async def postpone(conn: Connection, moves: Sequence[tuple[int, datetime]]) -> None:
    if moves:
        await conn.executemany("UPDATE program_surveys SET due_at = ? WHERE id = ?", [(to_db(t), i) for i, t in moves])


async def record_answer(
    conn: Connection, survey_id: int, now: datetime, *, score: int | None = None, choice: str | None = None,
    text: str | None = None,
) -> bool:
    tally = await feedback_rollups.ProgramTally(conn, [survey_id]).before()  # the program rollups, in this transaction
    if text is not None:  # the follow-up (or an ideas program's answer)
        cur = await conn.execute(
            "UPDATE program_surveys SET comment = ?, status = 'answered', answered_at = COALESCE(answered_at, ?)"
            " WHERE id = ? AND status IN ('sent', 'answered')",
            (text, to_db(now), survey_id),
        )
    else:
        cur = await conn.execute(
            "UPDATE program_surveys SET score = ?, choice = ?, status = 'answered', answered_at = ?"
            " WHERE id = ? AND (status = 'sent' OR (status = 'answered' AND choice = 'other' AND comment IS NULL))",
            (score, choice, to_db(now), survey_id),
        )
    if cur.rowcount != 1:
        return False
    await tally.after()
    return True


async def expire_sent_before(conn: Connection, program: str, sent_before: datetime, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE program_surveys SET status = 'expired', closed_at = ? WHERE program = ? AND status = 'sent' AND sent_at <= ?",
        (to_db(now), program, to_db(sent_before)),
    )
    return cur.rowcount


async def skip_too_late(conn: Connection, now: datetime) -> int:
    cur = await conn.execute(
        "UPDATE program_surveys SET status = 'skipped', skip_reason = 'too_late', closed_at = ?"
        " WHERE status = 'scheduled' AND deadline_at < ?",
        (to_db(now), to_db(now)),
    )
    return cur.rowcount


async def open_of_program(conn: Connection, customer_id: int, program: str) -> bool:
    """This customer has one of this program's surveys scheduled or waiting for an answer."""
    return await fetch_one(
        conn, "SELECT 1 FROM program_surveys WHERE customer_id = ? AND program = ? AND status IN ('scheduled', 'sent')"
        " LIMIT 1", (customer_id, program)) is not None


async def opted_out_of(conn: Connection, customer_ids: Sequence[int]) -> set[int]:
    """Which of these customers opted out (or are unknown: erased rows are kept, so none)."""
    if not customer_ids:
        return set()
    rows = await conn.execute_fetchall(
        f"SELECT id FROM customers WHERE id IN ({', '.join('?' * len(customer_ids))}) AND opted_out_at IS NOT NULL",
        tuple(customer_ids))
    return {r[0] for r in rows}


async def with_open_complaint(conn: Connection, customer_ids: Sequence[int]) -> set[int]:
    """Which of these customers have a complaint not resolved yet (as surveys.dispatch_facts asks it, for many)."""
    if not customer_ids:
        return set()
    rows = await conn.execute_fetchall(
        f"SELECT DISTINCT customer_id FROM tickets WHERE customer_id IN ({', '.join('?' * len(customer_ids))})"
        " AND status != 'resolved' AND kind = 'complaint'", tuple(customer_ids))
    return {r[0] for r in rows}


async def spend_12m(conn: Connection, customer_id: int, since: datetime) -> tuple[float, int]:
    row = await fetch_one(
        conn, "SELECT COALESCE(SUM(amount), 0), COUNT(*) FROM purchases WHERE customer_id = ? AND purchased_at >= ?",
        (customer_id, to_db(since)))
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


async def last_ticket_id(conn: Connection) -> int:
    row = await fetch_one(conn, "SELECT COALESCE(MAX(id), 0) FROM tickets")
    return int(row[0]) if row else 0


async def complaints_after(conn: Connection, after_id: int, limit: int) -> list[tuple[int, str, str]]:
    """Complaints opened after this ticket id (not questions, not demo): id, category, description."""
    rows = await conn.execute_fetchall(
        "SELECT id, category, description FROM tickets WHERE id > ? AND kind = 'complaint' AND demo = 0"
        " ORDER BY id LIMIT ?", (after_id, limit))
    return [(r[0], r[1], r[2]) for r in rows]


# --- ideas --------------------------------------------------------------------------------


async def insert_idea(
    conn: Connection, *, topic: str, text: str | None, now: datetime, customer_id: int | None, contact_id: int | None,
    program_survey_id: int | None = None,
) -> int:
    cur = await conn.execute(
        "INSERT INTO ideas (customer_id, contact_id, program_survey_id, topic, text, created_at, demo)"
        " VALUES (?, ?, ?, ?, ?, ?, COALESCE((SELECT demo FROM customers WHERE id = ?), 0))",
        (customer_id, contact_id, program_survey_id, topic, text, to_db(now), customer_id),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid
