"""The weekly digests of issue 21, from plain figures: the owners' feedback page (programs,
ideas, the journey view, CSAT per staff member), each department's slice (its complaint
categories and idea topics) and each store manager's (the store's CSAT, complaints, staff).

The journey view puts the stages side by side in the order a customer lives them and points
at the first stage whose satisfaction dropped this week: a drop at delivery that began at
the order stage is fixed at the order stage, not at the last touchpoint."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from flows.digest import Week
from flows.ideas import topic_label
from flows.programs import SCALES, ces, nps
from flows.texts import category_label, fmt_number, has, text

HIGH = 4  # a CSAT answer of 4 or 5 is "satisfied"


@dataclass(frozen=True)
class Tally:
    answers: int = 0
    satisfied: int = 0

    @property
    def pct(self) -> float | None:
        return 100.0 * self.satisfied / self.answers if self.answers else None


@dataclass(frozen=True)
class StageView:
    stage: str
    now: Tally
    before: Tally
    complaints: int = 0
    top_category: str | None = None


@dataclass(frozen=True)
class Journey:
    stages: tuple[StageView, ...]
    drop_started_at: str | None  # the first stage (journey order) whose CSAT dropped this week


def journey(
    order: Sequence[str], now: Mapping[str, Tally], before: Mapping[str, Tally],
    complaints: Mapping[str, Mapping[str, int]], *, drop_points: float, min_answers: int,
) -> Journey:
    """Stages in journey order (stages not in `order`, e.g. none named, after them); the drop
    starts at the first stage with enough answers both weeks whose CSAT fell by drop_points."""
    names = [s for s in order if s in now or s in before or s in complaints]
    names += sorted(s for s in {*now, *before, *complaints} if s not in order)
    views = []
    started = None
    for stage in names:
        this, last = now.get(stage, Tally()), before.get(stage, Tally())
        by_category = complaints.get(stage, {})
        top = max(sorted(by_category), key=lambda c: by_category[c]) if by_category else None
        views.append(StageView(stage, this, last, sum(by_category.values()), top))
        if started is None and this.answers >= min_answers and last.answers >= min_answers:
            assert this.pct is not None and last.pct is not None
            if last.pct - this.pct >= drop_points:
                started = stage
    return Journey(tuple(views), started)


@dataclass(frozen=True)
class ProgramFigures:
    """One program's answers this week: (score, choice) -> count."""

    name: str
    kind: str
    counts: Mapping[tuple[int | None, str | None], int] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        return sum(self.counts.values())

    def scores(self) -> list[int]:
        return [s for (s, _), n in self.counts.items() if s is not None for _ in range(n)]

    def choices(self) -> list[tuple[str, int]]:
        tally: dict[str, int] = {}
        for (_, c), n in self.counts.items():
            if c is not None:
                tally[c] = tally.get(c, 0) + n
        return sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))


def program_line(p: ProgramFigures, lang: str) -> str:
    n = fmt_number(p.answers, lang)
    if p.kind == "nps":
        s = nps(p.scores())
        value = "–" if s.score is None else fmt_number(s.score, lang)
        return text(lang, "fd.nps", name=p.name, score=value, answers=n, promoters=s.promoters, detractors=s.detractors)
    if p.kind == "ces":
        c = ces(p.scores())
        mean = "–" if c.mean is None else fmt_number(c.mean, lang, 1)
        easy = "–" if c.easy_share is None else fmt_number(c.easy_share, lang)
        return text(lang, "fd.ces", name=p.name, mean=mean, easy=easy, answers=n)
    if p.kind == "csat" and p.kind in SCALES:
        scores = p.scores()
        t = Tally(len(scores), sum(1 for s in scores if s >= HIGH))
        return text(lang, "fd.csat", name=p.name, pct=_pct(t, lang), answers=n)
    if p.kind in ("usage", "brand"):
        top = ", ".join(f"{c} ({fmt_number(k, lang)})" for c, k in p.choices()[:4]) or "–"
        return text(lang, "fd.choices", name=p.name, top=top, answers=n)
    return text(lang, "fd.answers", name=p.name, answers=n)


def _pct(t: Tally, lang: str) -> str:
    return "–" if t.pct is None else f"{fmt_number(t.pct, lang)}%"


@dataclass(frozen=True)
class OwnerPage:
    week: Week
    programs: tuple[ProgramFigures, ...]
    ideas: Mapping[str, int]  # topic -> count
    journey: Journey
    staff: Mapping[str, Tally]  # owners only: CSAT per staff member


