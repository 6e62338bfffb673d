"""Survey programs: what each kind asks, who gets it, when, how answers are scored, and which
one of a customer's pending surveys goes out under the global per-customer limit.

A program survey, as the customer lives it:
1. The question of the program's kind: a scale (csat 1-5, nps 0-10, ces 1-7), a choice among
   the shop's options plus "other" (usage, brand), or free text (ideas).
2. The answer: recorded; then one follow-up in free text where the kind has one (nps: why;
   csat, ces: what would make it better; usage: what, after "other"; brand: one word), with
   a Skip button.
3. The follow-up text: stored as the survey's comment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Mapping, Sequence

from flows.buttons import ProgramChoice
from flows.model import (
    AnswerChoice,
    Button,
    Context,
    Decision,
    EditChoiceMessage,
    Inbound,
    ProgramSurveyView,
    RecordProgramAnswer,
    Reply,
    SetConversation,
)
from flows.texts import text

KINDS = ("csat", "nps", "ces", "usage", "brand", "ideas")
TRIGGERS = ("after_purchase", "days_after_purchase", "complaint_resolved", "every", "on_demand")
# How much one answer of each kind is worth when a customer has several due at once and the
# global limit lets only one through: the one about something that just happened to them
# (a resolved complaint, a purchase) before the periodic ones.
DEFAULT_PRIORITY = {"ces": 60, "csat": 50, "nps": 40, "usage": 30, "brand": 20, "ideas": 10}
SCALES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
CHOICE_KINDS = ("usage", "brand")
FOLLOW_UP = {"csat": True, "nps": True, "ces": True, "usage": False, "brand": True, "ideas": False}

STATE_PREFIX = "pg."
AWAITING_ANSWER = "pg.answer"
AWAITING_TEXT = "pg.text"
SKIP = ProgramChoice.SKIP
OTHER = ProgramChoice.OTHER


@dataclass(frozen=True)
class Trigger:
    kind: str  # one of TRIGGERS
    delay: timedelta = timedelta(hours=3)  # after_purchase, complaint_resolved: how long after
    days: int = 0  # days_after_purchase: N days; every: every N days
    active_days: int = 90  # every: a customer with a purchase in this many days is active


@dataclass(frozen=True)
class Audience:
    """Empty tuples: everyone."""

    touchpoints: tuple[str, ...] = ()
    stores: tuple[str, ...] = ()
    tiers: tuple[str, ...] = ()  # vip | regular
    channels: tuple[str, ...] = ()  # telegram | zalo | web

    def takes_purchase(self, touchpoint: str | None, store: str | None) -> bool:
        return (not self.touchpoints or touchpoint in self.touchpoints) and (not self.stores or store in self.stores)

    def takes_customer(self, tier: str, channel: str) -> bool:
        return (not self.tiers or tier in self.tiers) and (not self.channels or channel in self.channels)


@dataclass(frozen=True)
class ProgramSpec:
    name: str
    kind: str
    trigger: Trigger
    audience: Audience = field(default_factory=Audience)
    # language -> key -> text; keys: question, follow_up, thanks (any missing: the catalog's)
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # language -> the choices (usage, brand)
    fatigue: timedelta = timedelta(days=30)  # this program asks one customer at most once per this period
    priority: int = 0
    max_lateness: timedelta = timedelta(days=3)  # due this long ago and still not sent: skipped
    expires_after: timedelta = timedelta(hours=72)
    # ces after a resolved complaint: "follow" the resolution rating (asked after `delay`, under
    # the global limit) or "replace" it (asked at once, where the rating would have been)
    resolution_rating: str = "follow"

    def wording(self, language: str, key: str, **params: object) -> str:
        own = self.texts.get(language, {}).get(key)  # none in this language: the catalog's, in it
        if own:
            try:
                return own.format(**params)
            except (KeyError, IndexError, ValueError):
                return own  # a shop's text with a stray brace: shown as written
        return text(language, f"program.{self.kind}.{key}", **params)

    def choices(self, language: str) -> tuple[str, ...]:
        return self.options.get(language) or self.options.get("vi") or _default_options(self.kind, language)


def _default_options(kind: str, language: str) -> tuple[str, ...]:
    raw = text(language, f"program.{kind}.options") if kind in CHOICE_KINDS else ""
    return tuple(o for o in raw.split("|") if o)


# --- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NpsScore:
    answers: int
    promoters: int  # 9-10
    passives: int  # 7-8
    detractors: int  # 0-6

    @property
    def score(self) -> float | None:
        """% promoters - % detractors, from -100 to 100; None without answers."""
        if not self.answers:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.answers


def nps(scores: Iterable[int]) -> NpsScore:
    promoters = passives = detractors = answers = 0
    for s in scores:
        if not 0 <= s <= 10:
            raise ValueError(f"not an NPS answer: {s!r}")
        answers += 1
        if s >= 9:
            promoters += 1
        elif s >= 7:
            passives += 1
        else:
            detractors += 1
    return NpsScore(answers, promoters, passives, detractors)


@dataclass(frozen=True)
class CesScore:
    answers: int
    total: int
    easy: int  # 5-7 on the 7-point scale: "easy"
    hard: int  # 1-3

    @property
    def mean(self) -> float | None:
        return self.total / self.answers if self.answers else None

    @property
    def easy_share(self) -> float | None:
        """% of answers that found it easy (5-7)."""
        return 100.0 * self.easy / self.answers if self.answers else None


def ces(scores: Iterable[int]) -> CesScore:
    answers = total = easy = hard = 0
    for s in scores:
        if not 1 <= s <= 7:
            raise ValueError(f"not a CES answer: {s!r}")
        answers += 1
        total += s
        easy += s >= 5
        hard += s <= 3
    return CesScore(answers, total, easy, hard)


# --- the global limit and which pending survey wins ----------------------------------------


@dataclass(frozen=True)
class Pending:
    """A survey due for one customer: a program's (source "program") or the purchase CSAT ("csat")."""

    id: int
    source: str  # program | csat
    priority: int
    due_at: datetime
    deadline: datetime  # after this it is too late to ask


