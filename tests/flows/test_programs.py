"""Survey programs' pure rules: NPS and CES arithmetic against hand-computed examples, the
global per-customer limit (with a property test), and each kind's conversation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from flows import conversation
from flows import programs as p
from flows.buttons import ProgramChoice
from flows.model import (
    AnswerChoice,
    ContactView,
    Context,
    Conversation,
    EditChoiceMessage,
    Inbound,
    ProgramSurveyView,
    RecordProgramAnswer,
    Reply,
    SetConversation,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
WEEK = timedelta(days=7)


# --- NPS and CES arithmetic ------------------------------------------------------------------


def test_nps_is_promoters_minus_detractors_by_hand():
    # 10 answers: 9, 10, 10, 9 (4 promoters), 7, 8 (2 passives), 0, 3, 6, 6 (4 detractors)
    # NPS = 40% - 40% = 0
    score = p.nps([9, 10, 10, 9, 7, 8, 0, 3, 6, 6])
    assert (score.promoters, score.passives, score.detractors, score.answers) == (4, 2, 4, 10)
    assert score.score == 0.0
    # 8 answers: 5 promoters (62.5%), 2 passives, 1 detractor (12.5%): 50
    assert p.nps([10, 10, 9, 9, 9, 8, 7, 2]).score == pytest.approx(50.0)
    # everyone a detractor: -100; everyone a promoter: 100; 7 and 8 count for nothing
    assert p.nps([0, 6, 5]).score == -100.0
    assert p.nps([9, 10]).score == 100.0
    assert p.nps([7, 8, 8]).score == 0.0
    # 3 answers: 1 promoter, 2 detractors: (1 - 2) / 3 = -33.33...
    assert p.nps([10, 1, 6]).score == pytest.approx(-100 / 3)
    assert p.nps([]).score is None


def test_nps_refuses_answers_off_the_scale():
    with pytest.raises(ValueError):
        p.nps([11])
    with pytest.raises(ValueError):
        p.nps([-1])


def test_ces_mean_and_share_of_easy_by_hand():
    # 1, 2, 5, 6, 7, 7: total 28, mean 4.667; easy (5-7): 4 of 6 = 66.7%; hard (1-3): 2
    score = p.ces([1, 2, 5, 6, 7, 7])
    assert score.total == 28 and score.answers == 6
    assert score.mean == pytest.approx(28 / 6)
    assert score.easy == 4 and score.hard == 2
    assert score.easy_share == pytest.approx(200 / 3)
    # 4 is neither easy nor hard
    four = p.ces([4, 4])
    assert (four.mean, four.easy, four.hard, four.easy_share) == (4.0, 0, 0, 0.0)
    assert p.ces([]).mean is None and p.ces([]).easy_share is None
    with pytest.raises(ValueError):
        p.ces([0])
    with pytest.raises(ValueError):
        p.ces([8])


# --- the global limit and which survey wins -------------------------------------------------


def pending(id_: int, priority: int, *, due_h: float = 0, late_h: float = 72, source: str = "program") -> p.Pending:
    due = NOW - timedelta(hours=due_h)
    return p.Pending(id_, source, priority, due, due + timedelta(hours=late_h))


def test_the_most_valuable_pending_survey_wins_and_the_others_wait_or_drop():
    nps = pending(1, 40)
    ces = pending(2, 60)
    brand = pending(3, 20, late_h=24)  # too late by the next free slot (a week away)
    usage = pending(4, 30, late_h=24 * 30)
    choice = p.choose([nps, ces, brand, usage], [], NOW, 1, WEEK)
    assert choice.send == ces
    assert dict(choice.wait) == {usage: NOW + WEEK}
    assert set(choice.drop) == {nps, brand}  # nps: 72 h of lateness, the slot is a week away


def test_nothing_goes_out_while_the_limit_is_reached_and_the_wait_is_until_the_oldest_send_ages_out():
    sent = [NOW - timedelta(days=2)]
    choice = p.choose([pending(1, 40, late_h=24 * 10)], sent, NOW, 1, WEEK)
    assert choice.send is None
    assert choice.wait[0][1] == NOW + timedelta(days=5)


def test_two_per_period_lets_a_second_one_out_then_the_rest_waits_for_the_older_send_to_age_out():
    sent = [NOW - timedelta(days=1)]
    choice = p.choose([pending(1, 40), pending(2, 30, late_h=24 * 10)], sent, NOW, 2, WEEK)
    assert choice.send is not None and choice.send.id == 1
    # after this send the limit (2) is full until the older send ages out
    assert choice.wait[0][1] == NOW + timedelta(days=6)


def test_ties_go_to_the_one_closest_to_being_too_late():
    a = pending(1, 40, late_h=48)
    b = pending(2, 40, late_h=5)
    assert p.choose([a, b], [], NOW, 1, WEEK).send == b


def test_next_free_slot():
    assert p.next_free_slot([], NOW, 1, WEEK) == NOW
    assert p.next_free_slot([NOW - WEEK - timedelta(seconds=1)], NOW, 1, WEEK) == NOW  # aged out
    three = [NOW - timedelta(days=d) for d in (1, 3, 5)]
    assert p.next_free_slot(three, NOW, 3, WEEK) == NOW + timedelta(days=2)  # the oldest of the three
    assert p.next_free_slot(three, NOW, 2, WEEK) == NOW + timedelta(days=4)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    limit=st.integers(1, 3),
    period_days=st.integers(1, 10),
    arrivals=st.lists(
        st.tuples(st.integers(0, 24 * 40), st.integers(0, 100), st.integers(1, 24 * 20), st.sampled_from(["program", "csat"])),
        min_size=1, max_size=25,
    ),
    step_h=st.sampled_from([1, 3, 7, 24]),
)
def test_property_never_more_than_the_limit_in_any_period_across_programs(limit, period_days, arrivals, step_h):
    """Surveys of every program (and the purchase CSAT) arrive for one customer at random; a
    dispatch pass runs every step_h hours and does what choose() says. In every window of
    one period, never more than `limit` questions went out; every send was the most valuable
    of what was due at that pass; nothing was sent after its deadline."""
    period = timedelta(days=period_days)
    start = NOW
    items = [p.Pending(i, source, prio, start + timedelta(hours=at), start + timedelta(hours=at + late))
             for i, (at, prio, late, source) in enumerate(arrivals)]
    waiting: dict[int, datetime] = {x.id: x.due_at for x in items}
    by_id = {x.id: x for x in items}
    sent: list[datetime] = []
    t = start
    end = start + timedelta(hours=24 * 70)
    while t <= end and waiting:
        due = [by_id[i] for i, at in waiting.items() if at <= t and by_id[i].deadline >= t]
        for i in [i for i, at in waiting.items() if by_id[i].deadline < t]:
            del waiting[i]  # too late: skipped
        if due:
            choice = p.choose(due, sent, t, limit, period)
            if choice.send is not None:
                assert choice.send.priority == max(d.priority for d in due)
                assert choice.send.deadline >= t
                sent.append(t)
                del waiting[choice.send.id]
            for d, until in choice.wait:
                assert until > t and until <= d.deadline
                waiting[d.id] = until
            for d in choice.drop:
                del waiting[d.id]
        t += timedelta(hours=step_h)
    for s in sent:
        in_window = [x for x in sent if s <= x < s + period]
        assert len(in_window) <= limit, (s, in_window)


# --- each kind's conversation ---------------------------------------------------------------


def spec(kind: str, **kw) -> p.ProgramSpec:
    return p.ProgramSpec(name=f"{kind}_test", kind=kind, trigger=p.Trigger("on_demand"), **kw)


def ctx(survey: ProgramSurveyView | None, state: str = "idle", data=None, language: str = "vi") -> Context:
    return Context(now=NOW, contact=ContactView(7, 3, language), conversation=Conversation(state, data or {}),
                   shop_name="Shop An", program_survey=survey)


def view(kind: str, status: str = "sent", **kw) -> ProgramSurveyView:
    return ProgramSurveyView(11, 3, status, kw.pop("spec", None) or spec(kind), "A-1", **kw)


def tap(value: str, survey_id: int = 11) -> Inbound:
    return Inbound("telegram", "7", "7", choice=ProgramChoice(survey_id, value).pack(), choice_id="q", message_id="m")


def say(text: str) -> Inbound:
    return Inbound("telegram", "7", "7", text=text)


def of(kind, decisions):
    return [d for d in decisions if isinstance(d, kind)]


def test_nps_question_has_eleven_buttons_then_why():
    decisions = p.question(survey_id=11, spec=spec("nps"), shop="Shop An", order="", language="vi")
    reply = of(Reply, decisions)[0]
    labels = [b.label for row in reply.buttons for b in row]
    assert labels == [str(i) for i in range(11)]
    assert "giới thiệu" in reply.text
    after = conversation.handle(tap("9"), ctx(view("nps"), p.AWAITING_ANSWER, {"program_survey_id": 11}))
    assert of(RecordProgramAnswer, after) == [RecordProgramAnswer(11, score=9)]
    assert "Vì sao" in of(Reply, after)[0].text
    assert of(SetConversation, after)[0].state == p.AWAITING_TEXT
    low = conversation.handle(tap("3"), ctx(view("nps"), p.AWAITING_ANSWER, {"program_survey_id": 11}))
    assert "chưa muốn giới thiệu" in of(Reply, low)[0].text
    why = conversation.handle(say("Trà ngon, giao nhanh"), ctx(
        view("nps", "answered", score=9), p.AWAITING_TEXT,
        {"program_survey_id": 11, "until": (NOW + timedelta(hours=1)).isoformat()}))
    assert of(RecordProgramAnswer, why) == [RecordProgramAnswer(11, text="Trà ngon, giao nhanh")]


def test_a_score_typed_instead_of_tapped_counts_and_a_scale_outside_is_refused():
    typed = conversation.handle(say("7"), ctx(view("ces"), p.AWAITING_ANSWER, {"program_survey_id": 11}))
    assert of(RecordProgramAnswer, typed) == [RecordProgramAnswer(11, score=7)]
    eight = conversation.handle(say("8"), ctx(view("ces"), p.AWAITING_ANSWER, {"program_survey_id": 11}))
    assert not of(RecordProgramAnswer, eight) and "bấm chọn" in of(Reply, eight)[0].text
    assert not of(RecordProgramAnswer, conversation.handle(tap("8"), ctx(view("ces"))))  # a crafted button
    # A digit int() cannot read ("²" passes str.isdigit()): asked to pick, not an error.
    odd = conversation.handle(say("²"), ctx(view("nps"), p.AWAITING_ANSWER, {"program_survey_id": 11}))
    assert not of(RecordProgramAnswer, odd) and "bấm chọn" in of(Reply, odd)[0].text


def test_usage_options_from_the_shop_then_other_asks_for_text():
    shop = spec("usage", options={"vi": ("Uống hằng ngày", "Tiếp khách")})
    reply = of(Reply, p.question(survey_id=11, spec=shop, shop="S", order="A-1", language="vi"))[0]
    assert [b.label for row in reply.buttons for b in row] == ["Uống hằng ngày", "Tiếp khách", "Khác…"]
    picked = conversation.handle(tap("o1"), ctx(view("usage", spec=shop)))
    assert of(RecordProgramAnswer, picked) == [RecordProgramAnswer(11, choice="Tiếp khách")]
    assert of(SetConversation, picked)[0].state == "idle"  # no follow-up after a named option
    other = conversation.handle(tap("other"), ctx(view("usage", spec=shop)))
    assert of(RecordProgramAnswer, other) == [RecordProgramAnswer(11, choice="other")]
    assert of(SetConversation, other)[0].state == p.AWAITING_TEXT
    assert not of(RecordProgramAnswer, conversation.handle(tap("o7"), ctx(view("usage", spec=shop))))


def test_brand_default_options_and_one_word():
    reply = of(Reply, p.question(survey_id=11, spec=spec("brand"), shop="Shop An", order="", language="en"))[0]
    assert "Facebook" in [b.label for row in reply.buttons for b in row]
    picked = conversation.handle(tap("o1"), ctx(view("brand"), language="en"))
    assert of(RecordProgramAnswer, picked) == [RecordProgramAnswer(11, choice="Facebook")]
    assert "one word" in of(Reply, picked)[0].text


def test_ideas_program_takes_free_text_as_the_answer():
    decisions = p.question(survey_id=11, spec=spec("ideas"), shop="Shop An", order="", language="vi")
    state = of(SetConversation, decisions)[0]
    answer = conversation.handle(say("Bán thêm trà ô long"), ctx(view("ideas"), state.state, dict(state.data)))
    assert of(RecordProgramAnswer, answer) == [RecordProgramAnswer(11, text="Bán thêm trà ô long")]


def test_shop_wording_replaces_the_catalog_and_skip_ends_it():
    shop = spec("nps", texts={"vi": {"question": "{shop}: giới thiệu không?"}})
    reply = of(Reply, p.question(survey_id=11, spec=shop, shop="Shop An", order="", language="vi"))[0]
    assert reply.text == "Shop An: giới thiệu không?"
    en = of(Reply, p.question(survey_id=11, spec=shop, shop="Shop An", order="", language="en"))[0]
    assert "recommend" in en.text  # no English text given: the catalog's
    skip = conversation.handle(tap("skip"), ctx(view("nps", "answered", score=5), p.AWAITING_TEXT, {"program_survey_id": 11}))
    assert of(SetConversation, skip)[0].state == "idle"


def test_another_customers_or_a_closed_survey_is_refused():
    assert of(AnswerChoice, conversation.handle(tap("5", survey_id=99), ctx(view("nps"))))[0].text
    closed = conversation.handle(tap("5"), ctx(view("nps", "expired")))
    assert of(EditChoiceMessage, closed) and not of(RecordProgramAnswer, closed)
    again = conversation.handle(tap("5"), ctx(view("nps", "answered", score=9)))
    assert not of(RecordProgramAnswer, again)


def test_button_data_fits_and_rejects_garbage():
    assert ProgramChoice.unpack("pg:12:10") == ProgramChoice(12, "10")
    for bad in ("pg:12:11", "pg:12:x", "pg:12:o", "pg:x:1", "pg:12:o1234", "pg:12:²"):
        assert ProgramChoice.unpack(bad) is None, bad


def test_audience():
    a = p.Audience(touchpoints=("delivery",), stores=("Q1",), tiers=("vip",), channels=("telegram",))
    assert a.takes_purchase("delivery", "Q1") and not a.takes_purchase("online", "Q1")
    assert not a.takes_purchase("delivery", None)
    assert a.takes_customer("vip", "telegram") and not a.takes_customer("regular", "telegram")
    assert not a.takes_customer("vip", "web")
    assert p.Audience().takes_purchase("x", None) and p.Audience().takes_customer("regular", "zalo")
