"""The Zalo OA channel: webhook verification, events, sending and its errors, the rotating
token pair, and CSAT / complaints end to end over Zalo with the agents on Telegram."""
from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from bot.channels.base import Ambiguous, Permanent, RetryLater, Transient
from bot.channels.zalo.channel import CHOICE_PREFIX, Rejected, Stale, WebhookPing, ZaloChannel, signature, verify
from bot.cli.main import _secrets
from bot.config import ConfigError, parse_config
from flows import texts
from flows.digest import render_text, week_of
from storage.timefmt import from_db
from storage.zalo import TokenPair, phone_key
from tests.conftest import Harness, hours, make_config
from tests.secrets_guard import add_secret
from testkit.zalo_api import FakeZaloServer, SentMessage

USER = "5170627724267093288"
OTHER = "5170627724267093299"
TG_USER = 555001
GROUP = -1001234567890
AGENT, AGENT_NAME = 9001, "Minh"


@pytest.fixture
async def zfake(clock):
    async with FakeZaloServer(clock) as fake:
        yield fake


def zalo_section(fake: FakeZaloServer, **overrides) -> dict:
    return {
        "app_id": fake.app_id, "oa_secret_key": fake.oa_secret_key, "app_secret": fake.app_secret,
        "access_token": "AT-initial-0000000000", "refresh_token": "RT-initial-0000000000",
        "api_base_url": fake.api_root, "oauth_base_url": fake.api_root, "buttons": True, **overrides,
    }


def config(tmp_path, tg, fake, zalo=None, database_url=None, **sections):
    return make_config(
        tmp_path, tg, database_url=database_url,
        **{"agents": {"chat_id": GROUP}, "sender": {"group_messages_per_minute": 600, "request_timeout": 1.0},
           **sections},
        zalo=zalo_section(fake, **(zalo or {})),
    )


async def started(tmp_path, tg, clock, zfake, zalo=None, database_url=None, **sections) -> Harness:
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: AGENT_NAME})
    h = Harness(config(tmp_path, tg, zfake, zalo, database_url, **sections), tg, clock)
    await h.start()
    return h


@pytest.fixture
async def zh(tmp_path, tg, clock, zfake):
    h = await started(tmp_path, tg, clock, zfake)
    yield h
    await h.close()


async def settled(h: Harness, timeout: float = 5.0) -> None:
    """Every recorded Zalo event handled."""
    for _ in range(int(timeout / 0.02)):
        rows = await h.rows("SELECT COUNT(*) AS n FROM inbox WHERE platform = 'zalo' AND processed_at IS NULL")
        if rows[0]["n"] == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("zalo events not processed")


async def say(h: Harness, fake: FakeZaloServer, text: str, user: str = USER, **kw) -> dict:
    event = fake.make_event("user_send_text", user, text=text, **kw)
    assert await fake.send_event(h.url, event) == 200
    await settled(h)
    return event


async def tap(h: Harness, fake: FakeZaloServer, message: SentMessage, label_start: str, user: str = USER) -> None:
    """A tap on a button (oa.query.hide): Zalo sends its payload back as the user's message."""
    button = next(b for b in message.buttons if b["title"].startswith(label_start))
    assert button["type"] == "oa.query.hide" and button["payload"].startswith(CHOICE_PREFIX)
    await say(h, fake, button["payload"], user=user)


async def next_message(fake: FakeZaloServer, user: str = USER) -> SentMessage:
    return await fake.next_to(user)


async def outbox_settled(h: Harness, timeout: float = 5.0) -> list[dict]:
    return await h.outbox_settled(timeout)


async def inbox_count(h: Harness) -> int:
    return (await h.rows("SELECT COUNT(*) AS n FROM inbox"))[0]["n"]


async def post_zalo_purchase(h: Harness, order="A-1001", **customer) -> dict:
    status, body = await h.post_purchase(order, customer={"external_id": "C-42", "name": "Nguyễn Thị Lan", **customer})
    assert status == 202, body
    return body


async def survey_question(h: Harness, fake: FakeZaloServer) -> SentMessage:
    """A purchase for a Zalo follower who chatted with the OA; 3 h later the question."""
    await post_zalo_purchase(h, zalo_user_id=USER)
    h.clock.advance(hours(3))
    fake.add_follower(USER)  # interacted recently: customer-care messages allowed
    assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
    return await next_message(fake)


# --- the signature and the events ---------------------------------------------------------------


def test_signature_is_sha256_of_app_id_body_timestamp_and_oa_secret():
    raw = b'{"event_name":"user_send_text","timestamp":"1700000000000"}'
    expected = hashlib.sha256(b"123" + raw + b"1700000000000" + b"secret").hexdigest()
    assert signature("123", raw, "1700000000000", "secret") == expected


def test_verify_accepts_signed_events_and_rejects_the_rest(clock):
    fake = FakeZaloServer(clock)
    event = fake.make_event("user_send_text", USER, text="xin chào")
    raw = json.dumps(event).encode()
    header = fake.sign(raw, event["timestamp"])
    kw = dict(app_id=fake.app_id, oa_secret_key=fake.oa_secret_key, max_age=timedelta(hours=2), now=clock.now())
    assert verify(raw, header, **kw) == event
    assert verify(raw, header[len("mac="):], **kw) == event  # with or without the "mac=" prefix
    for bad_raw, bad_header, status in [
        (raw, "", 401),
        (raw, fake.sign(raw, event["timestamp"], secret="other"), 401),
        (raw.replace(b"xin", b"xim"), header, 401),
        (b"{not json", header, 400),
        (b"[1]", header, 400),
    ]:
        with pytest.raises(Rejected) as caught:
            verify(bad_raw, bad_header, **kw)
        assert caught.value.status == status
    with pytest.raises(Stale):  # signed but 3 h old: dropped with a 200 by the webhook, not refused
        verify(raw, header, **{**kw, "now": clock.now() + hours(3)})
    with pytest.raises(WebhookPing):  # Zalo's unsigned test POST when the URL is saved
        verify(b"{}", "", **kw)


