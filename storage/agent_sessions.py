"""Revoked agent page sessions (signed out before they expire)."""
from __future__ import annotations

from storage.db import Connection, fetch_one


async def revoke(conn: Connection, sid: str, expires_at: int, now: int) -> None:
    """Refuse this session from now on; sessions past their expiry are forgotten meanwhile."""
    await conn.execute("DELETE FROM agent_session_revocations WHERE expires_at <= ?", (now,))
    await conn.execute("INSERT OR IGNORE INTO agent_session_revocations (sid, expires_at) VALUES (?, ?)",
                       (sid, expires_at))


async def is_revoked(conn: Connection, sid: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM agent_session_revocations WHERE sid = ?", (sid,)) is not None
