"""Accounts on both backends: validation, argon2id hashes, per-account lockout, sessions that end at
once when revoked, disabled, removed or re-passworded, the audit trail, and no password in any log."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import AsyncIterator

import pytest
from argon2 import PasswordHasher

from bot.services.accounts import AccountError, AccountPolicy, Accounts
from storage.db import Database
from tests.conftest import open_db

BACKENDS = ("sqlite", "postgresql")
PASSWORD = "đúng-mật-khẩu-123"
# Still argon2id, with small costs so that the many sign-ins here stay fast (the app uses
# argon2-cffi's defaults: 64 MiB, 3 passes; tests/http sign in with those).
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
async def service(tmp_path, database_url, clock) -> AsyncIterator[Accounts]:
    db = open_db(tmp_path, database_url)
    await db.open()
    yield Accounts(db, clock, AccountPolicy(max_failed_logins=3, lockout=timedelta(minutes=10),
                                            session_lifetime=timedelta(hours=1)),
                   hasher=CHEAP)
    await db.close()


async def rows(db: Database, sql: str) -> list[tuple]:
    return [tuple(r) for r in await db.reader.execute_fetchall(sql)]


async def test_add_checks_its_input_and_keeps_only_an_argon2id_hash(service):
    with pytest.raises(AccountError, match="login"):
        await service.add("x", "agent", PASSWORD)
    with pytest.raises(AccountError, match="role"):
        await service.add("lan", "boss", PASSWORD)
    with pytest.raises(AccountError, match="at least 10"):
        await service.add("lan", "agent", "short")
    with pytest.raises(AccountError, match="needs at least one store"):
        await service.add("lan", "manager", PASSWORD)
    with pytest.raises(AccountError, match="only managers"):
        await service.add("lan", "agent", PASSWORD, ("Q1",))
    account = await service.add("Lan", "manager", PASSWORD, ("Q1", "Q3", "Q1"), name="Lan  Anh")
    assert (account.login, account.name, account.role, account.stores) == ("lan", "Lan Anh", "manager", ("Q1", "Q3"))
    with pytest.raises(AccountError, match="taken"):
        await service.add("LAN", "agent", PASSWORD)
    [(stored,)] = await rows(service.db, "SELECT password_hash FROM accounts")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert await service.count() == 1


async def test_sign_in_session_and_sign_out_end_at_once(service):
    await service.add("an", "agent", PASSWORD)
    result = await service.sign_in("An ", PASSWORD, "10.0.0.1")
    assert result.session is not None and result.session.account.login == "an"
    assert (await service.session(result.token)).account.role == "agent"
    [(stored,)] = await rows(service.db, "SELECT token_hash FROM account_sessions")
    assert result.token not in stored  # only its hash is kept
    await service.sign_out(result.session)
    assert await service.session(result.token) is None
    # Sessions expire.
    again = await service.sign_in("an", PASSWORD)
    service.clock.advance(timedelta(minutes=61))
    assert await service.session(again.token) is None
    assert await service.session("made-up") is None and await service.session("") is None


@pytest.mark.parametrize("how", ["disable", "remove", "passwd"])
async def test_disabled_removed_or_repassworded_accounts_stop_at_once(service, how):
    await service.add("binh", "agent", PASSWORD)
    await service.add("hoa", "agent", PASSWORD)
    mine = await service.sign_in("binh", PASSWORD)
    other = await service.sign_in("hoa", PASSWORD)
    if how == "disable":
        assert await service.disable("binh") == 1
        assert (await service.sign_in("binh", PASSWORD)).refused == "disabled"
    elif how == "remove":
        await service.remove("binh")
        assert (await service.sign_in("binh", PASSWORD)).refused == "wrong"
    else:
        assert await service.set_password("binh", "mật-khẩu-mới-456") == 1
        assert (await service.sign_in("binh", PASSWORD)).refused == "wrong"
        assert (await service.sign_in("binh", "mật-khẩu-mới-456")).session is not None
    assert await service.session(mine.token) is None
    assert await service.session(other.token) is not None  # only that account's
    actions = [a.action for a in reversed(await service.events("binh"))]
    assert actions[0] == "created" and {"disable": "disabled", "remove": "removed", "passwd": "password_changed"}[how] in actions


async def test_lockout_is_per_account_and_lifts_after_its_time(service):
    await service.add("lan", "agent", PASSWORD)
    await service.add("minh", "agent", PASSWORD)
    assert (await service.sign_in("lan", "wrong-one-1")).refused == "wrong"
    assert (await service.sign_in("lan", "wrong-one-2")).refused == "wrong"
    locked = await service.sign_in("lan", "wrong-one-3")
    assert locked.refused == "locked" and locked.locked_until == service.clock.now() + timedelta(minutes=10)
    assert (await service.sign_in("lan", PASSWORD)).refused == "locked"  # the right password waits too
    assert (await service.sign_in("minh", PASSWORD)).session is not None  # another account is not locked
    service.clock.advance(timedelta(minutes=10, seconds=1))
    assert (await service.sign_in("lan", PASSWORD)).session is not None
    # A success resets the count: two more wrong ones do not lock.
    await service.sign_in("lan", "wrong-one-4")
    await service.sign_in("lan", "wrong-one-5")
    assert (await service.sign_in("lan", PASSWORD)).session is not None
    actions = [a.action for a in reversed(await service.events("lan"))]
    assert actions == ["created", "wrong_password", "wrong_password", "locked", "sign_in_refused", "signed_in",
                       "wrong_password", "wrong_password", "signed_in"]


async def test_unknown_login_is_refused_like_a_wrong_password(service):
    assert (await service.sign_in("nobody", PASSWORD)).refused == "wrong"
    assert (await service.sign_in("bad login!", PASSWORD)).refused == "wrong"


async def test_an_unknown_login_locks_like_an_account_so_the_lockout_names_no_one(service):
    """Only a real account said "locked" after max_failed_logins wrong passwords: a guesser
    learned which logins exist (five tries each). An unknown login now answers the same."""
    await service.add("lan", "agent", PASSWORD)
    answers = {}
    for login in ("lan", "nobody"):
        answers[login] = [(await service.sign_in(login, f"wrong-{n}")).refused for n in range(4)]
    assert answers["lan"] == answers["nobody"] == ["wrong", "wrong", "locked", "locked"]
    locked = await service.sign_in("nobody", PASSWORD)
    assert locked.refused == "locked" and locked.locked_until == service.clock.now() + timedelta(minutes=10)
    service.clock.advance(timedelta(minutes=10, seconds=1))  # over; one more wrong locks both again
    assert [(await service.sign_in(login, "wrong-again")).refused for login in ("lan", "nobody")] == ["locked"] * 2
    assert await service.events("nobody") == []  # nothing written for a login that does not exist


async def test_passwords_and_tokens_never_reach_the_log(service, caplog):
    caplog.set_level(logging.DEBUG)
    await service.add("lan", "owner", PASSWORD)
    await service.sign_in("lan", "sai-mật-khẩu-999")
    result = await service.sign_in("lan", PASSWORD)
    await service.set_password("lan", "mật-khẩu-thứ-hai-1")
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in (PASSWORD, "sai-mật-khẩu-999", "mật-khẩu-thứ-hai-1", result.token, result.session.csrf):
        assert secret not in text
    assert "lan" in text  # the log does say who
    events = await rows(service.db, "SELECT detail FROM account_events")
    assert not any(PASSWORD in e[0] for e in events)


async def test_role_change_and_the_first_owner_only_once(service):
    await service.add("boss", "owner", PASSWORD, only_if_none=True)
    with pytest.raises(AccountError, match="there is an account already"):
        await service.add("boss2", "owner", PASSWORD, only_if_none=True)
    await service.add("lan", "agent", PASSWORD)
    await service.set_role("lan", "manager", ("Q1",))
    assert (await service.get("lan")).stores == ("Q1",)
    await service.set_role("lan", "agent", ())
    assert (await service.get("lan")).stores == ()
    with pytest.raises(AccountError, match="no account"):
        await service.disable("ghost")


async def test_telegram_links_are_one_to_one_audited_and_a_telegram_only_account_has_no_password(service):
    await service.add("lan", "agent", PASSWORD)
    await service.add("minh", "agent", None, telegram_user_id=555_000_111)  # signs in with Telegram only
    with pytest.raises(AccountError, match="needs --telegram-id"):
        await service.add("hoa", "agent", None)
    with pytest.raises(AccountError, match="positive"):
        await service.link_telegram("lan", 0)
    with pytest.raises(AccountError, match="linked to the account 'minh' already"):
        await service.link_telegram("lan", 555_000_111)
    with pytest.raises(AccountError, match="linked to the account 'minh' already"):
        await service.add("hoa", "agent", PASSWORD, telegram_user_id=555_000_111)
    await service.link_telegram("lan", 555_000_222)
    assert (await service.get("lan")).telegram_user_id == 555_000_222
    assert (await service.sign_in_telegram(555_000_222, "10.0.0.1")).session.account.login == "lan"
    assert (await service.sign_in_telegram(555_000_333)).refused == "unlinked"
    # Minh has no password: no password signs in, and Telegram cannot be unlinked before one is set.
    assert (await service.sign_in("minh", "anything-at-all")).refused == "wrong"
    with pytest.raises(AccountError, match="no password"):
        await service.unlink_telegram("minh")
    assert await service.unlink_telegram("lan") and not await service.unlink_telegram("lan")
    assert (await service.sign_in_telegram(555_000_222)).refused == "unlinked"
    [(hashed,)] = await rows(service.db, "SELECT password_hash FROM accounts WHERE login = 'minh'")
    assert hashed is None
    actions = [(a.action, a.detail) for a in reversed(await service.events("lan"))]
    assert actions == [("created", "role agent"), ("telegram_linked", "Telegram id 555000222"),
                       ("signed_in", "with Telegram, from 10.0.0.1"), ("telegram_unlinked", "Telegram id 555000222")]
    assert (await service.events("minh"))[-1].detail == "role agent, Telegram id 555000111, no password"
