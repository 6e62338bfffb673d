"""The customer's side of a complaint as a pure state machine: intake, the open ticket,
the resolution score and reopening. Every step through `conversation.handle`."""
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from flows import complaint, conversation, csat, privacy
from flows.complaint import CATEGORY, CONFIRM, DESCRIBE, INTAKE, ORDER, PHOTOS, RATE, TICKET_OPEN
from flows.model import (
    AnswerChoice,
    AuditDenied,
    ContactView,
    Context,
    Conversation,
    EditChoiceMessage,
    Inbound,
    OpenTicket,
    OrderRef,
    RateResolution,
    RelayToAgents,
    ReopenTicket,
    Reply,
    ResolveTicket,
    SetConversation,
    SurveyView,
    TicketView,
)
from flows.texts import text
from flows.tickets import ComplaintPolicy

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc)  # 13:00 in Ho Chi Minh City
ORDERS = (
    OrderRef("A-3", NOW - timedelta(days=1)),
    OrderRef("A-2", NOW - timedelta(days=5)),
    OrderRef("A-1", NOW - timedelta(days=20)),
)
POLICY = ComplaintPolicy()
CATEGORIES = POLICY.categories  # delivery, product_quality, staff_attitude, price_billing, other


def ctx(*, state="idle", data=None, orders=ORDERS, tickets=(), ticket=None, survey=None, language="vi",
        now=NOW, complaints=POLICY):
    return Context(
        now=now,
        contact=ContactView(contact_id=1, customer_id=7, language=language),
        conversation=Conversation(state, data or {}),
        shop_name="Shop An",
        survey=survey,
        complaints=complaints,
        recent_orders=orders,
        tickets=tickets,
        ticket=ticket,
    )


def msg(text="", **kw):
    command, args = None, ""
    if text.startswith("/"):
        head, _, args = text.partition(" ")
        command = head[1:]
    return Inbound(channel="telegram", user_id="100", chat_id="100", text=text, command=command, args=args, **kw)


def photo(*ids, caption=""):
    return msg(caption, photos=tuple(ids))


def tap(data):
    return Inbound(channel="telegram", user_id="100", chat_id="100", choice=data, choice_id="cb1", message_id="55")


def of(kind, decisions):
    return [d for d in decisions if isinstance(d, kind)]


def state_of(decisions):
    states = of(SetConversation, decisions)
    assert len(states) == 1, decisions
    return states[0]


def then(decisions, before):
    """The context of the next event: the state the decisions set."""
    new = state_of(decisions)
    return replace(before, conversation=Conversation(new.state, new.data))


def datas(reply):
    return [b.data for row in reply.buttons for b in row]


def labels(reply):
    return [b.label for row in reply.buttons for b in row]


def t(key, language="vi", **params):
    return text(language, key, **params)


def ticket(ticket_id=5, status="open", *, category="delivery", resolved_at=None, score=None, assignee_name=None,
           created_at=NOW - timedelta(hours=2)):
    return TicketView(
        ticket_id=ticket_id,
        number=f"KN-{ticket_id:04d}",
        status=status,
        category=category,
        contact_id=1,
        created_at=created_at,
        first_response_due_at=created_at + timedelta(hours=2),
        assignee_id="200" if assignee_name else None,
        assignee_name=assignee_name,
        resolved_at=resolved_at,
        resolution_score=score,
    )


BASE = {"source": "command", "survey_id": None, "description": "", "photos": []}
AT = {
    ORDER: {**BASE, "orders": ["A-3", "A-2", "A-1"]},
    CATEGORY: {**BASE, "orders": ["A-3", "A-2", "A-1"], "order": "A-2"},
    DESCRIBE: {**BASE, "orders": ["A-3", "A-2", "A-1"], "order": "A-2", "category": "delivery"},
    PHOTOS: {**BASE, "orders": ["A-3", "A-2", "A-1"], "order": "A-2", "category": "delivery",
             "description": "Giao trễ 3 ngày"},
    CONFIRM: {**BASE, "orders": ["A-3", "A-2", "A-1"], "order": "A-2", "category": "delivery",
              "description": "Giao trễ 3 ngày", "photos": ["p1"]},
}


def at(step, **kw):
    return ctx(state=step, data={**AT[step], **kw.pop("data", {})}, **kw)


# --- 1. start ----------------------------------------------------------------------


def test_complaint_with_recent_orders_offers_them_as_buttons():
    decisions = conversation.handle(msg("/complaint"), ctx())
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.ask_order")
    assert datas(reply) == ["kn:o:0", "kn:o:1", "kn:o:2", "kn:o:-", "kn:cancel"]
    assert labels(reply)[:4] == ["#A-3", "#A-2", "#A-1", t("complaint.other_order")]
    assert labels(reply)[-1] == t("complaint.cancel")
    assert state_of(decisions) == SetConversation(ORDER, AT[ORDER])


