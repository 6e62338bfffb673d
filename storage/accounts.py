"""Accounts, their stores, their server-side sessions and their audit trail (issue 20)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.db import Connection, fetch_one
from storage.timefmt import from_db, to_db

_COLUMNS = "id, login, name, role, password_hash, telegram_user_id, created_at, disabled_at, failed_logins, locked_until"


@dataclass(frozen=True)
class Account:
    id: int
    login: str
    name: str
    role: str
    password_hash: str | None
    telegram_user_id: int | None
    created_at: datetime
    disabled_at: datetime | None
    failed_logins: int
    locked_until: datetime | None
    stores: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountEvent:
    id: int
    account_id: int | None
    login: str
    at: datetime
    action: str
    detail: str
    by_login: str


def _account(row, stores: tuple[str, ...]) -> Account:
    return Account(
        id=row[0], login=row[1], name=row[2], role=row[3], password_hash=row[4], telegram_user_id=row[5],
        created_at=from_db(row[6]), disabled_at=from_db(row[7]) if row[7] else None, failed_logins=row[8],
        locked_until=from_db(row[9]) if row[9] else None, stores=stores,
    )


async def _stores(conn: Connection, account_id: int) -> tuple[str, ...]:
    rows = await conn.execute_fetchall("SELECT store FROM account_stores WHERE account_id = ? ORDER BY store", (account_id,))
    return tuple(r[0] for r in rows)


async def count(conn: Connection) -> int:
    row = await fetch_one(conn, "SELECT COUNT(*) FROM accounts")
    return int(row[0]) if row else 0


async def by_login(conn: Connection, login: str) -> Account | None:
    row = await fetch_one(conn, f"SELECT {_COLUMNS} FROM accounts WHERE login = ?", (login,))
    return _account(row, await _stores(conn, row[0])) if row else None


async def by_id(conn: Connection, account_id: int) -> Account | None:
    row = await fetch_one(conn, f"SELECT {_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
    return _account(row, await _stores(conn, row[0])) if row else None


async def by_telegram_user(conn: Connection, telegram_user_id: int) -> Account | None:
    row = await fetch_one(conn, f"SELECT {_COLUMNS} FROM accounts WHERE telegram_user_id = ?", (telegram_user_id,))
    return _account(row, await _stores(conn, row[0])) if row else None


async def spend_login(conn: Connection, key: str, expires_at: datetime, now: datetime) -> bool:
    """Signed login data is used once: False if `key` was spent before (rows past their expiry,
    whose data is refused as stale anyway, are forgotten here)."""
    await conn.execute("DELETE FROM spent_logins WHERE expires_at < ?", (to_db(now),))
    cur = await conn.execute("INSERT INTO spent_logins (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                             (key, to_db(expires_at)))
    return cur.rowcount == 1


async def all_accounts(conn: Connection) -> list[Account]:
    rows = await conn.execute_fetchall(f"SELECT {_COLUMNS} FROM accounts ORDER BY login")
    return [_account(r, await _stores(conn, r[0])) for r in rows]


async def create(conn: Connection, login: str, name: str, role: str, password_hash: str | None,
                 stores: tuple[str, ...], now: datetime, telegram_user_id: int | None = None) -> int:
    cur = await conn.execute(
        "INSERT INTO accounts (login, name, role, password_hash, telegram_user_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (login, name, role, password_hash, telegram_user_id, to_db(now)),
    )
    assert cur.lastrowid is not None
    await set_stores(conn, cur.lastrowid, stores)
    return cur.lastrowid


async def set_stores(conn: Connection, account_id: int, stores: tuple[str, ...]) -> None:
    await conn.execute("DELETE FROM account_stores WHERE account_id = ?", (account_id,))
    for store in sorted(set(stores)):
        await conn.execute("INSERT INTO account_stores (account_id, store) VALUES (?, ?)", (account_id, store))


async def update(conn: Connection, account_id: int, **fields: object) -> None:
    """Set the given columns (names from this module's callers only, never from outside)."""
    allowed = {"name", "role", "password_hash", "telegram_user_id", "disabled_at", "failed_logins", "locked_until"}
    assert fields and set(fields) <= allowed, fields
    values = [to_db(v) if isinstance(v, datetime) else v for v in fields.values()]
    assignments = ", ".join(f"{k} = ?" for k in fields)
    await conn.execute(f"UPDATE accounts SET {assignments} WHERE id = ?", (*values, account_id))


async def remove(conn: Connection, account_id: int) -> None:
    await conn.execute("DELETE FROM account_sessions WHERE account_id = ?", (account_id,))
    await conn.execute("DELETE FROM account_stores WHERE account_id = ?", (account_id,))
    await conn.execute("DELETE FROM accounts WHERE id = ?", (account_id,))


async def failed_login(conn: Connection, account_id: int, max_failures: int, locked_until: datetime) -> int:
    """Counts one wrong password; at `max_failures` in a row the account locks until `locked_until`.
    Returns the count (one statement, so two wrong guesses at once both count)."""
    await conn.execute(
        "UPDATE accounts SET failed_logins = failed_logins + 1,"
        " locked_until = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until END WHERE id = ?",
        (max_failures, to_db(locked_until), account_id),
    )
    row = await fetch_one(conn, "SELECT failed_logins FROM accounts WHERE id = ?", (account_id,))
    return int(row[0]) if row else 0


# --- sessions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    token_hash: str
    csrf: str
    expires_at: datetime
    account: Account


async def create_session(conn: Connection, token_hash: str, account_id: int, csrf: str, now: datetime, expires: datetime) -> None:
    await conn.execute("DELETE FROM account_sessions WHERE expires_at <= ?", (to_db(now),))  # housekeeping
    await conn.execute(
        "INSERT INTO account_sessions (token_hash, account_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash, account_id, csrf, to_db(now), to_db(expires)),
    )


async def live_session(conn: Connection, token_hash: str, now: datetime) -> SessionRow | None:
    """The session, if not expired, not revoked, and its account exists and is enabled."""
    row = await fetch_one(
        conn,
        f"SELECT s.token_hash, s.csrf, s.expires_at, {', '.join('a.' + c.strip() for c in _COLUMNS.split(','))}"
        " FROM account_sessions s JOIN accounts a ON a.id = s.account_id"
        " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ? AND a.disabled_at IS NULL",
        (token_hash, to_db(now)),
    )
    if row is None:
        return None
    account = _account(row[3:], await _stores(conn, row[3]))
    return SessionRow(row[0], row[1], from_db(row[2]), account)


async def revoke_session(conn: Connection, token_hash: str, now: datetime) -> None:
    await conn.execute("UPDATE account_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                       (to_db(now), token_hash))


async def revoke_all(conn: Connection, account_id: int, now: datetime) -> int:
    cur = await conn.execute("UPDATE account_sessions SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL",
                             (to_db(now), account_id))
    return cur.rowcount


# --- audit -------------------------------------------------------------------------------------


async def log_event(conn: Connection, account_id: int | None, login: str, action: str, now: datetime,
                    detail: str = "", by: str = "") -> None:
    await conn.execute(
        "INSERT INTO account_events (account_id, login, at, action, detail, by_login) VALUES (?, ?, ?, ?, ?, ?)",
        (account_id, login, to_db(now), action, detail, by),
    )


async def events(conn: Connection, login: str, limit: int = 50) -> list[AccountEvent]:
    rows = await conn.execute_fetchall(
        "SELECT id, account_id, login, at, action, detail, by_login FROM account_events WHERE login = ?"
        " ORDER BY id DESC LIMIT ?", (login, limit))
    return [AccountEvent(r[0], r[1], r[2], from_db(r[3]), r[4], r[5], r[6]) for r in rows]
