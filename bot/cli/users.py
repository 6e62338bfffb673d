"""`feedbot user add|list|passwd|role|disable|enable|remove|log` (registered by bot/cli/main.py)."""
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
                password = _password(args, read_password)
                account = await service.add(args.login, args.role, password, tuple(args.store), name=args.name)
                stores = f" (stores: {', '.join(account.stores)})" if account.stores else ""
                print(f"created {account.role} {account.login}{stores}")
            elif command == "list":
                rows = await service.list()
                if not rows:
                    print("no accounts yet: feedbot user add <login> --role owner")
                for a in rows:
                    state = "disabled" if a.disabled_at else ("locked" if a.locked_until and a.locked_until > service.clock.now() else "active")
                    print(f"{a.login}\t{a.role}\t{state}\t{a.name}\t{','.join(a.stores)}")
            elif command == "passwd":
                ended = await service.set_password(args.login, _password(args, read_password))
                print(f"password of {args.login} changed; {ended} session(s) ended")
            elif command == "role":
                await service.set_role(args.login, args.role, tuple(args.store))
                print(f"{args.login} is now {args.role}")
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
