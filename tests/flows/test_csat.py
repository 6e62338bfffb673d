"""The CSAT conversation as a pure state machine: every branch, no I/O."""
from datetime import datetime, timedelta, timezone

import pytest

from flows import conversation, csat
from flows.model import (
    AnswerChoice,
    ContactView,
    Context,
    Conversation,
    EditChoiceMessage,
    GrantOrder,
    Inbound,
    LinkCustomer,
    OpenTicket,
    RecordComment,
    RecordScore,
    Reply,
    SendPendingSurveys,
    SetConversation,
    SetOptOut,
    StartView,
    SurveyView,
    TellOtherChats,
)

from flows.texts import text

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)


def ctx(*, state="idle", data=None, survey=None, language="vi", customer_id=7, start=None, now=NOW):
    return Context(
        now=now,
        contact=ContactView(contact_id=1, customer_id=customer_id, language=language),
        conversation=Conversation(state, data or {}),
        shop_name="Shop An",
        survey=survey,
        start=start,
    )


def receipt(*, usable=True, new_here=True, verifies=False):
    """The order a /start token belongs to: order A-1 of customer 7, Lan."""
    return StartView(11, 7, "Lan", "A-1", usable=usable, new_here=new_here, verifies=verifies)


def msg(text="", **kw):
    command, args = None, ""
    if text.startswith("/"):
        head, _, args = text.partition(" ")
        command = head[1:]
    return Inbound(channel="telegram", user_id="100", chat_id="100", text=text, command=command, args=args, **kw)


def tap(data):
    return Inbound(channel="telegram", user_id="100", chat_id="100", choice=data, choice_id="cb1", message_id="55")


SENT = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="sent")
ANSWERED_5 = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=5)
ANSWERED_2 = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=2)


def of(kind, decisions):
    return [d for d in decisions if isinstance(d, kind)]


def test_question_has_five_score_buttons_and_waits_for_a_score():
    decisions = csat.question(survey_id=3, order_id="A-1", shop="Shop An", language="vi")
    reply = of(Reply, decisions)[0]
    assert "#A-1" in reply.text and "hài lòng" in reply.text
    assert [b.data for b in reply.buttons[0]] == [f"csat:3:{s}" for s in range(1, 6)]
    assert all(len(b.data.encode()) <= 64 for b in reply.buttons[0])  # Telegram's callback_data limit
    assert of(SetConversation, decisions) == [SetConversation(csat.AWAITING_SCORE, {"survey_id": 3})]


def test_question_in_english():
    reply = of(Reply, csat.question(survey_id=3, order_id="A-1", shop="S", language="en"))[0]
    assert reply.text.startswith("S here: how satisfied are you with order #A-1?")


def test_reminder_text_differs():
    reply = of(Reply, csat.question(survey_id=3, order_id="A-1", shop="S", language="en", reminder=True))[0]
    assert "reminder" in reply.text


