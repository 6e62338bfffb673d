"""Issue 7, items 2, 3 and 9, against a REAL bot process (`python -m bot.cli run`).

The bot runs as a subprocess with a config pointing at the in-process fake Bot API (this
test's event loop; the bot reaches it over 127.0.0.1) and a SQLite file in tmp_path. We
`kill -9` it mid-complaint and while a survey batch is sending, and SIGTERM it under load;
after each restart we check that nothing was lost or duplicated and that
`PRAGMA integrity_check` says ok. Its log files are searched for secrets at the end of
the session (tests/secrets_guard.py).

Everything that waits here waits with asyncio.sleep, never a blocking wait: the fake
Bot API lives in this event loop, and blocking it would stall the bot under test.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.clock import SystemClock
from bot.config import parse_config
from storage.timefmt import to_db
from tests import secrets_guard
from tests.conftest import BOT_TOKEN, Harness
from tests.cli.test_main import _free_port, _wait_port
from testkit.telegram_api import FakeTelegramServer

ROOT = Path(__file__).resolve().parents[2]
API_SECRET = "faults-process-api-token-5d1c0e7a9b"
CUSTOMER = 610001
GROUP = -1009990001
AGENT = 9101
DESCRIPTION = "Shipper giao trễ 2 ngày, hộp bị móp; tôi muốn đổi hàng"
STOP_DEADLINE = 15.0  # seconds a SIGTERM'd bot may take to exit


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def _toml(raw: dict[str, dict[str, Any]]) -> str:
    lines = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


class BotProcess:
    """`feedbot run` as a child process; secrets come from the environment, as in production."""

    def __init__(self, tmp_path: Path, tg: FakeTelegramServer, **sections: dict[str, Any]) -> None:
        self.dir = tmp_path
        self.db_path = tmp_path / "feedbot.db"
        self.port = _free_port()
        self.raw: dict[str, dict[str, Any]] = {
            "shop": {"name": "Shop An"},
            "database": {"path": str(self.db_path)},
            "http": {"host": "127.0.0.1", "port": self.port},
            "telegram": {"api_base_url": tg.api_root, "poll_timeout": 1},
            "survey": {"quiet_hours": "00:00-00:00"},  # tests run at any hour
            "sender": {"per_chat_interval": 0.05, "backoff_base": 0.05, "request_timeout": 5.0,
                       "group_messages_per_minute": 600},
            "logging": {"level": "INFO"},
        }
        for name, values in sections.items():
            self.raw.setdefault(name, {}).update(values)
        self.port = self.raw["http"]["port"]
        (tmp_path / "config.toml").write_text(_toml(self.raw))
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def config(self):
        """The same config for an in-process app (set-up steps)."""
        raw = {k: dict(v) for k, v in self.raw.items()}
        raw["telegram"]["token"] = BOT_TOKEN
        raw["http"] = {**raw["http"], "api_token": API_SECRET, "port": 0}
        return parse_config(raw, {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runs += 1
        log_path = self.dir / f"bot-{self.runs}.log"
        secrets_guard.watch_file(log_path)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "FEEDBOT_TELEGRAM_TOKEN": BOT_TOKEN,
               "FEEDBOT_API_TOKEN": API_SECRET}
        with open(log_path, "w") as log_file:  # a file, not a pipe nobody reads
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "run", "--config", str(self.dir / "config.toml")],
                cwd=self.dir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )
        try:
            await _wait_port(self.url, self.proc, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.log()}") from None

    def log(self) -> str:
        return "".join((self.dir / f"bot-{i}.log").read_text() for i in range(1, self.runs + 1))

    async def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        await self._wait(10)
        assert self.proc.returncode == -signal.SIGKILL

    async def terminate(self, deadline: float = STOP_DEADLINE) -> float:
        """SIGTERM; returns how long the bot took to exit (it must exit 0 within the deadline)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        await self._wait(deadline)
        took = time.monotonic() - began
        assert self.proc.returncode == 0, self.log()
        return took

    async def _wait(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"feedbot did not exit within {timeout}s:\n{self.log()}")
            await asyncio.sleep(0.02)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        """Read the bot's database from outside, as another process would (WAL: never blocks it)."""
        with sqlite3.connect(self.db_path, timeout=10) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params)]

    def integrity(self) -> str:
        return self.rows("PRAGMA integrity_check")[0]["integrity_check"]

    async def until(self, predicate, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what} not reached within {timeout}s:\n{self.log()[-4000:]}")