def test_at_most_five_orders_are_offered_newest_first():
    orders = tuple(OrderRef(f"B-{i}", NOW - timedelta(days=i)) for i in range(7))
    decisions = conversation.handle(msg("/complaint"), ctx(orders=orders))
    assert state_of(decisions).data["orders"] == ["B-0", "B-1", "B-2", "B-3", "B-4"]
    assert datas(of(Reply, decisions)[0]) == ["kn:o:0", "kn:o:1", "kn:o:2", "kn:o:3", "kn:o:4", "kn:o:-", "kn:cancel"]


def test_complaint_without_orders_goes_straight_to_the_category():
    decisions = conversation.handle(msg("/complaint"), ctx(orders=()))
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.ask_category")
    assert datas(reply) == [f"kn:c:{i}" for i in range(len(CATEGORIES))] + ["kn:cancel"]
    assert labels(reply)[:2] == ["Giao hàng", "Chất lượng sản phẩm"]
    assert state_of(decisions) == SetConversation(CATEGORY, {**BASE, "order": None})


# --- 2. which order --------------------------------------------------------------------


@pytest.mark.parametrize("index, order", [(0, "A-3"), (1, "A-2"), (2, "A-1")])
def test_choosing_an_order_by_its_button_asks_the_category(index, order):
    decisions = conversation.handle(tap(f"kn:o:{index}"), at(ORDER))
    assert decisions[0] == AnswerChoice()
    assert of(Reply, decisions)[0].text == t("complaint.ask_category")
    state = state_of(decisions)
    assert state.state == CATEGORY and state.data["order"] == order
    assert state.data["orders"] == ["A-3", "A-2", "A-1"] and state.data["source"] == "command"


def test_other_order_means_no_order():
    decisions = conversation.handle(tap("kn:o:-"), at(ORDER))
    state = state_of(decisions)
    assert state.state == CATEGORY and state.data["order"] is None


# --- 3. which kind of problem -------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(CATEGORIES)))
def test_choosing_a_category_asks_what_happened(index):
    decisions = conversation.handle(tap(f"kn:c:{index}"), at(CATEGORY))
    assert decisions[0] == AnswerChoice()
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.ask_description") and datas(reply) == ["kn:cancel"]
    state = state_of(decisions)
    assert state.state == DESCRIBE
    assert state.data == {**AT[CATEGORY], "category": CATEGORIES[index]}


def test_categories_come_from_the_policy():
    policy = ComplaintPolicy(categories=("late", "rude"))
    decisions = conversation.handle(tap("kn:c:1"), at(CATEGORY, complaints=policy))
    assert state_of(decisions).data["category"] == "rude"
    assert conversation.handle(tap("kn:c:2"), at(CATEGORY, complaints=policy)) == [
        AnswerChoice(t("complaint.reask_buttons"))
    ]


# --- 4. what happened -----------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["", "ab", "  abcd  ", "\n\n"])
def test_too_short_description_re_asks_and_keeps_the_state(typed):
    decisions = conversation.handle(msg(typed), at(DESCRIBE))
    assert decisions == [Reply(t("complaint.too_short"), buttons=((complaint._cancel_row("vi")),))]
    assert not of(SetConversation, decisions)


def test_description_goes_to_the_photos_step():
    decisions = conversation.handle(msg("  Giao trễ 3 ngày  "), at(DESCRIBE))
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.ask_photos", max=5, count=0)
    assert datas(reply) == ["kn:more", "kn:cancel"]
    assert state_of(decisions) == SetConversation(PHOTOS, {**AT[DESCRIBE], "description": "Giao trễ 3 ngày"})


def test_exactly_the_minimum_length_is_enough():
    decisions = conversation.handle(msg("abcde"), at(DESCRIBE))
    assert state_of(decisions).state == PHOTOS


def test_photos_sent_with_the_description_are_kept_and_capped():
    decisions = conversation.handle(
        photo("p1", "p2", "p3", caption="Hộp bị móp hết"), at(DESCRIBE, complaints=ComplaintPolicy(max_photos=2))
    )
    assert state_of(decisions).data["photos"] == ["p1", "p2"]


# --- 5. photos ----------------------------------------------------------------------------------


def test_a_photo_is_added():
    decisions = conversation.handle(photo("p1"), at(PHOTOS))
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.photo_received", count=1)
    assert datas(reply) == ["kn:more", "kn:cancel"]
    assert state_of(decisions) == SetConversation(PHOTOS, {**AT[PHOTOS], "photos": ["p1"]})


def test_photos_accumulate():
    decisions = conversation.handle(photo("p3"), at(PHOTOS, data={"photos": ["p1", "p2"]}))
    assert state_of(decisions).data["photos"] == ["p1", "p2", "p3"]
    assert of(Reply, decisions)[0].text == t("complaint.photo_received", count=3)


