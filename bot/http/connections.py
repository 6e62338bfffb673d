"""Guards the HTTP server's connections: caps, header and body timeouts, quiet accept errors.

aiohttp closes an idle keep-alive connection (`keepalive_timeout`) but has no header or
body read timeout and no connection caps, so silent or trickling sockets pile up until
the process runs out of file descriptors. Here, in front of aiohttp's protocol:
- at most `max_connections` open, and `max_connections_per_address` from one client
  address (an IPv6 client counts by its /64); over a cap, a connection gets a 503 and is
  closed at once, so it holds no descriptor;
- a new connection's first request head must be complete within `header_timeout`;
- a request body must be complete within `body_timeout` of its head (else 408 and close);
- "accept() out of system resource" (EMFILE) is logged once a minute with figures,
  instead of one traceback per failed accept.
Behind a reverse proxy every connection comes from the proxy's address: list it in
`http.trusted_proxies` (no per-address connection cap for it; X-Forwarded-For names the
client for the per-address limits of the web chat).
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
import socket
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from bot.config import Config

log = logging.getLogger(__name__)

FD_RESERVE = 128  # descriptors kept for the database, outgoing requests and logs
LOG_EVERY_S = 60.0  # a repeated condition is logged at most this often
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: 5\r\n\r\n"
ACCEPT_FAILED = "socket.accept() out of system resource"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 75.0
    max_connections: int = 1000
    max_connections_per_address: int = 100  # 0: no per-address cap
    trusted_proxies: tuple[Network, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> "ConnectionLimits":
        h = config.http
        return cls(
            header_timeout=h.header_timeout.total_seconds(), body_timeout=h.body_timeout.total_seconds(),
            keepalive_timeout=h.keepalive_timeout.total_seconds(), max_connections=h.max_connections,
            max_connections_per_address=h.max_connections_per_address, trusted_proxies=h.trusted_proxies,
        )


def address_key(ip: str) -> str:
    """The unit a per-address limit counts: the IPv4 address, or an IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def is_trusted(ip: str | None, proxies: tuple[Network, ...]) -> bool:
    if not ip or not proxies:
        return False
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(parsed in net for net in proxies)


def client_address(request: web.Request, proxies: tuple[Network, ...]) -> str:
    """The client's address key: the peer's, or behind a trusted proxy the last address in
    X-Forwarded-For that is not a trusted proxy (the ones before it are the client's word)."""
    peer = request.remote or ""
    if is_trusted(peer, proxies):
        hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
        for hop in reversed(hops):
            if not is_trusted(hop, proxies):
                return address_key(hop)
    return address_key(peer)


class _Throttled:
    """Says something at most once per interval, with how often it happened meanwhile."""

    def __init__(self, interval: float = LOG_EVERY_S) -> None:
        self.interval = interval
        self.count = 0
        self._last = -interval

    def hit(self) -> int | None:
        """How many times since the last report when it is time to report, else None."""
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            return None
        self._last, count, self.count = now, self.count, 0
        return count


class _Guarded(asyncio.Protocol):
    """One connection: admitted or refused, then handed to aiohttp's protocol."""

    def __init__(self, guard: "ConnectionGuard", factory: Callable[[], asyncio.Protocol]) -> None:
        self.guard = guard
        self.factory = factory
        self.inner: Any = None
        self.transport: asyncio.Transport | None = None
        self.key = ""
        self.head_timer: asyncio.TimerHandle | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else ""
        self.key = address_key(ip)
        if not self.guard.admit(self, ip):
            transport.write(REFUSED)  # type: ignore[attr-defined]
            transport.close()
            return
        self.head_timer = asyncio.get_running_loop().call_later(self.guard.limits.header_timeout, self._head_late)
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def _head_late(self) -> None:
        self.head_timer = None
        if self.requests == 0 and self.transport is not None:
            self.guard.note("header_timeout", self.key)
            self.transport.abort()

    def head_done(self) -> None:
        self.requests += 1
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
        if self.inner is not None:
            self.guard.release(self)
            self.inner.connection_lost(exc)
            self.inner = None

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class BodyTimeout(TimeoutError):
    """The request body did not arrive in time (aiohttp's lingering read ends on it quietly)."""


