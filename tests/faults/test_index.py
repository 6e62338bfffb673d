"""Issue 7: where each fault and abuse test lives (Telegram, the HTTP API, the web chat and
Zalo), and the ones that fit nowhere else.

1. Same Telegram update 2-5 times, sequential and concurrent -> one inbox row, one handling, one reply:
   here: test_the_same_update_polled_again_and_again_is_handled_once,
   test_the_same_update_received_concurrently_is_handled_once;
   tests/channels/telegram/test_webhook.py: test_redelivered_update_is_processed_once, test_concurrent_redeliveries_are_processed_once;
   tests/storage/test_storage.py: test_inbox_records_an_update_once_per_platform.
   Web chat: tests/faults/test_channels.py:
   test_the_same_web_frame_2_to_5_times_on_one_socket_and_from_two_tabs_is_handled_once (sequential and
   concurrent from two sockets of one session: one inbox row, one echo, one reply); tests/channels/web/test_server.py:
   test_a_resent_frame_is_recorded_once. Zalo: tests/channels/zalo/test_channel.py: test_redelivered_events_are_processed_once
   (2 sequential + 4 concurrent redeliveries).
2. kill -9 mid-complaint and mid-survey-batch (real process):
   tests/faults/test_process.py: test_kill_9_mid_complaint_resumes_at_the_same_step,
   test_kill_9_while_a_survey_batch_is_sending (duplicates <= in flight; in-flight rows are 'unknown',
   never resent; integrity_check ok); tests/e2e/test_telegram.py:
   test_update_recorded_before_a_crash_is_handled_at_restart; tests/outbox/test_sender.py:
   test_rows_left_sending_by_a_crash_become_unknown_not_resent.
   Web chat: tests/faults/test_channels.py:
   test_kill_9_mid_complaint_on_the_web_resumes_at_the_same_step_and_the_page_gets_what_it_missed.
3. Bot down across due times: overdue sent after restart, past max lateness expire unsent:
   here: test_down_across_due_times_overdue_go_out_and_too_late_ones_never;
   tests/faults/test_process.py: test_kill_9_while_a_survey_batch_is_sending (its 3 late surveys);
   tests/e2e/test_telegram.py: test_restart_sends_a_survey_that_came_due_while_down_exactly_once.
4. 429 retry_after, 500 x3 then 200, dead letter + alert, read timeout -> unknown: tests/outbox/test_sender.py:
   test_429_retry_after_is_honoured_and_does_not_use_an_attempt, test_429_pauses_every_chat_not_only_the_one_that_hit_it,
   test_5xx_is_retried_with_backoff_then_sent_once (500, 500, 502, then 200: sent once),
   test_past_the_retry_limit_the_row_is_a_dead_letter (the 'failed' row and an ERROR "dead letter" log line:
   the alert), test_read_timeout_after_the_server_got_it_is_not_resent.
5. 60 customer messages in a minute into one ticket: tests/e2e/test_complaints.py:
   test_a_burst_of_customer_messages_is_coalesced_not_lost (fake enforces 20/min to the group: zero 429,
   at most 4 group messages, all 60 present in order).
6. Webhook and API abuse: tests/faults/test_input.py (secret, changed byte, malformed JSON, content type,
   field types, 2 MB, 10,000 characters, SQL injection in every purchase field, NFC/NFD stored as received);
   tests/http/test_api.py: test_bad_input_is_refused_and_stores_nothing and
   test_sql_looking_and_vietnamese_text_is_stored_byte_for_byte; tests/channels/telegram/test_webhook.py.
   Web chat: tests/faults/test_channels.py: test_web_sql_text_and_vietnamese_nfc_nfd_are_stored_and_relayed_byte_for_byte,
   test_web_10000_characters_are_refused_with_an_error_and_nothing_is_stored (too_long / too_large, nothing
   stored, the socket stays usable); tests/channels/web/test_server.py: test_malformed_frames_get_an_error_record_nothing_and_the_socket_stays_usable,
   test_oversized_messages_and_frames (1009 far over the limit), test_rate_limit_per_session_across_tabs,
   test_a_visitor_never_reads_another_visitors_conversation, test_widget_origins.
   Zalo: tests/faults/test_channels.py: test_zalo_sql_nfc_nfd_and_10000_characters_are_stored_whole_and_relayed_unchanged;
   tests/channels/zalo/test_channel.py: test_bad_signatures_are_401_and_nothing_is_recorded, test_stale_or_future_signed_events_get_200_and_are_dropped,
   test_malformed_bodies_and_wrong_content_type, test_a_broken_event_is_acknowledged_and_kept_with_its_error,
   test_the_test_post_of_a_saved_webhook_gets_200_and_changes_nothing.
7. Authorization: tests/e2e/test_complaints.py: test_only_agents_act_and_refusals_are_audited (non-agent
   buttons and replies, anonymous admin, a customer crafting the agents' button: refused and audited),
   test_a_customer_cannot_see_or_rate_another_customers_ticket; here:
   test_a_customer_guessing_ticket_numbers_is_refused_and_audited; tests/flows/test_desk.py (every button,
   malformed data, unicode digits).
8. Secrets in logs: tests/secrets_guard.py (session-wide: every log record of the run and every log file of
   the real-process tests); here: test_the_secrets_guard_catches_a_leaked_token; tests/cli/test_main.py:
   test_real_process_serves_telegram_and_never_logs_the_token.
9. SIGTERM under load: tests/faults/test_process.py: test_sigterm_under_load_finishes_in_flight_work_and_loses_nothing
   (long polling, sends and purchases in flight), test_sigterm_with_webhook_requests_in_flight_loses_and_repeats_nothing.
   Web chat: tests/faults/test_channels.py:
   test_sigterm_while_web_frames_arrive_exits_0_and_the_visitor_resumes_losing_and_repeating_nothing.
10. 8 concurrent writers for 60 s, zero "database is locked": tests/faults/test_writers.py (marked slow).
"""
from __future__ import annotations