def test_the_oa_id_first_signature_variant_is_accepted_and_logged(clock, caplog):
    fake = FakeZaloServer(clock)
    event = fake.make_event("follow", USER)
    raw = json.dumps(event).encode()
    digest = hashlib.sha256(fake.oa_id.encode() + raw + event["timestamp"].encode() + fake.oa_secret_key.encode())
    kw = dict(app_id=fake.app_id, oa_secret_key=fake.oa_secret_key, max_age=timedelta(hours=2), now=clock.now())
    with caplog.at_level("WARNING"):
        assert verify(raw, "mac=" + digest.hexdigest(), **kw) == event
    assert "oa_id-first variant" in caplog.text
    caplog.clear()
    with pytest.raises(Rejected), caplog.at_level("WARNING"):
        verify(raw, "mac=" + "0" * 64, **kw)
    assert "matched neither variant" in caplog.text


def channel_for(fake: FakeZaloServer, clock, store=None, **kw) -> ZaloChannel:
    return ZaloChannel(
        app_id=fake.app_id, app_secret=fake.app_secret, access_token="AT-initial-0000000000",
        refresh_token="RT-initial-0000000000", tokens=store or MemoryTokens(), clock=clock,
        api_base_url=fake.api_root, oauth_base_url=fake.api_root, **kw,
    )


class MemoryTokens:
    def __init__(self, pair: TokenPair | None = None) -> None:
        self.pair = pair
        self.saved: list[TokenPair] = []

    async def load(self) -> TokenPair | None:
        return self.pair

    async def save(self, pair: TokenPair) -> None:
        self.pair = pair
        self.saved.append(pair)


def test_parse_of_each_event_kind(clock):
    fake = FakeZaloServer(clock)
    channel = channel_for(fake, clock)
    text = channel.parse(fake.make_event("user_send_text", USER, text="Hàng bị hỏng", msg_id="m1"))
    assert (text.channel, text.user_id, text.chat_id, text.text, text.message_id) == ("zalo", USER, USER, "Hàng bị hỏng", "m1")
    command = channel.parse(fake.make_event("user_send_text", USER, text="/complaint"))
    assert command.command == "complaint"
    button = channel.parse(fake.make_event("user_send_text", USER, text=CHOICE_PREFIX + "csat:12:4"))
    assert button.choice == "csat:12:4" and button.kind == "choice"
    clicked = channel.parse(fake.make_event("user_click_button", USER, text=CHOICE_PREFIX + "kn:send"))
    assert clicked.choice == "kn:send"
    image = channel.parse(fake.make_event("user_send_image", USER, image_urls=("https://photo.zdn.vn/a.jpg",)))
    assert image.photos == ("https://photo.zdn.vn/a.jpg",) and image.text == ""
    follow = channel.parse(fake.make_event("follow", USER))
    assert follow.command == "start" and follow.user_id == USER
    submit = channel.parse(fake.make_event("user_submit_info", USER, info={"name": "Lan", "phone": "84912345678"}))
    assert submit.command == "start"
    assert channel.parse(fake.make_event("unfollow", USER)) is None
    assert channel.parse({**fake.make_event("user_send_text", USER, text="x"), "event_name": "user_seen_message"}) is None
    with pytest.raises(ValueError):
        channel.parse({"event_name": "user_send_text", "timestamp": "1", "message": {"text": "no sender"}})


STICKER = {"type": "sticker", "payload": {"id": "7a1e2b", "url": "https://zalo-api.zadn.vn/api/emoticon/sticker/webpc?eid=7a1e2b"}}
LINK = {"type": "link", "payload": {"url": "https://shop.example/p/ao-thun", "description": "Áo thun", "thumbnail": ""}}


def test_the_other_user_messages_are_messages_too(clock):
    # Zalo's other user_send_* events (sticker, link, audio, video, file, gif, location,
    # business card) are the user writing to the OA: parsed like Telegram's stickers and voice
    # notes (no text: "we read text and photos" is the answer), a link read as its URL.
    fake = FakeZaloServer(clock)
    channel = channel_for(fake, clock)
    sticker = channel.parse(fake.make_event("user_send_sticker", USER, attachments=[STICKER], msg_id="s1"))
    assert (sticker.user_id, sticker.text, sticker.photos, sticker.message_id) == (USER, "", (), "s1")
    link = channel.parse(fake.make_event("user_send_link", USER, attachments=[LINK]))
    assert link.text == "https://shop.example/p/ao-thun" and link.photos == ()
    with_text = channel.parse(fake.make_event("user_send_link", USER, text="xem giúp mình", attachments=[LINK]))
    assert with_text.text == "xem giúp mình\nhttps://shop.example/p/ao-thun"
    for name, attachment in [("user_send_audio", {"type": "audio", "payload": {"url": "https://a.zdn.vn/v.aac"}}),
                             ("user_send_location", {"type": "location", "payload": {"coordinates": {"latitude": "10.7"}}})]:
        event = channel.parse(fake.make_event(name, USER, attachments=[attachment]))
        assert event is not None and event.text == "" and event.photos == ()