class ConnectionGuard:
    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = limits.max_connections
        self.open: dict[asyncio.BaseTransport, _Guarded] = {}
        self.per_address: Counter[str] = Counter()
        self._said: dict[str, _Throttled] = {}
        self._accept_failures = _Throttled()
        self._previous_handler: Any = None

    # --- connections -------------------------------------------------------------------

    def protocol_factory(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, factory)

    def admit(self, conn: _Guarded, ip: str) -> bool:
        if len(self.open) >= self.max_connections:
            self.note("max_connections", conn.key)
            return False
        per_address = self.limits.max_connections_per_address
        if per_address and self.per_address[conn.key] >= per_address and not is_trusted(ip, self.limits.trusted_proxies):
            self.note("max_connections_per_address", conn.key)
            return False
        assert conn.transport is not None
        self.open[conn.transport] = conn
        self.per_address[conn.key] += 1
        return True

    def release(self, conn: _Guarded) -> None:
        if self.open.pop(conn.transport, None) is not None:  # type: ignore[arg-type]
            self.per_address[conn.key] -= 1
            if self.per_address[conn.key] <= 0:
                del self.per_address[conn.key]

    def note(self, what: str, key: str) -> None:
        """One log line per kind of event a minute (an attack makes thousands)."""
        count = self._said.setdefault(what, _Throttled()).hit()
        if count is not None:
            log.warning(
                "http: closed %d connection(s) for %s since the last such line (latest from %s); %d open, %d from that address",
                count, what, key, len(self.open), self.per_address.get(key, 0),
            )

    # --- requests (an aiohttp middleware: the head is complete when it runs) --------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        conn = self.open.get(request.transport) if request.transport is not None else None  # type: ignore[arg-type]
        if conn is not None:
            conn.head_done()
        timer = None
        if request.body_exists and not request.content.is_eof():
            timer = asyncio.get_running_loop().call_later(self.limits.body_timeout, self._body_late, request)
        try:
            return await handler(request)
        except BodyTimeout:
            raise web.HTTPRequestTimeout(reason=f"request body not received within {self.limits.body_timeout:g} s") from None
        finally:
            if timer is not None:
                timer.cancel()

    def _body_late(self, request: web.Request) -> None:
        if not request.content.is_eof():
            self.note("body_timeout", address_key(request.remote or ""))
            request.content.set_exception(BodyTimeout())

    # --- the process's file descriptors -----------------------------------------------------

    def fit_to_descriptors(self) -> None:
        """Raise the soft open-files limit for max_connections if the hard limit allows;
        else lower the cap so that accept() never runs out of descriptors."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.limits.max_connections + FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < wanted:
            target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft < wanted:
            self.max_connections = max(1, soft - FD_RESERVE)
            log.warning("http.max_connections = %d does not fit the open-files limit %d: at most %d connections "
                        "(raise LimitNOFILE / ulimit -n)", self.limits.max_connections, soft, self.max_connections)

    def install_accept_log(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio logs a traceback per failed accept(); say it once a minute instead."""
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._exception_handler)

    def remove_accept_log(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop.get_exception_handler() != self._exception_handler:
            return
        previous = self._previous_handler

        # A retry asyncio scheduled after the last failed accept() may fire after this (the
        # loop runs on while the process ends): it still needs no traceback.
        def after_stop(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            if _stale_accept_retry(context):
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(after_stop)

    def _exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_FAILED:
            count = self._accept_failures.hit()
            if count is not None:
                exc = context.get("exception")
                soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                log.error(
                    "http: cannot accept connections: %s (%d failure(s) since the last such line); %d open connections, "
                    "open-files limit %d. New connections wait until descriptors are free: raise LimitNOFILE "
                    "or lower http.max_connections", exc, count, len(self.open), soft,
                )
            return
        if _stale_accept_retry(context):
            log.debug("http: an accept() retry found the server closed; nothing to do")
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)


def _stale_accept_retry(context: dict[str, Any]) -> bool:
    """asyncio retries accept() a second after it failed for lack of descriptors; if the
    server closed meanwhile (the bot stopping), that retry finds the socket closed (fd -1)
    and raises. The server is gone, so nothing is lost: not worth a traceback."""
    handle = context.get("handle")
    callback = getattr(handle, "_callback", None)
    args = getattr(handle, "_args", None) or ()
    return (
        isinstance(context.get("exception"), (ValueError, OSError))
        and getattr(callback, "__name__", "") == "_start_serving"
        and any(isinstance(a, socket.socket) and a.fileno() == -1 for a in args)
    )


class GuardedSite(web.TCPSite):
    """aiohttp's TCPSite with each connection passed through the guard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard) -> None:
        super().__init__(runner, host, port, backlog=1024)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        self._server = await loop.create_server(
            self.guard.protocol_factory(server), self._host, self._port, backlog=self._backlog,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
