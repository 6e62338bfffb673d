"""CES after a resolved complaint, both ways a shop may set it (`resolution_rating`): "follow"
(the 1-5 resolution rating at once, the CES after the program's delay) and "replace" (the CES
at once, in the rating's place, and nothing more from the dispatch pass)."""
from __future__ import annotations

import pytest

from bot.outbox.effects import Actor
from storage import tickets
from storage.timefmt import to_db
from tests.conftest import Harness, hours, make_config
from tests.e2e.test_programs import TelegramCustomer, answer_row, dispatch


def config(tmp_path, tg, mode: str):
    return make_config(tmp_path, tg, arrays={"programs": [
        {"name": "ces", "kind": "ces", "trigger": "complaint_resolved", "delay": "1h", "resolution_rating": mode},
    ]})


@pytest.fixture(params=["follow", "replace"])
async def shop(request, tmp_path, tg, clock):
    h = Harness(config(tmp_path, tg, request.param), tg, clock)
    await h.start()
    customer = TelegramCustomer(h)
    await customer.begin()
    yield h, customer, request.param
    await h.close()


async def resolve_a_complaint(h: Harness) -> int:
    customer_id = (await h.rows("SELECT id FROM customers"))[0]["id"]
    contact_id = (await h.rows("SELECT id FROM contacts WHERE customer_id = ?", (customer_id,)))[0]["id"]
    now = h.clock.now()
    async with h.app.db.transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO tickets (contact_id, customer_id, source, category, description, tier, priority, status,"
            " created_at, first_response_due_at, resolution_due_at) VALUES"
            " (?, ?, 'command', 'delivery', 'Giao trễ', 'regular', 'normal', 'claimed', ?, ?, ?)",
            (contact_id, customer_id, to_db(now), to_db(now), to_db(now)))
        ticket = await tickets.get(tx, cur.lastrowid)
        await h.app.agent_desk.resolve(tx, ticket, Actor("agent", "1", "Hà"), now)
    h.app.sender.wake()
    return ticket.id


async def test_ces_follows_or_replaces_the_resolution_rating(shop):
    h, c, mode = shop
    ticket_id = await resolve_a_complaint(h)
    if mode == "follow":
        rating = await c.message("đã được xử lý xong")
        assert [b["label"] for row in rating["buttons"] for b in row] == ["1", "2", "3", "4", "5"]
        await c.tap(rating, "4")
        await c.message("4/5")
        assert (await h.rows("SELECT resolution_score FROM tickets"))[0]["resolution_score"] == 4
        assert not await h.rows("SELECT id FROM program_surveys")  # scheduled by the pass, 1 h after
        h.clock.advance(hours(1))
        assert (await dispatch(h))["sent"] == 1
    else:
        await c.message("đã được xử lý xong")
        assert (await h.rows("SELECT status, ticket_id FROM program_surveys")) == [
            {"status": "sent", "ticket_id": ticket_id}]
    question = await c.message("có dễ dàng không")
    assert [b["label"] for row in question["buttons"] for b in row] == [str(i) for i in range(1, 8)]
    await c.tap(question, "6")
    row = await answer_row(h, "ces")
    assert row["score"] == 6 and row["ticket_id"] == ticket_id
    h.clock.advance(hours(2))
    assert (await dispatch(h)).get("sent") is None  # one CES per complaint, either way
    if mode == "replace":
        assert (await h.rows("SELECT resolution_score FROM tickets"))[0]["resolution_score"] is None
        texts = [m.text for m in await h.tg.wait_for_messages(555021, 1)]
        assert not any("(1–5)" in t for t in texts)  # the rating was not asked


async def test_no_ces_after_stop_either_way_the_complaint_is_still_answered(shop):
    h, c, mode = shop
    await c.say("/stop")
    await c.message("không nhận khảo sát")
    await resolve_a_complaint(h)
    rating = await c.message("đã được xử lý xong")  # their complaint's answer still reaches them
    assert [b["label"] for row in rating["buttons"] for b in row] == ["1", "2", "3", "4", "5"]
    h.clock.advance(hours(2))
    await dispatch(h)
    await h.outbox_settled()
    assert [r["status"] for r in await h.rows("SELECT status FROM program_surveys")] in ([], ["skipped"])
    assert not any("có dễ dàng không" in t for t in h.tg.texts(555021))
