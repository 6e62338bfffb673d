"""The README's first steps as real processes: `feedbot run` with no tokens starts the web
chat and prints its URL; `feedbot demo` prints a survey link that the page opens;
`feedbot web-token` prints a token the bot accepts."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import aiohttp

from bot.cli.main import main
from bot.channels.web.server import verify_customer_token
from tests.cli.test_main import ROOT, _free_port, _wait_port, feedbot


async def test_run_without_tokens_serves_the_web_chat_and_demo_prints_a_working_link(tmp_path):
    port = _free_port()
    (tmp_path / "config.toml").write_text(f'[http]\nport = {port}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FEEDBOT_TELEGRAM_TOKEN", None)
    out = open(tmp_path / "bot.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_port(url, proc)
        demo = await asyncio.to_thread(feedbot, "demo", cwd=tmp_path)
        assert demo.returncode == 0, demo.stderr
        link = next(line.split(" ", 1)[1] for line in demo.stdout.splitlines() if line.startswith("web: "))
        assert link.startswith(f"{url}/chat?start=")
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/chat/ws") as ws:
            await ws.send_json({"type": "hello", "start": link.split("start=")[1]})
            async with asyncio.timeout(10):
                while "hài lòng" not in (frame := json.loads((await ws.receive()).data)).get("text", ""):
                    pass
            assert frame["buttons"] and frame["type"] == "message"  # the demo survey, due at once
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        out.seek(0)
        logs = out.read()
        out.close()
    assert proc.returncode == 0, logs
    assert f"Web chat: http://127.0.0.1:{port}/chat" in logs


def test_web_token_is_signed_with_the_kept_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDBOT_WEB_SECRET", raising=False)

    def cli(*args: str) -> str:
        assert main(list(args)) == 0
        return capsys.readouterr().out.strip()

    token = cli("web-token", "C-42", "--days", "1")
    secret = cli("web-token", "--show-secret")
    assert len(secret) >= 32 and cli("web-token", "--show-secret") == secret  # kept, not regenerated
    assert verify_customer_token(secret, token, time.time()) == "C-42"
    assert verify_customer_token(secret, token, time.time() + 2 * 86400) is None  # expired
    monkeypatch.setenv("FEEDBOT_WEB_SECRET", "shop-secret-from-env-123")
    assert verify_customer_token("shop-secret-from-env-123", cli("web-token", "C-42"), time.time()) == "C-42"
    assert main(["web-token"]) == 2
