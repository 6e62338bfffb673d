"""An update whose transaction PostgreSQL gives up (deadlock_detected, 40P01) is handled again,
once, instead of keeping the error on its inbox row (bot/engine.py, storage/backend.conflicted).

The deadlock is a real one: another connection, as another instance would, locks the survey row
the tap is about to answer and then the tapping contact's row, while the engine's transaction
holds the contact's row and waits for the survey's. The engine's backend waited first, so its
deadlock check (deadlock_timeout after its wait began) finds the cycle and fails it.
"""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import hours

BACKENDS = ("postgresql",)
USER = 556001


async def _survey_question(harness) -> tuple[dict, object]:
    """A linked customer with a survey question sent: (its score buttons, the message)."""
    _, body = await harness.post_purchase()
    token = body["links"]["telegram"].split("start=")[1]
    await harness.customer_says(USER, f"/start {token}")
    harness.clock.advance(hours(3))
    assert await harness.app.dispatcher.dispatch_due() == {"sent": 1}
    question = (await harness.tg.wait_for_messages(USER, 2))[1]
    return question.reply_markup["inline_keyboard"][0], question


async def _waiting_for_a_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"))


@pytest.mark.parametrize("behind", [False, True], ids=["alone", "in-a-savepoint"])
async def test_a_tap_failed_by_a_deadlock_is_handled_again_once(harness, database_url, behind):
    """`behind`: the tap is the second unit of a shared transaction (group commit), after a
    stranger's hello: its savepoint is rolled back, the hello committed."""
    await harness.start()
    buttons, question = await _survey_question(harness)
    survey_id = (await harness.rows("SELECT id FROM surveys"))[0]["id"]
    contact_id = (await harness.rows("SELECT id FROM contacts"))[0]["id"]
    tap = harness.tg.make_callback_update(USER, buttons[3]["callback_data"], question.message_id)

    other = await asyncpg.connect(database_url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT id FROM surveys WHERE id = $1 FOR UPDATE", survey_id)
        hello = harness.tg.make_message_update(USER + 1, "xin chào")
        first = asyncio.create_task(harness.app.engine.receive("telegram", hello)) if behind else None
        handling = asyncio.create_task(harness.app.engine.receive("telegram", tap))
        async with asyncio.timeout(10):  # the engine holds the contact's row and waits for the survey's
            while not await _waiting_for_a_lock(other):
                await asyncio.sleep(0.01)
        # Now the other way round: a cycle. PostgreSQL fails the engine's transaction (it waited first).
        await other.execute("SELECT id FROM contacts WHERE id = $1 FOR UPDATE", contact_id)
        await tx.commit()
        assert await handling is True
        if first is not None:
            assert await first is True
            assert (await harness.rows("SELECT error FROM inbox WHERE update_id = ?", (str(hello["update_id"]),))) == [
                {"error": None}]
    finally:
        await other.close()

    [row] = await harness.rows("SELECT processed_at, error, kind FROM inbox WHERE update_id = ?",
                               (str(tap["update_id"]),))
    assert row["error"] is None and row["processed_at"] and row["kind"] == "choice"
    survey = (await harness.rows("SELECT status, score FROM surveys"))[0]
    assert (survey["status"], survey["score"]) == ("answered", 4)
    # The tap's writes once: one answer to the button, one follow-up, one answer counted.
    methods = [r["method"] for r in await harness.rows("SELECT method FROM outbox ORDER BY id")]
    assert methods.count("answer_choice") == 1
    assert sum(r["answers"] for r in await harness.rows("SELECT answers FROM csat_rollups")) == 1
    followups = [m for m in await harness.tg.wait_for_messages(USER, 3) if "4/5" in m.text]
    await asyncio.sleep(0.3)
    assert len(followups) == 1 and len(harness.tg.sent_messages(USER)) == 3
    assert await harness.app.engine.receive("telegram", tap) is False  # redelivered: recorded already