@dataclass(frozen=True)
class Choice:
    send: Pending | None  # the one that goes out now (None: the limit is reached)
    wait: tuple[tuple[Pending, datetime], ...]  # postponed until this time (the next free slot)
    drop: tuple[Pending, ...]  # too late by the next free slot: skipped for fatigue


def next_free_slot(sent: Sequence[datetime], now: datetime, limit: int, period: timedelta) -> datetime:
    """The first moment at or after `now` when fewer than `limit` questions were sent in the
    preceding `period` (sent: send times, any order)."""
    if limit <= 0:
        return datetime.max.replace(tzinfo=now.tzinfo)
    recent = sorted((t for t in sent if t > now - period), reverse=True)
    if len(recent) < limit:
        return now
    return recent[limit - 1] + period  # when the limit-th newest falls out of the window


def choose(pending: Sequence[Pending], sent: Sequence[datetime], now: datetime, limit: int, period: timedelta) -> Choice:
    """Of one customer's due surveys, the most valuable goes out if the limit allows (higher
    priority first, then the one closest to being too late, then the oldest); the others wait
    for the next free slot, or are dropped if that is past their deadline. Never more than
    `limit` questions in any `period`, counted over every program and channel."""
    if not pending:
        return Choice(None, (), ())
    ranked = sorted(pending, key=lambda p: (-p.priority, p.deadline, p.due_at, p.source, p.id))
    slot = next_free_slot(sent, now, limit, period)
    send = None
    rest = ranked
    if slot <= now:
        send, rest = ranked[0], ranked[1:]
        slot = next_free_slot([*sent, now], now, limit, period)
        if slot <= now:  # limit > 1: the next one may go out at once, on the next pass
            slot = now + timedelta(seconds=1)
    wait = tuple((p, slot) for p in rest if slot <= p.deadline)
    drop = tuple(p for p in rest if slot > p.deadline)
    return Choice(send, wait, drop)


