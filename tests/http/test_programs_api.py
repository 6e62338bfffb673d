"""The HTTP API of issue 21: a purchase's staff and stage, and a program's on-demand send."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from testkit.clock import FakeClock
from tests.conftest import API_TOKEN, Harness, make_config

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def start(tmp_path, clock, programs=None) -> Harness:
    h = Harness(make_config(tmp_path, arrays={"programs": programs} if programs else None), None, clock)
    await h.start()
    return h


async def test_staff_and_stage_are_kept_and_a_bad_stage_is_refused(tmp_path, clock):
    h = await start(tmp_path, clock)
    try:
        status, body = await h.post_purchase(staff="Hùng (thu ngân)", stage="payment")
        assert status == 202, body
        assert await h.rows("SELECT staff, stage FROM purchases") == [{"staff": "Hùng (thu ngân)", "stage": "payment"}]
        status, body = await h.post_purchase("A-2", stage="checkout")
        assert status == 400 and body["error"]["field"] == "stage" and "consult" in body["error"]["message"]
        status, body = await h.post_purchase("A-3", staff=42)
        assert status == 400 and body["error"]["field"] == "staff"
        # the same order posted again without the new fields is the same order (fingerprint unchanged)
        status, _ = await h.post_purchase("A-4")
        assert status == 202
        status, again = await h.post_purchase("A-4")
        assert status == 200 and again["duplicate"] is True
        # no programs configured: the purchase CSAT is scheduled as always
        assert (await h.rows("SELECT status FROM surveys WHERE id = 1"))[0]["status"] == "scheduled"
    finally:
        await h.close()


async def test_on_demand_send_checks_the_program_and_the_body(tmp_path, clock):
    h = await start(tmp_path, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand"}])
    try:
        await h.post_purchase()
        url = f"{h.url}/api/v1/programs"
        async with h.http.post(f"{url}/nps/send", json={"customers": ["C-42"]}) as resp:
            assert resp.status == 401
        async with h.http.post(f"{url}/nope/send", json={"customers": ["C-42"]}, headers=AUTH) as resp:
            assert resp.status == 404
        for bad in ({}, {"customers": []}, {"customers": [42]}, {"customers": "C-42"}, []):
            async with h.http.post(f"{url}/nps/send", json=bad, headers=AUTH) as resp:
                assert resp.status == 400, bad
        async with h.http.post(f"{url}/nps/send", json={"customers": ["C-42", "C-42"]}, headers=AUTH) as resp:
            assert resp.status == 202
            assert (await resp.json())["customers"] == {"C-42": "scheduled"}  # named twice in one call: asked once
        async with h.http.post(f"{url}/nps/send", json={"customers": ["C-42"]}, headers=AUTH) as resp:
            assert (await resp.json())["customers"] == {"C-42": "already_scheduled"}
        assert len(await h.rows("SELECT id FROM program_surveys")) == 1
    finally:
        await h.close()


async def test_a_programs_delay_is_real_hours_across_a_dst_change(tmp_path):
    # Berlin's clocks go forward on 2026-03-29: 24 h after Saturday 12:00 (posted without an
    # offset: shop time) is Sunday 13:00, not 12:00 on the wall clock.
    berlin = ZoneInfo("Europe/Berlin")
    clock = FakeClock(datetime(2026, 3, 28, 12, 0, tzinfo=berlin))
    programs = [{"name": "nps_day", "kind": "nps", "trigger": "after_purchase", "delay": "24h"}]
    config = make_config(tmp_path, arrays={"programs": programs}, shop={"name": "Shop An", "timezone": "Europe/Berlin"})
    h = Harness(config, None, clock)
    await h.start()
    try:
        status, body = await h.post_purchase(purchased_at="2026-03-28T12:00:00")
        assert status == 202, body
        rows = await h.rows("SELECT due_at FROM program_surveys WHERE program = 'nps_day'")
        assert [r["due_at"] for r in rows] == [datetime(2026, 3, 29, 11, 0, tzinfo=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")]
    finally:
        await h.close()
