"""The customer's privacy commands: /mydata (everything kept about them) and /forget
(erase it, after a confirmation with buttons). The bot carries out the decisions; the
consent notice itself is added by the bot to the first message a chat gets (bot/services/privacy.py).
"""
from __future__ import annotations

from flows.buttons import PrivacyChoice, family
from flows.model import (
    AnswerChoice, Button, Context, Decision, EditChoiceMessage, EraseMyData, Inbound, Reply, SendMyData, TellOtherChats,
)
from flows.texts import text

FORGET_CONFIRM = PrivacyChoice(PrivacyChoice.FORGET).pack()
FORGET_CANCEL = PrivacyChoice(PrivacyChoice.KEEP).pack()


def owns_choice(choice: str) -> bool:
    return family(choice) == PrivacyChoice.PREFIX


def confirms_forget(event: Inbound) -> bool:
    """The press that confirms /forget (the engine loads what the erasure needs)."""
    return event.choice is not None and PrivacyChoice.unpack(event.choice) == PrivacyChoice(PrivacyChoice.FORGET)


def my_data(ctx: Context) -> list[Decision]:
    """The customer's whole data from their verified chat (their other chats are told);
    from any other chat, that chat's own data only (the bot exports what the link covers)."""
    if ctx.contact.customer_id is None:
        return [SendMyData()]
    return [SendMyData(), TellOtherChats(ctx.contact.customer_id, "export")]


def forget(ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    buttons = (Button(text(lang, "privacy.forget_yes"), FORGET_CONFIRM), Button(text(lang, "privacy.forget_no"), FORGET_CANCEL))
    return [Reply(text(lang, "privacy.forget_confirm", shop=ctx.shop_name), buttons=(buttons,))]


def on_choice(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    pressed = PrivacyChoice.unpack(event.choice or "")
    if pressed is not None and pressed.answer == PrivacyChoice.FORGET:
        if ctx.contact.customer_id is None:  # a chat of its own: that chat only
            return [EraseMyData()]  # the goodbye comes after the erase: see erased()
        return [TellOtherChats(ctx.contact.customer_id, "erase"), EraseMyData()]
    if pressed is not None and pressed.answer == PrivacyChoice.KEEP:
        return [AnswerChoice(), EditChoiceMessage(text(lang, "privacy.forget_cancelled"))]
    return [AnswerChoice()]


def erased(language: str, shop: str) -> list[Decision]:
    """What the (now anonymous) chat gets after the erase: generic texts only."""
    done = text(language, "privacy.forgotten", shop=shop)
    return [AnswerChoice(), EditChoiceMessage(text(language, "privacy.forget_yes") + " ✓"), Reply(done)]