def test_update_ids_are_stable_and_distinct(clock):
    fake = FakeZaloServer(clock)
    channel = channel_for(fake, clock)
    message = fake.make_event("user_send_text", USER, text="a", msg_id="m-1")
    assert channel.update_id(message) == channel.update_id(json.loads(json.dumps(message)))
    follow = fake.make_event("follow", USER)
    later = fake.make_event("follow", USER, timestamp=clock.now() + timedelta(seconds=1))
    other = fake.make_event("follow", OTHER)
    ids = {channel.update_id(e) for e in (message, follow, later, other)}
    assert len(ids) == 4
    with pytest.raises(ValueError):
        channel.update_id({"message": {}})


def test_phone_numbers_in_any_form_match():
    assert phone_key("+84 912 345 678") == phone_key("0912345678") == phone_key("84912345678") == "84912345678"
    assert phone_key("12") is None


def test_phone_numbers_written_with_00_a_trunk_zero_or_without_their_zero_are_the_same_number():
    # Zalo Cloud (ZNS error -108) names the forms a phone arrives in: 84xxx, 0xxx and xxx (the
    # 0 dropped by a spreadsheet); shops also write 0084 (the international prefix) and
    # +84 (0)912 (the trunk 0 kept). All are 84912345678, the one form ZNS and matching use.
    for written in ("912345678", "0084 912 345 678", "+84 (0) 912 345 678", "840912345678", "00840912345678"):
        assert phone_key(written) == "84912345678", written
    assert phone_key("0243 826 1234") == phone_key("84 24 3826 1234") == "842438261234"  # a Hà Nội landline
    assert phone_key("+1 415 555 0100") == "14155550100"  # another country's number stays as written
    assert phone_key("+376 123 456") == "376123456"  # a "+" says the country code is there: not Vietnam's


# --- sending: errors and the token pair -------------------------------------------------------------


@pytest.mark.parametrize("fault,error,reason", [
    ("-230", Permanent, "window_closed"),
    ("-213", Permanent, "unfollowed"),
    ("-211", Permanent, "quota_exceeded"),
    ("-217", Permanent, "window_closed"),
    ("-32", RetryLater, ""),
    ("-248", Transient, "Zalo error -248"),
    ("-100", Transient, "Zalo error -100"),
    ("500", Transient, ""),
    ("-999", Permanent, "Zalo error -999"),
])
async def test_errors_map_to_what_the_sender_does(zfake, clock, fault, error, reason):
    zfake.add_follower(USER)
    channel = channel_for(zfake, clock)
    await channel.start()
    try:
        zfake.fail_next(fault)
        with pytest.raises(error) as caught:
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        assert str(caught.value).startswith(reason)
        assert zfake.messages == []
    finally:
        await channel.close()


async def test_a_text_over_2000_characters_is_split_never_cut_and_choices_go_with_the_last_part(zfake, clock):
    zfake.add_follower(USER)
    channel = channel_for(zfake, clock, buttons=False)
    await channel.start()
    try:
        reply = " ".join(f"câu {i}: shop xin lỗi vì giao hàng trễ." for i in range(150))  # ~5,700 characters
        await channel.deliver("send_text", USER, {"text": reply, "buttons": []})
        parts = [m.text for m in zfake.sent_to(USER)]
        assert len(parts) >= 3 and all(len(p) <= 2000 for p in parts)
        assert "".join(parts) == reply  # nothing lost, nothing added
        buttons = [[{"label": str(n), "data": f"csat:1:{n}"} for n in range(1, 6)]]
        await channel.deliver("send_text", USER, {"text": reply, "buttons": buttons})
        second = [m.text for m in zfake.sent_to(USER)][len(parts):]
        assert all(len(p) <= 2000 for p in second) and "5. 5" in second[-1]
        assert not any("1. 1" in p for p in second[:-1])
    finally:
        await channel.close()


async def test_the_platform_rules_answer_real_error_codes(zfake, clock):
    channel = channel_for(zfake, clock)
    await channel.start()
    try:
        with pytest.raises(Permanent, match="^unfollowed"):
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        zfake.add_follower(USER, interacted_at=clock.now() - timedelta(days=8))
        with pytest.raises(Permanent, match="^window_closed"):
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        zfake.add_follower(USER)
        zfake.quota = 1
        assert await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        with pytest.raises(Permanent, match="^quota_exceeded"):
            await channel.deliver("send_text", USER, {"text": "again", "buttons": []})
        assert zfake.counters.errors == {-213: 1, -230: 1, -211: 1}
    finally:
        await channel.close()


async def test_a_timeout_after_sending_is_ambiguous_and_connect_failure_transient(zfake, clock):
    zfake.add_follower(USER)
    channel = channel_for(zfake, clock, request_timeout=0.5)
    await channel.start()
    try:
        zfake.fail_next("timeout")
        with pytest.raises(Ambiguous):
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        assert len(zfake.messages) == 1  # it did arrive: never resend
    finally:
        await channel.close()
    closed = ZaloChannel(app_id="1", app_secret="s", access_token="a", refresh_token="r", tokens=MemoryTokens(),
                         clock=clock, api_base_url="http://127.0.0.1:9", oauth_base_url="http://127.0.0.1:9")
    await closed.start()
    try:
        with pytest.raises(Transient):
            await closed.deliver("send_text", USER, {"text": "hi", "buttons": []})
    finally:
        await closed.close()


async def test_an_expiring_token_is_refreshed_before_use(zfake, clock):
    zfake.add_follower(USER)
    store = MemoryTokens()
    channel = channel_for(zfake, clock, store=store)
    await channel.start()
    try:
        await channel.deliver("send_text", USER, {"text": "1", "buttons": []})
        zfake.revoke("AT-initial-0000000000")
        await channel.deliver("send_text", USER, {"text": "2", "buttons": []})  # -216: refresh, retry
        assert zfake.counters.refreshes == 1 and store.saved[-1].expires_at == clock.now() + timedelta(seconds=90000)
        requests = zfake.counters.message_requests
        clock.advance(timedelta(hours=25) - timedelta(minutes=5))  # within the refresh margin
        await channel.deliver("send_text", USER, {"text": "3", "buttons": []})
        assert zfake.counters.refreshes == 2
        assert zfake.counters.message_requests == requests + 1  # refreshed first: no failed attempt
        assert zfake.counters.errors == {-216: 1}
    finally:
        await channel.close()


