"""Zalo Official Account (OA API v3): webhook events in, customer-care ("tư vấn") messages out.

What the platform does, and where we read it (the official pages are
https://developers.zalo.me/docs/official-account/webhook/tong-quan (webhook),
.../tin-nhan/tin-tu-van/gui-tin-tu-van (sending) and
.../bat-dau/xac-thuc-va-uy-quyen-cho-ung-dung-new (tokens); we checked them through
public write-ups that quote them: hainh.me/zalo-api-php-webhook-callback-official-account.html,
the integration notes in github.com/hoangnd25/monorepo wip/zalo-platform-integration.md,
and chatwoot/chatwoot's Zalo OA channel):

- Webhook: POST with JSON {"app_id", "event_name", "sender": {"id"}, "recipient": {"id"},
  "message": {"msg_id", "text", "attachments": [{"type": "image", "payload": {"url"}}]},
  "timestamp": "<ms>", "user_id_by_app"}; follow/unfollow carry "follower": {"id"} and
  "oa_id" instead of sender/recipient; user_submit_info carries "info": {"name", "phone"}.
  Signature: header X-ZEvent-Signature = "mac=" + sha256(app_id + raw body + timestamp +
  OA secret key) in hex, where timestamp is the one in the body and the key is the OA
  secret key (not the app secret). Zalo wants a 200 within ~2 s, redelivers failures
  (30 s, 5 min, 15 min, 30 min, 1 h) and then disables the webhook: we verify, record
  and acknowledge, and handle the event after the answer when it takes longer.
- Sending: POST {api}/v3.0/oa/message/cs, header access_token, body {"recipient":
  {"user_id"}, "message": {"text"}} or an attachment template with buttons; within 48 h of
  the user's last message the recipient is {"message_id": <that msg_id>} instead (Zalo OA's
  support, zalooa.freshdesk.com article 64000263278: a message with only user_id and no
  message_id is counted as proactive, i.e. billed; a reply is free, 8 per message); answer
  {"error": 0, "message": "Success", "data": {"message_id"}}. Errors we act on: -216
  (invalid access token) and -220 (expired): refresh once and retry once; -213 (user not
  following the OA); -230 / -232 (no interaction in the last 7 days: the customer-care
  window is closed); -211 / -218 (quota); -32 (too many calls per minute).
- Tokens: the access token lives ~25 h; POST {oauth}/v4/oa/access_token with header
  secret_key (the app secret) and form app_id, grant_type=refresh_token, refresh_token
  answers a NEW access token and a NEW refresh token (single use: the old one is dead),
  expires_in in seconds (sometimes a string).

ZNS (template messages by phone) and routing, added for issue 17. What we confirmed, and where
(search over public integrations and Zalo Cloud's pages; the official developer site is not
reachable from here):
- Confirmed by several independent integrations: POST {zns}/message/template, header
  access_token (the OA token), JSON {"phone": "84...", "template_id", "template_data": {...},
  "tracking_id"}; answer {"error": 0, "message", "data": {"msg_id", "sent_time", "quota":
  {"dailyQuota", "remainingQuota"}}} (the quota part we read when present, never rely on).
- Confirmed (zalo.cloud/zns/guidelines/handle-error-code): -100 unknown error, "try again
  later" (retried); -108 phone number invalid; -109 template id invalid; -111/-112 template
  data empty/invalid. From the same list's order (helpdesk.getfly.vn copies it): the user
  inactive or refusing ZNS, out of balance (quota), not a Zalo account, cannot receive.
- Still uncertain after a second search (docs/zalo-facts.md has the sources): -124 invalid
  access token on the ZNS API; -133 sent in the night ban (22:00-06:00); -144 the OA's daily
  quota. No page we could read gives these numbers (Zalo Cloud's table, as stored, stops at
  -112; its copy at helpdesk.getfly.vn lists the later errors by name only). We never send in
  the night ban ourselves, so -133 only pauses the channel. The price per message is not one
  figure: 150-350 VND by template type plus paid buttons (resellers quoting VNG's policy),
  charged only when processed successfully; price_vnd is the owner's.
- Confirmed by many integrations: GET {zns}/rating/get?template_id&from_time&to_time
  (ms)&offset&limit, header access_token; answer data.data = [{"msgId", "rate", "note",
  "feedbacks": [...], "submitDate", "trackingId"}] (eSMS's GetRating mirrors these fields).
- Confirmed by many integrations: GET {api}/v3.0/oa/user/detail?data={"user_id"} answers
  data.user_is_follower and data.user_last_interaction_date as "dd/MM/yyyy" (a day, not a
  time: we take its first moment in Vietnam's time, the safe side of the 7-day window).
  (The facts file's POST /v3.0/oa/quota/message is unconfirmed: not used.)
- Confirmed (eSMS's documented payload, which wraps Zalo's): a CS attachment template
  {"template_type": "request_user_info", "elements": [{"title", "subtitle", "image_url"}]}.
- tracking_id is our outbox row id. Zalo echoes it back; that Zalo refuses to charge a second
  message with the same tracking_id is NOT documented anywhere we could read (one integration
  calls it a reconciliation id): a ZNS send that timed out is retried with the same
  tracking_id (the fake server dedupes by it), which is the issue's contract; see README for
  the risk.

Where the documents were unclear we chose the safe side (said again where it applies):
an event with neither msg_id nor mid gets a hash of its fields as dedupe key; a stale
event is acknowledged (200) and dropped, logged (non-2xx brings retries, then Zalo disables
the webhook); a button tap may arrive as
user_send_text or user_click_button, so both are read; a button message the API refuses
(-201 / -233) is sent again as numbered text; no delivery is ever retried after a
timeout once the request was sent (Zalo has no idempotency key either).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Protocol

import aiohttp

from bot.channels.base import Ambiguous, Permanent, RetryLater, Transient, send_in_parts, split_command, split_text
from bot.clock import Clock
from flows.model import Inbound
from flows.survey_routes import CS_WINDOW, RatingItem
from storage import settings
from storage import zalo as zalo_store
from storage.db import Connection, Database
from storage.zalo import TokenPair

log = logging.getLogger(__name__)

NAME = "zalo"
WEBHOOK_PATH = "/webhooks/zalo"
SIGNATURE_HEADER = "X-ZEvent-Signature"
MESSAGE_PATH = "/v3.0/oa/message/cs"
TOKEN_PATH = "/v4/oa/access_token"
CHOICE_PREFIX = "fb:"  # our buttons' postback payload: prefix + the flow's choice data
MAX_TEMPLATE_BUTTONS = 5  # more choices than this: numbered text (a safe reading of the limits)
MAX_TEXT = 2000  # characters of a customer-care text message

ZNS_TEMPLATE_PATH = "/message/template"
ZNS_RATING_PATH = "/rating/get"
USER_DETAIL_PATH = "/v3.0/oa/user/detail"
VIETNAM = timezone(timedelta(hours=7))  # Zalo's dates (user_last_interaction_date) are Vietnam's

TOKEN_ERRORS = frozenset({-216, -220})
ZNS_TOKEN_ERRORS = frozenset({-124, -216, -220})  # -124 unconfirmed (docs/zalo-facts.md): refreshed once
# Not sendable now and not on a retry either: recorded as failed with the reason, never retried.
NOT_SENDABLE = {
    -213: "unfollowed",
    -230: "window_closed",
    -232: "window_closed",
    -217: "window_closed",  # per Chatwoot's Zalo channel
    -211: "quota_exceeded",
    -218: "quota_exceeded",
    -227: "user_inactive",
    -244: "user_restricted",
}
RETRYABLE = frozenset({-100, -248})  # unknown error / temporary: "try again later"
BUTTONS_REFUSED = frozenset({-201, -233})
ZNS_NIGHT_BAN = -133  # unconfirmed (docs/zalo-facts.md): waits for the ban's end
ZNS_DAILY_QUOTA = -144  # unconfirmed: waits an hour
ZNS_OUT_OF_BALANCE = -115
# ZNS answers that mean this phone cannot get it: not retried, the survey is not delivered.
ZNS_NOT_SENDABLE = {
    -108: "zns_phone_invalid",
    -114: "zns_user_unavailable",
    -118: "zns_not_on_zalo",
    -119: "zns_cannot_receive",
    -139: "zns_user_refused",
}
ZNS_TEMPLATE_ERRORS = frozenset({-109, -111, -112, -117})  # the owner's config: logged as an error
RATE_LIMITED = -32
FREE_REPLY_WINDOW = timedelta(hours=48)  # a message naming the user's message within this is a (free) reply
RATE_LIMIT_PAUSE = 60.0  # -32 is a per-minute limit
# Answers a reply would get by user id too (sent, the token, the rate, the user): no resend by user id.
_NOT_ABOUT_THE_RECIPIENT = frozenset({0, RATE_LIMITED, *TOKEN_ERRORS, *RETRYABLE, *NOT_SENDABLE})

_HANDLED = ("user_send_text", "user_click_button", "user_send_image", "follow", "unfollow", "user_submit_info")
# The user's other messages to the OA: messages without text (a link: its URL), as Telegram's
# stickers and voice notes are, so the customer hears what we can read instead of nothing.
_OTHER_MESSAGES = ("user_send_link", "user_send_sticker", "user_send_gif", "user_send_audio", "user_send_video",
                   "user_send_file", "user_send_location", "user_send_business_card")


# --- the webhook's signature -----------------------------------------------------------------


def signature(app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """mac = sha256(app_id + raw body + timestamp + OA secret key), hex."""
    return hashlib.sha256(app_id.encode() + raw_body + timestamp.encode() + oa_secret_key.encode()).hexdigest()


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# The event's own "timestamp" (milliseconds) as it appears in the raw body: the signature is
# checked before the body is parsed (an unsigned body nested 50,000 deep must cost nothing but
# this scan). A body with several (a nested one) gets each tried, the first few only.
_TIMESTAMP = re.compile(rb'"timestamp"\s*:\s*"?([0-9]{1,20})"?')
MAX_TIMESTAMPS_TRIED = 4


class WebhookPing(Exception):
    """Zalo's unsigned test POST (body {}) when the webhook URL is saved: answered 200, nothing stored."""