@pytest.fixture
async def bot(tmp_path, tg):
    process = BotProcess(tmp_path, tg, agents={"chat_id": GROUP, "agent_ids": [AGENT]})
    yield process
    process.close()


def buttons(message) -> list[dict]:
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


def handed_over(tg: FakeTelegramServer, update_id: int) -> bool:
    """The fake answered a getUpdates that carries this update (the bot has it, or soon will)."""
    for request in tg.requests_for("getUpdates"):
        result = (request.response or {}).get("result") or []
        if any(u.get("update_id") == update_id for u in result):
            return True
    return False


# --- item 2: kill -9 mid-complaint ----------------------------------------------------------

async def test_kill_9_mid_complaint_resumes_at_the_same_step(bot, tg):
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh"})
    await bot.start()
    tg.push_update(tg.make_message_update(CUSTOMER, "/complaint"))
    ask_category = (await tg.wait_for_messages(CUSTOMER, 1, timeout=15))[0]
    delivery = next(b for b in buttons(ask_category) if b["text"] == "Giao hàng")
    tg.push_update(tg.make_callback_update(CUSTOMER, delivery["callback_data"], ask_category.message_id))
    await tg.wait_for_messages(CUSTOMER, 2, timeout=15)  # "what happened?"

    # The description arrives; kill -9 the moment Telegram has handed it to the bot.
    update = tg.push_update(tg.make_message_update(CUSTOMER, DESCRIPTION))
    deadline = time.monotonic() + 15
    while not handed_over(tg, update["update_id"]) and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    await bot.kill()
    at_kill = bot.rows("SELECT processed_at FROM inbox WHERE update_id = ?", (str(update["update_id"]),))
    state = "not recorded" if not at_kill else ("processed" if at_kill[0]["processed_at"] else "recorded, unprocessed")
    print(f"\nitem 2: kill -9 with the description update {state}")
    assert bot.integrity() == "ok"

    await bot.start()
    ask_photos = (await tg.wait_for_messages(CUSTOMER, 3, timeout=15))[2]  # the same step: photos?
    tg.push_update(tg.make_callback_update(CUSTOMER, buttons(ask_photos)[0]["callback_data"], ask_photos.message_id))
    confirm = (await tg.wait_for_messages(CUSTOMER, 4, timeout=15))[3]
    assert "Giao hàng" in confirm.text and DESCRIPTION in confirm.text
    tg.push_update(tg.make_callback_update(CUSTOMER, buttons(confirm)[0]["callback_data"], confirm.message_id))
    opened = (await tg.wait_for_messages(CUSTOMER, 5, timeout=15))[4]
    assert "KN-0001" in opened.text
    card = (await tg.wait_for_messages(GROUP, 1, timeout=15))[0]
    assert DESCRIPTION in card.text

    await bot.until(lambda: not bot.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')"),
                    what="outbox drained")
    took = await bot.terminate()
    print(f"item 2: SIGTERM after the complaint: exit 0 in {took:.2f}s")
    tickets = bot.rows("SELECT category, description, status FROM tickets")
    assert tickets == [{"category": "delivery", "description": DESCRIPTION, "status": "open"}]
    inbox = bot.rows("SELECT update_id, processed_at, error FROM inbox ORDER BY id")
    assert len(inbox) == 5 and all(r["processed_at"] and r["error"] is None for r in inbox)
    assert len({r["update_id"] for r in inbox}) == 5
    assert len(tg.sent_messages(CUSTOMER)) == 5  # nothing handled twice: one reply per step
    assert bot.integrity() == "ok"


