"""Survey programs on the bot side: scheduling each program's surveys from its trigger, the
dispatch pass under the global per-customer limit (flows/programs.choose), expiry, the
answers and ideas the flows record, and routing ideas and complaints to departments' chats."""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping, Sequence

from bot.clock import Clock
from bot.outbox.effects import RECORDS, SERVICES, Effects, Scope, Target
from bot.feedback_settings import FeedbackSettings, with_overrides
from flows import programs as flow
from flows.ideas import topic_label
from flows.model import RecordIdea, RecordProgramAnswer, Reply
from flows.programs import Pending, ProgramSpec
from flows.schedule import SurveyPolicy, deadline, due_cutoff, end_of_quiet_hours, in_quiet_hours
from flows.texts import category_label, text
from flows.tickets import ticket_number
from storage import contacts, customers, program_overrides, programs as store, settings as kv, surveys
from storage.contacts import ContactRecord
from storage.db import Connection, Database
from storage.surveys import SurveyRecord
from storage.tickets import TicketRecord

log = logging.getLogger(__name__)

PAGE = 500  # customers per transaction in a dispatch pass
NO_CONTACT_RETRY = timedelta(hours=1)  # a customer without a reachable chat: looked at again this much later
ROUTED_TICKET_KEY = "routing.last_ticket_id"
ROUTE_MAX_CHARS = 1500


@dataclass
class _Page:
    opted_out: set[int]
    complaining: set[int]
    contacts: dict[int, ContactRecord]
    csat: dict[int, list[SurveyRecord]]  # each customer's purchase CSAT surveys that are due


def _writable(contact: ContactRecord, last_seen: datetime | None, now: datetime, windows: Mapping[str, timedelta]) -> bool:
    """A channel with a reply window (Channel.reply_window: Zalo takes customer-care messages only
    within 7 days of the user's last message) gets a program's question only inside it, by its
    last message to us; else the next chat in survey.channel_order. (The purchase CSAT also asks
    Zalo's user detail and may use ZNS; a program does neither.)"""
    window = windows.get(contact.channel)
    return window is None or (last_seen is not None and now - last_seen <= window)


class ProgramSchedule:
    """What a purchase asks of the programs (PurchasePrograms in bot/services/purchases.py):
    whether its CSAT is asked and when, and which programs it starts. Needs no channel, so the
    CLI's order import uses it alone; ProgramService hands its calls here."""

    def __init__(self, settings: FeedbackSettings, policy: SurveyPolicy) -> None:
        self.settings = settings
        self.policy = policy

    def csat_delay(self, touchpoint: str, store_name: str | None) -> timedelta | None:
        """When a purchase's CSAT is asked: survey.delay without programs; with programs, the
        delay of the csat program that takes this purchase, or None when none does."""
        if not self.settings.enabled:
            return self.policy.delay
        spec = self.settings.purchase_csat(touchpoint, store_name)
        return spec.trigger.delay if spec is not None else None

    async def on_purchase(
        self, tx: Connection, *, purchase_id: int, customer_id: int, touchpoint: str, store_name: str | None,
        purchased_at: datetime, now: datetime,
    ) -> int:
        """The programs a purchase starts (other than the purchase CSAT, which stays a `surveys` row)."""
        made = 0
        for spec in self.settings.programs:
            trigger = spec.trigger
            if trigger.kind not in ("after_purchase", "days_after_purchase") or not spec.audience.takes_purchase(touchpoint, store_name):
                continue
            if spec.kind == "csat" and trigger.kind == "after_purchase":
                continue  # the purchase CSAT itself (bot/services/purchases.py)
            delay = trigger.delay if trigger.kind == "after_purchase" else timedelta(days=trigger.days)
            due = end_of_quiet_hours(purchased_at.astimezone(timezone.utc) + delay, self.policy)  # real hours in a DST zone
            late = deadline(due, spec.max_lateness, self.policy)
            if late < now:
                continue  # an old purchase posted late: its moment has passed
            made += await store.insert(tx, program=spec.name, kind=spec.kind, customer_id=customer_id,
                                       priority=spec.priority, due_at=due, deadline_at=late,
                                       now=now, purchase_id=purchase_id) is not None
        return made


