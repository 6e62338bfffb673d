"""In-process fake of the Telegram Bot API, for tests.

It speaks the same HTTP dialect as ``api.telegram.org`` closely enough that
``telegram.Bot(token, base_url=server.base_url)`` (python-telegram-bot 22) works unchanged:

* routes ``/bot<token>/<method>`` (POST or GET, method names case-insensitive like Telegram),
* parameters from the query string, ``application/x-www-form-urlencoded``,
  ``multipart/form-data`` (file uploads) or a plain JSON body; form values that are not
  string-typed parameters are JSON-decoded, because that is how PTB (and Telegram) encode
  nested values and numbers,
* answers ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code": ..., "description": ...}`` with the same HTTP status and
  the same descriptions Telegram uses.

Everything is recorded (``requests``, ``sent_messages()``), users can be simulated
(``push_update`` + ``make_*_update``) and faults injected (``fail_next``, ``delay_next``,
``forbid_chat``, ``enforce_limits``, ``disable_method``).  All state lives on the instance.

Chats: a positive id is a private chat with that user; a negative id is a supergroup.
``make_group`` registers one with a title, members and optionally forum topics
(``createForumTopic`` ...); an unregistered negative id behaves as a plain (non-forum)
supergroup titled "Test group <id>" where the bot is an administrator.

Forum quirks reproduced on purpose, because real bots trip over them:

* a message in a topic carries ``message_thread_id`` + ``is_topic_message`` and, when it is
  not an explicit reply, a ``reply_to_message`` that is the topic's creation service message
  (``forum_topic_created``, sent *by whoever created the topic*, often the bot itself);
  set ``server.topic_root_replies = False`` to drop that,
* a reply to a topic message lands in that topic even without ``message_thread_id``.

Files: ``getFile`` answers a File with a ``file_path`` for every photo or document the fake
knows (a customer's photo, one the bot sent, ``register_file_id``); the bytes are then served
at ``/file/bot<token>/<file_path>`` as on ``api.telegram.org`` (``application/octet-stream``;
404 for an unknown path or a wrong token). A photo's bytes are a small PNG made from its
file_id unless ``set_file_content`` gave others; ``getFile`` refuses files over 20 MB like
Telegram ("Bad Request: file is too big").
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import math
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from aiohttp import web

JSONDict = dict[str, Any]

__all__ = [
    "FakeTelegramServer",
    "RecordedRequest",
    "SentMessage",
    "UploadedFile",
    "WebhookConfig",
    "parse_telegram_html",
]

# --------------------------------------------------------------------------------------------
# Telegram's own limits and texts
# --------------------------------------------------------------------------------------------

MAX_TEXT_LENGTH: Final = 4096  # UTF-16 code units, counted after entity parsing
MAX_CAPTION_LENGTH: Final = 1024
MAX_CALLBACK_DATA_BYTES: Final = 64

NOT_MODIFIED: Final = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a content and reply markup of the current content and reply "
    "markup of the message"
)
QUERY_INVALID: Final = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
GET_UPDATES_WEBHOOK_CONFLICT: Final = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
GET_UPDATES_TERMINATED: Final = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
NOT_A_FORUM: Final = "Bad Request: the chat is not a forum"
THREAD_NOT_FOUND: Final = "Bad Request: message thread not found"
REPLY_NOT_FOUND: Final = "Bad Request: message to be replied not found"
WRONG_FILE_ID: Final = "Bad Request: wrong file identifier/HTTP URL specified"

# Senders Telegram substitutes for anonymous group admins and for posts made as a channel.
GROUP_ANONYMOUS_BOT: Final[dict[str, Any]] = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
CHANNEL_BOT: Final[dict[str, Any]] = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
DEFAULT_TOPIC_COLOR: Final = 7322096  # 0x6FB9F0, what Telegram picks when none is given
MAX_TOPIC_NAME_LENGTH: Final = 128
MEMBER_STATUSES: Final = frozenset({"member", "administrator", "creator", "left", "kicked"})
# Sizes of a photo a user sends (Telegram keeps the aspect ratio; these are 4:3).
_USER_PHOTO_SIZES: Final = ((90, 67), (320, 240), (1280, 960))

_STATUS_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Parameters whose form value is always a plain string.  Everything else is JSON-decoded
# when possible: PTB sends ints/bools/objects JSON-dumped but strings raw, so "123" as `text`
# must stay a string while "123" as `chat_id` must become an int.
_STRING_PARAMS: Final = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "url",
        "secret_token",
        "callback_query_id",
        "inline_message_id",
        "photo",
        "language_code",
        "business_connection_id",
        "message_effect_id",
        "ip_address",
        "description",
        "short_description",
        "name",
        "title",
        "action",
        "certificate",
        "icon_custom_emoji_id",
        "custom_title",
    }
)

# Update types that Telegram only delivers when explicitly listed in allowed_updates.
_OPT_IN_UPDATE_TYPES: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
_MESSAGE_UPDATE_TYPES: Final = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
)
_INLINE_BUTTON_ACTIONS: Final = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_SEND_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
_COMMAND_RE: Final = re.compile(r"[a-z0-9_]{1,32}")
_SECRET_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,256}")
_TOKEN_RE: Final = re.compile(r"\d+:[A-Za-z0-9_-]+")
_PATH_RE: Final = re.compile(r"/bot([^/]+)/([^/]*)")
_FILE_PATH_RE: Final = re.compile(r"/file/bot([^/]+)/(.+)")
GET_FILE_MAX_BYTES: Final = 20 * 1024 * 1024  # getFile's limit for bots on api.telegram.org


def placeholder_png(seed: str, size: int = 64) -> bytes:
    """A small solid-colour PNG whose colour comes from `seed` (stands in for a photo's bytes)."""
    import struct

    tag = zlib.crc32(seed.encode())
    rgb = bytes(((tag >> 16) & 0xFF, (tag >> 8) & 0xFF, tag & 0xFF))
    raw = b"".join(b"\x00" + rgb * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")

_NGINX_PAGE: Final = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji usually counts 2)."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A file that arrived as a multipart part (e.g. ``send_photo(photo=b"...")``)."""

    field_name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    """One call that reached the server (wrong token and unknown methods included)."""

    method: str  # canonical name ("sendMessage") when known, else as requested
    params: JSONDict  # decoded: numbers are ints, nested JSON is dicts/lists
    time: float  # time.monotonic() at arrival
    http_method: str = "POST"
    status: int | None = None  # HTTP status answered; None while still in flight
    response: JSONDict | None = None  # JSON body answered (None for raw HTML faults)

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class SentMessage:
    """A sendMessage/sendPhoto/sendDocument call that succeeded."""

    method: str
    chat_id: int
    message_id: int
    params: JSONDict  # what the bot sent, decoded
    message: JSONDict  # the Message object returned to the bot
    time: float  # time.monotonic() when processed

    @property
    def text(self) -> str | None:
        """Text (or caption) exactly as the bot sent it, markup included."""
        value = self.params.get("text", self.params.get("caption"))
        return None if value is None else str(value)

    @property
    def rendered_text(self) -> str | None:
        """Text (or caption) as Telegram shows it, i.e. after HTML parsing."""
        value = self.message.get("text", self.message.get("caption"))
        return None if value is None else str(value)

    @property
    def reply_markup(self) -> JSONDict | None:
        markup = self.params.get("reply_markup")
        return markup if isinstance(markup, dict) else None

    @property
    def thread_id(self) -> int | None:
        """The forum topic / thread the message landed in (None for none)."""
        value = self.message.get("message_thread_id")
        return value if isinstance(value, int) else None

    @property
    def reply_to_message_id(self) -> int | None:
        """Id of the message it replies to, as Telegram answered it (topic roots included)."""
        reply = self.message.get("reply_to_message")
        return reply.get("message_id") if isinstance(reply, dict) else None


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None
    max_connections: int


# --------------------------------------------------------------------------------------------
# Telegram-flavoured HTML parsing (mirrors tdlib's parser and its error texts)
# --------------------------------------------------------------------------------------------


class HtmlParseError(ValueError):
    """Raised with the text that follows "Bad Request: can't parse entities: "."""


_HTML_TAGS: Final[dict[str, str]] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED_ENTITIES: Final = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE: Final = re.compile(r"&(?:#([0-9]+)|#[xX]([0-9a-fA-F]+)|([a-zA-Z]+));")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the output text
    language: str | None = None


def _parse_attributes(source: str, pos: int) -> tuple[dict[str, str], int] | None:
    """Parses attributes from `pos` up to '>'; returns (attrs, index of '>') or None."""
    attrs: dict[str, str] = {}
    n = len(source)
    while True:
        while pos < n and source[pos].isspace():
            pos += 1
        if pos >= n:
            return None
        if source[pos] == ">":
            return attrs, pos
        start = pos
        while pos < n and not source[pos].isspace() and source[pos] not in "=>":
            pos += 1
        name = source[start:pos].lower()
        while pos < n and source[pos].isspace():
            pos += 1
        value = ""
        if pos < n and source[pos] == "=":
            pos += 1
            while pos < n and source[pos].isspace():
                pos += 1
            if pos < n and source[pos] in "'\"":
                end = source.find(source[pos], pos + 1)
                if end == -1:
                    return None
                value = source[pos + 1 : end]
                pos = end + 1
            else:
                start = pos
                while pos < n and not source[pos].isspace() and source[pos] != ">":
                    pos += 1
                value = source[start:pos]
        if name:
            attrs[name] = _decode_html_entities(value)


def _decode_html_entities(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        decoded = _decode_entity_match(m)
        return m.group(0) if decoded is None else decoded

    return _HTML_ENTITY_RE.sub(repl, text)


def _decode_entity_match(m: re.Match[str]) -> str | None:
    if m.group(3) is not None:
        return _HTML_NAMED_ENTITIES.get(m.group(3))
    code = int(m.group(1)) if m.group(1) is not None else int(m.group(2), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def parse_telegram_html(source: str) -> tuple[str, list[JSONDict]]:
    """Returns (plain text, entities) like Telegram does for parse_mode=HTML.

    Like tdlib, every '<' starts a tag (so "a < b" is an error) while an '&' that is not a
    known entity is kept literally.
    """
    out: list[str] = []
    out_len = 0
    stack: list[_OpenTag] = []
    entities: list[JSONDict] = []
    i, n = 0, len(source)

    def byte_offset(pos: int) -> int:
        return len(source[:pos].encode("utf-8"))

    while i < n:
        ch = source[i]
        if ch == "&":
            m = _HTML_ENTITY_RE.match(source, i)
            decoded = _decode_entity_match(m) if m else None
            if m is not None and decoded is not None:
                out.append(decoded)
                out_len += utf16_len(decoded)
                i = m.end()
                continue
        if ch != "<":
            out.append(ch)
            out_len += utf16_len(ch)
            i += 1
            continue

        begin = i
        if i + 1 < n and source[i + 1] == "/":
            close = source.find(">", i)
            if close == -1:
                raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(begin)}")
            name = source[i + 2 : close].strip().lower()
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(begin)}")
            tag = stack.pop()
            if name != tag.name:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(begin)}, "
                    f'expected "</{tag.name}>", found "</{name}>"'
                )
            entity = _entity_for(tag, out_len - tag.start, stack)
            if entity is not None:
                entities.append(entity)
            i = close + 1
            continue

        j = i + 1
        while j < n and not source[j].isspace() and source[j] != ">":
            j += 1
        name = source[i + 1 : j].lower()
        if name not in _HTML_TAGS:
            raise HtmlParseError(
                f'Unsupported start tag "{name}" at byte offset {byte_offset(begin)}'
            )
        parsed = _parse_attributes(source, j)
        if parsed is None:
            raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(begin)}")
        attrs, close = parsed
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset(begin)}'
            )
        stack.append(_OpenTag(name=name, attrs=attrs, start=out_len))
        i = close + 1

    if stack:
        raise HtmlParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"'
        )
    # Telegram lists entities by offset, outer (longer) entity first.
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _entity_for(tag: _OpenTag, length: int, stack: list[_OpenTag]) -> JSONDict | None:
    css_class = tag.attrs.get("class", "")
    if tag.name == "code" and stack and stack[-1].name == "pre":
        # <pre><code class="language-x"> is one pre entity with a language, not two entities.
        if css_class.startswith("language-"):
            stack[-1].language = css_class[len("language-") :]
            return None
    if length <= 0:
        return None  # Telegram drops empty entities
    entity: JSONDict = {"offset": tag.start, "length": length, "type": _HTML_TAGS[tag.name]}
    if tag.name == "a":
        url = tag.attrs.get("href", "")
        if not url:
            return None
        entity["url"] = url
    elif tag.name == "pre" and tag.language:
        entity["language"] = tag.language
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif tag.name == "tg-emoji":
        entity["custom_emoji_id"] = tag.attrs.get("emoji-id", "")
    return entity


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


