"""`feedbot import FILE --source kiotviet-export|sapo-export|haravan-export|generic [--dry-run]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.clock import SystemClock
from bot.config import Config
from bot.services.order_import import KINDS, ImportError_, ImportReport, import_orders, read_rows
from bot.services.orders import OrderIntake
from bot.services.programs import ProgramSchedule

COMMANDS = ("import",)


def add_parsers(sub: Any, config_help: str) -> None:
    parser = sub.add_parser(
        "import", help="import orders from a sales system's export (CSV or XLSX)",
        description="Import orders from a CSV or XLSX export: each order becomes a purchase and its survey is "
        "scheduled like a posted one (orders older than survey.max_lateness are recorded without a survey). "
        "Several lines of one order are its items; cancelled orders are skipped; bad rows are reported with "
        "their line numbers and skipped. Running it again imports nothing twice (by order id).")
    parser.add_argument("file", help="the export, .csv (UTF-8; comma, semicolon or tab) or .xlsx (first sheet)")
    parser.add_argument("--source", required=True, choices=KINDS, help="whose export it is (column names)")
    parser.add_argument("--name", help="the order ids' prefix, like a webhook source's name (default: the "
                        "system's name, e.g. kiotviet: an order imported and later sent by a webhook source of the "
                        "same name is the same order)")
    parser.add_argument("--dry-run", action="store_true", help="show the first orders mapped and every problem; "
                        "write nothing")
    parser.add_argument("--config", help=config_help)


def default_name(kind: str) -> str:
    return kind.removesuffix("-export") if kind != "generic" else "import"


async def run(config: Config, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"feedbot: {path}: no such file", file=sys.stderr)
        return 2
    name = args.name or default_name(args.source)
    async with config.database.open() as db:
        policy = config.survey_policy()
        intake = OrderIntake(db, SystemClock(), policy, config.survey.touchpoints,
                             programs=ProgramSchedule(config.feedback, policy))
        try:
            report = await import_orders(intake, read_rows(path), kind=args.source, source=name,
                                         dry_run=args.dry_run, progress=_progress)
        except ImportError_ as exc:
            print(f"feedbot: {exc}", file=sys.stderr)
            return 2
    print_report(report, args.dry_run)
    return 1 if report.errors and not report.valid and not report.already else 0  # nothing usable in it


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} orders", end="" if done < total else "\n",
          file=sys.stderr, flush=True)


def print_report(report: ImportReport, dry_run: bool, out: Any = None) -> None:
    out = out or sys.stdout
    if dry_run:
        print("dry run: nothing written", file=out)
        for p in report.preview:
            print(f"  line {p['line']}: {p['order_id']} | {p['customer']} | {p['phone'] or '-'} | {p['amount']} "
                  f"{p['currency']} | {p['store'] or '-'} | {p['touchpoint']} | {p['purchased_at']} | "
                  f"{p['items']} item(s)", file=out)
    done = f"{report.valid} valid to import" if dry_run else \
        f"{report.recorded} imported ({report.scheduled} surveys scheduled), {report.already} already recorded"
    print(f"{report.rows} rows, {report.orders} orders: {done}, "
          f"{report.skipped_cancelled} cancelled skipped, {len(report.duplicates)} duplicate rows, "
          f"{len(report.errors)} with errors", file=out)
    for problem in sorted(report.duplicates + report.errors, key=lambda p: p.line):
        print(f"  line {problem.line}: {problem.message}", file=out)
