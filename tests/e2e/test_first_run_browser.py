"""Issue 5's promise, in a real browser: the README's run command with NO tokens configured
starts the bot with its web chat and prints the local URL; a new visitor opens it, tries
the demo survey, answers it with a low score, files a complaint; an agent signs in to
/agent with the account the printed setup link made, opens the ticket, replies and resolves it; the visitor sees the
reply and the resolution question in the chat page and rates the handling.

Everything runs for real: `python -m bot.cli run` as a child process on the embedded
defaults (a config file that only picks a free port; the database is the default
./feedbot.db in a tmp folder), the first owner's setup link printed at start, and Debian's
headless Chromium (tests/browser.py; skipped with the reason where it is missing).
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys

from tests import secrets_guard
from tests.browser import PHONE, chromium
from tests.cli.test_main import ROOT, _free_port, _wait_port, feedbot

TIMEOUT_MS = 10_000
REPLY = "Shop gửi hộp mới cho bạn chiều nay ạ"
DESCRIPTION = "Hộp bị móp, giao trễ 3 ngày"


async def test_first_run_without_tokens_demo_survey_complaint_and_agent_page(tmp_path):
    from playwright.async_api import expect

    port = _free_port()
    (tmp_path / "config.toml").write_text(f"[http]\nport = {port}\n")  # everything else: the defaults
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("FEEDBOT_TELEGRAM_TOKEN", "FEEDBOT_API_TOKEN", "FEEDBOT_ZALO_ACCESS_TOKEN"):
        env.pop(name, None)
    log_path = tmp_path / "bot.log"
    secrets_guard.watch_file(log_path)
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], cwd=tmp_path, env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    try:
        await _wait_port(f"http://127.0.0.1:{port}", proc, timeout=30)
        printed = re.search(r"Web chat: (\S+)", log_path.read_text())
        assert printed, log_path.read_text()
        chat_url = printed.group(1)
        assert chat_url == f"http://127.0.0.1:{port}/chat"
        offered = re.search(r"(http://\S+/setup\?code=\S+)", log_path.read_text())
        assert offered, log_path.read_text()
        setup_link = offered.group(1)

        async with chromium() as browser:
            visitor = await (await browser.new_context(viewport=PHONE)).new_page()
            visitor.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            visitor.on("pageerror", lambda exc: errors.append(str(exc)))
            bot = visitor.locator(".fb-bot")

            async def shown(text: str) -> None:
                await bot.filter(has_text=text).last.wait_for()

            async def tap(label: str | re.Pattern, in_message: str) -> None:
                await bot.filter(has_text=in_message).last.get_by_role("button", name=label).click()

            await visitor.goto(chat_url)
            await visitor.get_by_role("status").filter(has_text="Đã kết nối").wait_for()
            await shown("Xin chào")
            await visitor.get_by_role("button", name="Thử khảo sát mẫu (demo)").click()  # demo mode: no tokens
            await shown("hài lòng thế nào với đơn hàng")
            await tap(re.compile(r"^2\b"), "hài lòng thế nào")
            await shown("Bạn đã chọn: 2/5")
            await tap("Gửi khiếu nại", "Chuyện gì đã xảy ra")
            await tap("Giao hàng", "Vấn đề thuộc loại nào")
            await shown("mô tả giúp")
            box = visitor.get_by_label("Tin nhắn của bạn")
            await box.fill(DESCRIPTION)
            await box.press("Enter")
            await tap("Tiếp tục", "Bạn có ảnh nào không")
            await tap(re.compile(r"^Gửi$"), "Gửi khiếu nại này?")
            await shown("Đã ghi nhận khiếu nại KN-0001")

            # The owner, in another browser (no shared cookies): the one-time setup link the
            # bot printed (no account yet) makes their account; then /agent. The API token
            # no longer signs anyone in to the web.
            agent = await (await browser.new_context(viewport=PHONE)).new_page()
            agent.set_default_timeout(TIMEOUT_MS)
            agent.on("pageerror", lambda exc: errors.append(f"agent: {exc}"))
            await agent.goto(setup_link)
            await agent.get_by_label("Tên đăng nhập").fill("lananh")
            await agent.get_by_label("Tên hiển thị").fill("Lan Anh")
            await agent.get_by_label("Mật khẩu", exact=True).fill("mat-khau-cua-lan-anh")
            await agent.get_by_label("Nhập lại mật khẩu").fill("mat-khau-cua-lan-anh")
            await agent.get_by_role("button", name="Đăng nhập").click()
            await agent.wait_for_url(re.compile(r"/dashboard$"))
            await agent.goto(chat_url.replace("/chat", "/agent"))
            await agent.get_by_role("link", name=re.compile("KN-0001")).click()
            await expect(agent.locator("#facts")).to_contain_text(DESCRIPTION)
            await agent.get_by_label("Trả lời khách").fill(REPLY)
            await agent.get_by_role("button", name="Gửi cho khách").click()
            await expect(agent.get_by_role("status")).to_have_text("Đã gửi cho khách.")
            await agent.get_by_role("button", name="✅ Đã xong").click()
            await expect(agent.get_by_role("status")).to_contain_text("Đã đóng KN-0001")

            # Back in the chat page, without a reload: the reply, then the resolution question.
            await shown(f"(KN-0001): {REPLY}")
            await shown("KN-0001 đã được xử lý xong")
            await tap(re.compile(r"^5\b"), "đã được xử lý xong")
            await shown("Bạn đã chọn: 5/5")
            assert errors == []

        def rows(sql: str) -> list[dict]:
            with sqlite3.connect(tmp_path / "feedbot.db", timeout=10) as conn:  # the default path
                conn.row_factory = sqlite3.Row
                return [dict(r) for r in conn.execute(sql)]

        assert rows("SELECT s.score, s.status, c.channel FROM surveys s JOIN contacts c ON c.customer_id = s.customer_id") \
            == [{"score": 2, "status": "answered", "channel": "web"}]
        ticket = rows("SELECT category, description, status, resolution_score, assignee_name FROM tickets")
        assert ticket == [{"category": "delivery", "description": DESCRIPTION,
                           "status": "resolved", "resolution_score": 5, "assignee_name": "Lan Anh"}]
        actions = [(r["action"], r["actor_name"]) for r in rows("SELECT action, actor_name FROM ticket_events ORDER BY id")]
        assert actions == [("opened", "Khách demo"), ("reply", "Lan Anh"), ("resolved", "Lan Anh"), ("rated", None)]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, log_path.read_text()
