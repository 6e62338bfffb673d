"""The fake Bot API, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.fakes.telegram_api import FakeTelegramServer, UploadedFile

TOKEN = "123456789:AAFakeTokenForTests_abc-XYZ"
USER = 1001
GROUP = -1001234567890


def retry_seconds(exc: RetryAfter) -> float:
    # PTB 22 warns when retry_after is read as int; accept both int and timedelta.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def keyboard(data: str = "fb:1") -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data=data)]])


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer(TOKEN) as srv:
        yield srv
        assert srv.internal_errors == []


@pytest_asyncio.fixture
async def bot(server: FakeTelegramServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url) as client:  # initialize() calls getMe
        yield client


# ------------------------------------------------------------------ basics


@pytest.mark.asyncio
async def test_get_me(server: FakeTelegramServer, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == "feedbot_test_bot"
    assert me.is_bot and me.id == 123456789
    assert server.requests[0].method == "getMe" and server.requests[0].ok


@pytest.mark.asyncio
async def test_send_message_with_inline_keyboard_is_recorded(
    server: FakeTelegramServer, bot: Bot
) -> None:
    msg = await bot.send_message(USER, "hello", reply_markup=keyboard("fb:42"))
    second = await bot.send_message(USER, "again")

    assert msg.message_id == 1 and second.message_id == 2
    assert msg.chat.type == "private" and msg.from_user is not None and msg.from_user.is_bot
    assert msg.reply_markup == keyboard("fb:42")
    [sent, _] = server.sent_messages(USER)
    assert sent.params["chat_id"] == USER  # decoded back to int
    assert sent.reply_markup == {
        "inline_keyboard": [[{"text": "Open", "callback_data": "fb:42"}]]
    }
    assert server.texts(USER) == ["hello", "again"]
    assert server.sent_messages(999) == []


@pytest.mark.asyncio
async def test_group_chat_and_thread(server: FakeTelegramServer, bot: Bot) -> None:
    msg = await bot.send_message(GROUP, "hi all", message_thread_id=7)
    assert msg.chat.type == "supergroup"
    assert msg.message_thread_id == 7
    assert server.texts(GROUP) == ["hi all"]


@pytest.mark.asyncio
async def test_numeric_text_stays_a_string(server: FakeTelegramServer, bot: Bot) -> None:
    await bot.send_message(USER, "123")
    await bot.send_message(USER, '{"a": 1}')
    assert server.texts(USER) == ["123", '{"a": 1}']


@pytest.mark.asyncio
async def test_html_is_parsed_like_telegram(server: FakeTelegramServer, bot: Bot) -> None:
    msg = await bot.send_message(USER, "<b>Title</b> &amp; AT&T", parse_mode="HTML")
    assert msg.text == "Title & AT&T"
    assert [(e.type, e.offset, e.length) for e in msg.entities] == [("bold", 0, 5)]
    assert server.texts(USER) == ["<b>Title</b> &amp; AT&T"]  # raw, as the bot sent it
    assert server.sent_messages(USER)[0].rendered_text == "Title & AT&T"

    with pytest.raises(BadRequest, match='(?i)Unsupported start tag "p" at byte offset 0'):
        await bot.send_message(USER, "<p>x</p>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, "price < 100", parse_mode="HTML")
    assert len(server.sent_messages()) == 1


@pytest.mark.asyncio
async def test_bad_requests(server: FakeTelegramServer, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, "   ")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    await bot.send_message(USER, "x" * 4096)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2049)  # UTF-16: every emoji counts 2
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "hi", reply_markup=keyboard("d" * 65))
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message("@nochannel", "hi")
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(USER, "hi", reply_to_message_id=999)
    assert len(server.sent_messages()) == 1
    statuses = [r.status for r in server.requests_for("sendMessage")]
    assert statuses == [400, 400, 200, 400, 400, 400, 400]


@pytest.mark.asyncio
async def test_forbidden_chat(server: FakeTelegramServer, bot: Bot) -> None:
    server.forbid_chat(USER)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "hi")
    assert server.sent_messages() == []


@pytest.mark.asyncio
async def test_send_photo_upload_and_file_id(server: FakeTelegramServer, bot: Bot) -> None:
    uploaded = await bot.send_photo(USER, photo=b"\x89PNG fake bytes", caption="<i>pic</i>",
                                    parse_mode="HTML")
    assert uploaded.caption == "pic" and uploaded.photo
    by_id = await bot.send_photo(USER, photo=uploaded.photo[-1].file_id)
    assert by_id.photo[-1].file_id == uploaded.photo[-1].file_id

    first, second = server.sent_messages(USER)
    assert isinstance(first.params["photo"], UploadedFile)
    assert first.params["photo"].data == b"\x89PNG fake bytes"
    assert second.params["photo"] == uploaded.photo[-1].file_id
    assert server.texts(USER) == ["<i>pic</i>", ""]


@pytest.mark.asyncio
async def test_replies(server: FakeTelegramServer, bot: Bot) -> None:
    update = server.make_message_update(USER, "/start")
    reply = await bot.send_message(USER, "welcome", reply_to_message_id=1)
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.text == "/start"
    assert reply.message_id == 2  # user and bot messages share the chat's id sequence
    assert update["message"]["message_id"] == 1

    loose = await bot.send_message(
        USER, "x", reply_parameters=ReplyParameters(555, allow_sending_without_reply=True)
    )
    assert loose.reply_to_message is None


# ------------------------------------------------------------------ fault injection


@pytest.mark.asyncio
async def test_429_raises_retry_after(server: FakeTelegramServer, bot: Bot) -> None:
    server.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "hi")
    assert retry_seconds(info.value) == 7
    assert server.sent_messages() == []
    assert server.count_429 == 1
    assert server.requests[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    }
    await bot.send_message(USER, "hi")  # only the next call failed
    assert server.texts(USER) == ["hi"]


@pytest.mark.asyncio
async def test_5xx_raise_network_error(server: FakeTelegramServer, bot: Bot) -> None:
    server.fail_next("sendMessage", 500, times=2)
    server.fail_next("sendMessage", 502, html_body=True)
    for _ in range(2):
        with pytest.raises(NetworkError, match="Internal Server Error") as info:
            await bot.send_message(USER, "hi")
        assert not isinstance(info.value, (BadRequest, TimedOut))
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(USER, "hi")
    assert server.sent_messages() == []
    await bot.send_message(USER, "finally")
    assert server.texts(USER) == ["finally"]


@pytest.mark.asyncio
async def test_fail_next_rejects_unknown_method(server: FakeTelegramServer) -> None:
    with pytest.raises(ValueError):
        server.fail_next("send_message", 500)


@pytest.mark.asyncio
async def test_delayed_answer_times_out_but_message_was_sent(
    server: FakeTelegramServer, bot: Bot
) -> None:
    server.delay_next("sendMessage", 5.0)  # stop() cuts the delay short
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "maybe lost", read_timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert server.texts(USER) == ["maybe lost"]
    await bot.send_message(USER, "next")  # only one call was delayed
    assert server.texts(USER) == ["maybe lost", "next"]


@pytest.mark.asyncio
async def test_wrong_token(server: FakeTelegramServer) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("987654321:WRONGtoken", base_url=server.base_url):
            pass
    async with aiohttp.ClientSession() as http:
        async with http.post(server.method_url("getMe", token="987654321:WRONG")) as resp:
            assert resp.status == 401
            assert await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(server.method_url("noSuchMethod")) as resp:
            assert resp.status == 404
            assert await resp.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }


@pytest.mark.asyncio
async def test_plain_json_and_get_requests(server: FakeTelegramServer) -> None:
    async with aiohttp.ClientSession() as http:
        payload = {
            "chat_id": USER,
            "text": "json body",
            "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]},
        }
        async with http.post(server.method_url("sendMessage"), json=payload) as resp:
            body = await resp.json()
            assert resp.status == 200 and body["ok"] is True
            assert body["result"]["reply_markup"] == payload["reply_markup"]
        url = server.method_url("sendmessage")  # method names are case-insensitive
        async with http.get(url, params={"chat_id": str(USER), "text": "via get"}) as resp:
            assert resp.status == 200
    assert server.texts(USER) == ["json body", "via get"]
    assert server.sent_messages(USER)[0].reply_markup == payload["reply_markup"]


# ------------------------------------------------------------------ updates / polling


@pytest.mark.asyncio
async def test_long_poll_returns_pushed_update_and_honours_offset(
    server: FakeTelegramServer, bot: Bot
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await server.wait_for_requests("getUpdates", 1)
    await asyncio.sleep(0.05)
    assert not poll.done()  # it is really waiting
    pushed = server.push_update(server.make_message_update(USER, "/sub https://x.y/feed"))

    updates = await asyncio.wait_for(poll, 1.0)
    assert [u.update_id for u in updates] == [pushed["update_id"]]
    message = updates[0].message
    assert message is not None and message.text == "/sub https://x.y/feed"
    assert message.from_user is not None and message.from_user.language_code == "vi"
    assert message.parse_entities(["bot_command"]) == {message.entities[0]: "/sub"}

    again = await bot.get_updates(timeout=0)  # not confirmed yet
    assert [u.update_id for u in again] == [pushed["update_id"]]
    confirmed = await bot.get_updates(offset=pushed["update_id"] + 1, timeout=0)
    assert confirmed == ()
    assert await bot.get_updates(timeout=0) == ()


@pytest.mark.asyncio
async def test_long_poll_times_out_empty(server: FakeTelegramServer, bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=dt.timedelta(milliseconds=300)) == ()
    assert 0.25 <= time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_second_poller_terminates_the_first(server: FakeTelegramServer, bot: Bot) -> None:
    # A second Bot: PTB's getUpdates connection pool has size 1, so one Bot never overlaps.
    async with Bot(TOKEN, base_url=server.base_url) as other_instance:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await server.wait_for_requests("getUpdates", 1)
        second = asyncio.create_task(other_instance.get_updates(timeout=5))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 1.0)
        server.push_update(server.make_message_update(USER, "hi"))
        assert len(await asyncio.wait_for(second, 1.0)) == 1


@pytest.mark.asyncio
async def test_get_updates_conflicts_with_webhook(server: FakeTelegramServer, bot: Bot) -> None:
    assert await bot.set_webhook(
        "https://example.com/hook", secret_token="s3cr3t", allowed_updates=["message"]
    )
    info = await bot.get_webhook_info()
    assert info.url == "https://example.com/hook" and info.allowed_updates == ("message",)
    assert server.webhook is not None and server.webhook.secret_token == "s3cr3t"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates(timeout=0)
    with pytest.raises(BadRequest, match="(?i)secret token contains unallowed"):
        await bot.set_webhook("https://example.com/hook", secret_token="bad secret!")

    server.push_update(server.make_message_update(USER, "queued"))
    assert (await bot.get_webhook_info()).pending_update_count == 1
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == ()


@pytest.mark.asyncio
async def test_builders_make_valid_updates(server: FakeTelegramServer, bot: Bot) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=keyboard("fb:1"))
    msg_update = server.make_message_update(USER, "hello", first_name="Bình")
    cb_update = server.make_callback_update(USER, "fb:1", sent.message_id)
    assert cb_update["update_id"] == msg_update["update_id"] + 1

    query = Update.de_json(cb_update, bot).callback_query
    assert query is not None and isinstance(query.id, str)
    assert query.data == "fb:1" and query.from_user.first_name == "Bình"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.message.reply_markup == keyboard("fb:1")  # the message the bot sent


@pytest.mark.asyncio
async def test_ptb_application_polls_end_to_end(server: FakeTelegramServer) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None and update.effective_user is not None
        await update.effective_message.reply_text(f"hi {update.effective_user.first_name}")

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        await update.callback_query.answer("ok")
        await update.callback_query.edit_message_text("done")

    app = Application.builder().token(TOKEN).base_url(server.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=10)
        try:
            server.push_update(server.make_message_update(USER, "/start", first_name="Lan"))
            [reply] = await server.wait_for_messages(USER, 1)
            assert reply.text == "hi Lan"
            server.push_update(server.make_callback_update(USER, "x", reply.message_id))
            await server.wait_for_requests("editMessageText", 1)
        finally:
            await app.updater.stop()
            await app.stop()
    assert list(server.callback_answers.values())[0]["text"] == "ok"
    state = server.message(USER, reply.message_id)
    assert state is not None and state["text"] == "done"


# ------------------------------------------------------------------ callbacks / edits


@pytest.mark.asyncio
async def test_callback_answer_and_edits(server: FakeTelegramServer, bot: Bot) -> None:
    sent = await bot.send_message(USER, "pick", reply_markup=keyboard("fb:1"))
    query_id = server.make_callback_update(USER, "fb:1", sent.message_id)["callback_query"]["id"]

    assert await bot.answer_callback_query(query_id, text="ok")
    assert server.callback_answers[query_id]["text"] == "ok"
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id)  # twice
    with pytest.raises(BadRequest, match="(?i)query id is invalid"):
        await bot.answer_callback_query("123")

    edited = await bot.edit_message_text("picked", USER, sent.message_id,
                                         reply_markup=keyboard("fb:2"))
    assert not isinstance(edited, bool) and edited.text == "picked"
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("picked", USER, sent.message_id, reply_markup=keyboard("fb:2"))
    await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=None)
    state = server.message(USER, sent.message_id)
    assert state is not None and "reply_markup" not in state and state["text"] == "picked"
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", USER, 999)


@pytest.mark.asyncio
async def test_commands(server: FakeTelegramServer, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("sub", "Subscribe"), BotCommand("list", "List")])
    await bot.set_my_commands([BotCommand("sub", "Đăng ký")], language_code="vi")
    assert [c.command for c in await bot.get_my_commands()] == ["sub", "list"]
    assert server.commands(language_code="vi") == [{"command": "sub", "description": "Đăng ký"}]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Bad-Name", "x")])
    assert await bot.delete_my_commands()
    assert server.commands() == []


# ------------------------------------------------------------------ flood limits


@pytest.mark.asyncio
async def test_per_chat_limit_and_bot_wide_pause(server: FakeTelegramServer, bot: Bot) -> None:
    server.enforce_limits()  # per chat: 3 messages in any 3 s window
    for i in range(3):
        await bot.send_message(USER, f"m{i}")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "m3")
    assert 1 <= retry_seconds(info.value) <= 3
    assert server.retry_after_until > time.monotonic()
    with pytest.raises(RetryAfter):  # the whole bot is paused, other chats too
        await bot.send_message(USER + 1, "other chat")
    assert server.count_429 == 2
    assert server.texts(USER) == ["m0", "m1", "m2"]


@pytest.mark.asyncio
async def test_global_and_group_limits(server: FakeTelegramServer, bot: Bot) -> None:
    server.enforce_limits(global_per_second=5)
    for chat in range(1, 6):
        await bot.send_message(chat, "x")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(6, "x")
    assert retry_seconds(info.value) == 1

    server.enforce_limits(per_group_per_minute=2, per_chat_burst=100)
    await bot.send_message(GROUP, "a")
    await bot.send_message(GROUP, "b")
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(GROUP, "c")
    assert 59 <= retry_seconds(info.value) <= 60
    assert server.count_429 == 2

    server.disable_limits()
    await bot.send_message(GROUP, "c")


# ------------------------------------------------------------------ waiting helpers


@pytest.mark.asyncio
async def test_wait_for_messages(server: FakeTelegramServer, bot: Bot) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(USER, "one")
        await bot.send_message(USER, "two")

    task = asyncio.create_task(later())
    got = await server.wait_for_messages(USER, 2, timeout=2.0)
    assert [m.text for m in got] == ["one", "two"]
    await task

    with pytest.raises(AssertionError, match="'one'"):
        await server.wait_for_messages(USER, 3, timeout=0.1)
    with pytest.raises(AssertionError, match="deleteWebhook"):
        await server.wait_for_requests("deleteWebhook", 1, timeout=0.05)
