"""An in-process fake of the Zalo OA API v3 (aiohttp), for tests.

It behaves like the platform as its documentation describes it (see bot/channels/zalo/channel.py):
- POST /v3.0/oa/message/cs: checks the access_token header (unknown or revoked: -216,
  expired: -216), that the user follows the OA (-213), the customer-care window (no
  interaction within `window`: -230) and the OA's quota (-211); records what was sent and
  answers {"error": 0, "data": {"message_id", "quota"}}. A recipient {"message_id"} (a
  message the user sent, within 48 h, up to 8 times) is a free reply (quota_type "reply");
  one by {"user_id"} only is a proactive message, billed (Zalo OA's support: "a message with
  only user_id and no message_id is counted as a proactive message"). It can be told to answer HTTP 5xx, to
  time out, or an error code, for the next requests.
- POST /v4/oa/access_token: header secret_key must be the app secret; the refresh token is
  single use (a used one is refused); answers a new pair with expires_in "90000".
- `send_event` POSTs a webhook event to the bot, signed as Zalo signs it
  (X-ZEvent-Signature: mac=sha256(app_id + body + timestamp + OA secret key)); it also
  counts as the user's interaction (the window) and a follow makes them a follower.
  `post_raw` sends anything (bad signatures, stale timestamps, malformed bodies);
  `post_test_ping` is Zalo's unsigned test POST ({}) sent when a webhook URL is saved.
- ZNS (business.openapi.zalo.me): POST /message/template checks the token (-124), the
  template registry (-109 unknown template, -112 a missing or unknown parameter), the phone
  (-108 not a phone, -118 not on Zalo), the night ban (-133, 22:00-06:00 Vietnam time), the
  OA's daily quota (-144) and the account's balance (-115); a tracking_id already sent
  answers the same msg_id and is not charged again. GET /rating/get answers the ratings
  given (`rate`) by submit time; GET /v3.0/oa/user/detail answers user_is_follower and
  user_last_interaction_date ("dd/MM/yyyy", Vietnam's day).
"""
from __future__ import annotations


import asyncio
import hashlib
import itertools
import json
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any

import aiohttp
from aiohttp import web

from bot.clock import Clock
from tests.secrets_guard import add_secret

TOKEN_LIFETIME = timedelta(seconds=90000)  # 25 h, as the platform gives
VIETNAM = timezone(timedelta(hours=7))
NIGHT_BAN = (time(22, 0), time(6, 0))
WINDOW = timedelta(days=7)


MAX_TEXT = 2000  # characters of a text, or of a template's text


@dataclass
class SentMessage:
    user_id: str
    message: dict[str, Any]
    message_id: str
    at: datetime
    wall: float = field(default_factory=_time.monotonic)  # when it arrived, on the machine's clock (benches)
    reply_to: str | None = None  # the user's message it answered (recipient.message_id), if any

    @property
    def text(self) -> str:
        if "text" in self.message:
            return self.message["text"]
        payload = self.message.get("attachment", {}).get("payload", {})
        return payload.get("text", "")

    @property
    def is_info_request(self) -> bool:
        return self.message.get("attachment", {}).get("payload", {}).get("template_type") == "request_user_info"

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return self.message.get("attachment", {}).get("payload", {}).get("buttons", [])


@dataclass
class ZnsMessage:
    phone: str
    template_id: str
    data: dict[str, Any]
    tracking_id: str
    msg_id: str
    at: datetime
    wall: float = field(default_factory=_time.monotonic)


@dataclass
class Counters:
    message_requests: int = 0
    replies: int = 0  # CS messages sent as replies to a user's message (free)
    proactive: int = 0  # CS messages by user id only (billed, and only for a verified OA)
    refreshes: int = 0
    refused_refreshes: int = 0
    errors: dict[int, int] = field(default_factory=dict)


