""""Log in with Telegram" (accounts.telegram_login) on both backends: the sign-in page shows the
Telegram Login Widget; /login/telegram checks the data exactly as Telegram documents it
("Checking authorization": HMAC-SHA-256 of the sorted key=value lines under SHA-256(bot token))
and opens the same session as a password, with the same refusals (locked, disabled) and the
same `next` check. The data here is signed the way Telegram signs it, written out in the test
(not with the code under test)."""
from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.config import ConfigError
from bot.http.auth import COOKIE
from tests.conftest import BOT_TOKEN, BOTH, Harness, make_config
from tests.http.accounts import PASSWORD, ensure_account

BACKENDS = BOTH
AN_TG, STRANGER_TG = 7_000_000_001, 7_000_000_999


def telegram_signed(token: str = BOT_TOKEN, **fields: object) -> dict[str, str]:
    """Fields as the widget returns them, with the hash Telegram computes over them."""
    data = {k: str(v) for k, v in fields.items()}
    check_string = "\n".join(f"{k}={data[k]}" for k in sorted(data))
    secret_key = hashlib.sha256(token.encode()).digest()
    return {**data, "hash": hmac.new(secret_key, check_string.encode(), hashlib.sha256).hexdigest()}


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


@pytest.fixture
async def shop(tmp_path, tg, clock, database_url):
    h = Harness(make_config(tmp_path, tg, database_url=database_url, accounts={"telegram_login": True}), tg, clock)
    await h.start()
    await ensure_account(h, "An")
    await h.app.accounts.link_telegram("an", AN_TG, by="test")
    yield h
    await h.close()


def login_data(h: Harness, user_id: int = AN_TG, age: timedelta = timedelta(minutes=1), **more: object) -> dict[str, str]:
    return telegram_signed(id=user_id, first_name="An", last_name="Nguyễn", username="an_cskh",
                           photo_url="https://t.me/i/userpic/320/an.jpg",
                           auth_date=int((h.clock.now() - age).timestamp()), **more)


