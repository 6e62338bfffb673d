"""The weekly digest's figures against hand-computed fixtures on a real SQLite file, the
pure rules behind them (ISO weeks in the shop's time zone, percentiles, alerts, themes,
locale formatting), and the query plans that keep a week's cost independent of history."""
from __future__ import annotations

import re
import string
import struct
from datetime import datetime, time, timedelta, timezone
from typing import AsyncIterator
from zoneinfo import ZoneInfo

import pytest

from testkit.clock import FakeClock
from bot.services.digest import DigestService, chart_figure, render_chart, service_for
from flows.digest import (
    CsatLine,
    Week,
    alerts,
    best_ideas,
    due_at,
    fmt_duration,
    fmt_number,
    fmt_pct,
    last_complete_week,
    latest_due_week,
    parse_week,
    percentile,
    render_text,
    themes,
    to_json,
    week_bounds,
    week_of,
)
from flows.texts import CATALOG
from storage import reports
from storage.db import Database
from storage.reports import Comment, CsatCell
from storage.timefmt import to_db
from tests.conftest import make_config, open_db
from tests.digest_data import VN, ShopData, local

W46, W47, W48 = Week(2026, 46), Week(2026, 47), Week(2026, 48)
NOW = local(23, 9)  # Monday after W47, 09:00 shop time
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


BACKENDS = ("sqlite", "postgresql")  # the digest's figures from both backends' SQL


@pytest.fixture
async def db(tmp_path, database_url) -> AsyncIterator[Database]:
    database = open_db(tmp_path, database_url)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def service(tmp_path, db) -> DigestService:
    return service_for(make_config(tmp_path), db, FakeClock(NOW), owners=False)


def line(lines: tuple[CsatLine, ...], name: str) -> CsatLine:
    return next(x for x in lines if x.name == name)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# --- a typical week, computed by hand ------------------------------------------------------------


async def typical_week(shop: ShopData) -> None:
    """W47 (Mon 16 - Sun 22 Nov 2026) and the week before; the figures are in the test."""
    vip = await shop.customer("Khách VIP")
    for month in (8, 9):  # 12 M VND in the last 12 months: VIP
        await shop.purchase(vip, local(10, month=month), amount=6_000_000)
    s = shop.survey
    await s(sent_at=local(16, 10), answered_at=local(16, 10, 30), score=5,
            comment="Rất hài lòng, nên có thêm túi giấy thân thiện môi trường")
    await s(sent_at=local(17, 10), answered_at=local(17, 11), score=4)
    await s(sent_at=local(18, 10), answered_at=local(18, 12), score=2, comment="Giao hàng chậm, hộp bị móp")
    await s(sent_at=local(19, 10), answered_at=local(19, 10, 5), score=5, touchpoint="in_store", store="Q3",
            customer_id=vip, comment="Tuyệt vời, nhân viên dễ thương lắm luôn nhé shop")
    await s(sent_at=local(20, 10), answered_at=local(20, 10, 5), score=5, touchpoint="in_store", store="Q3", customer_id=vip)
    await s(sent_at=local(20, 11), answered_at=local(20, 12), score=3, touchpoint="in_store", store="Q3", comment="Bình thường")
    await s(sent_at=local(21, 9), answered_at=local(21, 9, 30), score=1, touchpoint="in_store", store="Q3",
            comment="Nhân viên thái độ không tốt")
    await s(sent_at=local(21, 15), answered_at=local(21, 15, 10), score=4, touchpoint="online", store=None,
            comment="Website dễ dùng")
    for _ in range(2):
        await s(sent_at=local(16, 11), status="expired")
    # Sent on Sunday evening, answered after midnight: sent in W47, answered in W48.
    await s(sent_at=local(22, 20), answered_at=local(23, 0, 30), score=5)
    # The week before: four 5s at Q1 delivery.
    for day in (9, 10, 11, 12):
        await s(sent_at=local(day, 10), answered_at=local(day, 11), score=5)

    t1 = await shop.ticket(created_at=local(16, 9), description="Giao hàng chậm 3 ngày",
                           first_response_at=local(16, 9, 30), resolved_at=local(16, 13))
    await shop.event(t1, "rated", local(16, 14), "5")
    await shop.ticket(created_at=local(17, 10), description="Shipper giao hàng trễ, hộp bị móp",
                      first_response_at=local(17, 13), resolved_at=local(18, 10))  # first answer 1 h late
    await shop.ticket(created_at=local(18, 8), category="product_quality", description="Trà bị mốc",
                      first_response_at=local(18, 8, 10))
    # Opened on Friday of W46, resolved on Monday of W47: 72 h against a 48 h target.
    t4 = await shop.ticket(created_at=local(13, 20), category="other", description="Sai hoá đơn",
                           first_response_at=local(13, 21), resolved_at=local(16, 20))
    await shop.event(t4, "rated", local(17, 9), "2")
    await shop.ticket(created_at=local(22, 23, 59), category="staff_attitude", description="Nhân viên thái độ không tốt")
    t6 = await shop.ticket(created_at=local(2, 10), description="Thiếu hàng")  # W45, reopened in W47
    await shop.event(t6, "reopened", local(19, 15))


