"""The package as pip builds it: every module and data file ships, with no setuptools warning."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_build_ships_the_data_files_without_ignored_package_warnings(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("bot", "flows", "storage"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "tests").mkdir()  # must not be shipped
    (source / "tests" / "__init__.py").write_text("")
    built = tmp_path / "built"
    # build_py is the step of a wheel build that copies packages and package data (and warns).
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "build_py", "--build-lib", str(built)],
        cwd=source, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "would be ignored" not in result.stdout + result.stderr
    shipped = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    migrations = {p.name for p in (ROOT / "storage" / "migrations").glob("*.sql")}
    assert migrations and {f"storage/migrations/{m}" for m in migrations} <= shipped
    for folder in ("bot/channels/web/static", "bot/http/agent"):
        files = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).iterdir() if p.is_file()}
        assert files and files <= shipped, folder
    assert {"bot/cli/main.py", "bot/channels/telegram/channel.py", "bot/http/openapi.json", "flows/texts.py", "storage/db.py"} <= shipped
    assert not any(p.startswith("tests/") for p in shipped)
