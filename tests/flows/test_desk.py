"""The agents' side of a ticket in the agents' group: relaying, notes, the card's buttons,
and who may do what. Pure: `desk.handle(event, DeskContext)`."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from flows import desk
from flows.desk import Card, DeskContext, DeskTicket
from flows.model import (
    AddNote,
    AnswerChoice,
    AuditDenied,
    ClaimTicket,
    EscalateTicket,
    Inbound,
    RelayToCustomer,
    ReplyInGroup,
    ResolveTicket,
)
from flows.texts import text

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)
VN = ZoneInfo("Asia/Ho_Chi_Minh")
AGENT = "200"
OPEN = DeskTicket(ticket_id=5, number="KN-0005", status="open", priority="normal")
CLAIMED_BY_ME = DeskTicket(5, "KN-0005", "claimed", "normal", assignee_id=AGENT, assignee_name="Lan")
CLAIMED_BY_MINH = DeskTicket(5, "KN-0005", "claimed", "high", assignee_id="300", assignee_name="Minh")
RESOLVED = DeskTicket(5, "KN-0005", "resolved", "normal", assignee_id=AGENT, assignee_name="Lan")
ACTING = [("claim", ClaimTicket), ("resolve", ResolveTicket), ("esc", EscalateTicket)]
ACTIONS = [a for a, _ in ACTING]


def dctx(ticket=OPEN, *, allowed=True, language="vi"):
    return DeskContext(now=NOW, language=language, agent_allowed=allowed, ticket=ticket)


def say(text="", *, photos=(), anonymous=False, user_id=AGENT):
    command, args = None, ""
    if text.startswith("/"):
        head, _, args = text.partition(" ")
        command = head[1:]
    return Inbound(
        channel="telegram", user_id=user_id, chat_id="-1001", text=text, command=command, args=args,
        photos=tuple(photos), reply_to_message_id="77", group=True, anonymous=anonymous, name="Lan",
    )


def press(data, *, anonymous=False, user_id=AGENT):
    return Inbound(
        channel="telegram", user_id=user_id, chat_id="-1001", choice=data, choice_id="cb9", message_id="77",
        group=True, anonymous=anonymous, name="Lan",
    )


def of(kind, decisions):
    return [d for d in decisions if isinstance(d, kind)]


def t(key, language="vi", **params):
    return text(language, key, **params)


ACTION_TYPES = (RelayToCustomer, AddNote, ClaimTicket, ResolveTicket, EscalateTicket)


def no_action(decisions):
    return not any(isinstance(d, ACTION_TYPES) for d in decisions)


# --- messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", [say("ai trực ca tối nay?"), say("/note hi"), say("hi", anonymous=True)])
@pytest.mark.parametrize("allowed", [True, False])
def test_a_message_outside_any_ticket_is_none_of_our_business(event, allowed):
    assert desk.handle(event, dctx(None, allowed=allowed)) == []


@pytest.mark.parametrize("ticket", [OPEN, CLAIMED_BY_ME, CLAIMED_BY_MINH])
def test_an_agents_message_in_a_ticket_goes_to_the_customer(ticket):
    decisions = desk.handle(say("Chào chị, shop gửi lại hàng mới ngay ạ"), dctx(ticket))
    assert decisions == [RelayToCustomer(5, "Chào chị, shop gửi lại hàng mới ngay ạ", ())]


def test_photos_go_to_the_customer_with_their_caption():
    assert desk.handle(say("ảnh hàng mới", photos=["f1", "f2"]), dctx()) == [
        RelayToCustomer(5, "ảnh hàng mới", ("f1", "f2"))
    ]
    assert desk.handle(say(photos=["f1"]), dctx()) == [RelayToCustomer(5, "", ("f1",))]


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_an_empty_message_is_not_relayed(blank):
    assert desk.handle(say(blank), dctx()) == []


def test_a_note_is_kept_not_relayed():
    decisions = desk.handle(say("/note  khách quen, ưu tiên đổi hàng  "), dctx())
    assert decisions == [
        AddNote(5, "khách quen, ưu tiên đổi hàng"),
        ReplyInGroup(t("desk.note_saved", number="KN-0005")),
    ]


@pytest.mark.parametrize("typed", ["/note", "/note   "])
def test_an_empty_note_does_nothing(typed):
    assert desk.handle(say(typed), dctx()) == []


def test_a_note_on_a_resolved_ticket_is_still_kept():
    assert of(AddNote, desk.handle(say("/note đã hoàn tiền"), dctx(RESOLVED))) == [AddNote(5, "đã hoàn tiền")]


@pytest.mark.parametrize("typed", ["/start", "/help", "/status", "/claim 5", "/resolve"])
def test_other_commands_are_never_relayed(typed):
    assert desk.handle(say(typed), dctx()) == []


@pytest.mark.parametrize("typed", ["Chào chị", "/note bí mật", "/help"])
def test_an_anonymous_sender_is_denied_and_audited(typed):
    decisions = desk.handle(say(typed, anonymous=True), dctx())
    assert decisions == [AuditDenied("reply", 5), ReplyInGroup(t("desk.anonymous"))]


@pytest.mark.parametrize("typed", ["Chào chị", "/note bí mật"])
def test_a_sender_who_is_not_an_agent_is_denied_and_audited(typed):
    decisions = desk.handle(say(typed, user_id="999"), dctx(allowed=False))
    assert decisions == [AuditDenied("reply", 5), ReplyInGroup(t("desk.denied"))]


def test_a_message_in_a_resolved_ticket_is_not_sent():
    decisions = desk.handle(say("còn gì nữa không chị?", photos=["f1"]), dctx(RESOLVED))
    assert decisions == [ReplyInGroup(t("desk.not_sent_resolved", number="KN-0005"))]
    assert "KN-0005" in decisions[0].text


def test_english_group_texts():
    assert desk.handle(say("hi", anonymous=True), dctx(language="en"))[1] == ReplyInGroup(
        "Anonymous admins cannot answer customers: turn anonymity off."
    )
    assert desk.handle(say("hi"), dctx(RESOLVED, language="en")) == [
        ReplyInGroup("KN-0005 is resolved: the message was not sent to the customer.")
    ]


# --- the card's buttons ---------------------------------------------------------------------


def test_claim_an_open_ticket():
    assert desk.handle(press("dk:claim:5"), dctx()) == [AnswerChoice(), ClaimTicket(5)]


def test_claim_a_ticket_someone_else_claimed_is_refused_with_their_name():
    decisions = desk.handle(press("dk:claim:5"), dctx(CLAIMED_BY_MINH))
    assert decisions == [AnswerChoice(t("desk.already_claimed", agent="Minh"))]
    assert "Minh" in decisions[0].text


def test_claim_again_by_the_same_agent_just_acknowledges():
    assert desk.handle(press("dk:claim:5"), dctx(CLAIMED_BY_ME)) == [AnswerChoice()]


@pytest.mark.parametrize("ticket", [OPEN, CLAIMED_BY_ME, CLAIMED_BY_MINH])
def test_resolve(ticket):
    assert desk.handle(press("dk:resolve:5"), dctx(ticket)) == [AnswerChoice(), ResolveTicket(5)]


@pytest.mark.parametrize("ticket", [OPEN, CLAIMED_BY_ME, CLAIMED_BY_MINH])
def test_escalate(ticket):
    assert desk.handle(press("dk:esc:5"), dctx(ticket)) == [AnswerChoice(), EscalateTicket(5)]


@pytest.mark.parametrize("action", ACTIONS)
def test_any_action_on_a_resolved_ticket_is_refused(action):
    assert desk.handle(press(f"dk:{action}:5"), dctx(RESOLVED)) == [AnswerChoice(t("desk.already_resolved"))]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("ticket", [OPEN, CLAIMED_BY_ME, RESOLVED, None])
def test_someone_who_is_not_an_agent_pressing_any_button_is_denied_and_audited(action, ticket):
    decisions = desk.handle(press(f"dk:{action}:5", user_id="999"), dctx(ticket, allowed=False))
    assert decisions == [AnswerChoice(t("desk.denied")), AuditDenied(action, 5)]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("allowed", [True, False])
def test_an_anonymous_admin_pressing_any_button_is_denied_and_audited(action, allowed):
    decisions = desk.handle(press(f"dk:{action}:5", anonymous=True), dctx(CLAIMED_BY_ME, allowed=allowed))
    assert decisions == [AnswerChoice(t("desk.denied")), AuditDenied(action, 5)]


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("ticket", [None, DeskTicket(6, "KN-0006", "open", "normal")])
def test_a_button_for_another_ticket_is_refused(action, ticket):
    assert desk.handle(press(f"dk:{action}:5"), dctx(ticket)) == [AnswerChoice(t("desk.unknown_ticket"))]


@pytest.mark.parametrize(
    "data", ["dk:nuke:5", "dk:claim:x", "dk:claim:", "dk:claim", "dk:claim:5:1", "dk::5", "dk:", "dk:claim:-5",
             "dk:CLAIM:5", "dk:esc:5 "]
)
@pytest.mark.parametrize("allowed", [True, False])
def test_malformed_button_data_is_refused_and_audited(data, allowed):
    decisions = desk.handle(press(data), dctx(allowed=allowed))
    assert decisions == [AnswerChoice(t("desk.unknown_ticket")), AuditDenied(f"button:{data}")]


def test_long_malformed_data_is_audited_cut_to_64_characters():
    data = "dk:" + "x" * 200
    decisions = desk.handle(press(data), dctx())
    assert decisions[1] == AuditDenied("button:" + data[:64])


def test_a_foreign_button_is_refused_and_audited():
    decisions = desk.handle(press("csat:3:5"), dctx())
    assert decisions == [AnswerChoice(t("desk.unknown_ticket")), AuditDenied("button:csat:3:5")]


def test_a_unicode_digit_as_ticket_id_is_refused_and_audited():
    assert desk.referenced_ticket_id("dk:claim:²") is None
    assert desk.handle(press("dk:claim:²"), dctx(allowed=False)) == [
        AnswerChoice(t("desk.unknown_ticket")), AuditDenied("button:dk:claim:²")
    ]


def test_english_button_refusals():
    assert desk.handle(press("dk:claim:5"), dctx(CLAIMED_BY_MINH, language="en")) == [
        AnswerChoice("Minh is handling this complaint.")
    ]
    assert desk.handle(press("dk:claim:5"), dctx(allowed=False, language="en"))[0] == AnswerChoice(
        "You are not allowed to act on complaints."
    )


def test_referenced_ticket_id():
    assert desk.referenced_ticket_id("dk:claim:12") == 12
    assert desk.referenced_ticket_id("dk:esc:7") == 7
    assert desk.referenced_ticket_id("dk:claim:x") is None
    assert desk.referenced_ticket_id("dk:claim:1:2") is None
    assert desk.referenced_ticket_id("kn:r:12:1") is None
    assert desk.owns_choice("dk:claim:1") and not desk.owns_choice("kn:o:1")


# --- the card ---------------------------------------------------------------------------------


def card(**kw):
    values = dict(
        number="KN-0042",
        priority="high",
        customer="Nguyễn Thị Lan",
        tier="vip",
        order_id="A-1001",
        category="product_quality",
        description="Màn hình bị vỡ góc trái",
        photos=2,
        past_scores=(5, 4, 2),
        first_due=datetime(2026, 11, 23, 6, 30, tzinfo=timezone.utc),  # 13:30 shop time
        resolution_due=datetime(2026, 11, 23, 23, 15, tzinfo=timezone.utc),  # 06:15 the next day, shop time
        status="claimed",
        assignee_name="Minh",
    )
    values.update(kw)
    return Card(**values)


def test_card_text_has_everything_an_agent_needs():
    body = desk.card_text(card(), "vi", VN)
    for part in ["KN-0042", "ưu tiên cao", "Nguyễn Thị Lan", "(VIP)", "#A-1001", "Chất lượng sản phẩm",
                 "Màn hình bị vỡ góc trái", "2 ảnh", "5, 4, 2", "TB 3,7", "13:30 23/11", "06:15 24/11", "Minh đang xử lý"]:
        assert part in body, part
    assert "06:30" not in body and "23:15" not in body  # not UTC
    assert t("desk.card_hint_reply") not in body and t("desk.card_hint_topic") not in body  # added once placed


def test_card_text_times_follow_the_given_time_zone():
    body = desk.card_text(card(), "vi", ZoneInfo("Europe/Berlin"))
    assert "07:30 23/11" in body and "00:15 24/11" in body


def test_card_hint_depends_on_where_the_card_lives():
    assert desk.card_hint("vi", topic=True) == t("desk.card_hint_topic")
    assert desk.card_hint("vi", topic=False) == t("desk.card_hint_reply")
    assert desk.card_hint("en", topic=True) == "Write in this topic to answer the customer; /note <text> for an internal note."


def test_card_text_without_order_photos_or_past_scores():
    body = desk.card_text(card(order_id=None, photos=0, past_scores=(), tier="regular", priority="normal",
                               status="open", assignee_name=None), "vi", VN)
    assert "Đơn: " + t("order.none") in body
    assert "Ảnh: " + t("photos.none") in body
    assert "CSAT trước đây: " + t("desk.no_csat") in body
    assert "(thường)" in body and "ưu tiên thường" in body and "Trạng thái: chờ nhận" in body
    assert "#" not in body


def test_card_text_in_english():
    body = desk.card_text(card(past_scores=(3,)), "en", VN)
    for part in ["KN-0042", "priority high", "Customer: Nguyễn Thị Lan (VIP)", "Order: #A-1001", "Type: Product quality",
                 "Photos: 2 photos", "Past CSAT: 3 (avg 3.0)", "First response due: 13:30, 23 Nov",
                 "resolution due: 06:15, 24 Nov", "Status: Minh is on it"]:
        assert part in body, part
    no_order = desk.card_text(card(order_id=None), "en", VN)
    assert "Order: none\n" in no_order and "no order" not in no_order


def test_card_average_uses_the_digests_decimal_comma():
    body = desk.card_text(card(past_scores=(4, 3)), "vi", VN)
    assert "4, 3 (TB 3,5)" in body  # as the digest writes "điểm TB 3,6"


@pytest.mark.parametrize("status", ["open", "claimed"])
def test_card_buttons_claim_resolve_escalate(status):
    rows = desk.card_buttons(42, "vi", status)
    assert [[b.data for b in row] for row in rows] == [["dk:claim:42", "dk:resolve:42", "dk:esc:42"]]
    assert [b.label for b in rows[0]] == [t("desk.claim"), t("desk.resolve"), t("desk.escalate")]
    for data in [b.data for b in rows[0]]:
        assert desk.referenced_ticket_id(data) == 42


def test_card_buttons_are_gone_once_resolved():
    assert desk.card_buttons(42, "vi", "resolved") == ()


def test_card_button_data_fits_telegrams_64_bytes():
    for ticket_id in (1, 10**6, 2**63 - 1):
        for row in desk.card_buttons(ticket_id, "en", "open"):
            for button in row:
                assert len(button.data.encode()) <= 64


def test_every_card_button_is_handled():
    for row in desk.card_buttons(5, "vi", "open"):
        for button in row:
            decisions = desk.handle(press(button.data), dctx())
            assert decisions[0] == AnswerChoice() and len(decisions) == 2


def test_a_question_card_says_what_was_asked_and_by_when_with_claim_and_close():
    body = desk.card_text(card(number="CH-0042", kind="question", description="Shop có bán trà ô long không?",
                               photos=0, status="open", assignee_name=None), "vi", VN)
    assert body.split("\n") == [
        "❓ Câu hỏi CH-0042", "Khách: Nguyễn Thị Lan (VIP)", "Nội dung: Shop có bán trà ô long không?",
        "Ảnh: không có", "Hạn phản hồi: 13:30 23/11", "Trạng thái: chờ nhận",
    ]
    english = desk.card_text(card(number="CH-0042", kind="question", status="open"), "en", VN)
    assert english.startswith("❓ Question CH-0042\nCustomer: Nguyễn Thị Lan (VIP)\nMessage: ")
    assert "First response due: 13:30, 23 Nov" in english
    rows = desk.card_buttons(42, "vi", "open", "question")
    assert [b.data for row in rows for b in row] == ["dk:claim:42", "dk:resolve:42"]
    assert desk.card_buttons(42, "vi", "resolved", "question") == ()


@pytest.mark.parametrize("status", ["open", "claimed", "resolved"])
def test_only_an_unclaimed_card_carries_the_new_marker(status):
    body = desk.card_text(card(status=status), "vi", VN)
    assert body.startswith("🆕 KN-0042") == (status == "open") and "KN-0042 · ưu tiên cao" in body


def test_escalate_at_the_top_priority_is_recorded_and_says_so():
    urgent = DeskTicket(5, "KN-0005", "claimed", "urgent", assignee_id=AGENT, assignee_name="Lan")
    decisions = desk.handle(press("dk:esc:5"), dctx(urgent))
    assert of(EscalateTicket, decisions) == [EscalateTicket(5)]
    assert of(AnswerChoice, decisions)[0].text == t("desk.already_top", number="KN-0005")
    assert of(AnswerChoice, desk.handle(press("dk:esc:5"), dctx(CLAIMED_BY_MINH)))[0].text == ""


def test_a_button_from_another_group_is_refused_answered_and_audited():
    decisions = desk.refuse_foreign_group(press("dk:resolve:5"), "vi")
    assert of(AnswerChoice, decisions)[0].text == t("desk.denied")
    assert of(AuditDenied, decisions) == [AuditDenied("button:dk:resolve:5 in chat -1001", 5)]
    assert not of(ResolveTicket, decisions)
