"""Demo mode (issue 19, item 4): demo answers and tickets never count in the owner's figures,
and the demo button is on only in the first-run setup."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from bot.config import parse_config
from flows.digest import Week
from storage import exports
from tests.conftest import Harness, hours, make_config
from tests.channels.web.test_server import Visitor

VN = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.fixture
async def web(tmp_path, clock) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    yield h
    await h.close()


async def demo_answer_one(web: Harness, comment: str, *, complain: bool) -> None:
    """What the attacker did: press the demo button, answer 1, leave a comment or a complaint."""
    v = await Visitor.connect(web)
    await v.message("Xin chào")
    await v.ws.send_json({"type": "demo"})
    question = await v.message("hài lòng")
    await v.tap(question, question["buttons"][0][0]["label"])  # 1
    followup = await v.message("Chuyện gì đã xảy ra")
    if complain:
        await v.tap(followup, "Gửi khiếu nại")
        await v.tap(await v.message("Vấn đề thuộc loại nào"), "Giao hàng")
        await v.message("mô tả")
    assert (await v.say(comment))["type"] == "accepted"
    if complain:
        await v.tap(await v.message("ảnh"), "Tiếp tục")
        await v.tap(await v.message("Gửi khiếu nại này?"), "Gửi")
        await v.message("Đã ghi nhận khiếu nại KN-")
    else:
        await v.message("Cảm ơn")
    await v.close()


async def test_demo_answers_tickets_and_comments_never_count_in_reports_digest_exports_or_alerts(web):
    status, body = await web.post_purchase()  # one real customer, who answers 5
    assert status == 202
    web.clock.advance(hours(3))
    real = await Visitor.connect(web, start=body["links"]["web"].split("start=")[1])
    question = await real.message("hài lòng")
    await real.tap(question, question["buttons"][0][4]["label"])
    await real.message("Cảm ơn bạn đã chấm 5/5")
    for n in range(3):
        await demo_answer_one(web, f"ATTACKER COMMENT {n}", complain=n == 0)
    week = Week(*web.clock.now().astimezone(VN).isocalendar()[:2])
    marked = await web.rows("SELECT s.demo, s.score FROM surveys s ORDER BY s.id")
    assert [(r["demo"], r["score"]) for r in marked] == [(0, 5), (1, 1), (1, 1), (1, 1)]
    assert [r["demo"] for r in await web.rows("SELECT demo FROM tickets")] == [1]

    digest = await web.app.digests.build(week)
    assert digest.csat.total.now.answers == 1 and digest.csat.total.now.csat_pct == 100.0
    assert not digest.voice.lowest and "ATTACKER" not in json.dumps(await web.app.digests.report_json(week))
    assert digest.complaints.now.opened == 0 and digest.complaints.still_open == 0
    assert digest.series[-1].answers == 1
    start, end = web.clock.now() - timedelta(days=7), web.clock.now() + timedelta(days=1)
    assert await exports.count(web.app.db.reader, "surveys", start, end) == 1
    assert await exports.count(web.app.db.reader, "tickets", start, end) == 0
    rows = [r async for chunk in exports.rows(web.app.db.reader, "surveys", start, end) for r in chunk]
    assert len(rows) == 1 and rows[0][9] == 5
    web.clock.advance(timedelta(days=3))  # the demo ticket's targets are long past: no alert
    assert await web.app.sla.watch_sla() == 0


async def test_old_demo_data_is_marked_by_the_migration(tmp_path):
    """Demo rows written before migration 0014 (customers "demo-…") are marked too."""
    from storage.db import Database

    db = Database(str(tmp_path / "old.db"))
    await db.open(migrate=False)
    try:
        await db.migrate(up_to=13)  # the schema as main had it
        async with db.transaction() as tx:
            for n, ext in enumerate(("demo-ab12", "C-1")):
                await tx.execute(
                    "INSERT INTO customers (external_id, name, link_token, created_at, updated_at)"
                    " VALUES (?, 'x', ?, '2026-01-01', '2026-01-01')", (ext, f"tok{n}"))
        await db.migrate()
        rows = await db.fetchall("SELECT external_id, demo FROM customers ORDER BY id")
        assert [(r[0], r[1]) for r in rows] == [("demo-ab12", 1), ("C-1", 0)]
    finally:
        await db.close()


@pytest.mark.parametrize("sections, expected", [
    ({}, True),  # first run: no tokens
    ({"zalo": {"app_id": "1", "oa_secret_key": "k", "access_token": "t"}}, False),  # Zalo + web
    ({"telegram": {"token": "123456:" + "A" * 30}}, False),
    ({"zalo": {"app_id": "1", "oa_secret_key": "k", "access_token": "t"}, "web": {"demo": True}}, True),
    ({"web": {"demo": False}}, False),
])
def test_the_demo_button_is_on_only_in_the_first_run_setup(sections, expected):
    assert parse_config(sections, {}).web_demo is expected
