"""The agents' page in a real headless Chromium (tests/browser.py: Debian's /usr/bin/chromium
driven by Playwright; skipped with the reason where that browser is missing or cannot start)."""
from __future__ import annotations

import os
import re

from tests.browser import PHONE, chromium
from tests.conftest import Harness, make_config
from tests.http.accounts import PASSWORD, ensure_account
from tests.http.test_agent_page import CUSTOMER, file_complaint

TIMEOUT_MS = 10_000


async def shot(page, name: str) -> None:
    """With FEEDBOT_SCREENSHOTS=<folder>, keep a full-page screenshot to look at."""
    if os.environ.get("FEEDBOT_SCREENSHOTS"):
        await page.screenshot(path=os.path.join(os.environ["FEEDBOT_SCREENSHOTS"], name), full_page=True)


async def test_an_agent_signs_in_answers_and_resolves_on_a_phone_sized_screen(tmp_path, tg, clock):
    from playwright.async_api import expect

    h = Harness(make_config(tmp_path, tg, agent_page={"poll_interval": "1s"}), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "Lan Anh")
        await file_complaint(h, tg, 'Hộp bị móp <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">')
        async with chromium() as browser:
            page = await browser.new_page(viewport=PHONE)
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            await page.goto(f"{h.url}/agent")
            assert page.url.endswith("/login?next=/agent")
            await page.get_by_label("Tên đăng nhập").fill("lan.anh")
            await page.get_by_label("Mật khẩu").fill("wrong-password")
            await page.get_by_role("button", name="Đăng nhập").click()
            await expect(page.get_by_role("alert")).to_have_text("Sai tên đăng nhập hoặc mật khẩu.")
            await page.get_by_label("Mật khẩu").fill(PASSWORD)
            await page.get_by_label("Mật khẩu").press("Enter")
            await page.wait_for_url(re.compile(r"/agent$"))

            link = page.get_by_role("link", name=re.compile("KN-0001"))
            await expect(link).to_contain_text("Chờ nhận")
            await expect(page.locator("#tickets")).to_contain_text("Nguyễn Thị Lan")
            await shot(page, "agent-list.png")
            await link.focus()  # the keyboard opens a ticket
            await page.keyboard.press("Enter")
            heading = page.get_by_role("heading", name="KN-0001 · Giao hàng")
            await expect(heading).to_be_focused()
            facts = page.locator("#facts")
            await expect(facts).to_contain_text("<script>window.__pwned = 1</script>")  # shown as text
            assert await page.evaluate("window.__pwned") is None

            # The customer writes while the page is open: it appears without a reload.
            await h.customer_says(CUSTOMER, "Khi nào shop gửi hàng bù ạ?")
            await expect(page.locator("#events")).to_contain_text("Khi nào shop gửi hàng bù ạ?")
            await expect(page.locator("#announce")).to_contain_text("Khi nào shop gửi hàng bù ạ?")

            await page.get_by_label("Trả lời khách").fill("Chiều nay shop gửi ạ")
            await page.get_by_role("button", name="Gửi cho khách").click()
            await expect(page.get_by_role("status")).to_have_text("Đã gửi cho khách.")
            await expect(page.get_by_label("Trả lời khách")).to_have_value("")
            await page.get_by_role("button", name="✅ Đã xong").click()
            await expect(page.get_by_role("status")).to_contain_text("Đã đóng KN-0001")
            await expect(page.get_by_role("button", name="✅ Đã xong")).to_be_disabled()

            # Nothing is wider than a 360 px phone screen.
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            await shot(page, "agent-ticket.png")
            assert errors == []

        texts = [m.text for m in await tg.wait_for_messages(CUSTOMER, 9)]
        assert texts[7] == "💬 Shop An (KN-0001): Chiều nay shop gửi ạ"
        assert "KN-0001 đã được xử lý xong" in texts[8]
        ticket = (await h.rows("SELECT status, assignee_name FROM tickets"))[0]
        assert ticket == {"status": "resolved", "assignee_name": "Lan Anh"}
        actions = [(r["action"], r["actor_name"]) for r in await h.rows("SELECT action, actor_name FROM ticket_events ORDER BY id")]
        assert actions == [("opened", "Nguyễn Thị Lan"), ("customer_message", "Nguyễn Thị Lan"),
                           ("reply", "Lan Anh"), ("resolved", "Lan Anh")]
    finally:
        await h.close()