async def test_invalid_token_gives_one_refresh_and_one_retry(zfake, clock):
    zfake.add_follower(USER)
    channel = channel_for(zfake, clock)
    await channel.start()
    try:
        zfake.revoke("AT-initial-0000000000")
        zfake.refresh_tokens.clear()  # the refresh token is refused too
        with pytest.raises(Transient, match="refresh"):
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        assert zfake.counters.refused_refreshes == 1 and zfake.counters.message_requests == 1
    finally:
        await channel.close()


async def test_concurrent_sends_refresh_once(zfake, clock):
    for i in range(5):
        zfake.add_follower(f"{USER}{i}")
    store = MemoryTokens()
    channel = channel_for(zfake, clock, store=store)
    await channel.start()
    try:
        zfake.revoke("AT-initial-0000000000")
        await asyncio.gather(*(channel.deliver("send_text", f"{USER}{i}", {"text": "hi", "buttons": []}) for i in range(5)))
        assert zfake.counters.refreshes == 1 and len(store.saved) == 1 and len(zfake.messages) == 5
    finally:
        await channel.close()


@pytest.mark.parametrize("body", [b"true", b"[]", b"null", b'"ok"', b"<html>502 Bad Gateway</html>", b"\xff\xfe{"])
async def test_an_odd_answer_from_the_token_endpoint_is_a_failed_refresh_retried_later(zfake, clock, body):
    # An answer that is not a JSON object is no new pair: the message waits and is retried
    # (RefreshFailed is Transient), never failed for good by an AttributeError.
    zfake.add_follower(USER)
    channel = channel_for(zfake, clock)
    await channel.start()
    try:
        zfake.revoke("AT-initial-0000000000")
        zfake.token_fail_next(body)
        with pytest.raises(Transient, match="refresh"):
            await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})
        assert await channel.deliver("send_text", USER, {"text": "hi", "buttons": []})  # the refresh token still works
        assert zfake.counters.refreshes == 1
    finally:
        await channel.close()


