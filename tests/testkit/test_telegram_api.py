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
    ChatMemberAdministrator,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberOwner,
    ForumTopic,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
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
    MessageHandler,
    filters,
)

from testkit.telegram_api import FakeTelegramServer, UploadedFile

TOKEN = "123456789:AAFakeTokenForTests_abc-XYZ"
USER = 1001
GROUP = -1001234567890
AGENTS = -1009876543210  # the agents' group (a forum in some tests)
LAN, MINH, BOSS = 501, 502, 503  # agents


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


# ------------------------------------------------------------------ groups, members, forums


@pytest.mark.asyncio
async def test_group_chat_and_members(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, members={LAN: "Lan"})
    server.add_member(AGENTS, MINH, "Minh", status="administrator")
    server.add_member(AGENTS, BOSS, "Boss", status="creator")

    chat = await bot.get_chat(AGENTS)
    assert chat.type == "supergroup" and chat.title == "Agents"
    assert not chat.is_forum  # Telegram omits is_forum=false

    lan = await bot.get_chat_member(AGENTS, LAN)
    assert isinstance(lan, ChatMemberMember) and lan.user.first_name == "Lan"
    assert isinstance(await bot.get_chat_member(AGENTS, MINH), ChatMemberAdministrator)
    assert isinstance(await bot.get_chat_member(AGENTS, BOSS), ChatMemberOwner)
    stranger = await bot.get_chat_member(AGENTS, USER)
    assert isinstance(stranger, ChatMemberLeft) and stranger.status == "left"
    me = await bot.get_chat_member(AGENTS, bot.id)
    assert isinstance(me, ChatMemberAdministrator) and me.can_manage_topics
    admins = await bot.get_chat_administrators(AGENTS)
    assert {m.user.id for m in admins} == {bot.id, MINH, BOSS}

    server.remove_member(AGENTS, LAN)
    server.remove_member(AGENTS, MINH, kicked=True)
    assert isinstance(await bot.get_chat_member(AGENTS, LAN), ChatMemberLeft)
    assert isinstance(await bot.get_chat_member(AGENTS, MINH), ChatMemberBanned)
    assert server.member_status(AGENTS, BOSS) == "creator"
    with pytest.raises(ValueError):
        server.add_member(AGENTS, LAN, "Lan", status="owner")

    private = await bot.get_chat(USER)
    assert private.type == "private"

    server.remove_member(AGENTS, bot.id, kicked=True)
    with pytest.raises(Forbidden, match="bot was kicked from the supergroup chat"):
        await bot.send_message(AGENTS, "still here?")


@pytest.mark.asyncio
async def test_forum_topics(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, title="Support", is_forum=True, members={LAN: "Lan"})
    assert (await bot.get_chat(AGENTS)).is_forum is True

    topic = await bot.create_forum_topic(AGENTS, "Order #1042 – An")
    assert isinstance(topic, ForumTopic)
    assert topic.name == "Order #1042 – An" and topic.icon_color == 7322096
    thread = topic.message_thread_id

    msg = await bot.send_message(AGENTS, "New complaint", message_thread_id=thread)
    assert msg.message_thread_id == thread and msg.is_topic_message is True
    # Telegram's quirk: a topic message "replies" to the topic's creation message.
    root = msg.reply_to_message
    assert root is not None and root.message_id == thread
    assert root.forum_topic_created is not None and root.forum_topic_created.name == topic.name
    assert root.from_user is not None and root.from_user.id == bot.id

    await bot.send_message(AGENTS, "in General")
    assert [m.text for m in server.sent_messages(AGENTS, thread_id=thread)] == ["New complaint"]
    assert server.texts(AGENTS) == ["New complaint", "in General"]
    general = server.sent_messages(AGENTS)[1]
    assert general.thread_id is None and "is_topic_message" not in general.message

    with pytest.raises(BadRequest, match="(?i)message thread not found"):
        await bot.send_message(AGENTS, "lost", message_thread_id=9999)

    assert await bot.edit_forum_topic(AGENTS, thread, name="Order #1042 – solved")
    assert server.forum_topics(AGENTS)[thread]["name"] == "Order #1042 – solved"
    with pytest.raises(BadRequest, match="(?i)^TOPIC_NOT_MODIFIED$"):
        await bot.edit_forum_topic(AGENTS, thread, name="Order #1042 – solved")
    assert await bot.close_forum_topic(AGENTS, thread)
    with pytest.raises(BadRequest, match="(?i)^TOPIC_NOT_MODIFIED$"):
        await bot.close_forum_topic(AGENTS, thread)
    assert server.forum_topics(AGENTS)[thread]["is_closed"] is True
    await bot.send_message(AGENTS, "admins may post in closed topics", message_thread_id=thread)
    assert await bot.reopen_forum_topic(AGENTS, thread)
    with pytest.raises(BadRequest, match="(?i)^TOPIC_ID_INVALID$"):
        await bot.close_forum_topic(AGENTS, 9999)

    assert await bot.delete_forum_topic(AGENTS, thread)
    assert server.forum_topics(AGENTS) == {}
    with pytest.raises(BadRequest, match="(?i)message thread not found"):
        await bot.send_message(AGENTS, "gone", message_thread_id=thread)


