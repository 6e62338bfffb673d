"""The webhook worker (bot/webhooks/worker.py) against a local aiohttp receiver, on both
backends: signatures checked with the reference implementation (the `standardwebhooks`
package), the retry schedule, timeouts, 410, Retry-After, a crash mid-delivery, rotation."""
from __future__ import annotations

import asyncio
import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from bot.webhooks import events, signing
from bot.webhooks.worker import JITTER, LEASE_MARGIN, SCHEDULE, WebhookSettings, WebhookWorker, parse_retry_after, retry_delay
from storage import webhooks
from testkit.clock import FakeClock
from testkit.webhook_receiver import Answer, WebhookReceiver
from tests.conftest import BOTH, open_db

BACKENDS = BOTH

SETTINGS = WebhookSettings(timeout=timedelta(seconds=1), concurrency=4, poll_interval=timedelta(seconds=0.05))


@pytest.fixture
async def db(tmp_path, database_url):
    async with open_db(tmp_path, database_url) as database:
        yield database


@pytest.fixture
def clock() -> FakeClock:
    # Real time: the reference verifier refuses timestamps more than 5 minutes off.
    return FakeClock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
async def receiver():
    async with WebhookReceiver() as r:
        yield r


async def endpoint(db, clock, url, types=("survey.answered",), **options) -> webhooks.Endpoint:
    async with db.transaction() as tx:
        endpoint_id = await webhooks.add_endpoint(tx, url, types, signing.new_secret(), "", clock.now(), **options)
        return await webhooks.endpoint(tx, endpoint_id)


async def emit(db, clock, data=None, event_type="survey.answered") -> str | None:
    async with db.transaction() as tx:
        return await events.emit(tx, event_type, data or {"survey_id": 1, "score": 5, "comment": "Rất ngon 🍰"}, clock.now())


async def delivery(db, msg_id: str) -> dict:
    rows = await db.fetchall(
        "SELECT d.* FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id WHERE m.msg_id = ?", (msg_id,))
    assert len(rows) == 1
    return dict(rows[0])


def worker(db, clock, **changes) -> WebhookWorker:
    settings = WebhookSettings(**{**SETTINGS.__dict__, **changes})
    return WebhookWorker(db, clock, settings, rng=random.Random(7))


async def one_pass(db, clock, **changes) -> int:
    """One pass of a fresh worker; how many deliveries it claimed."""
    w = worker(db, clock, **changes)
    try:
        return await w.drain_once()
    finally:
        await w.close()


def reference_signature(secret: str, received) -> str:
    """What the reference implementation computes for this request (no clock check)."""
    ts = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), timezone.utc)
    return Webhook(secret).sign(received.headers["webhook-id"], ts, received.body)


# --- delivery and the signature ------------------------------------------------------------


async def test_a_delivery_is_signed_as_the_reference_verifies_it(db, clock, receiver):
    ep = await endpoint(db, clock, receiver.url)
    msg_id = await emit(db, clock)
    w = worker(db, clock)
    try:
        assert await w.drain_once() == 1
    finally:
        await w.close()
    (got,) = await receiver.wait_for(1)
    assert got.headers["webhook-id"] == msg_id and got.headers["Content-Type"] == "application/json"
    assert int(got.headers["webhook-timestamp"]) == int(clock.now().timestamp())
    # The reference verifier accepts it (and checks the timestamp's freshness too) ...
    body = Webhook(ep.secret).verify(got.body, got.headers)
    assert body["type"] == "survey.answered" and body["data"]["comment"] == "Rất ngon 🍰"
    assert body["timestamp"].endswith("Z") and body["id"] == msg_id  # the id in the body too (Apps Script sees no headers)
    # ... and refuses it under another secret, or with one byte of the body changed.
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(ep.secret).verify(got.body.replace(b"5", b"4"), got.headers)
    row = await delivery(db, msg_id)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_status"] == 200