# --- items 2 and 3: kill -9 while a survey batch is sending; overdue and too-late surveys ----

SURVEY_USERS = [620000 + i for i in range(40)]
LATE_USERS = [630000 + i for i in range(3)]


async def link_customers(config, tg: FakeTelegramServer, users: list[int]) -> None:
    """Each user bought (order S-<user>) and linked their chat; their surveys are scheduled.
    Done by an in-process app on the bot's database, with the real clock (the process's)."""
    h = Harness(config, tg, SystemClock())
    try:
        await h.start()
        bought = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat()
        for user in users:
            async with h.http.post(
                f"{h.url}/api/v1/purchases",
                json={"order_id": f"S-{user}", "customer": {"external_id": f"C-{user}", "name": f"Khách {user}"},
                      "amount": 100000, "touchpoint": "delivery", "purchased_at": bought},
                headers={"Authorization": f"Bearer {API_SECRET}"},
            ) as resp:
                assert resp.status == 202
                token = (await resp.json())["links"]["telegram"].split("start=")[1]
            await h.app.engine.receive("telegram", tg.make_message_update(user, f"/start {token}"))
        await h.app.sender.drain(60)
    finally:
        await h.close()


async def _due_surveys(bot: BotProcess, tg: FakeTelegramServer) -> None:
    """Customers linked to their chats, surveys scheduled; then the bot "was down" across their
    due times: 40 came due a minute ago, 3 are past survey.max_lateness (48 h)."""
    await link_customers(bot.config(), tg, SURVEY_USERS + LATE_USERS)
    now = datetime.now(timezone.utc)
    with sqlite3.connect(bot.db_path) as conn:
        conn.execute("UPDATE surveys SET due_at = ?", (to_db(now - timedelta(minutes=1)),))
        conn.executemany(
            "UPDATE surveys SET due_at = ? WHERE purchase_id = (SELECT id FROM purchases WHERE order_id = ?)",
            [(to_db(now - timedelta(hours=49)), f"S-{user}") for user in LATE_USERS],
        )
    assert [r["n"] for r in bot.rows("SELECT COUNT(*) AS n FROM surveys WHERE status = 'scheduled'")] == [43]


async def test_kill_9_while_a_survey_batch_is_sending(bot, tg):
    await _due_surveys(bot, tg)
    before = {user: len(tg.sent_messages(user)) for user in SURVEY_USERS + LATE_USERS}
    assert all(n == 1 for n in before.values())  # the welcome

    def survey_sends() -> int:
        return sum(len(tg.sent_messages(u)) - before[u] for u in SURVEY_USERS)

    tg.delay_next("sendMessage", 0.4, times=60)  # slow answers: many sends in flight at once
    await bot.start()  # the dispatch job runs at start: 40 due, 3 too late
    await bot.until(lambda: survey_sends() >= 12, what="a dozen surveys reached Telegram")
    await bot.kill()
    assert bot.integrity() == "ok"
    in_flight = bot.rows("SELECT id FROM outbox WHERE status = 'sending'")
    sent_at_kill = survey_sends()

    await bot.start()
    await bot.until(lambda: not bot.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')"),
                    timeout=30, what="outbox drained")
    await bot.terminate()
    assert bot.integrity() == "ok"

    got = {u: len(tg.sent_messages(u)) - before[u] for u in SURVEY_USERS}
    duplicates = sum(max(0, n - 1) for n in got.values())
    never = [u for u, n in got.items() if n == 0]
    statuses = bot.rows("SELECT status, COUNT(*) AS n FROM outbox WHERE survey_id IS NOT NULL GROUP BY status")
    print(f"\nitem 2: survey batch of {len(SURVEY_USERS)}: kill -9 after {sent_at_kill} reached Telegram, "
          f"{len(in_flight)} in flight; after restart: duplicates {duplicates}, never delivered {len(never)}, "
          f"outbox {({r['status']: r['n'] for r in statuses})}")
    # The rule: every due survey sent, at most the in-flight ones twice (survey
    # questions left 'sending' by the kill are sent again at restart).
    assert never == []
    assert duplicates <= len(in_flight)
    assert all(n <= 2 for n in got.values())
    surveys = bot.rows("SELECT p.order_id, s.status, s.skip_reason FROM surveys s"
                       " JOIN purchases p ON p.id = s.purchase_id ORDER BY s.id")
    assert [s["status"] for s in surveys if int(s["order_id"][2:]) in SURVEY_USERS] == ["sent"] * len(SURVEY_USERS)
    # item 3: past the maximum lateness: expired unsent.
    late = [s for s in surveys if int(s["order_id"][2:]) in LATE_USERS]
    assert [(s["status"], s["skip_reason"]) for s in late] == [("skipped", "too_late")] * len(LATE_USERS)
    assert all(len(tg.sent_messages(u)) == before[u] for u in LATE_USERS)


