"""Surveys by ZNS and the route per survey, end to end against the fake Zalo server (with ZNS):
phone-only buyers, followers inside and outside the window, ratings read back once, the night
ban, the day's quota with one owner alert, a timeout retried without a second charge, and the
scheduled token keep-alive."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.channels.base import Permanent, RetryLater, Transient
from bot.channels.zalo.channel import ZnsChannel
from bot.cli import zalo as zalo_cli
from bot.outbox.effects import Actor
from bot.config import ConfigError, parse_config
from flows.digest import render_text, week_of
from flows.model import OpenTicket
from flows.survey_routes import ZnsPolicy, night_ban_ends
from storage import contacts, tickets
from tests.channels.zalo.test_channel import GROUP, TG_USER, USER, channel_for, say, started
from tests.http.test_agent_page import AgentClient
from storage.timefmt import from_db
from tests.conftest import API_TOKEN, BOTH, START, hours
from testkit.zalo_api import FakeZaloServer

BACKENDS = BOTH  # routes, spend and ratings on SQLite and on PostgreSQL

OWNER = 777001
TEMPLATE, RATING, RESOLUTION = "1001", "2002", "3003"
PARAMS = {"customer_name", "order_code", "shop_name", "survey_link"}
RESOLUTION_PARAMS = {"customer_name", "ticket_code", "shop_name"}
PHONE = "84912345678"  # the default purchase's "+84 912 345 678"


@pytest.fixture
async def zfake(clock):
    async with FakeZaloServer(clock) as fake:
        fake.register_template(TEMPLATE, PARAMS)
        fake.register_template(RATING, PARAMS, rating=True)
        fake.register_template(RESOLUTION, RESOLUTION_PARAMS, rating=True)
        yield fake


def zns(**overrides) -> dict:
    return {"enabled": True, "survey_templates": {"vi": TEMPLATE}, "rating_templates": {"vi": TEMPLATE, "en": RATING},
            "api_base_url": "", **overrides}


async def zns_app(tmp_path, tg, clock, fake, database_url=None, arrays=None, public_url="https://shop.example",
                  **overrides):
    section = zns(**overrides)
    section["api_base_url"] = fake.api_root
    return await started(tmp_path, tg, clock, fake, zalo={"zns": section}, database_url=database_url,
                         agents={"chat_id": GROUP, "owner_chat_ids": [OWNER]},
                         http={"public_url": public_url}, telegram={"mode": "polling"}, arrays=arrays)


async def buy(h, order: str, phone: str | None = "+84 912 345 678", **customer) -> None:
    status, body = await h.post_purchase(order, customer={"external_id": f"C-{order}", "name": "Nguyễn Thị Lan",
                                                          **({"phone": phone} if phone else {}), **customer})
    assert status == 202, body


async def survey_by_zns(h, clock) -> None:
    """Order A-1 of a phone-only buyer; 3 h later its survey goes by ZNS."""
    await buy(h, "A-1")
    clock.advance(hours(3))
    assert await h.app.dispatcher.dispatch_due() == {"sent": 1}


async def test_a_buyer_who_never_followed_gets_the_zns_survey_rates_2_and_a_complaint_opens(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        await survey_by_zns(h, clock)
        rows = await h.outbox_settled()
        assert [(r["channel"], r["status"]) for r in rows] == [("zns", "sent")]
        [message] = zfake.zns_to(PHONE)
        assert message.template_id == TEMPLATE and message.tracking_id == str(rows[0]["id"])  # outbox id
        assert message.data["order_code"] == "A-1" and message.data["survey_link"].startswith("https://shop.example/chat?start=")
        survey = (await h.rows("SELECT status, route, route_reason FROM surveys"))[0]
        assert survey == {"status": "sent", "route": "zns", "route_reason": "phone_only"}

        zfake.rate(message, 2, note="giao trễ", feedbacks=("Giao hàng chậm",))
        assert await h.app.routes.poll_ratings() == 1
        assert await h.app.routes.poll_ratings() == 0  # read again: stored once
        survey = (await h.rows("SELECT status, score, comment FROM surveys"))[0]
        assert survey["status"] == "answered" and survey["score"] == 2 and "Giao hàng chậm" in survey["comment"]
        ticket = await h.rows("SELECT source, description, survey_id FROM tickets")
        assert len(ticket) == 1 and ticket[0]["source"] == "low_score" and "giao trễ" in ticket[0]["description"]
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        assert "A-1" in card.text

        # The digest: surveys per route and the week's ZNS spend.
        week = week_of(clock.now(), h.config.tz)
        report = await h.app.digests.report_json(week)
        assert report["csat"]["by_route"] == {"zns": 1} and report["csat"]["zns_spend"] == {"messages": 1, "vnd": 200}
        assert "ZNS" in render_text(await h.app.digests.build(week), "en")
    finally:
        await h.close()


async def test_a_phone_written_with_the_international_prefix_gets_the_zns_survey(tmp_path, tg, clock, zfake, database_url):
    # "0084 912 345 678" is 84912345678: sent there, not to 84084912345678 (-108, never delivered).
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        await buy(h, "A-1", phone="0084 912 345 678")
        clock.advance(hours(3))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        rows = await h.outbox_settled()
        assert [(r["channel"], r["chat_id"], r["status"]) for r in rows] == [("zns", PHONE, "sent")]
        assert len(zfake.zns_to(PHONE)) == 1 and zfake.counters.errors == {}
    finally:
        await h.close()


async def test_a_follower_inside_the_window_gets_cs_and_one_outside_gets_zns(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        other = "5170627724267093299"
        zfake.add_follower(USER)  # wrote to the OA today
        zfake.add_follower(other, interacted_at=clock.now() - timedelta(days=9))
        await buy(h, "A-1", zalo_user_id=USER)
        await buy(h, "A-2", phone="0987654321", zalo_user_id=other)
        clock.advance(hours(3))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 2}
        await h.outbox_settled()
        assert "A-1" in (await zfake.next_to(USER)).text  # the CS survey, conversational
        assert zfake.sent_to(other) == [] and len(zfake.zns_to("84987654321")) == 1
        routes = await h.rows("SELECT route, route_reason FROM surveys ORDER BY id")
        assert routes == [{"route": "cs", "route_reason": "zalo_window_open"},
                          {"route": "zns", "route_reason": "zalo_window_closed"}]
        assert zfake.detail_requests == 2  # asked Zalo: neither had written to us
    finally:
        await h.close()


async def test_quota_reached_the_rest_wait_and_the_owner_is_told_once(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, daily_messages=2)
    try:
        for i in range(4):
            await buy(h, f"A-{i}", phone=f"09123456{i:02d}")
        clock.advance(hours(3))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 2, "postponed": 2}
        assert await h.app.dispatcher.dispatch_due() == {}  # the rest wait for tomorrow
        await h.outbox_settled()
        assert len(zfake.zns_messages) == 2  # never past the limit
        alerts = [m for m in await tg.wait_for_messages(OWNER, 1) if "ZNS" in m.text]
        assert len(alerts) == 1 and "2" in alerts[0].text
        waiting = await h.rows("SELECT due_at FROM surveys WHERE status = 'scheduled'")
        assert len(waiting) == 2
        clock.advance(hours(24))  # the next day (after the night ban)
        assert (await h.app.dispatcher.dispatch_due())["sent"] == 2
        await asyncio.sleep(0.1)
        assert len([m for m in tg.sent_messages(OWNER) if "ZNS" in m.text]) == 1
    finally:
        await h.close()


async def test_a_survey_waiting_for_the_quota_day_after_day_is_skipped_once_too_late(tmp_path, tg, clock, zfake, database_url):
    # One ZNS a day and four surveys due at once: each wait for the next quota day must not
    # restart the survey's lateness; the fourth would go out ~68 h late (max_lateness 48 h).
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, daily_messages=1)
    try:
        for i in range(4):
            await buy(h, f"A-{i}", phone=f"09123456{i:02d}")
        due = START + hours(3)
        for _ in range(5 * 24):  # the dispatch job, every hour for five days
            clock.advance(hours(1))
            await h.app.dispatcher.dispatch_due()
        rows = await h.rows("SELECT status, skip_reason, sent_at FROM surveys ORDER BY id")
        sent = [from_db(r["sent_at"]) for r in rows if r["status"] == "sent"]
        assert len(sent) == 3 and all(at - due <= hours(48) for at in sent), rows
        assert [r["skip_reason"] for r in rows if r["status"] == "skipped"] == ["zns_daily_quota"], rows
    finally:
        await h.close()


async def test_the_templates_date_is_the_purchase_date_not_the_surveys_due_day(tmp_path, tg, clock, zfake, database_url):
    # Bought at 20:00 on 23/11: the survey is due the next morning (quiet hours), but the
    # template's `date` is the purchase date (config.example.toml), which the customer knows.
    zfake.register_template("1004", PARAMS | {"order_date"})
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, survey_templates={"vi": "1004"},
                      params={"customer_name": "customer_name", "order_id": "order_code", "shop": "shop_name",
                              "link": "survey_link", "date": "order_date"})
    try:
        clock.advance(hours(11))  # 20:00 shop time
        status, body = await h.post_purchase("A-1", purchased_at=(START + hours(11)).isoformat(),
                                             customer={"external_id": "C-A-1", "name": "Lan", "phone": "+84 912 345 678"})
        assert status == 202, body
        clock.advance(hours(12))  # 08:00 the next day
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        await h.outbox_settled()
        assert [m.data["order_date"] for m in zfake.zns_messages] == ["23/11/2026"]
    finally:
        await h.close()


async def test_no_zns_send_in_the_night_ban(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, night_ban="12:00-13:00")
    try:
        await buy(h, "A-1")
        clock.advance(hours(3) + timedelta(minutes=30))  # 12:30 shop time
        assert await h.app.dispatcher.dispatch_due() == {"postponed": 1}
        assert zfake.zns_requests == 0
        clock.advance(timedelta(minutes=31))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
    finally:
        await h.close()


async def test_a_timeout_is_retried_with_the_same_tracking_id_and_charged_once(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        await buy(h, "A-1")
        clock.advance(hours(3))
        zfake.zns_fail_next("timeout")  # charged, the answer comes after our 1 s timeout
        await h.app.dispatcher.dispatch_due()
        for _ in range(200):
            rows = await h.rows("SELECT status, attempts FROM outbox")
            if rows[0]["status"] != "pending" or rows[0]["attempts"] == 0:
                if rows[0]["status"] == "sent":
                    break
            clock.advance(timedelta(seconds=5))
            h.app.sender.wake()
            await asyncio.sleep(0.05)
        assert rows[0]["status"] == "sent" and rows[0]["attempts"] >= 1
        assert zfake.zns_requests == 2 and len(zfake.zns_messages) == 1 and zfake.double_charges == 0
    finally:
        await h.close()


async def test_the_scheduler_refreshes_an_old_pair_with_no_sends_and_a_failure_alerts_once(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        assert await h.app.routes.keep_token_alive()  # never rotated: the config's pair is refreshed
        assert zfake.counters.refreshes == 1
        assert not await h.app.routes.keep_token_alive()  # fresh: nothing to do
        clock.advance(hours(21))
        assert await h.app.routes.keep_token_alive()
        assert zfake.counters.refreshes == 2 and zfake.messages == [] and zfake.zns_messages == []
        zfake.refresh_tokens.clear()  # the refresh token is dead: a person must re-authorize
        clock.advance(hours(21))
        assert not await h.app.routes.keep_token_alive()
        assert not await h.app.routes.keep_token_alive()
        alerts = [m for m in await tg.wait_for_messages(OWNER, 1) if "Zalo" in m.text]
        await asyncio.sleep(0.2)
        assert len([m for m in tg.sent_messages(OWNER) if "Zalo" in m.text]) == 1 and "cấp quyền lại" in alerts[0].text
    finally:
        await h.close()


def test_zns_config_is_checked_and_buttons_default_off():
    base = {"app_id": "1", "oa_secret_key": "k", "access_token": "t"}
    assert parse_config({"zalo": base}, {}).zalo.buttons is False
    for bad, key in [({"enabled": True}, "enabled"), ({"night_ban": "22-06"}, "night_ban"),
                     ({"params": {"nonsense": "x"}}, "params"), ({"survey_templates": {"fr": "1"}}, "survey_templates"),
                     ({"daily_budget_vnd": -1}, "daily_budget_vnd"), ({"typo": 1}, "typo")]:
        with pytest.raises(ConfigError) as caught:
            parse_config({"zalo": {**base, "zns": bad}}, {})
        assert str(caught.value).startswith(f"zalo.zns: {key}")


@pytest.mark.parametrize("fault,error,start", [
    ("-118", Permanent, "zns_not_on_zalo"),
    ("-108", Permanent, "zns_phone_invalid"),
    ("-115", RetryLater, "ZNS error -115"),  # out of balance: the channel waits, nothing is lost
    ("-144", RetryLater, "ZNS error -144"),
    ("-133", RetryLater, "ZNS error -133"),
    ("-100", Transient, "ZNS error -100"),
    ("500", Transient, "zalo: HTTP 500"),
])
async def test_zns_error_codes_map_to_what_the_sender_does(zfake, clock, fault, error, start):
    zalo = channel_for(zfake, clock)
    await zalo.start()
    zns_channel = ZnsChannel(zalo, api_base_url=zfake.api_root, messages_per_second=5,
                             night_ban=lambda at: at, clock=clock)
    try:
        zfake.zns_fail_next(fault)
        with pytest.raises(error) as caught:
            await zns_channel.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "1",
                                                               "template_data": {p: "x" for p in PARAMS}})
        assert str(caught.value).startswith(start)
        assert zfake.zns_messages == []
    finally:
        await zalo.close()


async def test_the_fake_checks_templates_phones_and_the_night_ban_and_a_rejected_token_is_refreshed(zfake, clock):
    zalo = channel_for(zfake, clock)
    await zalo.start()
    zns_channel = ZnsChannel(zalo, api_base_url=zfake.api_root, messages_per_second=5, night_ban=lambda at: at, clock=clock)
    good = {p: "x" for p in PARAMS}
    try:
        with pytest.raises(Permanent, match="-112"):  # a parameter missing
            await zns_channel.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "1",
                                                               "template_data": {"order_code": "A"}})
        with pytest.raises(Permanent, match="-109"):
            await zns_channel.deliver("send_template", PHONE, {"template_id": "999", "tracking_id": "2", "template_data": good})
        zfake.zalo_phones = {"84900000000"}
        with pytest.raises(Permanent, match="zns_not_on_zalo"):
            await zns_channel.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "3", "template_data": good})
        zfake.zalo_phones = None
        zfake.revoke("AT-initial-0000000000")  # -124: refreshed once, sent
        assert await zns_channel.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "4",
                                                                  "template_data": good})
        assert zfake.counters.refreshes == 1 and zns_channel.quota is not None
        clock.advance(hours(14))  # 23:00 in Vietnam: Zalo refuses (-133)
        with pytest.raises(RetryLater, match="-133"):
            await zns_channel.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "5", "template_data": good})
        banned = ZnsChannel(zalo, api_base_url=zfake.api_root, messages_per_second=5, clock=clock,
                            night_ban=lambda at: night_ban_ends(at, ZnsPolicy(timezone=clock.now().tzinfo)))
        requests = zfake.zns_requests
        with pytest.raises(RetryLater) as caught:  # ours: not even asked
            await banned.deliver("send_template", PHONE, {"template_id": TEMPLATE, "tracking_id": "6", "template_data": good})
        assert zfake.zns_requests == requests and 6 * 3600 < caught.value.seconds <= 7 * 3600
        with pytest.raises(Permanent):  # an agent's text to a phone-only customer
            await banned.deliver("send_text", PHONE, {"text": "hi"})
    finally:
        await zalo.close()


async def test_the_send_after_a_token_refresh_fails_like_the_first_would(zfake, clock):
    # The retry after a refresh is the same send: a timeout on it goes again with the same
    # tracking_id (never "outcome unknown", which drops the survey), and a token still
    # refused is retried later, not failed for good.
    zalo = channel_for(zfake, clock, request_timeout=0.5)
    await zalo.start()
    zns_channel = ZnsChannel(zalo, api_base_url=zfake.api_root, messages_per_second=5, night_ban=lambda at: at, clock=clock)
    payload = {"template_id": TEMPLATE, "tracking_id": "7", "template_data": {p: "x" for p in PARAMS}}
    try:
        zfake.revoke("AT-initial-0000000000")
        zfake.zns_fail_next("none", "timeout")  # -124, refresh, then the answer comes too late
        with pytest.raises(Transient, match="same tracking_id"):
            await zns_channel.deliver("send_template", PHONE, payload)
        assert await zns_channel.deliver("send_template", PHONE, payload) == zfake.zns_messages[0].msg_id
        assert zfake.double_charges == 0
        zfake.zns_fail_next("-124", "-124")  # refused, refreshed, refused again
        with pytest.raises(Transient, match="-124"):
            await zns_channel.deliver("send_template", PHONE, {**payload, "tracking_id": "8"})
    finally:
        await zalo.close()


async def test_zalo_status_prints_tokens_spend_and_routes(tmp_path, tg, clock, zfake, capsys):
    h = await zns_app(tmp_path, tg, clock, zfake, daily_messages=10, daily_budget_vnd=5000)
    try:
        await buy(h, "A-1")
        clock.advance(hours(3))
        await h.app.dispatcher.dispatch_due()
        await h.app.routes.keep_token_alive()
        assert await zalo_cli.run(h.config, None, now=clock.now()) == 0
    finally:
        await h.close()
    out = capsys.readouterr().out
    assert "token pair: stored (rotated)" in out and "(0.0 h ago) (every 20h)" in out
    assert "ZNS today:" in out and "left: 9 messages, 4800 VND" in out
    assert "surveys sent per route (7 days): zns 1" in out


async def test_the_templates_link_opened_in_a_chat_asks_the_survey_there_once(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        await survey_by_zns(h, clock)
        await h.outbox_settled()
        [message] = zfake.zns_to(PHONE)
        token = message.data["survey_link"].rsplit("start=", 1)[1]
        await h.customer_says(TG_USER, f"/start {token}")
        await h.customer_says(TG_USER, f"/start {token}")  # twice: asked once
        await h.outbox_settled()
        questions = [m for m in tg.sent_messages(TG_USER) if "csat:" in str(m.params.get("reply_markup"))]
        assert len(questions) == 1, [m.text for m in tg.sent_messages(TG_USER)]
        survey = (await h.rows("SELECT status, route, contact_id FROM surveys"))[0]
        chat = (await h.rows("SELECT id FROM contacts WHERE channel = 'telegram'"))[0]["id"]
        assert survey["status"] == "sent" and survey["route"] == "zns" and survey["contact_id"] == chat
    finally:
        await h.close()


def test_check_config_lists_the_survey_routes(capsys):
    from bot.cli.main import _check_config

    base = {"app_id": "1", "oa_secret_key": "k", "access_token": "t"}
    _check_config(parse_config({"zalo": {**base, "zns": zns(daily_messages=300, api_base_url="https://z.example")}}, {}))
    out = capsys.readouterr().out
    assert "Zalo CS message (inside the 7-day interaction window)" in out
    assert "ZNS template by phone (vi=1001; 300/day; no sends 22:00-06:00)" in out
    _check_config(parse_config({"zalo": base}, {}))
    assert "ZNS off: buyers outside the window are skipped as unreachable" in capsys.readouterr().out


# --- ratings read back: the follow-up where a chat is open; resolution ratings by ZNS -----------

OTHER = "5170627724267093299"  # a follower who last wrote 9 days ago
OTHER_PHONE = "84987654321"


async def zns_survey_to_a_closed_zalo_chat(h, zfake, clock):
    """A follower outside the window gets their survey by ZNS (their chat is known to us)."""
    zfake.add_follower(OTHER, interacted_at=clock.now() - timedelta(days=9))
    await buy(h, "A-2", phone="0987654321", zalo_user_id=OTHER)
    clock.advance(hours(3))
    assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
    await h.outbox_settled()
    [message] = zfake.zns_to(OTHER_PHONE)
    return message


async def test_a_zns_rating_is_followed_up_on_a_chat_open_by_then_as_a_tap_would_be(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        message = await zns_survey_to_a_closed_zalo_chat(h, zfake, clock)
        await say(h, zfake, "Shop ơi cho mình hỏi", user=OTHER)  # the window opens again
        await h.outbox_settled()
        before = len(zfake.sent_to(OTHER))
        zfake.rate(message, 2)
        assert await h.app.routes.poll_ratings() == 1
        await h.outbox_settled()
        followup = zfake.sent_to(OTHER)[before:]
        assert len(followup) == 1  # thanks, what went wrong, and the complaint offered (not opened)
        assert "Cảm ơn bạn đã chia sẻ" in followup[0].text
        assert [b["title"] for b in followup[0].buttons][:1] == ["Gửi khiếu nại"]
        assert await h.rows("SELECT id FROM tickets WHERE kind = 'complaint'") == []
        assert zfake.zns_to(OTHER_PHONE) == [message]  # nothing more by ZNS
        # The chat waits for the comment, as after a tap: the next text is stored as it.
        await say(h, zfake, "Hàng giao trễ hai ngày", user=OTHER)
        survey = (await h.rows("SELECT score, comment FROM surveys"))[0]
        assert survey == {"score": 2, "comment": "Hàng giao trễ hai ngày"}
        assert await h.app.routes.poll_ratings() == 0  # read again: stored and followed up once
    finally:
        await h.close()


async def test_a_zns_rating_is_followed_up_on_the_customers_telegram_chat_when_one_is_linked_by_then(
        tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        await buy(h, "A-1", telegram_user_id=TG_USER)  # the shop knows her Telegram id; she never wrote to the bot
        clock.advance(hours(3))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        await h.outbox_settled()
        [message] = zfake.zns_to(PHONE)  # so the survey went by ZNS
        await h.customer_says(TG_USER, "/start")  # now she has a chat with the bot
        await h.outbox_settled()
        before = len(tg.sent_messages(TG_USER))
        zfake.rate(message, 5)
        assert await h.app.routes.poll_ratings() == 1
        await h.outbox_settled()
        [followup] = tg.sent_messages(TG_USER)[before:]
        assert "Gửi khiếu nại" not in str(followup.params.get("reply_markup"))  # a happy score: no complaint offered
        assert "csat:" in str(followup.params.get("reply_markup"))  # its Skip button, as after a tap
        state = await h.rows("SELECT c.state FROM conversations c JOIN contacts k ON k.id = c.contact_id"
                             " WHERE k.channel = 'telegram'")
        assert state == [{"state": "csat.awaiting_comment"}]
    finally:
        await h.close()


async def test_a_zns_rating_with_no_chat_open_opens_the_complaint_and_says_nothing(tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url)
    try:
        message = await zns_survey_to_a_closed_zalo_chat(h, zfake, clock)  # their chat stays closed
        zfake.rate(message, 2, note="hộp bị móp")
        assert await h.app.routes.poll_ratings() == 1
        await h.outbox_settled()
        assert zfake.sent_to(OTHER) == []  # a CS message would be refused: nothing tried
        ticket = await h.rows("SELECT source, description FROM tickets")
        assert ticket == [{"source": "low_score", "description": "hộp bị móp"}]
    finally:
        await h.close()


async def open_ticket(h, contact_id: int, order: str | None = None) -> int:
    async with h.app.db.transaction() as tx:
        contact = await contacts.by_id(tx, contact_id)
        ticket = await h.app.customer_desk.open(tx, OpenTicket("delivery", "Giao thiếu hàng", order_id=order), contact,
                                                h.clock.now())
    return ticket.id


async def resolve(h, ticket_id: int) -> None:
    async with h.app.db.transaction() as tx:
        ticket = await tickets.get(tx, ticket_id)
        await h.app.agent_desk.resolve(tx, ticket, Actor("agent", "1", "Minh"), h.clock.now())
    h.app.sender.wake()
    await h.outbox_settled()


async def test_a_phone_only_customers_resolved_complaint_is_rated_by_zns_once_and_a_low_score_reopens_it(
        tmp_path, tg, clock, zfake, database_url, capsys):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, resolution_templates={"vi": RESOLUTION})
    try:
        await survey_by_zns(h, clock)
        await h.outbox_settled()
        [survey_message] = zfake.zns_to(PHONE)
        zfake.rate(survey_message, 2)
        assert await h.app.routes.poll_ratings() == 1  # no chat: the complaint opens (phone only)
        [ticket] = await h.rows("SELECT id, contact_id FROM tickets")
        await resolve(h, ticket["id"])
        asked = [m for m in zfake.zns_to(PHONE) if m.template_id == RESOLUTION]
        assert len(asked) == 1 and asked[0].data["ticket_code"].startswith("KN-")
        assert asked[0].data["customer_name"] == "Nguyễn Thị Lan"
        rows = await h.rows("SELECT channel, method, status FROM outbox WHERE contact_id = ?", (ticket["contact_id"],))
        assert ("zns", "send_text", "failed") not in [(r["channel"], r["method"], r["status"]) for r in rows]

        zfake.rate(asked[0], 1, note="vẫn chưa nhận được hàng bù")
        assert await h.app.routes.poll_ratings() == 1
        assert await h.app.routes.poll_ratings() == 0  # read again: stored once
        stored = (await h.rows("SELECT status, resolution_score, reopened_count FROM tickets"))[0]
        # Unhappy, no chat to offer the reopening in: it is reopened, as the tap would.
        assert stored == {"status": "open", "resolution_score": None, "reopened_count": 1}
        events = [e["action"] for e in await h.rows("SELECT action FROM ticket_events ORDER BY id")]
        assert events[-3:] == ["rated", "customer_message", "reopened"]
        assert (await h.rows("SELECT score, ticket_id FROM zns_ratings WHERE ticket_id IS NOT NULL")) == [
            {"score": 1, "ticket_id": ticket["id"]}]

        week = week_of(clock.now(), h.config.tz)
        report = await h.app.digests.report_json(week)
        assert report["complaints"]["resolution_by_zns"] == {"asked": 1, "answered": 1}
        assert report["csat"]["zns_spend"] == {"messages": 2, "vnd": 400}  # the survey and the rating
        assert "Đánh giá sau xử lý gửi qua ZNS: 1 tin, 1 lượt trả lời" in render_text(await h.app.digests.build(week), "vi")
        assert await zalo_cli.run(h.config, None, now=clock.now()) == 0
        assert "resolution ratings by ZNS (7 days): 1 asked, 1 answered" in capsys.readouterr().out
    finally:
        await h.close()


async def test_a_zalo_complaint_is_rated_in_the_chat_inside_the_window_and_by_zns_outside_it(
        tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, resolution_templates={"vi": RESOLUTION})
    try:
        zfake.add_follower(USER)
        await buy(h, "A-1", zalo_user_id=USER)
        await say(h, zfake, "Shop ơi đơn A-1 giao thiếu")
        [chat] = await h.rows("SELECT id FROM contacts WHERE channel = 'zalo'")
        first = await open_ticket(h, chat["id"], "A-1")
        await resolve(h, first)  # the chat wrote just now: asked there, with its buttons
        assert "đã được xử lý xong" in zfake.sent_to(USER)[-1].text
        assert [m for m in zfake.zns_messages if m.template_id == RESOLUTION] == []

        second = await open_ticket(h, chat["id"], "A-1")
        clock.advance(timedelta(days=8))  # no word from them since: the chat is closed
        before = len(zfake.sent_to(USER))
        await resolve(h, second)
        [asked] = [m for m in zfake.zns_messages if m.template_id == RESOLUTION]
        assert asked.phone == PHONE and asked.data["ticket_code"] == f"KN-{second:04d}"
        assert not any("đã được xử lý xong" in m.text for m in zfake.sent_to(USER)[before:])

        await say(h, zfake, "Mình nhận được hàng rồi")  # they write again: the window is open
        await h.outbox_settled()
        before = len(zfake.sent_to(USER))
        zfake.rate(asked, 2)
        assert await h.app.routes.poll_ratings() == 1
        await h.outbox_settled()
        stored = (await h.rows("SELECT status, resolution_score FROM tickets WHERE id = ?", (second,)))[0]
        assert stored == {"status": "resolved", "resolution_score": 2}  # offered, not reopened
        sent = zfake.sent_to(USER)[before:]
        assert len(sent) == 1, [m.message for m in sent]
        thanks = sent[0]
        assert "Cảm ơn bạn đã đánh giá 2/5" in thanks.text and [b["title"] for b in thanks.buttons] == ["Mở lại khiếu nại"]
    finally:
        await h.close()


def test_resolution_templates_are_configured_checked_and_shown(tmp_path, capsys):
    base = {"app_id": "1", "oa_secret_key": "k", "access_token": "t"}
    config = parse_config({"zalo": {**base, "zns": zns(resolution_templates={"vi": "3003", "en": "3004"})}}, {})
    policy = config.zns_policy()
    assert policy.resolution_usable and policy.resolution_template("en") == "3004"
    assert policy.read_back == (TEMPLATE, RATING, "3003", "3004")
    assert dict(policy.resolution_params) == {"customer_name": "customer_name", "ticket": "ticket_code", "shop": "shop_name"}
    for bad, key in [({"resolution_templates": {"fr": "1"}}, "resolution_templates"),
                     ({"resolution_params": {"ticket": "bad name"}}, "resolution_params")]:
        with pytest.raises(ConfigError) as caught:
            parse_config({"zalo": {**base, "zns": zns(**bad)}}, {})
        assert str(caught.value).startswith(f"zalo.zns: {key}")
    from bot.cli.main import _check_config

    _check_config(config)
    assert "resolution rating by ZNS where the chat is closed (vi=3003, en=3004)" in capsys.readouterr().out
    _check_config(parse_config({"zalo": {**base, "zns": zns()}}, {}))
    assert "resolution rating: in the ticket's chat only" in capsys.readouterr().out


async def test_a_program_never_writes_a_text_to_a_phone_only_customers_zns_contact(tmp_path, tg, clock, zfake, database_url):
    # A ZNS survey leaves the buyer a "zns" contact (their phone): templates only, no texts. A
    # program's question is a text, so it waits for a chat as for a customer with none.
    programs = [{"name": "csat", "kind": "csat", "trigger": "after_purchase", "delay": "3h"},
                {"name": "nps", "kind": "nps", "trigger": "on_demand", "max_lateness": "10d"}]
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, arrays={"programs": programs})
    try:
        await survey_by_zns(h, clock)
        await h.outbox_settled()
        clock.advance(timedelta(days=8))  # past the purchase CSAT's fatigue
        async with h.http.post(f"{h.url}/api/v1/programs/nps/send", json={"customers": ["C-A-1"]},
                               headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
            assert resp.status == 202, await resp.text()
        assert await h.app.programs.dispatch_due() == {"postponed": 1}
        rows = await h.rows("SELECT channel, method FROM outbox ORDER BY id")
        assert rows == [{"channel": "zns", "method": "send_template"}]
    finally:
        await h.close()


async def test_an_agents_reply_to_a_phone_only_customers_complaint_is_kept_and_the_agents_are_told_to_call(
        tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, public_url="")  # plain http: the page's cookie
    try:
        await survey_by_zns(h, clock)
        await h.outbox_settled()
        [message] = zfake.zns_to(PHONE)
        zfake.rate(message, 2, note="hộp bị móp")
        assert await h.app.routes.poll_ratings() == 1  # no chat: the complaint opens on her phone-only contact
        await h.outbox_settled()
        agent = AgentClient(h)  # the agents' page: the reply is kept, and the agent told to call
        try:
            await agent.login()
            status, body = await agent.act(1, "reply", "Chào chị, em gọi lại nhé")
            assert status == 200 and "gọi điện" in body["message"] and body["ticket"]["status"] == "claimed"
            assert (await agent.act(1, "resolve"))[0] == 200  # nothing to tell her in a chat either
        finally:
            await agent.close()
        rows = await h.outbox_settled()
        assert [(r["channel"], r["method"]) for r in rows if r["chat_id"] == PHONE] == [("zns", "send_template")]
        assert all(r["status"] == "sent" for r in rows)  # nothing written to ZNS that it cannot carry
        alert = [m for m in await tg.wait_for_messages(GROUP, 2) if "gọi điện" in m.text]
        assert len(alert) == 1 and "KN-0001" in alert[0].text
        events = await h.rows("SELECT action, body FROM ticket_events WHERE action IN ('reply', 'reply_undelivered')")
        assert events == [{"action": "reply", "body": "Chào chị, em gọi lại nhé"},
                          {"action": "reply_undelivered", "body": "zns: no chat, phone only"}]
    finally:
        await h.close()


async def test_a_zns_resolution_rating_read_back_after_an_erasure_brings_nothing_of_the_customer_back(
        tmp_path, tg, clock, zfake, database_url):
    h = await zns_app(tmp_path, tg, clock, zfake, database_url, resolution_templates={"vi": RESOLUTION})
    try:
        await survey_by_zns(h, clock)
        await h.outbox_settled()
        [survey_message] = zfake.zns_to(PHONE)
        zfake.rate(survey_message, 2)
        assert await h.app.routes.poll_ratings() == 1
        [ticket] = await h.rows("SELECT id FROM tickets")
        await resolve(h, ticket["id"])
        [asked] = [m for m in zfake.zns_to(PHONE) if m.template_id == RESOLUTION]
        assert await h.app.privacy.erase("C-A-1") is not None  # /forget or `customer erase`

        zfake.rate(asked, 1, note="vẫn chưa nhận được hàng bù, gọi 0912345678")
        await h.app.routes.poll_ratings()
        await h.outbox_settled()
        # The erased complaint stays closed and unrated, and their words are nowhere.
        assert (await h.rows("SELECT status, resolution_score, reopened_count FROM tickets")) == [
            {"status": "resolved", "resolution_score": None, "reopened_count": 0}]
        for table, column in (("ticket_events", "body"), ("outbox", "payload"), ("webhook_messages", "payload")):
            rows = await h.rows(f"SELECT {column} AS v FROM {table}")
            assert not any("hàng bù" in (r["v"] or "") for r in rows), table
    finally:
        await h.close()
