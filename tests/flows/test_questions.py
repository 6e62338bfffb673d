"""Questions as pure decisions: a message no flow waits for reaches a person; follow-ups join
the same question; an open question never blocks a complaint. Also /status with a draft."""
from dataclasses import replace
from datetime import timedelta

from flows import complaint, conversation, questions
from flows.complaint import DESCRIBE, ORDER, PHOTOS
from flows.model import OpenTicket, RelayToAgents, ReopenTicket, Reply, SetConversation
from flows.tickets import ComplaintPolicy, ticket_number
from tests.flows.test_complaint import NOW, at, ctx, msg, of, photo, t, ticket


def question(ticket_id=8, status="open", **kw):
    return replace(ticket(ticket_id, status, category="question", **kw), kind="question", number=f"CH-{ticket_id:04d}")


def test_a_message_no_flow_waits_for_opens_a_question():
    decisions = conversation.handle(msg("  Shop có bán trà ô long không?  "), ctx())
    assert decisions == [OpenTicket("question", "Shop có bán trà ô long không?", source="message", kind="question")]


def test_a_photo_alone_opens_a_question_with_the_photo():
    decisions = conversation.handle(photo("p1"), ctx())
    assert decisions == [OpenTicket("question", "", photos=("p1",), source="message", kind="question")]


def test_an_open_question_gets_every_message():
    decisions = conversation.handle(msg("còn hàng không ạ"), ctx(tickets=(question(8),)))
    assert decisions == [RelayToAgents(8, "còn hàng không ạ", ())]


def test_a_follow_up_within_the_window_joins_the_closed_question():
    closed = question(8, "resolved", resolved_at=NOW - timedelta(hours=23))
    decisions = conversation.handle(msg("À cho mình hỏi thêm"), ctx(tickets=(closed,)))
    assert decisions == [ReopenTicket(8), RelayToAgents(8, "À cho mình hỏi thêm", ())]


def test_after_the_window_a_new_question_is_opened():
    closed = question(8, "resolved", resolved_at=NOW - timedelta(hours=25))
    decisions = conversation.handle(msg("Cho mình hỏi thêm"), ctx(tickets=(closed,)))
    assert decisions == [OpenTicket("question", "Cho mình hỏi thêm", source="message", kind="question")]
    policy = ComplaintPolicy(question_window=timedelta(hours=48))
    assert of(ReopenTicket, conversation.handle(msg("Cho mình hỏi thêm"), ctx(tickets=(closed,), complaints=policy)))


def test_a_resolved_complaint_is_not_joined_by_a_later_message():
    resolved = ticket(5, "resolved", resolved_at=NOW - timedelta(hours=1))
    assert of(OpenTicket, conversation.handle(msg("shop ơi"), ctx(tickets=(resolved,))))


def test_an_open_question_does_not_stop_a_complaint():
    decisions = conversation.handle(msg("/complaint"), ctx(tickets=(question(8),)))
    assert of(SetConversation, decisions)[0].state == ORDER


def test_a_question_does_not_change_the_conversation_state():
    decisions = questions.ask(msg("Shop mở cửa mấy giờ?"), ctx(state="csat.awaiting_score"))
    assert not of(SetConversation, decisions)


def test_the_customer_is_told_honestly_when_to_expect_an_answer():
    opened = question(8, created_at=NOW)  # first response due 2 h after in this helper: the text shows the due time
    assert questions.opened(opened, ctx()) == [Reply(t(
        "question.opened", shop="Shop An", number="CH-0008", within="4 giờ", due="15:00 23/11",
    ))]
    english = questions.opened(opened, ctx(language="en", complaints=ComplaintPolicy(question_first_response=timedelta(minutes=30))))
    assert "within about 30 minutes" in english[0].text and "CH-0008" in english[0].text


def test_question_numbers_and_targets():
    assert ticket_number(42) == "KN-0042" and ticket_number(42, "question") == "CH-0042"
    from flows.tickets import sla_due
    first, resolution = sla_due(NOW, "normal", ComplaintPolicy(), "question")
    assert first == NOW + timedelta(hours=4) and resolution == NOW + timedelta(hours=48)


def test_status_lists_an_open_question_with_its_kind():
    decisions = conversation.handle(msg("/status"), ctx(tickets=(question(8, created_at=NOW),)))
    assert decisions == [Reply(t("complaint.status_line", number="CH-0008", category="Câu hỏi",
                                 status=t("status.open"), opened="13:00 23/11"))]


def test_status_during_an_unfinished_complaint_mentions_the_draft():
    for step in (DESCRIBE, PHOTOS):
        decisions = conversation.handle(msg("/status"), at(step))
        assert decisions == [Reply(t("complaint.status_draft"))]
    with_open = conversation.handle(msg("/status"), at(PHOTOS, tickets=(question(8, created_at=NOW),)))
    assert with_open[0].text.split("\n")[0] == t("complaint.status_draft")
    assert "CH-0008" in with_open[0].text
    # The draft is kept: /status changes no state.
    assert not of(SetConversation, decisions)


def test_closed_question_has_no_rating():
    assert complaint.RATE not in str(questions.closed(question(8, "resolved"), "vi"))
    assert questions.closed(question(8, "resolved"), "vi") == [Reply(t("question.closed", number="CH-0008"))]


def test_with_no_agent_anywhere_the_customer_is_told_so_and_nothing_is_opened():
    decisions = conversation.handle(msg("Shop có bán trà ô long không?"), replace(ctx(), agents_reachable=False))
    assert decisions == [Reply(t("question.no_agents", shop="Shop An"))]