class _ApiError(Exception):
    """An error answer: HTTP status + Telegram description (+ optional `parameters`)."""

    def __init__(
        self, status: int, description: str, parameters: JSONDict | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


def _too_many_requests(retry_after: int) -> _ApiError:
    return _ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: int | None
    description: str | None
    html_body: bool


@dataclass
class _Delay:
    seconds: float
    remaining: int


@dataclass
class _Result:
    value: Any
    remaining: int


@dataclass
class _Member:
    name: str
    status: str  # one of MEMBER_STATUSES
    is_bot: bool = False
    can_manage_topics: bool = True  # only meaningful for administrators


@dataclass
class _Topic:
    thread_id: int  # = message_id of its forum_topic_created service message
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    is_closed: bool = False


@dataclass
class _Group:
    chat_id: int
    title: str
    is_forum: bool = False
    members: dict[int, _Member] = field(default_factory=dict)
    topics: dict[int, _Topic] = field(default_factory=dict)


@dataclass(frozen=True)
class _Limits:
    global_per_second: int
    per_chat_per_second: float
    per_chat_burst: int
    per_group_per_minute: int

    @property
    def per_chat_window(self) -> float:
        # e.g. burst 3 at 1 msg/s -> at most 3 messages in any 3 s window
        return self.per_chat_burst / self.per_chat_per_second


@dataclass
class _Call:
    """What a method handler gets."""

    method: str
    params: JSONDict
    time: float


@dataclass
class _Answer:
    status: int
    body: JSONDict | None
    raw: str | None = None  # non-JSON body (gateway HTML page)


@dataclass(frozen=True)
class _Described:
    """A success result that Telegram answers with an extra top-level "description"."""

    result: Any
    description: str


Handler = Callable[[_Call], Any]


def _decode_form_value(name: str, value: str) -> Any:
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel"


def _normalize_json_value(name: str, value: Any) -> Any:
    # JSON bodies are already typed, but some clients still JSON-encode nested objects.
    if name in _STRING_PARAMS:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) or value is None else str(value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _json_copy(value: Any) -> Any:
    return copy.deepcopy(value)


def _update_type(update: JSONDict) -> str | None:
    return next((key for key in update if key != "update_id"), None)


def _without_reply(message: JSONDict) -> JSONDict:
    """A copy fit to be a reply_to_message: Telegram nests only one level."""
    reply = _json_copy(message)
    reply.pop("reply_to_message", None)
    return reply


def _command_entities(text: str) -> list[JSONDict]:
    if not text.startswith("/") or not text.strip():
        return []
    command = text.split(maxsplit=1)[0]
    return [{"offset": 0, "length": utf16_len(command), "type": "bot_command"}]


def _file_unique_id(file_id: str) -> str:
    # Stable per file, like Telegram's (the same file keeps it across re-sends).
    return f"AQAD{zlib.crc32(file_id.encode()) & 0xFFFFFFFF:08x}"


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeTelegramServer:
    """A fake ``api.telegram.org`` on 127.0.0.1:<random port>.

    Use ``async with FakeTelegramServer(token) as server:`` (or ``start()`` / ``stop()``) and
    pass ``server.base_url`` as ``telegram.Bot(..., base_url=...)``.
    """

    def __init__(self, token: str, bot_username: str = "feedbot_test_bot") -> None:
        self.token = token
        self.bot_username = bot_username
        bot_id = _as_int(token.split(":", 1)[0])
        self.bot_user: JSONDict = {
            "id": bot_id if bot_id is not None and bot_id > 0 else 7_000_000_001,
            "is_bot": True,
            "first_name": "Feedbot Test",
            "username": bot_username,
        }

        self.requests: list[RecordedRequest] = []
        self.count_429 = 0  # every 429 answered (limits and fail_next alike)
        self.retry_after_until = 0.0  # time.monotonic() until which every send gets 429
        self.callback_answers: dict[str, JSONDict] = {}  # callback_query_id -> answer params
        self.webhook: WebhookConfig | None = None
        self.internal_errors: list[BaseException] = []  # bugs in the fake itself
        # Topic messages that are not explicit replies "reply" to the topic's creation message,
        # as on Telegram.  False drops that reply_to_message (explicit replies are kept).
        self.topic_root_replies = True

        self._sent: list[SentMessage] = []
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._last_message_id: dict[int, int] = {}
        self._users: dict[int, JSONDict] = {}
        self._forbidden: set[int] = set()
        self._callbacks: dict[str, bool] = {}  # callback_query_id -> answered?
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._groups: dict[int, _Group] = {}
        self._photos: dict[str, list[JSONDict]] = {}  # every known file_id -> its PhotoSizes
        self._documents: dict[str, JSONDict] = {}  # file_id -> Document of every document sent
        self._disabled: set[str] = set()  # canonical method names answering 404
        self._file_contents: dict[str, bytes] = {}  # file_id -> bytes (set_file_content)
        self._file_paths: dict[str, str] = {}  # file_path -> file_id, given out by getFile

        self._updates: deque[JSONDict] = deque()
        self._next_update_id = 100_000_001
        self._allowed_updates: list[str] = []  # [] = Telegram's default set
        self._poll_generation = 0
        self._file_counter = 0
        self._callback_counter = 0

        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._results: dict[str, deque[_Result]] = {}
        # getUpdates answers at once, ignoring `timeout` (some self-hosted servers and proxies).
        self.poll_timeout_ignored = False
        self._limits: _Limits | None = None
        self._global_window: deque[float] = deque()
        self._chat_windows: dict[int, deque[float]] = {}
        self._group_windows: dict[int, deque[float]] = {}

        # Swapped for a fresh Event on every change, so waiters never miss a wake-up.
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in {
                "getMe": self._get_me,
                "sendMessage": self._send_message,
                "sendPhoto": self._send_photo,
                "sendDocument": self._send_document,
                "sendChatAction": self._send_chat_action,
                "answerCallbackQuery": self._answer_callback_query,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getMyCommands": self._get_my_commands,
                "getChat": self._get_chat,
                "getFile": self._get_file,
                "getChatMember": self._get_chat_member,
                "getChatAdministrators": self._get_chat_administrators,
                "createForumTopic": self._create_forum_topic,
                "editForumTopic": self._edit_forum_topic,
                "closeForumTopic": self._close_forum_topic,
                "reopenForumTopic": self._reopen_forum_topic,
                "deleteForumTopic": self._delete_forum_topic,
            }.items()
        }

    # ---------------------------------------------------------------- lifecycle / addresses

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # Short shutdown timeout: in-flight long polls / delays are released by _stopping.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._stopping.set()
        self._notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> FakeTelegramServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def api_root(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeTelegramServer is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """PTB's ``base_url``: PTB appends the token, then ``/<method>``."""
        return f"{self.api_root}/bot"

    def method_url(self, method: str, token: str | None = None) -> str:
        """Full URL of a method, for tests calling the API by hand."""
        return f"{self.api_root}/bot{self.token if token is None else token}/{method}"

    # ---------------------------------------------------------------- recording queries

    def sent_messages(
        self, chat_id: int | None = None, thread_id: int | None = None
    ) -> list[SentMessage]:
        """Successful sendMessage/sendPhoto/sendDocument calls, in order; optionally only one topic's."""
        return [
            m
            for m in self._sent
            if (chat_id is None or m.chat_id == chat_id)
            and (thread_id is None or m.thread_id == thread_id)
        ]

    def texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        """Raw text/caption of each message sent to the chat ("" for a captionless photo)."""
        return [m.text or "" for m in self.sent_messages(chat_id, thread_id)]

    def requests_for(self, method: str) -> list[RecordedRequest]:
        canonical = self._canonical(method)
        return [r for r in self.requests if r.method == canonical]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Current state of a message (after edits), or None if unknown/deleted."""
        stored = self._messages.get((chat_id, message_id))
        return _json_copy(stored) if stored is not None else None

    def commands(self, scope: JSONDict | None = None, language_code: str = "") -> list[JSONDict]:
        return _json_copy(self._commands.get(self._commands_key(scope, language_code), []))

    async def wait_for_messages(
        self, chat_id: int, count: int, timeout: float = 5.0, thread_id: int | None = None
    ) -> list[SentMessage]:
        def got() -> list[SentMessage]:
            return self.sent_messages(chat_id, thread_id)

        try:
            await self._wait_until(lambda: len(got()) >= count, timeout)
        except TimeoutError:
            sent = [(m.chat_id, m.thread_id, m.text) for m in self._sent]
            where = f"chat {chat_id}" + ("" if thread_id is None else f" thread {thread_id}")
            raise AssertionError(
                f"expected >= {count} messages to {where} within {timeout}s, "
                f"got {len(got())}; all sent (chat_id, thread_id, text): {sent}"
            ) from None
        return got()

    async def wait_for_requests(
        self, method: str, count: int, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        try:
            await self._wait_until(lambda: len(self.requests_for(method)) >= count, timeout)
        except TimeoutError:
            seen = [(r.method, r.status) for r in self.requests]
            raise AssertionError(
                f"expected >= {count} {method} requests within {timeout}s, "
                f"got {len(self.requests_for(method))}; all requests (method, status): {seen}"
            ) from None
        return self.requests_for(method)

    async def _wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can eat a cancel
                    await changed.wait()
            except TimeoutError:
                pass

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ---------------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
        html_body: bool = False,
    ) -> None:
        """The next `times` calls of `method` answer `status` without being processed.

        429 answers carry ``parameters.retry_after`` (default 1 s).  ``html_body=True`` answers
        an nginx HTML page instead of JSON, as Telegram's front-ends do for some 502/504s.
        """
        if status == 200:
            raise ValueError("fail_next needs an error status")
        fault = _Fault(status, times, retry_after, description, html_body)
        self._faults.setdefault(self._canonical(method), deque()).append(fault)

    def delay_next(self, method: str, seconds: float, times: int = 1) -> None:
        """The next `times` calls are processed (and recorded) at once, answered later."""
        self._delays.setdefault(self._canonical(method), deque()).append(_Delay(seconds, times))

    def answer_next(self, method: str, result: Any, times: int = 1) -> None:
        """The next `times` calls are processed as usual but answer ``{"ok": true, "result":
        result}``: e.g. ``True`` or ``None`` where a Message is documented (Telegram answers
        ``true`` to editMessageText for inline messages; other servers vary)."""
        self._results.setdefault(self._canonical(method), deque()).append(_Result(result, times))

    def forbid_chat(self, chat_id: int) -> None:
        """Sends to this chat answer 403, as when the user blocked the bot."""
        self._forbidden.add(chat_id)

    def allow_chat(self, chat_id: int) -> None:
        self._forbidden.discard(chat_id)

    def enforce_limits(
        self,
        global_per_second: int = 30,
        per_chat_per_second: float = 1.0,
        per_group_per_minute: int = 20,
        per_chat_burst: int = 3,
    ) -> None:
        """Answer 429 to sends over Telegram's flood limits (sliding windows).

        Per chat: at most `per_chat_burst` messages in any ``per_chat_burst /
        per_chat_per_second`` seconds (Telegram tolerates short bursts).  Groups (negative
        chat ids) additionally get `per_group_per_minute`.  A 429 pauses all sends of the bot
        until `retry_after_until`, like Telegram does.
        """
        self._limits = _Limits(
            global_per_second, per_chat_per_second, per_chat_burst, per_group_per_minute
        )
        self._global_window.clear()
        self._chat_windows.clear()
        self._group_windows.clear()
        self.retry_after_until = 0.0

    def disable_limits(self) -> None:
        self._limits = None
        self.retry_after_until = 0.0

    def disable_method(self, method: str) -> None:
        """`method` answers 404 "Not Found", like a Bot API server that lacks it.

        Self-hosted or older ``telegram-bot-api`` builds answer exactly what api.telegram.org
        answers for an unknown method.  The call is still recorded in ``requests``.
        """
        self._disabled.add(self._canonical(method))

    def enable_method(self, method: str) -> None:
        self._disabled.discard(self._canonical(method))

    def _canonical(self, method: str) -> str:
        entry = self._handlers.get(method.lower())
        if entry is None:
            raise ValueError(f"FakeTelegramServer does not implement {method!r}")
        return entry[0]

    # ---------------------------------------------------------------- groups and topics

    def make_group(
        self,
        chat_id: int,
        title: str = "Agents",
        is_forum: bool = False,
        members: dict[int, str] | None = None,
    ) -> JSONDict:
        """Registers a supergroup (e.g. the agents' group); returns its Chat object.

        `members` maps user_id -> first_name (status "member"; see ``add_member``).  The bot is
        an administrator with every right (can_manage_topics included) unless changed with
        ``add_member(chat_id, server.bot_user["id"], ..., status=...)``.  Calling it again for
        the same id updates title/is_forum and adds members.
        """
        if chat_id >= 0:
            raise ValueError(f"a group's chat_id must be negative, got {chat_id}")
        group = self._group(chat_id)
        group.title = title
        group.is_forum = is_forum
        for user_id, name in (members or {}).items():
            self.add_member(chat_id, user_id, name)
        return self._chat_obj(chat_id)

    def add_member(
        self,
        chat_id: int,
        user_id: int,
        name: str,
        status: str = "member",
        *,
        is_bot: bool = False,
        can_manage_topics: bool = True,
    ) -> None:
        """Adds (or changes) a member: status member/administrator/creator (or left/kicked).

        `can_manage_topics` is the administrator right createForumTopic needs.
        """
        if chat_id >= 0:
            raise ValueError(f"a group's chat_id must be negative, got {chat_id}")
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {sorted(MEMBER_STATUSES)}")
        is_self = user_id == self.bot_user["id"]
        self._group(chat_id).members[user_id] = _Member(
            name=name,
            status=status,
            is_bot=is_bot or is_self,
            can_manage_topics=can_manage_topics,
        )
        if not is_self:
            self._users.setdefault(user_id, {"first_name": name})

    def remove_member(self, chat_id: int, user_id: int, *, kicked: bool = False) -> None:
        """The user left (or was banned): getChatMember answers "left" / "kicked".

        Removing the bot itself makes sends to the group answer 403, like Telegram.
        """
        group = self._group(chat_id)
        member = group.members.get(user_id)
        name = member.name if member else self._user_obj(user_id)["first_name"]
        group.members[user_id] = _Member(
            name=name,
            status="kicked" if kicked else "left",
            is_bot=member.is_bot if member else user_id == self.bot_user["id"],
        )

    def member_status(self, chat_id: int, user_id: int) -> str:
        """What getChatMember would answer as `status`."""
        return str(self._member_obj(chat_id, user_id)["status"])

    def make_topic(
        self,
        chat_id: int,
        name: str,
        icon_color: int = DEFAULT_TOPIC_COLOR,
        creator_id: int | None = None,
    ) -> int:
        """Creates a forum topic as a user would (default creator: the first group admin or
        creator that is not the bot, else the bot).  Returns its message_thread_id."""
        group = self._groups.get(chat_id)
        if group is None or not group.is_forum:
            raise ValueError(f"chat {chat_id} is not a forum; use make_group(..., is_forum=True)")
        if creator_id is None:
            creator_id = next(
                (
                    uid
                    for uid, m in group.members.items()
                    if m.status in ("creator", "administrator") and uid != self.bot_user["id"]
                ),
                self.bot_user["id"],
            )
        topic = self._open_topic(group, name, icon_color, None, creator_id)
        return topic.thread_id

    def forum_topics(self, chat_id: int) -> dict[int, JSONDict]:
        """thread_id -> {"name", "icon_color", "is_closed"} of the group's live topics."""
        group = self._groups.get(chat_id)
        if group is None:
            return {}
        return {
            t.thread_id: {"name": t.name, "icon_color": t.icon_color, "is_closed": t.is_closed}
            for t in group.topics.values()
        }

    def set_file_content(self, file_id: str, data: bytes) -> None:
        """The bytes a download of this file returns (the file_id becomes known as a photo)."""
        self.register_file_id(file_id)
        self._file_contents[file_id] = data

    def _file_bytes(self, file_id: str) -> bytes:
        if file_id in self._file_contents:
            return self._file_contents[file_id]
        return placeholder_png(file_id)

    def _get_file(self, call: _Call) -> JSONDict:
        file_id = call.params.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise _bad_request("Bad Request: file_id is empty" if not file_id else "Bad Request: invalid file_id")
        if file_id not in self._photos and file_id not in self._documents:
            raise _bad_request("Bad Request: invalid file_id")
        size = len(self._file_bytes(file_id))
        if size > GET_FILE_MAX_BYTES:
            raise _bad_request("Bad Request: file is too big")
        folder = "documents" if file_id in self._documents else "photos"
        path = next((p for p, f in self._file_paths.items() if f == file_id), None)
        if path is None:
            path = f"{folder}/file_{len(self._file_paths)}.{'jpg' if folder == 'photos' else 'bin'}"
            self._file_paths[path] = file_id
        return {"file_id": file_id, "file_unique_id": _file_unique_id(file_id), "file_size": size, "file_path": path}

    async def _download(self, request: web.Request, token: str, path: str) -> web.StreamResponse:
        self.requests.append(RecordedRequest(method="<download>", params={"file_path": path}, time=time.monotonic(),
                                             http_method=request.method))
        file_id = self._file_paths.get(path)
        if token != self.token or file_id is None:
            return self._respond(_Answer(404, self._error_body(404, "Not Found")))
        return web.Response(body=self._file_bytes(file_id), content_type="application/octet-stream")

    def register_file_id(self, file_id: str) -> None:
        """Declares a photo file_id as known (e.g. one from the bot's configuration)."""
        if file_id not in self._photos:
            self._remember_photo(self._make_photo_sizes([file_id]))

    def _group(self, chat_id: int) -> _Group:
        """The group's state; an unregistered negative id gets an implicit plain supergroup."""
        group = self._groups.get(chat_id)
        if group is None:
            group = _Group(chat_id=chat_id, title=f"Test group {chat_id}")
            group.members[self.bot_user["id"]] = _Member(
                name=str(self.bot_user["first_name"]), status="administrator", is_bot=True
            )
            self._groups[chat_id] = group
        return group

    def _open_topic(
        self,
        group: _Group,
        name: str,
        icon_color: int,
        icon_custom_emoji_id: str | None,
        creator_id: int,
    ) -> _Topic:
        # A topic *is* the thread of its creation service message: it takes a message id.
        thread_id = self._take_message_id(group.chat_id)
        topic = _Topic(thread_id, name, icon_color, icon_custom_emoji_id)
        group.topics[thread_id] = topic
        created: JSONDict = {"name": name, "icon_color": icon_color}
        if icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = icon_custom_emoji_id
        self._service_message(group, topic, creator_id, "forum_topic_created", created)
        return topic

    def _service_message(
        self, group: _Group, topic: _Topic, sender_id: int, kind: str, payload: JSONDict
    ) -> JSONDict:
        """Stores a forum service message (topic created/edited/closed/reopened)."""
        if sender_id == self.bot_user["id"]:
            sender = dict(self.bot_user)
        else:
            sender = self._user_obj(sender_id)
        message_id = (
            topic.thread_id
            if kind == "forum_topic_created"
            else self._take_message_id(group.chat_id)
        )
        message: JSONDict = {
            "message_id": message_id,
            "from": sender,
            "chat": self._chat_obj(group.chat_id),
            "date": int(time.time()),
            "message_thread_id": topic.thread_id,
            "is_topic_message": True,
            kind: payload,
        }
        if kind != "forum_topic_created" and self.topic_root_replies:
            message["reply_to_message"] = self._topic_root(group.chat_id, topic.thread_id)
        self._messages[(group.chat_id, message_id)] = message
        return message

    def _topic_root(self, chat_id: int, thread_id: int) -> JSONDict | None:
        root = self._messages.get((chat_id, thread_id))
        return _without_reply(root) if root is not None else None

    # ---------------------------------------------------------------- simulated users

    def push_update(self, update: JSONDict) -> JSONDict:
        """Queues an update for getUpdates; assigns `update_id` if missing. Returns it."""
        if "update_id" not in update:
            update["update_id"] = self._take_update_id()
        else:
            self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._observe_update(update)
        self._updates.append(_json_copy(update))
        self._notify()
        return update

    def make_message_update(
        self,
        user_id: int,
        text: str,
        first_name: str | None = None,
        language_code: str = "vi",
        chat_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        photo_file_ids: str | Sequence[str] | None = None,
        caption: str | None = None,
        sender_chat: bool | int | None = None,
        from_is_bot: bool = False,
        contact: tuple[str, int | None] | None = None,
    ) -> JSONDict:
        """An Update with a user's message (not queued: pass it to push_update or POST it).

        * `first_name`: None keeps the name the fake knows for the user (else "An").
        * `chat_id` negative: a message in that supergroup (the sender becomes a member if the
          fake did not know them there).
        * `reply_to_message_id`: the update carries the full ``reply_to_message`` (as the fake
          stores it, e.g. the bot's earlier message); it must exist in the chat.  Replying to a
          topic message puts the message in that topic.
        * `message_thread_id`: in a forum the topic must exist; the message gets
          ``is_topic_message`` and, unless it is an explicit reply, the topic's creation message
          as ``reply_to_message`` (like Telegram; see ``topic_root_replies``).
        * `photo_file_ids`: one file_id (3 sizes are made, the given id on the largest) or 2-3
          ids (one size each, smallest first); `caption` (default: `text`) replaces the text.
        * `sender_chat`: True (or the group's id) = an anonymous group admin (``from`` is
          GroupAnonymousBot); another id = a post made as that channel (``from`` is Channel_Bot).
        * `from_is_bot`: the sender is another bot.
        * `contact`: (phone number, Telegram user id or None) a shared contact instead of a text,
          like Telegram's: the share-phone keyboard button sends the sender's own number with
          their user id; a contact card of someone else carries that person's id (or none).
        """
        chat_id = user_id if chat_id is None else chat_id
        if first_name is not None:
            self._users.setdefault(user_id, {})["first_name"] = first_name
        else:
            self._users.setdefault(user_id, {}).setdefault("first_name", "An")
        if not from_is_bot:
            self._users[user_id]["language_code"] = language_code

        sender, sender_chat_obj = self._message_sender(user_id, chat_id, sender_chat, from_is_bot)
        if sender_chat_obj is None and chat_id < 0:
            group = self._group(chat_id)
            if user_id not in group.members:
                group.members[user_id] = _Member(
                    name=str(sender["first_name"]), status="member", is_bot=from_is_bot
                )

        reply_to: JSONDict | None = None
        if reply_to_message_id is not None:
            target = self._messages.get((chat_id, reply_to_message_id))
            if target is None:
                raise ValueError(
                    f"make_message_update: chat {chat_id} has no message {reply_to_message_id}"
                )
            reply_to = _without_reply(target)
        thread_id, is_topic, reply_to = self._place_in_thread(
            chat_id, message_thread_id, reply_to, error=ValueError
        )

        message: JSONDict = {
            "message_id": self._take_message_id(chat_id),
            "from": sender,
        }
        if sender_chat_obj is not None:
            message["sender_chat"] = sender_chat_obj
        message["chat"] = self._chat_obj(chat_id)
        message["date"] = int(time.time())
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if is_topic:
                message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to

        if photo_file_ids is not None:
            ids = [photo_file_ids] if isinstance(photo_file_ids, str) else list(photo_file_ids)
            if not 1 <= len(ids) <= 3:
                raise ValueError("photo_file_ids: give 1 to 3 file ids")
            sizes = self._make_photo_sizes(ids)
            self._remember_photo(sizes)
            message["photo"] = sizes
            shown = text if caption is None else caption
            if shown:
                message["caption"] = shown
                entities = _command_entities(shown)
                if entities:
                    message["caption_entities"] = entities
        elif contact is not None:
            phone, owner = contact
            message["contact"] = {"phone_number": phone, "first_name": str(self._users[user_id]["first_name"])}
            if owner is not None:
                message["contact"]["user_id"] = owner
        else:
            if caption is not None:
                raise ValueError("make_message_update: caption needs photo_file_ids")
            message["text"] = text
            entities = _command_entities(text)
            if entities:
                message["entities"] = entities
        self._messages[(chat_id, message["message_id"])] = _json_copy(message)
        return {"update_id": self._take_update_id(), "message": message}

    def make_callback_update(
        self,
        user_id: int,
        data: str,
        message_id: int,
        chat_id: int | None = None,
        language_code: str = "vi",
        from_name: str | None = None,
    ) -> JSONDict:
        """An Update for a press on an inline button of message `message_id` in `chat_id`
        (default: the user's private chat; a negative id for a group).

        The message is the one the bot sent, as the fake stores it (edits, thread and
        reply_to_message included); otherwise a placeholder bot message is created (and kept,
        so the bot can edit it).  `from_name` sets the presser's first_name.  There is no
        anonymous variant: Telegram always names the real user who pressed, even when they
        are an anonymous admin of the group.
        """
        chat_id = user_id if chat_id is None else chat_id
        user = self._users.setdefault(user_id, {"first_name": "An"})
        if from_name is not None:
            user["first_name"] = from_name
        user["language_code"] = language_code
        message = self._messages.get((chat_id, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "from": dict(self.bot_user),
                "chat": self._chat_obj(chat_id),
                "date": int(time.time()),
                "text": f"message {message_id}",
            }
            self._messages[(chat_id, message_id)] = message
            self._last_message_id[chat_id] = max(
                self._last_message_id.get(chat_id, 0), message_id
            )
        self._callback_counter += 1
        query_id = str(4_000_000_000_000_000_000 + user_id * 1_000 + self._callback_counter)
        self._callbacks[query_id] = False
        return {
            "update_id": self._take_update_id(),
            "callback_query": {
                "id": query_id,
                "from": self._user_obj(user_id),
                "message": _json_copy(message),
                "chat_instance": self._chat_instance(chat_id),
                "data": data,
            },
        }

    def _message_sender(
        self, user_id: int, chat_id: int, sender_chat: bool | int | None, from_is_bot: bool
    ) -> tuple[JSONDict, JSONDict | None]:
        """(from, sender_chat) of a simulated incoming message."""
        if sender_chat is None or sender_chat is False:
            sender = self._user_obj(user_id)
            if from_is_bot:
                sender = {
                    "id": user_id,
                    "is_bot": True,
                    "first_name": sender["first_name"],
                    "username": f"bot{user_id}_bot",
                }
            return sender, None
        if chat_id >= 0:
            raise ValueError("sender_chat only makes sense for a message in a group")
        if sender_chat is True or sender_chat == chat_id:
            return dict(GROUP_ANONYMOUS_BOT), self._chat_obj(chat_id)
        channel = {"id": int(sender_chat), "title": f"Channel {sender_chat}", "type": "channel"}
        return dict(CHANNEL_BOT), channel

    def _place_in_thread(
        self,
        chat_id: int,
        thread_id: int | None,
        reply_to: JSONDict | None,
        error: Callable[[str], Exception],
    ) -> tuple[int | None, bool, JSONDict | None]:
        """(message_thread_id, is_topic_message, reply_to_message) of a new message.

        In a forum the topic must exist; a reply to a topic message inherits its topic; a
        topic message that is not an explicit reply gets the topic root as reply_to_message.
        Elsewhere a given thread id is just echoed (reply threads are not modelled).
        """
        group = self._groups.get(chat_id) if chat_id < 0 else None
        if group is None or not group.is_forum:
            return thread_id, False, reply_to
        if thread_id is None and reply_to is not None and reply_to.get("is_topic_message"):
            thread_id = _as_int(reply_to.get("message_thread_id"))
        if thread_id is None:
            return None, False, reply_to  # the "General" topic
        if thread_id not in group.topics:
            raise error(THREAD_NOT_FOUND)
        if reply_to is None and self.topic_root_replies:
            reply_to = self._topic_root(chat_id, thread_id)
        return thread_id, True, reply_to

    def _make_photo_sizes(self, file_ids: list[str]) -> list[JSONDict]:
        if len(file_ids) == 1:
            base = file_ids[0]
            tag = zlib.crc32(base.encode()) & 0xFFFFFFFF
            file_ids = [f"AgACAgIAAxkBAAI{tag:08x}{i}" for i in range(2)] + [base]
        dims = _USER_PHOTO_SIZES[-len(file_ids) :]
        return [
            {
                "file_id": file_id,
                "file_unique_id": _file_unique_id(file_id),
                "file_size": width * height // 8,
                "width": width,
                "height": height,
            }
            for file_id, (width, height) in zip(file_ids, dims)
        ]

    def _remember_photo(self, sizes: list[JSONDict]) -> None:
        for size in sizes:
            file_id = size.get("file_id") if isinstance(size, dict) else None
            if isinstance(file_id, str):
                self._photos[file_id] = _json_copy(sizes)

    def _take_update_id(self) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    def _take_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _observe_update(self, update: JSONDict) -> None:
        """Learns from hand-made updates so later replies/edits/answers to them work."""
        for kind in _MESSAGE_UPDATE_TYPES:
            message = update.get(kind)
            if isinstance(message, dict):
                self._remember_message(message)
        query = update.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self._callbacks.setdefault(query["id"], False)
            if isinstance(query.get("message"), dict):
                self._remember_message(query["message"])

    def _remember_message(self, message: JSONDict) -> None:
        chat_id = _as_int((message.get("chat") or {}).get("id"))
        message_id = _as_int(message.get("message_id"))
        if chat_id is None or message_id is None:
            return
        self._messages.setdefault((chat_id, message_id), _json_copy(message))
        self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), message_id)
        sender = message.get("from")
        if isinstance(sender, dict) and not sender.get("is_bot") and "id" in sender:
            self._users.setdefault(int(sender["id"]), {"first_name": sender.get("first_name", "")})
        for part in (message, message.get("reply_to_message")):
            if isinstance(part, dict) and isinstance(part.get("photo"), list):
                self._remember_photo(part["photo"])

    def _user_obj(self, user_id: int) -> JSONDict:
        user = self._users.get(user_id, {})
        obj: JSONDict = {
            "id": user_id,
            "is_bot": False,
            "first_name": user.get("first_name", f"User{user_id}"),
        }
        if user.get("language_code"):
            obj["language_code"] = user["language_code"]
        return obj

    def _chat_obj(self, chat_id: int) -> JSONDict:
        if chat_id > 0:
            user = self._users.get(chat_id, {})
            return {
                "id": chat_id,
                "first_name": user.get("first_name", f"User{chat_id}"),
                "type": "private",
            }
        group = self._groups.get(chat_id)
        chat: JSONDict = {
            "id": chat_id,
            "title": group.title if group else f"Test group {chat_id}",
            "type": "supergroup",
        }
        if group is not None and group.is_forum:
            chat["is_forum"] = True  # Telegram omits false booleans
        return chat

    def _member_obj(self, chat_id: int, user_id: int) -> JSONDict:
        """A ChatMember as getChatMember answers it ("left" for strangers)."""
        if chat_id > 0:
            # Private chat: its two participants are members.
            status = "member" if user_id in (chat_id, self.bot_user["id"]) else "left"
            member: _Member | None = None
        else:
            member = self._group(chat_id).members.get(user_id)
            status = member.status if member else "left"
        if user_id == self.bot_user["id"]:
            user = dict(self.bot_user)
        elif member is not None:
            user = {"id": user_id, "is_bot": member.is_bot, "first_name": member.name}
        else:
            user = self._user_obj(user_id)
            user.pop("language_code", None)
        obj: JSONDict = {"status": status, "user": user}
        if status == "administrator":
            can_manage_topics = member.can_manage_topics if member else True
            obj.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=True,
                can_edit_stories=True,
                can_delete_stories=True,
                can_pin_messages=True,
                can_manage_topics=can_manage_topics,
            )
        elif status == "creator":
            obj["is_anonymous"] = False
        elif status == "kicked":
            obj["until_date"] = 0
        return obj

    def _chat_instance(self, chat_id: int) -> str:
        # Stable per chat, shaped like Telegram's (a signed 64-bit number).
        return str(-(10**18) - zlib.crc32(f"{self.bot_user['id']}:{chat_id}".encode()))

    # ---------------------------------------------------------------- HTTP plumbing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        download = _FILE_PATH_RE.fullmatch(request.path)
        if download is not None and request.method in ("GET", "HEAD"):
            return await self._download(request, download.group(1), download.group(2))
        match = _PATH_RE.fullmatch(request.path)
        if match is None or not match.group(2):
            return self._respond(_Answer(404, self._error_body(404, "Not Found")))
        token, requested = match.group(1), match.group(2)
        entry = self._handlers.get(requested.lower())
        try:
            params = await self._read_params(request)
        except _ApiError as exc:
            params, parse_error = {}, exc
        else:
            parse_error = None
        record = RecordedRequest(
            method=entry[0] if entry else requested,
            params=params,
            time=arrived,
            http_method=request.method,
        )
        self.requests.append(record)

        delay: float | None = None
        if token != self.token:
            # Telegram: 401 for a well-formed but wrong token, 404 for a malformed one.
            status = 401 if _TOKEN_RE.fullmatch(token) else 404
            answer = _Answer(status, self._error_body(status, _STATUS_DESCRIPTIONS[status]))
        elif entry is None or entry[0] in self._disabled:
            answer = _Answer(404, self._error_body(404, "Not Found"))
        elif parse_error is not None:
            answer = self._error_answer(parse_error)
        else:
            answer, delay = await self._process(entry, record)

        record.status = answer.status
        record.response = answer.body
        if answer.status == 429:
            self.count_429 += 1
        self._notify()
        if delay:
            await self._sleep(delay)
        return self._respond(answer)

    async def _process(
        self, entry: tuple[str, Handler], record: RecordedRequest
    ) -> tuple[_Answer, float | None]:
        method, handler = entry
        fault = self._take_fault(method)
        if fault is not None:
            return self._fault_answer(fault), None
        delay = self._take_delay(method)
        call = _Call(method=method, params=record.params, time=record.time)
        try:
            if method in _SEND_METHODS:
                self._check_limits(call)
            result = handler(call)
            if inspect.isawaitable(result):
                result = await result
        except _ApiError as exc:
            return self._error_answer(exc), delay
        except Exception as exc:  # a bug in the fake: keep it visible to tests
            self.internal_errors.append(exc)
            raise
        if method in _SEND_METHODS:
            self._count_for_limits(call)
        replaced = self._take_result(method)
        if replaced is not None:
            result = replaced.value
        body: JSONDict = {"ok": True, "result": result}
        if isinstance(result, _Described):
            body = {"ok": True, "result": result.result, "description": result.description}
        return _Answer(200, body), delay

    async def _read_params(self, request: web.Request) -> JSONDict:
        params: JSONDict = {}
        for name, value in request.query.items():
            params[name] = _decode_form_value(name, value)
        if not request.body_exists:
            return params
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad_request("can't parse JSON object")
            for name, value in body.items():
                params[name] = _normalize_json_value(name, value)
        elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    params[name] = UploadedFile(
                        field_name=name,
                        filename=value.filename,
                        content_type=value.content_type,
                        data=value.file.read(),
                    )
                elif isinstance(value, str):
                    params[name] = _decode_form_value(name, value)
        return params

    def _respond(self, answer: _Answer) -> web.Response:
        if answer.raw is not None:
            return web.Response(status=answer.status, text=answer.raw, content_type="text/html")
        return web.json_response(
            answer.body,
            status=answer.status,
            dumps=lambda obj: json.dumps(obj, ensure_ascii=False, separators=(",", ":")),
        )

    @staticmethod
    def _error_body(status: int, description: str, parameters: JSONDict | None = None) -> JSONDict:
        body: JSONDict = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return body

    def _error_answer(self, exc: _ApiError) -> _Answer:
        return _Answer(exc.status, self._error_body(exc.status, exc.description, exc.parameters))

    def _fault_answer(self, fault: _Fault) -> _Answer:
        status = fault.status
        if fault.html_body:
            phrase = _STATUS_DESCRIPTIONS.get(status, "Error")
            return _Answer(status, None, raw=_NGINX_PAGE.format(status=status, phrase=phrase))
        if status == 429:
            retry_after = fault.retry_after if fault.retry_after is not None else 1
            error = _too_many_requests(retry_after)
            if fault.description:
                error.description = fault.description
            return self._error_answer(error)
        description = fault.description or _STATUS_DESCRIPTIONS.get(status, "Error")
        parameters = {"retry_after": fault.retry_after} if fault.retry_after else None
        return _Answer(status, self._error_body(status, description, parameters))

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    def _take_result(self, method: str) -> _Result | None:
        queue = self._results.get(method)
        if not queue:
            return None
        result = queue[0]
        result.remaining -= 1
        if result.remaining <= 0:
            queue.popleft()
        return result

    def _take_delay(self, method: str) -> float | None:
        queue = self._delays.get(method)
        if not queue:
            return None
        delay = queue[0]
        delay.remaining -= 1
        if delay.remaining <= 0:
            queue.popleft()
        return delay.seconds

    async def _sleep(self, seconds: float) -> None:
        """Sleeps, but returns at once when the server stops (so stop() never hangs)."""
        try:
            async with asyncio.timeout(seconds):  # not wait_for: on 3.11 it can eat a cancel
                await self._stopping.wait()
        except TimeoutError:
            pass

    # ---------------------------------------------------------------- flood limits

    def _check_limits(self, call: _Call) -> None:
        limits = self._limits
        if limits is None:
            return
        now = time.monotonic()
        if now < self.retry_after_until:
            raise _too_many_requests(max(1, math.ceil(self.retry_after_until - now)))
        waits: list[float] = []
        self._prune(self._global_window, now, 1.0)
        if len(self._global_window) >= limits.global_per_second:
            waits.append(self._global_window[0] + 1.0 - now)
        chat_id = _as_int(call.params.get("chat_id"))
        if chat_id is not None:
            window = self._chat_windows.setdefault(chat_id, deque())
            self._prune(window, now, limits.per_chat_window)
            if len(window) >= limits.per_chat_burst:
                waits.append(window[0] + limits.per_chat_window - now)
            if chat_id < 0:
                group = self._group_windows.setdefault(chat_id, deque())
                self._prune(group, now, 60.0)
                if len(group) >= limits.per_group_per_minute:
                    waits.append(group[0] + 60.0 - now)
        if waits:
            retry_after = max(1, math.ceil(max(waits)))
            self.retry_after_until = now + retry_after
            raise _too_many_requests(retry_after)

    def _count_for_limits(self, call: _Call) -> None:
        if self._limits is None:
            return
        now = time.monotonic()
        self._global_window.append(now)
        chat_id = _as_int(call.params.get("chat_id"))
        if chat_id is not None:
            self._chat_windows.setdefault(chat_id, deque()).append(now)
            if chat_id < 0:
                self._group_windows.setdefault(chat_id, deque()).append(now)

    @staticmethod
    def _prune(window: deque[float], now: float, span: float) -> None:
        while window and window[0] <= now - span:
            window.popleft()

    # ---------------------------------------------------------------- validation helpers

    def _require_chat(self, params: JSONDict, name: str = "chat_id") -> int:
        value = params.get(name)
        if value is None or value == "":
            raise _bad_request("chat_id is empty")
        chat_id = _as_int(value)
        if chat_id is None or chat_id == 0:
            raise _bad_request("chat not found")  # e.g. "@channel": the fake knows no channels
        return chat_id

    def _check_forbidden(self, chat_id: int) -> None:
        if chat_id in self._forbidden:
            if chat_id > 0:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
            raise _ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
        self._check_bot_in_group(chat_id)

    def _check_bot_in_group(self, chat_id: int) -> None:
        group = self._groups.get(chat_id) if chat_id < 0 else None
        if group is None:
            return
        me = group.members.get(self.bot_user["id"])
        status = me.status if me else "left"
        if status == "kicked":
            raise _ApiError(403, "Forbidden: bot was kicked from the supergroup chat")
        if status == "left":
            raise _ApiError(403, "Forbidden: bot is not a member of the supergroup chat")

    def _bot_manages_topics(self, group: _Group) -> bool:
        me = group.members.get(self.bot_user["id"])
        if me is None:
            return False
        return me.status == "creator" or (me.status == "administrator" and me.can_manage_topics)

    def _format_text(
        self,
        raw: Any,
        parse_mode: Any,
        entities: Any,
        *,
        limit: int,
        too_long: str,
        empty: str | None,
    ) -> tuple[str, list[JSONDict]]:
        """Parses markup like Telegram; returns (plain text, entities)."""
        text = "" if raw is None else str(raw)
        mode = parse_mode.lower() if isinstance(parse_mode, str) else ""
        if mode == "html":
            try:
                text, parsed = parse_telegram_html(text)
            except HtmlParseError as exc:
                raise _bad_request(f"can't parse entities: {exc}") from None
        elif mode in ("markdown", "markdownv2", ""):
            # Markdown is not parsed by the fake: text comes back as sent.
            parsed = list(entities) if mode == "" and isinstance(entities, list) else []
        else:
            raise _bad_request("unsupported parse_mode")
        if empty is not None and not text.strip():
            raise _bad_request(empty)
        if utf16_len(text) > limit:
            raise _bad_request(too_long)
        return text, parsed

    def _check_reply_markup(self, markup: Any) -> JSONDict | None:
        """Validates reply_markup; returns what Telegram echoes (inline keyboards only)."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None  # reply keyboards / ForceReply are accepted but not echoed
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(
                "field \"inline_keyboard\" of the InlineKeyboardMarkup must be an Array of Arrays"
            )
        for row in rows:
            for button in row:
                self._check_inline_button(button)
        return _json_copy(markup)

    @staticmethod
    def _check_inline_button(button: Any) -> None:
        if not isinstance(button, dict):
            raise _bad_request(
                "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
            )
        if not isinstance(button.get("text"), str):
            raise _bad_request(
                "can't parse inline keyboard button: Field \"text\" must be of type String"
            )
        if not _INLINE_BUTTON_ACTIONS.intersection(button):
            raise _bad_request(
                "can't parse inline keyboard button: "
                "Text buttons are unallowed in the inline keyboard"
            )
        if "callback_data" in button:
            data = button["callback_data"]
            size = len(data.encode("utf-8")) if isinstance(data, str) else 0
            if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                raise _bad_request("BUTTON_DATA_INVALID")
        if "url" in button:
            url = button["url"]
            if not isinstance(url, str) or not re.match(r"(https?|tg)://\S+", url):
                raise _bad_request("BUTTON_URL_INVALID")

    def _resolve_reply(self, chat_id: int, params: JSONDict) -> JSONDict | None:
        reply_parameters = params.get("reply_parameters")
        if isinstance(reply_parameters, dict):
            target_id = _as_int(reply_parameters.get("message_id"))
            allow = bool(reply_parameters.get("allow_sending_without_reply", False))
            target_chat = chat_id
            if reply_parameters.get("chat_id") is not None:
                target_chat = self._require_chat(reply_parameters)
        elif params.get("reply_to_message_id") is not None:
            target_id = _as_int(params.get("reply_to_message_id"))
            allow = params.get("allow_sending_without_reply") is True
            target_chat = chat_id
        else:
            return None
        target = self._messages.get((target_chat, target_id)) if target_id else None
        if target is None:
            if allow:
                return None
            raise _ApiError(400, REPLY_NOT_FOUND)
        return _without_reply(target)

    def _placement(
        self, chat_id: int, params: JSONDict
    ) -> tuple[int | None, bool, JSONDict | None]:
        """Validates reply and thread of a send: (thread_id, is_topic_message, reply_to)."""
        reply_to = self._resolve_reply(chat_id, params)
        thread_id, is_topic, reply_to = self._place_in_thread(
            chat_id,
            _as_int(params.get("message_thread_id")),
            reply_to,
            error=lambda description: _ApiError(400, description),
        )
        if is_topic and thread_id is not None:
            group = self._groups[chat_id]
            if group.topics[thread_id].is_closed and not self._bot_manages_topics(group):
                raise _bad_request("TOPIC_CLOSED")
        return thread_id, is_topic, reply_to

    def _new_bot_message(
        self, chat_id: int, placement: tuple[int | None, bool, JSONDict | None]
    ) -> JSONDict:
        thread_id, is_topic, reply_to = placement
        message: JSONDict = {
            "message_id": self._take_message_id(chat_id),
            "from": dict(self.bot_user),
            "chat": self._chat_obj(chat_id),
            "date": int(time.time()),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if is_topic:
                message["is_topic_message"] = True
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        return message

    def _commit_sent(
        self, call: _Call, chat_id: int, message: JSONDict, markup: JSONDict | None
    ) -> JSONDict:
        if markup is not None:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = _json_copy(message)
        self._sent.append(
            SentMessage(
                method=call.method,
                chat_id=chat_id,
                message_id=message["message_id"],
                params=call.params,
                message=_json_copy(message),
                time=time.monotonic(),
            )
        )
        return message

    def _editable_message(self, params: JSONDict) -> tuple[int, int, JSONDict]:
        chat_id = self._require_chat(params)
        message_id = _as_int(params.get("message_id"))
        if message_id is None:
            raise _bad_request("message identifier is not specified")
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            raise _bad_request("message to edit not found")
        if (stored.get("from") or {}).get("id") != self.bot_user["id"]:
            raise _bad_request("message can't be edited")
        return chat_id, message_id, stored

    # ---------------------------------------------------------------- methods

    def _get_me(self, call: _Call) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _get_chat(self, call: _Call) -> JSONDict:
        chat_id = self._require_chat(call.params)
        self._check_bot_in_group(chat_id)
        info = self._chat_obj(chat_id)
        info.update(
            accent_color_id=0,
            max_reaction_count=11,
            accepted_gift_types={
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        )
        if chat_id < 0:
            info["permissions"] = {
                "can_send_messages": True,
                "can_send_photos": True,
                "can_invite_users": True,
                "can_pin_messages": False,
                "can_manage_topics": False,
            }
        return info

    def _get_chat_member(self, call: _Call) -> JSONDict:
        chat_id = self._require_chat(call.params)
        user_id = _as_int(call.params.get("user_id"))
        if user_id is None or user_id <= 0:
            raise _bad_request("invalid user_id specified")
        self._check_bot_in_group(chat_id)
        return self._member_obj(chat_id, user_id)

    def _get_chat_administrators(self, call: _Call) -> list[JSONDict]:
        chat_id = self._require_chat(call.params)
        if chat_id > 0:
            raise _bad_request("there are no administrators in the private chat")
        self._check_bot_in_group(chat_id)
        group = self._group(chat_id)
        return [
            self._member_obj(chat_id, user_id)
            for user_id, member in group.members.items()
            if member.status in ("creator", "administrator")
        ]

    def _forum(self, params: JSONDict) -> _Group:
        chat_id = self._require_chat(params)
        self._check_bot_in_group(chat_id)
        group = self._groups.get(chat_id) if chat_id < 0 else None
        if group is None or not group.is_forum:
            raise _ApiError(400, NOT_A_FORUM)
        return group

    def _forum_topic(self, params: JSONDict) -> tuple[_Group, _Topic]:
        group = self._forum(params)
        thread_id = _as_int(params.get("message_thread_id"))
        topic = group.topics.get(thread_id) if thread_id is not None else None
        if topic is None:
            raise _bad_request("TOPIC_ID_INVALID")
        return group, topic

    @staticmethod
    def _topic_name(value: Any) -> str:
        name = "" if value is None else str(value).strip()
        if not name:
            raise _bad_request("title must be non-empty")
        return name[:MAX_TOPIC_NAME_LENGTH]  # Telegram cuts longer names

    def _create_forum_topic(self, call: _Call) -> JSONDict:
        p = call.params
        group = self._forum(p)
        name = self._topic_name(p.get("name"))
        if not self._bot_manages_topics(group):
            raise _bad_request("not enough rights to create a topic")
        icon_color = _as_int(p.get("icon_color")) or DEFAULT_TOPIC_COLOR
        emoji = p.get("icon_custom_emoji_id") or None
        topic = self._open_topic(group, name, icon_color, emoji, self.bot_user["id"])
        result: JSONDict = {
            "message_thread_id": topic.thread_id,
            "name": topic.name,
            "icon_color": topic.icon_color,
        }
        if emoji:
            result["icon_custom_emoji_id"] = emoji
        return result

    def _edit_forum_topic(self, call: _Call) -> bool:
        p = call.params
        group, topic = self._forum_topic(p)
        edited: JSONDict = {}
        if p.get("name") is not None:
            name = self._topic_name(p.get("name"))
            if name != topic.name:
                edited["name"] = name
        if p.get("icon_custom_emoji_id") is not None:
            emoji = str(p["icon_custom_emoji_id"])
            if emoji != (topic.icon_custom_emoji_id or ""):
                edited["icon_custom_emoji_id"] = emoji
        if not edited:
            raise _bad_request("TOPIC_NOT_MODIFIED")
        topic.name = edited.get("name", topic.name)
        if "icon_custom_emoji_id" in edited:
            topic.icon_custom_emoji_id = edited["icon_custom_emoji_id"] or None
        self._service_message(group, topic, self.bot_user["id"], "forum_topic_edited", edited)
        return True

    def _close_forum_topic(self, call: _Call) -> bool:
        return self._set_topic_closed(call.params, True)

    def _reopen_forum_topic(self, call: _Call) -> bool:
        return self._set_topic_closed(call.params, False)

    def _set_topic_closed(self, params: JSONDict, closed: bool) -> bool:
        group, topic = self._forum_topic(params)
        if topic.is_closed == closed:
            raise _bad_request("TOPIC_NOT_MODIFIED")
        topic.is_closed = closed
        kind = "forum_topic_closed" if closed else "forum_topic_reopened"
        self._service_message(group, topic, self.bot_user["id"], kind, {})
        return True

    def _delete_forum_topic(self, call: _Call) -> bool:
        group, topic = self._forum_topic(call.params)
        del group.topics[topic.thread_id]
        for key, message in list(self._messages.items()):
            if key[0] == group.chat_id and message.get("message_thread_id") == topic.thread_id:
                del self._messages[key]
        return True

    def _send_message(self, call: _Call) -> JSONDict:
        p = call.params
        chat_id = self._require_chat(p)
        text, entities = self._format_text(
            p.get("text"),
            p.get("parse_mode"),
            p.get("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
            empty="message text is empty",
        )
        markup = self._check_reply_markup(p.get("reply_markup"))
        self._check_forbidden(chat_id)
        message = self._new_bot_message(chat_id, self._placement(chat_id, p))
        message["text"] = text
        if entities:
            message["entities"] = entities
        return self._commit_sent(call, chat_id, message, markup)

    def _media_send(
        self, call: _Call, field: str, describe: Callable[[Any], tuple[str, Any]]
    ) -> JSONDict:
        """sendPhoto/sendDocument: the file (an upload, a file_id or a URL) and its caption
        are checked alike; `describe` turns the file into (message field, value)."""
        p = call.params
        chat_id = self._require_chat(p)
        media = p.get(field)
        if isinstance(media, str) and media.startswith("attach://"):
            media = p.get(media[len("attach://") :])
        if media is None or media == "":
            raise _bad_request(f"there is no {field} in the request")
        if isinstance(media, UploadedFile) and not media.data:
            raise _bad_request("file must be non-empty")
        caption, caption_entities = self._format_text(
            p.get("caption"),
            p.get("parse_mode"),
            p.get("caption_entities"),
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
            empty=None,
        )
        markup = self._check_reply_markup(p.get("reply_markup"))
        self._check_forbidden(chat_id)
        key, value = describe(media)
        message = self._new_bot_message(chat_id, self._placement(chat_id, p))
        message[key] = value
        if caption.strip():
            message["caption"] = caption
            if caption_entities:
                message["caption_entities"] = caption_entities
        return self._commit_sent(call, chat_id, message, markup)

    def _send_photo(self, call: _Call) -> JSONDict:
        def describe(photo: Any) -> tuple[str, Any]:
            sizes = self._photo_sizes(photo)
            self._remember_photo(sizes)
            return "photo", sizes

        return self._media_send(call, "photo", describe)

    def _send_document(self, call: _Call) -> JSONDict:
        """An upload (multipart part), a file_id the fake has sent before, or a URL."""

        def describe(document: Any) -> tuple[str, Any]:
            if isinstance(document, str) and not re.match(r"https?://", document):
                known = self._documents.get(document)
                if known is None:
                    raise _ApiError(400, WRONG_FILE_ID)
                return "document", _json_copy(known)
            self._file_counter += 1
            n = self._file_counter
            doc: JSONDict = {"file_id": f"BQACAgIAAxkDAAI{n:06d}", "file_unique_id": f"AgAD{n:06d}"}
            if isinstance(document, UploadedFile):
                doc.update(file_name=document.filename, mime_type=document.content_type, file_size=len(document.data))
            self._documents[doc["file_id"]] = doc
            return "document", doc

        return self._media_send(call, "document", describe)

    def _photo_sizes(self, photo: Any) -> list[JSONDict]:
        """PhotoSizes of a sent photo: an upload or URL makes a new file; a file_id must be
        one the fake has seen (a user's photo, an earlier send, ``register_file_id``)."""
        if isinstance(photo, str) and not re.match(r"https?://", photo):
            known = self._photos.get(photo)
            if known is None:
                raise _ApiError(400, WRONG_FILE_ID)
            # Re-sending a size sends that file: the sizes up to it, as Telegram stores them.
            index = next(i for i, size in enumerate(known) if size["file_id"] == photo)
            return _json_copy(known[: index + 1])
        self._file_counter += 1
        n = self._file_counter
        size = len(photo.data) if isinstance(photo, UploadedFile) else 50_000
        sizes = [(90, 67), (320, 240), (800, 600)]
        return [
            {
                "file_id": f"AgACAgIAAxkDAAI{n:06d}{i}",
                "file_unique_id": f"AQAD{n:06d}{i}",
                "file_size": max(1, size * (i + 1) // len(sizes)),
                "width": width,
                "height": height,
            }
            for i, (width, height) in enumerate(sizes)
        ]

    def _send_chat_action(self, call: _Call) -> bool:
        chat_id = self._require_chat(call.params)
        if not call.params.get("action"):
            raise _bad_request("wrong parameter action in request")
        self._check_forbidden(chat_id)
        return True

    def _answer_callback_query(self, call: _Call) -> bool:
        query_id = call.params.get("callback_query_id")
        if not isinstance(query_id, str) or self._callbacks.get(query_id, True):
            # Unknown id or already answered: Telegram says the same for both.
            raise _bad_request(QUERY_INVALID[len("Bad Request: ") :])
        self._callbacks[query_id] = True
        self.callback_answers[query_id] = dict(call.params)
        return True

    def _edit_message_text(self, call: _Call) -> JSONDict | bool:
        p = call.params
        text, entities = self._format_text(
            p.get("text"),
            p.get("parse_mode"),
            p.get("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
            empty="message text is empty",
        )
        markup = self._check_reply_markup(p.get("reply_markup"))
        if p.get("inline_message_id"):
            return True  # inline messages are not tracked; Telegram answers True for them
        chat_id, _, stored = self._editable_message(p)
        self._check_forbidden(chat_id)
        if "text" not in stored:
            raise _bad_request("there is no text in the message to edit")
        if (
            stored.get("text") == text
            and stored.get("entities", []) == entities
            and stored.get("reply_markup") == markup
        ):
            raise _ApiError(400, NOT_MODIFIED)
        stored["text"] = text
        stored.pop("entities", None)
        if entities:
            stored["entities"] = entities
        # Editing without reply_markup removes the inline keyboard, as on Telegram.
        stored.pop("reply_markup", None)
        if markup is not None:
            stored["reply_markup"] = markup
        stored["edit_date"] = int(time.time())
        return _json_copy(stored)

    def _edit_message_reply_markup(self, call: _Call) -> JSONDict | bool:
        p = call.params
        markup = self._check_reply_markup(p.get("reply_markup"))
        if p.get("inline_message_id"):
            return True
        chat_id, _, stored = self._editable_message(p)
        self._check_forbidden(chat_id)
        if stored.get("reply_markup") == markup:
            raise _ApiError(400, NOT_MODIFIED)
        stored.pop("reply_markup", None)
        if markup is not None:
            stored["reply_markup"] = markup
        stored["edit_date"] = int(time.time())
        return _json_copy(stored)

    def _delete_message(self, call: _Call) -> bool:
        chat_id = self._require_chat(call.params)
        message_id = _as_int(call.params.get("message_id"))
        if message_id is None or self._messages.pop((chat_id, message_id), None) is None:
            raise _bad_request("message to delete not found")
        return True

    async def _get_updates(self, call: _Call) -> list[JSONDict]:
        p = call.params
        if self.webhook is not None:
            raise _ApiError(409, GET_UPDATES_WEBHOOK_CONFLICT)
        offset = _as_int(p.get("offset"))
        limit = _as_int(p.get("limit"))
        limit = 100 if limit is None or limit <= 0 else min(limit, 100)
        timeout_value = p.get("timeout", 0)
        timeout = float(timeout_value) if isinstance(timeout_value, (int, float)) else 0.0
        if self.poll_timeout_ignored:
            timeout = 0.0
        allowed = p.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        self._confirm(offset)

        # A newer getUpdates terminates a waiting one, like Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()

        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            batch = self._deliverable(limit)
            if batch:
                return batch
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                return []
            changed = self._changed
            try:
                async with asyncio.timeout(remaining):  # not wait_for: on 3.11 it can eat a cancel
                    await changed.wait()
            except TimeoutError:
                pass
            if self.webhook is not None:
                raise _ApiError(409, GET_UPDATES_WEBHOOK_CONFLICT)
            if generation != self._poll_generation:
                raise _ApiError(409, GET_UPDATES_TERMINATED)

    def _confirm(self, offset: int | None) -> None:
        if offset is None or offset == 0:
            return
        if offset < 0:
            # Negative offset: keep only the last |offset| updates.
            while len(self._updates) > -offset:
                self._updates.popleft()
            return
        while self._updates and self._updates[0]["update_id"] < offset:
            self._updates.popleft()

    def _deliverable(self, limit: int) -> list[JSONDict]:
        wanted = set(self._allowed_updates)
        kept: deque[JSONDict] = deque()
        for update in self._updates:
            kind = _update_type(update)
            if wanted:
                allowed = kind in wanted
            else:
                allowed = kind not in _OPT_IN_UPDATE_TYPES
            if allowed:  # Telegram drops updates of types the bot did not ask for
                kept.append(update)
        self._updates = kept
        return [_json_copy(update) for update in list(kept)[:limit]]

    def _set_webhook(self, call: _Call) -> _Described:
        p = call.params
        url = p.get("url") or ""
        if not isinstance(url, str):
            raise _bad_request("bad webhook: Webhook URL is invalid")
        if url == "":
            return self._remove_webhook(bool(p.get("drop_pending_updates")))
        # Real Telegram demands https on ports 443/80/88/8443; the fake accepts local http.
        if not re.match(r"https?://\S+", url):
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.get("secret_token") or None
        if secret is not None and not _SECRET_RE.fullmatch(str(secret)):
            raise _bad_request("secret token contains unallowed characters")
        allowed = p.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed]
        max_connections = _as_int(p.get("max_connections")) or 40
        if p.get("drop_pending_updates") is True:
            self._updates.clear()
        new = WebhookConfig(
            url=url,
            secret_token=str(secret) if secret is not None else None,
            allowed_updates=list(self._allowed_updates) or None,
            max_connections=max_connections,
        )
        already = self.webhook == new
        self.webhook = new
        self._notify()  # a pending long poll must now fail with 409
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    def _delete_webhook(self, call: _Call) -> _Described:
        return self._remove_webhook(call.params.get("drop_pending_updates") is True)

    def _remove_webhook(self, drop_pending: bool) -> _Described:
        if drop_pending:
            self._updates.clear()
        was_set = self.webhook is not None
        self.webhook = None
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    def _get_webhook_info(self, call: _Call) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook.max_connections
            info["ip_address"] = "127.0.0.1"
            if self.webhook.allowed_updates:
                info["allowed_updates"] = list(self.webhook.allowed_updates)
        return info

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        scope_obj = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope_obj, sort_keys=True), str(language_code or "")

    def _set_my_commands(self, call: _Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        cleaned: list[JSONDict] = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            if not isinstance(name, str) or not _COMMAND_RE.fullmatch(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        if cleaned:
            self._commands[key] = cleaned
        else:
            self._commands.pop(key, None)
        return True

    def _delete_my_commands(self, call: _Call) -> bool:
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        self._commands.pop(key, None)
        return True

    def _get_my_commands(self, call: _Call) -> list[JSONDict]:
        key = self._commands_key(call.params.get("scope"), call.params.get("language_code"))
        return _json_copy(self._commands.get(key, []))