async def telegram_callback(browser: aiohttp.ClientSession, h: Harness, data: dict[str, str], nxt: str = ""):
    query = urlencode({**({"next": nxt} if nxt else {}), **data})
    async with browser.get(f"{h.url}/login/telegram?{query}", allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_the_sign_in_page_shows_the_widget_and_its_data_signs_in_like_a_password(shop, caplog):
    caplog.set_level(logging.DEBUG)
    h = shop
    async with jar() as browser:
        async with browser.get(f"{h.url}/login?next=/agent") as resp:
            page = await resp.text()
            csp = resp.headers["Content-Security-Policy"]
        assert '<script async src="https://telegram.org/js/telegram-widget.js?22"' in page
        assert 'data-telegram-login="feedbot_test_bot"' in page  # the bot's username, from getMe
        assert f'data-auth-url="{h.url}/login/telegram?next=/agent"' in page
        assert 'name="password"' in page  # the password form stays (it works without internet)
        assert "script-src 'self' https://telegram.org" in csp and "frame-src https://oauth.telegram.org" in csp

        status, page, headers = await telegram_callback(browser, h, login_data(h), nxt="/agent")
        assert status == 200 and '<meta http-equiv="refresh" content="0;url=/agent">' in page
        assert any(c.key == COOKIE for c in browser.cookie_jar)
        async with browser.get(f"{h.url}/agent", allow_redirects=False) as resp:
            assert resp.status == 200  # the session is a real one
    [event] = [e for e in await h.app.accounts.events("an") if e.action == "signed_in"]
    assert event.detail.startswith("with Telegram, from ")
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert BOT_TOKEN not in text and BOT_TOKEN.split(":")[1] not in text
    assert hashlib.sha256(BOT_TOKEN.encode()).hexdigest() not in text


async def test_next_is_checked_like_the_password_form(shop):
    h = shop
    async with jar() as browser:
        status, page, _ = await telegram_callback(browser, h, login_data(h), nxt="https://evil.example/")
    assert status == 200 and 'content="0;url=/agent"' in page and "evil" not in page


async def test_fields_appended_after_a_second_question_mark_still_sign_in(shop):
    """Whether Telegram adds its fields to the auth URL with '&' or, naively, with another '?'."""
    h = shop
    async with jar() as browser:
        url = f"{h.url}/login/telegram?next=/agent?{urlencode(login_data(h))}"
        async with browser.get(url, allow_redirects=False) as resp:
            assert resp.status == 200 and 'content="0;url=/agent"' in await resp.text()


@pytest.mark.parametrize("case", ["wrong_hash", "changed_field", "added_field", "other_bot", "no_hash", "stale", "future"])
async def test_data_telegram_did_not_sign_or_that_is_old_is_refused(shop, case):
    h = shop
    data = login_data(h)
    if case == "wrong_hash":
        data["hash"] = "0" * 64
    elif case == "changed_field":
        data["id"] = str(STRANGER_TG)  # someone else's id under An's signature
    elif case == "added_field":
        data["last_name"] = "Trần"
    elif case == "other_bot":
        data = telegram_signed("999:another-bot-token", **{k: v for k, v in data.items() if k != "hash"})
    elif case == "no_hash":
        del data["hash"]
    elif case == "stale":
        data = login_data(h, age=timedelta(days=1, seconds=1))
    else:
        data = login_data(h, age=-timedelta(hours=1))
    async with jar() as browser:
        status, page, _ = await telegram_callback(browser, h, data, nxt="/agent")
        assert not any(c.key == COOKIE for c in browser.cookie_jar)
    assert status == 401
    expected = "hết hạn" if case in ("stale", "future") else "không hợp lệ"
    assert expected in page and 'role="alert"' in page
    assert not [e for e in await h.app.accounts.events("an") if e.action == "signed_in"]


async def test_signed_data_opens_one_session_only(shop):
    """A sign-in URL found later (a browser's history, a proxy's log) is refused, though its data
    is still within the day; the widget's next sign-in (data signed again) works."""
    h = shop
    data = login_data(h)
    async with jar() as browser:
        assert (await telegram_callback(browser, h, data))[0] == 200
    async with jar() as other:
        status, page, _ = await telegram_callback(other, h, data)
        assert status == 401 and "hết hạn" in page and not any(c.key == COOKIE for c in other.cookie_jar)
        h.clock.advance(timedelta(seconds=30))
        assert (await telegram_callback(other, h, login_data(h, age=timedelta(seconds=5))))[0] == 200
    events = [(e.action, e.detail.split(",")[0]) for e in await h.app.accounts.events("an")
              if e.action in ("signed_in", "sign_in_refused")]
    assert sorted(events) == [("sign_in_refused", "Telegram data used before"),
                              ("signed_in", "with Telegram"), ("signed_in", "with Telegram")]


async def test_a_telegram_user_linked_to_no_account_is_told_their_id(shop):
    h = shop
    async with jar() as browser:
        status, page, _ = await telegram_callback(browser, h, login_data(h, STRANGER_TG))
        assert not any(c.key == COOKIE for c in browser.cookie_jar)
    assert status == 403 and f"feedbot user telegram &lt;tên đăng nhập&gt; {STRANGER_TG}" in page
    # Unlinked: An's own Telegram no longer signs in either.
    await h.app.accounts.unlink_telegram("an", by="test")
    async with jar() as browser:
        status, page, _ = await telegram_callback(browser, h, login_data(h))
    assert status == 403 and str(AN_TG) in page
    actions = [e.action for e in reversed(await h.app.accounts.events("an"))]
    assert actions == ["created", "telegram_linked", "telegram_unlinked"]


async def test_disabled_removed_and_locked_accounts_are_refused(shop):
    h = shop
    await h.app.accounts.disable("an", by="test")
    async with jar() as browser:
        status, page, _ = await telegram_callback(browser, h, login_data(h))
        assert status == 403 and "vô hiệu hoá" in page
        assert not any(c.key == COOKIE for c in browser.cookie_jar)
    [refused] = [e for e in await h.app.accounts.events("an") if e.action == "sign_in_refused"]
    assert refused.detail.startswith("disabled, with Telegram")
    await h.app.accounts.enable("an", by="test")
    # The same per-account lockout as the password: wrong passwords lock Telegram sign-ins too.
    for i in range(h.config.accounts.max_failed_logins):
        await h.app.accounts.sign_in("an", f"wrong-password-{i}")
    async with jar() as browser:
        status, page, headers = await telegram_callback(browser, h, login_data(h))
        assert status == 429 and "tạm khoá" in page and int(headers["Retry-After"]) > 0
        assert not any(c.key == COOKIE for c in browser.cookie_jar)
    await h.app.accounts.remove("an", by="test")
    async with jar() as browser:
        status, _, _ = await telegram_callback(browser, h, login_data(h))
    assert status == 403


async def test_with_the_feature_off_there_is_no_widget_and_signed_data_is_refused(tmp_path, tg, clock, database_url):
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "An")
        await h.app.accounts.link_telegram("an", AN_TG, by="test")
        async with jar() as browser:
            async with browser.get(f"{h.url}/login") as resp:
                page = await resp.text()
                assert "telegram-widget" not in page and "telegram.org" not in resp.headers["Content-Security-Policy"]
            status, page, _ = await telegram_callback(browser, h, login_data(h))
            assert status == 404 and "accounts.telegram_login" in page
            assert not any(c.key == COOKIE for c in browser.cookie_jar)
            async with browser.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD}, allow_redirects=False) as resp:
                assert resp.status == 303  # the password still works
    finally:
        await h.close()


def test_telegram_login_needs_the_bot_token(tmp_path):
    with pytest.raises(ConfigError, match="accounts.telegram_login.*telegram.token"):
        make_config(tmp_path, None, accounts={"telegram_login": True})