@pytest.mark.asyncio
async def test_forum_rights(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True)
    thread = server.make_topic(AGENTS, "made by a user")
    await bot.close_forum_topic(AGENTS, thread)

    server.add_member(AGENTS, bot.id, "Feedbot", status="administrator", can_manage_topics=False)
    with pytest.raises(BadRequest, match="(?i)not enough rights to create a topic"):
        await bot.create_forum_topic(AGENTS, "x")
    with pytest.raises(BadRequest, match="(?i)^TOPIC_CLOSED$"):
        await bot.send_message(AGENTS, "closed", message_thread_id=thread)


@pytest.mark.asyncio
async def test_not_a_forum(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS)  # a plain supergroup
    with pytest.raises(BadRequest, match="(?i)^the chat is not a forum$") as info:
        await bot.create_forum_topic(AGENTS, "x")
    assert server.requests[-1].response == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: the chat is not a forum",
    }
    # PTB strips "Bad Request: " and str.capitalize()s the rest (TOPIC_CLOSED -> Topic_closed).
    assert info.value.message == "The chat is not a forum"
    with pytest.raises(BadRequest, match="(?i)not a forum"):
        await bot.create_forum_topic(USER, "x")
    with pytest.raises(BadRequest, match="(?i)not a forum"):
        await bot.close_forum_topic(GROUP, 1)  # unregistered group: plain supergroup
    with pytest.raises(ValueError):
        server.make_topic(AGENTS, "x")


@pytest.mark.asyncio
async def test_disabled_method_answers_404(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True)
    server.disable_method("createForumTopic")

    # PTB maps every 404 to InvalidToken, even on an initialized bot...
    with pytest.raises(InvalidToken, match="^Not Found$"):
        await bot.create_forum_topic(AGENTS, "x")
    # ...only do_api_request turns it into EndPointNotFound once the bot is initialized.
    with pytest.raises(EndPointNotFound, match="createForumTopic"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB suggests bot.create_forum_topic instead
        await bot.do_api_request("createForumTopic", api_kwargs={"chat_id": AGENTS, "name": "x"})
    assert [r.status for r in server.requests_for("createForumTopic")] == [404, 404]
    assert server.requests[-1].response == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found",
    }
    assert server.forum_topics(AGENTS) == {}

    server.enable_method("createForumTopic")
    assert (await bot.create_forum_topic(AGENTS, "x")).name == "x"
    with pytest.raises(ValueError):
        server.disable_method("noSuchMethod")


@pytest.mark.asyncio
async def test_replies_in_groups_and_topics(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True, members={LAN: "Lan"})
    thread = (await bot.create_forum_topic(AGENTS, "Ticket 7")).message_thread_id
    card = await bot.send_message(AGENTS, "Customer An: box broken", message_thread_id=thread)

    # An agent replies to the bot's card: the update carries the full card.
    update = server.make_message_update(
        LAN, "We'll send a new one", chat_id=AGENTS, reply_to_message_id=card.message_id
    )
    message = Update.de_json(update, bot).message
    assert message is not None and message.chat.type == "supergroup"
    assert message.chat.title == "Agents" and message.chat.is_forum is True
    assert message.message_thread_id == thread and message.is_topic_message  # inherited topic
    replied = message.reply_to_message
    assert replied is not None and replied.message_id == card.message_id
    assert replied.text == "Customer An: box broken"
    assert replied.from_user is not None and replied.from_user.id == bot.id
    assert message.from_user is not None and message.from_user.first_name == "Lan"

    # The bot answers with reply_parameters, which PTB sends JSON-encoded in a form field.
    answer = await bot.send_message(
        AGENTS, "noted", reply_parameters=ReplyParameters(message.message_id)
    )
    assert server.requests[-1].params["reply_parameters"] == {"message_id": message.message_id}
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "We'll send a new one"
    assert answer.message_thread_id == thread  # a reply lands in the replied message's topic
    assert answer.reply_to_message.reply_to_message is None  # one level only
    again = await bot.send_message(AGENTS, "ok", reply_to_message_id=card.message_id)
    assert again.reply_to_message is not None
    assert again.reply_to_message.message_id == card.message_id

    with pytest.raises(BadRequest, match="(?i)^message to be replied not found$"):
        await bot.send_message(AGENTS, "x", reply_parameters=ReplyParameters(4242))
    loose = await bot.send_message(
        AGENTS, "x", reply_parameters=ReplyParameters(4242, allow_sending_without_reply=True)
    )
    assert loose.reply_to_message is None
    with pytest.raises(ValueError):
        server.make_message_update(LAN, "x", chat_id=AGENTS, reply_to_message_id=4242)