import ast
import asyncio
import logging
import re
import sys
from datetime import timedelta
from pathlib import Path

from tests import secrets_guard
from tests.conftest import API_TOKEN, BOT_TOKEN, Harness, hours, make_config
from tests.e2e.test_complaints import CUSTOMER, GROUP, OTHER_CUSTOMER, buttons, desk, file_complaint_after_low_score  # noqa: F401

USER = 880001


# --- item 1 ------------------------------------------------------------------------------------

async def test_the_same_update_polled_again_and_again_is_handled_once(harness, tg):
    """Telegram redelivers by long polling when the offset was not confirmed: 2 to 5 times."""
    await harness.start()
    for times, user in zip(range(2, 6), range(USER, USER + 4)):
        update = tg.make_message_update(user, "xin chào")
        for _ in range(times):
            tg.push_update(dict(update))
            await harness.processed(update["update_id"])
            await asyncio.sleep(0.05)  # let the bot poll it again
        await tg.wait_for_messages(user, 1)
    await harness.app.sender.drain(5)
    await asyncio.sleep(0.2)
    for user in range(USER, USER + 4):
        assert len(tg.sent_messages(user)) == 1
    rows = await harness.rows("SELECT update_id, processed_at, error FROM inbox")
    assert len(rows) == 4 and all(r["processed_at"] and r["error"] is None for r in rows)


async def test_the_same_update_received_concurrently_is_handled_once(harness, tg):
    await harness.start()
    for times in range(2, 6):
        user = USER + 10 + times
        update = tg.make_message_update(user, "/complaint")
        results = await asyncio.gather(*(harness.app.engine.receive("telegram", dict(update)) for _ in range(times)))
        assert sorted(results) == [False] * (times - 1) + [True]  # one handling
    await harness.app.sender.drain(5)
    for times in range(2, 6):
        assert len(tg.sent_messages(USER + 10 + times)) == 1  # one reply
    assert len(await harness.rows("SELECT id FROM inbox")) == 4
    assert len(await harness.rows("SELECT contact_id FROM conversations WHERE state != 'idle'")) == 4


# --- item 3 ------------------------------------------------------------------------------------

