"""Sending the weekly digest end to end: the real app, the fake Bot API, a real SQLite file.
Each owner chat gets the text and the chart once per week, whatever reruns, restarts or
missing photo support; the CLI and the HTTP API give the same JSON."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage import digests
from tests.conftest import API_TOKEN, Harness, make_config
from tests.digest_data import ShopData, local
from testkit.telegram_api import UploadedFile
from tests.services.test_digest import png_size, typical_week

ROOT = Path(__file__).resolve().parents[2]
OWNER_VI, OWNER_EN = 777, 778
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def config(tmp_path, tg, database_url=None):
    return make_config(
        tmp_path, tg, database_url=database_url,
        agents={"owner_chat_ids": [OWNER_VI, OWNER_EN]},
        digest={"english_owner_chat_ids": [OWNER_EN]},
    )


@pytest.fixture
async def h(tmp_path, tg, clock):
    harness = Harness(config(tmp_path, tg), tg, clock)
    await harness.start()
    await typical_week(ShopData(harness.app.db))
    yield harness
    await harness.close()


async def digest_messages(tg, chat_id: int, count: int, timeout: float = 15.0) -> list:
    """The digest's messages to an owner (owners also get SLA breach alerts)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        mine = [m for m in tg.sent_messages(chat_id) if m.method == "sendPhoto" or " 2026-W" in (m.text or "")]
        if len(mine) >= count:
            return mine
        if loop.time() > deadline:
            raise AssertionError(f"expected {count} digest messages to {chat_id}, got {[m.text for m in mine]}")
        await asyncio.sleep(0.05)


def assert_chart(message) -> None:
    assert message.method == "sendPhoto"
    upload = message.params["photo"]
    assert isinstance(upload, UploadedFile) and upload.filename == "digest-2026-W47.png"
    width, height = png_size(upload.data)
    assert 600 <= width <= 3000 and 600 <= height <= 3000
    assert 10_000 < len(upload.data) < 2_000_000


async def test_each_owner_gets_text_and_chart_once(h, tg):
    assert await h.app.digests.send_due() == 2  # Monday 09:00: W47 is due
    text_vi, chart_vi = await tg.wait_for_messages(OWNER_VI, 2)
    assert text_vi.method == "sendMessage" and text_vi.text.startswith("📊 Shop An · báo cáo tuần 2026-W47")
    assert "⭐ CSAT 62,5%" in text_vi.text
    assert_chart(chart_vi)
    assert chart_vi.text == "📈 Biểu đồ tuần 2026-W47"
    text_en, chart_en = await tg.wait_for_messages(OWNER_EN, 2)
    assert "weekly report 2026-W47" in text_en.text and "⭐ CSAT 62.5%" in text_en.text
    assert_chart(chart_en)

    # A rerun sends nothing.
    assert await h.app.digests.send_due() == 0
    await h.app.sender.drain()
    sent = await h.rows("SELECT owner_chat_id, week, language FROM digests_sent ORDER BY owner_chat_id")
    assert sent == [{"owner_chat_id": "777", "week": "2026-W47", "language": "vi"},
                    {"owner_chat_id": "778", "week": "2026-W47", "language": "en"}]

    # Nor does a restart.
    await h.stop()
    await h.start()
    assert await h.app.digests.send_due() == 0
    await h.app.sender.drain()
    assert len(tg.sent_messages(OWNER_VI)) == 2 and len(tg.sent_messages(OWNER_EN)) == 2
    rows = await h.rows("SELECT chat_id, method, status FROM outbox ORDER BY id")
    assert rows == [
        {"chat_id": "777", "method": "send_text", "status": "sent"},
        {"chat_id": "777", "method": "send_photo_file", "status": "sent"},
        {"chat_id": "778", "method": "send_text", "status": "sent"},
        {"chat_id": "778", "method": "send_photo_file", "status": "sent"},
    ]


async def test_nothing_before_the_send_time(h, tg):
    async with h.app.db.transaction() as tx:  # last week's went out a week ago
        for owner in ("777", "778"):
            await digests.mark_sent(tx, owner, "2026-W46", "vi", local(16, 8))
    h.clock.set(local(23, 7, 59))
    assert await h.app.digests.send_due() == 0
    h.clock.set(local(23, 8, 0))
    assert await h.app.digests.send_due() == 2


async def test_a_missed_monday_goes_out_when_the_bot_comes_back(h, tg):
    assert await h.app.digests.send_due() == 2
    await tg.wait_for_messages(OWNER_VI, 2)
    await h.stop()
    # Down from Monday 23 Nov until Wednesday 2 Dec: Monday 30 Nov 08:00 (W48) was missed.
    h.clock.set(local(2, 10, month=12))
    await h.start(scheduler=True)  # the scheduled check runs at start
    messages = await digest_messages(tg, OWNER_VI, 4)
    assert "báo cáo tuần 2026-W48" in messages[2].text and messages[3].method == "sendPhoto"
    assert "weekly report 2026-W48" in (await digest_messages(tg, OWNER_EN, 4))[2].text
    assert await h.app.digests.send_due() == 0
    await h.app.sender.drain()
    assert len(await digest_messages(tg, OWNER_VI, 4)) == 4
    weeks = await h.rows("SELECT week FROM digests_sent WHERE owner_chat_id = '777' ORDER BY week")
    assert [r["week"] for r in weeks] == ["2026-W47", "2026-W48"]