class FlakyTokens(MemoryTokens):
    """A store whose first saves fail (the database locked or gone for a moment)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def save(self, pair: TokenPair) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("database is locked")
        await super().save(pair)


async def test_a_rotated_pair_that_could_not_be_stored_is_kept_and_stored_later(zfake, clock):
    # Zalo's refresh token is single use: once a refresh answered, only the new pair works.
    # A failed save must not throw it away (the next refresh would send the dead one and
    # need a person to authorize the app again).
    zfake.add_follower(USER)
    store = FlakyTokens(failures=1)
    channel = channel_for(zfake, clock, store=store)
    await channel.start()
    try:
        zfake.revoke("AT-initial-0000000000")
        await channel.deliver("send_text", USER, {"text": "1", "buttons": []})  # refreshed; the save fails
        assert len(zfake.messages) == 1 and store.pair is None
        await channel.deliver("send_text", USER, {"text": "2", "buttons": []})  # the save is tried again
        assert store.pair is not None and store.pair.refresh_token in zfake.refresh_tokens
        clock.advance(timedelta(hours=26))  # the rotated access token expired: refresh again
        await channel.deliver("send_text", USER, {"text": "3", "buttons": []})
        assert zfake.counters.refreshes == 2 and zfake.counters.refused_refreshes == 0
        assert store.pair.refresh_token in zfake.refresh_tokens and len(zfake.messages) == 3
    finally:
        await channel.close()


async def test_rotated_pair_is_stored_and_survives_a_restart(tmp_path, tg, clock, zfake):
    h = await started(tmp_path, tg, clock, zfake)
    try:
        zfake.revoke("AT-initial-0000000000")
        await zfake.send_event(h.url, zfake.make_event("follow", USER))
        await zfake.wait_for_messages(USER, 1)  # the welcome, after a refresh
        stored = (await h.rows("SELECT access_token, refresh_token, expires_at FROM zalo_tokens"))[0]
        assert stored["refresh_token"] in zfake.refresh_tokens and stored["refresh_token"] != "RT-initial-0000000000"
        await h.stop()
        await h.start()  # the config still names the initial (now dead) pair
        await say(h, zfake, "còn đó không?")
        await zfake.wait_for_messages(USER, 2)
        assert zfake.counters.refreshes == 1 and zfake.counters.refused_refreshes == 0
        assert zfake.counters.errors == {-216: 1}
    finally:
        await h.close()


async def test_a_new_pair_put_in_the_config_after_a_re_authorization_is_used(tmp_path, tg, clock, zfake):
    # The owners' alert on a failed refresh says: re-authorize the app, put the new
    # access_token / refresh_token in [zalo] and restart. The stored (dead) pair must not
    # win over that new pair, or the bot never recovers.
    h = await started(tmp_path, tg, clock, zfake)
    try:
        zfake.revoke("AT-initial-0000000000")
        await zfake.send_event(h.url, zfake.make_event("follow", USER))
        await zfake.wait_for_messages(USER, 1)  # refreshed: the stored pair wins over the config's now
        await h.stop()
        zfake.access_tokens.clear()
        zfake.refresh_tokens.clear()  # the pair lapsed (a refresh token unused for months)
        add_secret("AT-reauthorized-000000", "a re-authorized Zalo access token")
        add_secret("RT-reauthorized-000000", "a re-authorized Zalo refresh token")
        zfake.access_tokens["AT-reauthorized-000000"] = None
        zfake.refresh_tokens.add("RT-reauthorized-000000")
        h.config = config(tmp_path, tg, zfake, {"access_token": "AT-reauthorized-000000",
                                                "refresh_token": "RT-reauthorized-000000"})
        await h.start()
        sent = len(zfake.sent_to(USER))
        await say(h, zfake, "còn đó không?")
        await zfake.wait_for_messages(USER, sent + 1)
        assert zfake.counters.refused_refreshes == 0
        await h.stop()
        await h.start()  # the same config again: the pair it gave is still the one in use
        sent = len(zfake.sent_to(USER))
        await say(h, zfake, "shop ơi")
        await zfake.wait_for_messages(USER, sent + 1)
        assert zfake.counters.refused_refreshes == 0 and zfake.counters.refreshes == 1
    finally:
        await h.close()


# --- the webhook: what is refused, and redeliveries -------------------------------------------------


async def test_bad_signatures_are_401_and_nothing_is_recorded(zh, zfake):
    event = zfake.make_event("user_send_text", USER, text="xin chào")
    raw = json.dumps(event).encode()
    good = zfake.sign(raw, event["timestamp"])
    flipped = bytearray(raw)
    flipped[raw.index(b"xin") + 1] ^= 0x01  # one changed byte
    for body, headers in [
        (raw, {}),
        (raw, {"X-ZEvent-Signature": "mac=" + "0" * 64}),
        (raw, {"X-ZEvent-Signature": zfake.sign(raw, event["timestamp"], secret="wrong-secret")}),
        (bytes(flipped), {"X-ZEvent-Signature": good}),
    ]:
        assert await zfake.post_raw(zh.url, body, headers) == 401
    assert await inbox_count(zh) == 0 and zfake.messages == []


async def test_stale_or_future_signed_events_get_200_and_are_dropped(zh, zfake, clock, caplog):
    for at in (clock.now() - hours(3), clock.now() + hours(3)):
        event = zfake.make_event("user_send_text", USER, text="cũ", timestamp=at)
        with caplog.at_level("WARNING"):
            assert await zfake.send_event(zh.url, event) == 200  # non-2xx brings retries, then a disabled webhook
    assert await inbox_count(zh) == 0
    assert caplog.text.count("dropped as stale") == 2
    assert zfake.sent_to(USER) == []


async def test_the_test_post_of_a_saved_webhook_gets_200_and_changes_nothing(zh, zfake):
    assert await zfake.post_test_ping(zh.url) == 200
    assert await inbox_count(zh) == 0
    assert await zh.rows("SELECT id FROM contacts") == []
    assert await zfake.post_raw(zh.url, b'{"app_id": "1"}', {}) == 400  # unsigned but not the test POST: refused
    assert await zfake.post_raw(zh.url, b"{}", {"X-ZEvent-Signature": "mac=00"}) == 400  # signed {}: not the ping


async def test_malformed_bodies_and_wrong_content_type(zh, zfake):
    def signed(raw: bytes, ts: str = "1") -> dict:
        return {"X-ZEvent-Signature": zfake.sign(raw, ts)}

    assert await zfake.post_raw(zh.url, b"{not json", signed(b"{not json")) == 400
    assert await zfake.post_raw(zh.url, b"[1, 2]", signed(b"[1, 2]")) == 400
    no_ts = b'{"event_name": "user_send_text"}'
    assert await zfake.post_raw(zh.url, no_ts, signed(no_ts)) == 400
    event = zfake.make_event("user_send_text", USER, text="x")
    raw = json.dumps(event).encode()
    assert await zfake.post_raw(zh.url, raw, signed(raw, event["timestamp"]), content_type="text/plain") == 415
    no_id = {"event_name": "user_send_text", "app_id": zfake.app_id, "message": {}, "timestamp": event["timestamp"]}
    raw = json.dumps({k: v for k, v in no_id.items() if k != "event_name"}).encode()
    assert await zfake.post_raw(zh.url, raw, signed(raw, event["timestamp"])) == 400
    assert await inbox_count(zh) == 0


async def test_redelivered_events_are_processed_once(zh, zfake):
    event = zfake.make_event("user_send_text", USER, text="xin chào")
    assert [await zfake.send_event(zh.url, event) for _ in range(2)] == [200, 200]
    assert await asyncio.gather(*(zfake.send_event(zh.url, event) for _ in range(4))) == [200] * 4
    await settled(zh)
    await zfake.wait_for_messages(USER, 2)
    await asyncio.sleep(0.2)
    # The answer, and the one-time request_user_info to a follower not linked yet.
    assert [m.is_info_request for m in zfake.sent_to(USER)] == [False, True] and await inbox_count(zh) == 1


async def test_a_sticker_gets_the_answer_a_telegram_sticker_gets(zh, zfake):
    event = zfake.make_event("user_send_sticker", USER, attachments=[STICKER])
    assert await zfake.send_event(zh.url, event) == 200
    await settled(zh)
    reply = await next_message(zfake)
    assert reply.text.startswith(texts.text("vi", "idle.unsupported"))  # (the first message: the privacy notice follows)
    assert (await zh.rows("SELECT kind FROM inbox"))[0]["kind"] != "ignored"


async def test_an_answer_to_a_customers_message_is_a_reply_to_it_and_a_later_message_goes_by_user_id(zh, zfake):
    # Zalo OA's support: a CS message sent by the API with only user_id and no message_id is
    # counted as a proactive message (billed; a verified OA only); one naming the user's
    # message (recipient.message_id) is a reply, free up to 8 within 48 h of it.
    event = await say(zh, zfake, "cho mình hỏi shop mở cửa mấy giờ?")
    await zfake.wait_for_messages(USER, 2)  # the answer, and the one-time phone form
    assert {m.reply_to for m in zfake.sent_to(USER)} == {event["message"]["msg_id"]}
    assert (zfake.counters.replies, zfake.counters.proactive) == (2, 0)
    zh.clock.advance(hours(46))  # past the reply's 48 h by the time the survey goes
    await post_zalo_purchase(zh, zalo_user_id=USER)
    zh.clock.advance(hours(3))
    assert await zh.app.dispatcher.dispatch_due() == {"sent": 1}
    question = (await zfake.wait_for_messages(USER, 3))[-1]
    assert question.reply_to is None and zfake.counters.proactive == 1  # inside the 7 days: by user id


async def test_a_reply_goes_by_user_id_when_the_message_is_old_unknown_to_zalo_or_not_found(zfake, clock):
    zfake.add_follower(USER)
    last: list = [("msg-unknown", clock.now() - hours(1))]

    async def last_message(user_id: str):
        if isinstance(last[0], Exception):
            raise last[0]
        return last[0]

    channel = channel_for(zfake, clock, last_message=last_message)
    await channel.start()
    try:
        assert await channel.deliver("send_text", USER, {"text": "1", "buttons": []})  # refused as a reply (-201)
        assert zfake.messages[-1].reply_to is None and zfake.counters.message_requests == 2
        last[0] = ("msg-old", clock.now() - hours(49))  # past the 48 h: by user id at once
        assert await channel.deliver("send_text", USER, {"text": "2", "buttons": []})
        assert zfake.messages[-1].reply_to is None and zfake.counters.message_requests == 3
        last[0] = OSError("database is locked")
        assert await channel.deliver("send_text", USER, {"text": "3", "buttons": []})
        assert zfake.counters.message_requests == 4 and zfake.counters.proactive == 3
    finally:
        await channel.close()


async def test_a_broken_event_is_acknowledged_and_kept_with_its_error(zh, zfake):
    event = zfake.make_event("user_send_text", USER, text="x")
    event["message"]["text"] = 42  # signed, but not what Zalo sends
    assert await zfake.send_event(zh.url, event) == 200  # Zalo must not redeliver it forever
    await settled(zh)
    row = (await zh.rows("SELECT error FROM inbox"))[0]
    assert "message.text" in row["error"]


# --- end to end ------------------------------------------------------------------------------------


async def test_csat_and_complaint_over_zalo_with_the_agent_on_telegram(zh, zfake, tg):
    question = await survey_question(zh, zfake)
    assert "#A-1001" in question.text and [b["title"][0] for b in question.buttons] == ["1", "2", "3", "4", "5"]

    await tap(zh, zfake, question, "1")
    followup = await next_message(zfake)
    assert "Chuyện gì đã xảy ra" in followup.text
    await tap(zh, zfake, followup, "Gửi khiếu nại")
    categories = await next_message(zfake)  # 6 choices: more than a button template holds -> numbered
    assert categories.buttons == [] and "1. Giao hàng" in categories.text
    await say(zh, zfake, "1")
    await next_message(zfake)  # what happened?
    await say(zh, zfake, "Shipper giao trễ 2 ngày, hộp bị móp")
    await next_message(zfake)  # photos?
    photo_url = "https://photo.zdn.vn/box-1.jpg"
    assert await zfake.send_event(zh.url, zfake.make_event("user_send_image", USER, image_urls=(photo_url,))) == 200
    await settled(zh)
    ask_more = await next_message(zfake)
    await tap(zh, zfake, ask_more, "Tiếp tục")
    confirm = await next_message(zfake)
    assert "Giao hàng" in confirm.text and "1 ảnh" in confirm.text
    await tap(zh, zfake, confirm, "Gửi")
    opened = await next_message(zfake)
    assert "KN-0001" in opened.text

    # The agents' group on Telegram gets the card and the photo (Telegram fetches the URL).
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    assert "KN-0001" in card.text and "Nguyễn Thị Lan" in card.text and "Shipper giao trễ" in card.text
    photo = (await tg.wait_for_messages(GROUP, 2))[1]
    assert photo.method == "sendPhoto" and photo.params["photo"] == photo_url

    # The agent replies to the card: the Zalo customer gets it.
    await zh.deliver(tg.make_message_update(AGENT, "Shop gửi bù hộp mới hôm nay ạ", chat_id=GROUP, reply_to_message_id=card.message_id))
    relayed = await next_message(zfake)
    assert relayed.text == "💬 Shop An (KN-0001): Shop gửi bù hộp mới hôm nay ạ"
    await say(zh, zfake, "Cảm ơn shop")
    back = (await tg.wait_for_messages(GROUP, 3))[2]
    assert back.text == "👤 Nguyễn Thị Lan (KN-0001): Cảm ơn shop"

    # Resolved: the customer rates the handling with a button.
    await zh.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
    rating = await next_message(zfake)
    assert "KN-0001" in rating.text and len(rating.buttons) == 5
    await tap(zh, zfake, rating, "5")
    await next_message(zfake)
    ticket = (await zh.rows("SELECT * FROM tickets"))[0]
    assert ticket["status"] == "resolved" and ticket["resolution_score"] == 5
    assert json.loads(ticket["photos"]) == [photo_url]
    survey = (await zh.rows("SELECT status, score FROM surveys"))[0]
    assert survey == {"status": "answered", "score": 1}
    rows = await outbox_settled(zh)
    assert {r["status"] for r in rows} == {"sent"}


async def test_window_closed_is_not_sent_not_retried_and_shows_in_the_digest(zh, zfake):
    """Zalo says the last interaction is 8 days old and ZNS is off: no route, skipped as
    unreachable with the reason, never sent (no -230 from Zalo), counted as not delivered."""
    zfake.add_follower(USER, interacted_at=zh.clock.now() - timedelta(days=8))
    await post_zalo_purchase(zh, zalo_user_id=USER)
    zh.clock.advance(hours(3))
    assert await zh.app.dispatcher.dispatch_due() == {"skipped_unreachable": 1}
    assert await outbox_settled(zh) == []
    assert zfake.counters.message_requests == 0 and zfake.detail_requests == 1  # asked, not tried
    survey = (await zh.rows("SELECT status, skip_reason, sent_at, closed_at, route, route_reason FROM surveys"))[0]
    assert survey["status"] == "skipped" and survey["skip_reason"] == "unreachable"
    assert survey["route"] is None and survey["route_reason"] == "zalo_window_closed_no_phone"
    assert survey["sent_at"] is None


async def test_a_send_refused_for_the_window_is_failed_not_retried(zh, zfake):
    """Zalo's own -230 (our view of the window was wrong) still fails the row once, never retried."""
    zfake.add_follower(USER)
    await post_zalo_purchase(zh, zalo_user_id=USER)
    zh.clock.advance(hours(3))
    zfake.fail_next("-217")
    assert await zh.app.dispatcher.dispatch_due() == {"sent": 1}
    rows = await outbox_settled(zh)
    assert [(r["status"], r["attempts"]) for r in rows] == [("failed", 1)]
    assert rows[0]["last_error"].startswith("window_closed: Zalo error -217")
    await asyncio.sleep(0.3)
    assert zfake.counters.message_requests == 1  # never retried
    survey = (await zh.rows("SELECT status, skip_reason, sent_at, closed_at FROM surveys"))[0]
    assert survey["status"] == "skipped" and survey["skip_reason"].startswith("undeliverable:window_closed")
    assert survey["sent_at"] is None
    week = week_of(from_db(survey["closed_at"]), zh.config.tz)
    report = await zh.app.digests.report_json(week)
    assert report["csat"]["undelivered"] == 1 and report["csat"]["sent"] == 0
    text = render_text(await zh.app.digests.build(week), "en")
    assert "Surveys not delivered: 1 (" in text


