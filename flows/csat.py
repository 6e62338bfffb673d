"""The post-purchase CSAT survey, in the order the customer lives it.

1. The question: "How satisfied are you with order #…?" with buttons 1–5.
2. A score (button, or a digit typed back): recorded, thanked, and one optional
   follow-up that depends on the score (4–5: what did you like / what could be better;
   1–3: what went wrong), with a Skip button.
3. The follow-up answer: stored as the survey's comment.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flows.buttons import ComplaintStart, CsatChoice
from flows.model import (
    AnswerChoice,
    Button,
    Context,
    Decision,
    EditChoiceMessage,
    Inbound,
    RecordComment,
    RecordScore,
    Reply,
    SetConversation,
    SurveyView,
)
from flows.texts import text
from flows.tickets import looks_like_complaint
from flows.wording import DEFAULT as DEFAULT_WORDING, Wording


def complaint_start_choice(survey_id: int) -> str:
    # The complaint flow owns this button (complaint.start_choice); csat only places it.
    return ComplaintStart(survey_id).pack()


STATE_PREFIX = "csat."
AWAITING_SCORE = "csat.awaiting_score"
AWAITING_COMMENT = "csat.awaiting_comment"
SKIP = CsatChoice.SKIP
HIGH_SCORE = 4  # 4 and 5 count as satisfied, the standard CSAT cut
SCORES = range(1, 6)
_SCORE_FACES = {1: "😞", 2: "🙁", 3: "😐", 4: "🙂", 5: "😍"}


def score_choice(survey_id: int, score: int) -> str:
    return CsatChoice(survey_id, str(score)).pack()


def skip_choice(survey_id: int) -> str:
    return CsatChoice(survey_id, SKIP).pack()


def owns_choice(data: str) -> bool:
    return CsatChoice.owns(data)


def parse_choice(data: str) -> tuple[int, str] | None:
    """("csat:12:4") -> (12, "4"); None for anything malformed (data comes from outside)."""
    choice = CsatChoice.unpack(data)
    return (choice.survey_id, choice.value) if choice else None


def referenced_survey_id(event: Inbound, state: str, data: dict) -> int | None:
    """Which survey the engine should load for this event."""
    if event.choice is not None:
        parsed = parse_choice(event.choice)
        return parsed[0] if parsed else None
    if state.startswith(STATE_PREFIX):
        survey_id = data.get("survey_id")
        return survey_id if isinstance(survey_id, int) else None
    return None


# --- 1. the question -----------------------------------------------------------


def question(
    *, survey_id: int, order_id: str, shop: str, language: str, reminder: bool = False,
    touchpoint: str = "", store: str | None = None, wording: Wording = DEFAULT_WORDING,
) -> list[Decision]:
    key = "reminder" if reminder else "question"
    return [
        Reply(
            wording.text(language, key, touchpoint=touchpoint, store=store, shop=shop, order=order_id),
            buttons=(_score_buttons(survey_id),),
            survey_id=survey_id,
        ),
        SetConversation(AWAITING_SCORE, {"survey_id": survey_id}),
    ]


def _score_buttons(survey_id: int) -> tuple[Button, ...]:
    return tuple(Button(f"{s} {_SCORE_FACES[s]}", score_choice(survey_id, s)) for s in SCORES)


# --- 2. a score ----------------------------------------------------------------


def on_choice(event: Inbound, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    parsed = parse_choice(event.choice or "")
    survey = ctx.survey
    if parsed is None or survey is None or survey.survey_id != parsed[0]:
        # Malformed, or not this customer's survey: say nothing about it.
        return [AnswerChoice(text(lang, "csat.closed"))]
    _, value = parsed
    if value == SKIP:
        return _on_skip(survey, ctx)
    if survey.status == "answered":
        return [AnswerChoice(text(lang, "csat.already_answered"))]
    if survey.status != "sent":
        return [AnswerChoice(text(lang, "csat.closed")), EditChoiceMessage(text(lang, "csat.closed"))]
    score = int(value)
    chosen = _wording(ctx).text(lang, "question", touchpoint=survey.touchpoint, store=survey.store,
                                shop=ctx.shop_name, order=survey.order_id)
    return [
        AnswerChoice(),
        *_record_score(survey, score, ctx),
        # After the follow-up: the customer should not wait a pacing interval for it.
        EditChoiceMessage(f"{chosen}\n\n{text(lang, 'csat.chosen', score=score)}"),
    ]


def _record_score(survey: SurveyView, score: int, ctx: Context) -> list[Decision]:
    return [
        RecordScore(survey.survey_id, score),
        *followup(survey, score, language=ctx.contact.language, now=ctx.now, comment_window=ctx.policy.comment_window,
                  low_score=ctx.complaints.low_score, shop=ctx.shop_name, wording=_wording(ctx)),
    ]


def followup(
    survey: SurveyView, score: int, *, language: str, now: datetime, comment_window: timedelta, low_score: int,
    shop: str, wording: Wording = DEFAULT_WORDING,
) -> list[Decision]:
    """What follows a score, on the chat that gets it: thanks, the optional question for a
    comment (with Skip), and for a low score the complaint button. A tap gets it; so does a
    rating read back from ZNS when the customer has a chat open (bot/services/survey_routes.py)."""
    until = now + comment_window
    buttons: tuple[Button, ...] = (Button(text(language, "csat.skip"), skip_choice(survey.survey_id)),)
    if score <= low_score:
        # A very unhappy customer is offered a complaint: a human will answer it.
        buttons = (Button(text(language, "csat.complain"), complaint_start_choice(survey.survey_id)), *buttons)
    return [
        Reply(_followup_text(language, score, survey, wording, shop), buttons=(buttons,), survey_id=survey.survey_id),
        SetConversation(AWAITING_COMMENT, {"survey_id": survey.survey_id, "until": until.isoformat()}),
    ]


def _wording(ctx: Context) -> Wording:
    return ctx.wording if isinstance(ctx.wording, Wording) else DEFAULT_WORDING


def _followup_text(lang: str, score: int, survey: SurveyView, wording: Wording, shop: str) -> str:
    def say(key: str) -> str:
        return wording.text(lang, key, touchpoint=survey.touchpoint, store=survey.store, score=score,
                            shop=shop, order=survey.order_id)

    if score >= HIGH_SCORE:
        return f"{say('thanks_high')}\n{say('followup_high')}"
    return f"{say('thanks_low')}\n{say('followup_low')}"


def _on_skip(survey: SurveyView, ctx: Context) -> list[Decision]:
    lang = ctx.contact.language
    decisions: list[Decision] = [AnswerChoice()]
    if survey.score is not None:
        decisions.append(EditChoiceMessage(_followup_text(lang, survey.score, survey, _wording(ctx), ctx.shop_name)))
    if _awaiting_comment_for(survey, ctx):
        decisions += [SetConversation("idle"), Reply(text(lang, "csat.skipped"))]
    return decisions


# --- text while the survey is open -------------------------------------------------


def on_text(event: Inbound, ctx: Context) -> list[Decision] | None:
    """Handle free text in a survey state; None when the survey is no longer waiting for it."""
    survey = ctx.survey
    state = ctx.conversation.state
    lang = ctx.contact.language
    if survey is None:
        return None
    if state == AWAITING_SCORE and survey.status == "sent":
        typed = event.text.strip()
        if typed in {str(s) for s in SCORES}:
            return _record_score(survey, int(typed), ctx)
        if is_message(typed) or event.photos:
            return None  # a question or a message of its own: routed to a person; the survey stays open
        return [
            Reply(text(lang, "csat.pick_score"), buttons=(_score_buttons(survey.survey_id),), survey_id=survey.survey_id)
        ]
    if _awaiting_comment_for(survey, ctx) and event.text.strip():
        thanks = Reply(text(lang, "csat.comment_thanks", shop=ctx.shop_name))
        if _describes_a_problem(survey, event.text, ctx):
            button = Button(text(lang, "csat.complain"), complaint_start_choice(survey.survey_id))
            thanks = Reply(f"{thanks.text}\n{text(lang, 'csat.offer_complaint')}", buttons=((button,),))
        return [RecordComment(survey.survey_id, event.text), SetConversation("idle"), thanks]
    return None


def is_message(typed: str) -> bool:
    """Text that is not an attempt at a score ("5 sao", "ok") but a message of its own:
    a question, or a sentence (four words or more)."""
    return "?" in typed or len(typed.split()) >= 4


def _describes_a_problem(survey: SurveyView, comment: str, ctx: Context) -> bool:
    """A comment after a score below "satisfied" that names a problem ("giao trễ", "bị vỡ"):
    worth offering a complaint, unless one is open already."""
    if survey.score is None or survey.score >= HIGH_SCORE:
        return False
    if any(t.status != "resolved" and t.kind == "complaint" for t in ctx.tickets):
        return False
    return looks_like_complaint(comment, ctx.complaints.keywords)


def _awaiting_comment_for(survey: SurveyView, ctx: Context) -> bool:
    conv = ctx.conversation
    if conv.state != AWAITING_COMMENT or conv.data.get("survey_id") != survey.survey_id:
        return False
    if survey.status != "answered":
        return False
    until = conv.data.get("until")
    if not isinstance(until, str):
        return False
    try:
        return ctx.now < datetime.fromisoformat(until)
    except ValueError:  # state data is ours, but never crash on a bad row
        return False
