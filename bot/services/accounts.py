"""Accounts with roles: add, change, disable, remove; sign in with a password (argon2id), per-account
lockout, server-side sessions, and every change in the accounts' audit trail.

Passwords and session tokens never reach a log line or the database in clear: the database
keeps argon2id hashes of passwords and SHA-256 of session tokens.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.clock import Clock
from storage import accounts
from storage.accounts import Account, SessionRow
from storage.db import Database

log = logging.getLogger(__name__)

ROLES = ("owner", "manager", "agent")
LOGIN_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{1,39}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
MAX_NAME = 40
MAX_STORE = 100


class AccountError(ValueError):
    """Bad input for an account command: the message names what is wrong."""


@dataclass(frozen=True)
class AccountPolicy:
    max_failed_logins: int = 5
    lockout: timedelta = timedelta(minutes=15)
    session_lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: `token` set on success, else `refused` is why."""
    token: str = ""
    session: SessionRow | None = None
    refused: str = ""  # "wrong", "locked", "disabled"; with Telegram also "unlinked", "spent"
    locked_until: datetime | None = None


def clean_login(raw: str) -> str:
    login = raw.strip().lower()
    if not LOGIN_RE.fullmatch(login):
        raise AccountError(f"login {raw!r}: 2-40 characters of a-z 0-9 . _ @ -, starting with a letter or digit")
    return login


def clean_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not 1 <= len(name) <= MAX_NAME or any(unicodedata.category(c).startswith("C") for c in name):
        raise AccountError(f"name: 1-{MAX_NAME} printable characters")
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"password: at most {MAX_PASSWORD} characters")


def clean_stores(role: str, stores: tuple[str, ...]) -> tuple[str, ...]:
    cleaned = tuple(sorted({" ".join(s.split()) for s in stores if s.strip()}))
    if any(len(s) > MAX_STORE for s in cleaned):
        raise AccountError(f"--store: at most {MAX_STORE} characters")
    if role == "manager" and not cleaned:
        raise AccountError("--store: a manager needs at least one store (e.g. --store Q1)")
    if role != "manager" and cleaned:
        raise AccountError(f"--store: only managers have stores ({role}s see all stores)")
    return cleaned