class Stale(Exception):
    """A correctly signed event too far from now: answered 200 and dropped (a non-2xx answer
    brings Zalo's retries, then a disabled webhook)."""


_OA_ID = re.compile(rb'"(?:oa_id)"\s*:\s*"([0-9]{1,30})"')


def is_test_ping(raw_body: bytes, header: str) -> bool:
    return not header.strip() and raw_body.strip() in (b"{}", b"")


def verify(
    raw_body: bytes, header: str, *, app_id: str, oa_secret_key: str, max_age: timedelta, now: datetime
) -> dict[str, Any]:
    """The event if its signature is right and it is fresh; WebhookPing for Zalo's unsigned test
    POST, Stale for a signed event too old, Rejected(400/401) otherwise. The signature is
    checked on the raw bytes before any JSON is parsed."""
    if is_test_ping(raw_body, header):
        raise WebhookPing()
    candidates = list(dict.fromkeys(m.group(1).decode("ascii") for m in _TIMESTAMP.finditer(raw_body)))
    if not candidates:
        raise Rejected(400, "timestamp: missing or not milliseconds")
    given = header.strip()
    if given.lower().startswith("mac="):
        given = given[4:].strip()
    given_bytes = given.lower().encode("utf-8", "surrogateescape")
    signed = next((t for t in candidates[:MAX_TIMESTAMPS_TRIED]
                   if hmac.compare_digest(given_bytes, signature(app_id, raw_body, t, oa_secret_key).encode())), None)
    if signed is None:
        # Some community code signs with the OA id first: compute it too and say which matched.
        oa_ids = [m.group(1).decode("ascii") for m in _OA_ID.finditer(raw_body)][:2]
        signed = next((t for o in oa_ids for t in candidates[:MAX_TIMESTAMPS_TRIED]
                       if hmac.compare_digest(given_bytes, signature(o, raw_body, t, oa_secret_key).encode())), None)
        if signed is None:
            log.warning("zalo webhook: the signature matched neither variant (app_id first, oa_id first)")
            raise Rejected(401, "missing or wrong X-ZEvent-Signature")
        log.warning("zalo webhook: the signature matched the oa_id-first variant, not Zalo's documented app_id-first")
    else:
        log.debug("zalo webhook: the signature matched the app_id-first variant")
    try:
        payload = json.loads(raw_body.decode("utf-8"))
    except (ValueError, RecursionError):  # signed, yet not JSON: Zalo's own bug, or our secret leaked
        raise Rejected(400, "body: not valid JSON") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "body: expected a JSON object")
    timestamp = payload.get("timestamp")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if timestamp != signed:  # the signature covered another "timestamp" than the event's own
        raise Rejected(401, "missing or wrong X-ZEvent-Signature")
    if str(payload.get("app_id", app_id)) != app_id:
        raise Rejected(401, "event for another app")
    try:
        at = datetime.fromtimestamp(int(timestamp) / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise Rejected(400, "stale event: timestamp out of range") from None
    if abs(now - at) > max_age:
        # A replayed or very late event. Zalo stops redelivering after ~2 h, so the default
        # max age (zalo.max_event_age) covers its retries.
        raise Stale(f"event {payload.get('event_name')!r} at {at.isoformat()} is more than {max_age} from now")
    return payload


# --- the token pair ----------------------------------------------------------------------------


class TokenStore(Protocol):
    async def load(self) -> TokenPair | None: ...
    async def save(self, pair: TokenPair) -> None: ...


class DbTokenStore:
    """The rotated pair in the database. It wins over the config's pair it was rotated from,
    not over a new pair put in the config (the app re-authorized after a lapsed refresh token):
    the settings keep a hash of the configured refresh token each rotation started from."""

    def __init__(self, db: Database, clock: Clock, configured_refresh_token: str = "") -> None:
        self.db = db
        self.clock = clock
        self.configured = zalo_store.fingerprint(configured_refresh_token)

    async def load(self) -> TokenPair | None:
        async with self.db.transaction() as tx:
            stored = await zalo_store.load_tokens(tx)
            if stored is None:
                return None
            rotated_from = await settings.get(tx, zalo_store.CONFIGURED_KEY)
            if rotated_from is None:  # stored before the hash was kept: from the config's pair, as we assume
                await settings.put(tx, zalo_store.CONFIGURED_KEY, self.configured)
            elif rotated_from != self.configured:
                log.warning("zalo: the configured token pair is new (re-authorized?): used instead of the stored one")
                return None
            return stored

    async def save(self, pair: TokenPair) -> None:
        async with self.db.transaction() as tx:
            await zalo_store.save_tokens(tx, pair, self.clock.now())
            await settings.put(tx, zalo_store.CONFIGURED_KEY, self.configured)


class DbLastMessage:
    """The user's last message (msg_id, when we got it), from the inbox: what a reply names."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def __call__(self, user_id: str) -> tuple[str, datetime] | None:
        return await zalo_store.last_message(self.db.reader, user_id)


class RefreshFailed(Transient):
    """The token endpoint did not give a new pair: messages wait and retry with backoff."""


# --- the channel -------------------------------------------------------------------------------


class ZaloChannel:
    name = NAME
    resend_after_crash = False
    delivers_files = False  # no file upload to a chat: /mydata goes as a short-lived link
    resets_after_erasure = False
    proves_identity = True  # a Zalo account (its id is per Official Account)
    photos = None  # links to Zalo's servers: the agents open them in Zalo
    reply_window = CS_WINDOW  # CS messages only within 7 days of the user's last interaction
    messages_per_second: float | None  # zalo.messages_per_second (set at start)
    conversational = True

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        access_token: str,
        refresh_token: str,
        tokens: TokenStore,
        clock: Clock,
        api_base_url: str = "https://openapi.zalo.me",
        oauth_base_url: str = "https://oauth.zaloapp.com",
        request_timeout: float = 15.0,
        per_chat_interval: float = 1.0,
        messages_per_second: float | None = 10.0,
        buttons: bool = True,
        refresh_margin: timedelta = timedelta(minutes=10),
        last_message: Callable[[str], Awaitable[tuple[str, datetime] | None]] | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.tokens = tokens
        self.clock = clock
        self.api_base_url = api_base_url.rstrip("/")
        self.oauth_base_url = oauth_base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.per_chat_interval = per_chat_interval
        self.messages_per_second = messages_per_second  # the sender's per-channel rate (shared contract)
        self.buttons = buttons
        self.refresh_margin = refresh_margin
        self.last_message = last_message
        self._pair = TokenPair(access_token, refresh_token, None)
        self._unsaved = False  # a rotated pair the store refused: kept here, stored again before use
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self.refreshes = 0

    async def start(self) -> None:
        stored = await self.tokens.load()
        if stored is not None:
            self._pair = stored  # rotated since the config was written: the config's pair is dead
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout))

    async def reload_tokens(self) -> None:
        """Another instance may have rotated the pair (the cluster's last leader): use the stored one."""
        async with self._lock:
            if self._unsaved:  # ours is newer than the stored one (whose refresh token is dead)
                await self._store()
                return
            stored = await self.tokens.load()
            if stored is not None:
                self._pair = stored

    async def close(self) -> None:
        if self._unsaved:
            async with self._lock:
                await self._store()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- receiving -----------------------------------------------------------------------------

    def update_id(self, payload: dict[str, Any]) -> str:
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        msg_id = message.get("msg_id") or message.get("mid")
        if isinstance(msg_id, str) and msg_id:
            return f"{payload.get('event_name')}:{msg_id}"
        name, timestamp = payload.get("event_name"), payload.get("timestamp")
        if not isinstance(name, str) or not name or timestamp is None:
            raise ValueError("event_name / timestamp: missing")
        # Events without a message id (follow, unfollow, submit info): their fields identify them.
        key = json.dumps([name, _user_id(payload), str(timestamp)], ensure_ascii=False)
        return "h:" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def parse(self, payload: dict[str, Any]) -> Inbound | None:
        name = payload.get("event_name")
        if (name not in _HANDLED and name not in _OTHER_MESSAGES) or name == "unfollow":
            return None  # unfollow: later sends answer -213 and are recorded as not sent
        user_id = _user_id(payload)
        if not user_id:
            raise ValueError("sender.id: missing")
        base = Inbound(channel="zalo", user_id=user_id, chat_id=user_id, message_id=None)
        if name == "follow":
            return replace(base, command="start")  # like Telegram's /start: welcome, send what is due
        if name == "user_submit_info":
            # The phone of Zalo's "request user info" form is what the user submitted: Zalo does
            # not vouch that it is theirs, so it proves nothing (phone_proved stays False).
            info = payload.get("info") if isinstance(payload.get("info"), dict) else {}
            phone = info.get("phone")
            return replace(base, command="start", phone=phone[:32] if isinstance(phone, str) else None)
        message = payload.get("message") if isinstance(payload.get("message"), dict) else {}
        text = message.get("text") or ""
        if not isinstance(text, str):
            raise ValueError("message.text: not a string")
        msg_id = message.get("msg_id") or message.get("mid")
        base = replace(base, message_id=str(msg_id) if msg_id else None)
        if text.startswith(CHOICE_PREFIX):
            return replace(base, choice=text[len(CHOICE_PREFIX):])
        attachments = message.get("attachments") if isinstance(message.get("attachments"), list) else []
        urls = {kind: tuple(
            a["payload"]["url"]
            for a in attachments
            if isinstance(a, dict) and a.get("type") == kind and isinstance(a.get("payload"), dict)
            and isinstance(a["payload"].get("url"), str) and a["payload"]["url"]
        ) for kind in ("image", "link")}
        photos = urls["image"]
        if name == "user_send_link":  # the link is what the user sent: read as text
            text = "\n".join([text, *(u for u in urls["link"] if u not in text)]).strip()
        command, args = split_command(text)
        return replace(base, text=text, command=command, args=args, photos=photos)

    def fits(self, text: str, buttons: list[list[dict[str, str]]]) -> bool:
        return fits(text, buttons)

    async def resolve(self, tx: Connection, event: Inbound, payload: dict[str, Any], now: datetime) -> Inbound:
        """What needs the database: a numbered reply ("2") to a message with choices is that
        choice. (A phone number the user submitted links nothing: see parse and the engine.)"""
        number = event.text.strip()
        if event.choice is None and event.command is None and re.fullmatch(r"[0-9]{1,2}", number):
            choices, message_id = await zalo_store.last_buttons(tx, event.chat_id)
            labels = await zalo_store.last_button_labels(tx, event.chat_id)
            if is_scale(labels):  # the number itself
                if str(int(number)) in labels:
                    return replace(event, choice=choices[labels.index(str(int(number)))], text="", message_id=message_id)
            elif 1 <= int(number) <= len(choices):
                return replace(event, choice=choices[int(number) - 1], text="", message_id=message_id)
        return event

    # --- sending -------------------------------------------------------------------------------

    def pacing(self, chat_id: str) -> float:
        return self.per_chat_interval

    async def deliver(self, method: str, chat_id: str, payload: dict[str, Any]) -> str | None:
        if method == "answer_choice":
            return None  # Zalo has no acknowledgement of a button tap
        if method == "edit_text":
            # A sent Zalo message cannot be edited; the flow's next message says the same.
            return payload.get("message_id")
        if method == "send_text":
            buttons = [b for row in payload.get("buttons") or [] for b in row]
            text = payload.get("text", "")
            if not fits(text, [buttons]):
                return await self._send_in_parts(chat_id, text, payload.get("buttons") or [])
            if buttons and self.buttons and len(buttons) <= MAX_TEMPLATE_BUTTONS:
                try:
                    return await self._send(chat_id, _button_message(text, buttons))
                except _ButtonsRefused:
                    log.warning("zalo: the API refused a button message; sending numbered choices instead")
            return await self._send(chat_id, {"text": _numbered(text, buttons)})
        if method == "send_photo":
            photo = payload.get("file_id", "")
            caption = payload.get("text") or ""
            if photo.startswith(("https://", "http://")):
                return await self._send(chat_id, _image_message(photo, caption))
            # A Telegram file id (an agent's photo) means nothing on Zalo: the caption says one was sent.
            return await self._send(chat_id, {"text": _clip(caption or "[ảnh]")})
        if method == "request_user_info":
            return await self._send(chat_id, _request_user_info(payload))
        raise Permanent(f"zalo: outbox method {method!r} is not supported on Zalo")

    async def _send_in_parts(self, chat_id: str, text: str, buttons: list[list[dict[str, str]]]) -> str | None:
        """A text over Zalo's 2000 characters (an agent's long reply, a customer's long
        complaint echoed back) goes as several messages in order, the choices with the last;
        never cut."""
        parts = split_text(text, MAX_TEXT - len(_with_numbers("", [b for row in buttons for b in row])))
        return await send_in_parts(parts, lambda i, part: self.deliver(
            "send_text", chat_id, {"text": part, "buttons": buttons if i == len(parts) - 1 else []}))

    async def _recipient(self, chat_id: str) -> dict[str, str]:
        """The user's last message within 48 h if there is one: Zalo counts a message that names
        it as a reply (free, 8 per message), one by user_id only as proactive (billed)."""
        if self.last_message is not None:
            try:
                last = await self.last_message(chat_id)
            except Exception as exc:  # noqa: BLE001 - by user id it still goes, only billed
                log.warning("zalo: the user's last message not known (%s); sent by user id", type(exc).__name__)
                last = None
            if last is not None and self.clock.now() - last[1] < FREE_REPLY_WINDOW:
                return {"message_id": last[0]}
        return {"user_id": chat_id}

    async def _send(self, chat_id: str, message: dict[str, Any]) -> str | None:
        recipient = await self._recipient(chat_id)
        body = {"recipient": recipient, "message": message}
        token = await self._fresh_token()
        answer = await self._post_message(token, body)
        if "message_id" in recipient and answer.get("error") not in _NOT_ABOUT_THE_RECIPIENT:
            # Refused as a reply (the message unknown to Zalo, say): the same message by user id.
            log.warning("zalo: a reply naming the user's message was refused (%s); sent by user id", answer.get("error"))
            body = {"recipient": {"user_id": chat_id}, "message": message}
            answer = await self._post_message(token, body)
        if answer.get("error") in TOKEN_ERRORS:
            # One refresh and one retry; a refresh by a concurrent send counts as ours.
            log.info("zalo: access token rejected (%s); refreshing", answer.get("error"))
            token = await self._refresh(stale=token)
            answer = await self._post_message(token, body)
            if answer.get("error") in TOKEN_ERRORS:
                raise Transient(f"zalo: access token rejected again after a refresh ({answer.get('error')})")
        code = answer.get("error")
        if code == 0:
            data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
            message_id = data.get("message_id")
            return str(message_id) if message_id is not None else None
        detail = f"Zalo error {code}: {answer.get('message', '')}".strip()
        if code in NOT_SENDABLE:
            raise Permanent(f"{NOT_SENDABLE[code]}: {detail}")
        if code == RATE_LIMITED:
            raise RetryLater(RATE_LIMIT_PAUSE, detail)
        if code in RETRYABLE:
            raise Transient(detail)
        if code in BUTTONS_REFUSED and "attachment" in message:
            raise _ButtonsRefused(detail)
        raise Permanent(detail)

    async def _post_message(self, token: str, body: dict[str, Any], url: str | None = None) -> dict[str, Any]:
        session = self._require_session()
        try:
            async with session.post(
                url or self.api_base_url + MESSAGE_PATH, json=body, headers={"access_token": token}
            ) as response:
                if response.status == 429:
                    raise RetryLater(_retry_after(response.headers.get("Retry-After")), "zalo: HTTP 429")
                if response.status >= 500:
                    raise Transient(f"zalo: HTTP {response.status}")
                if response.status != 200:
                    raise Permanent(f"zalo: HTTP {response.status}")
                try:
                    answer = await response.json(content_type=None)
                except (json.JSONDecodeError, UnicodeDecodeError, aiohttp.ContentTypeError):
                    raise Ambiguous("zalo: unreadable answer to a send; it may have been delivered") from None
        except aiohttp.ConnectionTimeoutError:
            raise Transient("zalo: timed out connecting; nothing was sent") from None
        except aiohttp.ClientConnectorError as exc:
            raise Transient(f"zalo: could not connect ({type(exc).__name__})") from None
        except (asyncio.TimeoutError, aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
            raise Ambiguous(f"zalo: no answer after sending ({type(exc).__name__}); it may have been delivered") from None
        except aiohttp.ClientError as exc:
            raise Ambiguous(f"zalo: connection broke mid-request ({type(exc).__name__})") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("error"), int):
            raise Ambiguous("zalo: answer without an error code; the message may have been delivered")
        return answer

    # --- asking Zalo ----------------------------------------------------------------------------

    async def _get(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        """A read (user detail, ratings) with one refresh on a rejected token; {} on any failure."""
        session = self._require_session()
        token = await self._fresh_token()
        for attempt in range(2):
            try:
                async with session.get(url, params=params, headers={"access_token": token}) as response:
                    if response.status != 200:
                        return {}
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, UnicodeDecodeError):
                return {}
            if not isinstance(answer, dict):
                return {}
            if answer.get("error") in ZNS_TOKEN_ERRORS and attempt == 0:
                token = await self._refresh(stale=token)
                continue
            return answer
        return {}

    async def last_interaction(self, user_id: str) -> tuple[bool, datetime | None] | None:
        """(follows the OA, the first moment of the day of their last interaction) from Zalo's
        user detail; None when Zalo did not say (then we go by what we saw ourselves)."""
        answer = await self._get(self.api_base_url + USER_DETAIL_PATH, {"data": json.dumps({"user_id": user_id})})
        data = answer.get("data") if answer.get("error") == 0 else None
        if not isinstance(data, dict):
            return None
        follower = data.get("user_is_follower") is True
        day = data.get("user_last_interaction_date")
        try:
            at = datetime.strptime(day, "%d/%m/%Y").replace(tzinfo=VIETNAM) if isinstance(day, str) and day else None
        except ValueError:
            at = None
        return follower, at

    async def refresh_now(self) -> datetime | None:
        """The scheduled keep-alive: a new pair whether or not anything was sent; RefreshFailed if refused."""
        await self._refresh(stale=self._pair.access_token)
        return self._pair.expires_at

    @property
    def token_expires_at(self) -> datetime | None:
        return self._pair.expires_at

    # --- the access token ----------------------------------------------------------------------

    async def _fresh_token(self) -> str:
        if self._unsaved:
            async with self._lock:
                if self._unsaved:
                    await self._store()
        pair = self._pair
        if pair.expires_at is not None and self.clock.now() >= pair.expires_at - self.refresh_margin:
            return await self._refresh(stale=pair.access_token)
        return pair.access_token

    async def _refresh(self, stale: str) -> str:
        """Swap the pair for a new one, once however many sends ask at the same time."""
        async with self._lock:
            if self._pair.access_token != stale:
                return self._pair.access_token  # someone else refreshed while we waited
            pair = await self._request_new_pair(self._pair.refresh_token)
            # The old refresh token is dead from this moment on: the new pair is kept whatever
            # the save does (a failed save is tried again before the next send, and at close).
            self._pair = pair
            self._unsaved = True
            self.refreshes += 1
            log.info("zalo: access token refreshed; valid until %s", pair.expires_at)
            await self._store()
            return pair.access_token

    async def _store(self) -> None:
        """Save the rotated pair (under the lock); a failure is logged and leaves it to the next try."""
        try:
            await self.tokens.save(self._pair)
        except Exception as exc:  # noqa: BLE001 - the database may be what fails; the pair must survive it
            log.error("zalo: could not store the rotated token pair (%s: %s); kept in memory, stored again"
                      " before the next send (a restart before that needs a new authorization)", type(exc).__name__, exc)
            return
        self._unsaved = False

    async def _request_new_pair(self, refresh_token: str) -> TokenPair:
        session = self._require_session()
        form = {"app_id": self.app_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
        try:
            async with session.post(
                self.oauth_base_url + TOKEN_PATH, data=form, headers={"secret_key": self.app_secret}
            ) as response:
                if response.status != 200:
                    raise RefreshFailed(f"zalo: token refresh answered HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RefreshFailed(f"zalo: token refresh failed ({type(exc).__name__})") from None
        if not isinstance(answer, dict):  # true, [], null: no pair (and the old refresh token still works)
            raise RefreshFailed(f"zalo: token refresh answered a JSON {type(answer).__name__}, not an object")
        access, refresh = answer.get("access_token"), answer.get("refresh_token")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            code = answer.get("error")
            log.error("zalo: the refresh token was refused (%s); a new authorization may be needed", code)
            raise RefreshFailed(f"zalo: token refresh refused (error {code})")
        try:
            seconds = int(answer.get("expires_in", 0))
        except (TypeError, ValueError):
            seconds = 0
        expires_at = self.clock.now() + timedelta(seconds=seconds) if seconds > 0 else None
        return TokenPair(access, refresh, expires_at)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise Transient("zalo: channel not started")
        return self._session


class _ButtonsRefused(Exception):
    pass


def _user_id(payload: dict[str, Any]) -> str:
    for key in ("sender", "follower"):
        who = payload.get(key)
        if isinstance(who, dict) and who.get("id") not in (None, ""):
            return str(who["id"])
    return ""


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _button_message(text: str, buttons: list[dict[str, str]]) -> dict[str, Any]:
    # oa.query.hide: the tap comes back as a message from the user with our payload, not
    # shown in the chat; the prefix tells it from something the user typed.
    return {
        "attachment": {
            "type": "template",
            "payload": {
                "template_type": "button",
                "text": _clip(text),
                "buttons": [
                    {"title": b["label"][:100], "type": "oa.query.hide", "payload": CHOICE_PREFIX + b["data"]}
                    for b in buttons
                ],
            },
        }
    }


def _request_user_info(payload: dict[str, Any]) -> dict[str, Any]:
    """Zalo's form asking a follower to share their name and phone (answered by user_submit_info)."""
    element = {"title": _clip(payload.get("title", ""))[:100], "subtitle": _clip(payload.get("subtitle", ""))[:500]}
    if payload.get("image_url"):
        element["image_url"] = payload["image_url"]
    return {"attachment": {"type": "template", "payload": {"template_type": "request_user_info", "elements": [element]}}}


def _numbered(text: str, buttons: list[dict[str, str]]) -> str:
    """Choices as a numbered list; a reply with the number is that choice (see resolve)."""
    return _clip(_with_numbers(text, buttons))


def is_scale(labels: list[str]) -> bool:
    """Choices that are numbers other than their positions (an NPS 0-10): written out as they
    are, and a reply is the number itself, never a position ("9" is 9, not the 9th choice,
    which would be 8). A 1-5 scale numbers the same either way and stays a numbered list."""
    return (bool(labels) and all(x.isdigit() for x in labels) and len(set(labels)) == len(labels)
            and labels != [str(i) for i in range(1, len(labels) + 1)])


def _with_numbers(text: str, buttons: list[dict[str, str]]) -> str:
    if not buttons:
        return text
    if is_scale([b["label"] for b in buttons]):
        return "\n".join([text, "", " · ".join(b["label"] for b in buttons), "(Trả lời bằng số / reply with the number)"])
    lines = [f"{i}. {b['label']}" for i, b in enumerate(buttons, start=1)]
    hint = "(Trả lời bằng số / reply with the number)"
    return "\n".join([text, "", *lines, hint])


def fits(text: str, buttons: list[list[dict[str, str]]]) -> bool:
    """Whether this text with its choices fits one message, even as numbered text (else it is split)."""
    return len(_with_numbers(text, [b for row in buttons for b in row])) <= MAX_TEXT


def _image_message(url: str, caption: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "attachment": {"type": "template", "payload": {"template_type": "media", "elements": [{"media_type": "image", "url": url}]}}
    }
    if caption:
        message["text"] = _clip(caption)
    return message


def _retry_after(value: str | None) -> float:
    try:
        return max(1.0, float(value)) if value else RATE_LIMIT_PAUSE
    except ValueError:
        return RATE_LIMIT_PAUSE


# --- ZNS: template messages by phone ------------------------------------------------------------


class ZnsChannel:
    """ZNS templates to phone numbers, on the OA's token (the Zalo channel's, refreshed there).
    Outbox method "send_template": {"template_id", "template_data", "tracking_id"}, chat id =
    the phone as 84...; the sender's rates and retries apply. No text, no buttons: a survey's
    conversation happens where the template's button leads (the web chat or the OA chat)."""

    name = "zns"
    resend_after_crash = False
    delivers_files = False
    resets_after_erasure = False
    conversational = False  # approved templates to a phone: no texts, no buttons
    photos = None  # nobody writes back on ZNS
    reply_window = None  # templates to a phone: the night ban and quota rule it (flows/survey_routes.py)

    def __init__(self, zalo: ZaloChannel, *, api_base_url: str, messages_per_second: float,
                 night_ban: Callable[[datetime], datetime], clock: Clock) -> None:
        self.zalo = zalo
        self.api_base_url = api_base_url.rstrip("/")
        self.messages_per_second = messages_per_second
        self.night_ban_ends = night_ban  # now -> the end of the ban (now itself outside it)
        self.clock = clock
        self.quota: tuple[int, int] | None = None  # (daily, remaining) as Zalo last said

    def update_id(self, payload: dict[str, Any]) -> str:
        raise ValueError("zns: no inbound updates")

    def parse(self, payload: dict[str, Any]) -> Inbound | None:
        return None

    async def resolve(self, tx: Connection, event: Inbound, payload: dict[str, Any], now: datetime) -> Inbound:
        return event

    def fits(self, text: str, buttons: list[list[dict[str, str]]]) -> bool:
        return True

    def pacing(self, chat_id: str) -> float:
        return 0.0

    async def deliver(self, method: str, chat_id: str, payload: dict[str, Any]) -> str | None:
        if method != "send_template":
            # An agent's reply to a customer known only by phone: ZNS carries approved templates only.
            raise Permanent(f"zns: cannot send {method!r} (ZNS carries approved templates only)")
        now = self.clock.now()
        resume = self.night_ban_ends(now)
        if resume > now:  # never into the night ban: the whole channel waits for its end
            raise RetryLater((resume - now).total_seconds(), "zns: night ban")
        body = {"phone": chat_id, "template_id": payload["template_id"], "template_data": payload.get("template_data", {}),
                "tracking_id": payload["tracking_id"]}
        url = self.api_base_url + ZNS_TEMPLATE_PATH
        token = await self.zalo._fresh_token()
        answer = await self._post(token, body, url)
        if answer.get("error") in ZNS_TOKEN_ERRORS:
            # One refresh and one retry (the same send: it fails as the first would).
            token = await self.zalo._refresh(stale=token)
            answer = await self._post(token, body, url)
            if answer.get("error") in ZNS_TOKEN_ERRORS:
                raise Transient(f"zns: access token rejected again after a refresh ({answer.get('error')})")
        code = answer.get("error")
        if code == 0:
            data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
            quota = data.get("quota") if isinstance(data.get("quota"), dict) else {}
            try:
                self.quota = (int(quota["dailyQuota"]), int(quota["remainingQuota"]))
            except (KeyError, TypeError, ValueError):
                pass
            msg_id = data.get("msg_id")
            return str(msg_id) if msg_id is not None else None
        detail = f"ZNS error {code}: {answer.get('message', '')}".strip()
        if code == ZNS_NIGHT_BAN:
            resume = self.night_ban_ends(self.clock.now())
            raise RetryLater(max(60.0, (resume - self.clock.now()).total_seconds()), detail)
        if code == ZNS_DAILY_QUOTA:
            raise RetryLater(3600.0, f"{detail} (Zalo's daily quota for this OA)")
        if code == ZNS_OUT_OF_BALANCE:
            log.error("zns: the Zalo Cloud Account is out of balance; ZNS sends wait (top it up)")
            raise RetryLater(3600.0, detail)
        if code == RATE_LIMITED:
            raise RetryLater(RATE_LIMIT_PAUSE, detail)
        if code in RETRYABLE:
            raise Transient(detail)
        if code in ZNS_NOT_SENDABLE:
            raise Permanent(f"{ZNS_NOT_SENDABLE[code]}: {detail}")
        if code in ZNS_TEMPLATE_ERRORS:
            log.error("zns: template %s refused (%s): check [zalo.zns] templates and params", body["template_id"], detail)
        raise Permanent(detail)

    async def _post(self, token: str, body: dict[str, Any], url: str) -> dict[str, Any]:
        try:
            return await self.zalo._post_message(token, body, url)
        except Ambiguous as exc:
            # The same tracking_id goes again: the platform's idempotency key (see the module doc).
            raise Transient(f"zns: {exc}; resent with the same tracking_id") from None

    async def ratings(self, template_id: str, since: datetime, until: datetime) -> list[RatingItem]:
        """Answers to a rating template submitted in [since, until], every page."""
        items: list[RatingItem] = []
        offset, limit = 0, 100
        while True:
            answer = await self.zalo._get(self.api_base_url + ZNS_RATING_PATH, {
                "template_id": template_id, "from_time": str(int(since.timestamp() * 1000)),
                "to_time": str(int(until.timestamp() * 1000)), "offset": str(offset), "limit": str(limit)})
            data = answer.get("data") if answer.get("error") == 0 else None
            page = data.get("data") if isinstance(data, dict) else None
            if not isinstance(page, list):
                return items
            for raw in page:
                item = _rating_item(raw)
                if item is not None:
                    items.append(item)
            if len(page) < limit:
                return items
            offset += limit


def _rating_item(raw: Any) -> RatingItem | None:
    if not isinstance(raw, dict):
        return None
    try:
        score = int(raw.get("rate"))
    except (TypeError, ValueError):
        return None
    rating_id, tracking = raw.get("msgId"), raw.get("trackingId")
    if not isinstance(rating_id, str) or not rating_id or not 1 <= score <= 5:
        return None
    feedbacks = raw.get("feedbacks") if isinstance(raw.get("feedbacks"), list) else []
    note = raw.get("note") if isinstance(raw.get("note"), str) else ""
    return RatingItem(rating_id, str(tracking or ""), score, note[:1000],
                      tuple(f[:200] for f in feedbacks if isinstance(f, str))[:10])