def test_photos_beyond_the_limit_are_dropped_and_the_limit_is_said():
    decisions = conversation.handle(photo("p4", "p5", "p6"), at(PHOTOS, data={"photos": ["p1", "p2", "p3"]}))
    assert state_of(decisions).data["photos"] == ["p1", "p2", "p3", "p4", "p5"]
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.photo_limit", max=5) and "5" in reply.text
    assert datas(reply) == ["kn:more", "kn:cancel"]


def test_a_photo_when_already_full_changes_nothing_but_repeats_the_limit():
    full = ["p1", "p2", "p3", "p4", "p5"]
    decisions = conversation.handle(photo("p6"), at(PHOTOS, data={"photos": full}))
    assert state_of(decisions).data["photos"] == full
    assert of(Reply, decisions)[0].text == t("complaint.photo_limit", max=5)


def test_photo_limit_comes_from_the_policy():
    decisions = conversation.handle(photo("p1", "p2"), at(PHOTOS, complaints=ComplaintPolicy(max_photos=1)))
    assert state_of(decisions).data["photos"] == ["p1"]
    assert of(Reply, decisions)[0].text == t("complaint.photo_limit", max=1)


def test_text_in_the_photos_step_is_more_description():
    decisions = conversation.handle(msg("  Hộp còn bị ướt nữa  "), at(PHOTOS))
    assert state_of(decisions).state == PHOTOS
    assert state_of(decisions).data["description"] == "Giao trễ 3 ngày\nHộp còn bị ướt nữa"
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.description_added")
    assert datas(reply) == ["kn:more", "kn:cancel"]
    # A photo with a caption: both kept.
    decisions = conversation.handle(photo("p9", caption="ảnh hộp"), at(PHOTOS))
    assert state_of(decisions).data["photos"] == ["p9"]
    assert state_of(decisions).data["description"].endswith("\nảnh hộp")


def test_an_empty_message_in_the_photos_step_re_asks_with_the_buttons():
    decisions = conversation.handle(msg("   "), at(PHOTOS))
    assert not of(SetConversation, decisions)
    assert of(Reply, decisions)[0].text == t("complaint.reask_buttons")


# --- 6. confirm and send ------------------------------------------------------------------------


def test_continue_shows_a_summary_to_confirm():
    decisions = conversation.handle(tap("kn:more"), at(PHOTOS, data={"photos": ["p1", "p2"]}))
    assert decisions[0] == AnswerChoice()
    reply = of(Reply, decisions)[0]
    assert "#A-2" in reply.text and "Giao hàng" in reply.text and "2 ảnh" in reply.text
    assert "Giao trễ 3 ngày" in reply.text
    assert datas(reply) == ["kn:send", "kn:cancel"]
    assert state_of(decisions) == SetConversation(CONFIRM, {**AT[PHOTOS], "photos": ["p1", "p2"]})


def test_summary_without_order_or_photos():
    decisions = conversation.handle(tap("kn:more"), at(PHOTOS, data={"order": None, "category": "other"}))
    summary = of(Reply, decisions)[0].text
    assert "Đơn hàng: " + t("order.none") in summary
    assert "Ảnh: " + t("photos.none") in summary
    assert "Loại: Khác" in summary
    assert "#" not in summary


def test_send_opens_a_ticket_with_everything_collected():
    data = {"source": "low_score", "survey_id": 3, "photos": ["p1", "p2"], "category": "product_quality"}
    decisions = conversation.handle(tap("kn:send"), at(CONFIRM, data=data))
    assert decisions == [
        AnswerChoice(),
        OpenTicket(
            category="product_quality",
            description="Giao trễ 3 ngày",
            order_id="A-2",
            photos=("p1", "p2"),
            source="low_score",
            survey_id=3,
        ),
    ]


def test_send_without_order_or_photos():
    decisions = conversation.handle(tap("kn:send"), at(CONFIRM, data={"order": None, "photos": []}))
    assert of(OpenTicket, decisions) == [OpenTicket("delivery", "Giao trễ 3 ngày", None, (), "command", None)]


def test_the_whole_intake_step_by_step():
    c = ctx()
    d = conversation.handle(msg("/complaint"), c)
    c = then(d, c)
    d = conversation.handle(tap("kn:o:0"), c)
    c = then(d, c)
    d = conversation.handle(tap("kn:c:1"), c)
    c = then(d, c)
    assert c.conversation.state == DESCRIBE
    d = conversation.handle(msg("Áo bị rách một lỗ"), c)
    c = then(d, c)
    d = conversation.handle(photo("ph-1"), c)
    c = then(d, c)
    d = conversation.handle(tap("kn:more"), c)
    c = then(d, c)
    assert c.conversation.state == CONFIRM
    d = conversation.handle(tap("kn:send"), c)
    assert of(OpenTicket, d) == [OpenTicket("product_quality", "Áo bị rách một lỗ", "A-3", ("ph-1",), "command", None)]