async def test_unfollowed_customer_is_recorded_not_sent(zh, zfake):
    await zfake.send_event(zh.url, zfake.make_event("follow", USER))
    await zfake.wait_for_messages(USER, 1)  # welcome
    assert await zfake.send_event(zh.url, zfake.make_event("unfollow", USER)) == 200
    await settled(zh)
    await post_zalo_purchase(zh, zalo_user_id=USER)
    zh.clock.advance(hours(3))
    await zh.app.dispatcher.dispatch_due()
    rows = await outbox_settled(zh)
    assert rows[-1]["status"] == "failed" and rows[-1]["last_error"].startswith("unfollowed")
    assert (await zh.rows("SELECT kind FROM inbox ORDER BY id"))[-1]["kind"] == "ignored"


async def test_numbered_choices_when_buttons_are_off(tmp_path, tg, clock, zfake):
    h = await started(tmp_path, tg, clock, zfake, zalo={"buttons": False})
    try:
        question = await survey_question(h, zfake)
        assert question.buttons == [] and "\n4. 4" in question.text
        await say(h, zfake, "4")
        followup = await next_message(zfake)
        assert "Cảm ơn bạn đã chấm 4/5" in followup.text
        await say(h, zfake, "9")  # no such choice: plain text, the survey's comment
        assert (await h.rows("SELECT score, comment FROM surveys"))[0] == {"score": 4, "comment": "9"}
    finally:
        await h.close()


