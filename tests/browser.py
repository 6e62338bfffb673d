"""Headless Chromium for end-to-end tests: Debian's `chromium` package driven by Playwright
(the Python package; its own browser downloads are never used). A test that needs it
skips with the reason when it is missing or cannot start, never passes silently.

    async with chromium() as browser:
        page = await browser.new_page(viewport=PHONE)
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

CHROMIUM = os.environ.get("FEEDBOT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers (CI) often have a 64 MB /dev/shm that Chromium outgrows
]
PHONE = {"width": 360, "height": 740}


@asynccontextmanager
async def chromium(executable: str = CHROMIUM) -> AsyncIterator[Any]:
    if not os.path.exists(executable):
        pytest.skip(f"headless Chromium not available: {executable} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        pytest.skip(f"headless Chromium not available: the playwright package is missing ({exc})")
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(executable_path=executable, args=ARGS, timeout=30_000)
        except Exception as exc:  # noqa: BLE001 - any launch failure is a reason to skip
            pytest.skip(f"headless Chromium not available: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        try:
            yield browser
        finally:
            await browser.close()