DESKTOP = {"width": 1280, "height": 900}


async def test_the_page_receives_a_new_complaint_without_polling_shows_its_photo_and_inserts_a_canned_reply(
        tmp_path, tg, clock):
    """poll_interval is 10 minutes: whatever arrives within the test came by the push stream."""
    from playwright.async_api import expect

    from tests.digest_data import local
    from tests.http.agent_data import Desk

    h = Harness(make_config(tmp_path, tg, agent_page={"poll_interval": "10m"}), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "Chủ Shop", "owner")
        async with chromium() as browser:
            for viewport, suffix in ((DESKTOP, "1280"), (PHONE, "360")):
                page = await browser.new_page(viewport=viewport)
                page.set_default_timeout(TIMEOUT_MS)
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{h.url}/agent")
                await page.get_by_label("Tên đăng nhập").fill("chu.shop")
                await page.get_by_label("Mật khẩu").fill(PASSWORD)
                await page.get_by_role("button", name="Đăng nhập").click()
                await page.wait_for_url(re.compile(r"/agent$"))
                await expect(page.locator("body.ready")).to_be_attached()
                if suffix == "1280":  # the owner writes a canned reply in the page's settings
                    admin = page.get_by_role("region", name="Mẫu trả lời (chủ shop quản lý)")
                    await admin.get_by_label("Tên mẫu").fill("Xin lỗi")
                    await admin.get_by_label("Nội dung").fill("Chào {ten_khach}, shop xin lỗi về {ma_phieu} ạ.")
                    await admin.get_by_role("button", name="Thêm mẫu").click()
                    await expect(page.get_by_role("status")).to_have_text("Đã thêm mẫu “Xin lỗi”.")

                # A complaint with a photo arrives while the page is open.
                desk = Desk(h.app.db)
                desk._n = 100 if suffix == "360" else 0
                customer = await desk.customer("Nguyễn Thị Lan")
                photo = f"AgACAgIAAxkBPhotoOfTheBox{suffix}"
                tg.register_file_id(photo)
                ticket = await desk.complaint(customer_id=customer, purchase_id=await desk.purchase(customer, local(20)),
                                              user=900 + int(suffix), photos=(photo,))
                number = f"KN-{ticket:04d}"
                link = page.get_by_role("link", name=re.compile(number))
                await expect(link).to_be_visible()  # no reload, no poll within 10 minutes
                await expect(page.locator("#announce")).to_contain_text(f"Khiếu nại mới: {number}")
                await shot(page, f"agent-push-list-{suffix}.png")

                await link.click()
                image = page.get_by_role("img", name="Ảnh 1 khách gửi")
                await expect(image).to_be_visible()
                await page.wait_for_function("() => { const i = document.querySelector('.photos img');"
                                             " return i && i.complete && i.naturalWidth > 0; }")
                # The customer writes again: it shows in the open ticket, pushed.
                await desk.event(ticket, "customer_message", local(22, 10), "Shop ơi, có ai không?")
                await expect(page.locator("#events")).to_contain_text("Shop ơi, có ai không?")
                await page.get_by_label("Mẫu trả lời", exact=True).select_option(label="Xin lỗi")
                await expect(page.get_by_label("Trả lời khách")).to_have_value(
                    f"Chào Nguyễn Thị Lan, shop xin lỗi về {number} ạ.")
                assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
                await shot(page, f"agent-push-ticket-{suffix}.png")
                assert errors == []
                await page.close()
    finally:
        await h.close()