async def test_a_refused_button_message_is_sent_again_as_numbered_text(zh, zfake):
    zfake.refuse_buttons = True
    question = await survey_question(zh, zfake)
    assert "1. 1" in question.text and zfake.counters.errors == {-233: 1}
    await say(zh, zfake, "5")
    assert (await zh.rows("SELECT score FROM surveys"))[0]["score"] == 5


async def test_phone_submitted_on_zalo_links_nothing_and_the_customers_chats_are_told(zh, zfake, tg):
    """Issue 19 item 6: a user_submit_info with another customer's phone (the form's phone is
    whatever the user submitted; Zalo does not vouch for it) no longer makes the Zalo user
    that customer: no link, no survey of hers, no order of hers offered by /complaint."""
    await post_zalo_purchase(zh, phone="+84 912 345 678", telegram_user_id=TG_USER)
    await zh.customer_says(TG_USER, "/start")  # the victim's own Telegram chat
    await tg.wait_for_messages(TG_USER, 1)
    zh.clock.advance(hours(4))
    assert await zh.app.dispatcher.dispatch_due() == {"sent": 1}  # to her Telegram chat
    await tg.wait_for_messages(TG_USER, 2)
    event = zfake.make_event("user_submit_info", USER, info={"name": "Lan", "phone": "84912345678"})
    zfake.add_follower(USER)
    assert await zfake.send_event(zh.url, event) == 200
    await settled(zh)
    welcome = await zfake.wait_for_messages(USER, 1)
    assert "Lan" not in welcome[0].text and "#A-1001" not in welcome[0].text
    assert (await zh.rows("SELECT zalo_user_id FROM customers"))[0]["zalo_user_id"] is None
    assert (await zh.rows("SELECT customer_id FROM contacts WHERE channel = 'zalo'"))[0]["customer_id"] is None
    told = (await tg.wait_for_messages(TG_USER, 3))[2]
    assert "số điện thoại của bạn" in told.text

    await say(zh, zfake, "/complaint")
    ask = (await zfake.wait_for_messages(USER, 2))[1]
    shown = ask.text + " ".join(b["title"] for b in ask.buttons)
    assert "Vấn đề thuộc loại nào" in shown and "A-1001" not in shown  # no order of hers: none to pick
    await say(zh, zfake, "/cancel")
    await say(zh, zfake, "/mydata")
    await outbox_settled(zh)
    sent = zfake.sent_to(USER)
    assert any("/mydata/" in m.text or "liên hệ" in m.text for m in sent[2:])  # the answer came
    assert all("Nguyễn Thị Lan" not in m.text and "912" not in m.text for m in sent)

    # The shop checks the number and confirms (`feedbot customer link`): now the chat is hers.
    chat = (await zh.rows("SELECT id FROM contacts WHERE channel = 'zalo'"))[0]["id"]
    assert await zh.app.privacy.link(f"contact:{chat}", "C-42") is None
    await say(zh, zfake, "/complaint")
    await outbox_settled(zh)
    ask = zfake.sent_to(USER)[-1]
    assert "A-1001" in ask.text + " ".join(b["title"] for b in ask.buttons)


