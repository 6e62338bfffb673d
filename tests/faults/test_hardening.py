"""Issue 19 items 7-11: what an attack run against the running bot broke, each as a test that
failed before the fix: absurd amounts, agent logout, the API token's throttle and strength,
malformed input without authentication (500s and tracebacks), an unwritable database and a
/healthz that said ok while every write failed."""
from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import aiohttp
import pytest

from bot.cli import main as cli
from bot.http import api as http_api
from bot.http.agent_page import COOKIE
from bot.channels.zalo.channel import Rejected, signature, verify
from bot.config import ConfigError, parse_config
from tests.conftest import API_TOKEN, START, Harness, make_config, purchase_body
from tests.http.test_agent_page import AgentClient
from tests.cli.test_main import feedbot
from tests.http.test_api import JSON_AUTH, NOTHING, api, changed, counts, send  # noqa: F401 - the fixture
from tests.channels.web.test_server import Visitor, web  # noqa: F401 - the fixture
from tests.channels.zalo.test_channel import zfake, zh  # noqa: F401 - fixtures

# --- item 7: amounts ---------------------------------------------------------------------------

ABSURD_AMOUNTS = [
    ("exponent-string", "1E+999999999", "VND", "larger than"),
    ("exponent-number", b"1E+999999999", "VND", "finite"),  # JSON parses it as inf
    ("infinity-string", "Infinity", "VND", "finite"),
    ("nan-string", "NaN", "USD", "finite"),
    ("vnd-over-10^12", 10**12 + 1, "VND", "larger than 1,000,000,000,000 VND"),
    ("usd-over-10^9", 10**9 + 1, "USD", "larger than 1,000,000,000 USD"),
    ("digits-5000", b"9" * 5000, "VND", "body: not valid JSON"),  # beyond int()'s digit limit: not a 500
    ("tiny", "1E-999999999", "VND", "decimal places"),
]


def with_amount(amount, currency: str) -> bytes:
    body = changed("currency", currency)
    if isinstance(amount, bytes):  # a JSON number as written, not a Python value
        return body.replace(b'"amount": 250000', b'"amount": ' + amount)
    return changed("amount", amount).replace(b'"currency": "VND"', json.dumps({"currency": currency})[1:-1].encode())


@pytest.mark.parametrize("amount, currency, words", [c[1:] for c in ABSURD_AMOUNTS], ids=[c[0] for c in ABSURD_AMOUNTS])
async def test_absurd_amounts_are_400_naming_the_field_and_store_nothing(api, amount, currency, words):
    status, _, body = await send(api, with_amount(amount, currency), JSON_AUTH)
    assert status == 400, body
    assert body["error"]["field"] == ("body" if words.startswith("body:") else "amount")
    assert words.split(": ")[-1] in body["error"]["message"]
    assert await counts(api) == NOTHING


async def test_largest_real_amounts_are_accepted_and_stored_finite(api):
    status, _, _ = await send(api, with_amount(10**12, "VND"), JSON_AUTH)
    assert status == 202
    status, _, _ = await send(api, changed("order_id", "U-1").replace(b'"amount": 250000', b'"amount": 999.9999')
                              .replace(b'"currency": "VND"', b'"currency": "USD"'), JSON_AUTH)
    assert status == 202
    rows = await api.rows("SELECT amount, typeof(amount) AS t FROM purchases ORDER BY id")
    assert [(r["amount"], r["t"]) for r in rows] == [(10**12, "integer"), (999.9999, "real")]


@pytest.mark.parametrize("when", ["0001-01-01", "0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-12:00", "1999-12-31"])
async def test_purchase_times_out_of_range_are_400(api, when):
    status, _, body = await send(api, changed("purchased_at", when), JSON_AUTH)
    assert status == 400, body
    assert body["error"]["field"] == "purchased_at"
    assert await counts(api) == NOTHING


async def test_a_purchase_of_today_still_goes_through(api):
    status, _, _ = await send(api, changed("purchased_at", (START - timedelta(hours=1)).isoformat()), JSON_AUTH)
    assert status == 202
    assert purchase_body()["amount"] == 250000


# --- item 9: the API token -----------------------------------------------------------------------


