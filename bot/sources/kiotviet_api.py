"""KiotViet's Public API, the little feedbot needs: an access token by OAuth2 client
credentials (cached until shortly before it expires, fetched again after a 401), registering
the webhooks, and a customer's phone number (invoices carry none)."""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

TOKEN_URL = "https://id.kiotviet.vn/connect/token"
API_URL = "https://public.kiotapi.com"
REFRESH_MARGIN_S = 300  # fetch a new token this long before the old one expires
TIMEOUT_S = 10


class KiotVietError(Exception):
    pass


class KiotVietClient:
    def __init__(self, *, client_id: str, client_secret: str, retailer: str, token_url: str = TOKEN_URL,
                 api_url: str = API_URL, clock: Any = time.monotonic) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.retailer = retailer
        self.token_url = token_url
        self.api_url = api_url.rstrip("/")
        self._clock = clock
        self._token: tuple[str, float] | None = None  # (token, expires at on the monotonic clock)
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        return self._session

    async def token(self, *, fresh: bool = False) -> str:
        async with self._lock:  # callers at the same time share one fetch
            if not fresh and self._token is not None and self._clock() < self._token[1] - REFRESH_MARGIN_S:
                return self._token[0]
            form = {"scopes": "PublicApi.Access", "grant_type": "client_credentials",
                    "client_id": self.client_id, "client_secret": self.client_secret}
            try:
                async with self._http().post(self.token_url, data=form) as resp:
                    body = await resp.json(content_type=None)
                    if resp.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                        raise KiotVietError(f"token request refused ({resp.status}): check the client id and secret")
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                raise KiotVietError(f"token request failed: {type(exc).__name__}") from None
            expires_in = body.get("expires_in") if isinstance(body.get("expires_in"), (int, float)) else 3600
            self._token = (str(body["access_token"]), self._clock() + float(expires_in))
            return self._token[0]

    async def _call(self, method: str, path: str, json: Any = None) -> Any:
        for attempt in (1, 2):
            headers = {"Retailer": self.retailer, "Authorization": f"Bearer {await self.token(fresh=attempt == 2)}"}
            try:
                async with self._http().request(method, f"{self.api_url}{path}", json=json, headers=headers) as resp:
                    if resp.status == 401 and attempt == 1:
                        continue  # the token was revoked or expired early: one more with a new one
                    body = await resp.json(content_type=None) if resp.content_length != 0 else None
                    if resp.status >= 300:
                        raise KiotVietError(f"{method} {path}: {resp.status} {str(body)[:200]}")
                    return body
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                raise KiotVietError(f"{method} {path} failed: {type(exc).__name__}") from None
        raise KiotVietError(f"{method} {path}: 401 with a new token too")

    async def register_webhook(self, kind: str, url: str, secret: str) -> Any:
        webhook = {"Type": kind, "Url": url, "IsActive": True, "Description": "feedbot",
                   "Secret": base64.b64encode(secret.encode()).decode()}
        return await self._call("POST", "/webhooks", {"Webhook": webhook})

    async def customer_phone(self, customer_id: str) -> tuple[str | None, str | None]:
        """The customer's (contact number, name)."""
        body = await self._call("GET", f"/customers/{customer_id}")
        if not isinstance(body, dict):
            return None, None
        return body.get("contactNumber") or None, body.get("name") or None