async def test_survey_goes_to_the_channel_used_last_and_fatigue_spans_channels(zh, zfake, tg):
    body = await post_zalo_purchase(zh, zalo_user_id=USER, telegram_user_id=TG_USER)  # both her chats, per the shop
    token = body["links"]["telegram"].split("start=")[1]
    await zh.customer_says(TG_USER, f"/start {token}")  # linked on Telegram at 09:00
    zh.clock.advance(hours(1))
    await say(zh, zfake, "Xin chào")  # then writes on Zalo at 10:00: Zalo is used last
    contacts = await zh.rows("SELECT channel, customer_id FROM contacts ORDER BY id")
    assert [c["channel"] for c in contacts] == ["zalo", "telegram"] and len({c["customer_id"] for c in contacts}) == 1
    zh.clock.advance(hours(2))
    assert await zh.app.dispatcher.dispatch_due() == {"sent": 1}
    await zfake.wait_for_messages(USER, 2)
    assert "#A-1001" in zfake.sent_to(USER)[1].text and len(tg.sent_messages(TG_USER)) == 1  # only the welcome

    # One customer, one fatigue counter: a second order the next day is not surveyed on Telegram either.
    await zh.customer_says(TG_USER, "hi")
    zh.clock.advance(hours(20))
    await post_zalo_purchase(zh, order="A-1002")
    zh.clock.advance(hours(4))
    assert await zh.app.dispatcher.dispatch_due() == {"skipped_fatigue": 1}


async def test_channel_order_prefers_the_configured_channel(tmp_path, tg, clock, zfake):
    h = await started(tmp_path, tg, clock, zfake, survey={"channel_order": ["telegram", "last_used"]})
    try:
        body = await post_zalo_purchase(h, zalo_user_id=USER, telegram_user_id=TG_USER)
        await h.customer_says(TG_USER, f"/start {body['links']['telegram'].split('start=')[1]}")
        h.clock.advance(hours(1))
        await say(h, zfake, "Xin chào")  # Zalo used last, but Telegram comes first
        h.clock.advance(hours(2))
        await h.app.dispatcher.dispatch_due()
        question = (await tg.wait_for_messages(TG_USER, 2))[1]
        assert "#A-1001" in question.text
    finally:
        await h.close()


async def test_purchase_zalo_user_id_is_validated(zh):
    status, body = await zh.post_purchase("A-9", customer={"external_id": "C-9", "name": "X", "zalo_user_id": "abc"})
    assert status == 400 and body["error"]["field"] == "customer.zalo_user_id"
    assert await zh.rows("SELECT * FROM customers") == []


# --- config ------------------------------------------------------------------------------------------


def test_zalo_config_needs_the_oa_secret_and_a_token_and_secrets_are_redacted():
    with pytest.raises(ConfigError, match="zalo.oa_secret_key"):
        parse_config({"zalo": {"app_id": "1", "access_token": "a"}}, {})
    with pytest.raises(ConfigError, match="zalo.access_token"):
        parse_config({"zalo": {"app_id": "1"}}, {"FEEDBOT_ZALO_OA_SECRET_KEY": "k" * 10})
    env = {"FEEDBOT_ZALO_OA_SECRET_KEY": "oa-secret-123", "FEEDBOT_ZALO_ACCESS_TOKEN": "access-123",
           "FEEDBOT_ZALO_REFRESH_TOKEN": "refresh-123", "FEEDBOT_ZALO_APP_SECRET": "app-secret-123"}
    config = parse_config({"zalo": {"app_id": "1"}}, env)
    assert config.zalo_enabled and set(env.values()) <= set(_secrets(config))
    with pytest.raises(ConfigError, match="survey.channel_order"):
        parse_config({"survey": {"channel_order": ["sms"]}}, {})



async def test_an_unlinked_follower_is_asked_for_their_phone_once(zh, zfake):
    await zfake.send_event(zh.url, zfake.make_event("follow", USER))
    await settled(zh)
    await say(zh, zfake, "xin chào")
    await say(zh, zfake, "còn đó không")
    await outbox_settled(zh)
    forms = [m for m in zfake.sent_to(USER) if m.is_info_request]
    assert len(forms) == 1  # once, after the follow
    payload = forms[0].message["attachment"]["payload"]
    assert payload["template_type"] == "request_user_info" and payload["elements"][0]["title"]
    # One who shares their number unasked is not asked afterwards.
    other = "5170627724267093299"
    event = zfake.make_event("user_submit_info", other, info={"name": "B", "phone": "84900000001"})
    assert await zfake.send_event(zh.url, event) == 200
    await settled(zh)
    await say(zh, zfake, "hi", user=other)
    await outbox_settled(zh)
    assert not any(m.is_info_request for m in zfake.sent_to(other))
