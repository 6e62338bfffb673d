"""The `feedbot` command line, run as a real process."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import BOT_TOKEN, purchase_body

ROOT = Path(__file__).resolve().parents[2]


def feedbot(*args: str, cwd: Path, env: dict | None = None, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


@pytest.mark.parametrize("args", [[], ["run"], ["check-config"], ["db"], ["db", "migrate"], ["db", "copy"], ["api-token"],
                                  ["user"], ["user", "add"], ["user", "passwd"]])
def test_help_on_every_command(tmp_path, args):
    result = feedbot(*args, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: feedbot")


def test_check_config_names_the_bad_key(tmp_path):
    (tmp_path / "config.toml").write_text('[survey]\nquiet_hours = "late"\n')
    result = feedbot("check-config", cwd=tmp_path)
    assert result.returncode == 2
    assert "survey.quiet_hours" in result.stderr


def test_check_config_ok_on_defaults(tmp_path):
    result = feedbot("check-config", cwd=tmp_path)
    assert result.returncode == 0 and "config OK (embedded defaults)" in result.stdout


def test_run_with_bad_config_stops_before_starting(tmp_path):
    result = feedbot("run", cwd=tmp_path, env={"FEEDBOT_TELEGRAM_TOKEN": "garbage"})
    assert result.returncode == 2 and "telegram.token" in result.stderr
    assert not (tmp_path / "feedbot.db").exists()


def test_db_migrate_and_api_token_are_stable(tmp_path):
    first = feedbot("db", "migrate", cwd=tmp_path)
    assert first.returncode == 0 and "0001_initial.sql" in first.stdout
    assert "up to date" in feedbot("db", "migrate", cwd=tmp_path).stdout
    token = feedbot("api-token", cwd=tmp_path).stdout.strip()
    assert len(token) >= 30
    assert feedbot("api-token", cwd=tmp_path).stdout.strip() == token


async def _wait_port(url: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"feedbot exited early with {proc.returncode}")
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("feedbot did not start listening")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_real_process_serves_telegram_and_never_logs_the_token(tmp_path, tg):
    port = _free_port()
    (tmp_path / "config.toml").write_text(
        f'[telegram]\napi_base_url = "{tg.api_root}"\npoll_timeout = 1\n'
        f'[http]\nport = {port}\n[logging]\nlevel = "DEBUG"\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FEEDBOT_TELEGRAM_TOKEN": BOT_TOKEN,
           "FEEDBOT_API_TOKEN": "api-secret-token-xyz-123"}
    # Output to a file, not a pipe: a pipe nobody reads fills up and blocks the bot.
    log_file = open(tmp_path / "bot.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env,
                            stdout=log_file, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_port(url, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/v1/purchases", json=purchase_body(),
                                 headers={"Authorization": "Bearer api-secret-token-xyz-123"}) as resp:
                assert resp.status == 202
                token = (await resp.json())["links"]["telegram"].split("start=")[1]
        tg.push_update(tg.make_message_update(4242, f"/start {token}"))
        welcome = await tg.wait_for_messages(4242, 1, timeout=10)
        assert "#A-1001" in welcome[0].text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        logs = (tmp_path / "bot.log").read_text()
        log_file.close()
    assert proc.returncode == 0, logs
    assert "feedbot is running" in logs and "@feedbot_test_bot" in logs
    assert BOT_TOKEN not in logs and BOT_TOKEN.split(":")[1] not in logs
    assert "api-secret-token-xyz-123" not in logs
    assert "stopped" in logs


def test_config_is_accepted_before_the_command_too(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text('[shop]\nname = "Shop Trước"\n')
    before = feedbot("--config", str(config), "check-config", cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert f"config OK ({config})" in before.stdout and "Shop Trước" in before.stdout
    after = feedbot("check-config", "--config", str(config), cwd=tmp_path)
    assert after.stdout == before.stdout


def test_check_config_prints_durations_and_quiet_hours_as_written(tmp_path):
    (tmp_path / "config.toml").write_text('[survey]\ndelay = "90m"\nquiet_hours = "08:00-08:00"\nexpires_after = "14d"\n')
    result = feedbot("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "surveys: 1h30m after purchase, quiet hours none, expire after 14d," in result.stdout
    (tmp_path / "config.toml").unlink()
    defaults = feedbot("check-config", cwd=tmp_path)
    assert "surveys: 3h after purchase, quiet hours 21:00-08:00, expire after 72h," in defaults.stdout


def test_run_on_a_port_in_use_says_so_and_exits_2(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "config.toml").write_text(f"[http]\nport = {port}\n")
        result = feedbot("run", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"port {port} is in use: set http.port" in result.stderr
    assert "Traceback" not in result.stderr


async def test_telegram_start_errors_say_what_is_wrong(tmp_path, tg):
    from bot.app import FeedbotApp, StartupError
    from tests.conftest import make_config

    async def start_error(**telegram) -> str:
        app = FeedbotApp(make_config(tmp_path, tg, telegram=telegram))
        try:
            with pytest.raises(StartupError) as info:
                await app.start(scheduler=False)
        finally:
            await app.stop()
        return str(info.value)

    wrong_path = await start_error(api_base_url=f"{tg.api_root}/telegram")  # e.g. a proxy's path that is not there
    assert wrong_path.startswith(f"telegram.api_base_url: the server at {tg.api_root}/telegram answered 404 Not Found")
    assert "without /bot" in wrong_path
    refused = await start_error(token="123456789:" + "X" * 35)
    assert refused.startswith("telegram.token: Telegram did not accept the bot token (401 Unauthorized)")
    unreachable = await start_error(api_base_url=f"http://127.0.0.1:{_free_port()}")
    assert unreachable.startswith("telegram.api_base_url: could not reach the Bot API at http://127.0.0.1:")


def test_digest_png_without_output_goes_next_to_the_database_and_prints_where(tmp_path):
    work, data = tmp_path / "clone", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    (work / "config.toml").write_text(f'[database]\npath = "{data / "feedbot.db"}"\n')
    result = feedbot("digest", "--week", "2026-W47", "--format", "png", cwd=work)
    assert result.returncode == 0, result.stderr
    chart = data / "digests" / "digest-2026-W47.png"
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert str(chart) in result.stdout
    assert sorted(p.name for p in work.iterdir()) == ["config.toml"]  # nothing written into the current folder


def test_digest_send_queues_the_language_it_prints(tmp_path):
    import sqlite3

    (tmp_path / "config.toml").write_text('[agents]\nowner_chat_ids = [111]\n[digest]\nlanguage = "vi"\n')
    result = feedbot("digest", "--week", "2026-W47", "--send", "--language", "en", cwd=tmp_path,
                     env={"FEEDBOT_TELEGRAM_TOKEN": BOT_TOKEN})
    assert result.returncode == 0, result.stderr
    assert "weekly report" in result.stdout.lower() or "week 2026-W47" in result.stdout
    with sqlite3.connect(tmp_path / "feedbot.db") as conn:
        rows = conn.execute("SELECT method, payload FROM outbox WHERE chat_id = '111' ORDER BY id").fetchall()
        sent_language = conn.execute("SELECT language FROM digests_sent").fetchall()
    texts = [json.loads(payload)["text"] for _, payload in rows]
    assert texts[0] == result.stdout.rstrip("\n")  # what was printed is what the owner gets
    assert texts[1].startswith("📈 Chart") and sent_language == [("en",)]
