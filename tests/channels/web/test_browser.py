"""The web chat in a real browser (headless Chromium, phone-sized): a customer opens the
survey link from the purchase API, answers by clicking, files a complaint; the database
has the score and the ticket."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.browser import PHONE, chromium
from tests.conftest import Harness, hours, make_config

TIMEOUT_MS = 10_000


async def test_survey_and_complaint_in_a_real_browser(tmp_path, clock):
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    try:
        status, body = await h.post_purchase()
        assert status == 202
        h.clock.advance(hours(3))  # the survey is due
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            await page.goto(body["links"]["web"])
            await page.get_by_role("status").filter(has_text="Đã kết nối").wait_for(timeout=TIMEOUT_MS)

            async def tap(label: str) -> None:
                button = page.locator(".fb-bot").get_by_role("button", name=label, exact=True).last
                await button.click(timeout=TIMEOUT_MS)

            async def shown(text: str) -> None:
                await page.locator(".fb-bot", has_text=text).last.wait_for(timeout=TIMEOUT_MS)

            await shown("hài lòng thế nào với đơn hàng #A-1001")
            await tap("2 🙁")
            await shown("Bạn đã chọn: 2/5")  # the question is edited, its buttons gone
            assert await page.locator(".fb-bot").filter(has_text="Bạn đã chọn").get_by_role("button").count() == 0
            await shown("Chuyện gì đã xảy ra")
            await tap("Gửi khiếu nại")
            await shown("Vấn đề thuộc loại nào")
            # Keyboard only: focus the button and press Enter.
            await page.locator(".fb-bot").get_by_role("button", name="Giao hàng", exact=True).last.focus()
            await page.keyboard.press("Enter")
            await shown("mô tả giúp")
            message = page.get_by_label("Tin nhắn của bạn")
            await message.fill("Hộp bị móp, giao trễ 3 ngày")
            await message.press("Enter")
            await shown("Bạn có ảnh nào không")
            await tap("Tiếp tục")
            await shown("Gửi khiếu nại này?")
            await tap("Gửi")
            await shown("Đã ghi nhận khiếu nại KN-")
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]  # nothing sticks out of a phone-sized screen
        survey = (await h.rows("SELECT score, status FROM surveys"))[0]
        ticket: dict[str, Any] = (await h.rows("SELECT t.category, t.description, t.status, p.order_id FROM tickets t"
                                               " JOIN purchases p ON p.id = t.purchase_id"))[0]
        assert survey == {"score": 2, "status": "answered"}
        assert ticket == {"category": "delivery", "description": "Hộp bị móp, giao trễ 3 ngày", "status": "open",
                          "order_id": "A-1001"}
    finally:
        await h.close()


async def test_widget_on_the_shops_site_keeps_the_conversation_across_reloads(tmp_path, clock):
    shop = web.Application()
    shop_html: dict[str, str] = {}

    async def shop_page(request: web.Request) -> web.Response:
        return web.Response(text=shop_html["page"], content_type="text/html")

    shop.router.add_get("/", shop_page)
    runner = web.AppRunner(shop)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    shop_origin = f"http://localhost:{runner.addresses[0][1]}"  # another origin than the bot's
    h = Harness(make_config(tmp_path, web={"allowed_origins": [shop_origin]}), None, clock)
    await h.start()
    try:
        shop_html["page"] = (f'<!doctype html><html><body><h1>Shop An</h1>'
                             f'<script src="{h.url}/widget.js" data-shop="Shop An" async></script></body></html>')
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            await page.goto(shop_origin)
            launcher = page.get_by_role("button", name="Chat với chúng tôi")
            await launcher.click(timeout=TIMEOUT_MS)
            assert await launcher.get_attribute("aria-expanded") == "true"
            await page.locator(".fb-bot", has_text="Xin chào").wait_for(timeout=TIMEOUT_MS)
            box = page.get_by_label("Tin nhắn của bạn")
            await box.fill("Cửa hàng mở cửa mấy giờ?")
            await box.press("Enter")
            await page.locator(".fb-bot", has_text="đã nhận câu hỏi").wait_for(timeout=TIMEOUT_MS)
            await page.reload()
            await page.get_by_role("button", name="Chat với chúng tôi").click(timeout=TIMEOUT_MS)
            await page.locator(".fb-me", has_text="Cửa hàng mở cửa mấy giờ?").wait_for(timeout=TIMEOUT_MS)
        contacts = await h.rows("SELECT channel FROM contacts")
        assert contacts == [{"channel": "web"}]  # the reload resumed the same session
    finally:
        await h.close()
        await runner.cleanup()


async def test_without_chromium_the_browser_tests_skip_and_say_why(tmp_path):
    with pytest.raises(pytest.skip.Exception, match="headless Chromium not available: .*missing"):
        async with chromium(str(tmp_path / "no-chromium")):
            pass
    broken = tmp_path / "chromium"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(pytest.skip.Exception, match="headless Chromium not available: "):
        async with chromium(str(broken)):
            pass