@pytest.mark.asyncio
async def test_message_builder_in_a_forum_topic(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True, members={LAN: "Lan"})
    thread = (await bot.create_forum_topic(AGENTS, "Ticket 8")).message_thread_id

    update = server.make_message_update(LAN, "on it", chat_id=AGENTS, message_thread_id=thread)
    message = Update.de_json(update, bot).message
    assert message is not None
    assert message.message_thread_id == thread and message.is_topic_message is True
    root = message.reply_to_message  # not a real reply: the topic root, sent by the bot
    assert root is not None and root.forum_topic_created is not None
    assert root.from_user is not None and root.from_user.id == bot.id

    server.topic_root_replies = False
    plain = Update.de_json(
        server.make_message_update(LAN, "x", chat_id=AGENTS, message_thread_id=thread), bot
    ).message
    assert plain is not None and plain.reply_to_message is None and plain.is_topic_message
    with pytest.raises(ValueError, match="message thread not found"):
        server.make_message_update(LAN, "x", chat_id=AGENTS, message_thread_id=9999)

    # Someone who posts in the group is a member of it.
    server.make_message_update(MINH, "hello", first_name="Minh", chat_id=AGENTS)
    member = await bot.get_chat_member(AGENTS, MINH)
    assert isinstance(member, ChatMemberMember) and member.user.first_name == "Minh"
    # The name the fake knows is kept when first_name is not given.
    again = server.make_message_update(MINH, "again", chat_id=AGENTS)
    assert again["message"]["from"]["first_name"] == "Minh"
    assert "message_thread_id" not in again["message"]  # General topic


@pytest.mark.asyncio
async def test_anonymous_admin_channel_and_bot_senders(
    server: FakeTelegramServer, bot: Bot
) -> None:
    server.make_group(AGENTS)
    anon = Update.de_json(
        server.make_message_update(BOSS, "I'll handle it", chat_id=AGENTS, sender_chat=True), bot
    ).message
    assert anon is not None and anon.from_user is not None
    assert anon.from_user.id == 1087968824 and anon.from_user.username == "GroupAnonymousBot"
    assert anon.sender_chat is not None and anon.sender_chat.id == AGENTS
    assert anon.sender_chat.title == "Agents"

    channel = server.make_message_update(BOSS, "news", chat_id=AGENTS, sender_chat=-1005550000)
    assert channel["message"]["from"]["username"] == "Channel_Bot"
    assert channel["message"]["sender_chat"]["type"] == "channel"

    other = server.make_message_update(777, "beep", chat_id=AGENTS, from_is_bot=True)
    assert other["message"]["from"]["is_bot"] is True
    with pytest.raises(ValueError):
        server.make_message_update(USER, "x", sender_chat=True)  # private chat


@pytest.mark.asyncio
async def test_photo_updates_and_known_file_ids(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True)
    thread = (await bot.create_forum_topic(AGENTS, "Ticket 9")).message_thread_id

    update = server.make_message_update(
        USER, "", photo_file_ids="AgACAgUAAxkBAAIBroken-box", caption="/complain box broken"
    )
    message = Update.de_json(update, bot).message
    assert message is not None and message.text is None
    assert message.caption == "/complain box broken"
    assert message.caption_entities[0].type == "bot_command"
    assert 2 <= len(message.photo) <= 3
    largest = max(message.photo, key=lambda size: size.width * size.height)
    assert largest.file_id == "AgACAgUAAxkBAAIBroken-box" and message.photo[-1] is largest
    assert all(size.file_unique_id for size in message.photo)

    # The bot forwards the customer's photo into the agents' topic by file_id.
    sent = await bot.send_photo(
        AGENTS, photo=largest.file_id, caption="from An", message_thread_id=thread
    )
    assert sent.photo[-1].file_id == largest.file_id
    assert sent.photo[-1].file_unique_id == largest.file_unique_id
    assert sent.message_thread_id == thread and sent.is_topic_message
    assert server.sent_messages(AGENTS, thread_id=thread)[0].params["photo"] == largest.file_id

    with pytest.raises(BadRequest, match="(?i)^wrong file identifier/HTTP URL specified$"):
        await bot.send_photo(AGENTS, photo="AgACAgUAAxkBAAI-never-seen")
    await bot.send_photo(USER, photo="https://example.com/p.jpg")  # URLs are fetched

    uploaded = await bot.send_photo(USER, photo=b"\x89PNG")
    await bot.send_photo(AGENTS, photo=uploaded.photo[0].file_id)  # an earlier send's id
    server.register_file_id("AgAC-from-config")
    await bot.send_photo(USER, photo="AgAC-from-config")

    two = server.make_message_update(USER, "pic", photo_file_ids=["small-id", "big-id"])
    assert [p["file_id"] for p in two["message"]["photo"]] == ["small-id", "big-id"]
    assert two["message"]["caption"] == "pic" and "text" not in two["message"]
    with pytest.raises(ValueError):
        server.make_message_update(USER, "x", caption="no photo")