def check_telegram_id(telegram_user_id: int) -> None:
    if not 0 < telegram_user_id < 2**53:  # Telegram's user ids fit in 52 bits
        raise AccountError(f"Telegram id {telegram_user_id}: a positive number (the user's id, as in agents.agent_ids)")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: Database, clock: Clock, policy: AccountPolicy = AccountPolicy(),
                 hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's low-memory profile
        self._dummy: str | None = None  # verified against for unknown logins: the same time either way
        # Wrong passwords for logins that do not exist, counted like an account's (in this process):
        # else only a real account ever answered "locked", and the lockout told a guesser who exists.
        self._unknown: dict[str, tuple[int, datetime | None]] = {}  # login -> (failures, locked until)

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None:
            if self._dummy is None:
                self._dummy = await self._hash(secrets.token_urlsafe(16))
            stored = self._dummy
            password = password + "\x00"  # never matches
        try:
            return await asyncio.to_thread(self.hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # --- management (CLI and the owners' page) -----------------------------------------------

    async def count(self) -> int:
        return await accounts.count(self.db.reader)

    async def list(self) -> list[Account]:
        return await accounts.all_accounts(self.db.reader)

    async def get(self, login: str) -> Account | None:
        return await accounts.by_login(self.db.reader, login.strip().lower())

    async def add(self, login: str, role: str, password: str | None, stores: tuple[str, ...] = (), name: str = "",
                  by: str = "cli", only_if_none: bool = False, telegram_user_id: int | None = None) -> Account:
        """A new account. `password` None: it signs in only with Telegram (needs `telegram_user_id`)."""
        login = clean_login(login)
        if role not in ROLES:
            raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
        stores = clean_stores(role, stores)
        name = clean_name(name or login)
        if telegram_user_id is not None:
            check_telegram_id(telegram_user_id)
        if password is None:
            if telegram_user_id is None:
                raise AccountError("password: an account without one needs --telegram-id (it signs in with Telegram only)")
            hashed = None
        else:
            check_password(password)
            hashed = await self._hash(password)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            if only_if_none and await accounts.count(tx) > 0:
                raise AccountError("there is an account already: sign in, or ask an owner")
            if await accounts.by_login(tx, login) is not None:
                raise AccountError(f"login {login!r}: taken")
            if telegram_user_id is not None:
                await self._telegram_id_free(tx, telegram_user_id)
            account_id = await accounts.create(tx, login, name, role, hashed, stores, now, telegram_user_id)
            detail = f"role {role}" + (f", stores {', '.join(stores)}" if stores else "")
            if telegram_user_id is not None:
                detail += f", Telegram id {telegram_user_id}" + ("" if hashed else ", no password")
            await accounts.log_event(tx, account_id, login, "created", now, detail, by)
        log.info("account %s created (%s) by %s", login, role, by)
        account = await accounts.by_id(self.db.reader, account_id)
        assert account is not None
        return account

    async def _existing(self, tx, login: str) -> Account:
        account = await accounts.by_login(tx, login.strip().lower())
        if account is None:
            raise AccountError(f"no account {login!r}")
        return account

    async def set_password(self, login: str, password: str, by: str = "cli") -> int:
        """New password; the account's sessions end and its lockout lifts. Returns sessions ended."""
        check_password(password)
        hashed = await self._hash(password)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            await accounts.update(tx, account.id, password_hash=hashed, failed_logins=0, locked_until=None)
            ended = await accounts.revoke_all(tx, account.id, now)
            await accounts.log_event(tx, account.id, account.login, "password_changed", now, f"sessions ended: {ended}", by)
        log.info("account %s: password changed by %s", account.login, by)
        return ended

    async def set_role(self, login: str, role: str, stores: tuple[str, ...], by: str = "cli") -> None:
        if role not in ROLES:
            raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")
        stores = clean_stores(role, stores)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            await accounts.update(tx, account.id, role=role)
            await accounts.set_stores(tx, account.id, stores)
            await accounts.log_event(tx, account.id, account.login, "role_changed",
                                     now, f"role {role}" + (f", stores {', '.join(stores)}" if stores else ""), by)

    async def disable(self, login: str, by: str = "cli") -> int:
        """No more sign-ins; its sessions end at once. Returns sessions ended."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            await accounts.update(tx, account.id, disabled_at=now)
            ended = await accounts.revoke_all(tx, account.id, now)
            await accounts.log_event(tx, account.id, account.login, "disabled", now, f"sessions ended: {ended}", by)
        log.info("account %s disabled by %s", account.login, by)
        return ended

    async def enable(self, login: str, by: str = "cli") -> None:
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            await accounts.update(tx, account.id, disabled_at=None, failed_logins=0, locked_until=None)
            await accounts.log_event(tx, account.id, account.login, "enabled", now, "", by)

    async def remove(self, login: str, by: str = "cli") -> None:
        """Gone, with its sessions; its audit trail and its ticket events stay (under its login and name)."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            await accounts.remove(tx, account.id)
            await accounts.log_event(tx, account.id, account.login, "removed", now, "", by)
        log.info("account %s removed by %s", account.login, by)

    async def _telegram_id_free(self, tx, telegram_user_id: int) -> None:
        holder = await accounts.by_telegram_user(tx, telegram_user_id)
        if holder is not None:
            raise AccountError(f"Telegram id {telegram_user_id}: linked to the account {holder.login!r} already"
                               f" (unlink it there first: feedbot user telegram {holder.login} --unlink)")

    async def link_telegram(self, login: str, telegram_user_id: int, by: str = "cli") -> None:
        """The account may sign in with "Log in with Telegram" as this Telegram user."""
        check_telegram_id(telegram_user_id)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            if account.telegram_user_id == telegram_user_id:
                return
            await self._telegram_id_free(tx, telegram_user_id)
            await accounts.update(tx, account.id, telegram_user_id=telegram_user_id)
            detail = f"Telegram id {telegram_user_id}" + (f", was {account.telegram_user_id}" if account.telegram_user_id else "")
            await accounts.log_event(tx, account.id, account.login, "telegram_linked", now, detail, by)
        log.info("account %s: Telegram sign-in linked by %s", account.login, by)

    async def unlink_telegram(self, login: str, by: str = "cli") -> bool:
        """No more Telegram sign-ins for the account (its password stays). False: it was not linked."""
        now = self.clock.now()
        async with self.db.transaction() as tx:
            account = await self._existing(tx, login)
            if account.telegram_user_id is None:
                return False
            if account.password_hash is None:
                raise AccountError(f"{account.login!r} has no password: set one first (feedbot user passwd"
                                   f" {account.login}), or it could not sign in at all")
            await accounts.update(tx, account.id, telegram_user_id=None)
            await accounts.log_event(tx, account.id, account.login, "telegram_unlinked", now,
                                     f"Telegram id {account.telegram_user_id}", by)
        log.info("account %s: Telegram sign-in unlinked by %s", account.login, by)
        return True

    async def events(self, login: str, limit: int = 50) -> list[accounts.AccountEvent]:
        return await accounts.events(self.db.reader, login.strip().lower(), limit)

    # --- signing in ----------------------------------------------------------------------------

    async def sign_in(self, login: str, password: str, address: str = "") -> SignIn:
        """Check a login and password; on success a new session. Wrong passwords count per account:
        `max_failed_logins` in a row lock it for `lockout` (the right password waits too)."""
        login = login.strip().lower()
        account = await accounts.by_login(self.db.reader, login) if LOGIN_RE.fullmatch(login) else None
        now = self.clock.now()
        if account is not None and account.locked_until is not None and account.locked_until > now:
            async with self.db.transaction() as tx:
                await accounts.log_event(tx, account.id, account.login, "sign_in_refused", now, f"locked, from {address}")
            return SignIn(refused="locked", locked_until=account.locked_until)
        if account is None:
            _, until = self._unknown.get(login, (0, None))
            if until is not None and until > now:
                return SignIn(refused="locked", locked_until=until)
        ok = await self._verify(account.password_hash if account else None, password)
        if account is None:
            return self._unknown_failed(login, now)
        if not ok:
            async with self.db.transaction() as tx:
                failures = await accounts.failed_login(tx, account.id, self.policy.max_failed_logins, now + self.policy.lockout)
                locked = failures >= self.policy.max_failed_logins
                await accounts.log_event(tx, account.id, account.login, "locked" if locked else "wrong_password", now,
                                         f"from {address}")
            if locked:
                log.warning("account %s locked after %d wrong passwords", account.login, failures)
                return SignIn(refused="locked", locked_until=now + self.policy.lockout)
            return SignIn(refused="wrong")
        if account.disabled_at is not None:
            return SignIn(refused="disabled")
        rehash = None
        if self.hasher.check_needs_rehash(account.password_hash or ""):
            rehash = await self._hash(password)
        return await self._open_session(account, f"from {address}", rehash)

    def _unknown_failed(self, login: str, now: datetime) -> SignIn:
        """A wrong sign-in for a login that does not exist, answered as an account's would be
        (storage.accounts.failed_login: the count goes on after a lockout, only a success resets it)."""
        failures, until = self._unknown.get(login, (0, None))
        failures += 1
        if failures >= self.policy.max_failed_logins:
            until = now + self.policy.lockout
        if len(self._unknown) >= 10_000 and login not in self._unknown:  # many logins tried: forget the oldest
            del self._unknown[next(iter(self._unknown))]
        self._unknown[login] = (failures, until)
        return SignIn(refused="locked", locked_until=until) if failures >= self.policy.max_failed_logins \
            else SignIn(refused="wrong")

    async def sign_in_telegram(self, telegram_user_id: int, address: str = "",
                               spent: tuple[str, datetime] | None = None) -> SignIn:
        """A sign-in by "Log in with Telegram", its signed data already checked (bot/http/auth.py):
        the linked account gets a session like a password sign-in; a locked or disabled one does
        not. `spent`: the data's key and when it goes stale; data already used opens nothing."""
        account = await accounts.by_telegram_user(self.db.reader, telegram_user_id)
        if account is None:
            return SignIn(refused="unlinked")
        now = self.clock.now()
        refused = ""
        if account.locked_until is not None and account.locked_until > now:
            refused = "locked"
        elif account.disabled_at is not None:
            refused = "disabled"
        if refused:
            async with self.db.transaction() as tx:
                await accounts.log_event(tx, account.id, account.login, "sign_in_refused", now,
                                         f"{refused}, with Telegram, from {address}")
            return SignIn(refused=refused, locked_until=account.locked_until if refused == "locked" else None)
        if spent is not None:
            async with self.db.transaction() as tx:
                fresh = await accounts.spend_login(tx, spent[0], spent[1], now)
                if not fresh:
                    await accounts.log_event(tx, account.id, account.login, "sign_in_refused", now,
                                             f"Telegram data used before, from {address}")
            if not fresh:
                return SignIn(refused="spent")
        return await self._open_session(account, f"with Telegram, from {address}")

    async def _open_session(self, account: Account, detail: str, rehash: str | None = None) -> SignIn:
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        async with self.db.transaction() as tx:
            fields: dict[str, object] = {"failed_logins": 0, "locked_until": None}
            if rehash:
                fields["password_hash"] = rehash
            await accounts.update(tx, account.id, **fields)
            await accounts.create_session(tx, token_hash(token), account.id, csrf, now, now + self.policy.session_lifetime)
            await accounts.log_event(tx, account.id, account.login, "signed_in", now, detail)
        session = await accounts.live_session(self.db.reader, token_hash(token), now)
        assert session is not None
        log.info("account %s signed in", account.login)
        return SignIn(token=token, session=session)

    async def session(self, token: str | None) -> SessionRow | None:
        if not token or len(token) > 100 or not token.isascii():  # ours are; a cookie's non-UTF-8 bytes are surrogates
            return None
        return await accounts.live_session(self.db.reader, token_hash(token), self.clock.now())

    async def sign_out(self, session: SessionRow) -> None:
        now = self.clock.now()
        async with self.db.transaction() as tx:
            await accounts.revoke_session(tx, session.token_hash, now)
            await accounts.log_event(tx, session.account.id, session.account.login, "signed_out", now)
        log.info("account %s signed out", session.account.login)
