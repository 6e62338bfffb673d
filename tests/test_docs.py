"""The project's own documents: the README points only inside the repository, and the
architecture page names files and functions that exist."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_points_to_the_architecture_page_and_never_outside():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/architecture.md" in readme
    assert "../" not in readme and "shared/" not in readme


def test_architecture_page_names_real_files_and_functions():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:bot|flows|storage|tests)/[\w/.]+\.(?:py|sql|md))`", page))
    assert len(paths) > 20
    missing = [p for p in paths if "NNNN" not in p and "<" not in p and not (ROOT / p).exists()]
    assert missing == []
    code = "\n".join(p.read_text(encoding="utf-8") for d in ("bot", "storage") for p in (ROOT / d).rglob("*.py"))
    for name in re.findall(r"`(?:[A-Za-z]+\.)?(\w+)`", page):
        if name in ("receive", "record", "process", "replay_unprocessed", "dispatch_due", "watch_sla", "purge",
                    "send_due", "carry_out", "apply", "poll", "on_failed", "prepare", "on_sent", "unit", "failure_listeners", "ready"):
            assert re.search(rf"\b(?:def|async def) {name}\b|\bself\.{name}\b", code), name
    for job in re.findall(r"^\| `([a-z-]+)`", page, re.M):
        assert f'"{job}"' in (ROOT / "bot" / "app.py").read_text(encoding="utf-8"), job
