"""`feedbot customer export|erase <id>` and `feedbot privacy purge` (registered by bot/cli/main.py)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from bot.clock import SystemClock
from bot.config import Config
from bot.services.backups import Backups, BackupSettings
from bot.services.data_rights import Privacy, to_json
from storage import backup as files

ID_HELP = ("the shop's customer id (external_id, as posted with purchases), or contact:<n> for a chat"
           " (a chat linked to a customer stands for that customer: all of their chats and data)")


def add_commands(sub: argparse._SubParsersAction, config_help: str) -> None:
    customer = sub.add_parser(
        "customer", help="a customer's data: export it as JSON or erase it (data-subject rights)",
        description="Export or erase everything kept about one customer (all their chats), as the customer "
        "can do in the chat with /mydata and /forget.",
    )
    customer_sub = customer.add_subparsers(dest="customer_command", required=True, metavar="CUSTOMER_COMMAND")
    export = customer_sub.add_parser(
        "export", help="print all of a customer's data as JSON",
        description="Print (or write to --output) one JSON document with every row kept about the customer: "
        "customer, chats (contacts), purchases, surveys, conversations, complaints and their events, "
        "messages received (inbox) and sent (outbox). Exit 1 if there is no such customer.",
    )
    export.add_argument("id", help=ID_HELP)
    export.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("--config", help=config_help)
    erase = customer_sub.add_parser(
        "erase", help="erase a customer's data everywhere (keeps anonymous scores for statistics)",
        description="Remove or anonymise everything about the customer in one transaction: name, phone, ids, "
        "chats, comments, complaint texts and photos, message payloads. Scores, stores, touchpoints, amounts "
        "and times stay, anonymous, for the reports. The same external id posted again later is a new "
        "customer. Asks for confirmation on a terminal unless --yes. Exit 1 if there is no such customer.",
    )
    erase.add_argument("id", help=ID_HELP)
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.add_argument("--config", help=config_help)

    link = customer_sub.add_parser(
        "link", help="confirm that a chat is the customer's (their whole data becomes reachable from it)",
        description="The shop's confirmation that chat contact:<n> belongs to the customer, e.g. after checking "
        "a phone number a Zalo user submitted, which Zalo does not prove. The chat then gets the customer's "
        "surveys, /mydata and /forget of all their data. Exit 1 if either is unknown.",
    )
    link.add_argument("contact", help="contact:<n>, the chat (from `feedbot customer export contact:<n>` or the log)")
    link.add_argument("id", help="the shop's customer id (external_id)")
    link.add_argument("--config", help=config_help)

    priv = sub.add_parser("privacy", help="privacy housekeeping", description="Privacy housekeeping.")
    priv_sub = priv.add_subparsers(dest="privacy_command", required=True, metavar="PRIVACY_COMMAND")
    purge = priv_sub.add_parser(
        "purge", help="run the retention purge now (the running bot does it every privacy.purge_interval)",
        description="Clear raw message payloads and message texts older than privacy.retention_days "
        "(processed inbox rows, finished outbox rows, bodies of long-resolved complaints, idle conversations), "
        "and delete backups older than backup.retention_days.",
    )
    purge.add_argument("--config", help=config_help)


async def run(config: Config, args: argparse.Namespace, confirm: Callable[[str], bool] | None = None) -> int:
    async with config.database.open() as db:
        service = Privacy(db, SystemClock(), retention_days=config.privacy.retention_days)
        if args.command == "privacy":
            counts = await service.purge()
            print("purged: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
            backups = _backups(config)
            removed = backups.purge_old()
            print(f"backups older than {backups.settings.retention.days} days deleted: {len(removed)}"
                  f" (in {backups.settings.folder})")
            return 0
        if args.customer_command == "export":
            document = await service.export(args.id)
            if document is None:
                return _unknown(args.id)
            body = to_json(document) + "\n"
            if args.output:
                partial = Path(args.output + ".part")
                # Everything kept about a person: readable by the owner of the file only (as backups).
                with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w",
                               encoding="utf-8") as out:
                    out.write(body)
                os.chmod(partial, 0o600)  # an existing .part keeps its mode through O_CREAT
                os.replace(partial, args.output)
                print(f"exported {args.id} to {args.output}", file=sys.stderr)
            else:
                sys.stdout.write(body)
            return 0
        if args.customer_command == "link":
            problem = await service.link(args.contact, args.id)
            if problem is not None:
                print(f"feedbot: {problem}", file=sys.stderr)
                return 1
            print(f"linked {args.contact} to customer {args.id}")
            return 0
        # erase
        if not await service.exists(args.id):
            return _unknown(args.id)
        if not args.yes:
            ask = confirm or _ask
            if not ask(f"Erase all data of customer {args.id}? This cannot be undone. Type 'yes': "):
                print("feedbot: not erased", file=sys.stderr)
                return 1
        counts = await service.erase(args.id)
        if counts is None:  # erased meanwhile
            return _unknown(args.id)
        print(f"erased {args.id}: " + ", ".join(f"{table} {n}" for table, n in counts.items()))
        backups = _backups(config)
        held = len(files.list_backups(backups.settings.folder))
        print(f"note: backups taken before now ({held} in {backups.settings.folder}, and any copies made of them) "
              f"still hold this customer's data until they age out: backup.retention_days = "
              f"{backups.settings.retention.days}, so by {backups.held_until():%Y-%m-%d}. `feedbot privacy purge` "
              "deletes the ones older than that.", file=sys.stderr)
        return 0


def _backups(config: Config) -> Backups:
    return Backups(BackupSettings.from_config(config), SystemClock())


def _unknown(ident: str) -> int:
    print(f"feedbot: no customer {ident}", file=sys.stderr)
    return 1


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        print("feedbot: erase needs --yes when not run on a terminal", file=sys.stderr)
        return False
    return input(question).strip().lower() in ("yes", "y", "có", "co")
