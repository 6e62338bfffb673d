"""Web sign-in by account (bot/http/auth.py): the fresh install's one-time setup link for the first
owner, where each role lands, and pages a role is not for."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bot.http.auth import COOKIE
from tests.conftest import Harness, make_config
from tests.http.accounts import PASSWORD, ensure_account


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_a_fresh_install_offers_a_one_time_setup_link_for_the_first_owner(tmp_path, tg, clock, capsys):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        link = h.app.setup_link
        assert link and link.startswith(f"http://127.0.0.1:{h.app.port}/setup?code=")
        assert link in capsys.readouterr().err  # on the console at start
        path = link.split(str(h.app.port), 1)[1]
        code = path.split("code=")[1]
        async with jar() as browser:
            async with browser.get(f"{h.url}/setup?code=wrong") as resp:
                assert resp.status == 403
            async with browser.get(f"{h.url}{path}") as resp:
                form = await resp.text()
            assert resp.status == 200 and "Tạo tài khoản chủ shop đầu tiên" in form
            fields = {"code": code, "login": "chu.shop", "name": "Chị Hà", "password": PASSWORD, "password2": PASSWORD + "x"}
            async with browser.post(f"{h.url}/setup", data=fields, allow_redirects=False) as resp:
                assert resp.status == 400 and "không giống nhau" in await resp.text()
            fields["password2"] = PASSWORD
            async with browser.post(f"{h.url}/setup", data=fields, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
            assert any(c.key == COOKIE for c in browser.cookie_jar)
        owner = await h.app.accounts.get("chu.shop")
        assert owner.role == "owner" and owner.name == "Chị Hà"
        async with jar() as again:  # used: the link is dead
            async with again.post(f"{h.url}/setup", data={**fields, "login": "other"}, allow_redirects=False) as resp:
                assert resp.status == 403
            async with again.get(f"{h.url}{path}") as resp:
                assert resp.status == 403
        await h.stop()
        await h.start()  # with an account, no link is offered any more
        assert h.app.setup_link is None
    finally:
        await h.close()


async def test_each_role_lands_on_its_page_and_the_next_page_is_only_ours(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "An")
        async with jar() as browser:
            data = {"login": "an", "password": PASSWORD, "next": "https://evil.example/"}
            async with browser.post(f"{h.url}/login", data=data, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent"
            async with browser.get(f"{h.url}/login?next=/agent", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent"  # signed in already
    finally:
        await h.close()


async def test_opening_the_web_chat_does_not_sign_an_owner_out(tmp_path, tg, clock):
    """The chat page gives visitors a cookie of its own: under the sign-in cookie's name it
    replaced an owner's session (an owner trying the chat, on the same host, was signed out)."""
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "Hà", role="owner")
        async with jar() as browser:
            async with browser.post(f"{h.url}/login", data={"login": "ha", "password": PASSWORD},
                                    allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/dashboard"
            async with browser.get(f"{h.url}/chat") as resp:
                assert resp.status == 200
            async with browser.get(f"{h.url}/dashboard", allow_redirects=False) as resp:
                assert resp.status == 200  # still signed in, not sent to /login
    finally:
        await h.close()


async def _raw_status(h: Harness, head: bytes) -> int:
    """The status of a request sent as these bytes (a client library would not send bytes that are not UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", h.app.port)
    try:
        writer.write(head)
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_a_cookie_or_csrf_header_that_is_not_utf8_is_refused_not_a_crash(tmp_path, tg, clock):
    """Header bytes that are not UTF-8 reach the handlers as surrogates: str.encode() raised in the
    session lookup and the CSRF check, a 500 and a traceback in the log for anyone who asked."""
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "An")
        async with jar() as browser:
            async with browser.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD},
                                    allow_redirects=False) as resp:
                token = resp.cookies[COOKIE].value
        bad_cookie = b"Cookie: " + COOKIE.encode() + b"=a\xffb\r\n"
        assert await _raw_status(h, b"GET /agent/api/tickets HTTP/1.1\r\nHost: x\r\n" + bad_cookie
                                 + b"Connection: close\r\n\r\n") == 401
        assert await _raw_status(h, b"GET /dashboard HTTP/1.1\r\nHost: x\r\n" + bad_cookie
                                 + b"Connection: close\r\n\r\n") == 303  # to the sign-in form
        good_cookie = b"Cookie: " + COOKIE.encode() + b"=" + token.encode() + b"\r\n"
        assert await _raw_status(h, b"POST /logout HTTP/1.1\r\nHost: x\r\n" + good_cookie
                                 + b"X-CSRF-Token: \xff\xfe\r\nContent-Length: 0\r\nConnection: close\r\n\r\n") == 403
    finally:
        await h.close()


async def test_a_next_page_with_a_line_break_goes_home_not_to_an_empty_reply(tmp_path, tg, clock):
    """aiohttp refuses a Location header with a line break by dropping the connection: a sign-in
    link with next=/agent?%0D%0A... signed the agent in and answered nothing."""
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "An")
        async with jar() as browser:
            data = {"login": "an", "password": PASSWORD, "next": "/agent?\r\nSet-Cookie: x=1"}
            async with browser.post(f"{h.url}/login", data=data, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent"
            async with browser.get(f"{h.url}/login?next=/agent?%0D%0Ax", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent"  # signed in already
            async with browser.get(f"{h.url}/login?next=/agent?tab=1", allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/agent?tab=1"
    finally:
        await h.close()


async def test_behind_a_trusted_proxy_wrong_sign_ins_wait_per_client_not_for_everyone(tmp_path, tg, clock):
    """Behind the shop's proxy every connection comes from its address: the per-address wait
    counted them all as one, so 20 wrong sign-ins by a stranger kept every colleague out too."""
    h = Harness(make_config(tmp_path, tg, http={"trusted_proxies": ["127.0.0.1"]}), tg, clock)
    await h.start()
    try:
        h.app.web_auth.failure_delay = 0
        await ensure_account(h, "An")
        stranger = {"X-Forwarded-For": "203.0.113.9"}
        async with jar() as browser:
            for n in range(h.app.web_auth.throttle.max_failures):
                async with browser.post(f"{h.url}/login", data={"login": f"guess{n}", "password": "x" * 12},
                                        headers=stranger, allow_redirects=False) as resp:
                    assert resp.status == 401
            async with browser.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD},
                                    headers=stranger, allow_redirects=False) as resp:
                assert resp.status == 429  # the stranger waits, even with a right password
        async with jar() as colleague:
            async with colleague.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD},
                                      headers={"X-Forwarded-For": "198.51.100.7"}, allow_redirects=False) as resp:
                assert resp.status == 303
    finally:
        await h.close()


async def test_without_trusted_proxies_x_forwarded_for_does_not_dodge_the_wait(tmp_path, tg, clock):
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        h.app.web_auth.failure_delay = 0
        async with jar() as browser:
            for n in range(h.app.web_auth.throttle.max_failures):
                async with browser.post(f"{h.url}/login", data={"login": f"guess{n}", "password": "x" * 12},
                                        headers={"X-Forwarded-For": f"203.0.113.{n}"}, allow_redirects=False) as resp:
                    assert resp.status == 401
            async with browser.post(f"{h.url}/login", data={"login": "guess", "password": "x" * 12},
                                    headers={"X-Forwarded-For": "198.51.100.7"}, allow_redirects=False) as resp:
                assert resp.status == 429
    finally:
        await h.close()


@pytest.mark.parametrize("content_type", ["multipart/form-data", "application/x-www-form-urlencoded; charset=bogus",
                                          "application/x-www-form-urlencoded; charset=utf-16"])
async def test_a_form_that_cannot_be_read_is_a_400_not_a_crash(tmp_path, tg, clock, content_type):
    """request.post() raises for a multipart body without a boundary or a charset Python does not
    know or cannot decode: /login and /setup answered 500 and logged a traceback, for anyone."""
    h = Harness(make_config(tmp_path, tg), tg, clock)
    await h.start()
    try:
        await ensure_account(h, "An")
        async with jar() as browser:
            for path in ("/login", "/setup"):
                async with browser.post(f"{h.url}{path}", data=b"login=an&password=x", allow_redirects=False,
                                        headers={"Content-Type": content_type}) as resp:
                    assert resp.status == 400, path
            async with browser.post(f"{h.url}/login", data={"login": "an", "password": PASSWORD},
                                    allow_redirects=False) as resp:
                assert resp.status == 303
            csrf = await _csrf(h, browser)
            async with browser.post(f"{h.url}/logout", data=b"csrf=" + csrf.encode(), allow_redirects=False,
                                    headers={"Content-Type": content_type}) as resp:
                assert resp.status in (400, 403), resp.status  # the CSRF check's read of the form
    finally:
        await h.close()


async def _csrf(h: Harness, browser: aiohttp.ClientSession) -> str:
    async with browser.get(f"{h.url}/agent/api/session") as resp:
        return (await resp.json())["csrf"]


def test_the_per_address_wait_forgets_addresses_when_there_are_many(monkeypatch):
    """It pruned only addresses whose list of failures was already empty, and a list empties only
    when its address comes back: addresses that failed once and went away were kept for ever,
    and past 10,000 each failure scanned them all (an attacker with many IPv6 /64s: memory)."""
    from bot.http import auth

    now = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: now[0])
    throttle = auth.LoginThrottle(max_failures=3, window=60.0)
    for n in range(12_000):
        throttle.failed(f"2001:db8:{n:x}::/64")
    assert len(throttle.failures) <= 10_001  # never much past the cap, even within the window
    now[0] += 61.0  # all of those are over
    throttle.failed("203.0.113.9")
    assert len(throttle.failures) < 100
    for _ in range(2):
        throttle.failed("203.0.113.9")
    assert throttle.wait_left("203.0.113.9") > 0  # the live one still counts
