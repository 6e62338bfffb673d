"""The path of one inbound update: inbox (dedupe) -> normalized event -> flow -> one
transaction with state, records and outbox."""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

from bot.channels.base import Channel
from bot.clock import Clock
from bot.effects import Target, apply
from bot.surveys import SurveyDispatcher
from flows import conversation, csat
from flows.model import Context, ContactView, Conversation, CustomerView, Inbound, SendPendingSurveys, SurveyView
from flows.schedule import SurveyPolicy
from flows.texts import pick_language
from storage import contacts, conversations, customers, inbox, surveys
from storage.db import Connection, Database

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: Mapping[str, Channel],
        dispatcher: SurveyDispatcher,
        *,
        shop_name: str,
        default_language: str,
        policy: SurveyPolicy,
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.channels = channels
        self.dispatcher = dispatcher
        self.shop_name = shop_name
        self.default_language = default_language
        self.policy = policy
        self.wake_sender = wake_sender

    async def receive(self, channel_name: str, payload: dict[str, Any]) -> bool:
        """Record an update, then handle it. False when it was a redelivery (already recorded).

        Raises ValueError for a payload without an update id (the caller answers 400);
        any failure after recording is caught, logged and kept on the inbox row."""
        channel = self.channels[channel_name]
        update_id = channel.update_id(payload)
        async with self.db.transaction() as tx:
            inbox_id = await inbox.record(tx, channel_name, update_id, payload, self.clock.now())
        if inbox_id is None:
            log.info("%s update %s already recorded; ignoring the redelivery", channel_name, update_id)
            return False
        await self.process(inbox_id, channel, payload)
        return True

    async def replay_unprocessed(self) -> int:
        """Handle updates recorded before a crash but never processed."""
        count = 0
        while True:
            async with self.db.transaction() as tx:
                pending = await inbox.unprocessed(tx)
            if not pending:
                return count
            for item in pending:
                channel = self.channels.get(item.platform)
                if channel is None:
                    async with self.db.transaction() as tx:
                        await inbox.mark_failed(tx, item.id, f"channel {item.platform} not enabled", self.clock.now())
                    continue
                await self.process(item.id, channel, item.payload)
                count += 1

    async def process(self, inbox_id: int, channel: Channel, payload: dict[str, Any]) -> None:
        try:
            event = channel.parse(payload)
            async with self.db.transaction() as tx:
                now = self.clock.now()
                if event is None:
                    await inbox.mark_processed(tx, inbox_id, now, kind="ignored")
                    return
                contact_id = await self._handle(tx, event)
                await inbox.mark_processed(
                    tx, inbox_id, now, contact_id=contact_id, kind=event.kind, text=event.choice or event.text
                )
        except Exception as exc:  # one bad update never stops the bot
            log.exception("%s update (inbox %s) failed", channel.name, inbox_id)
            async with self.db.transaction() as tx:
                await inbox.mark_failed(tx, inbox_id, f"{type(exc).__name__}: {exc}", self.clock.now())
            return
        self.wake_sender()

    async def _handle(self, tx: Connection, event: Inbound) -> int:
        now = self.clock.now()
        contact, _ = await contacts.upsert_seen(
            tx,
            channel=event.channel,
            platform_user_id=event.user_id,
            chat_id=event.chat_id,
            display_name=event.name,
            language=pick_language(event.language_code, self.default_language),
            now=now,
        )
        if contact.customer_id is None and event.channel == "telegram":
            # The shop gave us this Telegram user id with a purchase: no link needed.
            known = await customers.by_telegram_user(tx, event.user_id)
            if known is not None:
                await contacts.link(tx, contact.id, known.id)
                contact = await contacts.by_id(tx, contact.id) or contact
        customer = await customers.by_id(tx, contact.customer_id) if contact.customer_id else None
        state, data = await conversations.get(tx, contact.id)

        survey_view = None
        survey_id = csat.referenced_survey_id(event, state, data)
        if survey_id is not None and customer is not None:
            survey = await surveys.get(tx, survey_id)
            if survey is not None and survey.customer_id == customer.id:  # never another customer's survey
                survey_view = SurveyView(survey.id, survey.customer_id, survey.order_id, survey.status, survey.score)

        start_customer = None
        token = conversation.start_token(event)
        if token is not None:
            found = await customers.by_link_token(tx, token)
            if found is not None:
                start_customer = CustomerView(found.id, found.name)

        ctx = Context(
            now=now,
            contact=ContactView(
                contact_id=contact.id,
                customer_id=contact.customer_id,
                language=contact.language,
                opted_out=customer.opted_out if customer else contact.opted_out,
                customer_name=customer.name if customer else None,
            ),
            conversation=Conversation(state, data),
            shop_name=self.shop_name,
            survey=survey_view,
            start_customer=start_customer,
            policy=self.policy,
        )
        decisions = conversation.handle(event, ctx)
        target = Target(
            channel=event.channel,
            chat_id=event.chat_id,
            contact_id=contact.id,
            customer_id=contact.customer_id,
            choice_id=event.choice_id,
            choice_message_id=event.message_id if event.choice is not None else None,
        )
        target = await apply(tx, decisions, target, now)
        if target.customer_id is not None and any(isinstance(d, SendPendingSurveys) for d in decisions):
            await self.dispatcher.dispatch_for_customer(tx, target.customer_id, now)
        log.debug("contact %s: %s -> %d decisions", contact.id, event.kind, len(decisions))
        return contact.id
