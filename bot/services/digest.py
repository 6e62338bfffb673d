"""The owners' weekly digest on the bot side: reads a week's figures (storage/reports.py),
builds the report (flows/digest.py), draws its chart (matplotlib, Agg, into PNG bytes),
and the scheduled job that queues the latest due week for every owner chat once.

Sending: for each owner chat not yet recorded in digests_sent for that week, one
transaction writes the digests_sent row and two outbox rows: the text, then the chart
(`send_photo_file`, the PNG in the payload). The sender delivers them like any message,
so a restart never sends twice, and a chart the channel cannot send fails alone.
"""
from __future__ import annotations

import asyncio
import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Callable

from bot.clock import Clock
from bot.webhooks import events as webhook_events
from bot.config import Config
from flows.digest import (
    BASELINE_WEEKS,
    Digest,
    Settings,
    Week,
    fmt_number,
    label,
    last_complete_week,
    latest_due_week,
    make_digest,
    render_text,
    to_json,
    week_bounds,
)
from flows.texts import text
from storage import digests, outbox, reports, rollups, surveys, webhooks, zns
from storage.db import Database
from storage.reports import CsatCell, Tally, VipRule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

OLDEST_OPEN = 3
PHOTO_METHOD = "send_photo_file"
# Where digests.mark_sent records that a week went out as the digest.ready webhook event.
WEBHOOK_RECIPIENT = "webhooks"
CHART_SIZE_IN = (8.0, 9.0)  # inches at CHART_DPI: 960 x 1080 px, portrait for a phone
CHART_DPI = 120


@dataclass(frozen=True)
class DigestSettings:
    enabled: bool = True
    weekday: int = 0  # Monday
    at: time = time(8, 0)
    language: str = "vi"
    english_owner_chat_ids: frozenset[str] = frozenset()
    weeks_in_chart: int = 12
    alert_drop: float = 15.0
    alert_min_answers: int = 5

    @staticmethod
    def from_config(config: Config) -> "DigestSettings":
        d = config.digest
        return DigestSettings(
            enabled=d.enabled,
            weekday=d.weekday,
            at=d.time,
            language=d.language,
            english_owner_chat_ids=frozenset(d.english_owner_chat_ids),
            weeks_in_chart=d.weeks_in_chart,
            alert_drop=d.alert_drop,
            alert_min_answers=d.alert_min_answers,
        )

    def language_for(self, owner_chat_id: str) -> str:
        return "en" if owner_chat_id in self.english_owner_chat_ids else self.language


