"""The events the shop's other tools can subscribe to, written to the webhook outbox in the
transaction of what caused them (one call at the one place each happens). Nothing is read
or written for an event no active endpoint wants.

Every body is `{"type": ..., "timestamp": ..., "data": {...}}` (Standard Webhooks' payload
structure); the README documents each type's data with an example."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.webhooks.signing import new_msg_id
from flows.tickets import ticket_number
from storage import webhooks
from storage.db import Connection
from storage.timefmt import to_db

SURVEY_ANSWERED = "survey.answered"
SURVEY_COMMENTED = "survey.commented"
COMPLAINT_OPENED = "complaint.opened"
COMPLAINT_RESOLVED = "complaint.resolved"
QUESTION_OPENED = "question.opened"
DIGEST_READY = "digest.ready"
CUSTOMER_ERASED = "customer.erased"
EVENT_TYPES = (
    SURVEY_ANSWERED, SURVEY_COMMENTED, COMPLAINT_OPENED, COMPLAINT_RESOLVED, QUESTION_OPENED, DIGEST_READY,
    CUSTOMER_ERASED,
)
TEST = "webhook.test"  # `feedbot webhooks test`: to one endpoint, whatever it subscribed to


def body(msg_id: str, event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The exact text sent (and signed): minified JSON, Unicode as is. `id` repeats the
    webhook-id header for receivers that cannot read headers (Google Apps Script)."""
    return json.dumps({"id": msg_id, "type": event_type, "timestamp": to_db(now), "data": data}, ensure_ascii=False,
                      separators=(",", ":"), default=str)


async def emit(
    tx: Connection, event_type: str, data: dict[str, Any], now: datetime, *,
    customer_id: int | None = None, contact_id: int | None = None, ticket_id: int | None = None,
) -> str | None:
    """One event for every active endpoint subscribed to it; its webhook-id, or None when
    nobody wants it. `customer_id`/`contact_id`/`ticket_id`: whose data it carries (erasure)."""
    msg_id = new_msg_id()
    written = await webhooks.add_message(
        tx, msg_id=msg_id, event_type=event_type, payload=body(msg_id, event_type, data, now), now=now,
        customer_id=customer_id, contact_id=contact_id, ticket_id=ticket_id)
    return msg_id if written else None


def _customer(f: dict[str, Any]) -> dict[str, Any] | None:
    if f.get("external_id") is None:
        return None
    return {"id": f["external_id"], "name": f["name"], "phone": f["phone"]}


async def survey_answered(tx: Connection, survey_id: int, now: datetime) -> None:
    await _survey(tx, SURVEY_ANSWERED, survey_id, now)


async def survey_commented(tx: Connection, survey_id: int, now: datetime) -> None:
    await _survey(tx, SURVEY_COMMENTED, survey_id, now)


async def _survey(tx: Connection, event_type: str, survey_id: int, now: datetime) -> None:
    if not await webhooks.subscribed(tx, event_type):
        return
    f = await webhooks.survey_facts(tx, survey_id)
    if f is None:
        return
    data = {
        "survey_id": f["id"], "kind": f["kind"], "order_id": f["order_id"], "score": f["score"],
        "comment": f["comment"], "touchpoint": f["touchpoint"], "store": f["store"], "channel": f["channel"],
        "language": f["language"], "answered_at": f["answered_at"], "commented_at": f["commented_at"],
        "order": {"amount": str(f["amount"]), "currency": f["currency"], "purchased_at": f["purchased_at"]},
        "customer": _customer(f), "demo": bool(f["demo"]),
    }
    await emit(tx, event_type, data, now, customer_id=f["customer_id"], contact_id=f["contact_id"])


async def ticket_opened(tx: Connection, ticket_id: int, kind: str, now: datetime) -> None:
    """complaint.opened or question.opened (`kind`: complaint | question)."""
    await _ticket(tx, QUESTION_OPENED if kind == "question" else COMPLAINT_OPENED, ticket_id, now)


async def complaint_resolved(tx: Connection, ticket_id: int, now: datetime) -> None:
    await _ticket(tx, COMPLAINT_RESOLVED, ticket_id, now)


async def _ticket(tx: Connection, event_type: str, ticket_id: int, now: datetime) -> None:
    if not await webhooks.subscribed(tx, event_type):
        return
    f = await webhooks.ticket_facts(tx, ticket_id)
    if f is None:
        return
    data = {
        "ticket_id": f["id"], "number": ticket_number(f["id"], f["kind"]), "kind": f["kind"], "status": f["status"],
        "category": f["category"], "description": f["description"], "source": f["source"],
        "priority": f["priority"], "tier": f["tier"], "order_id": f["order_id"], "survey_id": f["survey_id"],
        "opened_at": f["created_at"], "first_response_at": f["first_response_at"], "resolved_at": f["resolved_at"],
        "assignee": f["assignee_name"], "reopened_count": f["reopened_count"],
        "channel": f["channel"], "contact_name": f["display_name"], "customer": _customer(f), "demo": bool(f["demo"]),
    }
    await emit(tx, event_type, data, now, customer_id=f["customer_id"], contact_id=f["contact_id"], ticket_id=f["id"])


async def digest_ready(tx: Connection, week: str, report: dict[str, Any], now: datetime) -> str | None:
    """The week's figures (the same JSON as `feedbot digest --json`)."""
    if not await webhooks.subscribed(tx, DIGEST_READY):
        return None
    return await emit(tx, DIGEST_READY, {"week": week, "report": report}, now)


async def customer_erased(tx: Connection, subject: str, customer_id: str | None, via: str, now: datetime) -> None:
    """After an erasure: the receivers' cue to erase what they keep of this person.
    `subject`: the shop's customer id or "contact:<n>"; `via`: chat (/forget) or cli."""
    if not await webhooks.subscribed(tx, CUSTOMER_ERASED):
        return
    data = {"subject": subject, "customer_id": customer_id, "via": via, "erased_at": to_db(now)}
    await emit(tx, CUSTOMER_ERASED, data, now)
