"""Tết and a purchase CSAT that was due just before it: the days of Tết do not count as
lateness, so the survey goes out the first morning after Tết instead of being skipped as too
late (survey.max_lateness 48 h, Tết 2027: blackout 5-10 February)."""
from __future__ import annotations

from datetime import datetime

from tests.conftest import VN, Harness, make_config, purchase_body

USER = 555777


async def test_a_csat_due_the_evening_before_the_eve_goes_out_after_tet(tmp_path, tg, clock):
    clock.set(datetime(2027, 2, 4, 17, 30, tzinfo=VN))
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        status, body = await h.post_purchase(
            purchased_at=clock.now().isoformat(),
            customer={**purchase_body()["customer"], "telegram_user_id": USER})
        assert status == 202 and body["survey"]["due_at"].startswith("2027-02-04T20:30")
        await h.customer_says(USER, "/start")
        await tg.wait_for_messages(USER, 1)
        clock.set(datetime(2027, 2, 4, 21, 30, tzinfo=VN))  # the dispatch came late: quiet hours, then Tết
        assert await h.app.dispatcher.dispatch_due() == {"postponed": 1}
        assert (await h.rows("SELECT due_at FROM surveys"))[0]["due_at"].startswith("2027-02-11")
        for day in (6, 8, 10):  # nothing during Tết, and the expiry job does not give up on it
            clock.set(datetime(2027, 2, day, 12, 0, tzinfo=VN))
            assert "sent" not in await h.app.dispatcher.dispatch_due()
            await h.app.dispatcher.expire()
        clock.set(datetime(2027, 2, 11, 8, 0, tzinfo=VN))
        assert await h.app.dispatcher.dispatch_due() == {"sent": 1}
        question = (await tg.wait_for_messages(USER, 2))[1]
        assert "#A-1001" in question.text
        # 44 h of its 48 h were left after Tết: by the 12th at 20:00 it would have been too late.
        assert (await h.rows("SELECT status FROM surveys"))[0]["status"] == "sent"
    finally:
        await h.close()
