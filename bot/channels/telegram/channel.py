"""Telegram through python-telegram-bot's Bot: long polling or webhook in, Bot API out.

Updates are parsed from the raw JSON dicts (what the inbox stores), so the same code
serves polling and webhooks. Errors from PTB are mapped to the sender's classes:
a read timeout is Ambiguous (sendMessage has no idempotency key), a connect failure
or 5xx is Transient, 429 is RetryLater.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import os
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

import httpx
import telegram
from telegram import (
    InlineKeyboardButton, InlineKeyboardMarkup, InputFile, KeyboardButton, ReplyKeyboardMarkup, ReplyParameters,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from bot.channels.base import (
    ONE_MESSAGE, SENDER_RATE, Ambiguous, Permanent, RetryLater, TopicsUnavailable, Transient, send_in_parts, split_command, split_text,
    utf16_len,
)
from flows.model import Inbound
from storage.db import Connection

log = logging.getLogger(__name__)

# Opt in to PTB's future behaviour (RetryAfter.retry_after as a timedelta; _seconds()
# reads both), which also silences a deprecation warning on every 429.
os.environ.setdefault("PTB_TIMEDELTA", "1")

ALLOWED_UPDATES = ["message", "callback_query"]
TEXT_LIMIT = 4096  # UTF-16 code units per message (no parse_mode: plain text)
ANONYMOUS_ADMIN_ID = 1087968824  # "GroupAnonymousBot": a group admin posting as the group
# An empty getUpdates answer comes after the long-poll timeout from Telegram, but at once from
# some self-hosted servers and proxies: never ask again sooner than this (no busy loop).
EMPTY_POLL_MIN_INTERVAL = 0.5


class TelegramChannel:
    name = "telegram"
    messages_per_second = SENDER_RATE  # ~30/s for the whole bot: the sender's configured rate
    resend_after_crash = False  # sendMessage has no idempotency key
    delivers_files = True
    resets_after_erasure = False
    proves_identity = True  # a Telegram account
    conversational = True
    photos = "platform"  # file ids: fetched with getFile when an agent opens one
    reply_window = None  # a bot may write to a user who started it at any time

    def __init__(
        self,
        token: str,
        *,
        api_base_url: str,
        request_timeout: float,
        per_chat_interval: float,
        group_messages_per_minute: float,
        poll_timeout: int = 30,
    ) -> None:
        self.poll_timeout = poll_timeout
        self.per_chat_interval = per_chat_interval
        self.group_interval = 60.0 / group_messages_per_minute
        self.username: str | None = None
        self.bot = telegram.Bot(
            token,
            base_url=f"{api_base_url}/bot",
            base_file_url=f"{api_base_url}/file/bot",
            request=HTTPXRequest(
                connection_pool_size=64,
                connect_timeout=request_timeout,
                read_timeout=request_timeout,
                write_timeout=request_timeout,
                pool_timeout=request_timeout,
            ),
            get_updates_request=HTTPXRequest(read_timeout=poll_timeout + 10.0, connect_timeout=request_timeout),
        )

    async def start(self) -> str:
        """Check the token (getMe); returns the bot's username for deep links."""
        await self.bot.initialize()
        self.username = self.bot.username
        return self.username

    async def is_forum(self, chat_id: str) -> bool | None:
        """Whether a group has forum topics (getChat); None when it cannot be told now."""
        try:
            chat = await self.bot.get_chat(int(chat_id))
        except TelegramError as exc:
            log.warning("telegram: could not read the agents' group (%s); forum topics will be tried", exc.message)
            return None
        return bool(chat.is_forum)

    async def close(self) -> None:
        await self.bot.shutdown()

    async def download(self, file_id: str, max_bytes: int) -> bytes | None:
        """A file the bot received (getFile, then its download), or None when Telegram has no
        such file, it is larger than `max_bytes`, or it cannot be fetched now. The file's URL
        holds the bot token: it never leaves this process."""
        try:
            file = await self.bot.get_file(file_id)
            if file.file_size is not None and file.file_size > max_bytes:
                log.info("telegram: a file of %d bytes is over the %d bytes shown", file.file_size, max_bytes)
                return None
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram: could not fetch a file (%s)", exc.message)
            return None
        return data if len(data) <= max_bytes else None

    # --- receiving ------------------------------------------------------------

    def update_id(self, payload: dict[str, Any]) -> str:
        update_id = payload.get("update_id") if isinstance(payload, dict) else None
        if isinstance(update_id, bool) or not isinstance(update_id, int):
            raise ValueError("update_id: missing or not an integer")
        return str(update_id)

    def parse(self, payload: dict[str, Any]) -> Inbound | None:
        if "message" in payload:
            return _parse_message(payload["message"])
        if "callback_query" in payload:
            return _parse_callback(payload["callback_query"])
        return None  # edited messages, channel posts, ...: not ours to handle

    async def poll(self, receive: Callable[[dict[str, Any]], Awaitable[object]]) -> None:
        """Long-poll forever. The offset moves past an update only after `receive` recorded
        it, so a crash or a database error never loses one."""
        offset: int | None = None
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            asked_at = loop.time()
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=self.poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                    read_timeout=self.poll_timeout + 10.0,
                )
                failures = 0
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
                continue
            except Conflict:
                failures += 1
                log.error("telegram: getUpdates conflict (a webhook is set or another instance polls); retrying")
                await asyncio.sleep(min(60.0, 2.0 * failures))
                continue
            except (NetworkError, TelegramError) as exc:
                failures += 1
                log.warning("telegram: getUpdates failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
                continue
            if not updates:
                await asyncio.sleep(max(0.0, asked_at + EMPTY_POLL_MIN_INTERVAL - loop.time()))
                continue
            for update in updates:
                raw = update.to_dict()
                while True:
                    try:
                        await receive(raw)
                        break
                    except Exception:
                        log.exception("telegram: could not record update %s; retrying", update.update_id)
                        await asyncio.sleep(1.0)
                offset = update.update_id + 1

    async def use_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)

    async def use_polling(self) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)

    # --- sending --------------------------------------------------------------

    async def resolve(self, tx: Connection, event: Inbound, payload: dict[str, Any], now: datetime) -> Inbound:
        return event

    def fits(self, text: str, buttons: list[list[dict[str, str]]]) -> bool:
        return len(text) <= ONE_MESSAGE

    def pacing(self, chat_id: str) -> float:
        # Negative ids are groups: ~20 messages a minute; private chats ~1 a second.
        return self.group_interval if chat_id.startswith("-") else self.per_chat_interval

    async def deliver(self, method: str, chat_id: str, payload: dict[str, Any]) -> str | None:
        if method == "send_text" and utf16_len(payload.get("text") or "") > TEXT_LIMIT:
            return await self._deliver_in_parts(chat_id, payload)
        placement: dict[str, Any] = {}
        if payload.get("thread_id"):
            placement["message_thread_id"] = int(payload["thread_id"])
        if payload.get("reply_to"):
            placement["reply_parameters"] = ReplyParameters(int(payload["reply_to"]), allow_sending_without_reply=True)
        try:
            if method == "open_topic":
                return await self._open_topic(chat_id, payload["name"])
            if method == "send_text":
                markup = _keyboard(payload.get("buttons")) or _share_phone(payload.get("share_phone"))
                message = await self.bot.send_message(
                    chat_id=int(chat_id), text=payload["text"], reply_markup=markup, **placement
                )
                return str(message.message_id)
            if method == "send_photo":
                message = await self.bot.send_photo(
                    chat_id=int(chat_id), photo=payload["file_id"], caption=payload.get("text") or None, **placement
                )
                return str(message.message_id)
            if method == "send_photo_file":
                upload = InputFile(base64.b64decode(payload["png_base64"]), filename=payload.get("filename") or "chart.png")
                message = await self.bot.send_photo(
                    chat_id=int(chat_id), photo=upload, caption=payload.get("text") or None, **placement
                )
                return str(message.message_id)
            if method == "send_document":
                upload = InputFile(base64.b64decode(payload["document_base64"]), filename=payload.get("filename") or "data.json")
                message = await self.bot.send_document(
                    chat_id=int(chat_id), document=upload, caption=payload.get("text") or None, **placement
                )
                return str(message.message_id)
            if method == "answer_choice":
                await self.bot.answer_callback_query(payload["choice_id"], text=payload.get("text") or None)
                return None
            if method == "edit_text":
                await self._edit_text(chat_id, payload)
                return payload["message_id"]
        except RetryAfter as exc:
            raise RetryLater(_seconds(exc.retry_after)) from None
        except TimedOut as exc:
            if isinstance(exc.__cause__, (httpx.ConnectTimeout, httpx.PoolTimeout)):
                raise Transient("timed out before the request was sent") from None
            raise Ambiguous("timed out waiting for Telegram's answer; the message may have been sent") from None
        except Forbidden as exc:
            raise Permanent(f"forbidden: {exc.message}") from None
        except BadRequest as exc:
            if "message is not modified" in exc.message.lower():
                return payload.get("message_id")
            raise Permanent(f"bad request: {exc.message}") from None
        except NetworkError as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, httpx.ConnectError):
                raise Transient(exc.message) from None  # a 5xx answer, or never connected
            raise Ambiguous(f"connection broke mid-request: {type(cause).__name__}") from None
        except TelegramError as exc:
            raise Permanent(exc.message) from None
        raise Permanent(f"unknown outbox method {method!r}")

    async def _open_topic(self, chat_id: str, name: str) -> str:
        """A forum topic for a ticket; its thread id. TopicsUnavailable when the group is no
        forum, the bot may not manage topics, or the Bot API server lacks the method
        (self-hosted or older servers answer 404): the desk falls back to replies."""
        try:
            topic = await self.bot.create_forum_topic(chat_id=int(chat_id), name=name[:128])
        except (EndPointNotFound, InvalidToken) as exc:  # PTB maps a 404 to these
            raise TopicsUnavailable(f"Bot API server has no createForumTopic: {exc.message}") from None
        except BadRequest as exc:
            raise TopicsUnavailable(exc.message) from None
        return str(topic.message_thread_id)

    async def _edit_text(self, chat_id: str, payload: dict[str, Any]) -> None:
        """Edit a message. Telegram answers `true` instead of the Message for inline messages and
        some servers answer `true` or `null` always: the edit was made all the same (PTB returns
        True for the first and fails to read the second)."""
        markup = _keyboard(payload.get("buttons"))
        try:
            await self.bot.edit_message_text(
                chat_id=int(chat_id), message_id=int(payload["message_id"]), text=payload["text"], reply_markup=markup,
            )
        except (AttributeError, TypeError):  # only from reading an `ok` answer that is no Message
            log.debug("telegram: editMessageText answered without the message; the edit was made")


    async def _deliver_in_parts(self, chat_id: str, payload: dict[str, Any]) -> str | None:
        """A text over Telegram's limit (a customer's 10,000-character complaint echoed back or
        shown on the agents' card) goes as several messages, in order; the buttons go on the
        last, the reply-to on the first."""
        parts = split_text(payload["text"], TEXT_LIMIT)

        def piece(i: int, part: str) -> dict[str, Any]:
            drop = ({"buttons"} if i < len(parts) - 1 else set()) | ({"reply_to"} if i > 0 else set())
            return {**{k: v for k, v in payload.items() if k not in drop}, "text": part}

        return await send_in_parts(parts, lambda i, part: self.deliver("send_text", chat_id, piece(i, part)))