class ProgramService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: FeedbackSettings,
        policy: SurveyPolicy,
        shop_name: str,
        effects: Effects,
        *,
        vip: tuple[float, int] = (10_000_000, 10),
        channel_order: tuple[str, ...] = ("last_used",),
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.policy = policy
        self.shop_name = shop_name
        self.effects = effects
        self.channels = effects.chat_channels()  # a question is a text: not ZNS
        self.reply_windows = {name: channel.reply_window for name, channel in effects.channels.items()
                              if channel.reply_window is not None}
        self.vip_spend, self.vip_orders = vip
        self.channel_order = channel_order
        self.wake_sender = wake_sender
        self.schedule = ProgramSchedule(settings, policy)
        self.config_settings = settings  # as the config file has them; the dashboard's edits go over these
        self.overrides: dict[str, tuple[bool, dict]] = {}
        self.listeners: list[Callable[[FeedbackSettings], None]] = []  # the engine: the texts of answers

    # --- the owners' edits (program_overrides, the dashboard) -----------------------------------

    async def refresh(self) -> bool:
        """Read the owners' edits and use them if they changed (at start, before each dispatch pass,
        and after an edit: another instance's edit reaches the leader by its next pass)."""
        async with self.db.transaction() as tx:
            found = {name: (o.enabled, o.changes) for name, o in (await program_overrides.all_(tx)).items()}
        if found == self.overrides:
            return False
        self.overrides = found
        self.use(with_overrides(self.config_settings, found))
        return True

    def use(self, settings: FeedbackSettings) -> None:
        self.settings = settings
        self.schedule.settings = settings
        for listener in self.listeners:
            listener(settings)

    def register(self, effects: Effects) -> None:
        effects.register(RecordProgramAnswer, self._record_answer, RECORDS)
        effects.register(RecordIdea, self._record_idea, SERVICES)

    # --- scheduling ----------------------------------------------------------------------------

    def csat_delay(self, touchpoint: str, store_name: str | None) -> timedelta | None:
        return self.schedule.csat_delay(touchpoint, store_name)

    async def on_purchase(
        self, tx: Connection, *, purchase_id: int, customer_id: int, touchpoint: str, store_name: str | None,
        purchased_at: datetime, now: datetime,
    ) -> int:
        return await self.schedule.on_purchase(tx, purchase_id=purchase_id, customer_id=customer_id,
                                               touchpoint=touchpoint, store_name=store_name,
                                               purchased_at=purchased_at, now=now)

    async def on_demand(self, program: str, external_ids: Sequence[str]) -> dict[str, str]:
        """The API's "ask these customers now": each id -> scheduled | unknown_customer | already_scheduled."""
        spec = self.settings.program(program)
        if spec is None:
            raise KeyError(program)
        now = self.clock.now()
        outcome: dict[str, str] = {}
        async with self.db.transaction() as tx:
            for external_id in dict.fromkeys(external_ids):  # the same id twice: asked once
                customer = await customers.by_external_id(tx, external_id)
                if customer is None:
                    outcome[external_id] = "unknown_customer"
                    continue
                if await store.open_of_program(tx, customer.id, spec.name):
                    outcome[external_id] = "already_scheduled"
                    continue
                await store.insert(tx, program=spec.name, kind=spec.kind, customer_id=customer.id,
                                   priority=spec.priority, due_at=now,
                                   deadline_at=deadline(now, spec.max_lateness, self.policy), now=now)
                outcome[external_id] = "scheduled"
        return outcome

    async def schedule_periodic(self, now: datetime) -> Counter[str]:
        """The triggers that are not an event we are told about: complaints resolved since the
        last look (CES), and every N days for active customers."""
        made: Counter[str] = Counter()
        async with self.db.transaction() as tx:
            for spec in self.settings.programs:
                trigger = spec.trigger
                if trigger.kind == "complaint_resolved":
                    made[spec.name] += await store.schedule_after_resolved(
                        tx, program=spec.name, priority=spec.priority, delay_s=int(trigger.delay.total_seconds()),
                        deadline=lambda due, s=spec: deadline(due, s.max_lateness, self.policy),
                        since=due_cutoff(now, spec.max_lateness, self.policy) - trigger.delay,
                        now=now)
                elif trigger.kind == "every":
                    due = end_of_quiet_hours(now, self.policy)
                    made[spec.name] += await store.schedule_every(
                        tx, program=spec.name, kind=spec.kind, priority=spec.priority,
                        every_since=now - timedelta(days=trigger.days), active_since=now - timedelta(days=trigger.active_days),
                        due_at=due, deadline_at=deadline(due, spec.max_lateness, self.policy), now=now,
                        stores=spec.audience.stores, touchpoints=spec.audience.touchpoints)
        return +made

    # --- the dispatch pass ---------------------------------------------------------------------

    async def dispatch_due(self) -> Counter[str]:
        """Schedule what the periodic triggers call for, then decide every customer with a due
        program survey: the most valuable of their due surveys (the purchase CSAT's too) goes
        out if the global limit allows, the others wait for the next free slot or are dropped."""
        outcomes: Counter[str] = Counter()
        if not self.settings.enabled:
            return outcomes
        await self.refresh()
        now = self.clock.now()
        outcomes.update({f"scheduled_{k}": v for k, v in (await self.schedule_periodic(now)).items()})
        after = 0
        while True:
            async with self.db.transaction() as tx:
                page = await store.due_customers(tx, now, PAGE, after)
                if page:
                    await self._dispatch_page(tx, page, now, outcomes)
            if len(page) < PAGE:
                break
            after = page[-1]
        if outcomes["sent"]:
            self.wake_sender()
        if outcomes:
            log.info("program dispatch: %s", dict(outcomes))
        return outcomes

    async def _dispatch_page(self, tx: Connection, customer_ids: list[int], now: datetime, outcomes: Counter[str]) -> None:
        due = await store.due_for_customers(tx, customer_ids, now)
        sends = await store.sends_since(tx, customer_ids, now - self.settings.period)
        by_customer: dict[int, list[store.ProgramSurveyRecord]] = {}
        for record in due:
            by_customer.setdefault(record.customer_id, []).append(record)
        last_of: dict[str, dict[int, datetime]] = {}
        for name in {r.program for r in due}:
            spec = self.settings.program(name)
            if spec is not None and spec.fatigue > timedelta(0):
                last_of[name] = await store.last_of_program(tx, customer_ids, name)
        skip: dict[str, list[int]] = {}
        moves: list[tuple[int, datetime]] = []
        ids = list(by_customer)
        page = _Page(  # what each customer's decision looks at, read for the whole page at once
            opted_out=await store.opted_out_of(tx, ids),
            complaining=await store.with_open_complaint(tx, ids),
            contacts=await contacts.reachable_for_customers(tx, ids, self.channels, self.channel_order,
                                                            usable=lambda c, seen: _writable(c, seen, now, self.reply_windows)),
            csat={},
        )
        for survey in await surveys.open_for_customers(tx, ids, now):
            page.csat.setdefault(survey.customer_id, []).append(survey)
        for customer_id, records in by_customer.items():
            await self._decide(tx, customer_id, records, sends.get(customer_id, []), last_of, page, now, skip, moves,
                               outcomes)
        for reason, ids in skip.items():
            await store.mark_skipped(tx, ids, reason, now)
            outcomes[f"skipped_{reason}"] += len(ids)
        if moves:
            await store.postpone(tx, moves)
            outcomes["postponed"] += len(moves)

    async def _decide(
        self, tx: Connection, customer_id: int, records: list[store.ProgramSurveyRecord], sent: list[datetime],
        last_of: dict[str, dict[int, datetime]], page: "_Page", now: datetime, skip: dict[str, list[int]],
        moves: list[tuple[int, datetime]], outcomes: Counter[str],
    ) -> None:
        specs = {r.id: self.settings.program(r.program) for r in records}
        live = []
        for r in records:
            spec = specs[r.id]
            if spec is None:
                paused = self.settings.known_program(r.program) is not None
                skip.setdefault("program_disabled" if paused else "program_removed", []).append(r.id)
            elif r.deadline_at < now:
                skip.setdefault("too_late", []).append(r.id)
            elif (last := last_of.get(r.program, {}).get(customer_id)) is not None and now - last < spec.fatigue:
                skip.setdefault("program_fatigue", []).append(r.id)
            else:
                live.append(r)
        if not live:
            return
        if customer_id in page.opted_out:
            skip.setdefault("opted_out", []).extend(r.id for r in live)
            return
        if customer_id in page.complaining:  # asking about anything mid-complaint reads as not listening
            skip.setdefault("open_complaint", []).extend(r.id for r in live)
            return
        contact = page.contacts.get(customer_id)
        if contact is None:
            moves.extend((r.id, now + NO_CONTACT_RETRY) for r in live)
            return
        tier = await self._tier(tx, customer_id, now) if any(specs[r.id].audience.tiers for r in live) else "regular"
        eligible = []
        for r in live:
            if specs[r.id].audience.takes_customer(tier, contact.channel):
                eligible.append(r)
            else:
                skip.setdefault("audience", []).append(r.id)
        if not eligible:
            return
        if in_quiet_hours(now, self.policy):
            resume = end_of_quiet_hours(now, self.policy)
            for r in eligible:
                (moves.append((r.id, resume)) if resume <= r.deadline_at else skip.setdefault("too_late", []).append(r.id))
            return
        pending = [Pending(r.id, "program", r.priority, r.due_at, r.deadline_at) for r in eligible]
        pending += [Pending(s.id, "csat", self.settings.csat_priority(), s.due_at,
                             deadline(s.late_from, self.policy.max_lateness, self.policy))
                    for s in page.csat.get(customer_id, [])]
        choice = flow.choose(pending, sent, now, self.settings.max_per_period, self.settings.period)
        by_id = {r.id: r for r in eligible}
        if choice.send is not None and choice.send.source == "program":
            record = by_id[choice.send.id]
            await self._send(tx, record, specs[record.id], contact, now)
            outcomes["sent"] += 1
        elif choice.send is not None:
            outcomes["left_to_csat"] += 1  # the purchase CSAT wins: the survey dispatcher sends it next
        for p, until in choice.wait:
            if p.source == "program":
                moves.append((p.id, until))
        for p in choice.drop:
            if p.source == "program":
                skip.setdefault("fatigue", []).append(p.id)

    async def _send(self, tx: Connection, record: store.ProgramSurveyRecord, spec: ProgramSpec, contact: ContactRecord,
                    now: datetime) -> None:
        decisions = flow.question(survey_id=record.id, spec=spec, shop=self.shop_name, order=record.order_id or "",
                                  language=contact.language)
        await self.effects.apply(tx, decisions, Target.of_contact(contact, priority=1), now)
        await store.mark_sent(tx, record.id, contact.id, contact.language, now)

    async def _tier(self, tx: Connection, customer_id: int, now: datetime) -> str:
        spend, orders = await store.spend_12m(tx, customer_id, now - timedelta(days=365))
        return flow.tier_of(spend, orders, self.vip_spend, self.vip_orders)

    async def expire(self) -> Counter[str]:
        now = self.clock.now()
        outcomes: Counter[str] = Counter()
        async with self.db.transaction() as tx:
            for spec in (*self.settings.programs, *self.settings.paused):
                outcomes["expired"] += await store.expire_sent_before(tx, spec.name, now - spec.expires_after, now)
            outcomes["skipped_too_late"] += await store.skip_too_late(tx, now)
        return +outcomes

    # --- a CES in place of the resolution rating ------------------------------------------------

    async def ask_instead_of_rating(self, tx: Connection, ticket: TicketRecord, contact: ContactRecord, target: Target,
                                    now: datetime) -> bool:
        """AgentDesk.resolve's hook: with a ces program set to `resolution_rating = "replace"`, the
        customer is told the complaint is resolved and asked the CES at once, in the rating's
        place (like the rating, not held by the global limit: it answers what just happened).
        False (the rating is asked) without such a program, without a known customer, or after /stop."""
        spec = self.settings.replacing_resolution_rating()
        if spec is None or ticket.customer_id is None:
            return False
        # After /stop no survey, this one included: the rating (their complaint's answer) is asked.
        if await store.opted_out_of(tx, [ticket.customer_id]) or (
                contact.customer_id != ticket.customer_id and contact.opted_out):
            return False
        survey_id = await store.insert(tx, program=spec.name, kind=spec.kind, customer_id=ticket.customer_id,
                                       priority=spec.priority, due_at=now,
                                       deadline_at=deadline(now, spec.max_lateness, self.policy), now=now,
                                       ticket_id=ticket.id)
        if survey_id is None:  # resolved before, reopened, resolved again: asked once per complaint
            return False
        lang = contact.language
        told = [Reply(text(lang, "complaint.resolved_plain", number=ticket_number(ticket.id, ticket.kind)))]
        decisions = flow.question(survey_id=survey_id, spec=spec, shop=self.shop_name, order="", language=lang)
        await self.effects.apply(tx, told + decisions, target, now)
        await store.mark_sent(tx, survey_id, contact.id, lang, now)
        return True

    # --- the global limit, for the purchase CSAT's dispatcher ----------------------------------

    async def limit_reached_since(self, tx: Connection, customer_id: int, now: datetime) -> datetime | None:
        """For SurveyDispatcher's fatigue check: the send that fills the customer's global limit
        (None while there is room). Counted over both survey tables."""
        return await store.nth_latest_send(tx, customer_id, self.settings.max_per_period, now - self.settings.period)

    # --- answers and ideas ---------------------------------------------------------------------

    async def _record_answer(self, tx: Connection, d: RecordProgramAnswer, scope: Scope) -> None:
        recorded = await store.record_answer(tx, d.survey_id, scope.now, score=d.score, choice=d.choice, text=d.text)
        if recorded and d.text is not None:
            record = await store.get(tx, d.survey_id)
            if record is not None and record.kind == "ideas":  # an ideas program's answer is an idea too
                await self._keep_idea(tx, "other", d.text, scope, program_survey_id=record.id)

    async def _record_idea(self, tx: Connection, d: RecordIdea, scope: Scope) -> None:
        await self._keep_idea(tx, d.topic, d.text, scope)

    async def _keep_idea(self, tx: Connection, topic: str, body: str, scope: Scope, program_survey_id: int | None = None) -> None:
        target = scope.target
        await store.insert_idea(tx, topic=topic, text=body, now=scope.now, customer_id=target.customer_id,
                                contact_id=target.contact_id, program_survey_id=program_survey_id)
        for department in self.settings.routes.for_topic(topic):
            message = text(department.language, "idea.routed", topic=topic_label(department.language, topic),
                           text=body[:ROUTE_MAX_CHARS])
            await self._to_chat(tx, department.chat_id, message, scope.now)

    async def _to_chat(self, tx: Connection, chat_id: str, message: str, now: datetime) -> None:
        if "telegram" not in self.channels:
            return  # department chats are Telegram groups: nothing to send on
        await self.effects.enqueue(tx, Target("telegram", chat_id, None, None, priority=1), "send_text",
                                   {"text": message, "buttons": []}, now)

    async def route_new_complaints(self) -> int:
        """Complaints opened since the last look, to the chat of each department that owns their
        category (the agents' group still gets every one). Runs with the dispatch job."""
        if not self.settings.routes.departments:
            return 0
        now = self.clock.now()
        routed = 0
        async with self.db.transaction() as tx:
            seen = await kv.get(tx, ROUTED_TICKET_KEY)
            if seen is None:  # routing just configured: from now on, not the whole history
                await kv.put(tx, ROUTED_TICKET_KEY, str(await store.last_ticket_id(tx)))
                return 0
            last = int(seen)
            rows = await store.complaints_after(tx, last, 200)
            for ticket_id, category, description in rows:
                for department in self.settings.routes.for_category(category):
                    lang = department.language
                    message = text(lang, "complaint.routed", number=ticket_number(ticket_id),
                                   category=category_label(lang, category), text=description[:ROUTE_MAX_CHARS])
                    await self._to_chat(tx, department.chat_id, message, now)
                    routed += 1
                last = ticket_id
            if rows:
                await kv.put(tx, ROUTED_TICKET_KEY, str(last))
        if routed:
            self.wake_sender()
        return routed