async def test_csat_figures_of_a_typical_week(db, service):
    await typical_week(ShopData(db))
    d = await service.build(W47)
    total = d.csat.total
    assert (total.now.answers, total.now.satisfied, total.now.score_sum) == (8, 5, 29)
    assert total.now.csat_pct == 62.5 and total.now.mean == 3.625
    assert (total.now.sent, total.now.sent_answered) == (11, 8)  # 2 expired, 1 answered after the week
    assert total.now.response_rate == pytest.approx(800 / 11)
    assert (total.before.answers, total.before.csat_pct, total.before.mean, total.before.response_rate) == (4, 100.0, 5.0, 100.0)
    assert total.csat_change == -37.5

    assert [x.name for x in d.csat.by_touchpoint] == ["in_store", "delivery", "online"]  # most answers first
    delivery = line(d.csat.by_touchpoint, "delivery")
    assert delivery.now.csat_pct == pytest.approx(200 / 3) and delivery.now.mean == pytest.approx(11 / 3)
    assert (delivery.now.sent, delivery.now.sent_answered, delivery.now.response_rate) == (6, 3, 50.0)
    assert delivery.csat_change == pytest.approx(200 / 3 - 100)
    in_store = line(d.csat.by_touchpoint, "in_store")
    assert (in_store.now.answers, in_store.now.csat_pct, in_store.now.mean, in_store.now.response_rate) == (4, 50.0, 3.5, 100.0)
    assert in_store.before.answers == 0 and in_store.csat_change is None
    assert line(d.csat.by_touchpoint, "online").now.csat_pct == 100.0

    assert [x.name for x in d.csat.by_store] == ["Q3", "Q1", ""]  # "" = no store given
    assert line(d.csat.by_store, "Q1").now == delivery.now

    vip, regular = line(d.csat.by_tier, "vip"), line(d.csat.by_tier, "regular")
    assert (vip.now.answers, vip.now.csat_pct, vip.now.sent) == (2, 100.0, 2)
    assert (regular.now.answers, regular.now.satisfied, regular.now.csat_pct) == (6, 3, 50.0)
    assert (regular.now.sent, regular.now.sent_answered) == (9, 6)

    assert [(str(p.week), p.answers, p.csat_pct) for p in d.series[-3:]] == [
        ("2026-W45", 0, None), ("2026-W46", 4, 100.0), ("2026-W47", 8, 62.5)]
    assert len(d.series) == 12 and str(d.series[0].week) == "2026-W36"
    assert d.alerts == ()  # delivery fell, but with 3 answers (and 4 before) it is not yet a signal


async def test_complaint_figures_of_a_typical_week(db, service):
    await typical_week(ShopData(db))
    c = (await service.build(W47)).complaints
    now = c.now
    assert (now.opened, now.resolved) == (4, 3)
    assert now.by_category == (("delivery", 2), ("product_quality", 1), ("staff_attitude", 1))
    # First answers in W47: 30 min, 3 h, 10 min.
    assert now.first_response.count == 3
    assert (now.first_response.median_s, now.first_response.p90_s) == pytest.approx((1800, 9000))
    # Resolved in W47: 4 h, 24 h and the ticket from W46 after 72 h.
    assert now.resolution.count == 3
    assert (now.resolution.median_s, now.resolution.p90_s) == pytest.approx((86400, 224640))
    # Of the 3 resolved, 1 within both targets; KN-0003 and KN-0006 are still open past a target.
    assert (now.sla_met, now.sla_total) == (1, 5) and now.sla_pct == pytest.approx(20.0)
    rated = now.resolution_csat
    assert (rated.answers, rated.csat_pct, rated.mean) == (2, 50.0, 3.5)
    assert now.reopened == 1
    assert c.still_open == 3
    assert [(o.number, o.category) for o in c.oldest_open] == [
        ("KN-0006", "delivery"), ("KN-0003", "product_quality"), ("KN-0005", "staff_attitude")]
    assert (c.before.opened, c.before.resolved, c.before.first_response.count) == (1, 0, 1)


