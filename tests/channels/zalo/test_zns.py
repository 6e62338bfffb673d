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
from bot.config import ConfigError, parse_config
from flows.digest import render_text, week_of
from flows.survey_routes import ZnsPolicy, night_ban_ends
from tests.channels.zalo.test_channel import GROUP, TG_USER, USER, channel_for, started
from tests.conftest import BOTH, hours
from testkit.zalo_api import FakeZaloServer

BACKENDS = BOTH  # routes, spend and ratings on SQLite and on PostgreSQL

OWNER = 777001
TEMPLATE, RATING = "1001", "2002"
PARAMS = {"customer_name", "order_code", "shop_name", "survey_link"}
PHONE = "84912345678"  # the default purchase's "+84 912 345 678"


@pytest.fixture
async def zfake(clock):
    async with FakeZaloServer(clock) as fake:
        fake.register_template(TEMPLATE, PARAMS)
        fake.register_template(RATING, PARAMS, rating=True)
        yield fake


def zns(**overrides) -> dict:
    return {"enabled": True, "survey_templates": {"vi": TEMPLATE}, "rating_templates": {"vi": TEMPLATE, "en": RATING},
            "api_base_url": "", **overrides}


async def zns_app(tmp_path, tg, clock, fake, database_url=None, **overrides):
    section = zns(**overrides)
    section["api_base_url"] = fake.api_root
    return await started(tmp_path, tg, clock, fake, zalo={"zns": section}, database_url=database_url,
                         agents={"chat_id": GROUP, "owner_chat_ids": [OWNER]},
                         http={"public_url": "https://shop.example"}, telegram={"mode": "polling"})


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