# --- cancel at every step --------------------------------------------------------------------


@pytest.mark.parametrize("step", INTAKE)
def test_cancel_button_at_every_step(step):
    decisions = conversation.handle(tap("kn:cancel"), at(step))
    assert decisions == [AnswerChoice(), EditChoiceMessage(t("complaint.cancelled")), SetConversation("idle")]


@pytest.mark.parametrize("step", INTAKE)
def test_cancel_command_at_every_step(step):
    decisions = conversation.handle(msg("/cancel"), at(step))
    assert decisions == [SetConversation("idle"), Reply(t("complaint.cancelled"))]


def test_cancel_command_outside_intake_says_there_is_nothing_open():
    decisions = conversation.handle(msg("/cancel"), ctx())
    assert decisions == [Reply(t("complaint.status_none"))]


def test_cancel_button_outside_intake_changes_nothing():
    assert conversation.handle(tap("kn:cancel"), ctx()) == [AnswerChoice(t("complaint.reask_buttons"))]


# --- unexpected input changes nothing --------------------------------------------------------


@pytest.mark.parametrize("step", [ORDER, CATEGORY, CONFIRM])
def test_text_while_buttons_are_expected_re_asks(step):
    decisions = conversation.handle(msg("Tôi muốn nói chuyện với người thật"), at(step))
    assert decisions == [Reply(t("complaint.reask_buttons"))]


@pytest.mark.parametrize("step", [ORDER, CATEGORY, CONFIRM])
def test_keyword_text_during_intake_does_not_restart(step):
    decisions = conversation.handle(msg("hàng bị hỏng"), at(step))
    assert decisions == [Reply(t("complaint.reask_buttons"))]


STALE = {
    ORDER: ["kn:c:0", "kn:more", "kn:send"],
    CATEGORY: ["kn:o:0", "kn:o:-", "kn:more", "kn:send"],
    DESCRIBE: ["kn:o:0", "kn:c:0", "kn:more", "kn:send"],
    PHOTOS: ["kn:o:0", "kn:c:0", "kn:send"],
    CONFIRM: ["kn:o:0", "kn:c:0", "kn:more"],
}


@pytest.mark.parametrize("step, data", [(s, d) for s, ds in STALE.items() for d in ds])
def test_a_stale_button_from_another_step_re_asks(step, data):
    assert conversation.handle(tap(data), at(step)) == [AnswerChoice(t("complaint.reask_buttons"))]


@pytest.mark.parametrize(
    "step, data",
    [
        (ORDER, "kn:o:99"),
        (ORDER, "kn:o:3"),  # one past the three offered
        (ORDER, "kn:o:-1"),
        (ORDER, "kn:o:x"),
        (ORDER, "kn:o:"),
        (ORDER, "kn:o"),
        (CATEGORY, "kn:c:x"),
        (CATEGORY, "kn:c:99"),
        (CATEGORY, f"kn:c:{len(CATEGORIES)}"),
        (CATEGORY, "kn:c:"),
        (CATEGORY, "kn:c:-1"),
        (PHOTOS, "kn:zzz"),
        (CONFIRM, "kn:"),
    ],
)
def test_a_malformed_button_re_asks_and_changes_nothing(step, data):
    decisions = conversation.handle(tap(data), at(step))
    assert decisions == [AnswerChoice(t("complaint.reask_buttons"))]


@pytest.mark.parametrize("step, data", [(ORDER, "kn:o:²"), (CATEGORY, "kn:c:²")])
def test_a_unicode_digit_in_the_index_re_asks(step, data):
    assert conversation.handle(tap(data), at(step)) == [AnswerChoice(t("complaint.reask_buttons"))]


def test_a_unicode_digit_in_the_survey_of_a_low_score_button_is_ignored():
    assert complaint.referenced_survey_id(tap("kn:new:²")) is None
    assert state_of(conversation.handle(tap("kn:new:²"), ctx())).data["survey_id"] is None


def test_a_unicode_digit_in_the_ticket_of_a_rating_button_is_refused():
    assert complaint.referenced_ticket_id(tap("kn:r:²:5"), "idle", {}) is None
    resolved = ticket(status="resolved", resolved_at=NOW - timedelta(hours=1))
    decisions = conversation.handle(tap("kn:r:²:5"), ctx(ticket=resolved, tickets=(resolved,)))
    assert not of(RateResolution, decisions)


# --- a free message that reads like a complaint --------------------------------------------------