def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _share_phone(label: Any) -> ReplyKeyboardMarkup | None:
    """Telegram's own phone sharing: the button sends the user's number with their user id."""
    if not isinstance(label, str) or not label:
        return None
    return ReplyKeyboardMarkup([[KeyboardButton(label, request_contact=True)]], one_time_keyboard=True,
                               resize_keyboard=True)


def _keyboard(rows: list[list[dict[str, str]]] | None) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b["label"], callback_data=b["data"]) for b in row] for row in rows]
    )


def _user_fields(user: dict[str, Any]) -> tuple[str, str, str | None]:
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise ValueError("from.id: missing or not an integer")
    name = " ".join(str(user.get(k) or "") for k in ("first_name", "last_name")).strip()
    return str(user["id"]), name, user.get("language_code")


def _chat(chat: Any) -> tuple[str, bool]:
    """(chat id, is a group); channels are not ours to handle."""
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int):
        raise ValueError("chat.id: missing or not an integer")
    kind = chat.get("type")
    if kind not in ("private", "group", "supergroup"):
        raise _NotOurs()
    return str(chat["id"]), kind != "private"


class _NotOurs(Exception):
    pass


def _anonymous(message: dict[str, Any], user: dict[str, Any]) -> bool:
    return "sender_chat" in message or user.get("is_bot") is True or user.get("id") == ANONYMOUS_ADMIN_ID


