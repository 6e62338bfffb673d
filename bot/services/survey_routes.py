"""Survey routes on Zalo: asks Zalo for a customer's last interaction (before the dispatch
transaction), queues ZNS templates within the night ban, the day's quota and the owner's
budget (told once when reached): the survey's, and a resolved complaint's rating where its
chat cannot take a message. Reads ratings back, each stored once: a survey's score (or a
ticket's resolution score), followed up as a tap would be on a chat of the customer's that is
open, else a low one opens a complaint (or reopens the ticket). Keeps the token pair alive on
a schedule and asks unlinked followers for their phone once. The decisions themselves are
flows/survey_routes.py's (and csat.followup, complaint.rating_followup)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from bot.channels.zalo.channel import RefreshFailed, ZaloChannel, ZnsChannel
from bot.clock import Clock
from bot.outbox.effects import Target
from bot.services.desk import view as ticket_view
from bot.webhooks import events as webhook_events
from flows import complaint, csat, survey_routes as routing
from flows.model import Inbound, OpenTicket, SurveyView
from flows.survey_routes import Candidate, Route, Unreachable, ZnsPolicy
from flows.texts import fmt_number, text
from flows.tickets import COMPLAINT, ticket_number
from flows.wording import DEFAULT as DEFAULT_WORDING, Wording
from storage import contacts, customers as customers_store, outbox, privacy, purchases, surveys, tickets, zns
from storage import zalo as zalo_store
from storage.contacts import ContactRecord
from storage.customers import CustomerRecord
from storage.db import Connection, Database
from storage.surveys import SurveyRecord
from storage.tickets import TicketRecord
from storage.zalo import phone_key

log = logging.getLogger(__name__)

LOOKUP_CONCURRENCY = 8
RATING_LOOKBACK = timedelta(days=8)  # a rating may come days after the message; read back this far


@dataclass(frozen=True)
class Owners:
    """Where alerts go: the owners' chats on the agents' channel (Telegram)."""

    channel: str
    chat_ids: tuple[str, ...]
    language: str = "vi"


@dataclass(frozen=True)
class ZnsOutcome:
    sent: bool
    postpone_until: datetime | None = None
    skip_reason: str | None = None


class SurveyRoutes:
    def __init__(
        self, db: Database, clock: Clock, policy: ZnsPolicy, *, zalo: ZaloChannel | None, zns_channel: ZnsChannel | None,
        effects: Any, owners: Owners, shop_name: str, web_link: Callable[[str | None], str] | None,
        desk: Any = None, wake_sender: Callable[[], None] = lambda: None,
        refresh_every: timedelta = timedelta(hours=20), channel_order: tuple[str, ...] = ("last_used",),
        comment_window: timedelta = timedelta(hours=24), wording: Wording = DEFAULT_WORDING,
    ) -> None:
        self.refresh_every = refresh_every
        # A rating read back is followed up on the customer's first open chat, in this order,
        # as a tap's would be (the comment question lasts comment_window).
        self.channel_order = channel_order
        self.comment_window = comment_window
        self.wording = wording
        self.chats = effects.chat_channels()
        self.db = db
        self.clock = clock
        self.policy = policy
        self.zalo = zalo
        self.zns = zns_channel
        self.effects = effects
        self.owners = owners
        self.shop_name = shop_name
        self.web_link = web_link
        self.desk = desk  # CustomerDesk: a low rating read back opens a complaint
        self.wake_sender = wake_sender
        self.stats = {"lookups": 0}

    @property
    def zns_usable(self) -> bool:
        return self.zns is not None and self.policy.usable

    # --- the route ----------------------------------------------------------------------------

    async def to_ask(self, tx: Connection, batch: list[SurveyRecord], now: datetime) -> set[str]:
        """The Zalo users of this batch whose last interaction we have not seen inside the window."""
        if self.zalo is None:
            return set()
        wanted: set[str] = set()
        for survey in batch:
            for user_id, seen in (await zns.zalo_last_seen(tx, survey.customer_id)).values():
                if seen is None or now - seen >= self.policy.window:
                    wanted.add(user_id)
        return wanted

    async def ask_zalo(self, user_ids: set[str]) -> dict[str, datetime | None]:
        """Zalo's last interaction per user (None: not a follower or never); outside any transaction."""
        if self.zalo is None or not user_ids:
            return {}
        gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)
        answers: dict[str, datetime | None] = {}

        async def one(user_id: str) -> None:
            async with gate:
                self.stats["lookups"] += 1
                try:
                    said = await self.zalo.last_interaction(user_id)
                except Exception as exc:  # a failed lookup: go by what we saw ourselves
                    log.warning("zalo: last interaction of a user not known (%s)", type(exc).__name__)
                    return
            if said is not None:
                follower, at = said
                answers[user_id] = at if follower else None

        await asyncio.gather(*(one(u) for u in user_ids))
        return answers

    async def route(
        self, tx: Connection, survey: SurveyRecord, customer: CustomerRecord, chats: list[ContactRecord],
        zalo_said: dict[str, datetime | None], now: datetime,
    ) -> Route | Unreachable:
        seen = await zns.zalo_last_seen(tx, customer.id) if any(c.channel == "zalo" for c in chats) else {}
        candidates = []
        for chat in chats:
            last = None
            if chat.channel == "zalo":
                user_id, ours = seen.get(chat.id, (chat.platform_user_id, None))
                theirs = zalo_said.get(user_id)
                last = max((t for t in (ours, theirs) if t is not None), default=None)
            candidates.append(Candidate(chat.id, chat.channel, last))
        return routing.choose_route(now=now, candidates=candidates, phone=phone_key(customer.phone or ""),
                                    zns_usable=self.zns_usable, window=self.policy.window)

    # --- ZNS ----------------------------------------------------------------------------------

    async def send_zns(
        self, tx: Connection, survey: SurveyRecord, customer: CustomerRecord, language: str, now: datetime,
        *, priority: int = 1,
    ) -> ZnsOutcome:
        """Queue the survey's template to the customer's phone, or say when it may go."""
        policy = self.policy
        resume = routing.night_ban_ends(now, policy)
        if resume > now:
            return ZnsOutcome(False, postpone_until=resume)
        day = routing.quota_day(now, policy)
        spent = await zns.spend_of(tx, day)
        check = routing.may_spend(routing.Spent(spent.messages, spent.vnd), policy)
        if not check.allowed:
            if await zns.mark_alerted(tx, day, now):
                await self._alert_limit(tx, check.reason, now)
            return ZnsOutcome(False, postpone_until=routing.next_quota_day(now, policy), skip_reason=f"zns_{check.reason}")
        phone = phone_key(customer.phone or "")
        template_id = policy.survey_template(language)
        assert phone is not None and template_id is not None
        token = await purchases.link_token(tx, survey.order_id)
        link = self.web_link(token[0] if token else None) if self.web_link else ""
        purchase = await purchases.by_order_id(tx, survey.order_id)
        # The purchase's date, as the customer knows it: the survey's due time may be the next
        # morning (quiet hours), days later (a delivery) or a postponement.
        bought = purchase.purchased_at if purchase is not None else survey.due_at
        data = routing.template_data(policy, {
            "customer_name": customer.name or "Quý khách", "order_id": survey.order_id, "shop": self.shop_name,
            "link": link, "date": bought.astimezone(policy.timezone).strftime("%d/%m/%Y"),
        })
        chat_id = await self._queue_template(tx, customer.id, phone, template_id, data, day, now,
                                             survey_id=survey.id, priority=priority)
        await surveys.mark_sent(tx, survey.id, chat_id, language, now)
        return ZnsOutcome(True)

    async def _queue_template(
        self, tx: Connection, customer_id: int, phone: str, template_id: str, data: dict[str, str], day: Any,
        now: datetime, *, survey_id: int | None = None, ticket_id: int | None = None, priority: int = 1,
    ) -> int:
        """One send_template row to the phone (its tracking_id: the row's id), its price
        reserved against the day, in the caller's transaction; the phone's `zns` contact."""
        await contacts.ensure_linked(tx, "zns", phone, customer_id, now)
        chat = await contacts.by_platform_user(tx, "zns", phone)
        assert chat is not None
        payload = {"template_id": template_id, "template_data": data}
        row_id = await outbox.enqueue(tx, channel="zns", chat_id=phone, contact_id=chat.id, method="send_template",
                                      payload=payload, now=now, survey_id=survey_id, ticket_id=ticket_id,
                                      priority=priority)
        await zns.set_tracking_id(tx, row_id, payload)
        await zns.reserve(tx, day, self.policy.price_vnd)
        return chat.id

    # --- a resolved complaint's rating ------------------------------------------------------------

    async def ask_resolution(self, tx: Connection, ticket: TicketRecord, contact: ContactRecord, now: datetime) -> bool:
        """A resolved complaint's rating by its ZNS template, where its chat cannot take the
        question now (a Zalo chat outside the window, a contact known only by phone). True:
        taken here (queued; or not, the day's limit reached, and said); False: the chat asks
        it as before. Zalo is not asked inside the transaction: our own last contact decides."""
        policy = self.policy
        if self.zns is None or not policy.resolution_usable or ticket.kind != COMPLAINT:
            return False
        customer_id = ticket.customer_id or contact.customer_id
        customer = await customers_store.by_id(tx, customer_id) if customer_id else None
        phone = phone_key(customer.phone or "") if customer is not None else None
        chat = None
        if contact.channel in self.chats:
            last = await zns.last_seen_of(tx, contact.id) if contact.channel == "zalo" else None
            chat = Candidate(contact.id, contact.channel, last)
        route = routing.resolution_route(now=now, chat=chat, phone=phone, zns_usable=True, window=policy.window)
        if not (isinstance(route, Route) and route.kind == routing.ZNS):
            return False
        assert customer is not None and phone is not None
        number = ticket_number(ticket.id, ticket.kind)
        day = routing.quota_day(now, policy)
        spent = await zns.spend_of(tx, day)
        check = routing.may_spend(routing.Spent(spent.messages, spent.vnd), policy)
        if not check.allowed:
            if await zns.mark_alerted(tx, day, now):
                await self._alert_limit(tx, check.reason, now)
            log.warning("zns: ticket %s resolved, its rating not asked: the day's %s is reached", number, check.reason)
            return True
        # Queued even in the night ban: the ZNS channel itself waits for its end.
        template_id = policy.resolution_template(contact.language)
        assert template_id is not None
        resolved_at = ticket.resolved_at or now
        data = routing.template_data(policy, {
            "customer_name": customer.name or "Quý khách", "ticket": number, "shop": self.shop_name,
            "order_id": ticket.order_id or "-",
            "date": resolved_at.astimezone(policy.timezone).strftime("%d/%m/%Y"),
        }, resolution=True)
        await self._queue_template(tx, customer.id, phone, template_id, data, day, now, ticket_id=ticket.id, priority=0)
        log.info("ticket %s resolved: its rating asked by ZNS (%s)", number, route.reason)
        return True

    async def _alert_limit(self, tx: Connection, reason: str, now: datetime) -> None:
        lang = self.owners.language
        if reason == "daily_quota":
            message = text(lang, "zns.quota_reached", limit=fmt_number(self.policy.daily_messages, lang))
        else:
            message = text(lang, "zns.budget_reached", limit=fmt_number(self.policy.daily_budget_vnd, lang))
        log.warning("zns: the day's %s is reached; remaining ZNS surveys wait for the next day", reason)
        await self._tell_owners(tx, message, now)

    async def _tell_owners(self, tx: Connection, message: str, now: datetime) -> None:
        for chat_id in self.owners.chat_ids:
            await self.effects.enqueue(tx, Target(self.owners.channel, chat_id, None, None), "send_text",
                                       {"text": message, "buttons": []}, now)

    # --- ratings read back ------------------------------------------------------------------------

    async def poll_ratings(self) -> int:
        """The scheduled job: new answers to the rating templates become the surveys' scores
        and the resolved complaints' resolution scores."""
        if self.zns is None or not self.policy.read_back:
            return 0
        now = self.clock.now()
        found = []
        for template_id in self.policy.read_back:
            found += await self.zns.ratings(template_id, now - RATING_LOOKBACK, now)
        stored = 0
        for item in found:
            async with self.db.transaction() as tx:
                stored += await self.store_rating(tx, item, now)
        if stored:
            self.wake_sender()
        return stored

    async def store_rating(self, tx: Connection, item: routing.RatingItem, now: datetime) -> bool:
        """Once per rating id: the survey's score (if still open) or the ticket's resolution
        score (if not rated since it was resolved), then what a tap would bring."""
        tracked = await zns.of_tracking_id(tx, item.tracking_id)
        survey_id = tracked.survey_id if tracked else None
        ticket_id = tracked.ticket_id if tracked and survey_id is None else None
        if not await zns.record_rating(tx, item.rating_id, survey_id, item.score, now, ticket_id=ticket_id):
            return False
        if ticket_id is not None:
            assert tracked is not None
            await self._store_resolution(tx, ticket_id, tracked.queued_at, item, now)
            return True
        if survey_id is None:
            log.info("zns: rating %s has no survey or ticket of ours (tracking id %r)", item.rating_id, item.tracking_id)
            return True
        if not await surveys.record_score(tx, survey_id, item.score, now, self.effects.rollup_rule):
            return True  # answered another way already, or closed
        await webhook_events.survey_answered(tx, survey_id, now)
        comment = routing.rating_comment(item)
        if comment and await surveys.record_comment(tx, survey_id, comment, now):
            await webhook_events.survey_commented(tx, survey_id, now)
        survey = await surveys.get(tx, survey_id)
        log.info("zns: survey %s rated %s", survey_id, item.score)
        if survey is None:
            return True
        chat = await self._open_chat(tx, survey.customer_id, now)
        if chat is not None:  # the follow-up a tap gets, where the customer can answer it
            view = SurveyView(survey.id, survey.customer_id, survey.order_id, survey.status, item.score,
                              survey.touchpoint, survey.store)
            low_score = self.desk.policy.low_score if self.desk is not None else 2
            decisions = csat.followup(view, item.score, language=chat.language, now=now, comment_window=self.comment_window,
                                      low_score=low_score, shop=self.shop_name, wording=self.wording)
            await self.effects.apply(tx, decisions, Target.of_contact(chat), now)
            log.info("zns: survey %s's rating followed up on contact %s", survey_id, chat.id)
        elif self.desk is not None and item.score <= self.desk.policy.low_score:
            # No chat to offer the complaint in: it is opened, and an agent calls back.
            held_by = await contacts.by_id(tx, survey.contact_id) if survey.contact_id else None
            if held_by is not None:
                description = comment or f"ZNS: {item.score}/5"
                await self.desk.open(tx, OpenTicket("other", description, order_id=survey.order_id,
                                                         source="low_score", survey_id=survey_id), held_by, now)
        return True

    async def _store_resolution(
        self, tx: Connection, ticket_id: int, asked_at: datetime, item: routing.RatingItem, now: datetime,
    ) -> None:
        """The ticket's resolution score, if it is still resolved and not rated since this
        template was sent; then thanks (and the reopen offer) on its chat if that is open, else
        an unhappy score within the reopen window reopens it."""
        ticket = await tickets.get(tx, ticket_id)
        if (ticket is None or self.desk is None or ticket.status != "resolved" or ticket.resolution_score is not None
                or ticket.resolved_at is None or asked_at < ticket.resolved_at):
            log.info("zns: rating %s of ticket %s not stored (reopened, or rated already)", item.rating_id, ticket_id)
            return
        if await privacy.ticket_erased(tx, ticket_id):  # its customer's words and a reopening would come back
            log.info("zns: rating %s of ticket %s not stored (its customer was erased)", item.rating_id, ticket_id)
            return
        await self.desk.rate(tx, ticket, item.score, now)
        comment = routing.rating_comment(item)
        contact = await contacts.by_id(tx, ticket.contact_id)
        assert contact is not None
        if comment:
            await self.desk.relay_to_agents(tx, ticket, contact, comment, (), now)
        log.info("zns: ticket %s rated %s", ticket_number(ticket.id, ticket.kind), item.score)
        rated = await tickets.get(tx, ticket.id)
        assert rated is not None
        view = ticket_view(rated)
        window = self.desk.policy.reopen_window
        if await self._is_open(tx, contact, now):
            decisions = complaint.rating_followup(view, item.score, language=contact.language, now=now, reopen_window=window)
            await self.effects.apply(tx, decisions, Target.of_contact(contact, ticket_id=ticket.id), now)
        elif complaint.offers_reopen(view, item.score, now=now, reopen_window=window):
            others = [t for t in await tickets.for_contact(tx, contact.id, now) if t.status != "resolved"]
            if not others:  # as a tap on "reopen" would (an agent takes it up by phone)
                await self.desk.reopen(tx, rated, now)

    async def _open_chat(self, tx: Connection, customer_id: int, now: datetime) -> ContactRecord | None:
        """The customer's first chat (survey.channel_order) that can take a conversational
        message now: a Telegram or web chat, a Zalo chat inside the window (by our own last
        contact: no call to Zalo inside the transaction)."""
        chats = [c for c in await contacts.ordered_for_customer(tx, customer_id, self.chats, self.channel_order)
                 if not c.opted_out]
        seen = await zns.zalo_last_seen(tx, customer_id) if any(c.channel == "zalo" for c in chats) else {}
        candidates = [Candidate(c.id, c.channel, seen.get(c.id, ("", None))[1] if c.channel == "zalo" else None)
                      for c in chats]
        found = routing.open_chat(now=now, candidates=candidates, window=self.policy.window)
        return next((c for c in chats if c.id == found), None)

    async def _is_open(self, tx: Connection, contact: ContactRecord, now: datetime) -> bool:
        if contact.channel not in self.chats or contact.opted_out:
            return False
        last = await zns.last_seen_of(tx, contact.id) if contact.channel == "zalo" else None
        return routing.open_chat(now=now, candidates=[Candidate(contact.id, contact.channel, last)],
                                 window=self.policy.window) is not None

    # --- the token pair -------------------------------------------------------------------------------

    async def keep_token_alive(self) -> bool:
        """The scheduled check: a pair older than zalo.refresh_every is refreshed, whether or not
        anything was sent. A failure is logged and told to the owners once, with what to do."""
        if self.zalo is None:
            return False
        now = self.clock.now()
        async with self.db.transaction() as tx:
            rotated = await zalo_store.tokens_updated_at(tx)
        if rotated is not None and now - rotated < self.refresh_every:
            return False
        try:
            await self.zalo.refresh_now()
        except RefreshFailed as exc:
            log.error("zalo: scheduled token refresh failed: %s; re-authorize the app for the OA if it goes on", exc)
            async with self.db.transaction() as tx:
                if await zns.refresh_failed(tx, now, str(exc)):
                    await self._tell_owners(tx, text(self.owners.language, "zalo.refresh_failed", error=str(exc)), now)
            self.wake_sender()
            return False
        async with self.db.transaction() as tx:
            await zns.refreshed(tx, now)
        return True

    # --- linking ----------------------------------------------------------------------------------------

    async def request_info(self, tx: Connection, contact: ContactRecord, event: Inbound, now: datetime) -> bool:
        """Ask a Zalo follower not linked to a customer to share their phone, once (not one who
        just shared it: their submitted form counts as the asking)."""
        if contact.channel != "zalo" or contact.customer_id is not None:
            return False
        if not await zns.mark_info_requested(tx, contact.id, now) or event.phone:
            return False
        lang = contact.language
        await self.effects.enqueue(tx, Target.of_contact(contact), "request_user_info", {
            "title": text(lang, "zalo.request_info_title"), "subtitle": text(lang, "zalo.request_info_subtitle"),
        }, now)
        return True

