"""Accounts for the web tests: made through the running app's own Accounts service."""
from __future__ import annotations

import unicodedata

PASSWORD = "mật-khẩu-đủ-dài-1"


def login_of(name: str) -> str:
    """"Lan Anh" -> "lan.anh", "Bình" -> "binh": a login from a display name."""
    plain = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return ".".join(plain.lower().split())


async def ensure_account(h, name: str, role: str = "agent", stores: tuple[str, ...] = (), password: str = PASSWORD):
    accounts = h.app.accounts
    existing = await accounts.get(login_of(name))
    if existing is not None:
        return existing
    return await accounts.add(login_of(name), role, password, stores, name=name, by="test")
