"""Ideas and wishes: /gopy (or the 💡 button in the menus) lets anyone leave an idea at any
time: what to sell next, what to change, a price. Ideas are their own kind, never complaints:
they go to the department that owns their topic, never to the agents' queue.

1. /gopy <text>: recorded at once (topic "other"). /gopy alone: the topics as buttons
   (ideas.topics in the config), or straight to 2 when there is none.
2. A topic tapped: "write your idea here".
3. The text: recorded with its topic, thanked.
"""
from __future__ import annotations

from flows.buttons import IdeaTopic
from flows.model import AnswerChoice, Button, Context, Decision, Inbound, RecordIdea, Reply, SetConversation
from flows.texts import has, text

COMMANDS = ("gopy", "idea", "ideas", "y_tuong")
AWAITING_TEXT = "idea.awaiting_text"
OTHER = "other"
MENU = IdeaTopic.MENU
MAX_CHARS = 2000


def owns_choice(data: str) -> bool:
    return IdeaTopic.owns(data)


def menu_button(language: str) -> Button:
    """The 💡 button the menus carry (/help, the thanks after a survey)."""
    return Button(text(language, "idea.button"), IdeaTopic(MENU).pack())


def topic_label(language: str, topic: str) -> str:
    key = f"idea.topic.{topic}"
    return text(language, key) if has(language, key) else topic.replace("_", " ").capitalize()


def start(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    typed = event.args.strip()
    if typed:
        return [RecordIdea(OTHER, typed[:MAX_CHARS]), SetConversation("idle"),
                Reply(text(lang, "idea.thanks", shop=ctx.shop_name))]
    topics = ctx.idea_topics
    if not topics:
        return [SetConversation(AWAITING_TEXT, {"topic": OTHER}), Reply(text(lang, "idea.ask_text"))]
    rows = tuple((Button(topic_label(lang, t), IdeaTopic(str(i)).pack()),) for i, t in enumerate(topics))
    cancel = (Button(text(lang, "csat.skip"), IdeaTopic("skip").pack()),)
    return [Reply(text(lang, "idea.ask_topic", shop=ctx.shop_name), buttons=(*rows, cancel))]


def on_choice(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    if event.choice == IdeaTopic(MENU).pack():
        return [AnswerChoice(), *start(Inbound(event.channel, event.user_id, event.chat_id, command="gopy"), ctx)]
    choice = IdeaTopic.unpack(event.choice or "")
    if choice is None:
        return [AnswerChoice()]
    if choice.value == "skip":
        return [AnswerChoice(), SetConversation("idle"), Reply(text(lang, "idea.cancelled"))]
    index = int(choice.value)
    topic = ctx.idea_topics[index] if index < len(ctx.idea_topics) else OTHER
    return [AnswerChoice(), SetConversation(AWAITING_TEXT, {"topic": topic}), Reply(text(lang, "idea.ask_text"))]


def on_text(event: Inbound, ctx: Context) -> list[Decision] | None:
    """The idea itself, in the state after a topic; None for anything else."""
    if ctx.conversation.state != AWAITING_TEXT or not event.text.strip():
        return None
    topic = ctx.conversation.data.get("topic")
    topic = topic if isinstance(topic, str) and topic else OTHER
    return [RecordIdea(topic, event.text.strip()[:MAX_CHARS]), SetConversation("idle"),
            Reply(text(ctx.contact.language, "idea.thanks", shop=ctx.shop_name))]