async def test_events_go_only_to_active_endpoints_subscribed_to_them(db, clock, receiver):
    await endpoint(db, clock, receiver.url, ("complaint.opened",))
    assert await emit(db, clock) is None  # nobody wants survey.answered: nothing written
    assert (await db.fetchone("SELECT COUNT(*) FROM webhook_messages"))[0] == 0
    second = await endpoint(db, clock, receiver.url + "/2", ("survey.answered", "complaint.opened"))
    third = await endpoint(db, clock, receiver.url + "/3", ("complaint.opened",))
    msg_id = await emit(db, clock, event_type="complaint.opened")
    rows = await db.fetchall(
        "SELECT d.endpoint_id FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id"
        " WHERE m.msg_id = ? ORDER BY d.endpoint_id", (msg_id,))
    assert [r[0] for r in rows] == [1, second.id, third.id]
    await one_pass(db, clock)
    got = await receiver.wait_for(3)
    assert sorted(r.path for r in got) == ["/hook", "/hook/2", "/hook/3"]
    assert {r.headers["webhook-id"] for r in got} == {msg_id}  # one event, one id, on every endpoint


# --- failures and the schedule -------------------------------------------------------------


def test_the_schedule_is_standard_webhooks_with_jitter():
    assert [d.total_seconds() for d in SCHEDULE] == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    rng = random.Random(1)
    for attempts, base in enumerate(SCHEDULE, start=1):
        drawn = [retry_delay(attempts, rng) for _ in range(50)]
        assert all(base * (1 - JITTER) <= d <= base * (1 + JITTER) for d in drawn)
        assert len(set(drawn)) > 40  # spread, not one fixed wait
    assert retry_delay(len(SCHEDULE) + 1, rng) is None