async def test_open_tickets_past_their_targets_count_against_the_sla(db, service):
    shop = ShopData(db)
    await shop.ticket(created_at=local(16, 9), first_response_at=local(16, 9, 30), resolved_at=local(16, 13))  # on time
    await shop.ticket(created_at=local(17, 9))  # open, both targets missed by the week's end
    await shop.ticket(created_at=local(22, 23))  # open, first answer due after the week's end: not yet missed
    now = (await service.build(W47)).complaints.now
    assert (now.sla_met, now.sla_total, now.sla_pct) == (1, 2, 50.0)
    assert "Đạt SLA: 50,0%" in render_text(await service.build(W47), "vi")


async def test_a_ticket_spanning_two_weeks_counts_where_each_thing_happened(db, service):
    await typical_week(ShopData(db))
    w46 = (await service.build(W46)).complaints.now
    assert w46.by_category == (("other", 1),) and w46.resolved == 0
    assert w46.first_response.median_s == pytest.approx(3600)
    w47 = await reports.complaint_stats(db.reader, *week_bounds(W47, VN))
    assert sorted(w47.resolution_s) == pytest.approx([4 * 3600, 24 * 3600, 72 * 3600])  # the W46 ticket: 72 h


async def test_voice_of_the_customer(db, service):
    await typical_week(ShopData(db))
    v = (await service.build(W47)).voice
    assert [(q.score, q.text) for q in v.lowest] == [
        (1, "Nhân viên thái độ không tốt"), (2, "Giao hàng chậm, hộp bị móp"), (3, "Bình thường")]
    assert [q.text for q in v.ideas] == [
        "Rất hài lòng, nên có thêm túi giấy thân thiện môi trường",  # reads like a suggestion
        "Tuyệt vời, nhân viên dễ thương lắm luôn nhé shop",
        "Website dễ dùng",
    ]
    assert v.themes == (("giao hàng", 2),)


async def test_message_in_vietnamese_and_english(db, service):
    await typical_week(ShopData(db))
    d = await service.build(W47)
    vi = render_text(d, "vi")
    assert vi.startswith("📊 Shop An · báo cáo tuần 2026-W47 (16/11–22/11)\n")
    for expected in (
        "⭐ CSAT 62,5% (-37,5 điểm) · điểm TB 3,6 (-1,4) · 8 câu trả lời (+4) · tỉ lệ phản hồi 72,7%",
        "Theo điểm chạm: tại cửa hàng 50,0% (4) · giao hàng 66,7% (3) · online 100,0% (1)",
        "Theo cửa hàng: Q3 50,0% (4) · Q1 66,7% (3) · không rõ cửa hàng 100,0% (1)",
        "Theo hạng khách: thường 50,0% (6) · VIP 100,0% (2)",
        "🛠 Khiếu nại: 4 mới (+3) · 3 đã xử lý · 3 còn mở",
        "Theo loại: Giao hàng 2 · Chất lượng sản phẩm 1 · Thái độ nhân viên 1",
        "Phản hồi đầu: trung vị 30 phút, P90 2,5 giờ · Xử lý: trung vị 24,0 giờ, P90 2,6 ngày",
        "Đạt SLA: 20,0% (+20,0 điểm) · CSAT sau xử lý: 50,0% (2) · Mở lại: 1",
        "Mở lâu nhất: KN-0006 (Giao hàng, từ 02/11) · KN-0003 (Chất lượng sản phẩm, từ 18/11)",
        "• 1/5 “Nhân viên thái độ không tốt” (tại cửa hàng, Q3)",
        "• “Rất hài lòng, nên có thêm túi giấy thân thiện môi trường” (giao hàng, Q1)",
        "Chủ đề khiếu nại: giao hàng (2)",
    ):
        assert expected in vi, f"{expected!r} not in:\n{vi}"
    en = render_text(d, "en")
    for expected in (
        "weekly report 2026-W47 (16 Nov–22 Nov)",
        "Oldest open: KN-0006 (Delivery, since 2 Nov) · KN-0003 (Product quality, since 18 Nov)",
        "⭐ CSAT 62.5% (-37.5 pts) · mean score 3.6 (-1.4) · 8 answers (+4) · response rate 72.7%",
        "By touchpoint: in store 50.0% (4) · delivery 66.7% (3) · online 100.0% (1)",
        "First response: median 30 min, p90 2.5 h · Resolution: median 24.0 h, p90 2.6 days",
        "Within SLA: 20.0% (+20.0 pts)",
    ):
        assert expected in en, f"{expected!r} not in:\n{en}"
    assert len(vi) < 4096 and len(en) < 4096