async def test_only_the_latest_missed_week_goes_out(h, tg):
    h.clock.set(local(9, 10, month=12))  # W47, W48 and W49 all missed (down since 22 Nov): only W49 is sent
    assert await h.app.digests.send_due() == 2
    text = (await tg.wait_for_messages(OWNER_VI, 2))[0].text
    assert "2026-W49" in text


async def test_no_digest_for_a_week_over_before_the_first_data(tmp_path, tg, clock):
    fresh = Harness(config(tmp_path, tg), tg, clock)  # first start on Monday 23 Nov 09:00: W47 is due
    await fresh.start()
    try:
        assert await fresh.app.digests.send_due() == 0  # an empty database: no report of nothing
        await fresh.customer_says(4242, "/start")  # the first data, after W47 ended
        assert await fresh.app.digests.send_due() == 0
        assert await fresh.rows("SELECT * FROM digests_sent") == []
        clock.set(local(30, 8, 0))  # W48 holds the first message: its digest goes out
        assert await fresh.app.digests.send_due() == 2
        assert "2026-W48" in (await digest_messages(tg, OWNER_VI, 1))[0].text
    finally:
        await fresh.close()


async def test_the_text_arrives_when_the_channel_cannot_send_photos(h, tg):
    tg.disable_method("sendPhoto")  # e.g. a Bot API server without it
    assert await h.app.digests.send_due() == 2
    await h.app.sender.drain()
    assert [m.method for m in tg.sent_messages(OWNER_VI)] == ["sendMessage"]
    assert "báo cáo tuần 2026-W47" in tg.sent_messages(OWNER_VI)[0].text
    photos = await h.rows("SELECT status FROM outbox WHERE method = 'send_photo_file'")
    assert [p["status"] for p in photos] == ["failed", "failed"]
    assert await h.app.digests.send_due() == 0  # a failed chart is not a reason to send it all again


async def test_no_owners_and_no_webhook_nothing_is_sent(tmp_path, tg, clock):
    # The job runs (an endpoint subscribed to digest.ready may be added while the bot runs:
    # tests/webhooks/test_events.py), and with neither owners nor subscribers sends nothing.
    h = Harness(make_config(tmp_path, tg), tg, clock)
    try:
        await h.start(scheduler=True)
        assert not h.app.digests.can_send and "weekly-digest" in [j.id for j in h.app.scheduler.get_jobs()]
        await typical_week(ShopData(h.app.db))
        assert await h.app.digests.send_due() == 0
        assert await h.rows("SELECT * FROM digests_sent") == []
    finally:
        await h.close()


# --- the same numbers from the HTTP API and the CLI ----------------------------------------------


def feedbot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def get(h: Harness, query: str, headers: dict | None = None) -> tuple[int, dict]:
    async with h.http.get(f"{h.url}/api/v1/reports/weekly{query}", headers=AUTH if headers is None else headers) as resp:
        return resp.status, await resp.json()


async def test_http_and_cli_json_agree(h, tmp_path):
    status, body = await get(h, "?week=2026-W47")
    assert status == 200 and body["week"] == "2026-W47" and body["csat"]["csat_pct"] == 62.5
    assert (await get(h, ""))[1] == body  # default: the last complete week (the clock says 23 Nov)

    (tmp_path / "cli.toml").write_text(f'[shop]\nname = "Shop An"\n[database]\npath = "{tmp_path / "feedbot.db"}"\n')
    result = feedbot("digest", "--week", "2026-W47", "--format", "json", "--config", str(tmp_path / "cli.toml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == body


async def test_http_rejects_a_bad_week_and_a_missing_token(h):
    status, body = await get(h, "?week=2026-47")
    assert status == 400 and body["error"]["field"] == "week" and "2026-W47" in body["error"]["message"]
    status, _ = await get(h, "?week=2026-W47", headers={})
    assert status == 401


async def test_cli_text_png_and_errors(h, tmp_path):
    cfg = tmp_path / "cli.toml"
    cfg.write_text(f'[shop]\nname = "Shop An"\n[database]\npath = "{tmp_path / "feedbot.db"}"\n')
    text = feedbot("digest", "--week", "2026-W47", "--language", "en", "--config", str(cfg), cwd=tmp_path)
    assert text.returncode == 0 and "⭐ CSAT 62.5%" in text.stdout
    png = feedbot("digest", "--week", "2026-W47", "--format", "png", "--config", str(cfg), cwd=tmp_path)
    assert png.returncode == 0, png.stderr
    width, height = png_size((tmp_path / "digests" / "digest-2026-W47.png").read_bytes())
    assert 600 <= width <= 3000 and 600 <= height <= 3000
    bad = feedbot("digest", "--week", "2026-W60", "--config", str(cfg), cwd=tmp_path)
    assert bad.returncode == 2 and "--week" in bad.stderr and "2026-W47" in bad.stderr
    no_owner = feedbot("digest", "--send", "--config", str(cfg), cwd=tmp_path)
    assert no_owner.returncode == 2 and "agents.owner_chat_ids" in no_owner.stderr
    for command in ("digest", "export"):
        helped = feedbot(command, "--help", cwd=tmp_path)
        assert helped.returncode == 0 and helped.stdout.startswith(f"usage: feedbot {command}")
