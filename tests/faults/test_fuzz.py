"""Issue 19 item 10: property-based fuzzing (hypothesis) of every parser of outside input: the
HTTP API's JSON bodies and bearer header, web chat frames (hello and later), the Zalo webhook,
config values and files, CLI dates, the report's week. The property is always the same: a
clear refusal (the parser's own error, a 4xx, an error frame, exit 2) or a value the code after
it can use; never another exception, a 500 or a traceback. Examples are bounded so the suite
stays fast; hypothesis prints the smallest failing input when one is found."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.cli import main as cli
from bot.channels.zalo.channel import Rejected, Stale, WebhookPing, is_test_ping, signature, verify
from bot.config import SCHEMA, Config, ConfigError, load_config, parse_config
from bot.services.purchases import MAX_AMOUNT, MAX_AMOUNT_DEFAULT, InputError, PurchaseInput, parse_purchase
from flows.digest import parse_week, week_bounds
from flows.schedule import SurveyPolicy, due_time
from tests.conftest import API_TOKEN, START, VN, Harness, make_config, purchase_body
from tests.faults.test_hardening import raw_request
from tests.http.test_api import api  # noqa: F401 - the fixture
from tests.channels.web.test_server import Visitor

# In-process examples are cheap; those that go through the running app cost a request each.
# derandomize: the same examples on every run (seeded by the test), so CI never fails by chance;
# a new example set comes with a change of the test or of Hypothesis.
FAST = settings(max_examples=300, deadline=None, database=None, derandomize=True)
SLOW = settings(max_examples=40, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
async def web(tmp_path, clock):
    """The web chat, with new-session limits far above what one fuzz run opens: every example
    is a new visitor from 127.0.0.1 on a clock that does not move (the limits have tests of
    their own)."""
    h = Harness(make_config(tmp_path, web={"new_sessions_per_minute": 100_000,
                                           "new_sessions_per_minute_total": 1_000_000}), None, clock)
    await h.start()
    yield h
    await h.close()


scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40)
           | st.sampled_from(["", "0", "-1", "1E+999999999", "NaN", "Infinity", "0001-01-01", "9999-12-31T23:59:59+14:00",
                              "1e30", "\x00", "\ud800", "A-1001", "VND", "delivery", "2026-11-23T10:00:00+07:00"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=12)
PURCHASE_FIELDS = ["order_id", "amount", "currency", "items", "store", "touchpoint", "purchased_at", "customer",
                   "customer.external_id", "customer.name", "customer.phone", "customer.telegram_user_id",
                   "customer.zalo_user_id"]


@st.composite
def purchase_bodies(draw: st.DrawFn) -> Any:
    """The standard purchase with a few fields replaced or dropped; now and then anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    body = purchase_body()
    body["customer"] = dict(body["customer"])
    for field in draw(st.lists(st.sampled_from(PURCHASE_FIELDS), min_size=1, max_size=3)):
        *parents, key = field.split(".")
        target = body
        for parent in parents:
            target = target.get(parent) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if draw(st.booleans()):
            target[key] = draw(json_values)
        else:
            target.pop(key, None)
    return body


# --- the HTTP API ----------------------------------------------------------------------------------


@FAST
@given(body=purchase_bodies())
@example(body=purchase_body(store="\ud800"))  # found by a random run: a lone surrogate in a kept field
def test_parse_purchase_refuses_with_input_error_or_gives_usable_data(body):
    try:
        data = parse_purchase(body, touchpoints=("delivery", "in_store", "online"), timezone=VN, now=START)
    except InputError as exc:
        assert exc.field and str(exc).startswith(exc.field + ":")
        return
    assert isinstance(data, PurchaseInput)
    assert data.amount.is_finite() and 0 <= data.amount <= MAX_AMOUNT.get(data.currency, MAX_AMOUNT_DEFAULT)
    assert math.isfinite(float(data.amount))  # what SQLite stores
    assert datetime(2000, 1, 1, tzinfo=dt_timezone.utc) <= data.purchased_at <= START + timedelta(hours=1)
    data.fingerprint()
    due_time(data.purchased_at, SurveyPolicy())