def test_a_keyword_message_starts_intake_with_it_as_the_description():
    decisions = conversation.handle(msg("Hàng bị hỏng rồi"), ctx())
    assert state_of(decisions) == SetConversation(
        ORDER, {**AT[ORDER], "source": "keywords", "description": "Hàng bị hỏng rồi"}
    )
    c = then(decisions, ctx())
    c = then(conversation.handle(tap("kn:o:1"), c), c)
    assert c.conversation.state == CATEGORY
    decisions = conversation.handle(tap("kn:c:1"), c)
    # The describe step is skipped: the customer already said what happened.
    assert of(Reply, decisions)[0].text == t("complaint.ask_photos", max=5, count=0)
    state = state_of(decisions)
    assert state.state == PHOTOS
    assert state.data["description"] == "Hàng bị hỏng rồi" and state.data["order"] == "A-2"
    c = then(conversation.handle(tap("kn:more"), then(decisions, c)), c)
    assert of(OpenTicket, conversation.handle(tap("kn:send"), c)) == [
        OpenTicket("product_quality", "Hàng bị hỏng rồi", "A-2", (), "keywords", None)
    ]


def test_a_keyword_message_without_diacritics_starts_intake_too():
    decisions = conversation.handle(msg("  giao hang cham qua  "), ctx(orders=()))
    state = state_of(decisions)
    assert state.state == CATEGORY
    assert state.data["source"] == "keywords" and state.data["description"] == "giao hang cham qua"
    assert state_of(conversation.handle(tap("kn:c:0"), then(decisions, ctx(orders=())))).state == PHOTOS


def test_a_rating_message_is_not_a_complaint():
    decisions = conversation.handle(msg("Tôi chấm 5 sao"), ctx())
    assert decisions == [OpenTicket("question", "Tôi chấm 5 sao", source="message", kind="question")]


def test_keywords_come_from_the_policy():
    policy = ComplaintPolicy(keywords=("bực",))
    assert state_of(conversation.handle(msg("bực quá"), ctx(complaints=policy))).data["source"] == "keywords"
    assert not of(SetConversation, conversation.handle(msg("Hàng bị hỏng rồi"), ctx(complaints=policy)))


# --- the "File a complaint" button after a low score -----------------------------------------


def test_low_score_button_preselects_the_surveys_order():
    survey = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=1)
    decisions = conversation.handle(tap("kn:new:3"), ctx(survey=survey))
    assert decisions[0] == AnswerChoice()
    assert of(Reply, decisions)[0].text == t("complaint.ask_category")
    assert state_of(decisions) == SetConversation(CATEGORY, {**BASE, "source": "low_score", "survey_id": 3, "order": "A-1"})
    assert complaint.start_choice(3) == "kn:new:3"


def test_low_score_button_for_another_survey_does_not_preselect_its_order():
    survey = SurveyView(survey_id=4, customer_id=7, order_id="A-1", status="answered", score=1)
    decisions = conversation.handle(tap("kn:new:3"), ctx(survey=survey))
    assert state_of(decisions).state == ORDER  # asks which order instead


def test_low_score_button_for_a_survey_that_is_not_this_customers_links_no_survey():
    c = ctx(survey=None, orders=())
    c = then(conversation.handle(tap("kn:new:999"), c), c)
    assert c.conversation.data["survey_id"] is None


def test_referenced_survey_of_the_low_score_button():
    assert complaint.referenced_survey_id(tap("kn:new:12")) == 12
    assert complaint.referenced_survey_id(tap("kn:new:x")) is None
    assert complaint.referenced_survey_id(tap("kn:o:1")) is None
    assert complaint.referenced_survey_id(msg("kn:new:12")) is None


# --- one ticket at a time; the open ticket gets everything --------------------------------------


def test_second_complaint_while_one_is_open_points_to_it():
    open_one = ticket(5, "claimed", assignee_name="Minh")
    decisions = conversation.handle(msg("/complaint"), ctx(tickets=(ticket(4, "resolved"), open_one)))
    assert decisions == [
        Reply(t("complaint.already_open", number="KN-0005")),
        SetConversation(TICKET_OPEN, {"ticket_id": 5}),
    ]


def test_low_score_button_while_a_ticket_is_open_points_to_it():
    survey = SurveyView(survey_id=3, customer_id=7, order_id="A-1", status="answered", score=1)
    decisions = conversation.handle(tap("kn:new:3"), ctx(survey=survey, tickets=(ticket(5),)))
    assert not of(OpenTicket, decisions)
    assert state_of(decisions) == SetConversation(TICKET_OPEN, {"ticket_id": 5})


def test_a_resolved_ticket_does_not_block_a_new_complaint():
    decisions = conversation.handle(msg("/complaint"), ctx(tickets=(ticket(4, "resolved"),)))
    assert state_of(decisions).state == ORDER


@pytest.mark.parametrize(
    "event",
    [msg("Khi nào có hàng vậy?"), msg("hàng bị hỏng"), photo("p1"), photo("p1", "p2", caption="xem ảnh")],
)
def test_in_an_open_ticket_everything_goes_to_the_agents(event):
    open_one = ticket(5)
    decisions = conversation.handle(
        event, ctx(state=TICKET_OPEN, data={"ticket_id": 5}, tickets=(open_one,), ticket=open_one)
    )
    assert decisions == [RelayToAgents(5, event.text, event.photos)]


