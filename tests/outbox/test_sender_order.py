"""The sender keeps a ticket's messages in order across retries, and a row waits for the row
it was written to follow (issue 15: the topic before the card, the card before the rest)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.channels.telegram.channel import TelegramChannel
from bot.outbox.sender import Sender
from storage import outbox
from storage.db import Database
from tests.conftest import BOT_TOKEN

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)
GROUP, CUSTOMER = -1001234567890, 555001


@pytest.fixture
async def db(tmp_path):
    async with Database(tmp_path / "s.db") as database:
        yield database


@pytest.fixture
async def channel(tg):
    ch = TelegramChannel(BOT_TOKEN, api_base_url=tg.api_root, request_timeout=0.5, per_chat_interval=0.01,
                         group_messages_per_minute=6000, poll_timeout=1)
    await ch.start()
    yield ch
    await ch.close()


async def enqueue(db, chat_id, text, *, ticket_id=None, after_id=None):
    async with db.transaction() as tx:
        if ticket_id is not None:  # the ticket row the outbox rows point to
            await tx.execute(
                "INSERT OR IGNORE INTO contacts (id, channel, platform_user_id, chat_id, language, created_at, last_seen_at)"
                " VALUES (1, 'telegram', '1', '1', 'vi', '2026-11-23T02:00:00Z', '2026-11-23T02:00:00Z')")
            await tx.execute(
                "INSERT OR IGNORE INTO tickets (id, contact_id, source, category, description, tier, priority, status,"
                " created_at, first_response_due_at, resolution_due_at) VALUES (?, 1, 'command', 'other', '', 'regular',"
                " 'normal', 'open', '2026-11-23T02:00:00Z', '2026-11-23T04:00:00Z', '2026-11-25T02:00:00Z')", (ticket_id,))
        return await outbox.enqueue(
            tx, channel="telegram", chat_id=str(chat_id), contact_id=None, method="send_text",
            payload={"text": text, "buttons": []}, now=NOW, ticket_id=ticket_id, after_id=after_id,
        )


def sender(db, channel):
    return Sender(db, {"telegram": channel}, backoff_base=0.2, max_attempts=4)


async def test_a_tickets_messages_keep_their_order_across_a_retry(db, channel, tg):
    tg.fail_next("sendMessage", 500)
    await enqueue(db, GROUP, "card", ticket_id=7)
    await enqueue(db, GROUP, "customer's next message", ticket_id=7)
    await enqueue(db, GROUP, "another ticket's message", ticket_id=8)  # not held by ticket 7
    await sender(db, channel).drain(10)
    assert [m.text for m in tg.sent_messages(GROUP)] == ["another ticket's message", "card", "customer's next message"]


async def test_a_row_waits_for_the_row_it_follows_until_that_one_is_done(db, channel, tg):
    tg.fail_next("sendMessage", 502)
    card = await enqueue(db, GROUP, "card", ticket_id=7)
    await enqueue(db, CUSTOMER, "received", after_id=card)
    await sender(db, channel).drain(10)
    sent = [m.text for m in tg.sent_messages()]
    assert sent == ["card", "received"]
    failed = await enqueue(db, GROUP, "to a group that is gone", ticket_id=9)
    tg.forbid_chat(GROUP)
    await enqueue(db, CUSTOMER, "after a failure", after_id=failed)
    await sender(db, channel).drain(10)
    assert [m.text for m in tg.sent_messages()][-1] == "after a failure"  # done, even if failed