def deadline_of(due_at: datetime, max_lateness: timedelta) -> datetime:
    return due_at + max_lateness


def tier_of(spend_12m: float, orders_12m: int, vip_spend: float, vip_orders: int) -> str:
    return "vip" if spend_12m >= vip_spend or orders_12m >= vip_orders else "regular"


# --- 1. the question -----------------------------------------------------------------------


def question(*, survey_id: int, spec: ProgramSpec, shop: str, order: str, language: str) -> list[Decision]:
    ask = spec.wording(language, "question", shop=shop, order=order)
    if spec.kind == "ideas":
        skip = Button(text(language, "csat.skip"), ProgramChoice(survey_id, SKIP).pack())
        return [
            Reply(ask, buttons=((skip,),)),
            SetConversation(AWAITING_TEXT, {"program_survey_id": survey_id, "first": True}),
        ]
    return [
        Reply(ask, buttons=answer_buttons(survey_id, spec, language)),
        SetConversation(AWAITING_ANSWER, {"program_survey_id": survey_id}),
    ]


def answer_buttons(survey_id: int, spec: ProgramSpec, language: str) -> tuple[tuple[Button, ...], ...]:
    if spec.kind in SCALES:
        low, high = SCALES[spec.kind]
        buttons = [Button(str(s), ProgramChoice(survey_id, str(s)).pack()) for s in range(low, high + 1)]
        width = 6 if len(buttons) > 7 else len(buttons)  # 0-10: two rows, as a phone shows them
        return tuple(tuple(buttons[i:i + width]) for i in range(0, len(buttons), width))
    rows = [(Button(label, ProgramChoice(survey_id, f"o{i}").pack()),) for i, label in enumerate(spec.choices(language))]
    rows.append((Button(text(language, "program.other"), ProgramChoice(survey_id, OTHER).pack()),))
    return tuple(rows)


def referenced_survey_id(event: Inbound, state: str, data: Mapping[str, object]) -> int | None:
    if event.choice is not None:
        choice = ProgramChoice.unpack(event.choice)
        return choice.survey_id if choice else None
    if state.startswith(STATE_PREFIX):
        value = data.get("program_survey_id")
        return value if isinstance(value, int) else None
    return None


def owns_choice(data: str) -> bool:
    return ProgramChoice.owns(data)


# --- 2. an answer --------------------------------------------------------------------------


