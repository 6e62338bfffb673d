"""Survey jobs: send due surveys (claimed from the database, never one job per survey),
expire unanswered ones, send the optional reminder."""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.clock import Clock
from bot.services.demo import is_demo_customer
from bot.outbox.effects import AFTERWARDS, Effects, Scope, Target
from flows import csat
from flows.model import GrantOrder, SendPendingSurveys
from flows.survey_routes import CS, ZNS, Route, Unreachable
from flows.wording import DEFAULT as DEFAULT_WORDING, Wording
from flows.schedule import (AwaitContact, Postpone, Send, Skip, SurveyPolicy, deadline, decide_dispatch, due_cutoff,
                            reminder_due)
from storage import contacts, customers, start_tokens, surveys, zns
from storage.db import Connection, Database
from storage.surveys import SurveyRecord

if TYPE_CHECKING:
    from bot.services.survey_routes import SurveyRoutes

log = logging.getLogger(__name__)

BATCH = 200


class SurveyDispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: SurveyPolicy,
        shop_name: str,
        effects: Effects,
        wake_sender: Callable[[], None] = lambda: None,
        channel_order: tuple[str, ...] = ("last_used",),
        demo_policy: SurveyPolicy | None = None,
        start_token_ttl: timedelta = timedelta(days=30),
        routes: SurveyRoutes | None = None,
        wording: Wording = DEFAULT_WORDING,
        limit_reached_since: Callable[[Connection, int, datetime], Awaitable[datetime | None]] | None = None,
    ) -> None:
        self.db = db
        self.wording = wording  # the question and follow-ups per touchpoint and store (flows/wording.py)
        # The global per-customer limit across survey programs (bot/services/programs.py): the
        # send that fills it, else (no programs) the customer's last survey.
        self.limit_reached_since = limit_reached_since
        self.start_token_ttl = start_token_ttl  # how long a receipt's link grants its order (bot/privacy.py)
        self.channel_order = channel_order  # which of a customer's chats gets the survey
        self.clock = clock
        self.policy = policy
        self.shop_name = shop_name
        self.effects = effects
        # Chats we can send on now (other contacts are unreachable); ZNS is a route, not a chat.
        self.channels = effects.chat_channels()
        self.routes = routes  # Zalo on: CS inside the interaction window, ZNS outside it (flows/survey_routes.py)
        self.wake_sender = wake_sender
        self.demo_policy = demo_policy  # demo mode: demo customers' surveys ignore quiet hours

    async def dispatch_due(self) -> Counter[str]:  # bulk: priority 1 in the outbox
        """Decide every survey whose time has come: send, skip, postpone or wait for a chat."""
        outcomes: Counter[str] = Counter()
        while True:
            now = self.clock.now()
            zalo_said: dict[str, datetime | None] = {}
            if self.routes is not None:
                # Zalo is asked for last interactions before the write transaction, never inside it.
                async with self.db.transaction() as tx:
                    ask = await self.routes.to_ask(tx, await surveys.due(tx, now, BATCH), now)
                zalo_said = await self.routes.ask_zalo(ask)
            async with self.db.transaction() as tx:
                batch = await surveys.due(tx, now, BATCH)
                for survey in batch:
                    outcomes[await self._dispatch_one(tx, survey, now, zalo_said=zalo_said)] += 1
            if len(batch) < BATCH:
                break
        if outcomes["sent"]:
            self.wake_sender()
        if outcomes:
            log.info("survey dispatch: %s", dict(outcomes))
        return outcomes

    def register(self, effects: Effects) -> None:
        effects.register(SendPendingSurveys, self._send_pending, AFTERWARDS)

    async def _send_pending(self, tx: Connection, d: SendPendingSurveys, scope: Scope) -> None:
        """Surveys the chat may get now: its customer's, and those of orders it was just granted."""
        if scope.target.customer_id is not None:
            await self.dispatch_for_customer(tx, scope.target.customer_id, scope.now)
        for decision in scope.batch:
            if isinstance(decision, GrantOrder) and scope.target.contact_id is not None:
                await self.dispatch_for_token(tx, decision.token_id, scope.target.contact_id, scope.now)

    async def dispatch_for_customer(self, tx: Connection, customer_id: int, now: datetime) -> int:
        """The customer just became reachable: send what is already due (inside the caller's transaction)."""
        sent = 0
        for survey in await surveys.open_for_customer(tx, customer_id, now):
            sent += await self._dispatch_one(tx, survey, now, priority=0) == "sent"
        return sent

    async def dispatch_for_token(self, tx: Connection, token_id: int, contact_id: int, now: datetime) -> int:
        """This chat just opened a receipt's link: its order's survey, if due, goes to it."""
        sent = 0
        for survey in await surveys.open_for_token(tx, token_id, now):
            sent += await self._dispatch_one(tx, survey, now, priority=0, opener=contact_id) == "sent"
        if self.routes is not None:
            sent += await self._continue_zns_survey(tx, token_id, contact_id, now)
        return sent

    async def _continue_zns_survey(self, tx: Connection, token_id: int, contact_id: int, now: datetime) -> int:
        """The ZNS template's button opened the receipt link in a chat: the question is asked
        there, once (the survey's conversation moves to that chat)."""
        asked = 0
        contact = await contacts.by_id(tx, contact_id)
        if contact is None or contact.channel not in self.channels:
            return 0
        for survey in await surveys.sent_by_zns_for_token(tx, token_id):
            held_by = await contacts.by_id(tx, survey.contact_id) if survey.contact_id else None
            if held_by is None or held_by.channel != ZNS:  # asked in a chat already
                continue
            if not await surveys.move_to_chat(tx, survey.id, held_by.id, contact.id):
                continue
            decisions = csat.question(survey_id=survey.id, order_id=survey.order_id, shop=self.shop_name,
                                      language=contact.language)
            await self.effects.apply(tx, decisions, Target.of_contact(contact, priority=0), now)
            asked += 1
        return asked

    async def _dispatch_one(
        self, tx: Connection, survey: SurveyRecord, now: datetime, priority: int = 1, opener: int | None = None,
        zalo_said: dict[str, datetime | None] | None = None,
    ) -> str:
        """`opener`: the chat that just opened the order's receipt link, which gets it. Else the
        customer's own (verified) chats, else the chat that opened the link last. With Zalo on,
        the route (flows/survey_routes.py) picks among the customer's chats and ZNS."""
        customer, last_sent_at, open_complaint = await surveys.dispatch_facts(tx, survey.customer_id)
        assert customer is not None
        contact = None
        route: Route | Unreachable | None = None
        language = "vi"
        if opener is None:
            if self.routes is not None:
                chats = await contacts.ordered_for_customer(tx, survey.customer_id, self.channels, self.channel_order)
                language = chats[0].language if chats else language
                route = await self.routes.route(tx, survey, customer, chats, zalo_said or {}, now)
                if isinstance(route, Route) and route.kind == CS:
                    contact = next(c for c in chats if c.id == route.contact_id)
            else:
                contact = await contacts.reachable_for_customer(tx, survey.customer_id, self.channels, self.channel_order)
            if contact is None and not (isinstance(route, Route) and route.kind == ZNS):
                opener = await start_tokens.latest_chat(tx, survey.purchase_id, now, self.start_token_ttl)
                if opener is not None:
                    route = Route(CS, "receipt_link_chat", opener)
        opted_out = customer.opted_out
        if opener is not None:
            contact = await contacts.by_id(tx, opener)
            # A chat not proved to be the customer's: its own /stop counts too.
            opted_out = customer.opted_out or (
                contact is not None and contact.customer_id != survey.customer_id and contact.opted_out)
        if contact is not None and contact.channel not in self.channels:
            contact = None
        by_zns = isinstance(route, Route) and route.kind == ZNS
        decision = decide_dispatch(
            now=now,
            due_at=survey.late_from,  # a postponed survey is as late as it was first due
            opted_out=opted_out,
            has_contact=contact is not None or by_zns,
            last_sent_at=await self._last_sent_at(tx, survey.customer_id, now, last_sent_at),
            policy=self.demo_policy if self.demo_policy and is_demo_customer(customer.external_id) else self.policy,
            open_complaint=open_complaint,
        )
        if route is not None:
            await zns.set_route(tx, survey.id, route.kind if isinstance(route, Route) else None, route.reason)
        if isinstance(decision, AwaitContact) and isinstance(route, Unreachable) and route.reason.startswith("zalo_"):
            # Known on Zalo but not writable (window closed, no ZNS): no chat will come of waiting.
            decision = Skip("unreachable")
        if isinstance(decision, Send) and by_zns:
            assert self.routes is not None
            outcome = await self.routes.send_zns(tx, survey, customer, language, now, priority=priority)
            if outcome.sent:
                log.info("survey %s sent by ZNS (%s)", survey.id, route.reason if route else "")
                return "sent"
            assert outcome.postpone_until is not None
            if outcome.postpone_until > deadline(survey.late_from, self.policy.max_lateness, self.policy):
                decision = Skip(outcome.skip_reason or "too_late")
            else:
                decision = Postpone(outcome.postpone_until)
        match decision:
            case Send():
                assert contact is not None
                decisions = csat.question(
                    survey_id=survey.id, order_id=survey.order_id, shop=self.shop_name, language=contact.language,
                    touchpoint=survey.touchpoint, store=survey.store, wording=self.wording,
                )
                target = Target.of_contact(contact, priority=priority)
                await self.effects.apply(tx, decisions, target, now)
                await surveys.mark_sent(tx, survey.id, contact.id, contact.language, now)
                log.info("survey %s sent to contact %s", survey.id, contact.id)
                return "sent"
            case Skip(reason=reason):
                await surveys.mark_skipped(tx, survey.id, reason, now)
                log.info("survey %s skipped: %s", survey.id, reason)
                return f"skipped_{reason}"
            case Postpone(until=until):
                await surveys.postpone(tx, survey.id, until)
                return "postponed"
            case AwaitContact():
                await surveys.mark_awaiting_contact(tx, survey.id)
                return "awaiting_contact"
        raise AssertionError(decision)

    async def _last_sent_at(self, tx: Connection, customer_id: int, now: datetime,
                            purchase_csat_last: datetime | None) -> datetime | None:
        """What the fatigue rule counts from: with survey programs, when the customer's global
        limit was reached; else the purchase CSAT's last send (read with the dispatch facts)."""
        if self.limit_reached_since is not None:
            return await self.limit_reached_since(tx, customer_id, now)
        return purchase_csat_last

    async def expire(self) -> Counter[str]:
        """Close sent surveys nobody answered in time, and give up on customers who never
        opened their link before the survey became too late."""
        now = self.clock.now()
        outcomes: Counter[str] = Counter()
        async with self.db.transaction() as tx:
            outcomes["expired"] = await surveys.expire_sent_before(tx, now - self.policy.expires_after, now)
            for survey in await surveys.awaiting_contact_before(
                    tx, due_cutoff(now, self.policy.max_lateness, self.policy), BATCH):
                await surveys.mark_skipped(tx, survey.id, "too_late", now)
                outcomes["skipped_too_late"] += 1
        return +outcomes

    async def remind(self) -> int:
        """One reminder at most, if configured, outside quiet hours."""
        if self.policy.reminder_after is None:
            return 0
        now = self.clock.now()
        reminded = 0
        async with self.db.transaction() as tx:
            for survey in await surveys.unreminded_sent_before(tx, now - self.policy.reminder_after, BATCH):
                assert survey.sent_at is not None and survey.contact_id is not None
                if not reminder_due(now, survey.sent_at, False, self.policy):
                    continue
                contact = await contacts.by_id(tx, survey.contact_id)
                customer = await customers.by_id(tx, survey.customer_id)
                if contact is None or contact.channel not in self.channels or customer is None or customer.opted_out:
                    continue
                if contact.customer_id != survey.customer_id and contact.opted_out:
                    continue  # a receipt's link chat, not the customer's: its own /stop counts (as in dispatch)
                decisions = csat.question(
                    survey_id=survey.id,
                    order_id=survey.order_id,
                    shop=self.shop_name,
                    language=survey.language or contact.language,
                    reminder=True,
                    touchpoint=survey.touchpoint,
                    store=survey.store,
                    wording=self.wording,
                )
                target = Target.of_contact(contact, priority=1)
                await self.effects.apply(tx, decisions, target, now)
                await surveys.mark_reminded(tx, survey.id, now)
                reminded += 1
        if reminded:
            self.wake_sender()
        return reminded