@pytest.mark.asyncio
async def test_callback_in_a_group_topic(server: FakeTelegramServer, bot: Bot) -> None:
    server.make_group(AGENTS, is_forum=True, members={LAN: "Lan"})
    thread = (await bot.create_forum_topic(AGENTS, "Ticket 10")).message_thread_id
    card = await bot.send_message(
        AGENTS, "Take it?", message_thread_id=thread, reply_markup=keyboard("take:10")
    )

    update = server.make_callback_update(
        LAN, "take:10", card.message_id, chat_id=AGENTS, from_name="Lan"
    )
    query = Update.de_json(update, bot).callback_query
    assert query is not None and query.from_user.first_name == "Lan"
    assert query.message is not None and query.message.chat.id == AGENTS
    assert query.message.message_thread_id == thread
    assert query.message.reply_markup == keyboard("take:10")
    assert await bot.answer_callback_query(query.id, text="yours")
    edited = await bot.edit_message_text("Taken by Lan", AGENTS, card.message_id)
    assert not isinstance(edited, bool) and edited.message_thread_id == thread


@pytest.mark.asyncio
async def test_ptb_application_replies_in_the_topic(server: FakeTelegramServer) -> None:
    server.make_group(AGENTS, is_forum=True, members={LAN: "Lan"})
    thread = server.make_topic(AGENTS, "Ticket 11")

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_text("got it")  # PTB fills message_thread_id

    app = Application.builder().token(TOKEN).base_url(server.base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=10)
        try:
            server.push_update(
                server.make_message_update(LAN, "hi", chat_id=AGENTS, message_thread_id=thread)
            )
            [reply] = await server.wait_for_messages(AGENTS, 1, thread_id=thread)
        finally:
            await app.updater.stop()
            await app.stop()
    assert reply.text == "got it" and reply.thread_id == thread


# ------------------------------------------------------------------ files


@pytest.mark.asyncio
async def test_get_file_and_its_download_like_the_bot_api(server: FakeTelegramServer) -> None:
    """getFile gives a file_path; the bytes are at /file/bot<token>/<file_path> (PTB's
    File.download_* builds that URL from base_file_url); unknown ids and paths are refused."""
    server.set_file_content("AgACPhotoOfABox", b"\xff\xd8\xff\xe0 a jpeg")
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=f"{server.api_root}/file/bot") as bot:
        file = await bot.get_file("AgACPhotoOfABox")
        assert file.file_size == len(b"\xff\xd8\xff\xe0 a jpeg") and file.file_path.endswith(".jpg")
        assert "/file/bot" + TOKEN + "/photos/" in file.file_path
        assert bytes(await file.download_as_bytearray()) == b"\xff\xd8\xff\xe0 a jpeg"
        with pytest.raises(BadRequest, match="invalid file_id"):
            await bot.get_file("AgACNeverSeen")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.api_root}/file/bot{TOKEN}/photos/file_99.jpg") as resp:
            assert resp.status == 404
        async with http.get(file.file_path.replace(TOKEN, "123456789:AAWrongToken")) as resp:
            assert resp.status == 404


@pytest.mark.asyncio
async def test_a_customers_photo_is_downloadable_as_a_png_by_default(server: FakeTelegramServer, bot: Bot) -> None:
    update = server.make_message_update(USER, "", photo_file_ids="AgACCustomerPhoto")
    largest = update["message"]["photo"][-1]["file_id"]
    file = await bot.get_file(largest)
    assert file.file_size > 0
    assert file.file_path.startswith(server.api_root) or file.file_path.startswith("http")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.api_root}/file/bot{TOKEN}/{file.file_path.split('/file/bot' + TOKEN + '/')[1]}") as resp:
            assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG\r\n\x1a\n")