class FakeZaloServer:
    def __init__(
        self,
        clock: Clock,
        *,
        app_id: str = "1234567890123456789",
        app_secret: str = "app-secret-ABCDEF123456",
        oa_secret_key: str = "oa-secret-KEY0123456789",
        oa_id: str = "3886132808798806450",
        access_token: str = "AT-initial-0000000000",
        refresh_token: str = "RT-initial-0000000000",
        window: timedelta = WINDOW,
    ) -> None:
        self.clock = clock
        self.app_id = app_id
        self.app_secret = app_secret
        self.oa_secret_key = oa_secret_key
        self.oa_id = oa_id
        self.window = window
        for value, name in ((app_secret, "the Zalo app secret"), (oa_secret_key, "the Zalo OA secret key"),
                            (access_token, "the Zalo access token"), (refresh_token, "the Zalo refresh token")):
            add_secret(value, name)  # the session's log guard (tests/secrets_guard.py) looks for these
        self.access_tokens: dict[str, datetime | None] = {access_token: None}  # None: no expiry known
        self.refresh_tokens: set[str] = {refresh_token}
        self.followers: set[str] = set()
        self.last_interaction: dict[str, datetime] = {}
        self.quota: int | None = None  # messages the OA may still send; None: unlimited
        self.messages: list[SentMessage] = []
        self.user_messages: dict[str, tuple[str, datetime, int]] = {}  # msg_id -> (user, sent at, replies used)
        self._taken: dict[str, int] = {}  # per user: how many messages next_to has handed out
        self.counters = Counters()
        self.refuse_buttons = False  # answer -233 to button templates (an OA without them)
        # ZNS
        self.templates: dict[str, tuple[frozenset[str], bool]] = {}  # id -> (parameter names, rating template?)
        self.zns_messages: list[ZnsMessage] = []
        self.charges: dict[str, int] = {}  # tracking_id -> times charged (a second charge is a bug of ours or theirs)
        self.zns_requests = 0
        self.zns_price = 200
        self.balance_vnd: int | None = None  # None: unlimited
        self.zns_daily_quota: int | None = None
        self._zns_day_count: dict[str, int] = {}
        self.zalo_phones: set[str] | None = None  # phones with a Zalo account; None: every phone
        self.ratings: list[dict[str, Any]] = []
        self.night_ban = True
        self.detail_requests = 0
        self._zns_faults: list[str] = []
        self._faults: list[str] = []
        self._token_faults: list[bytes] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    async def __aenter__(self) -> "FakeZaloServer":
        app = web.Application()
        app.router.add_post("/v3.0/oa/message/cs", self._message)
        app.router.add_post("/v4/oa/access_token", self._token)
        app.router.add_post("/message/template", self._zns_send)
        app.router.add_get("/rating/get", self._rating_get)
        app.router.add_get("/v3.0/oa/user/detail", self._user_detail)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- controls ----------------------------------------------------------------------------

    def fail_next(self, *faults: str) -> None:
        """'500' (HTTP 500), 'timeout' (answers after 3 s, message delivered) or an error code like '-32'."""
        self._faults.extend(faults)

    def zns_fail_next(self, *faults: str) -> None:
        """For the next ZNS sends: 'timeout' (charged and recorded, the answer comes after 3 s),
        '500', an error code like '-100', or 'none' (no fault: the one after it is for a later send)."""
        self._zns_faults.extend(faults)

    def token_fail_next(self, *bodies: bytes) -> None:
        """The next token requests are answered HTTP 200 with these raw bodies (odd answers like
        b"true", b"[]", b"null" or HTML); the refresh token is not used up."""
        self._token_faults.extend(bodies)

    def register_template(self, template_id: str, params: set[str] | frozenset[str], *, rating: bool = False) -> None:
        self.templates[str(template_id)] = (frozenset(params), rating)

    def zns_to(self, phone: str) -> list[ZnsMessage]:
        return [m for m in self.zns_messages if m.phone == phone]

    def rate(self, message: ZnsMessage, score: int, note: str = "", feedbacks: tuple[str, ...] = ()) -> None:
        """The customer answers a rating template."""
        self.ratings.append({"msgId": message.msg_id, "rate": score, "note": note, "feedbacks": list(feedbacks),
                             "submitDate": str(int(self.clock.now().timestamp() * 1000)),
                             "trackingId": message.tracking_id, "template_id": message.template_id})

    @property
    def double_charges(self) -> int:
        return sum(n - 1 for n in self.charges.values() if n > 1)

    async def post_test_ping(self, bot_url: str) -> int:
        """What Zalo sends when a webhook URL is saved: an unsigned {}."""
        return await self.post_raw(bot_url, b"{}", {})

    def revoke(self, access_token: str) -> None:
        self.access_tokens.pop(access_token, None)

    def add_follower(self, user_id: str, interacted_at: datetime | None = None) -> None:
        """A user who follows the OA and wrote to it at `interacted_at` (default: now)."""
        self.followers.add(user_id)
        self.last_interaction[user_id] = interacted_at or self.clock.now()

    def sent_to(self, user_id: str) -> list[SentMessage]:
        return [m for m in self.messages if m.user_id == user_id]

    async def next_to(self, user_id: str, timeout: float = 5.0, *, info_requests: bool = False) -> SentMessage:
        """The first message to this user that a test has not taken yet (a cursor, so a
        message that arrived before the test asked is not skipped). The bot's one-time
        request_user_info form is passed over unless asked for."""
        while True:
            index = self._taken.get(user_id, 0)
            message = (await self.wait_for_messages(user_id, index + 1, timeout))[index]
            self._taken[user_id] = index + 1
            if info_requests or not message.is_info_request:
                return message

    async def wait_for_messages(self, user_id: str, count: int, timeout: float = 5.0) -> list[SentMessage]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            got = self.sent_to(user_id)
            if len(got) >= count:
                return got
            await asyncio.sleep(0.02)
        raise AssertionError(f"{user_id} got {len(self.sent_to(user_id))} message(s), expected {count}: "
                             f"{[m.text for m in self.sent_to(user_id)]}")

    # --- webhook events to the bot -------------------------------------------------------------

    def make_event(
        self, event_name: str, user_id: str, *, text: str | None = None, image_urls: tuple[str, ...] = (),
        msg_id: str | None = None, timestamp: datetime | None = None, info: dict[str, Any] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """An event as Zalo sends it. `attachments` as Zalo writes them, for the other user_send_*
        events: {"type": "sticker", "payload": {"id", "url"}}, {"type": "link", "payload": {"url",
        "description", "thumbnail"}}, "audio" / "video" / "file" / "gif" ({"url"}), "location"
        ({"coordinates": {"latitude", "longitude"}})."""
        at = timestamp or self.clock.now()
        event: dict[str, Any] = {"app_id": self.app_id, "user_id_by_app": f"app-{user_id}", "event_name": event_name,
                                 "timestamp": str(int(at.timestamp() * 1000))}
        if event_name in ("follow", "unfollow"):
            event.update(oa_id=self.oa_id, follower={"id": user_id}, source="oa_profile")
            return event
        event.update(sender={"id": user_id}, recipient={"id": self.oa_id})
        if info is not None:
            event["info"] = info
            return event
        message: dict[str, Any] = {"msg_id": msg_id or f"msg-{next(self._ids)}"}
        if text is not None:
            message["text"] = text
        if image_urls:
            message["attachments"] = [{"type": "image", "payload": {"url": u, "thumbnail": u}} for u in image_urls]
        if attachments is not None:
            message["attachments"] = attachments
        event["message"] = message
        return event

    def sign(self, raw: bytes, timestamp: str, *, secret: str | None = None) -> str:
        digest = hashlib.sha256(self.app_id.encode() + raw + timestamp.encode() + (secret or self.oa_secret_key).encode())
        return "mac=" + digest.hexdigest()

    async def send_event(self, bot_url: str, event: dict[str, Any]) -> int:
        """POST a correctly signed event, as Zalo does; the user's interaction counts from now."""
        raw = json.dumps(event, ensure_ascii=False).encode()
        status = await self.post_raw(bot_url, raw, {"X-ZEvent-Signature": self.sign(raw, event["timestamp"])})
        user = (event.get("sender") or event.get("follower") or {}).get("id")
        msg_id = (event.get("message") or {}).get("msg_id")
        if user and msg_id and status == 200 and event["event_name"].startswith("user_send_"):
            self.user_messages[msg_id] = (user, self.clock.now(), 0)
        if user and status == 200:
            if event["event_name"] == "unfollow":
                self.followers.discard(user)
            else:  # a user who follows or writes to the OA may get its customer-care messages
                self.followers.add(user)
                self.last_interaction[user] = self.clock.now()
        return status

    async def post_raw(self, bot_url: str, raw: bytes, headers: dict[str, str], content_type: str = "application/json") -> int:
        assert self._session is not None
        async with self._session.post(
            f"{bot_url}/webhooks/zalo", data=raw, headers={"Content-Type": content_type, **headers}
        ) as response:
            await response.read()
            return response.status

    # --- the API -------------------------------------------------------------------------------

    def _error(self, code: int, message: str) -> web.Response:
        self.counters.errors[code] = self.counters.errors.get(code, 0) + 1
        return web.json_response({"error": code, "message": message})

    async def _message(self, request: web.Request) -> web.StreamResponse:
        self.counters.message_requests += 1
        fault = self._faults.pop(0) if self._faults else None
        if fault == "500":
            return web.json_response({"error": -500, "message": "internal"}, status=500)
        if fault is not None and fault.startswith("-"):
            return self._error(int(fault), "injected error")
        token = request.headers.get("access_token", "")
        if token not in self.access_tokens:
            return self._error(-216, "Access token is invalid")
        expires = self.access_tokens[token]
        if expires is not None and self.clock.now() >= expires:
            return self._error(-216, "Access token is invalid")
        try:
            body = await request.json()
            recipient = body["recipient"]
            reply_to = recipient.get("message_id")
            user_id = recipient["user_id"] if reply_to is None else self.user_messages[reply_to][0]
            message = body["message"]
            assert isinstance(user_id, str) and isinstance(message, dict) and ("text" in message or "attachment" in message)
        except (ValueError, KeyError, TypeError, AssertionError, AttributeError):
            return self._error(-201, "message is invalid")
        if len(SentMessage(user_id, message, "", self.clock.now()).text) > MAX_TEXT:
            return self._error(-201, "message is invalid (text longer than 2000 characters)")
        if self.refuse_buttons and message.get("attachment", {}).get("payload", {}).get("buttons"):
            return self._error(-233, "message type is invalid or not support")
        if user_id not in self.followers:
            return self._error(-213, "User has not followed OA")
        last = self.last_interaction.get(user_id)
        if last is None or self.clock.now() - last > self.window:
            return self._error(-230, "User has not interacted with the OA in the past 7 days")
        if self.quota is not None:
            if self.quota <= 0:
                return self._error(-211, "Out of quota")
            self.quota -= 1
        quota: dict[str, Any] = {}
        if reply_to is not None:
            _, at, used = self.user_messages[reply_to]
            if self.clock.now() - at <= timedelta(hours=48) and used < 8:
                self.user_messages[reply_to] = (user_id, at, used + 1)
                quota = {"quota_type": "reply", "remain": str(7 - used), "total": "8"}
        if quota:
            self.counters.replies += 1
        else:  # by user id only, or past the reply's 48 h / 8 messages: proactive, billed
            self.counters.proactive += 1
        sent = SentMessage(user_id, message, f"zmsg-{next(self._ids)}", self.clock.now(), reply_to=reply_to)
        self.messages.append(sent)
        if fault == "timeout":
            await asyncio.sleep(3.0)  # delivered, but the answer comes too late
        data: dict[str, Any] = {"message_id": sent.message_id, "user_id": user_id, **({"quota": quota} if quota else {})}
        return web.json_response({"error": 0, "message": "Success", "data": data})

    def _token_ok(self, request: web.Request) -> bool:
        token = request.headers.get("access_token", "")
        if token not in self.access_tokens:
            return False
        expires = self.access_tokens[token]
        return expires is None or self.clock.now() < expires

    async def _zns_send(self, request: web.Request) -> web.StreamResponse:
        self.zns_requests += 1
        fault = self._zns_faults.pop(0) if self._zns_faults else None
        if fault == "500":
            return web.json_response({"error": -500, "message": "internal"}, status=500)
        if fault is not None and fault.startswith("-"):
            return self._error(int(fault), "injected error")
        if not self._token_ok(request):
            return self._error(-124, "Access token is invalid")
        try:
            body = await request.json()
            phone, template_id, data = body["phone"], str(body["template_id"]), body.get("template_data") or {}
            tracking_id = str(body.get("tracking_id") or "")
            assert isinstance(phone, str) and isinstance(data, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._error(-121, "Body is invalid")
        if not (phone.isdigit() and phone.startswith("84") and 10 <= len(phone) <= 12):
            return self._error(-108, "Phone number invalid")
        if template_id not in self.templates:
            return self._error(-109, "Template ID invalid")
        params, _ = self.templates[template_id]
        if set(data) != set(params) or not all(isinstance(v, str) and v for v in data.values()):
            return self._error(-112, f"Template data invalid: expected {sorted(params)}, got {sorted(data)}")
        if tracking_id and tracking_id in self.charges:  # the same message again: not sent or charged twice
            sent = next(m for m in self.zns_messages if m.tracking_id == tracking_id)
            return web.json_response({"error": 0, "message": "Success", "data": {"msg_id": sent.msg_id}})
        now_local = self.clock.now().astimezone(VIETNAM).time()
        if self.night_ban and (now_local >= NIGHT_BAN[0] or now_local < NIGHT_BAN[1]):
            return self._error(-133, "Sending ZNS during night time is not allowed")
        if self.zalo_phones is not None and phone not in self.zalo_phones:
            return self._error(-118, "Zalo account not existed")
        day = self.clock.now().astimezone(VIETNAM).date().isoformat()
        if self.zns_daily_quota is not None and self._zns_day_count.get(day, 0) >= self.zns_daily_quota:
            return self._error(-144, "OA has exceeded daily quota")
        if self.balance_vnd is not None:
            if self.balance_vnd < self.zns_price:
                return self._error(-115, "Out of quota")
            self.balance_vnd -= self.zns_price
        self._zns_day_count[day] = self._zns_day_count.get(day, 0) + 1
        message = ZnsMessage(phone, template_id, data, tracking_id, f"zns-{next(self._ids)}", self.clock.now())
        self.zns_messages.append(message)
        self.charges[tracking_id or message.msg_id] = self.charges.get(tracking_id or message.msg_id, 0) + 1
        if fault == "timeout":
            await asyncio.sleep(3.0)  # sent and charged; the answer comes too late
        quota = {"dailyQuota": str(self.zns_daily_quota or 500),
                 "remainingQuota": str((self.zns_daily_quota or 500) - self._zns_day_count[day])}
        return web.json_response({"error": 0, "message": "Success", "data": {
            "msg_id": message.msg_id, "sent_time": str(int(self.clock.now().timestamp() * 1000)), "quota": quota}})

    async def _rating_get(self, request: web.Request) -> web.Response:
        if not self._token_ok(request):
            return self._error(-124, "Access token is invalid")
        q = request.query
        try:
            template_id, start, end = q["template_id"], int(q["from_time"]), int(q["to_time"])
            offset, limit = int(q.get("offset", "0")), int(q.get("limit", "100"))
        except (KeyError, ValueError):
            return self._error(-201, "Invalid parameter")
        found = [{k: v for k, v in r.items() if k != "template_id"} for r in self.ratings
                 if r["template_id"] == template_id and start <= int(r["submitDate"]) <= end]
        return web.json_response({"error": 0, "message": "Success",
                                  "data": {"total": len(found), "data": found[offset:offset + limit]}})

    async def _user_detail(self, request: web.Request) -> web.Response:
        self.detail_requests += 1
        if not self._token_ok(request):
            return self._error(-216, "Access token is invalid")
        try:
            user_id = str(json.loads(request.query["data"])["user_id"])
        except (KeyError, ValueError, TypeError):
            return self._error(-201, "Invalid parameter")
        last = self.last_interaction.get(user_id)
        if last is None and user_id not in self.followers:
            return self._error(-213, "User has not followed OA")
        day = last.astimezone(VIETNAM).strftime("%d/%m/%Y") if last else ""
        return web.json_response({"error": 0, "message": "Success", "data": {
            "user_id": user_id, "display_name": "Khách", "user_is_follower": user_id in self.followers,
            "user_last_interaction_date": day}})

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self._token_faults:
            return web.Response(body=self._token_faults.pop(0), content_type="application/json")
        if request.headers.get("secret_key") != self.app_secret or form.get("app_id") != self.app_id:
            self.counters.refused_refreshes += 1
            return web.json_response({"error": -14003, "error_name": "Invalid app", "error_description": "wrong app"})
        refresh = str(form.get("refresh_token", ""))
        if form.get("grant_type") != "refresh_token" or refresh not in self.refresh_tokens:
            self.counters.refused_refreshes += 1
            return web.json_response({"error": -14014, "error_name": "Invalid refresh token", "error_description": "used or unknown"})
        self.refresh_tokens.discard(refresh)  # single use
        n = next(self._ids)
        access, new_refresh = f"AT-{n:06d}-rotated", f"RT-{n:06d}-rotated"
        self.access_tokens[access] = self.clock.now() + TOKEN_LIFETIME
        self.refresh_tokens.add(new_refresh)
        add_secret(access, "a rotated Zalo access token")
        add_secret(new_refresh, "a rotated Zalo refresh token")
        self.counters.refreshes += 1
        return web.json_response({"access_token": access, "refresh_token": new_refresh, "expires_in": "90000"})