async def test_5xx_is_retried_on_the_schedule_then_a_dead_letter(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    receiver.default = Answer(500)
    msg_id = await emit(db, clock)
    w = worker(db, clock)
    start = clock.now()
    waits = []
    try:
        for attempt in range(1, len(SCHEDULE) + 2):
            assert await w.drain_once() == 1, attempt
            row = await delivery(db, msg_id)
            assert row["attempts"] == attempt and row["last_status"] == 500 and "HTTP 500" in row["last_error"]
            if row["status"] == "dead":
                break
            assert row["status"] == "pending"
            due = datetime.fromisoformat(row["next_attempt_at"])
            waits.append(due - clock.now())
            assert await w.drain_once() == 0  # not before its time
            clock.set(due)
    finally:
        await w.close()
    assert row["status"] == "dead" and row["attempts"] == len(SCHEDULE) + 1  # the first try and 9 retries
    for wait, base in zip(waits, SCHEDULE):
        assert base * (1 - JITTER) <= wait <= base * (1 + JITTER)
    assert timedelta(hours=60) < clock.now() - start < timedelta(hours=92)  # ~3 days of trying
    got = await receiver.wait_for(len(SCHEDULE) + 1)
    assert {r.headers["webhook-id"] for r in got} == {msg_id}
    assert len({r.headers["webhook-timestamp"] for r in got}) == len(got)  # each attempt signed at its own time
    # A dead letter goes again on demand, same webhook-id, fresh schedule.
    receiver.default = Answer(204)
    async with db.transaction() as tx:
        assert await webhooks.redeliver(tx, msg_id, clock.now()) == [row["id"]]
    w = worker(db, clock)
    try:
        assert await w.drain_once() == 1
    finally:
        await w.close()
    again = await delivery(db, msg_id)
    assert again["status"] == "delivered" and again["attempts"] == 1
    assert receiver.received[-1].headers["webhook-id"] == msg_id


async def test_a_receiver_that_does_not_answer_in_time_is_retried(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    receiver.answers = [Answer(200, delay=0.8)]  # longer than the 0.3 s timeout
    msg_id = await emit(db, clock)
    w = worker(db, clock, timeout=timedelta(seconds=0.3))
    try:
        await w.drain_once()
        row = await delivery(db, msg_id)
        assert row["status"] == "pending" and row["last_status"] is None and "timed out after 0.3s" in row["last_error"]
        clock.set(datetime.fromisoformat(row["next_attempt_at"]))
        await w.drain_once()  # answered at once this time
    finally:
        await w.close()
    assert (await delivery(db, msg_id))["status"] == "delivered"


async def test_redirects_are_failures_not_followed(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    receiver.answers = [Answer(302, headers={"Location": receiver.url + "/elsewhere"})]
    msg_id = await emit(db, clock)
    await one_pass(db, clock)
    row = await delivery(db, msg_id)
    assert row["status"] == "pending" and row["last_status"] == 302
    assert [r.path for r in receiver.received] == ["/hook"]


async def test_an_endpoint_may_take_a_redirect_as_received(db, clock, receiver):
    """Google Apps Script runs doPost, then answers 302: such an endpoint is added --redirect-ok."""
    await endpoint(db, clock, receiver.url + "/script", redirect_ok=True)
    receiver.answers = [Answer(302, headers={"Location": receiver.url + "/echo"})]
    msg_id = await emit(db, clock)
    await one_pass(db, clock)
    row = await delivery(db, msg_id)
    assert row["status"] == "delivered" and row["last_status"] == 302
    assert [r.path for r in receiver.received] == ["/hook/script"]  # not followed


async def test_410_gone_disables_the_endpoint_and_its_queue_is_dead(db, clock, receiver):
    gone = await endpoint(db, clock, receiver.url + "/gone")
    kept = await endpoint(db, clock, receiver.url + "/kept")
    first = await emit(db, clock)
    w = worker(db, clock, batch=1)  # one delivery per pass: the 410 comes before the rest is tried
    receiver.answers = [Answer(410)]
    second = await emit(db, clock)
    try:
        assert await w.drain_once() == 1  # first, to /gone: 410
    finally:
        await w.close()
    ep = await webhooks.endpoint(db.reader, gone.id)
    assert ep.status == "disabled" and "410" in ep.disabled_reason
    statuses = {(r[0], r[1]): r[2] for r in await db.fetchall(
        "SELECT m.msg_id, d.endpoint_id, d.status FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id")}
    assert statuses[(first, gone.id)] == "dead" and statuses[(second, gone.id)] == "dead"
    assert statuses[(first, kept.id)] == "pending" and statuses[(second, kept.id)] == "pending"
    third = await emit(db, clock)  # new events skip the disabled endpoint
    assert {r[0] for r in await db.fetchall(
        "SELECT d.endpoint_id FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id WHERE m.msg_id = ?",
        (third,))} == {kept.id}
    await one_pass(db, clock)
    assert sorted(r.path for r in receiver.received) == ["/hook/gone"] + ["/hook/kept"] * 3


async def test_retry_after_is_honoured_and_holds_the_endpoint(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    receiver.answers = [Answer(429, headers={"Retry-After": "120"})]
    first = await emit(db, clock)
    w = worker(db, clock)
    try:
        await w.drain_once()
        row = await delivery(db, first)
        assert row["status"] == "pending" and datetime.fromisoformat(row["next_attempt_at"]) == clock.now() + timedelta(seconds=120)
        # Another event for the same endpoint within those 120 s waits too, without an attempt.
        clock.advance(timedelta(seconds=10))
        second = await emit(db, clock)
        assert await w.drain_once() == 1
        held = await delivery(db, second)
        assert held["status"] == "pending" and held["attempts"] == 0
        assert datetime.fromisoformat(held["next_attempt_at"]) == clock.now() + timedelta(seconds=110)
        assert receiver.count == 1
        clock.advance(timedelta(seconds=110))
        assert await w.drain_once() == 2
    finally:
        await w.close()
    assert (await delivery(db, first))["status"] == "delivered" and (await delivery(db, second))["status"] == "delivered"
    assert (await delivery(db, second))["attempts"] == 1


def test_retry_after_as_seconds_or_http_date_capped_at_a_day():
    now = datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc)
    assert parse_retry_after("30", now) == timedelta(seconds=30)
    assert parse_retry_after("Sat, 05 Dec 2026 08:02:00 GMT", now) == timedelta(minutes=2)
    assert parse_retry_after("Fri, 04 Dec 2026 08:02:00 GMT", now) == timedelta(0)  # in the past: now
    assert parse_retry_after("999999999", now) == timedelta(hours=24)
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    assert parse_retry_after("²", now) is None  # a receiver's odd header: unreadable, not an error


async def test_503_with_an_http_date_retry_after(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    later = clock.now() + timedelta(minutes=7)
    receiver.answers = [Answer(503, headers={"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")})]
    msg_id = await emit(db, clock)
    await one_pass(db, clock)
    row = await delivery(db, msg_id)
    assert datetime.fromisoformat(row["next_attempt_at"]) == later and row["last_status"] == 503


# --- a crash mid-delivery --------------------------------------------------------------------


async def test_a_crash_mid_delivery_redelivers_with_the_same_webhook_id(db, clock, receiver):
    ep = await endpoint(db, clock, receiver.url)
    msg_id = await emit(db, clock)
    receiver.hold = asyncio.Event()  # the request arrives; the answer never does (the worker dies first)
    w = worker(db, clock)
    task = asyncio.create_task(w.drain_once())
    await asyncio.wait_for(receiver.arrived.wait(), 5)
    task.cancel()  # the process dies: nothing after the claim is written
    with pytest.raises(asyncio.CancelledError):
        await task
    await w.close()
    receiver.hold.set()
    row = await delivery(db, msg_id)
    assert row["status"] == "sending" and row["attempts"] == 1  # claimed, outcome unknown

    w = worker(db, clock)  # the restarted worker
    try:
        assert await w.drain_once() == 0  # its lease still holds (another worker might be on it)
        clock.advance(SETTINGS.timeout + LEASE_MARGIN)
        assert await w.drain_once() == 1
    finally:
        await w.close()
    first, second = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == msg_id
    assert first.body == second.body
    Webhook(ep.secret).verify(second.body, second.headers)
    row = await delivery(db, msg_id)
    assert row["status"] == "delivered" and row["attempts"] == 2


async def test_the_running_worker_delivers_what_is_written_while_it_sleeps(db, clock, receiver):
    await endpoint(db, clock, receiver.url)
    w = worker(db, clock)
    task = asyncio.create_task(w.run())
    try:
        ids = [await emit(db, clock, {"n": n}) for n in range(5)]
        got = await receiver.wait_for(5)
        assert sorted(r.headers["webhook-id"] for r in got) == sorted(ids)
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)


# --- rotation ----------------------------------------------------------------------------------


async def test_rotation_signs_with_both_keys_until_the_overlap_ends(db, clock, receiver):
    ep = await endpoint(db, clock, receiver.url)
    old = ep.secret
    new = signing.new_secret()
    async with db.transaction() as tx:
        assert await webhooks.rotate_secret(tx, ep.id, new, clock.now() + timedelta(hours=24), clock.now())
    await emit(db, clock)
    w = worker(db, clock)
    try:
        await w.drain_once()
        (got,) = await receiver.wait_for(1)
        signatures = got.headers["webhook-signature"].split(" ")
        assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
        # A receiver on either key accepts it (the reference verifier tries each signature).
        Webhook(old).verify(got.body, got.headers)
        Webhook(new).verify(got.body, got.headers)
        assert signatures == [reference_signature(new, got), reference_signature(old, got)]

        clock.advance(timedelta(hours=24, seconds=1))  # the overlap is over: the new key only
        await emit(db, clock)
        await w.drain_once()
    finally:
        await w.close()
    later = (await receiver.wait_for(2))[1]
    assert later.headers["webhook-signature"] == reference_signature(new, later)
    assert reference_signature(old, later) not in later.headers["webhook-signature"]


def test_secrets_are_whsec_base64_of_32_random_bytes():
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith("whsec_") and len(signing.key(a)) == 32
    for bad in ("abc", "whsec_***", "whsec_" + "QUJD"):  # not whsec_, not base64, too short
        with pytest.raises(ValueError):
            signing.key(bad)
    msg = signing.new_msg_id()
    assert msg.startswith("msg_") and "." not in msg


def test_signing_matches_the_specs_own_example_computation():
    """The spec's construction, independently of the reference package: HMAC-SHA256 over
    msg_id.timestamp.body with the base64-decoded key, base64, prefixed v1,."""
    import base64
    import hashlib
    import hmac

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "contact.created", "timestamp": "2022-11-03T20:26:10.344522Z",
                       "data": {"id": "1f81eb52-5198-4599-803e-771906343485"}}, separators=(",", ":")).encode()
    expected = base64.b64encode(hmac.new(base64.b64decode(secret[6:]), b"msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.1674087231." + body,
                                         hashlib.sha256).digest()).decode()
    assert signing.sign(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, body) == "v1," + expected
    assert signing.sign(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", 1674087231, body) == Webhook(secret).sign(
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", datetime.fromtimestamp(1674087231, timezone.utc), body)


@pytest.mark.sqlite_only
async def test_a_killed_worker_process_loses_nothing(tmp_path, clock, receiver):
    """SIGKILL of a real worker process while the receiver holds its request: the restarted
    worker sends the same webhook-id again once the lease has run out."""
    import os
    import signal
    import sys
    from pathlib import Path

    async with open_db(tmp_path, None) as db:
        ep = await endpoint(db, clock, receiver.url)
        msg_id = await emit(db, clock)
    receiver.hold = asyncio.Event()
    root = Path(__file__).resolve().parents[2]
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c",
        "import asyncio, sys; from datetime import timedelta; sys.path.insert(0, sys.argv[1]);"
        "from bot.clock import SystemClock; from bot.webhooks.worker import WebhookSettings, WebhookWorker;"
        "from storage.db import open_database\n"
        "async def main():\n"
        "    async with open_database(sys.argv[2]) as db:\n"
        "        await WebhookWorker(db, SystemClock(), WebhookSettings(timeout=timedelta(seconds=1))).drain_once()\n"
        "asyncio.run(main())",
        str(root), str(tmp_path / "feedbot.db"))
    try:
        await asyncio.wait_for(receiver.arrived.wait(), 20)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    receiver.hold.set()
    async with open_db(tmp_path, None) as db:
        row = await delivery(db, msg_id)
        assert row["status"] == "sending" and row["attempts"] == 1
        w = worker(db, clock)
        try:
            clock.set(datetime.fromisoformat(row["next_attempt_at"]))  # the lease's end
            assert await w.drain_once() == 1
        finally:
            await w.close()
        assert (await delivery(db, msg_id))["status"] == "delivered"
    first, second = await receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == msg_id and first.body == second.body
    Webhook(ep.secret).verify(second.body, second.headers)