def _photos(message: dict[str, Any]) -> tuple[str, ...]:
    sizes = message.get("photo")
    if not isinstance(sizes, list) or not sizes:
        return ()
    largest = max(sizes, key=lambda p: (p.get("width", 0) * p.get("height", 0)) if isinstance(p, dict) else 0)
    file_id = largest.get("file_id") if isinstance(largest, dict) else None
    return (file_id,) if isinstance(file_id, str) else ()


def _parse_message(message: Any) -> Inbound | None:
    if not isinstance(message, dict):
        raise ValueError("message: not an object")
    try:
        chat_id, group = _chat(message.get("chat"))
    except _NotOurs:
        return None
    user = message.get("from") if isinstance(message.get("from"), dict) else {}
    user_id, name, language = _user_fields(message.get("from"))
    text = message.get("text") or message.get("caption") or ""
    if not isinstance(text, str):
        raise ValueError("message.text: not a string")
    command, args = split_command(text)
    reply_to = message.get("reply_to_message")
    thread = message.get("message_thread_id") if message.get("is_topic_message") else None
    return Inbound(
        channel="telegram",
        user_id=user_id,
        chat_id=chat_id,
        text=text,
        command=command,
        args=args,
        message_id=str(message.get("message_id")),
        language_code=language,
        name=name,
        photos=_photos(message),
        reply_to_message_id=str(reply_to["message_id"]) if isinstance(reply_to, dict) and "message_id" in reply_to else None,
        thread_id=str(thread) if thread is not None else None,
        group=group,
        anonymous=_anonymous(message, user),
        phone_button=not group,  # a reply keyboard's contact button works in private chats
        **_shared_phone(message, user_id),
    )


