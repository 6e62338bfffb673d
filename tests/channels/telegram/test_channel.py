"""The Telegram channel against Bot API servers that answer differently from api.telegram.org."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import pytest

from bot.channels.telegram.channel import TelegramChannel
from bot.outbox.sender import Sender
from storage import outbox
from storage.db import Database
from tests.conftest import BOT_TOKEN

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
async def channel(tg):
    ch = TelegramChannel(
        BOT_TOKEN, api_base_url=tg.api_root, request_timeout=0.5, per_chat_interval=0.05,
        group_messages_per_minute=600, poll_timeout=30,
    )
    await ch.start()
    yield ch
    await ch.close()


async def test_a_server_that_answers_empty_polls_at_once_is_not_asked_in_a_busy_loop(tg, channel):
    tg.poll_timeout_ignored = True  # getUpdates answers [] at once, whatever `timeout` says
    received: list[dict] = []

    async def receive(raw: dict) -> None:
        received.append(raw)

    task = asyncio.create_task(channel.poll(receive))
    try:
        await asyncio.sleep(2.0)
        polls = len(tg.requests_for("getUpdates"))
        assert 2 <= polls <= 6, polls  # one every 0.5 s at most (it was hundreds in 2 s)
        update = tg.push_update(tg.make_message_update(555001, "xin chào"))
        for _ in range(50):  # an update still arrives within the interval
            if received:
                break
            await asyncio.sleep(0.05)
        assert received and received[0]["update_id"] == update["update_id"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("answer", [True, None])
async def test_edit_answered_with_true_or_null_counts_as_sent_and_logs_no_error(tmp_path, tg, channel, caplog, answer):
    message_id = await channel.deliver("send_text", "555001", {"text": "Trạng thái: chờ nhận", "buttons": []})
    async with Database(tmp_path / "s.db") as db:
        async with db.transaction() as tx:
            await outbox.enqueue(tx, channel="telegram", chat_id="555001", contact_id=None, method="edit_text",
                                 payload={"message_id": message_id, "text": "Trạng thái: đã đóng", "buttons": []}, now=NOW)
        tg.answer_next("editMessageText", answer)
        sender = Sender(db, {"telegram": channel})
        with caplog.at_level(logging.DEBUG):
            await sender.drain(timeout=5)
        row = (await db.fetchall("SELECT status, platform_message_id FROM outbox"))[0]
    assert (row["status"], row["platform_message_id"]) == ("sent", message_id)
    assert tg.message(555001, int(message_id))["text"] == "Trạng thái: đã đóng"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sender.stats["failed"] == 0
