"""Survey routes on Zalo: asks Zalo for a customer's last interaction (before the dispatch
transaction), queues ZNS templates within the night ban, the day's quota and the owner's
budget (told once when reached), reads ratings back (each stored once; a low one opens a
complaint), keeps the token pair alive on a schedule and asks unlinked followers for their
phone once. The decisions themselves are flows/survey_routes.py's."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from bot.channels.zalo.channel import RefreshFailed, ZaloChannel, ZnsChannel
from bot.clock import Clock
from bot.outbox.effects import Target
from bot.webhooks import events as webhook_events
from flows import survey_routes as routing
from flows.model import Inbound, OpenTicket
from flows.survey_routes import Candidate, Route, Unreachable, ZnsPolicy
from flows.texts import fmt_number, text
from storage import contacts, outbox, purchases, surveys, zns
from storage import zalo as zalo_store
from storage.contacts import ContactRecord
from storage.customers import CustomerRecord
from storage.db import Connection, Database
from storage.surveys import SurveyRecord
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
        refresh_every: timedelta = timedelta(hours=20),
    ) -> None:
        self.refresh_every = refresh_every
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
        await contacts.ensure_linked(tx, "zns", phone, customer.id, now)
        chat = await contacts.by_platform_user(tx, "zns", phone)
        assert chat is not None
        token = await purchases.link_token(tx, survey.order_id)
        link = self.web_link(token[0] if token else None) if self.web_link else ""
        data = routing.template_data(policy, {
            "customer_name": customer.name or "Quý khách", "order_id": survey.order_id, "shop": self.shop_name,
            "link": link, "date": survey.due_at.astimezone(policy.timezone).strftime("%d/%m/%Y"),
        })
        payload = {"template_id": template_id, "template_data": data}
        row_id = await outbox.enqueue(tx, channel="zns", chat_id=phone, contact_id=chat.id, method="send_template",
                                      payload=payload, now=now, survey_id=survey.id, priority=priority)
        await zns.set_tracking_id(tx, row_id, payload)
        await zns.reserve(tx, day, policy.price_vnd)
        await surveys.mark_sent(tx, survey.id, chat.id, language, now)
        return ZnsOutcome(True)

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
        """The scheduled job: new answers to the rating templates become the surveys' scores."""
        if self.zns is None or not self.policy.rating_templates:
            return 0
        now = self.clock.now()
        found = []
        for _, template_id in self.policy.rating_templates:
            found += await self.zns.ratings(template_id, now - RATING_LOOKBACK, now)
        stored = 0
        for item in found:
            async with self.db.transaction() as tx:
                stored += await self.store_rating(tx, item, now)
        if stored:
            self.wake_sender()
        return stored

    async def store_rating(self, tx: Connection, item: routing.RatingItem, now: datetime) -> bool:
        """Once per rating id: the survey's score (if still open), and a complaint for a low one."""
        survey_id = await zns.survey_of_tracking_id(tx, item.tracking_id)
        if not await zns.record_rating(tx, item.rating_id, survey_id, item.score, now):
            return False
        if survey_id is None:
            log.info("zns: rating %s has no survey of ours (tracking id %r)", item.rating_id, item.tracking_id)
            return True
        if not await surveys.record_score(tx, survey_id, item.score, now, self.effects.rollup_rule):
            return True  # answered another way already, or closed
        await webhook_events.survey_answered(tx, survey_id, now)
        comment = routing.rating_comment(item)
        if comment and await surveys.record_comment(tx, survey_id, comment, now):
            await webhook_events.survey_commented(tx, survey_id, now)
        survey = await surveys.get(tx, survey_id)
        log.info("zns: survey %s rated %s", survey_id, item.score)
        if self.desk is not None and survey is not None and item.score <= self.desk.policy.low_score:
            chat = await contacts.by_id(tx, survey.contact_id) if survey.contact_id else None
            if chat is not None:
                description = comment or f"ZNS: {item.score}/5"
                await self.desk.open(tx, OpenTicket("other", description, order_id=survey.order_id,
                                                         source="low_score", survey_id=survey_id), chat, now)
        return True

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

