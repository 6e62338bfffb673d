"""`feedbot user add|list|passwd|role|telegram|disable|enable|remove|log` (registered by bot/cli/main.py)."""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Callable

from bot.clock import SystemClock
from bot.config import Config
from bot.services.accounts import ROLES, AccountError, Accounts

COMMANDS = ("user",)
EXIT_BAD_INPUT = 2
PASSWORD_HELP = ("read the password from the first line of standard input instead of asking twice on the terminal "
                 "(never give it as an argument: other users of the machine see arguments)")


def add_commands(sub: argparse._SubParsersAction, config_help: str) -> None:
    user = sub.add_parser(
        "user", help="web accounts: owners, store managers and agents",
        description="Accounts that sign in to the web pages: owner (everything, all stores), manager (the dashboard "
        "and the complaints of their stores), agent (the agent page). Passwords are kept as argon2id hashes.",
    )
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    add = user_sub.add_parser("add", help="create an account (asks for its password)",
                              description="Create an account. Example: feedbot user add lan --role manager --store Q1 --store Q3")
    add.add_argument("login", help="2-40 characters of a-z 0-9 . _ @ -")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--store", action="append", default=[], metavar="STORE",
                     help="a store the manager sees (repeat for several; as posted with purchases)")
    add.add_argument("--name", default="", help="the name customers and colleagues see (default: the login)")
    add.add_argument("--password-stdin", action="store_true", help=PASSWORD_HELP)
    add.add_argument("--telegram-id", type=int, metavar="N",
                     help="link the account to this Telegram user id for \"Log in with Telegram\" (accounts.telegram_login)")
    add.add_argument("--no-password", action="store_true",
                     help="no password: the account signs in with Telegram only (needs --telegram-id)")
    add.add_argument("--config", help=config_help)

    lst = user_sub.add_parser("list", help="list the accounts", description="List the accounts, their roles and stores.")
    lst.add_argument("--config", help=config_help)

    passwd = user_sub.add_parser("passwd", help="set an account's password (ends its sessions, lifts a lockout)",
                                 description="Set a new password; the account's open sessions end at once.")
    passwd.add_argument("login")
    passwd.add_argument("--password-stdin", action="store_true", help=PASSWORD_HELP)
    passwd.add_argument("--config", help=config_help)

    role = user_sub.add_parser("role", help="change an account's role and stores",
                               description="Change the role (and a manager's stores).")
    role.add_argument("login")
    role.add_argument("--role", required=True, choices=ROLES)
    role.add_argument("--store", action="append", default=[], metavar="STORE")
    role.add_argument("--config", help=config_help)

    tg = user_sub.add_parser(
        "telegram", help="link an account to a Telegram user id for \"Log in with Telegram\", or unlink it",
        description="Link the account to a Telegram user id (the number, as in agents.agent_ids), so that it can sign "
        "in with \"Log in with Telegram\" when accounts.telegram_login is on; --unlink ends that (the password stays). "
        "Example: feedbot user telegram lan 123456789")
    tg.add_argument("login")
    which = tg.add_mutually_exclusive_group(required=True)
    which.add_argument("telegram_id", nargs="?", type=int, metavar="TELEGRAM_ID")
    which.add_argument("--unlink", action="store_true", help="no more Telegram sign-ins for this account")
    tg.add_argument("--config", help=config_help)

    for name, what in (("disable", "no more sign-ins; open sessions end at once"),
                       ("enable", "allow sign-ins again"),
                       ("remove", "delete the account (its audit trail and ticket events stay)"),
                       ("log", "show the account's audit trail (sign-ins, lockouts, changes)")):
        cmd = user_sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        cmd.add_argument("login")
        cmd.add_argument("--config", help=config_help)


def _password(args: argparse.Namespace, read: Callable[[str], str] | None) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if read is None:
        if not sys.stdin.isatty():
            raise AccountError("password: no terminal to ask on; use --password-stdin")
        read = getpass.getpass
    first = read("Password: ")
    if read("Repeat the password: ") != first:
        raise AccountError("password: the two entries differ")
    return first


async def run(config: Config, args: argparse.Namespace, read_password: Callable[[str], str] | None = None) -> int:
    async with config.database.open() as db:
        service = Accounts(db, SystemClock(), config.account_policy())
        command = args.user_command
        try:
            if command == "add":
                if args.no_password and args.telegram_id is None:
                    raise AccountError("--no-password: only with --telegram-id (the account signs in with Telegram only)")
                password = None if args.no_password else _password(args, read_password)
                account = await service.add(args.login, args.role, password, tuple(args.store), name=args.name,
                                            telegram_user_id=args.telegram_id)
                stores = f" (stores: {', '.join(account.stores)})" if account.stores else ""
                linked = f", Telegram id {account.telegram_user_id}" if account.telegram_user_id else ""
                print(f"created {account.role} {account.login}{stores}{linked}")
            elif command == "list":
                rows = await service.list()
                if not rows:
                    print("no accounts yet: feedbot user add <login> --role owner")
                for a in rows:
                    state = "disabled" if a.disabled_at else ("locked" if a.locked_until and a.locked_until > service.clock.now() else "active")
                    print(f"{a.login}\t{a.role}\t{state}\t{a.name}\t{','.join(a.stores)}\t{a.telegram_user_id or '-'}")
            elif command == "passwd":
                ended = await service.set_password(args.login, _password(args, read_password))
                print(f"password of {args.login} changed; {ended} session(s) ended")
            elif command == "role":
                await service.set_role(args.login, args.role, tuple(args.store))
                print(f"{args.login} is now {args.role}")
            elif command == "telegram":
                if args.unlink:
                    done = await service.unlink_telegram(args.login)
                    print(f"{args.login}: Telegram sign-in unlinked" if done else f"{args.login}: was not linked to Telegram")
                else:
                    await service.link_telegram(args.login, args.telegram_id)
                    print(f"{args.login} may sign in with Telegram as user {args.telegram_id}")
            elif command == "disable":
                ended = await service.disable(args.login)
                print(f"{args.login} disabled; {ended} session(s) ended")
            elif command == "enable":
                await service.enable(args.login)
                print(f"{args.login} enabled")
            elif command == "remove":
                await service.remove(args.login)
                print(f"{args.login} removed")
            elif command == "log":
                if await service.get(args.login) is None and not await service.events(args.login, 1):
                    raise AccountError(f"no account {args.login!r}")
                for e in reversed(await service.events(args.login)):
                    by = f" by {e.by_login}" if e.by_login else ""
                    print(f"{e.at.isoformat(timespec='seconds')}\t{e.action}{by}\t{e.detail}")
        except AccountError as exc:
            print(f"feedbot: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0