class DigestService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: DigestSettings,
        *,
        timezone: tzinfo,
        shop_name: str,
        vip: VipRule,
        owner_chat_ids: tuple[str, ...] = (),
        channel_name: str = "telegram",
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.tz = timezone
        self.shop_name = shop_name
        self.vip = vip
        self.owner_chat_ids = owner_chat_ids  # empty: nobody to send to (no Telegram, or none configured)
        self.channel_name = channel_name
        self.wake_sender = wake_sender

    @property
    def can_send(self) -> bool:
        return self.settings.enabled and bool(self.owner_chat_ids)

    def default_week(self) -> Week:
        return last_complete_week(self.clock.now(), self.tz)

    # --- the report ------------------------------------------------------------------------

    async def build(self, week: Week) -> Digest:
        """Every figure is an aggregation over an index range of this week, the week before,
        the 4 weeks before (alerts) and the chart's weeks: never the whole history.
        (Reads on the reader connection, query by query: a write landing in between can
        show in one figure and not another, which a report can live with.)"""
        tz = self.tz
        start, end = week_bounds(week, tz)
        previous_start, _ = week_bounds(week.shift(-1), tz)
        baseline_start, _ = week_bounds(week.shift(-BASELINE_WEEKS), tz)
        chart_weeks = [week.shift(-i) for i in range(self.settings.weeks_in_chart - 1, -1, -1)]
        conn = self.db.reader
        this = await reports.period(conn, start, end, self.vip)
        still_open, oldest = await reports.open_tickets(conn, end, OLDEST_OPEN)
        return make_digest(
            week=week,
            tz=tz,
            now=self.clock.now(),
            shop=self.shop_name,
            cells=this.cells,
            previous_cells=await reports.csat_cells(conn, previous_start, start, self.vip),
            baseline_cells=[CsatCell(tp, store, "", n, sat, total, 0, 0) for tp, store, n, sat, total
                            in await rollups.by_touchpoint_and_store(conn, _day(baseline_start, tz), _day(start, tz))],
            complaints_now=this.complaints,
            complaints_before=await reports.complaint_stats(conn, previous_start, start),
            still_open=still_open,
            oldest_open=oldest,
            low_comments=this.low_comments,
            high_comments=this.high_comments,
            complaint_texts=this.complaint_texts,
            series_weeks=chart_weeks,
            series_tallies=[Tally(*t) for t in await rollups.series(
                conn, [tuple(_day(b, tz) for b in week_bounds(w, tz)) for w in chart_weeks])],
            settings=Settings(drop=self.settings.alert_drop, min_answers=self.settings.alert_min_answers),
            questions=this.questions,
            undelivered=await surveys.undelivered_count(conn, start, end),
            routes=tuple((await zns.route_counts(conn, start, end)).items()),
            zns_spend=await zns.spend_between(conn, start.astimezone(tz).date(), (end.astimezone(tz) - timedelta(days=1)).date()),
            resolution_zns=await zns.resolution_counts(conn, start, end),
        )

    async def report_json(self, week: Week) -> dict[str, Any]:
        return to_json(await self.build(week))

    async def chart(self, digest: Digest, language: str) -> bytes:
        # Drawing takes a few hundred ms of CPU: off the event loop.
        return await asyncio.to_thread(render_chart, digest, language)

    # --- sending -------------------------------------------------------------------------------

    async def send_due(self) -> int:
        """The scheduled job: queue the newest week whose send time has passed for every owner
        who has not had it. A week missed while the bot was down goes out now; older missed
        weeks are skipped (the latest digest says what matters, and there is no flood). Weeks
        that ended before the database's first survey, complaint or message are never sent."""
        if not self.settings.enabled:
            return 0
        if not self.owner_chat_ids and not await webhooks.subscribed(self.db.reader, webhook_events.DIGEST_READY):
            return 0
        now = self.clock.now()
        week = latest_due_week(now, self.tz, self.settings.weekday, self.settings.at)
        first = await reports.first_data_at(self.db.reader)
        if first is None or week_bounds(week, self.tz)[1] <= first:
            return 0  # a week over before the shop's first data: an empty report of nothing
        return await self.send(week)

    async def send(self, week: Week, language: str | None = None) -> int:
        """Queue the week's digest for every owner chat that has not had it; returns how many.
        `language` (the CLI's --language) overrides each owner's own."""
        language_for = (lambda _owner: language) if language else self.settings.language_for
        name = str(week)
        owners = [o for o in self.owner_chat_ids if not await digests.was_sent(self.db.reader, o, name)]
        # digest.ready goes once per week too: recorded like an owner's chat.
        hook = (await webhooks.subscribed(self.db.reader, webhook_events.DIGEST_READY)
                and not await digests.was_sent(self.db.reader, WEBHOOK_RECIPIENT, name))
        if not owners and not hook:
            return 0
        digest = await self.build(week)
        messages: dict[str, tuple[str, bytes | None]] = {}
        for lang in sorted({language_for(o) for o in owners}):
            try:
                png: bytes | None = await self.chart(digest, lang)
            except Exception:  # the text matters more than the picture
                log.exception("digest %s: could not draw the chart; sending the text only", name)
                png = None
            messages[lang] = (render_text(digest, lang), png)
        now = self.clock.now()
        queued = 0
        async with self.db.transaction() as tx:
            if hook and await digests.mark_sent(tx, WEBHOOK_RECIPIENT, name, "json", now):
                await webhook_events.digest_ready(tx, name, to_json(digest), now)
                log.info("weekly digest %s written for the webhooks (digest.ready)", name)
            for owner in owners:
                lang = language_for(owner)
                if not await digests.mark_sent(tx, owner, name, lang, now):
                    continue  # another run got there first
                body, png = messages[lang]
                await outbox.enqueue(
                    tx, channel=self.channel_name, chat_id=owner, contact_id=None, method="send_text",
                    payload={"text": body, "buttons": []}, now=now, priority=1,
                )
                if png is not None:
                    # A separate row: if the channel cannot send photos, the text still arrives.
                    await outbox.enqueue(
                        tx, channel=self.channel_name, chat_id=owner, contact_id=None, method=PHOTO_METHOD,
                        payload={
                            "png_base64": base64.b64encode(png).decode("ascii"),
                            "filename": f"digest-{name}.png",
                            "text": text(lang, "digest.photo_caption", week=name),
                        },
                        now=now, priority=1,
                    )
                queued += 1
        if queued:
            log.info("weekly digest %s queued for %d owner chat(s)", name, queued)
            self.wake_sender()
        return queued


# --- the chart --------------------------------------------------------------------------------

CSAT_COLOR = "#1f6feb"
ANSWERS_COLOR = "#d0d7de"
THIS_WEEK_COLOR = "#8c959f"
COMPLAINTS_COLOR = "#cf222e"


