"""Order sources: `[[sources]]` in the config file and those added by `feedbot source add`
(kept in the database), read in one place into SourceSettings."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Mapping

from bot.sources import haravan, kiotviet, sapo, shopify, woocommerce
from flows.orders import DELIVERED_ON

PLATFORMS: dict[str, ModuleType] = {m.name: m for m in (haravan, sapo, kiotviet, shopify, woocommerce)}
WEBHOOK_PATH = "/webhooks/orders/{name}"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
KEYS = ("name", "platform", "secret", "delivered_on", "verify_token", "signature", "retailer", "client_id",
        "client_secret", "enabled")


class SourceError(ValueError):
    pass


@dataclass(frozen=True)
class SourceSettings:
    name: str
    platform: str
    secret: str = field(repr=False)
    delivered_on: str
    verify_token: str = field(default="", repr=False)  # Haravan's hub.verify_token (default: the secret)
    signature: str = "any"  # KiotViet: which X-Hub-Signature form to accept
    retailer: str = ""  # KiotViet: the shop's retailer name, its client id and secret
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    enabled: bool = True
    origin: str = "config"  # config | cli

    @property
    def module(self) -> ModuleType:
        return PLATFORMS[self.platform]

    def webhook_url(self, public_url: str) -> str:
        return public_url.rstrip("/") + WEBHOOK_PATH.format(name=self.name)

    def as_stored(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS if k not in ("name", "platform")}


def parse_source(raw: Mapping[str, Any], where: str, origin: str = "config") -> SourceSettings:
    """One source; SourceError naming `where.key` if a value is wrong."""
    if not isinstance(raw, Mapping):
        raise SourceError(f"{where}: expected a table with name, platform and secret")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise SourceError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SourceError(f"{where}.name: expected 1-32 characters of a-z, 0-9, _ and - (it is in the webhook URL), "
                          f"got {name!r}")
    platform = raw.get("platform")
    if platform not in PLATFORMS:
        raise SourceError(f"{where}.platform: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    secret = raw.get("secret", "")
    if not isinstance(secret, str) or len(secret.strip()) < 8:
        raise SourceError(f"{where}.secret: required, at least 8 characters (the key the platform signs with)")
    delivered_on = raw.get("delivered_on", PLATFORMS[platform].default_delivered_on)
    if delivered_on not in DELIVERED_ON:
        raise SourceError(f"{where}.delivered_on: expected one of {', '.join(DELIVERED_ON)}, got {delivered_on!r}")
    signature = raw.get("signature", "any")
    if signature not in kiotviet.SIGNATURE_FORMS:
        raise SourceError(f"{where}.signature: expected one of {', '.join(kiotviet.SIGNATURE_FORMS)}, got {signature!r}")
    strings = {}
    for key in ("verify_token", "retailer", "client_id", "client_secret"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise SourceError(f"{where}.{key}: expected a string")
        strings[key] = value.strip()
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise SourceError(f"{where}.enabled: expected true or false")
    return SourceSettings(name=name, platform=platform, secret=secret.strip(), delivered_on=delivered_on,
                          verify_token=strings["verify_token"] or secret.strip(), signature=signature,
                          retailer=strings["retailer"], client_id=strings["client_id"],
                          client_secret=strings["client_secret"], enabled=enabled, origin=origin)


def parse_sources(value: Any) -> tuple[SourceSettings, ...]:
    """The config file's [[sources]] list (the config parser calls this)."""
    if not isinstance(value, list):
        raise SourceError("sources: expected [[sources]] tables (an array of tables)")
    found: dict[str, SourceSettings] = {}
    for index, raw in enumerate(value):
        source = parse_source(raw, f"sources[{index}]")
        if source.name in found:
            raise SourceError(f"sources[{index}].name: {source.name!r} is used twice")
        found[source.name] = source
    return tuple(found.values())


def merged(configured: tuple[SourceSettings, ...], stored: list[tuple[str, str, dict[str, Any]]]) -> dict[str, SourceSettings]:
    """The config file's sources, then those added from the CLI (a name in the file wins)."""
    sources = {s.name: s for s in configured}
    for name, platform, settings in stored:
        if name not in sources:
            sources[name] = parse_source({"name": name, "platform": platform, **settings}, f"source {name}", "cli")
    return sources