@SLOW
@given(body=purchase_bodies(), as_text=st.booleans(), junk=st.binary(max_size=64))
async def test_purchase_api_answers_a_clear_status_never_500(api, body, as_text, junk):
    data = json.dumps(body).encode() if as_text else junk  # lone surrogates as \u escapes
    async with api.http.post(f"{api.url}/api/v1/purchases", data=data,
                             headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}) as resp:
        answer = await resp.json()
    assert resp.status in (200, 202, 400, 409), answer
    if resp.status == 400:
        assert answer["error"]["field"] and answer["error"]["message"]


@SLOW
@given(value=st.binary(min_size=1, max_size=60).filter(lambda b: b"\r" not in b and b"\n" not in b))
async def test_any_authorization_header_bytes_are_401_or_429(api, value):
    status, answer = await raw_request(api, b"GET /api/v1/purchases/A-1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + value)
    assert status in (400, 401, 429), answer


@FAST
@given(week=st.text(max_size=20) | st.from_regex(r"\A-?\d{1,6}-?W\d{1,3}\Z"))
def test_report_week_parses_to_bounds_or_value_error(week):
    try:
        parsed = parse_week(week)
    except ValueError:
        return
    start, end = week_bounds(parsed, VN)
    assert end - start == timedelta(weeks=1)


# --- the web chat -----------------------------------------------------------------------------------

# What a WebSocket can carry is UTF-8: lone surrogates only as JSON escapes (ensure_ascii).
frames = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=200),
    st.integers(1, 7900).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"type": "text", "id": "x", "text": ' + "[" * n + "]" * n + "}"),
    # (not "demo": its answer is the demo survey itself, no accepted frame; tests/channels/web/test_server.py has it)
    st.fixed_dictionaries({"type": st.sampled_from(["text", "choice", "ping", "hello", "?"]) | json_values.filter(lambda t: t != "demo")},
                          optional={"id": st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z") | json_values,
                                    "text": st.text(max_size=80) | json_values, "data": json_values,
                                    "message_id": json_values | st.integers(min_value=-(2**70), max_value=2**70)})
    .map(lambda f: json.dumps(f)),
)


@SLOW
@given(frame=frames)
async def test_any_web_chat_frame_gets_an_answer_and_the_socket_stays_usable(web, caplog, frame):
    v = await Visitor.connect(web)
    try:
        await v.ws.send_str(frame)
        answer = await v.next(("error", "accepted", "pong"), timeout=10)
        assert answer["type"] in ("error", "accepted", "pong")
        await v.ws.send_json({"type": "ping"})
        await v.next("pong")
    finally:
        await v.ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