def render_chart(d: Digest, language: str) -> bytes:
    """The chart (see chart_figure) as PNG bytes."""
    fig = chart_figure(d, language)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_figure(d: Digest, language: str) -> "Figure":
    """CSAT % per week, the answer counts on their own axis beneath it, and this week's
    complaints by category, sized for a phone screen. Weeks without answers leave a gap."""
    # The object API with the Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    t = lambda key, **kw: text(language, key, **kw)  # noqa: E731
    fig = Figure(figsize=CHART_SIZE_IN, dpi=CHART_DPI)
    FigureCanvasAgg(fig)
    # The counts get a panel of their own: drawn behind the CSAT line on a second scale,
    # the tallest bar always stood at the line's 50% mark and read as a percentage.
    top, counts_axis, bottom = fig.subplots(3, 1, gridspec_kw={"height_ratios": [3, 1.2, 2]})

    xs = list(range(len(d.series)))
    answers = [p.answers for p in d.series]
    bar_colors = [ANSWERS_COLOR] * len(xs)
    if bar_colors:
        bar_colors[-1] = THIS_WEEK_COLOR  # the digest's own week
    bars = counts_axis.bar(xs, answers, color=bar_colors, width=0.6)
    counts_axis.bar_label(bars, labels=[fmt_number(n, language) if n else "" for n in answers], padding=2, fontsize=10)
    counts_axis.set_ylim(0, max(1, max(answers, default=0)) * 1.3)  # room for the labels
    counts_axis.set_ylabel(t("digest.chart_answers"), fontsize=12)
    counts_axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    counts_axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_number(v, language)))
    counts_axis.tick_params(axis="y", labelsize=10)
    counts_axis.set_xticks(xs)
    counts_axis.set_xticklabels([f"W{p.week.number:02d}" for p in d.series], fontsize=11)
    counts_axis.spines[["top", "right"]].set_visible(False)
    pcts = [p.csat_pct if p.csat_pct is not None else float("nan") for p in d.series]
    top.plot(xs, pcts, marker="o", color=CSAT_COLOR, linewidth=2.5, markersize=7)
    for x, p in zip(xs, d.series):
        if p.csat_pct is not None:
            top.annotate(f"{fmt_number(p.csat_pct, language)}%", (x, p.csat_pct), textcoords="offset points",
                         xytext=(0, 10), ha="center", fontsize=11, color=CSAT_COLOR,
                         bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    if not any(answers):
        top.text(0.5, 0.5, t("digest.chart_no_answers"), transform=top.transAxes, ha="center", va="center", fontsize=14)
    top.set_ylim(0, 110)
    top.set_yticks([0, 25, 50, 75, 100])
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}%"))
    top.set_xticks(xs)
    top.set_xticklabels([])  # the week names are under the counts, right below
    top.set_xlim(-0.5, len(xs) - 0.5)
    counts_axis.set_xlim(-0.5, len(xs) - 0.5)
    top.tick_params(axis="y", labelsize=11)
    top.grid(axis="y", alpha=0.3)
    top.set_title(t("digest.chart_csat"), fontsize=15, loc="left")

    categories = d.complaints.now.by_category
    if categories:
        # Names beside the bars, not as tick labels: long category names would otherwise
        # push both charts to the right and shrink them on a phone.
        shown = list(reversed(categories))
        bars = bottom.barh(range(len(shown)), [count for _, count in shown], color=COMPLAINTS_COLOR, height=0.6)
        bottom.bar_label(bars, labels=[f"{label(language, 'category', name)} · {fmt_number(count, language)}"
                                       for name, count in shown], padding=6, fontsize=12)
        bottom.set_xlim(0, max(count for _, count in shown) * 2.0)
        bottom.set_yticks([])
        bottom.set_xticks([])
        bottom.spines[["top", "right", "bottom"]].set_visible(False)
    else:
        bottom.text(0.5, 0.5, t("digest.chart_no_complaints"), transform=bottom.transAxes, ha="center",
                    va="center", fontsize=14)
        bottom.set_axis_off()
    bottom.set_title(t("digest.chart_complaints", week=str(d.week)), fontsize=15, loc="left")
    fig.tight_layout()
    return fig


def _day(at: datetime, tz: tzinfo) -> str:
    """A week bound (shop midnight) as the rollups' shop day."""
    return at.astimezone(tz).date().isoformat()


def vip_rule(config: Config) -> VipRule:
    policy = config.complaint_policy()
    return VipRule(policy.vip_spend_12m, policy.vip_orders_12m)


def service_for(config: Config, db: Database, clock: Clock, *, owners: bool, wake_sender: Callable[[], None] = lambda: None) -> DigestService:
    """The service as the config describes it; `owners` False when there is no channel to
    send on (reports only: CLI and HTTP)."""
    return DigestService(
        db, clock, DigestSettings.from_config(config),
        timezone=config.tz, shop_name=config.shop.name, vip=vip_rule(config),
        owner_chat_ids=config.agents.owner_chat_ids if owners else (),
        wake_sender=wake_sender,
    )


def default_png_path(week: Week, database_path: str) -> Path:
    """Where `feedbot digest --format png` writes without --output: a digests/ folder next to
    the database (never the current folder, which may be a clone of the repository)."""
    folder = Path(database_path).resolve().parent / "digests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"digest-{week}.png"