def on_choice(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    choice = ProgramChoice.unpack(event.choice or "")
    survey = ctx.program_survey
    if choice is None or survey is None or survey.survey_id != choice.survey_id:
        return [AnswerChoice(text(lang, "csat.closed"))]
    spec = survey.spec
    if choice.value == SKIP:
        decisions: list[Decision] = [AnswerChoice()]
        if ctx.conversation.state.startswith(STATE_PREFIX) and ctx.conversation.data.get("program_survey_id") == survey.survey_id:
            decisions += [SetConversation("idle"), Reply(text(lang, "csat.skipped"))]
        return decisions
    if survey.status == "answered" and not (choice.value == OTHER and survey.choice is None):
        return [AnswerChoice(text(lang, "csat.already_answered"))]
    if survey.status != "sent":
        return [AnswerChoice(text(lang, "csat.closed")), EditChoiceMessage(text(lang, "csat.closed"))]
    asked = _say(survey, ctx, "question")
    if choice.value == OTHER:
        if spec.kind not in CHOICE_KINDS:
            return [AnswerChoice()]
        label = text(lang, "program.other")
        return [
            AnswerChoice(),
            RecordProgramAnswer(survey.survey_id, choice=OTHER),
            EditChoiceMessage(f"{asked}\n\n{text(lang, 'program.chosen', answer=label)}"),
            Reply(_say(survey, ctx, "other"), buttons=_skip_row(survey.survey_id, lang)),
            SetConversation(AWAITING_TEXT, _text_state(survey.survey_id, ctx)),
        ]
    answer = _parse_value(choice.value, spec, lang)
    if answer is None:
        return [AnswerChoice()]
    score, picked = answer
    shown = str(score) if score is not None else picked
    return [
        AnswerChoice(),
        *_recorded(survey, score, picked, ctx),
        EditChoiceMessage(f"{asked}\n\n{text(lang, 'program.chosen', answer=shown)}"),
    ]


def _parse_value(value: str, spec: ProgramSpec, lang: str) -> tuple[int | None, str | None] | None:
    if spec.kind in SCALES:
        low, high = SCALES[spec.kind]
        if value.isdigit() and low <= int(value) <= high:
            return int(value), None
        return None
    if spec.kind in CHOICE_KINDS and value.startswith("o") and value[1:].isdigit():
        options = spec.choices(lang)
        index = int(value[1:])
        if index < len(options):
            return None, options[index]
    return None


def _recorded(survey: ProgramSurveyView, score: int | None, picked: str | None, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    spec = survey.spec
    decisions: list[Decision] = [RecordProgramAnswer(survey.survey_id, score=score, choice=picked)]
    if FOLLOW_UP[spec.kind]:
        key = "follow_up_low" if _low(spec.kind, score) else "follow_up"
        decisions += [
            Reply(f"{_say(survey, ctx, 'thanks')}\n{_say(survey, ctx, key)}", buttons=_skip_row(survey.survey_id, lang)),
            SetConversation(AWAITING_TEXT, _text_state(survey.survey_id, ctx)),
        ]
    else:
        decisions += [SetConversation("idle"), Reply(_say(survey, ctx, "thanks"))]
    return decisions


def _say(survey: ProgramSurveyView, ctx: Context, key: str) -> str:
    return survey.spec.wording(ctx.contact.language, key, shop=ctx.shop_name, order=survey.order_id or "")


def _low(kind: str, score: int | None) -> bool:
    """An answer that calls for "what went wrong" rather than "what could be better"."""
    if score is None:
        return False
    return {"csat": score <= 3, "nps": score <= 6, "ces": score <= 3}.get(kind, False)


def _skip_row(survey_id: int, lang: str) -> tuple[tuple[Button, ...], ...]:
    return ((Button(text(lang, "csat.skip"), ProgramChoice(survey_id, SKIP).pack()),),)


def _text_state(survey_id: int, ctx: Context) -> dict[str, object]:
    return {"program_survey_id": survey_id, "until": (ctx.now + ctx.policy.comment_window).isoformat()}


# --- text while a program survey waits -----------------------------------------------------


def on_text(event: Inbound, ctx: Context) -> list[Decision] | None:
    """Free text in a program state; None when the survey no longer waits for it."""
    survey = ctx.program_survey
    state = ctx.conversation
    lang = ctx.contact.language
    typed = event.text.strip()
    if survey is None or not typed or state.data.get("program_survey_id") != survey.survey_id:
        return None
    spec = survey.spec
    if state.state == AWAITING_ANSWER and survey.status == "sent":
        if spec.kind in SCALES and typed.isascii() and typed.isdigit():  # isdigit() alone takes "²", int() not
            low, high = SCALES[spec.kind]
            if low <= int(typed) <= high:
                return _recorded(survey, int(typed), None, ctx)
        if "?" in typed or len(typed.split()) >= 4:
            return None  # a message of its own: a person answers; the survey stays open
        return [Reply(text(lang, "program.pick"), buttons=answer_buttons(survey.survey_id, spec, lang))]
    if state.state != AWAITING_TEXT:
        return None
    if state.data.get("first"):  # an ideas program's question: the text is the answer
        if survey.status != "sent":
            return None
        return [RecordProgramAnswer(survey.survey_id, text=typed), SetConversation("idle"),
                Reply(_say(survey, ctx, "thanks"))]
    until = state.data.get("until")
    try:
        open_ = isinstance(until, str) and ctx.now < datetime.fromisoformat(until)
    except ValueError:
        open_ = False
    if not open_ or survey.status != "answered":
        return None
    return [RecordProgramAnswer(survey.survey_id, text=typed), SetConversation("idle"),
            Reply(text(lang, "csat.comment_thanks", shop=ctx.shop_name))]