async def test_an_idle_worker_only_reads(db, clock, receiver):
    """Nothing due: no claim (no write transaction) however often it looks; then an event
    comes and goes out on the next look."""
    await endpoint(db, clock, receiver.url)
    w = worker(db, clock, poll_interval=timedelta(seconds=0.02))
    passes = []
    drain = w.drain_once

    async def counted(*args, **kwargs):
        passes.append(1)
        return await drain(*args, **kwargs)

    w.drain_once = counted
    task = asyncio.create_task(w.run())
    try:
        await asyncio.sleep(0.3)
        assert passes == []
        msg_id = await emit(db, clock)
        (got,) = await receiver.wait_for(1)
        assert got.headers["webhook-id"] == msg_id and passes
    finally:
        w.stop()
        await asyncio.wait_for(task, 5)


async def test_a_delivered_customer_erased_event_keeps_no_id(db, clock, receiver):
    """customer.erased carries the shop's id of the erased customer for the receivers; once
    every endpoint has it (or gave up), our copy goes."""
    await endpoint(db, clock, receiver.url, ("customer.erased",))
    await endpoint(db, clock, receiver.url + "/slow", ("customer.erased",))
    receiver.answers = [Answer(200), Answer(500)]
    w = worker(db, clock, batch=1)
    msg_id = await emit(db, clock, {"subject": "C-42", "customer_id": "C-42", "via": "cli"}, event_type="customer.erased")
    payload = "SELECT payload FROM webhook_messages WHERE msg_id = ?"
    try:
        await w.drain_once()  # the first endpoint has it; the second still waits
        assert "C-42" in (await db.fetchone(payload, (msg_id,)))[0]
        await w.drain_once()  # the second fails: a retry later
        assert "C-42" in (await db.fetchone(payload, (msg_id,)))[0]
        clock.advance(timedelta(minutes=1))
        await w.drain_once()
    finally:
        await w.close()
    assert (await db.fetchone(payload, (msg_id,)))[0] == "{}"
    assert [r.headers["webhook-id"] for r in receiver.received] == [msg_id] * 3