async def test_json_carries_the_same_figures(db, service):
    await typical_week(ShopData(db))
    body = to_json(await service.build(W47))
    assert body["week"] == "2026-W47" and body["from"] == "2026-11-16T00:00:00+07:00" and body["to"] == "2026-11-23T00:00:00+07:00"
    assert body["complete"] is True and body["empty"] is False
    csat = body["csat"]
    assert (csat["answers"], csat["csat_pct"], csat["sent"], csat["response_rate"]) == (8, 62.5, 11, 72.7)
    assert csat["change"] == {"csat_pct": -37.5, "mean": -1.38, "answers": 4, "response_rate": -27.3}
    assert [t["name"] for t in csat["by_tier"]] == ["regular", "vip"]
    complaints = body["complaints"]
    assert complaints["by_category"] == {"delivery": 2, "product_quality": 1, "staff_attitude": 1}
    assert complaints["first_response"] == {"count": 3, "median_s": 1800, "p90_s": 9000}
    assert complaints["resolution"] == {"count": 3, "median_s": 86400, "p90_s": 224640}
    assert complaints["sla_pct"] == 20.0 and complaints["reopened"] == 1 and complaints["still_open"] == 3
    assert complaints["oldest_open"][0] == {"number": "KN-0006", "category": "delivery", "opened_at": "2026-11-02T10:00:00+07:00"}
    assert complaints["change"]["opened"] == 3
    assert body["voice"]["themes"] == [{"term": "giao hàng", "count": 2}]
    assert body["series"][-1] == {"week": "2026-W47", "answers": 8, "csat_pct": 62.5}


# --- edges -----------------------------------------------------------------------------------------


async def test_sunday_2359_and_monday_0000_shop_time_fall_in_different_weeks(db, service):
    shop = ShopData(db)
    sunday_late, monday = local(22, 23, 59, 59), local(23, 0, 0, 0)
    assert to_db(sunday_late) == "2026-11-22T16:59:59.000000Z" and to_db(monday) == "2026-11-22T17:00:00.000000Z"
    await shop.survey(sent_at=local(22, 20), answered_at=sunday_late, score=5)
    await shop.survey(sent_at=local(22, 20, 1), answered_at=monday, score=1)
    await shop.ticket(created_at=sunday_late, category="delivery")
    await shop.ticket(created_at=monday, category="other")
    w47, w48 = await service.build(W47), await service.build(W48)
    assert (w47.csat.total.now.answers, w47.csat.total.now.csat_pct) == (1, 100.0)
    assert (w48.csat.total.now.answers, w48.csat.total.now.csat_pct) == (1, 0.0)
    assert w47.csat.total.now.sent == 2 and w48.csat.total.now.sent == 0
    assert w47.complaints.now.by_category == (("delivery", 1),)
    assert w48.complaints.now.by_category == (("other", 1),)
    assert w48.complete is False  # the clock says Monday 09:00 of W48


async def test_a_week_with_no_data_says_so(db, service):
    d = await service.build(Week(2026, 40))
    assert d.empty
    assert d.csat.total.now.csat_pct is None and d.csat.total.now.mean is None and d.csat.total.now.response_rate is None
    assert d.complaints.now.first_response.median_s is None and d.complaints.now.sla_pct is None
    assert "Tuần 2026-W40 không có dữ liệu" in render_text(d, "vi")  # a past week's report says which week
    assert "No data for week 2026-W40" in render_text(d, "en")
    body = to_json(d)
    assert body["empty"] is True and body["csat"]["csat_pct"] is None and body["csat"]["by_store"] == []
    assert body["complaints"]["first_response"] == {"count": 0, "median_s": None, "p90_s": None}
    assert all(p["csat_pct"] is None for p in body["series"])
    png = render_chart(d, "vi")
    width, height = png_size(png)
    assert 600 <= width <= 3000 and 600 <= height <= 3000