# --- item 9: SIGTERM under load ----------------------------------------------------------------

LOAD_USERS = [640000 + i for i in range(30)]


async def test_sigterm_under_load_finishes_in_flight_work_and_loses_nothing(bot, tg):
    await bot.start()
    tg.delay_next("sendMessage", 1.0, times=len(LOAD_USERS))  # sends in flight when SIGTERM comes
    updates = [tg.push_update(tg.make_message_update(u, "xin chào")) for u in LOAD_USERS]

    async def purchase(i: int) -> int:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{bot.url}/api/v1/purchases",
                json={"order_id": f"L-{i}", "customer": {"external_id": f"C-L{i}", "name": "Lan"},
                      "amount": 1, "touchpoint": "online",
                      "purchased_at": datetime.now(timezone.utc).isoformat()},
                headers={"Authorization": f"Bearer {API_SECRET}"},
            ) as resp:
                return resp.status

    await bot.until(lambda: len(tg.requests_for("sendMessage")) >= 5, what="sends in flight")
    purchases = [asyncio.create_task(purchase(i)) for i in range(10)]
    await asyncio.sleep(0.05)
    took = await bot.terminate()  # exit 0 within the deadline, or the assertion says why
    statuses = await asyncio.gather(*purchases, return_exceptions=True)
    accepted = sum(s == 202 for s in statuses)
    at_stop = {r["status"]: r["n"] for r in bot.rows("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")}
    inbox_at_stop = bot.rows("SELECT COUNT(*) AS n, COUNT(processed_at) AS done FROM inbox")[0]
    print(f"\nitem 9: SIGTERM with {len(tg.requests_for('sendMessage'))} sends made: exit 0 in {took:.2f}s; "
          f"outbox at stop {at_stop}; inbox {inbox_at_stop}; purchases accepted {accepted}/10 "
          f"(others refused: {[s for s in statuses if s != 202]})")
    assert at_stop.get("sending", 0) == 0  # in-flight sends finished and were recorded
    assert at_stop.get("unknown", 0) == 0
    assert bot.integrity() == "ok"

    await bot.start()
    await bot.until(
        lambda: bot.rows("SELECT COUNT(*) AS n FROM inbox WHERE processed_at IS NOT NULL")[0]["n"] == len(LOAD_USERS)
        and not bot.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')"),
        timeout=30, what="every update handled and the outbox drained",
    )
    took_again = await bot.terminate()
    print(f"item 9: second SIGTERM (idle): exit 0 in {took_again:.2f}s")
    inbox = bot.rows("SELECT update_id, error FROM inbox")
    assert sorted(int(r["update_id"]) for r in inbox) == sorted(u["update_id"] for u in updates)
    assert all(r["error"] is None for r in inbox)
    for user in LOAD_USERS:
        assert len(tg.sent_messages(user)) == 1, f"user {user}: {tg.texts(user)}"  # once, never twice
    # Every purchase the bot acknowledged is stored with its survey; none half-written.
    stored = bot.rows("SELECT p.order_id, s.status FROM purchases p JOIN surveys s ON s.purchase_id = p.id")
    assert len(stored) == accepted
    assert bot.rows("SELECT COUNT(*) AS n FROM purchases")[0]["n"] == accepted
    assert {r["status"] for r in bot.rows("SELECT status FROM outbox")} <= {"sent"}
    assert bot.integrity() == "ok"


