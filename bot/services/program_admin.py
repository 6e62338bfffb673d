"""Owners edit survey programs on the dashboard: turn one off or on, change its texts, audience
and delay. The config's [[programs]] define the programs (name, kind, trigger: a new program
is a config change); an edit is kept in program_overrides as the keys that differ from the
config, checked by the config's own parser, applied at once (ProgramService.use) and written
to the owner's audit trail (account_events). "Reset to config" deletes the edit."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from bot.clock import Clock
from bot.feedback_settings import EDITABLE_KEYS, SettingError, edited_program
from bot.services.programs import ProgramService
from storage import accounts, program_overrides
from storage.db import Database

log = logging.getLogger(__name__)


class EditError(ValueError):
    """A bad edit: its message names the key."""


@dataclass(frozen=True)
class Editor:
    account_id: int
    login: str


class ProgramAdmin:
    def __init__(self, db: Database, clock: Clock, programs: ProgramService) -> None:
        self.db = db
        self.clock = clock
        self.programs = programs

    def _table(self, name: str) -> Mapping[str, Any]:
        table = next((t for t in self.programs.config_settings.program_tables if t.get("name") == name), None)
        if table is None:
            raise KeyError(name)
        return table

    async def list(self) -> list[dict[str, Any]]:
        async with self.db.transaction() as tx:
            edits = await program_overrides.all_(tx)
        out = []
        for table in self.programs.config_settings.program_tables:
            name = table["name"]
            edit = edits.get(name)
            config = {k: table[k] for k in EDITABLE_KEYS if k in table}
            changes = edit.changes if edit else {}
            spec = self.programs.settings.known_program(name)
            out.append({
                "name": name, "kind": table["kind"], "trigger": spec.trigger.kind if spec else table.get("trigger"),
                "enabled": edit.enabled if edit else True,
                "config": config, "changes": changes, "effective": {**config, **changes},
                "edited_at": edit.updated_at.isoformat() if edit and edit.updated_at else None,
                "edited_by": edit.updated_by if edit else None,
            })
        return out

    async def edit(self, name: str, editor: Editor, *, enabled: bool | None = None,
                   changes: Mapping[str, Any] | None = None) -> None:
        """`changes`: the editable keys as the form has them (a key equal to the config's, or
        null, is not an edit); None leaves the kept changes as they are."""
        table = self._table(name)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            kept = await program_overrides.get(tx, name)
            new_enabled = kept.enabled if kept and enabled is None else (True if enabled is None else enabled)
            if changes is None:
                new_changes = dict(kept.changes) if kept else {}
            else:
                new_changes = {k: v for k, v in changes.items()
                               if v is not None and table.get(k, [] if isinstance(v, list) else None) != v}
            try:
                edited_program(self.programs.config_settings, name, new_changes)
            except SettingError as exc:
                raise EditError(str(exc)) from None
            if new_enabled and not new_changes:
                await program_overrides.delete(tx, name)  # nothing differs from the config
            else:
                await program_overrides.put(tx, name, new_enabled, new_changes, now, editor.login)
            detail = json.dumps({"program": name, "enabled": new_enabled, "changes": new_changes}, ensure_ascii=False,
                                sort_keys=True)
            await accounts.log_event(tx, editor.account_id, editor.login, "program_edited", now, detail[:2000],
                                     by=editor.login)
        await self.programs.refresh()
        log.info("program %s edited on the dashboard by %s", name, editor.login)

    async def reset(self, name: str, editor: Editor) -> bool:
        self._table(name)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            gone = await program_overrides.delete(tx, name)
            await accounts.log_event(tx, editor.account_id, editor.login, "program_reset", now,
                                     json.dumps({"program": name}), by=editor.login)
        await self.programs.refresh()
        return gone