async def test_the_answer_counts_have_an_axis_of_their_own(db, service):
    await typical_week(ShopData(db))
    d = await service.build(W47)
    fig = chart_figure(d, "vi")
    (csat_axes,) = [ax for ax in fig.axes if ax.lines]
    answers = [p.answers for p in d.series]
    (counts_axes,) = [ax for ax in fig.axes if [round(b.get_height()) for c in ax.containers for b in c] == answers]
    # Not drawn over the percentages, where the tallest bar always stood at the 50% line.
    assert not counts_axes.get_position().overlaps(csat_axes.get_position())
    assert counts_axes.get_ylim()[1] == pytest.approx(max(answers) * 1.3)


async def test_an_empty_week_still_mentions_old_open_tickets(db, service):
    await ShopData(db).ticket(created_at=local(2, 10))
    text = render_text(await service.build(Week(2026, 47)), "en")
    assert "No data for week 2026-W47" in text and "1 complaint from before is still open" in text


async def test_only_answers_no_complaints_and_only_one_store(db, service):
    shop = ShopData(db)
    for score in (5, 4, 3):
        await shop.survey(sent_at=local(17, 10), answered_at=local(17, 11), score=score, store="Q1")
    d = await service.build(W47)
    assert [x.name for x in d.csat.by_store] == ["Q1"]
    assert d.csat.total.before.answers == 0 and d.csat.total.csat_change is None
    text = render_text(d, "vi")
    assert "⭐ CSAT 66,7% · điểm TB 4,0 · 3 câu trả lời · tỉ lệ phản hồi 100,0%" in text  # no previous week: no change shown
    assert "Theo cửa hàng: Q1 66,7% (3)" in text
    assert "🛠 Khiếu nại: 0 mới · 0 đã xử lý · 0 còn mở" in text
    assert "Tuần này không có bình luận nào." in text
    width, height = png_size(render_chart(d, "en"))
    assert 600 <= width <= 3000 and 600 <= height <= 3000


async def test_one_answer_and_one_survey_are_singular_in_english(db, service):
    shop = ShopData(db)
    await shop.survey(sent_at=local(17, 10), answered_at=local(17, 11), score=5)
    en = render_text(await service.build(W47), "en")
    assert "· 1 answer ·" in en and "1 answers" not in en
    assert "1 câu trả lời" in render_text(await service.build(W47), "vi")
    await shop.survey(sent_at=local(24, 10))  # W48: sent, not answered
    assert "⭐ CSAT: no answers yet (1 survey sent)." in render_text(await service.build(W48), "en")


async def test_surveys_sent_but_none_answered(db, service):
    shop = ShopData(db)
    await shop.survey(sent_at=local(17, 10))
    d = await service.build(W47)
    assert not d.empty and d.csat.total.now.response_rate == 0.0 and d.csat.total.now.csat_pct is None
    assert "chưa có câu trả lời nào (1 khảo sát đã gửi)" in render_text(d, "vi")


async def test_alert_when_a_store_falls_against_its_four_week_average(db, service):
    shop = ShopData(db)
    # Four weeks before W47 at Q9 (online): five 5s. W47: two 5s, three 2s = 40%.
    for day in (20, 27):
        await shop.survey(sent_at=local(day, 10, month=10), answered_at=local(day, 11, month=10), score=5, store="Q9", touchpoint="online")
    for day in (3, 10, 13):
        await shop.survey(sent_at=local(day, 10), answered_at=local(day, 11), score=5, store="Q9", touchpoint="online")
    for score in (5, 5, 2, 2, 2):
        await shop.survey(sent_at=local(18, 10), answered_at=local(18, 11), score=score, store="Q9", touchpoint="online")
    # Q1 fell by 10 points only: no alert. Older than the 4 weeks: not in the average.
    for score in (5, 5, 5, 5, 5, 5, 5, 5, 5, 2):
        await shop.survey(sent_at=local(12, 10), answered_at=local(12, 11), score=score, store="Q1")
    for score in (5, 5, 5, 5, 2, 2, 5, 5, 5, 5):
        await shop.survey(sent_at=local(17, 10), answered_at=local(17, 11), score=score, store="Q1")
    await shop.survey(sent_at=local(5, 10, month=10), answered_at=local(5, 11, month=10), score=1, store="Q9", touchpoint="online")
    d = await service.build(W47)
    assert [(a.kind, a.name, a.csat_pct, a.baseline_pct) for a in d.alerts] == [
        ("store", "Q9", 40.0, 100.0), ("touchpoint", "online", 40.0, 100.0)]
    text = render_text(d, "vi")
    assert "⚠️ CSAT cửa hàng Q9 giảm còn 40,0% (TB 4 tuần trước 100,0%, -60,0 điểm; 5 câu trả lời)" in text
    assert "⚠️ CSAT điểm chạm online giảm còn 40,0%" in text


