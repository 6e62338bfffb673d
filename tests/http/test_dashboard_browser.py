"""The dashboard in a real headless Chromium: an owner signs in, changes the range and the store,
searches a comment without diacritics, opens the customer's history; a manager sees only their
store; readable at 360 px and 1280 px (FEEDBOT_SCREENSHOTS=<folder> keeps screenshots)."""
from __future__ import annotations

import re

from tests.browser import PHONE, chromium
from tests.http.accounts import PASSWORD, ensure_account
from tests.http.test_agent_page_browser import TIMEOUT_MS, shot
from tests.http.test_dashboard import shop  # noqa: F401 (the fixture)

DESKTOP = {"width": 1280, "height": 900}


async def sign_in(page, url: str, login: str) -> None:
    await page.goto(f"{url}/dashboard")
    assert page.url.endswith("/login?next=/dashboard")
    await page.get_by_label("Tên đăng nhập").fill(login)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url(re.compile(r"/dashboard$"))


async def test_an_owner_explores_and_a_manager_sees_only_their_store(shop):  # noqa: F811
    from playwright.async_api import expect

    h = shop
    await ensure_account(h, "Chủ Shop", "owner")
    await ensure_account(h, "Quản Lý Q1", "manager", ("Q1",))
    async with chromium() as browser:
        for viewport, suffix in ((PHONE, "360"), (DESKTOP, "1280")):
            page = await browser.new_page(viewport=viewport)
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(page, h.url, "chu.shop")
            await expect(page.get_by_role("heading", name="Mức hài lòng (CSAT)")).to_be_visible()
            await page.get_by_label("Từ ngày").fill("2026-11-01")
            await page.get_by_label("Đến ngày").fill("2026-11-30")
            await page.get_by_label("Gộp theo").select_option("week")
            await expect(page.locator("#totals")).to_contain_text("50%")
            await expect(page.locator("#totals")).to_contain_text("Kỳ trước")
            await expect(page.locator("#csat-chart svg path.line")).to_have_count(2)  # this period and the previous one
            await page.locator("#store").select_option("Q3")
            await expect(page.locator("#totals .card").nth(2)).to_contain_text("2")
            await page.locator("#store").select_option("")
            await page.get_by_label("Tìm trong nhận xét").fill("dong goi")
            await expect(page.locator("#comments tbody tr")).to_have_count(1)
            await expect(page.locator("#comments")).to_contain_text("Đóng gói rất đẹp")
            await page.get_by_role("button", name="Lịch sử khách: Nguyễn Thị Lan").click()
            await expect(page.locator("#customer")).to_be_visible()
            await expect(page.locator("#customer h3")).to_have_text("Lịch sử của Nguyễn Thị Lan")
            assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            await shot(page, f"dashboard-owner-{suffix}.png")
            await page.get_by_role("button", name="English").click()
            await expect(page.get_by_role("heading", name="Satisfaction (CSAT)")).to_be_visible()
            await shot(page, f"dashboard-owner-en-{suffix}.png")
            assert errors == []
            await page.close()

        page = await browser.new_page(viewport=PHONE)
        page.set_default_timeout(TIMEOUT_MS)
        await page.evaluate("1")
        await sign_in(page, h.url, "quan.ly.q1")
        await page.get_by_label("Từ ngày").fill("2026-11-01")
        await page.get_by_label("Đến ngày").fill("2026-11-30")
        await page.get_by_label("Đến ngày").press("Enter")
        await expect(page.locator("#comments")).to_contain_text("Hộp bị móp")
        assert await page.locator("#store option").all_inner_texts() == ["Q1"]
        await expect(page.locator("#comments")).not_to_contain_text("Bí mật")
        await expect(page.locator("#breakdowns")).not_to_contain_text("Q3")
        await shot(page, "dashboard-manager-360.png")