def test_an_open_ticket_gets_messages_even_when_the_state_was_lost():
    decisions = conversation.handle(msg("alo?"), ctx(tickets=(ticket(4, "resolved"), ticket(6, "claimed"))))
    assert decisions == [RelayToAgents(6, "alo?", ())]


def test_text_after_the_ticket_was_resolved_is_not_relayed_to_it_but_reaches_a_person():
    resolved = ticket(5, "resolved", resolved_at=NOW - timedelta(hours=1))
    decisions = conversation.handle(
        msg("cảm ơn"), ctx(state=TICKET_OPEN, data={"ticket_id": 5}, tickets=(resolved,), ticket=resolved)
    )
    assert decisions == [OpenTicket("question", "cảm ơn", source="message", kind="question")]


def test_opened_tells_the_customer_the_number_and_local_due_time():
    decisions = complaint.opened(ticket(5, created_at=NOW), ctx())
    assert decisions == [
        Reply(t("complaint.opened", number="KN-0005", due="15:00 23/11")),  # 08:00 UTC, shop time
        SetConversation(TICKET_OPEN, {"ticket_id": 5}),
    ]


# --- /status ---------------------------------------------------------------------------------------


def test_status_lists_only_open_tickets():
    tickets = (
        ticket(4, "resolved", resolved_at=NOW - timedelta(days=1)),
        ticket(5, "open", created_at=NOW),
        ticket(6, "claimed", category="product_quality", assignee_name="Minh"),
    )
    decisions = conversation.handle(msg("/status"), ctx(tickets=tickets))
    assert len(decisions) == 1
    lines = decisions[0].text.split("\n")
    assert lines == [
        t("complaint.status_line", number="KN-0005", category="Giao hàng", status=t("status.open"), opened="13:00 23/11"),
        t("complaint.status_line", number="KN-0006", category="Chất lượng sản phẩm",
          status=t("status.claimed", agent="Minh"), opened="11:00 23/11"),
    ]
    assert "KN-0004" not in decisions[0].text


@pytest.mark.parametrize("tickets", [(), (ticket(4, "resolved"),)])
def test_status_without_open_tickets(tickets):
    assert conversation.handle(msg("/status"), ctx(tickets=tickets)) == [Reply(t("complaint.status_none"))]


# --- 8. the resolution score ------------------------------------------------------------------------


def resolved(ticket_id=5, *, ago=timedelta(hours=1), score=None):
    return ticket(ticket_id, "resolved", resolved_at=NOW - ago, score=score)


def rate_ctx(the_ticket, **kw):
    return ctx(state=RATE, data={"ticket_id": the_ticket.ticket_id}, tickets=(the_ticket,), ticket=the_ticket, **kw)


def test_resolution_question_has_five_buttons():
    decisions = complaint.resolution_question(resolved(), "vi")
    reply = of(Reply, decisions)[0]
    assert reply.text == t("complaint.resolved", number="KN-0005")
    assert datas(reply) == [f"kn:r:5:{s}" for s in range(1, 6)]
    assert all(len(d.encode()) <= 64 for d in datas(complaint.resolution_question(resolved(10**15), "vi")[0]))
    assert state_of(decisions) == SetConversation(RATE, {"ticket_id": 5})


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_a_resolution_score_is_recorded(score):
    decisions = conversation.handle(tap(f"kn:r:5:{score}"), rate_ctx(resolved()))
    assert decisions[0] == AnswerChoice()
    assert of(RateResolution, decisions) == [RateResolution(5, score)]
    assert f"{score}/5" in of(EditChoiceMessage, decisions)[0].text
    assert state_of(decisions) == SetConversation("idle")
    assert of(Reply, decisions)[0].text.startswith(t("complaint.rated", score=score))


@pytest.mark.parametrize("score, offered", [(1, True), (2, True), (3, True), (4, False), (5, False)])
def test_a_low_resolution_score_within_the_window_offers_to_reopen(score, offered):
    reply = of(Reply, conversation.handle(tap(f"kn:r:5:{score}"), rate_ctx(resolved())))[0]
    if offered:
        assert datas(reply) == ["kn:re:5"]
        assert t("complaint.offer_reopen", days=7) in reply.text
    else:
        assert reply == Reply(t("complaint.rated", score=score))


@pytest.mark.parametrize("ago, offered", [(timedelta(days=7) - timedelta(seconds=1), True), (timedelta(days=7, seconds=1), False)])
def test_no_reopen_is_offered_after_the_window(ago, offered):
    reply = of(Reply, conversation.handle(tap("kn:r:5:1"), rate_ctx(resolved(ago=ago))))[0]
    assert bool(reply.buttons) is offered
    assert (t("complaint.offer_reopen", days=7) in reply.text) is offered


