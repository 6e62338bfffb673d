"""Connection limits of the HTTP server (issue 19, item 2), with real sockets on loopback
against the real app: header, body and keep-alive timeouts, caps per address and overall,
WebSocket caps, and one log line (not a traceback per accept) when descriptors run out.

Every client address is on loopback: Linux routes all of 127.0.0.0/8 to it, so a socket
bound to 127.0.0.2 is "another client" for the server."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from typing import AsyncIterator

import aiohttp
import pytest

from bot.http.connections import ConnectionGuard, ConnectionLimits, address_key
from tests.conftest import Harness, make_config


async def harness(tmp_path, clock, **sections) -> Harness:
    h = Harness(make_config(tmp_path, **sections), None, clock)
    await h.start()
    return h


@pytest.fixture
async def quick(tmp_path, clock) -> AsyncIterator[Harness]:
    h = await harness(tmp_path, clock, http={
        "header_timeout": "1s", "body_timeout": "1s", "keepalive_timeout": "2s",
        "max_connections_per_address": 6, "max_connections": 40,
    })
    yield h
    await h.close()


async def open_socket(h: Harness, source: str = "127.0.0.1") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", h.app.port, local_addr=(source, 0))


async def closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed the socket (reading what it sent), or fail after limit."""
    start = time.monotonic()
    received = b""
    async with asyncio.timeout(limit):
        while chunk := await reader.read(65536):
            received += chunk
    return time.monotonic() - start, received