async def test_wrong_api_tokens_are_throttled_per_address_and_logged_without_the_token(api, caplog):
    guesses = [f"guess-{n:04d}-abcdefghijklmnop" for n in range(8)]
    statuses = []
    for guess in guesses:
        status, headers, _ = await send(api, changed("order_id", "T-1"),
                                        {"Authorization": f"Bearer {guess}", "Content-Type": "application/json"})
        statuses.append(status)
    assert statuses == [401] * 5 + [429] * 3
    # Locked out: the right token too, or the lockout would tell a guesser when it guessed right.
    status, headers, body = await send(api, changed("order_id", "T-1"), JSON_AUTH)
    assert status == 429 and int(headers["Retry-After"]) > 800, body
    async with api.http.get(f"{api.url}/api/v1/purchases/T-1", headers={"Authorization": f"Bearer {API_TOKEN}"}) as resp:
        assert resp.status == 429
    assert await counts(api) == NOTHING
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.http.api" and r.levelname == "WARNING"]
    assert len(warnings) == 5 and all("wrong bearer token from 127.0.0.1" in w for w in warnings)
    assert "refused for 15 min" in warnings[-1]
    assert not any(g in w for g in guesses for w in warnings)


async def test_a_right_token_clears_nothing_for_others_and_missing_tokens_are_not_counted(api):
    for _ in range(10):
        status, _, _ = await send(api, changed("order_id", "T-2"), {"Content-Type": "application/json"})
        assert status == 401  # no token at all: not a guess
    status, _, _ = await send(api, changed("order_id", "T-2"), JSON_AUTH)
    assert status == 202


@pytest.mark.parametrize("token", ["a", "short-token", "aaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababababab",
                                   "has a space in it 0123456", "token-with-vietnamese-đồng"])
def test_weak_configured_api_tokens_are_a_config_error_naming_the_key(token, tmp_path):
    with pytest.raises(ConfigError, match=r"^http\.api_token: "):
        parse_config({"http": {"api_token": token}}, {})
    with pytest.raises(ConfigError, match=r"^http\.api_token \(from \$FEEDBOT_API_TOKEN\): "):
        parse_config({}, {"FEEDBOT_API_TOKEN": token})
    (tmp_path / "c.toml").write_text(f'[http]\napi_token = "{token}"\n', encoding="utf-8")
    assert cli.main(["check-config", "--config", str(tmp_path / "c.toml")]) == 2


def test_strong_and_empty_tokens_are_fine():
    assert parse_config({"http": {"api_token": API_TOKEN}}, {}).http.api_token == API_TOKEN
    assert parse_config({}, {}).http.api_token == ""


# --- item 10: malformed input without authentication ---------------------------------------------