def test_reopen_window_comes_from_the_policy():
    policy = ComplaintPolicy(reopen_window=timedelta(days=2))
    reply = of(Reply, conversation.handle(tap("kn:r:5:1"), rate_ctx(resolved(ago=timedelta(days=3)), complaints=policy)))[0]
    assert not reply.buttons
    reply = of(Reply, conversation.handle(tap("kn:r:5:1"), rate_ctx(resolved(ago=timedelta(days=1)), complaints=policy)))[0]
    assert datas(reply) == ["kn:re:5"] and "2" in reply.text


@pytest.mark.parametrize(
    "data, the_ticket, refusal",
    [
        ("kn:r:6:5", resolved(5), "complaint.not_yours"),  # not the ticket in ctx
        ("kn:r:5:5", None, "complaint.not_yours"),  # not this contact's ticket
        ("kn:r:5:5", ticket(5, "open"), "complaint.not_yours"),
        ("kn:r:5:5", ticket(5, "claimed", assignee_name="Minh"), "complaint.not_yours"),
        ("kn:r:5:1", resolved(score=4), "csat.already_answered"),
        ("kn:r:5:0", resolved(), "complaint.not_yours"),
        ("kn:r:5:6", resolved(), "complaint.not_yours"),
        ("kn:r:5:x", resolved(), "complaint.not_yours"),
        ("kn:r:5:", resolved(), "complaint.not_yours"),
        ("kn:r:5", resolved(), "complaint.not_yours"),
        ("kn:r:5:05", resolved(), "complaint.not_yours"),
        ("kn:r:5:5:5", resolved(), "complaint.not_yours"),
        ("kn:r:x:5", resolved(), "complaint.not_yours"),
        ("kn:r::5", resolved(), "complaint.not_yours"),
    ],
)
def test_a_rating_that_does_not_apply_is_refused(data, the_ticket, refusal):
    c = ctx(tickets=(the_ticket,) if the_ticket else (), ticket=the_ticket)
    assert conversation.handle(tap(data), c) == [AnswerChoice(t(refusal))]


def test_referenced_ticket_comes_from_the_button_or_the_state():
    assert complaint.referenced_ticket_id(tap("kn:r:12:4"), "idle", {}) == 12
    assert complaint.referenced_ticket_id(tap("kn:re:12"), "idle", {}) == 12
    assert complaint.referenced_ticket_id(tap("kn:r:x:4"), TICKET_OPEN, {"ticket_id": 3}) is None
    assert complaint.referenced_ticket_id(msg("hi"), TICKET_OPEN, {"ticket_id": 3}) == 3
    assert complaint.referenced_ticket_id(msg("hi"), RATE, {"ticket_id": 3}) == 3
    assert complaint.referenced_ticket_id(msg("hi"), "idle", {"ticket_id": 3}) is None
    assert complaint.referenced_ticket_id(msg("hi"), TICKET_OPEN, {"ticket_id": "3"}) is None


# --- reopening -------------------------------------------------------------------------------------------


def test_reopen_within_the_window():
    decisions = conversation.handle(tap("kn:re:5"), ctx(tickets=(resolved(score=2),), ticket=resolved(score=2)))
    assert decisions == [AnswerChoice(), ReopenTicket(5)]


def test_reopen_after_the_window_is_closed():
    old = resolved(ago=timedelta(days=7, seconds=1), score=1)
    decisions = conversation.handle(tap("kn:re:5"), ctx(tickets=(old,), ticket=old))
    assert decisions == [AnswerChoice(), Reply(t("complaint.reopen_closed"))]


def test_reopen_while_another_ticket_is_open_is_refused():
    decisions = conversation.handle(tap("kn:re:5"), ctx(tickets=(resolved(), ticket(6)), ticket=resolved()))
    assert not of(ReopenTicket, decisions)


@pytest.mark.parametrize("the_ticket", [None, ticket(5, "open"), ticket(5, "claimed", assignee_name="Minh")])
def test_reopen_of_an_unknown_or_unresolved_ticket_is_refused(the_ticket):
    c = ctx(tickets=(the_ticket,) if the_ticket else (), ticket=the_ticket)
    assert conversation.handle(tap("kn:re:5"), c) == [AnswerChoice(t("complaint.not_yours"))]


@pytest.mark.parametrize("data", ["kn:re:6", "kn:re:x", "kn:re:"])
def test_reopen_button_for_another_ticket_is_refused(data):
    decisions = conversation.handle(tap(data), ctx(tickets=(resolved(5),), ticket=resolved(5)))
    assert not of(ReopenTicket, decisions)


def test_reopened_tells_the_customer_the_new_due_time():
    again = ticket(5, "open", created_at=NOW - timedelta(days=3))
    again = replace(again, first_response_due_at=NOW + timedelta(minutes=30))
    assert complaint.reopened(again, ctx()) == [
        Reply(t("complaint.reopened", number="KN-0005", due="13:30 23/11")),
        SetConversation(TICKET_OPEN, {"ticket_id": 5}),
    ]


