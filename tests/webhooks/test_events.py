"""The events (bot/webhooks/events.py) written where each thing happens, on the real app:
a survey answered and commented, a complaint opened and resolved, a question opened, the
weekly digest, an erasure; delivered by the app's own worker, signed as the reference
verifies; and erasure blanks what is not delivered yet."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from bot.webhooks import signing
from storage import webhooks
from testkit.webhook_receiver import WebhookReceiver
from tests.conftest import BOTH, Harness, make_config
from tests.digest_data import ShopData, local
from tests.e2e.test_complaints import AGENT, CUSTOMER, GROUP, NOT_AGENT, buttons, file_complaint_after_low_score
from tests.e2e.test_questions import until
from tests.services.test_digest import typical_week

BACKENDS = BOTH
EVERYTHING = ("survey.answered", "survey.commented", "complaint.opened", "complaint.resolved", "question.opened",
              "digest.ready", "customer.erased")


def rows_of(h, sql):
    """A check for until(): the rows of `sql`, read when it is called."""
    async def check():
        return await h.rows(sql)
    return check


def config(tmp_path, tg, database_url=None, **sections):
    return make_config(
        tmp_path, tg, database_url=database_url,
        agents={"chat_id": int(GROUP), "agent_ids": [AGENT], "owner_chat_ids": [777]},
        sender={"group_messages_per_minute": 600},
        **{"webhooks": {"poll_interval": "1s"}, **sections},
    )


async def subscribe(h, url, types=EVERYTHING) -> webhooks.Endpoint:
    async with h.app.db.transaction() as tx:
        endpoint_id = await webhooks.add_endpoint(tx, url, types, signing.new_secret(), "test", h.clock.now())
        return await webhooks.endpoint(tx, endpoint_id)


async def messages(h) -> list[tuple[str, dict]]:
    return [(r["type"], json.loads(r["payload"])) for r in await h.rows("SELECT type, payload FROM webhook_messages ORDER BY id")]


@pytest.fixture
async def receiver():
    async with WebhookReceiver() as r:
        yield r


async def test_a_complaint_after_a_low_score_reaches_the_receiver_as_signed_events(tmp_path, tg, clock, database_url, receiver):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh", NOT_AGENT: "Khách lạ"})
    h = Harness(config(tmp_path, tg, database_url), tg, clock)
    await h.start()
    try:
        ep = await subscribe(h, receiver.url)
        await file_complaint_after_low_score(h, tg)
        card = (await tg.wait_for_messages(GROUP, 1))[0]
        await h.deliver(tg.make_callback_update(AGENT, "dk:resolve:1", card.message_id, chat_id=GROUP))
        got = await receiver.wait_for(3, timeout=10)
    finally:
        await h.close()
    bodies = {}
    for r in got:
        body = Webhook(ep.secret).verify(r.body, r.headers)  # the app's worker signs on real time
        bodies[body["type"]] = body
    assert set(bodies) == {"survey.answered", "complaint.opened", "complaint.resolved"}
    answered = bodies["survey.answered"]["data"]
    assert answered["score"] == 1 and answered["order_id"] == "A-1001" and answered["channel"] == "telegram"
    assert answered["customer"] == {"id": "C-42", "name": "Nguyễn Thị Lan", "phone": None} and answered["demo"] is False
    opened = bodies["complaint.opened"]["data"]
    assert opened["number"] == "KN-0001" and opened["category"] == "delivery" and opened["source"] == "low_score"
    assert opened["description"] == "Shipper giao trễ 2 ngày, hộp bị móp" and opened["order_id"] == "A-1001"
    assert opened["customer"]["id"] == "C-42" and opened["status"] == "open"
    resolved = bodies["complaint.resolved"]["data"]
    assert resolved["ticket_id"] == opened["ticket_id"] and resolved["status"] == "resolved"
    assert resolved["assignee"] == "Minh" and resolved["resolved_at"]
    assert bodies["complaint.opened"]["timestamp"] == opened["opened_at"]  # the app's clock: when it happened


async def test_a_comment_and_a_question_are_events_too(tmp_path, tg, clock, receiver):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh"})
    h = Harness(config(tmp_path, tg, webhooks={"enabled": False}), tg, clock)
    await h.start()
    try:
        await subscribe(h, receiver.url, ("survey.commented", "question.opened"))
        customer = {"external_id": "C-7", "name": "Trần Văn Bình", "telegram_user_id": CUSTOMER, "phone": "0912345678"}
        _, body = await h.post_purchase("A-7", customer=customer)
        await h.customer_says(CUSTOMER, f"/start {body['links']['telegram'].split('start=')[1]}")
        h.clock.advance(timedelta(hours=3))
        await h.app.dispatcher.dispatch_due()
        sent = await tg.wait_for_messages(CUSTOMER, 2)
        await h.customer_taps(CUSTOMER, buttons(sent[1])[4]["callback_data"], sent[1].message_id)  # 5 stars
        await tg.wait_for_messages(CUSTOMER, 3)
        await h.customer_says(CUSTOMER, "Bánh rất ngon, giao nhanh")
        await tg.wait_for_messages(CUSTOMER, 4)
        assert [t for t, _ in await messages(h)] == ["survey.commented"]  # survey.answered: nobody subscribed
        h.clock.advance(timedelta(hours=1))
        await h.customer_says(CUSTOMER, "Shop có bán trà ô long không?")
        assert await until(rows_of(h, "SELECT 1 FROM tickets"))
        found = await messages(h)
    finally:
        await h.close()
    assert [t for t, _ in found] == ["survey.commented", "question.opened"]
    commented = found[0][1]["data"]
    assert commented["comment"] == "Bánh rất ngon, giao nhanh" and commented["score"] == 5
    assert commented["customer"]["phone"] == "0912345678" and commented["order_id"] == "A-7"
    question = found[1][1]["data"]
    assert question["kind"] == "question" and question["number"] == "CH-0001"
    assert question["description"] == "Shop có bán trà ô long không?" and question["customer"]["id"] == "C-7"


async def test_erasure_blanks_undelivered_payloads_and_tells_the_receivers(tmp_path, tg, clock, database_url):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh", NOT_AGENT: "Khách lạ"})
    # The worker is off: everything stays undelivered.
    h = Harness(config(tmp_path, tg, database_url, webhooks={"enabled": False}), tg, clock)
    await h.start()
    try:
        await subscribe(h, "https://sheets.example/hook")
        await file_complaint_after_low_score(h, tg)
        before = dict(await messages(h))
        assert before["complaint.opened"]["data"]["customer"]["name"] == "Nguyễn Thị Lan"
        await h.customer_says(CUSTOMER, "/forget")
        confirm = (await tg.wait_for_messages(CUSTOMER, 10))[9]
        yes = buttons(confirm)[0]
        await h.customer_taps(CUSTOMER, yes["callback_data"], confirm.message_id)
        assert await until(rows_of(h, "SELECT 1 FROM webhook_messages WHERE type = 'customer.erased'"))
        after = await messages(h)
        raw = " ".join(r["payload"] for r in await h.rows("SELECT payload FROM webhook_messages"))
        statuses = {r["status"] for r in await h.rows("SELECT status FROM webhook_deliveries")}
    finally:
        await h.close()
    by_type = dict(after)
    for kind in ("survey.answered", "complaint.opened"):
        data = by_type[kind]["data"]
        assert data["customer"] is None and data.get("description") is None and data.get("comment") is None
    assert by_type["complaint.opened"]["data"]["category"] == "delivery"  # what statistics need stays
    assert by_type["survey.answered"]["data"]["score"] == 1
    for personal in ("Nguyễn Thị Lan", "Shipper giao trễ", "C-42\"", "hộp bị móp"):
        assert personal not in raw.replace('"subject":"C-42"', "").replace('"customer_id":"C-42"', "")
    erased = by_type["customer.erased"]["data"]
    assert erased["subject"] == "C-42" and erased["customer_id"] == "C-42" and erased["via"] == "chat"
    assert statuses == {"pending"}  # blanked, still to be delivered (same webhook-id)


async def test_cli_erasure_is_an_event_and_a_digest_goes_once_a_week(tmp_path, tg, clock, receiver):
    # No owner chats at all: the digest still goes out as digest.ready, once per week.
    h = Harness(make_config(tmp_path, tg, webhooks={"enabled": False}), tg, clock)
    await h.start()
    try:
        await subscribe(h, receiver.url, ("digest.ready", "customer.erased"))
        await typical_week(ShopData(h.app.db))
        h.clock.set(local(23, 8, 0))
        await h.app.digests.send_due()
        await h.app.digests.send_due()
        digest = [p for t, p in await messages(h) if t == "digest.ready"]
        assert len(digest) == 1 and digest[0]["data"]["week"] == "2026-W47"
        assert digest[0]["data"]["report"]["week"] == "2026-W47" and "csat" in digest[0]["data"]["report"]
        customer = {"external_id": "C-9", "name": "Lê Thị Hoa", "telegram_user_id": 4242}
        status, body = await h.post_purchase("WH-9", customer=customer)
        assert status == 202, body
        assert await h.app.privacy.erase("C-9") is not None
        erased = [p for t, p in await messages(h) if t == "customer.erased"]
        assert [e["data"]["subject"] for e in erased] == ["C-9"] and erased[0]["data"]["via"] == "cli"
    finally:
        await h.close()