async def raw_request(h, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """An HTTP/1.1 request written byte for byte (aiohttp's client will not send bad header bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", h.app.port)
    writer.write(head + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


async def test_authorization_header_bytes_that_are_not_utf8_are_401_not_500(api, caplog):
    for header in (b"Authorization: Bearer \xff\xfe", b"Authorization: \xff\xfe", b"Authorization: Bearer \xc3"):
        status, answer = await raw_request(api, b"POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\n" + header
                                           + b"\r\nContent-Type: application/json", changed("order_id", "X-1"))
        assert status == 401, answer
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_unsigned_zalo_body_nested_50000_deep_is_refused_before_parsing(zh, caplog):
    deep = b'{"timestamp": "1", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    async with zh.http.post(f"{zh.url}/webhooks/zalo", data=deep, headers={"Content-Type": "application/json",
                                                                         "X-ZEvent-Signature": "mac=00"}) as resp:
        assert resp.status == 401
    async with zh.http.post(f"{zh.url}/webhooks/zalo", data=b"[" * 100_000,
                            headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert await zh.rows("SELECT id FROM inbox") == []


def test_zalo_verify_checks_the_signature_before_json():
    deep = b'{"timestamp": "1", "a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    with pytest.raises(Rejected) as info:
        verify(deep, "mac=00", app_id="1", oa_secret_key="k", max_age=timedelta(hours=2), now=START)
    assert info.value.status == 401
    # Signed, but the signature covers a nested "timestamp", not the event's own.
    body = b'{"timestamp": "99", "message": {"timestamp": "1"}}'
    with pytest.raises(Rejected) as info:
        verify(body, signature("1", body, "1", "k"), app_id="1", oa_secret_key="k", max_age=timedelta(hours=2), now=START)
    assert info.value.status == 401
    # A signed event with a timestamp far beyond datetime's range: 400, not OverflowError.
    body = b'{"timestamp": "99999999999999999999"}'
    with pytest.raises(Rejected) as info:
        verify(body, signature("1", body, "99999999999999999999", "k"), app_id="1", oa_secret_key="k",
               max_age=timedelta(hours=2), now=START)
    assert info.value.status == 400


async def test_web_chat_frames_nested_deep_or_with_huge_numbers_get_an_error_frame(web, caplog):
    v = await Visitor.connect(web, resume=10**30)  # was: OverflowError in SQLite, the socket dropped
    await v.ws.send_str("[" * 8000 + "]" * 8000)  # 16,000 bytes: RecursionError in json.loads
    assert (await v.next("error"))["code"] == "malformed"
    await v.ws.send_str('{"type": "text", "id": "a", "text": "x", "n": ' + "9" * 5000 + "}")
    assert (await v.next("error"))["code"] == "malformed"
    await v.ws.send_json({"type": "choice", "id": "b", "data": "x", "message_id": 10**30})
    assert (await v.next("error", id="b"))["code"] == "malformed"
    await v.ws.send_json({"type": "ping"})
    await v.next("pong")  # the socket still works
    hello_deep = await web.http.ws_connect(f"{web.url}/chat/ws")
    await hello_deep.send_str("[" * 8000 + "]" * 8000)
    assert json.loads((await hello_deep.receive()).data)["code"] == "malformed"
    await hello_deep.close()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_cli_dates_out_of_range_exit_2_with_a_message(tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "f.db"}"\n', encoding="utf-8")
    for dates in (["--from", "0001-01-01", "--to", "2026-11-30"], ["--from", "2026-11-01", "--to", "9999-12-31"]):
        with pytest.raises(SystemExit) as info:
            cli.main(["export", *dates, "--what", "surveys", "--config", str(config)])
        assert info.value.code == 2
        assert "expected a date from 1970-01-01 to 9998-12-31" in capsys.readouterr().err
    assert cli.main(["export", "--from", "1970-01-01", "--to", "9998-12-31", "--what", "surveys",
                     "--config", str(config), "--output", str(tmp_path / "out.csv")]) == 0


@pytest.mark.parametrize("content, words", [
    (b"[shop]\nname = 'Caf\xe9 \xd0\xe0 N\xe3ng'\n", "not UTF-8"),  # latin-1 / Windows-1258 bytes
    (b'[survey]\ndelay = "99999999999999h"\n', "survey.delay: longer than 3650 days"),
    (b'[survey]\nexpires_after = "9999999999d"\n', "survey.expires_after: longer than 3650 days"),
    (b'[sender]\nmessages_per_second = nan\n', "sender.messages_per_second"),
    (b'[shop]\ntimezone = "' + b"a" * 5000 + b'"\n', "shop.timezone"),
])
def test_bad_config_files_exit_2_naming_the_problem(tmp_path, capsys, content, words):
    (tmp_path / "c.toml").write_bytes(content)
    assert cli.main(["check-config", "--config", str(tmp_path / "c.toml")]) == 2
    assert words in capsys.readouterr().err


def test_config_that_is_a_directory_exits_2(tmp_path, capsys):
    assert cli.main(["check-config", "--config", str(tmp_path)]) == 2
    assert "cannot read the config file" in capsys.readouterr().err


# --- item 8: agent sign-out ------------------------------------------------------------------------


async def test_sign_out_revokes_the_session_on_the_server_also_after_a_restart(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    agent, other = AgentClient(h), AgentClient(h)
    try:
        assert (await agent.login())[0] == 303
        saved = next(c for c in agent.http.cookie_jar if c.key == COOKIE).value
        assert (await other.login(name="Minh"))[0] == 303  # another agent's session
        other_cookie = next(c for c in other.http.cookie_jar if c.key == COOKIE).value
        async with agent.http.post(f"{h.url}/agent/logout", data={"csrf": agent.csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        # The saved cookie, replayed from anywhere, no longer works: pages, JSON, actions.
        async with aiohttp.ClientSession(cookies={COOKIE: saved}) as thief:
            async with thief.get(f"{h.url}/agent/api/tickets", allow_redirects=False) as resp:
                assert resp.status == 401
            async with thief.get(f"{h.url}/agent", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent/login"
        await h.stop()
        await h.start()  # the revocation is in the database, not in memory
        async with aiohttp.ClientSession(cookies={COOKIE: saved}) as thief:
            async with thief.get(f"{h.url}/agent/api/tickets", allow_redirects=False) as resp:
                assert resp.status == 401
        async with aiohttp.ClientSession(cookies={COOKIE: other_cookie}) as still:
            async with still.get(f"{h.url}/agent/api/tickets", allow_redirects=False) as resp:
                assert resp.status == 200  # only the session that signed out
        # Expired revocations are cleaned up when the next agent signs out.
        h.clock.advance(timedelta(hours=13))
        third = AgentClient(h)
        assert (await third.login(name="Hoa"))[0] == 303
        async with third.http.post(f"{h.url}/agent/logout", data={"csrf": third.csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        await third.close()
        assert len(await h.rows("SELECT sid FROM agent_session_revocations")) == 1
    finally:
        await agent.close()
        await other.close()
        await h.close()


# --- item 11: an unwritable database ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["not-a-database", "a-directory"])
def test_run_on_a_database_it_cannot_use_exits_2_with_a_message_and_no_traceback(tmp_path, kind):
    path = tmp_path / "feedbot.db"
    if kind == "not-a-database":
        path.write_bytes(bytes(range(256)) * 20)
    else:
        path.mkdir()
    (tmp_path / "config.toml").write_text(f'[database]\npath = "{path}"\n[http]\nport = 0\n', encoding="utf-8")
    try:
        result = feedbot("run", cwd=tmp_path, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("feedbot run hung instead of exiting")
    assert result.returncode == 2, result.stderr
    assert "cannot start: database.path: cannot open or write the database" in result.stderr
    assert "Traceback" not in result.stderr


async def health(h) -> tuple[int, dict]:
    async with h.http.get(f"{h.url}/healthz") as resp:
        return resp.status, await resp.json()


async def test_healthz_tests_a_real_write_and_reports_each_part(tmp_path, clock, monkeypatch):
    monkeypatch.setattr(http_api, "HEALTH_WRITE_SPACING_S", 0.0)
    h = Harness(make_config(tmp_path), None, clock)
    await h.start(scheduler=True)
    try:
        status, body = await health(h)
        assert status == 200 and body == {"ok": True, "parts": {
            "database": {"status": "ok"}, "sender": {"status": "ok"}, "scheduler": {"status": "ok"}}}
        # Every write fails (as on a read-only file or a full disk); reads still work.
        await h.app.db.writer.execute_fetchall("PRAGMA query_only=1")
        status, body = await health(h)
        assert status == 503 and body["ok"] is False
        assert body["parts"]["database"]["status"] == "down" and "readonly" in body["parts"]["database"]["error"]
        await h.app.db.writer.execute_fetchall("PRAGMA query_only=0")
        assert (await health(h))[0] == 200
        # The sender's task ends: down.
        h.app._sender_task.cancel()
        await asyncio.sleep(0.05)
        status, body = await health(h)
        assert status == 503 and body["parts"]["sender"]["status"] == "down"
    finally:
        await h.close()


async def test_healthz_scheduler_down_when_stopped_or_stuck(tmp_path, clock):
    from bot.app import _scheduler_status

    h = Harness(make_config(tmp_path), None, clock)
    await h.start(scheduler=True)
    try:
        scheduler = h.app.scheduler
        now = datetime.now(dt_timezone.utc)
        assert _scheduler_status(scheduler, now) == {"status": "ok"}
        scheduler.pause()  # its jobs stop running, their next run stays where it was
        assert _scheduler_status(scheduler, now + timedelta(minutes=2))["status"] == "down"
        scheduler.resume()
        scheduler.shutdown(wait=False)
        status, body = await health(h)
        assert status == 503 and body["parts"]["scheduler"] == {"status": "down", "error": "not running"}
    finally:
        await h.close()


async def test_healthz_writes_at_most_every_few_seconds(api):
    statuses = [await health(api) for _ in range(20)]
    assert all(s == 200 for s, _ in statuses)
    assert statuses[0][1]["parts"]["scheduler"] == {"status": "off"}  # the test harness runs none
    rows = await api.rows("SELECT value FROM settings WHERE key = 'heartbeat'")
    assert len(rows) == 1


@pytest.mark.parametrize("field, value", [("customer.name", "Lan \ud800"), ("store", "\udfff"), ("items", [{"name": "\ud83d"}])])
async def test_lone_surrogates_in_text_fields_are_400_not_500(api, field, value):
    status, _, body = await send(api, json.dumps(json.loads(changed(field, "x")) | ({field: value} if "." not in field else {
        "customer": {**purchase_body()["customer"], field.split(".")[1]: value}})).encode(), JSON_AUTH)
    assert status == 400, body
    assert await counts(api) == NOTHING


async def test_lone_surrogates_in_web_chat_frames_get_an_error_frame(web, caplog):
    v = await Visitor.connect(web)
    await v.ws.send_str('{"type": "text", "id": "s1", "text": "xin ch\\ud800o"}')
    assert (await v.next("error"))["code"] == "malformed"
    ws = await web.http.ws_connect(f"{web.url}/chat/ws")
    await ws.send_str('{"type": "hello", "lang": "\\udfff", "start": "\\ud800"}')
    assert json.loads((await ws.receive()).data)["type"] == "error"
    await ws.close()
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert await web.rows("SELECT id FROM web_messages WHERE body LIKE '%ch%o%'") == []


# --- item 10: the published OpenAPI description matches the routes -------------------------------

API_PREFIXES = ("/api/", "/healthz", "/webhooks/")


async def test_openapi_description_is_served_and_matches_the_implemented_routes(tmp_path, tg, clock, zfake):
    from tests.channels.zalo.test_channel import started

    h = await started(tmp_path, tg, clock, zfake, http={"public_url": "http://127.0.0.1"},
                      telegram={"mode": "webhook", "webhook_secret": "webhook-secret-for-openapi-1"})
    try:
        async with h.http.get(f"{h.url}/api/v1/openapi.json") as resp:  # no token needed
            assert resp.status == 200 and resp.content_type == "application/json"
            spec = await resp.json()
        assert spec["openapi"].startswith("3.1")
        described = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
        implemented = {(route.method, route.resource.canonical) for route in h.app._runner.app.router.routes()
                       if route.resource is not None and route.resource.canonical.startswith(API_PREFIXES)
                       and route.method != "HEAD"}
        assert implemented == described
        # Every operation says what it answers, and the refusals share one error shape.
        for path, item in spec["paths"].items():
            for method, operation in item.items():
                assert operation["responses"] and operation["operationId"], (method, path)
                secured = operation.get("security", spec["security"]) != []
                assert ("401" in operation["responses"]) == secured or path.startswith("/webhooks/"), (method, path)
        purchase = spec["components"]["schemas"]["Purchase"]
        assert set(purchase["required"]) == {"order_id", "customer", "amount", "touchpoint", "purchased_at"}
        assert set(purchase["properties"]) == set(purchase_body())  # the README's example uses every field
    finally:
        await h.close()


async def test_start_on_a_database_that_refuses_writes_is_a_startup_error(tmp_path, clock, monkeypatch):
    """A read-only database (as a file the bot's user may not write; here every connection is
    made query-only after its migrations, as root may write any file): start-up stops with a
    message naming database.path instead of a bot that runs and fails every write."""
    from bot.app import FeedbotApp, StartupError
    from storage.db import Database

    async with Database(tmp_path / "feedbot.db"):
        pass  # migrated, as a database of a bot that ran before
    connect = Database._connect

    async def read_only(self):
        conn = await connect(self)
        await conn.execute_fetchall("PRAGMA query_only=1")
        return conn

    monkeypatch.setattr(Database, "_connect", read_only)
    app = FeedbotApp(make_config(tmp_path), clock=clock)
    with pytest.raises(StartupError, match=r"^database\.path: cannot open or write the database .*readonly"):
        await app.start()
    await app.stop()
