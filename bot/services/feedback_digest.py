"""The weekly digests of issue 21, sent next to the owners' CSAT digest: the owners' feedback
page (programs, ideas, the journey view, CSAT per staff member), each department's slice
(its complaint categories and idea topics, to its chat), each store manager's store (its
CSAT, complaints and its own staff only). Queued once per recipient, slice and week, like
the owners' digest (bot/services/digest.py)."""
from __future__ import annotations

import logging
from datetime import datetime, time, tzinfo
from typing import Callable

from bot.clock import Clock
from bot.feedback_settings import FeedbackSettings
from flows.digest import Week, last_complete_week, latest_due_week, week_bounds
from flows.feedback_digest import (
    DepartmentPage, OwnerPage, ProgramFigures, StorePage, Tally, journey, render_department, render_owner, render_store,
)
from flows.routing import Department, StoreManager
from storage import feedback_reports as fr, outbox, reports
from storage.db import Database

log = logging.getLogger(__name__)

OWNER_SLICE = "owner"


class FeedbackDigestService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: FeedbackSettings,
        *,
        timezone: tzinfo,
        shop_name: str,
        stages: tuple[str, ...],
        owner_chat_ids: tuple[str, ...] = (),
        language: str = "vi",
        weekday: int = 0,
        at: time = time(8, 0),
        drop_points: float = 15.0,
        min_answers: int = 5,
        enabled: bool = True,
        channel_name: str = "telegram",
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.tz = timezone
        self.shop_name = shop_name
        self.stages = stages
        self.owner_chat_ids = owner_chat_ids  # empty: no channel to send on
        self.language = language
        self.weekday = weekday
        self.at = at
        self.drop_points = drop_points
        self.min_answers = min_answers
        self.enabled = enabled
        self.channel_name = channel_name
        self.wake_sender = wake_sender

    def default_week(self) -> Week:
        return last_complete_week(self.clock.now(), self.tz)

    # --- the pages -------------------------------------------------------------------------------

    def _days(self, bound: datetime) -> str:
        """A week bound (shop midnight) as the rollups' shop day: answers are counted from them."""
        return bound.astimezone(self.tz).date().isoformat()

    async def owner_page(self, week: Week) -> OwnerPage:
        start, end = week_bounds(week, self.tz)
        before, _ = week_bounds(week.shift(-1), self.tz)
        lo, hi, previous = self._days(start), self._days(end), self._days(before)
        conn = self.db.reader
        answers = await fr.program_answers(conn, lo, hi)
        programs = tuple(ProgramFigures(name, kind, counts) for (name, kind), counts in sorted(answers.items()))
        ideas, _ = await fr.ideas_in(conn, start, end)
        view = journey(
            self.stages,
            _tallies(await fr.csat_by(conn, "stage", lo, hi)),
            _tallies(await fr.csat_by(conn, "stage", previous, lo)),
            await fr.complaints_by_stage(conn, start, end),
            drop_points=self.drop_points, min_answers=self.min_answers,
        )
        staff = {k: v for k, v in _tallies(await fr.csat_by(conn, "staff", lo, hi)).items() if k}
        return OwnerPage(week, programs, ideas, view, staff)

    async def department_page(self, week: Week, department: Department) -> DepartmentPage:
        start, end = week_bounds(week, self.tz)
        conn = self.db.reader
        complaints, complaint_texts = await fr.complaints_in(conn, start, end, categories=department.categories)
        ideas, idea_texts = await fr.ideas_in(conn, start, end, topics=department.idea_topics, texts=5)
        return DepartmentPage(week, department.name, complaints, tuple(complaint_texts), ideas, tuple(idea_texts))

    async def store_page(self, week: Week, manager: StoreManager) -> StorePage:
        start, end = week_bounds(week, self.tz)
        before, _ = week_bounds(week.shift(-1), self.tz)
        lo, hi, previous = self._days(start), self._days(end), self._days(before)
        conn = self.db.reader
        complaints, _ = await fr.complaints_in(conn, start, end, store=manager.store)
        staff = {k: v for k, v in _tallies(await fr.csat_by(conn, "staff", lo, hi, store=manager.store)).items() if k}
        return StorePage(
            week, manager.store, Tally(*await fr.store_csat(conn, manager.store, lo, hi)),
            Tally(*await fr.store_csat(conn, manager.store, previous, lo)), complaints,
            tuple(await fr.store_low_comments(conn, manager.store, start, end)), staff,
        )

    async def texts(self, week: Week) -> list[tuple[str, str, str, str]]:
        """Every digest of the week: (recipient chat, slice, language, text)."""
        out = []
        if self.owner_chat_ids:
            page = await self.owner_page(week)
            # Only a shop that uses issue 21's features gets the page (programs, ideas, named
            # stages or staff): without them its CSAT digest says it all, as before.
            if page.programs or page.ideas or page.staff or any(s.stage for s in page.journey.stages):
                body = render_owner(page, self.language, self.shop_name)
                out += [(owner, OWNER_SLICE, self.language, body) for owner in self.owner_chat_ids]
        for department in self.settings.routes.departments:
            page = await self.department_page(week, department)
            out.append((department.chat_id, f"department:{department.name}", department.language,
                        render_department(page, department.language, self.shop_name)))
        for manager in self.settings.routes.stores:
            page = await self.store_page(week, manager)
            out.append((manager.chat_id, f"store:{manager.store}", manager.language,
                        render_store(page, manager.language, self.shop_name)))
        return out

    # --- sending ---------------------------------------------------------------------------------

    @property
    def can_send(self) -> bool:
        return self.enabled and self.channel_name is not None and bool(
            self.owner_chat_ids or self.settings.routes.departments or self.settings.routes.stores)

    async def send_due(self) -> int:
        if not self.can_send:
            return 0
        now = self.clock.now()
        week = latest_due_week(now, self.tz, self.weekday, self.at)
        first = await reports.first_data_at(self.db.reader)
        if first is None or week_bounds(week, self.tz)[1] <= first:
            return 0
        return await self.send(week)

    async def send(self, week: Week) -> int:
        name = str(week)
        queued = 0
        pending = [t for t in await self.texts(week)
                   if not await fr.was_sent(self.db.reader, t[0], t[1], name)]
        if not pending:
            return 0
        now: datetime = self.clock.now()
        async with self.db.transaction() as tx:
            for recipient, slice_, language, body in pending:
                if not await fr.mark_sent(tx, recipient, slice_, name, language, now):
                    continue
                await outbox.enqueue(tx, channel=self.channel_name, chat_id=recipient, contact_id=None,
                                     method="send_text", payload={"text": body[:4000], "buttons": []}, now=now, priority=1)
                queued += 1
        if queued:
            log.info("feedback digests %s queued: %d", name, queued)
            self.wake_sender()
        return queued


def _tallies(raw: dict[str, tuple[int, int]]) -> dict[str, Tally]:
    return {k: Tally(*v) for k, v in raw.items()}
