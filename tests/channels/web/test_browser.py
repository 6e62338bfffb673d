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


async def shop_site() -> tuple[web.AppRunner, str, dict[str, str]]:
    """The shop's own site on another origin than the bot's: its page is shop_html["page"]."""
    shop = web.Application()
    shop_html: dict[str, str] = {}

    async def shop_page(request: web.Request) -> web.Response:
        return web.Response(text=shop_html["page"], content_type="text/html")

    shop.router.add_get("/", shop_page)
    runner = web.AppRunner(shop)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://localhost:{runner.addresses[0][1]}", shop_html


async def test_widget_on_the_shops_site_keeps_the_conversation_across_reloads(tmp_path, clock):
    runner, shop_origin, shop_html = await shop_site()
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


async def test_a_visitor_attaches_images_in_the_widget_and_the_agent_page_shows_them(tmp_path, clock):
    """On the shop's site (another origin: CORS, the session token instead of a cookie): an
    image chosen with the keyboard, one pasted, a text file named .png refused with a message;
    an agent opens the question and sees both images."""
    import re

    from playwright.async_api import expect

    from testkit.telegram_api import placeholder_png
    from tests.http.accounts import PASSWORD, ensure_account
    from tests.http.test_agent_page_browser import shot

    runner, shop_origin, shop_html = await shop_site()
    h = Harness(make_config(tmp_path, web={"allowed_origins": [shop_origin]}), None, clock)
    await h.start()
    chosen, pasted = placeholder_png("ảnh chọn", 48), placeholder_png("ảnh dán", 40)
    notes = tmp_path / "ghi-chu.png"
    notes.write_text("Đây là văn bản, không phải ảnh.\n", encoding="utf-8")
    try:
        await ensure_account(h, "Lan Anh")
        shop_html["page"] = (f'<!doctype html><html><body><h1>Shop An</h1>'
                             f'<script src="{h.url}/widget.js" data-shop="Shop An" async></script></body></html>')
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # Playwright takes over the file picker once something listens for it: from the start.
            page.on("filechooser", lambda chooser: None)
            await page.goto(shop_origin)
            await page.get_by_role("button", name="Chat với chúng tôi").click()
            await page.locator(".fb-bot", has_text="Xin chào").wait_for()
            attach = page.get_by_role("button", name="Gửi ảnh")
            await attach.focus()  # the keyboard opens the file picker
            async with page.expect_file_chooser() as chooser:
                await page.keyboard.press("Enter")
            await (await chooser.value).set_files(files=[{"name": "hop.png", "mimeType": "image/png", "buffer": chosen}])
            await expect(page.locator('.fb-image[data-state="sent"]')).to_have_count(1)
            await page.locator(".fb-bot", has_text="đã nhận câu hỏi").wait_for()
            # Pasted into the message box.
            await page.get_by_label("Tin nhắn của bạn").evaluate(
                """(box, bytes) => { const dt = new DataTransfer();
                     dt.items.add(new File([new Uint8Array(bytes)], 'paste.png', {type: 'image/png'}));
                     box.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true})); }""",
                list(pasted))
            await expect(page.locator('.fb-image[data-state="sent"]')).to_have_count(2)
            async with page.expect_file_chooser() as chooser:
                await attach.click()
            await (await chooser.value).set_files(str(notes))
            await page.locator(".fb-notice", has_text="Chỉ gửi được ảnh JPEG, PNG, WebP hoặc GIF.").wait_for()
            await expect(page.locator(".fb-image")).to_have_count(2)  # the refused one is not shown as sent
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await shot(page, "web-chat-images-360.png")
            assert errors == []

            # The agent page shows both images of the question.
            agent = await browser.new_page(viewport=PHONE)
            agent.set_default_timeout(TIMEOUT_MS)
            await agent.goto(f"{h.url}/agent")
            await agent.get_by_label("Tên đăng nhập").fill("lan.anh")
            await agent.get_by_label("Mật khẩu").fill(PASSWORD)
            await agent.get_by_role("button", name="Đăng nhập").click()
            await agent.wait_for_url(re.compile(r"/agent$"))
            await agent.get_by_role("link", name=re.compile("CH-0001")).click()
            await expect(agent.get_by_role("img", name="Ảnh 2 khách gửi")).to_be_visible()
            await agent.wait_for_function("() => { const i = document.querySelectorAll('.photos img');"
                                          " return i.length === 2 && [...i].every(x => x.complete && x.naturalWidth > 0); }")
            await shot(agent, "agent-web-images-360.png")
        uploads = await h.rows("SELECT mime_type, size FROM web_uploads ORDER BY id")
        assert uploads == [{"mime_type": "image/png", "size": len(chosen)}, {"mime_type": "image/png", "size": len(pasted)}]
    finally:
        await h.close()
        await runner.cleanup()