@pytest.mark.parametrize("score, followup", [(5, "thích"), (4, "thích"), (3, "Chuyện gì"), (2, "Chuyện gì"), (1, "Chuyện gì")])
def test_score_is_recorded_thanked_and_followed_up_by_score(score, followup):
    decisions = conversation.handle(tap(f"csat:3:{score}"), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert of(RecordScore, decisions) == [RecordScore(3, score)]
    assert of(AnswerChoice, decisions)
    assert f"{score}/5" in of(EditChoiceMessage, decisions)[0].text  # buttons replaced by the answer
    reply = of(Reply, decisions)[0]
    assert followup in reply.text
    assert reply.buttons[0][-1].data == "csat:3:skip"
    # 1-2 (the default low_score) also offer a complaint, handled by a human.
    assert (reply.buttons[0][0].data == "kn:new:3") is (score <= 2)
    state = of(SetConversation, decisions)[0]
    assert state.state == csat.AWAITING_COMMENT and state.data["survey_id"] == 3
    assert datetime.fromisoformat(state.data["until"]) == NOW + timedelta(hours=24)


def test_english_follow_ups():
    high = of(Reply, conversation.handle(tap("csat:3:5"), ctx(survey=SENT, language="en")))[0].text
    low = of(Reply, conversation.handle(tap("csat:3:1"), ctx(survey=SENT, language="en")))[0].text
    assert "What did you like most" in high
    assert "What went wrong?" in low


def test_vietnamese_follow_ups_say_plainly_that_they_may_answer_or_skip():
    for score in (5, 1):
        text = of(Reply, conversation.handle(tap(f"csat:3:{score}"), ctx(survey=SENT)))[0].text
        assert "Không bắt buộc" not in text and "(" not in text  # no translated aside in brackets
        assert text.endswith("Bạn cứ nhắn trả lời ngay tại đây, hoặc bấm Bỏ qua nếu không muốn trả lời.")


def test_typed_digit_counts_as_a_score():
    decisions = conversation.handle(msg(" 4 "), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert of(RecordScore, decisions) == [RecordScore(3, 4)]
    assert not of(EditChoiceMessage, decisions)


@pytest.mark.parametrize("typed", ["hello", "5 sao", "tốt lắm"])
def test_other_short_text_while_waiting_for_a_score_re_asks_with_buttons(typed):
    decisions = conversation.handle(msg(typed), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert not of(RecordScore, decisions)
    reply = of(Reply, decisions)[0]
    assert "1 đến 5" in reply.text and len(reply.buttons[0]) == 5


@pytest.mark.parametrize("typed", ["Shop có bán trà ô long không?", "cho mình hỏi giờ mở cửa của shop"])
def test_a_question_while_waiting_for_a_score_reaches_a_person_and_the_survey_stays_open(typed):
    decisions = conversation.handle(msg(typed), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert decisions == [OpenTicket("question", typed, source="message", kind="question")]  # no state change
    # The score still counts afterwards.
    later = conversation.handle(msg("4"), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert of(RecordScore, later) == [RecordScore(3, 4)]


def test_comment_is_stored_and_thanked():
    data = {"survey_id": 3, "until": (NOW + timedelta(hours=1)).isoformat()}
    decisions = conversation.handle(msg("Giao hàng nhanh, đóng gói đẹp"), ctx(state=csat.AWAITING_COMMENT, data=data, survey=ANSWERED_5))
    assert of(RecordComment, decisions) == [RecordComment(3, "Giao hàng nhanh, đóng gói đẹp")]
    assert of(SetConversation, decisions) == [SetConversation("idle")]
    assert "Cảm ơn" in of(Reply, decisions)[0].text


def test_comment_after_its_window_is_not_a_comment():
    data = {"survey_id": 3, "until": (NOW - timedelta(seconds=1)).isoformat()}
    decisions = conversation.handle(msg("some more words"), ctx(state=csat.AWAITING_COMMENT, data=data, survey=ANSWERED_5))
    assert not of(RecordComment, decisions)
    assert decisions == [OpenTicket("question", "some more words", source="message", kind="question")]  # a plain message


def test_skip_ends_the_follow_up_without_a_comment():
    data = {"survey_id": 3, "until": (NOW + timedelta(hours=1)).isoformat()}
    decisions = conversation.handle(tap("csat:3:skip"), ctx(state=csat.AWAITING_COMMENT, data=data, survey=ANSWERED_2))
    assert not of(RecordComment, decisions)
    assert of(SetConversation, decisions) == [SetConversation("idle")]
    assert of(EditChoiceMessage, decisions)  # the Skip button goes away
    assert "Cảm ơn" in of(Reply, decisions)[0].text


def test_second_tap_does_not_change_the_score():
    decisions = conversation.handle(tap("csat:3:1"), ctx(survey=ANSWERED_5))
    assert not of(RecordScore, decisions)
    assert "rồi" in of(AnswerChoice, decisions)[0].text


def test_expired_survey_is_closed():
    expired = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="expired")
    decisions = conversation.handle(tap("csat:3:5"), ctx(survey=expired))
    assert not of(RecordScore, decisions)
    assert "đã đóng" in of(AnswerChoice, decisions)[0].text


def test_text_after_expiry_is_a_plain_message():
    expired = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="expired")
    decisions = conversation.handle(msg("5"), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=expired))
    assert not of(RecordScore, decisions)


@pytest.mark.parametrize("data", ["csat:3:9", "csat:x:1", "csat:3", "csat:3:1:1", "csat::1", "other:1"])
def test_malformed_or_foreign_button_data_changes_nothing(data):
    decisions = conversation.handle(tap(data), ctx(survey=SENT))
    assert not of(RecordScore, decisions) and not of(SetConversation, decisions)


def test_button_for_a_survey_that_is_not_this_customers():
    # The engine passes survey=None when the id in the data belongs to someone else.
    decisions = conversation.handle(tap("csat:99:5"), ctx(survey=None))
    assert decisions == [AnswerChoice(decisions[0].text)]


def test_start_with_a_receipt_grants_its_order_but_not_the_customer_and_her_chats_are_told():
    decisions = conversation.handle(msg("/start tok123"), ctx(customer_id=None, start=receipt()))
    assert GrantOrder(11) in decisions and SetOptOut(False) in decisions and SendPendingSurveys() in decisions
    assert TellOtherChats(7, "token_reused", "A-1", 11) in decisions and not of(LinkCustomer, decisions)
    greeting = of(Reply, decisions)[0].text
    assert "Lan" not in greeting and "#A-1" in greeting  # no name before the chat is proved to be hers
    # Opened again in the same chat: they were told the first time.
    again = conversation.handle(msg("/start tok123"), ctx(customer_id=None, start=receipt(new_here=False)))
    assert GrantOrder(11) in again and not of(TellOtherChats, again)


def test_a_receipt_opened_where_the_channel_can_share_the_phone_offers_it():
    decisions = conversation.handle(msg("/start tok123", phone_button=True), ctx(customer_id=None, start=receipt()))
    greeting = of(Reply, decisions)[0]
    assert greeting.share_phone and "Chia sẻ số điện thoại" in greeting.text
    mine = conversation.handle(msg("/start tok123", phone_button=True), ctx(customer_id=7, start=receipt()))
    assert not of(Reply, mine)[0].share_phone  # already hers
    assert not of(Reply, conversation.handle(msg("/start tok123"), ctx(customer_id=None, start=receipt())))[0].share_phone


def test_start_with_a_receipt_in_the_customers_own_chat_greets_by_name():
    decisions = conversation.handle(msg("/start tok123"), ctx(customer_id=7, start=receipt()))
    assert GrantOrder(11) in decisions and not of(LinkCustomer, decisions) and not of(TellOtherChats, decisions)
    assert "Lan" in of(Reply, decisions)[0].text


def test_first_chat_to_open_a_receipt_is_the_customers_only_when_the_shop_trusts_it():
    decisions = conversation.handle(msg("/start tok123"), ctx(customer_id=None, start=receipt(verifies=True)))
    assert LinkCustomer(7, "first_token") in decisions and "Lan" in of(Reply, decisions)[0].text
    assert not of(TellOtherChats, decisions)
    # A chat that is another customer's stays theirs.
    decisions = conversation.handle(msg("/start tok123"), ctx(customer_id=8, start=receipt(verifies=True)))
    assert not of(LinkCustomer, decisions) and "Lan" not in of(Reply, decisions)[0].text


def test_expired_or_revoked_receipt_gets_an_honest_answer_and_nothing_else():
    decisions = conversation.handle(msg("/start tok123"), ctx(customer_id=None, start=receipt(usable=False)))
    assert [type(d) for d in decisions] == [Reply]
    assert "hết hạn" in decisions[0].text and "Lan" not in decisions[0].text and "A-1" not in decisions[0].text


def test_start_with_unknown_token_links_nothing():
    decisions = conversation.handle(msg("/start nope"), ctx(customer_id=None, start=None))
    assert not of(LinkCustomer, decisions) and not of(SendPendingSurveys, decisions) and not of(GrantOrder, decisions)
    assert "không hợp lệ" in of(Reply, decisions)[0].text


def test_plain_start_opts_back_in():
    decisions = conversation.handle(msg("/start"), ctx())
    assert SetOptOut(False) in decisions and SendPendingSurveys() in decisions


def test_plain_start_without_customer_sends_nothing_pending():
    decisions = conversation.handle(msg("/start"), ctx(customer_id=None))
    assert SendPendingSurveys() not in decisions


def test_stop_opts_out_and_clears_the_conversation():
    decisions = conversation.handle(msg("/stop"), ctx(state=csat.AWAITING_SCORE, data={"survey_id": 3}, survey=SENT))
    assert SetOptOut(True) in decisions and SetConversation("idle") in decisions
    assert "/start" in of(Reply, decisions)[0].text


def test_help_and_unknown_commands():
    assert "/stop" in of(Reply, conversation.handle(msg("/help"), ctx()))[0].text
    assert "/help" in of(Reply, conversation.handle(msg("/frobnicate"), ctx()))[0].text


def test_idle_text_reaches_a_person_as_a_question():
    assert conversation.handle(msg("xin chào"), ctx()) == [OpenTicket("question", "xin chào", source="message", kind="question")]


def test_a_message_with_nothing_to_pass_on_is_answered_honestly():
    assert conversation.handle(msg(""), ctx()) == [Reply(text("vi", "idle.unsupported"))]


@pytest.mark.parametrize("comment", ["giao trễ", "Hộp bị vỡ một góc", "giao chậm quá", "hàng hỏng"])
def test_a_low_score_comment_that_names_a_problem_is_offered_the_complaint_button(comment):
    data = {"survey_id": 3, "until": (NOW + timedelta(hours=1)).isoformat()}
    answered_3 = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=3)
    decisions = conversation.handle(msg(comment), ctx(state=csat.AWAITING_COMMENT, data=data, survey=answered_3))
    assert of(RecordComment, decisions) == [RecordComment(3, comment)]
    reply = of(Reply, decisions)[0]
    assert text("vi", "csat.offer_complaint") in reply.text
    assert [b.data for row in reply.buttons for b in row] == ["kn:new:3"]


def test_a_plain_or_happy_comment_is_not_offered_a_complaint():
    data = {"survey_id": 3, "until": (NOW + timedelta(hours=1)).isoformat()}
    answered_3 = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=3)
    plain = conversation.handle(msg("bình thường"), ctx(state=csat.AWAITING_COMMENT, data=data, survey=answered_3))
    assert not of(Reply, plain)[0].buttons
    happy = conversation.handle(msg("giao trễ chút nhưng ổn"), ctx(state=csat.AWAITING_COMMENT, data=data, survey=ANSWERED_5))
    assert not of(Reply, happy)[0].buttons


def test_referenced_survey_comes_from_button_or_state():
    assert csat.referenced_survey_id(tap("csat:12:4"), "idle", {}) == 12
    assert csat.referenced_survey_id(tap("junk"), "idle", {}) is None
    assert csat.referenced_survey_id(msg("hi"), csat.AWAITING_COMMENT, {"survey_id": 5}) == 5
    assert csat.referenced_survey_id(msg("hi"), "idle", {"survey_id": 5}) is None


def test_flows_import_no_io_library():
    import ast
    import pathlib

    banned = {"aiohttp", "aiosqlite", "telegram", "sqlite3", "httpx", "bot", "storage", "asyncio", "socket", "requests"}
    for path in pathlib.Path(csat.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
