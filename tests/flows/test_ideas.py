"""/gopy: ideas are their own kind, never complaints; topics; the menu button."""
from __future__ import annotations

from datetime import datetime, timezone

from flows import conversation, ideas
from flows.buttons import IdeaTopic
from flows.model import ContactView, Context, Conversation, Inbound, OpenTicket, RecordIdea, Reply, SetConversation

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
TOPICS = ("product", "price", "delivery")


def ctx(state: str = "idle", data=None, topics=TOPICS) -> Context:
    return Context(now=NOW, contact=ContactView(7, 3, "vi"), conversation=Conversation(state, data or {}),
                   shop_name="Shop An", idea_topics=topics)


def msg(text: str) -> Inbound:
    command, _, args = text[1:].partition(" ") if text.startswith("/") else (None, "", "")
    return Inbound("telegram", "7", "7", text=text, command=command, args=args)


def tap(data: str) -> Inbound:
    return Inbound("telegram", "7", "7", choice=data, choice_id="q")


def of(kind, decisions):
    return [d for d in decisions if isinstance(d, kind)]


def test_gopy_asks_the_topic_then_the_idea_and_records_it_with_its_topic():
    asked = conversation.handle(msg("/gopy"), ctx())
    buttons = [b for row in of(Reply, asked)[0].buttons for b in row]
    assert [b.label for b in buttons] == ["Sản phẩm mới", "Giá cả", "Giao hàng", "Bỏ qua"]
    picked = conversation.handle(tap(buttons[1].data), ctx())
    state = of(SetConversation, picked)[0]
    assert state == SetConversation(ideas.AWAITING_TEXT, {"topic": "price"})
    # "hỏng", "tệ" are complaint keywords: in the idea state it is still an idea
    said = conversation.handle(msg("Giá hộp quà tệ quá, nên có hộp nhỏ rẻ hơn"), ctx(state.state, dict(state.data)))
    assert of(RecordIdea, said) == [RecordIdea("price", "Giá hộp quà tệ quá, nên có hộp nhỏ rẻ hơn")]
    assert not of(OpenTicket, said)
    assert of(SetConversation, said)[0].state == "idle"


def test_gopy_with_text_records_at_once_and_without_topics_asks_the_text():
    said = conversation.handle(msg("/gopy Nên bán thêm trà ô long"), ctx())
    assert of(RecordIdea, said) == [RecordIdea("other", "Nên bán thêm trà ô long")]
    bare = conversation.handle(msg("/gopy"), ctx(topics=()))
    assert of(SetConversation, bare)[0] == SetConversation(ideas.AWAITING_TEXT, {"topic": "other"})


def test_the_help_menu_carries_the_idea_button_and_it_starts_gopy():
    help_reply = of(Reply, conversation.handle(msg("/help"), ctx()))[0]
    assert "/gopy" in help_reply.text
    button = help_reply.buttons[0][0]
    started = conversation.handle(tap(button.data), ctx())
    assert "Ý tưởng của bạn về điều gì" in of(Reply, started)[0].text


def test_skip_and_garbage():
    assert of(SetConversation, conversation.handle(tap(IdeaTopic("skip").pack()), ctx()))[0].state == "idle"
    assert not of(RecordIdea, conversation.handle(tap("idea:99x"), ctx()))
    unknown_topic = conversation.handle(tap(IdeaTopic("42").pack()), ctx())
    assert of(SetConversation, unknown_topic)[0].data == {"topic": "other"}