# --- an agents' button pressed in a private chat ----------------------------------------------------------


@pytest.mark.parametrize("data, ticket_id", [("dk:resolve:1", 1), ("dk:claim:9", 9), ("dk:esc:x", None)])
def test_an_agents_button_in_a_private_chat_is_denied_and_audited(data, ticket_id):
    open_one = ticket(1)
    decisions = conversation.handle(tap(data), ctx(tickets=(open_one,), ticket=open_one))
    assert decisions == [AnswerChoice(), AuditDenied(f"button:{data}", ticket_id)]
    assert not of(ResolveTicket, decisions)


# --- English -----------------------------------------------------------------------------------------------


def test_english_intake():
    c = ctx(language="en")
    d = conversation.handle(msg("/complaint"), c)
    reply = of(Reply, d)[0]
    assert reply.text == "Which order is your complaint about?"
    assert labels(reply)[-2:] == ["Other / no order", "Cancel"]
    c = then(d, c)
    d = conversation.handle(tap("kn:o:-"), c)
    assert of(Reply, d)[0].text == "What kind of problem is it?"
    assert labels(of(Reply, d)[0])[0] == "Delivery"
    c = then(d, c)
    d = conversation.handle(tap("kn:c:0"), c)
    assert of(Reply, d)[0].text == "Please describe what happened."
    c = then(d, c)
    assert of(Reply, conversation.handle(msg("bad"), c))[0].text.startswith("Please tell us a little more")
    d = conversation.handle(msg("The parcel came 3 days late"), c)
    c = then(d, c)
    d = conversation.handle(photo("p1"), c)
    assert of(Reply, d)[0].text == "Got 1 photo. Send more, or tap Continue."
    c = then(d, c)
    summary = of(Reply, conversation.handle(tap("kn:more"), c))[0].text
    assert "Order: none" in summary and "Type: Delivery" in summary and "Photos: 1 photo" in summary
    assert conversation.handle(msg("/cancel"), c)[1] == Reply("Cancelled. You can send /complaint any time.")


def test_english_refusals_and_ticket_texts():
    c = ctx(language="en", tickets=(ticket(5),))
    assert of(Reply, conversation.handle(msg("/complaint"), c))[0].text.startswith("Your complaint KN-0005 is still open")
    assert conversation.handle(msg("/status"), c)[0].text.startswith("KN-0005 · Delivery · waiting for an agent")
    assert conversation.handle(tap("kn:o:0"), ctx(language="en")) == [
        AnswerChoice("Please pick one of the buttons below (or tap Cancel).")
    ]
    rated = of(Reply, conversation.handle(tap("kn:r:5:2"), rate_ctx(resolved(), language="en")))[0]
    assert rated.text.startswith("Thank you for rating us 2/5.") and "within 7 days" in rated.text
    assert labels(rated) == ["Reopen complaint"]


# --- the engine loads the recent orders only for events that may start a complaint -------

SURVEY = SurveyView(survey_id=9, customer_id=7, order_id="A-3", status="sent")
STATES = ("idle", "csat.awaiting_comment", ORDER, CATEGORY, DESCRIBE, PHOTOS, CONFIRM, TICKET_OPEN, RATE)
NO_COMPLAINT = [
    msg("/start"), msg("/start tok"), msg("/stop"), msg("/help"), msg("/mydata"), msg("/forget"), msg("/status"),
    msg("/cancel"), msg("/nonsense"),
    *(tap(csat.score_choice(9, score)) for score in range(1, 6)), tap(csat.skip_choice(9)),
    tap(privacy.FORGET_CONFIRM), tap(privacy.FORGET_CANCEL), tap("dk:claim:3"), tap("gone:1"),
]
MAY_COMPLAIN = [
    msg("/complaint"), msg("hàng bị vỡ"), msg("ok"), photo("p1"), tap(csat.complaint_start_choice(9)), tap("kn:o:0"),
]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("event", NO_COMPLAINT, ids=lambda e: e.choice or e.text)
def test_events_that_cannot_start_a_complaint_need_no_orders(state, event):
    assert not conversation.may_start_complaint(event)
    data = {"survey_id": 9, "ticket_id": 3, "orders": ["A-3"], "photos": []}
    conversation.handle(event, replace(ctx(state=state, data=data, survey=SURVEY), recent_orders=None))


@pytest.mark.parametrize("event", MAY_COMPLAIN, ids=lambda e: e.choice or e.text or "photo")
def test_events_that_may_start_a_complaint_get_the_orders(event):
    assert conversation.may_start_complaint(event)


def test_a_complaint_started_without_the_orders_is_a_loud_bug():
    with pytest.raises(AssertionError, match="recent orders"):
        conversation.handle(msg("/complaint"), replace(ctx(), recent_orders=None))