def cell(name: str, answers: int, satisfied: int, store: str = "S") -> CsatCell:
    return CsatCell(name, store, "", answers, satisfied, 0, 0, 0)


def test_alert_rule_threshold_and_minimum_answers():
    baseline = [cell("delivery", 20, 18), cell("online", 20, 18), cell("in_store", 4, 4)]  # 90%
    current = [cell("delivery", 20, 15), cell("online", 20, 16), cell("in_store", 5, 0)]  # 75%: -15; 80%: -10
    found = alerts(current, baseline)
    assert [(a.kind, a.name, a.drop) for a in found if a.kind == "touchpoint"] == [("touchpoint", "delivery", pytest.approx(15.0))]
    assert not alerts([cell("delivery", 4, 0)], baseline)  # too few answers this week
    assert not alerts([cell("new_place", 10, 0, store="New")], baseline)  # no history: nothing to compare
    assert [a.name for a in alerts(current, baseline, drop=10) if a.kind == "touchpoint"] == ["delivery", "online"]


# --- pure rules ------------------------------------------------------------------------------------


def test_iso_weeks_in_the_shop_time_zone():
    assert parse_week("2026-W47") == W47 == parse_week(" 2026w47 ")
    assert str(Week(2026, 3)) == "2026-W03" and parse_week("2026-W53") == Week(2026, 53)  # 2026 has 53 weeks
    for bad in ("2025-W53", "2026-W00", "2026-47", "W47", "", "2026-W47x", "0001-W01"):
        with pytest.raises(ValueError, match="ISO week like 2026-W47"):
            parse_week(bad)
    start, end = week_bounds(W47, VN)
    assert start == datetime(2026, 11, 15, 17, tzinfo=timezone.utc) and end == datetime(2026, 11, 22, 17, tzinfo=timezone.utc)
    assert week_of(datetime(2026, 11, 15, 16, 59, 59, tzinfo=timezone.utc), VN) == W46
    assert week_of(datetime(2026, 11, 15, 17, tzinfo=timezone.utc), VN) == W47
    assert W47.shift(-1) == W46 and Week(2026, 1).shift(-1) == Week(2025, 52) and Week(2026, 53).shift(1) == Week(2027, 1)
    assert last_complete_week(local(23, 0, 0), VN) == W47 and last_complete_week(local(22, 23, 59), VN) == W46
    # Berlin leaves summer time on Sunday 25 Oct 2026: that week has 169 hours.
    berlin = ZoneInfo("Europe/Berlin")
    start, end = week_bounds(Week(2026, 43), berlin)
    assert end - start == timedelta(hours=169)


def test_the_latest_due_week_waits_for_the_send_time():
    at = time(8, 0)
    assert due_at(W47, VN, 0, at) == local(23, 8)
    assert latest_due_week(local(23, 7, 59), VN, 0, at) == W46
    assert latest_due_week(local(23, 8), VN, 0, at) == W47
    assert latest_due_week(local(29, 23), VN, 0, at) == W47  # all week long, until the next Monday 08:00
    assert latest_due_week(local(25, 9), VN, 2, time(9)) == W47  # Wednesdays 09:00


def test_percentiles_interpolate_between_ranks():
    assert percentile([], 50) is None
    assert percentile([7], 90) == 7
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([50, 10, 40, 30, 20], 90) == pytest.approx(46)


def test_numbers_are_written_the_way_each_language_writes_them():
    assert fmt_number(1234, "vi") == "1.234" and fmt_number(1234, "en") == "1,234"
    assert fmt_number(1234567.25, "vi", 1) == "1.234.567,2" and fmt_number(1234567.25, "en", 1) == "1,234,567.2"
    assert fmt_pct(87.5, "vi") == "87,5%" and fmt_pct(87.5, "en") == "87.5%" and fmt_pct(None, "vi") == "–"
    assert fmt_duration(600, "vi") == "10 phút" and fmt_duration(5400, "en") == "1.5 h"
    assert fmt_duration(3 * 86400, "vi") == "3,0 ngày" and fmt_duration(None, "en") == "–"


