"""The CSAT's wording per touchpoint and per store."""
from __future__ import annotations

from datetime import datetime, timezone

from flows import csat
from flows.model import ContactView, Context, Conversation, Inbound, Reply, SurveyView
from flows.wording import Wording, WordingRule

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def question(touchpoint: str, store: str | None = None, wording: Wording = Wording(), language: str = "vi") -> str:
    decisions = csat.question(survey_id=1, order_id="A-1", shop="Shop An", language=language, touchpoint=touchpoint,
                              store=store, wording=wording)
    return next(d for d in decisions if isinstance(d, Reply)).text


def test_each_touchpoint_has_its_own_natural_question_by_default():
    delivery, in_store, online = question("delivery"), question("in_store"), question("online")
    assert "giao hàng" in delivery and "ghé Shop An" in in_store and "đặt hàng online" in online
    assert len({delivery, in_store, online}) == 3
    assert all("#A-1" in q and "hài lòng thế nào" in q for q in (delivery, in_store, online))
    assert "delivery" in question("delivery", language="en")
    assert question("pickup") == question("")  # a touchpoint without its own: the general question


def test_a_stores_text_wins_over_a_touchpoints():
    wording = Wording((
        WordingRule(touchpoint="in_store", texts={"vi": {"question": "Cửa hàng: đơn #{order}?"}}),
        WordingRule(touchpoint="in_store", store="Q1", texts={"vi": {"question": "Q1 của {shop}: đơn #{order}?"}}),
        WordingRule(store="Q7", texts={"vi": {"question": "Q7 {bad placeholder}"}}),
    ))
    assert question("in_store", "Q1", wording) == "Q1 của Shop An: đơn #A-1?"
    assert question("in_store", "Q3", wording) == "Cửa hàng: đơn #A-1?"
    assert question("delivery", "Q7", wording) == "Q7 {bad placeholder}"  # shown as written, never a crash
    assert "giao hàng" in question("delivery", "Q1", wording)
    assert "the store served you" in question("in_store", "Q1", wording, language="en")  # no English text: the catalog's


def test_the_follow_up_after_a_low_score_names_the_touchpoint():
    survey = SurveyView(1, 3, "A-1", "sent", touchpoint="delivery", store="Q1")
    ctx = Context(now=NOW, contact=ContactView(7, 3, "vi"), conversation=Conversation("csat.awaiting_score", {"survey_id": 1}),
                  shop_name="Shop An", survey=survey)
    decisions = csat.on_choice(Inbound("telegram", "7", "7", choice=csat.score_choice(1, 2), choice_id="q"), ctx)
    followup = next(d for d in decisions if isinstance(d, Reply))
    assert "giao trễ" in followup.text
    custom = Context(now=NOW, contact=ctx.contact, conversation=ctx.conversation, shop_name="Shop An", survey=survey,
                     wording=Wording((WordingRule(store="Q1", texts={"vi": {"followup_low": "Q1 xin lỗi bạn."}}),)))
    decisions = csat.on_choice(Inbound("telegram", "7", "7", choice=csat.score_choice(1, 2), choice_id="q"), custom)
    assert next(d for d in decisions if isinstance(d, Reply)).text.endswith("Q1 xin lỗi bạn.")
