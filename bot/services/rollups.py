"""Keeping the rollups true (CSAT: storage/rollups.py; complaints: storage/ticket_rollups.py; journey
stages, staff and program answers: storage/feedback_rollups.py): rebuilt
by `feedbot rollups rebuild`, and at start when they were built under another rule (a new
shop.timezone or VIP rule), by an older version (a kind of rollup added since) or never."""
from __future__ import annotations

import logging
import time

from storage import feedback_rollups, rollups, settings, surveys, ticket_rollups
from storage.db import Database
from storage.rollups import RollupRule

log = logging.getLogger(__name__)

RULE_SETTING = "rollups.rule"
VERSION = 3  # 2: the complaint rollups; 3: the feedback rollups (a database built by an older version is rebuilt once)


def rule_text(rule: RollupRule) -> str:
    return f"{getattr(rule.tz, 'key', str(rule.tz))}|{rule.vip_spend}|{rule.vip_orders}|v{VERSION}"


async def rebuild(db: Database, rule: RollupRule) -> int:
    """Every rollup row again from the surveys, program surveys and tickets, in one transaction (answers wait meanwhile). Rows written."""
    started = time.monotonic()
    async with db.transaction() as tx:
        written = await rollups.rebuild(tx, rule)
        written += await ticket_rollups.rebuild(tx, rule.tz)
        written += await feedback_rollups.rebuild(tx, rule.tz)
        await settings.put(tx, RULE_SETTING, rule_text(rule))
    log.info("rollups rebuilt: %d rows in %.1f s", written, time.monotonic() - started)
    return written


async def ensure_current(db: Database, rule: RollupRule) -> bool:
    """Rebuild when the rollups were made under another rule or never; True if it did."""
    if await settings.get(db.reader, RULE_SETTING) == rule_text(rule):
        return False
    await rebuild(db, rule)
    return True


async def fold_old_comments(db: Database) -> int:
    """Comments stored before comment search get their folded form (once, at start)."""
    done = 0
    while True:
        async with db.transaction() as tx:
            n = await surveys.fold_missing_comments(tx)
        done += n
        if n == 0:
            return done