hellos = st.fixed_dictionaries({"type": st.just("hello")}, optional={
    "session": json_values, "resume": json_values | st.integers(min_value=-(2**70), max_value=2**70),
    "start": json_values | st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"), "customer_token": json_values, "lang": json_values})


@SLOW
@given(hello=hellos | json_values)
async def test_any_hello_is_welcomed_or_refused_with_an_error_frame(web, caplog, hello):
    ws = await web.http.ws_connect(f"{web.url}/chat/ws")
    try:
        await ws.send_str(json.dumps(hello))
        msg = await ws.receive(timeout=10)
        first = json.loads(msg.data)
        assert first["type"] in ("welcome", "error"), first
    finally:
        await ws.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- the Zalo webhook ---------------------------------------------------------------------------------

APP_ID, KEY = "1234567890", "oa-secret-key-for-fuzzing"


@FAST
@given(raw=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()), header=st.text(max_size=80))
def test_zalo_verify_unsigned_anything_is_rejected(raw, header):
    """Anything unsigned is refused, except Zalo's own test POST: {} with no signature at all."""
    if is_test_ping(raw, header):
        with pytest.raises(WebhookPing):
            verify(raw, header, app_id=APP_ID, oa_secret_key=KEY, max_age=timedelta(hours=2), now=START)
        assert raw.strip() in (b"{}", b"") and not header.strip()
        return
    with pytest.raises(Rejected) as info:
        verify(raw, header, app_id=APP_ID, oa_secret_key=KEY, max_age=timedelta(hours=2), now=START)
    assert info.value.status in (400, 401)


@FAST
@given(event=st.dictionaries(st.text(max_size=12), json_values, max_size=5),
       timestamp=st.integers(min_value=-(10**25), max_value=10**25) | st.text(max_size=25) | st.just(None),
       depth=st.integers(0, 3000))
def test_zalo_verify_signed_anything_gives_an_event_or_rejected(event, timestamp, depth):
    nested: list = []
    for _ in range(min(depth, 50)):
        nested = [nested]
    event = {**event, "timestamp": timestamp, "nested": nested}
    raw = json.dumps(event).encode()
    if depth > 50:
        raw = raw[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    stamp = str(timestamp) if timestamp is not None else "0"
    try:
        payload = verify(raw, "mac=" + signature(APP_ID, raw, stamp, KEY), app_id=APP_ID, oa_secret_key=KEY,
                         max_age=timedelta(hours=2), now=START)
    except Rejected as exc:
        assert exc.status in (400, 401)
        return
    except Stale:  # correctly signed, too far from now: the webhook answers 200 and drops it
        assert abs(int(stamp) - START.timestamp() * 1000) > 2 * 3600 * 1000
        return
    assert isinstance(payload, dict) and str(payload["timestamp"]) == stamp


# --- config values and files, CLI dates ----------------------------------------------------------------

toml_values = st.recursive(
    st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats() | st.text(max_size=40)
    | st.sampled_from(["3h", "99999999999999h", "0s", "1d1h1m1s", "3651d", "21:00-08:00", "25:00-99:99", "Asia/Ho_Chi_Minh",
                       "x" * 300, "https://example.com", "-100123", "vi", "en"]),
    lambda inner: st.lists(inner, max_size=3), max_leaves=6)
keys = st.sampled_from([(section, key) for section, entries in SCHEMA.items() for key in entries])


@FAST
@given(items=st.lists(st.tuples(keys, toml_values), min_size=1, max_size=3))
def test_config_values_parse_or_name_the_key(items):
    raw: dict[str, dict[str, Any]] = {}
    for (section, key), value in items:
        raw.setdefault(section, {})[key] = value
    try:
        config = parse_config(raw, {})
    except ConfigError as exc:
        assert any(str(exc).startswith(f"{s}.") or str(exc).startswith(f"{s}:") for s in SCHEMA), exc
        return
    assert isinstance(config, Config)
    policy = config.survey_policy()  # what start-up builds from it
    config.complaint_policy()
    due_time(START, policy)
    for entries in config.values.values():
        for value in entries.values():
            if isinstance(value, timedelta):
                START + value  # far-off durations would overflow here


@settings(max_examples=100, deadline=None, database=None)
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_config_files_load_or_give_a_config_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    path.write_bytes(content)
    try:
        load_config(path, env={})
    except ConfigError:
        pass


@FAST
@given(value=st.text(max_size=30) | st.dates().map(date.isoformat))
def test_cli_date_arguments_parse_or_refuse(value):
    try:
        day = cli._date_arg(value)
    except argparse.ArgumentTypeError:
        return
    for tz in ("Pacific/Kiritimati", "Etc/GMT+12", "Asia/Ho_Chi_Minh"):  # the export's bounds in any shop zone
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(tz)
        datetime.combine(day, datetime.min.time(), tzinfo=zone).astimezone(dt_timezone.utc)
        datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone).astimezone(dt_timezone.utc)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.dates(), end=st.dates(), zone=st.sampled_from(["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Ho_Chi_Minh"]))
def test_cli_export_with_any_dates_exits_0_or_2(tmp_path_factory, capsys, start, end, zone):
    folder = tmp_path_factory.mktemp("export")
    (folder / "c.toml").write_text(f'[shop]\ntimezone = "{zone}"\n[database]\npath = "{folder / "f.db"}"\n', encoding="utf-8")
    try:
        code = cli.main(["export", "--from", start.isoformat(), "--to", end.isoformat(), "--what", "surveys",
                         "--config", str(folder / "c.toml"), "--output", str(folder / "out.csv")])
    except SystemExit as exc:  # argparse refused a date
        code = exc.code
    assert code in (0, 2)
    capsys.readouterr()