def render_owner(page: OwnerPage, lang: str, shop: str) -> str:
    lines = [text(lang, "fd.owner_title", week=str(page.week), shop=shop)]
    if page.programs:
        lines += ["", text(lang, "fd.programs")] + [f"• {program_line(p, lang)}" for p in page.programs]
    lines += ["", text(lang, "fd.journey")] + _journey_lines(page.journey, lang)
    if page.ideas:
        lines += ["", text(lang, "fd.ideas", count=fmt_number(sum(page.ideas.values()), lang))]
        lines += [f"• {_topic(lang, t)}: {fmt_number(n, lang)}" for t, n in sorted(page.ideas.items(), key=lambda kv: -kv[1])]
    if page.staff:
        lines += ["", text(lang, "fd.staff")] + _staff_lines(page.staff, lang)
    return "\n".join(lines)


def _journey_lines(j: Journey, lang: str) -> list[str]:
    if not j.stages:
        return [text(lang, "fd.journey_empty")]
    lines = []
    for s in j.stages:
        arrow = ""
        if s.now.pct is not None and s.before.pct is not None:
            delta = s.now.pct - s.before.pct
            arrow = f" ({'+' if delta >= 0 else '−'}{fmt_number(abs(delta), lang)})"
        complaints = text(lang, "fd.stage_complaints", count=s.complaints,
                          category=category_label(lang, s.top_category)) if s.top_category else ""
        mark = " ⚠️" if s.stage == j.drop_started_at else ""
        lines.append(f"• {_stage(lang, s.stage)}: {_pct(s.now, lang)}{arrow} · {fmt_number(s.now.answers, lang)}"
                     f"{complaints}{mark}")
    if j.drop_started_at is not None:
        lines.append(text(lang, "fd.drop_started", stage=_stage(lang, j.drop_started_at)))
    return lines


def _staff_lines(staff: Mapping[str, Tally], lang: str) -> list[str]:
    ranked = sorted(staff.items(), key=lambda kv: (kv[1].pct if kv[1].pct is not None else 101, kv[0]))
    return [f"• {name}: {_pct(t, lang)} · {fmt_number(t.answers, lang)}" for name, t in ranked]


def _stage(lang: str, stage: str) -> str:
    key = f"stage.{stage}"
    return text(lang, key) if has(lang, key) else (stage.replace("_", " ").capitalize() if stage else text(lang, "stage.none"))


def _topic(lang: str, topic: str) -> str:
    return topic_label(lang, topic)


@dataclass(frozen=True)
class DepartmentPage:
    week: Week
    name: str
    complaints: Mapping[str, int]  # its categories -> count this week
    complaint_texts: tuple[str, ...]
    ideas: Mapping[str, int]  # its topics -> count
    idea_texts: tuple[str, ...]


def render_department(page: DepartmentPage, lang: str, shop: str) -> str:
    lines = [text(lang, "fd.department_title", name=page.name, week=str(page.week), shop=shop)]
    total = sum(page.complaints.values())
    lines += ["", text(lang, "fd.dept_complaints", count=fmt_number(total, lang))]
    lines += [f"• {category_label(lang, c)}: {fmt_number(n, lang)}" for c, n in sorted(page.complaints.items())]
    lines += [f"  “{t}”" for t in page.complaint_texts]
    lines += ["", text(lang, "fd.ideas", count=fmt_number(sum(page.ideas.values()), lang))]
    lines += [f"• {_topic(lang, t)}: {fmt_number(n, lang)}" for t, n in sorted(page.ideas.items())]
    lines += [f"  💡 “{t}”" for t in page.idea_texts]
    return "\n".join(lines)


@dataclass(frozen=True)
class StorePage:
    week: Week
    store: str
    now: Tally
    before: Tally
    complaints: Mapping[str, int]
    low_comments: tuple[str, ...]
    staff: Mapping[str, Tally]  # this store's staff only


def render_store(page: StorePage, lang: str, shop: str) -> str:
    lines = [text(lang, "fd.store_title", store=page.store, week=str(page.week), shop=shop), ""]
    lines.append(text(lang, "fd.store_csat", pct=_pct(page.now, lang), answers=fmt_number(page.now.answers, lang),
                      before=_pct(page.before, lang)))
    total = sum(page.complaints.values())
    lines.append(text(lang, "fd.dept_complaints", count=fmt_number(total, lang)))
    lines += [f"• {category_label(lang, c)}: {fmt_number(n, lang)}" for c, n in sorted(page.complaints.items())]
    lines += [f"  “{t}”" for t in page.low_comments]
    if page.staff:
        lines += ["", text(lang, "fd.staff")] + _staff_lines(page.staff, lang)
    return "\n".join(lines)