async def healthz(h: Harness, source: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.get(f"{h.url}/healthz", timeout=aiohttp.ClientTimeout(total=3)) as resp:
            return resp.status


async def test_silent_sockets_and_unfinished_headers_are_closed_after_the_header_timeout(quick):
    silent = [await open_socket(quick) for _ in range(3)]
    partial = [await open_socket(quick) for _ in range(2)]
    for _, writer in partial:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # the head never ends
        await writer.drain()
    for reader, _ in silent + partial:
        took, _ = await closed_after(reader, 4.0)
        assert took < 3.0
    assert await healthz(quick, "127.0.0.1") == 200
    assert not quick.app.guard.open or len(quick.app.guard.open) <= 1  # nothing held but the last client


async def test_a_trickled_body_is_cut_with_408_and_the_connection_closed(quick):
    reader, writer = await open_socket(quick)
    writer.write(b"POST /api/v1/purchases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer test-api-token-0123456789\r\nContent-Length: 1000\r\n\r\n{\"order")
    await writer.drain()
    took, received = await closed_after(reader, 15.0)
    assert received.startswith(b"HTTP/1.1 408") and took < 12.0
    assert (await quick.rows("SELECT COUNT(*) AS n FROM purchases"))[0]["n"] == 0


async def test_an_idle_keep_alive_connection_is_closed(quick):
    reader, writer = await open_socket(quick)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    took, received = await closed_after(reader, 6.0)
    assert received.startswith(b"HTTP/1.1 200") and 1.5 < took < 5.0


async def test_over_the_per_address_cap_new_connections_are_refused_while_other_addresses_are_served(quick):
    held = [await open_socket(quick, "127.0.0.1") for _ in range(6)]
    reader, _ = await open_socket(quick, "127.0.0.1")
    took, received = await closed_after(reader, 1.0)  # refused at once, not held
    assert received.startswith(b"HTTP/1.1 503")
    assert await healthz(quick, "127.0.0.2") == 200
    assert quick.app.guard.per_address["127.0.0.1"] == 6
    for _, writer in held:
        writer.close()


async def test_over_the_overall_cap_connections_are_refused_and_freed_slots_serve_again(tmp_path, clock):
    h = await harness(tmp_path, clock, http={"max_connections": 8, "max_connections_per_address": 0,
                                             "header_timeout": "1s"})
    try:
        held = [await open_socket(h, f"127.0.0.{2 + i % 3}") for i in range(8)]
        reader, _ = await open_socket(h, "127.0.0.9")
        _, received = await closed_after(reader, 1.0)
        assert received.startswith(b"HTTP/1.1 503")
        for r, _ in held:  # the silent ones are closed at the header timeout: room again
            await closed_after(r, 4.0)
        assert await healthz(h, "127.0.0.9") == 200
    finally:
        await h.close()


async def test_a_trusted_proxy_has_no_per_address_cap_and_names_the_client(tmp_path, clock):
    h = await harness(tmp_path, clock, http={"max_connections_per_address": 2, "trusted_proxies": ["127.0.0.1"]},
                      web={"max_sockets_per_address": 1})
    try:
        held = [await open_socket(h, "127.0.0.1") for _ in range(4)]  # the proxy: not capped
        assert await healthz(h, "127.0.0.1") == 200
        first = await h.http.ws_connect(f"{h.url}/chat/ws", headers={"X-Forwarded-For": "203.0.113.7"})
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await h.http.ws_connect(f"{h.url}/chat/ws", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        assert refused.value.status == 429  # the same client behind the proxy (the first hop is its own word)
        other = await h.http.ws_connect(f"{h.url}/chat/ws", headers={"X-Forwarded-For": "203.0.113.8"})
        await first.close()
        await other.close()
        for _, writer in held:
            writer.close()
    finally:
        await h.close()


def test_an_ipv6_client_counts_by_its_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1" and address_key("10.0.0.1") == "10.0.0.1"


# --- WebSockets ------------------------------------------------------------------------------


async def hello(ws: aiohttp.ClientWebSocketResponse, **fields) -> dict:
    await ws.send_json({"type": "hello", **fields})
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return {"type": "closed", "code": ws.close_code}
        frame = json.loads(msg.data)
        if frame["type"] in ("welcome", "error"):
            return frame


async def test_websockets_per_session_are_capped(tmp_path, clock):
    h = await harness(tmp_path, clock, web={"max_sockets_per_session": 3})
    try:
        first = await h.http.ws_connect(f"{h.url}/chat/ws")
        session = (await hello(first))["session"]
        tabs = [await h.http.ws_connect(f"{h.url}/chat/ws") for _ in range(2)]
        for tab in tabs:
            assert (await hello(tab, session=session))["type"] == "welcome"
        extra = await h.http.ws_connect(f"{h.url}/chat/ws")
        assert (await hello(extra, session=session))["code"] == "too_many_sockets"
        assert (await extra.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE and extra.close_code == 4429
        await tabs[0].close()  # a tab closed: room for one more
        again = await h.http.ws_connect(f"{h.url}/chat/ws")
        assert (await hello(again, session=session))["type"] == "welcome"
    finally:
        await h.close()


async def test_websockets_per_address_are_capped_and_other_addresses_still_connect(tmp_path, clock):
    h = await harness(tmp_path, clock, web={"max_sockets_per_address": 3})
    try:
        sockets = [await h.http.ws_connect(f"{h.url}/chat/ws") for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await h.http.ws_connect(f"{h.url}/chat/ws")
        assert refused.value.status == 429
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as other:
            ws = await other.ws_connect(f"{h.url}/chat/ws")
            assert (await hello(ws))["type"] == "welcome"
            await ws.close()
        for ws in sockets:
            await ws.close()
    finally:
        await h.close()


# --- out of file descriptors -----------------------------------------------------------------

EMFILE_SERVER = textwrap.dedent("""
    import asyncio, logging, resource, sys
    from bot.app import FeedbotApp
    from bot.config import parse_config

    async def main():
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        config = parse_config({"database": {"path": sys.argv[1]}, "http": {"port": 0, "api_token": "emfile-test-token-0123456789"}}, {})
        app = FeedbotApp(config)
        await app.start(scheduler=False)
        open_now = len(__import__("os").listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        print(app.port, flush=True)
        await asyncio.sleep(float(sys.argv[2]))
        await app.stop()

    asyncio.run(main())
""")


def test_running_out_of_descriptors_is_logged_once_without_tracebacks(tmp_path):
    """The server process's open-files limit is lowered below what the clients open: accept()
    fails with EMFILE again and again; the log says so once, with no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SERVER, str(tmp_path / "feedbot.db"), "6"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
    )
    try:
        port = int(proc.stdout.readline())
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(60)]
        _, err = proc.communicate(timeout=30)  # accept() keeps failing for the server's 6 s
    finally:
        proc.kill()
        for s in locals().get("clients", []):
            s.close()
    assert proc.returncode == 0, err[-2000:]
    lines = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(lines) == 1, err[-3000:]
    assert "Too many open files" in lines[0] and "LimitNOFILE" in lines[0]
    assert "Traceback" not in err and "out of system resource" not in err, err[-4000:]


async def test_an_accept_retry_after_the_server_closed_is_not_a_traceback(caplog):
    """asyncio retries accept() a second after EMFILE; when the bot stopped meanwhile, that
    retry (asyncio's own callback) finds the listening socket closed. It is not an error."""
    loop = asyncio.get_running_loop()
    guard = ConnectionGuard(ConnectionLimits())
    guard.install_accept_log(loop)
    try:
        closed = socket.socket()
        closed.close()
        done = asyncio.Event()
        # What asyncio schedules after a failed accept(): _start_serving on the same socket.
        loop.call_soon(loop._start_serving, lambda: asyncio.Protocol(), closed)  # type: ignore[attr-defined]
        loop.call_soon(done.set)
        await done.wait()
        other = asyncio.Event()
        loop.call_soon(lambda: 1 / 0)  # any other callback's error still reaches the log
        loop.call_soon(other.set)
        await other.wait()
    finally:
        guard.remove_accept_log(loop)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "ZeroDivisionError" in (errors[0].exc_text or repr(errors[0].exc_info)), errors


async def test_malformed_requests_are_one_warning_a_minute_not_a_traceback_each(quick, caplog):
    """aiohttp logs each request it cannot parse (a header line too long, too many headers) as an
    ERROR with a traceback, and the refused line's first bytes: anyone could fill the log."""
    from bot.logs import quiet_noisy_loggers

    quiet_noisy_loggers()  # as `feedbot run` does
    long_line = b"GET /chat HTTP/1.1\r\nHost: x\r\nCookie: secret=" + b"s" * 9000 + b"\r\n\r\n"
    many = b"GET /chat HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(200)) + b"\r\n"
    for request in (long_line, many, long_line, many):
        reader, writer = await open_socket(quick)
        writer.write(request)
        _, answer = await closed_after(reader, 3)
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400"), answer[:40]
        writer.close()
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert not [r for r in server if r.levelno >= logging.ERROR or r.exc_info or r.exc_text]
    assert len(server) == 1 and "malformed" in server[0].getMessage() and "sss" not in server[0].getMessage()