def _shared_phone(message: dict[str, Any], user_id: str) -> dict[str, Any]:
    """A shared contact: Telegram puts the account's user_id on it, so a contact whose
    user_id is the sender's is the sender's own number (the share-phone button sends it);
    any other contact card proves nothing."""
    contact = message.get("contact")
    if not isinstance(contact, dict) or not isinstance(contact.get("phone_number"), str):
        return {}
    owner = contact.get("user_id")
    proved = isinstance(owner, int) and not isinstance(owner, bool) and str(owner) == user_id
    return {"phone": contact["phone_number"][:32], "phone_proved": proved}


def _parse_callback(query: Any) -> Inbound | None:
    if not isinstance(query, dict) or not isinstance(query.get("id"), str):
        raise ValueError("callback_query.id: missing or not a string")
    user_id, name, language = _user_fields(query.get("from"))
    message = query.get("message") or {}
    group = False
    chat_id = user_id
    if message:
        try:
            chat_id, group = _chat(message.get("chat"))
        except _NotOurs:
            return None
    data = query.get("data")
    return Inbound(
        channel="telegram",
        user_id=user_id,
        chat_id=chat_id,
        choice=data if isinstance(data, str) else "",
        choice_id=query["id"],
        message_id=str(message.get("message_id")) if message.get("message_id") is not None else None,
        language_code=language,
        name=name,
        group=group,
        anonymous=query["from"].get("id") == ANONYMOUS_ADMIN_ID,
    )