WEBHOOK_SECRET = "faults-process-webhook-secret-8e2b4d"
HOOK_USERS = [650000 + i for i in range(30)]


async def test_sigterm_with_webhook_requests_in_flight_loses_and_repeats_nothing(tmp_path, tg):
    """Webhook mode: updates arrive while the bot stops. An update the bot acknowledged (200)
    is handled, at once or after the restart; one it did not is redelivered by Telegram (here:
    by the test, which redelivers every update, acknowledged or not) and handled once."""
    port = _free_port()
    bot = BotProcess(tmp_path, tg, http={"port": port, "public_url": f"http://127.0.0.1:{port}"},
                     telegram={"mode": "webhook"})
    os.environ["FEEDBOT_TELEGRAM_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    try:
        await bot.start()
        # The bot serves HTTP before it registers the webhook (Telegram may post at once), so
        # the port opening does not mean setWebhook was sent yet.
        registered = await tg.wait_for_requests("setWebhook", 1, timeout=15)
        assert registered[-1].params["secret_token"] == WEBHOOK_SECRET
        tg.delay_next("sendMessage", 1.0, times=len(HOOK_USERS))
        updates = [tg.make_message_update(u, "xin chào") for u in HOOK_USERS]

        async def deliver(http: aiohttp.ClientSession, update: dict) -> int | str:
            try:
                async with http.post(f"{bot.url}/webhooks/telegram", json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as resp:
                    return resp.status
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        async with aiohttp.ClientSession() as http:
            first = [asyncio.create_task(deliver(http, u)) for u in updates[:20]]
            await bot.until(lambda: len(tg.requests_for("sendMessage")) >= 3, what="sends in flight")

            async def trickle() -> list[int | str]:  # updates keep coming while the bot stops
                answers = []
                for update in updates[20:]:
                    answers.append(await deliver(http, update))
                    await asyncio.sleep(0.2)
                return answers

            rest = asyncio.create_task(trickle())
            took = await bot.terminate()
            answers = [*await asyncio.gather(*first), *await rest]
        acked = [u for u, a in zip(updates, answers) if a == 200]
        print(f"\nitem 9 (webhook): SIGTERM with {len(HOOK_USERS)} updates arriving: exit 0 in {took:.2f}s; "
              f"answers {dict(Counter(map(str, answers)))}")
        recorded = {int(r["update_id"]) for r in bot.rows("SELECT update_id FROM inbox")}
        assert {u["update_id"] for u in acked} <= recorded  # acknowledged means recorded
        assert not any(isinstance(a, int) and a >= 500 for a in answers)
        assert bot.integrity() == "ok"

        await bot.start()
        async with aiohttp.ClientSession() as http:  # Telegram redelivers; here: everything, twice
            for _ in range(2):
                assert await asyncio.gather(*(deliver(http, u) for u in updates)) == [200] * len(updates)
        await bot.until(
            lambda: bot.rows("SELECT COUNT(*) AS n FROM inbox WHERE processed_at IS NOT NULL")[0]["n"] == len(updates)
            and not bot.rows("SELECT id FROM outbox WHERE status IN ('pending', 'sending')"),
            timeout=30, what="every update handled and the outbox drained",
        )
        await bot.terminate()
    finally:
        os.environ.pop("FEEDBOT_TELEGRAM_WEBHOOK_SECRET", None)
        bot.close()
    assert len(bot.rows("SELECT id FROM inbox")) == len(updates)
    for user in HOOK_USERS:
        assert len(tg.sent_messages(user)) == 1, f"user {user}: {tg.texts(user)}"
    assert {r["status"] for r in bot.rows("SELECT status FROM outbox")} == {"sent"}
    assert bot.integrity() == "ok"