async def test_down_across_due_times_overdue_go_out_and_too_late_ones_never(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    try:
        await h.start()
        links = {}
        for user, order in ((USER, "EARLY-1"), (USER + 1, "LATER-1")):
            _, body = await h.post_purchase(order, customer={"external_id": f"C-{order}", "name": "Lan"},
                                            purchased_at=clock.now().isoformat())
            links[user] = body["links"]["telegram"].split("start=")[1]
            await h.customer_says(user, f"/start {links[user]}")
            clock.advance(hours(1))  # EARLY-1 is due at START + 3 h, LATER-1 at START + 4 h
        await h.app.sender.drain(5)
        await h.stop()

        # Down until 30 minutes before LATER-1 is 48 h late (survey.max_lateness): EARLY-1 is past it.
        clock.advance(hours(4 + 48 - 2) - timedelta(minutes=30))
        await h.start(scheduler=True)  # the jobs run at start
        await tg.wait_for_messages(USER + 1, 2)
        await asyncio.sleep(0.3)
        assert len(tg.sent_messages(USER)) == 1  # the welcome only
        surveys = await h.rows("SELECT p.order_id, s.status, s.skip_reason FROM surveys s"
                               " JOIN purchases p ON p.id = s.purchase_id ORDER BY p.order_id")
        assert surveys == [
            {"order_id": "EARLY-1", "status": "skipped", "skip_reason": "too_late"},
            {"order_id": "LATER-1", "status": "sent", "skip_reason": None},
        ]
        await h.stop()
        await h.start(scheduler=True)
        await asyncio.sleep(0.3)
        assert [len(tg.sent_messages(u)) for u in (USER, USER + 1)] == [1, 2]  # never twice
    finally:
        await h.close()


# --- item 7 ------------------------------------------------------------------------------------

async def test_a_customer_guessing_ticket_numbers_is_refused_and_audited(desk, tg):  # noqa: F811
    await file_complaint_after_low_score(desk, tg)
    card = (await tg.wait_for_messages(GROUP, 1))[0]
    await desk.deliver(tg.make_callback_update(9001, "dk:resolve:1", card.message_id, chat_id=GROUP))
    await tg.wait_for_messages(CUSTOMER, 10)  # resolved: the customer is asked to rate it

    await desk.customer_says(OTHER_CUSTOMER, "/help")  # a chat of its own (a plain message would open a question)
    for data in ("kn:r:1:5", "kn:re:1", "kn:r:2:1", "kn:re:999999"):  # someone else's, and ones that do not exist
        await desk.deliver(tg.make_callback_update(OTHER_CUSTOMER, data, 1))
    ticket = (await desk.rows("SELECT status, resolution_score, reopened_count FROM tickets"))[0]
    assert ticket == {"status": "resolved", "resolution_score": None, "reopened_count": 0}
    denied = await desk.rows("SELECT ticket_id, actor, body FROM ticket_events WHERE action = 'denied' ORDER BY id")
    assert [(d["ticket_id"], d["actor"], d["body"]) for d in denied] == [
        (1, "customer", "button:kn:r:1:5"), (1, "customer", "button:kn:re:1"),
        (None, "customer", "button:kn:r:2:1"), (None, "customer", "button:kn:re:999999"),
    ]
    # The owner's own buttons still work and are not audited as refusals.
    rate = tg.sent_messages(CUSTOMER)[9]
    await desk.customer_taps(CUSTOMER, buttons(rate)[4]["callback_data"], rate.message_id)
    assert (await desk.rows("SELECT resolution_score FROM tickets"))[0]["resolution_score"] == 5
    assert len(await desk.rows("SELECT id FROM ticket_events WHERE action = 'denied'")) == 4


# --- item 8 ------------------------------------------------------------------------------------

def test_the_secrets_guard_catches_a_leaked_token():
    secrets = {BOT_TOKEN: "the bot token", API_TOKEN: "the API token"}
    logger = logging.getLogger("tests.leak")
    leaked = logger.makeRecord("tests.leak", logging.INFO, __file__, 1, "calling %s", (f"/bot{BOT_TOKEN}/getMe",), None)
    try:
        raise RuntimeError(f"Authorization: Bearer {API_TOKEN}")
    except RuntimeError:
        failed = logger.makeRecord("tests.leak", logging.ERROR, __file__, 2, "request failed", (), sys.exc_info())
    clean = logger.makeRecord("tests.leak", logging.INFO, __file__, 3, "sent %d messages", (3,), None)
    texts = [(name, secrets_guard.record_text(r)) for name, r in (("leaked", leaked), ("failed", failed), ("clean", clean))]
    assert secrets_guard.find_leaks(texts, secrets) == [
        "the bot token appears in leaked", "the API token appears in failed",
    ]
    # And the session's own list knows the test secrets (checked at the end of the run).
    secrets_guard._default_secrets()
    assert {BOT_TOKEN, BOT_TOKEN.split(":")[1], API_TOKEN} <= set(secrets_guard._secrets)


def test_the_secrets_guard_reads_process_log_files(tmp_path):
    log_file = tmp_path / "bot.log"
    log_file.write_text(f"2026-11-23 INFO telegram: POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage\n")
    found = secrets_guard.find_leaks([(str(log_file), log_file.read_text())], {BOT_TOKEN: "the bot token"})
    assert found == [f"the bot token appears in {log_file}"]


def test_every_test_the_map_names_exists():
    """The map above names tests by function; a renamed or deleted one makes it lie."""
    defined = {
        node.name
        for path in Path(__file__).parents[1].rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
    }
    text = re.sub(r"tests/[\w/]+\.py", "", __doc__ or "")  # file names are not test names
    named = set(re.findall(r"\btest_[a-z0-9_]+\b", text))
    assert len(named) > 30
    assert sorted(named - defined) == []
