"""Telegram webhook mode: registration, secret check, bad bodies, redelivery processed once."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Harness, make_config

SECRET = "webhook-secret-0123456789"
USER = 777001


@pytest.fixture
async def hook(tmp_path, tg, clock):
    config = make_config(
        tmp_path, tg,
        http={"public_url": "http://127.0.0.1"},
        telegram={"mode": "webhook", "webhook_secret": SECRET},
    )
    h = Harness(config, tg, clock)
    await h.start()
    yield h
    await h.close()


async def post(h, body, secret=SECRET, **kw):
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    kwargs = {"data": body, "headers": {**headers, "Content-Type": "application/json"}} if isinstance(body, (str, bytes)) else {"json": body, "headers": headers}
    async with h.http.post(f"{h.url}/webhooks/telegram", **kwargs) as resp:
        return resp.status


async def inbox_count(h):
    return (await h.rows("SELECT COUNT(*) AS n FROM inbox"))[0]["n"]


async def test_webhook_is_registered_with_the_secret(hook, tg):
    calls = tg.requests_for("setWebhook")
    assert calls and calls[-1].params["url"] == "http://127.0.0.1/webhooks/telegram"
    assert calls[-1].params["secret_token"] == SECRET
    assert tg.requests_for("getUpdates") == []  # no polling in webhook mode


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
async def test_missing_or_wrong_secret_is_rejected_and_nothing_recorded(hook, tg, secret):
    assert await post(hook, tg.make_message_update(USER, "hi"), secret=secret) == 401
    assert await inbox_count(hook) == 0


async def test_a_secret_header_that_is_not_utf8_is_rejected_not_a_crash(hook, tg):
    """Header bytes that are not UTF-8 reach the handler as surrogates: given.encode() raised, a 500."""
    body = b'{"update_id": 1}'
    reader, writer = await asyncio.open_connection("127.0.0.1", hook.app.port)
    try:
        writer.write(b"POST /webhooks/telegram HTTP/1.1\r\nHost: x\r\nX-Telegram-Bot-Api-Secret-Token: \xff\xfe\r\n"
                     b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        assert (await reader.readline()).split()[1] == b"401"
    finally:
        writer.close()
    assert await inbox_count(hook) == 0


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"message": {}}', '{"update_id": "12"}', b"\xff\xfe"])
async def test_malformed_bodies_are_400_and_nothing_recorded(hook, body):
    assert await post(hook, body) == 400
    assert await inbox_count(hook) == 0


async def test_redelivered_update_is_processed_once(hook, tg):
    update = tg.make_message_update(USER, "xin chào")
    for _ in range(3):
        assert await post(hook, update) == 200
    await tg.wait_for_messages(USER, 1)
    await asyncio.sleep(0.3)
    assert len(tg.sent_messages(USER)) == 1
    assert await inbox_count(hook) == 1


async def test_concurrent_redeliveries_are_processed_once(hook, tg):
    update = tg.make_message_update(USER, "xin chào")
    statuses = await asyncio.gather(*(post(hook, update) for _ in range(5)))
    assert statuses == [200] * 5
    await tg.wait_for_messages(USER, 1)
    await asyncio.sleep(0.3)
    assert len(tg.sent_messages(USER)) == 1
    assert await inbox_count(hook) == 1


async def test_a_broken_update_is_kept_with_its_error_and_the_bot_goes_on(hook, tg):
    broken = {"update_id": 5, "message": {"message_id": 1, "chat": {"id": USER, "type": "private"}, "text": "no sender"}}
    assert await post(hook, broken) == 200  # acknowledged: Telegram must not redeliver it forever
    row = (await hook.rows("SELECT processed_at, error FROM inbox"))[0]
    assert row["processed_at"] and "from.id" in row["error"]
    assert await post(hook, tg.make_message_update(USER, "still there?")) == 200
    await tg.wait_for_messages(USER, 1)


async def test_survey_answered_through_the_webhook(hook, tg):
    _, body = await hook.post_purchase()
    token = body["links"]["telegram"].split("start=")[1]
    assert await post(hook, tg.make_message_update(USER, f"/start {token}")) == 200
    hook.clock.advance(__import__("datetime").timedelta(hours=3))
    await hook.app.dispatcher.dispatch_due()
    question = (await tg.wait_for_messages(USER, 2))[1]
    data = question.reply_markup["inline_keyboard"][0][1]["callback_data"]
    assert await post(hook, tg.make_callback_update(USER, data, question.message_id)) == 200
    assert await post(hook, tg.make_message_update(USER, "Nhân viên giao hàng thái độ chưa tốt")) == 200
    survey = (await hook.rows("SELECT score, comment, status FROM surveys"))[0]
    assert survey == {"score": 2, "comment": "Nhân viên giao hàng thái độ chưa tốt", "status": "answered"}
    followup = (await tg.wait_for_messages(USER, 3))[2]
    assert "Chuyện gì đã xảy ra" in followup.text