def test_themes_prefer_phrases_and_skip_stop_words():
    found = themes([
        "Giao hàng chậm quá, hộp bị móp",
        "giao hàng trễ 2 ngày",
        "Shop giao hàng chậm",
        "The box was damaged, late delivery",
        "Damaged box again and late",
    ])
    # "giao", "hàng" and "chậm" are inside the phrases; "box", "damaged" and "late" stand alone.
    assert found == (("giao hàng", 3), ("hàng chậm", 2), ("box", 2), ("damaged", 2), ("late", 2))
    assert all(term not in ("shop", "the", "và", "bị") for term, _ in found)
    assert themes([]) == () and themes(["chỉ một lần"]) == ()


def test_ideas_rank_suggestions_first_and_skip_one_word_praise():
    comments = [
        Comment(5, "Tốt", "delivery", ""),
        Comment(5, "Nhân viên rất nhiệt tình và chu đáo với khách hàng", "in_store", "Q1"),
        Comment(4, "Could you add a smaller size?", "online", ""),
        Comment(2, "Nên giao nhanh hơn", "delivery", ""),  # a low score: not an idea, a complaint
    ]
    assert [q.text for q in best_ideas(comments)] == [
        "Could you add a smaller size?", "Nhân viên rất nhiệt tình và chu đáo với khách hàng"]


def test_both_catalogs_have_the_same_keys_and_placeholders():
    assert set(CATALOG["vi"]) == set(CATALOG["en"])
    fields = lambda template: sorted(f for _, f, _, _ in string.Formatter().parse(template) if f)  # noqa: E731
    for key in CATALOG["vi"]:
        assert fields(CATALOG["vi"][key]) == fields(CATALOG["en"][key]), key


# --- cost: a week reads that week ------------------------------------------------------------


@pytest.mark.sqlite_only
async def test_weekly_queries_use_index_ranges_not_full_scans(db):
    week_params = {"start": "a", "end": "b"}
    queries = [
        (reports.CSAT_CELLS, week_params),
        (reports.CSAT_ANSWERED, ("a", "b")),
        (reports.CSAT_CELLS_BY_TIER, {**week_params, "since": "c", "vip_spend": 1, "vip_orders": 1}),
        (reports.series_sql(12), [p for i in range(12) for p in (i, "a", "b")]),
        (reports.LOW_COMMENTS, ("a", "b", 3)),
        (reports.HIGH_COMMENTS_SQL, ("a", "b", 3)),
        (reports.OPENED_BY_CATEGORY, ("a", "b")),
        (reports.FIRST_RESPONSES, ("a", "b")),
        (reports.RESOLUTIONS, ("a", "b")),
        (reports.RATINGS, ("a", "b")),
        (reports.REOPENED, ("a", "b")),
        (reports.COMPLAINT_TEXTS_SQL, ("a", "b", 5)),
        (reports.OPEN_COUNT, ("a",)),
        (reports.OPEN_BREACHED, {"end": "a"}),
        *((sql, ()) for sql in reports.FIRST_DATA_PARTS),
        (reports.OPEN_OLDEST, ("a", 3)),
        (reports.QUESTIONS_OPENED, ("a", "b")),
        (reports.QUESTION_FIRST_RESPONSES, ("a", "b")),
    ]
    for sql, params in queries:
        plan = [r[3] for r in await db.fetchall("EXPLAIN QUERY PLAN " + sql, params)]
        tables = [p for p in plan if re.match(r"(SCAN|SEARCH) (surveys|tickets|ticket_events|purchases|inbox|sv|p)\b", p)]
        assert tables, (sql, plan)
        for step in tables:
            assert step.startswith("SEARCH") and "INDEX" in step, (sql, plan)


def test_a_long_message_is_cut_at_a_line_under_telegrams_limit():
    from flows.digest import _fit

    message = "\n".join(f"😀 dòng {i} " + "x" * 100 for i in range(60))
    fitted = _fit(message)
    assert len(fitted.encode("utf-16-le")) // 2 <= 4000 and fitted.endswith("\n…")
    assert all(line in message.split("\n") for line in fitted.split("\n")[:-1])
    assert _fit("ngắn") == "ngắn"
