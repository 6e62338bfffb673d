"""An in-process fake of KiotViet's Public API (aiohttp), for tests: the token endpoint
(OAuth2 client credentials, form body: scopes=PublicApi.Access, grant_type, client_id,
client_secret; answers access_token, expires_in, token_type), POST /webhooks (records the
registration; needs the Retailer and Bearer headers), GET /customers/{id} (contactNumber).
Tokens can be revoked to test the refresh on 401."""
from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web


class FakeKiotViet:
    def __init__(self, *, client_id: str = "kv-client", client_secret: str = "kv-secret-123",
                 retailer: str = "shopan", expires_in: int = 86400) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.retailer = retailer
        self.expires_in = expires_in
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.webhooks: list[dict[str, Any]] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.customer_requests = 0
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "FakeKiotViet":
        app = web.Application()
        app.router.add_post("/connect/token", self._token)
        app.router.add_post("/webhooks", self._webhooks)
        app.router.add_get("/customers/{id}", self._customer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/connect/token"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if (form.get("grant_type") != "client_credentials" or form.get("scopes") != "PublicApi.Access"
                or form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=400)
        token = f"kv-token-{next(self._numbers)}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"})

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens and request.headers.get("Retailer") == self.retailer

    async def _webhooks(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"responseStatus": {"errorCode": "Unauthorized"}}, status=401)
        body = await request.json()
        webhook = body.get("Webhook") if isinstance(body, dict) else None
        if not isinstance(webhook, dict) or not {"Type", "Url", "IsActive", "Secret"} <= set(webhook):
            return web.json_response({"responseStatus": {"message": "bad webhook"}}, status=400)
        webhook = {**webhook, "Id": len(self.webhooks) + 1}
        self.webhooks.append(webhook)
        return web.json_response(webhook)

    async def _customer(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"responseStatus": {"errorCode": "Unauthorized"}}, status=401)
        self.customer_requests += 1
        customer = self.customers.get(request.match_info["id"])
        if customer is None:
            return web.json_response({"responseStatus": {"message": "not found"}}, status=404)
        return web.json_response(customer)
