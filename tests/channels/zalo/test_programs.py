"""Survey programs on Zalo, end to end through the CS route (the fake Zalo OA API): a program's
question goes to the customer's Zalo chat only inside Zalo's 7-day window (the customer's last
message to the OA), is answered with its buttons, and its follow-up text becomes the comment."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from testkit.zalo_api import FakeZaloServer
from tests.channels.zalo.test_channel import USER, post_zalo_purchase, say, zalo_section
from tests.conftest import API_TOKEN, Harness, make_config

@pytest.fixture
async def zfake(clock):
    async with FakeZaloServer(clock) as fake:
        yield fake


PROGRAMS = [{"name": "nps", "kind": "nps", "trigger": "on_demand", "max_lateness": "10d"}]


async def message_with(fake, text: str, timeout: float = 5.0):
    for _ in range(int(timeout / 0.02)):
        found = [m for m in fake.sent_to(USER) if text in m.text]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError([m.text for m in fake.sent_to(USER)])


async def ask(h: Harness) -> None:
    async with h.http.post(f"{h.url}/api/v1/programs/nps/send", json={"customers": ["C-42"]},
                           headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        assert resp.status == 202, await resp.text()


async def test_an_nps_program_through_the_zalo_cs_route(tmp_path, clock, zfake):
    h = Harness(make_config(tmp_path, None, zalo=zalo_section(zfake), arrays={"programs": PROGRAMS}), None, clock)
    await h.start()
    try:
        await post_zalo_purchase(h, zalo_user_id=USER)  # the shop knows her Zalo id; she never wrote to the OA
        zfake.add_follower(USER, interacted_at=clock.now() - timedelta(days=30))
        await ask(h)
        assert await h.app.programs.dispatch_due() == {"postponed": 1}  # outside Zalo's window: no chat to write on
        assert zfake.sent_to(USER) == []
        await say(h, zfake, "Cho mình hỏi giờ mở cửa")  # she writes: the window opens for 7 days
        clock.advance(timedelta(hours=1))
        assert (await h.app.programs.dispatch_due())["sent"] == 1
        question = await message_with(zfake, "giới thiệu")
        # Eleven choices are more than Zalo's buttons: written out, and a reply is the score itself.
        assert "0 · 1 · 2 · 3 · 4 · 5 · 6 · 7 · 8 · 9 · 10" in question.text and question.buttons == []
        await say(h, zfake, "9")
        await message_with(zfake, "Vì sao")
        await say(h, zfake, "Trà ngon, giao nhanh")
        rows = await h.rows("SELECT status, score, comment FROM program_surveys")
        assert rows == [{"status": "answered", "score": 9, "comment": "Trà ngon, giao nhanh"}]
    finally:
        await h.close()


def test_only_numbers_that_are_not_their_positions_are_answered_by_value():
    from bot.channels.zalo.channel import is_scale

    assert is_scale([str(i) for i in range(11)])  # NPS 0-10: "9" must mean 9
    assert not is_scale(["1", "2", "3", "4", "5"])  # 1-5: the position is the value, a numbered list as before
    assert not is_scale(["Uống hằng ngày", "Tiếp khách"]) and not is_scale(["1", "1"]) and not is_scale([])
