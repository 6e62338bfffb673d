"""Session-wide guard (issue 7, item 8): no log line of the whole test run contains a secret.

Loaded from tests/conftest.py (`pytest_plugins`). For the whole session a handler on the root
logger keeps every record of INFO and above (formatted the way the bot's handlers format it:
message with its args, exception text, stack text); tests that run the bot as a separate
process register their log files with `watch_file`. At the end of the session every record
and every watched file is searched for the known test secrets (the bot token and its secret
part, the API tokens, the webhook secrets); one match fails the run (exit status 1 and a
report naming the secret and where it was found, never the secret itself).

`find_leaks` is the check itself; tests/faults/test_index.py proves it catches a leak.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Iterable

import pytest

_secrets: dict[str, str] = {}  # secret -> a name safe to print
_files: list[Path] = []
_lock = threading.Lock()


def add_secret(value: str, name: str) -> None:
    """Another secret every log line of the session must not contain."""
    if value and len(value) >= 6:
        _secrets[value] = name


def watch_file(path: str | Path) -> None:
    """A log file a subprocess writes; read at the end of the session (so keep it)."""
    _files.append(Path(path))


def _default_secrets() -> None:
    from tests import conftest

    add_secret(conftest.BOT_TOKEN, "the bot token")
    add_secret(conftest.BOT_TOKEN.split(":", 1)[1], "the bot token's secret part")
    add_secret(conftest.API_TOKEN, "the API token")
    for module, names in (
        ("tests.channels.telegram.test_webhook", ("SECRET",)),
        ("tests.faults.test_process", ("API_SECRET", "WEBHOOK_SECRET")),
        ("tests.faults.test_input", ("SECRET",)),
    ):
        try:
            mod = __import__(module, fromlist=["_"])
        except Exception:  # not collected in this run
            continue
        for attr in names:
            value = getattr(mod, attr, None)
            if isinstance(value, str):
                add_secret(value, f"{module}.{attr}")
    add_secret("api-secret-token-xyz-123", "tests.cli.test_main API token")


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could print of this record."""
    parts = [record.name]
    try:
        parts.append(record.getMessage())
    except Exception:  # a broken format string: keep its pieces
        parts.append(str(record.msg))
        parts.append(repr(record.args))
    if record.exc_info and record.exc_info[1] is not None:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


def find_leaks(texts: Iterable[tuple[str, str]], secrets: dict[str, str] | None = None) -> list[str]:
    """(where, text) pairs -> one line per secret found, naming the secret, never showing it."""
    secrets = _secrets if secrets is None else secrets
    found: dict[str, int] = {}
    for where, text in texts:
        for value, name in secrets.items():
            if value in text:
                line = f"{name} appears in {where}"
                found[line] = found.get(line, 0) + 1
    return [line if n == 1 else f"{line} ({n} times)" for line, n in found.items()]


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record_text(record)
        with _lock:
            self.texts.append((f"log record {record.name}:{record.lineno} ({record.levelname})", text))


_handler = _Keep()
_failures: list[str] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    root = logging.getLogger()
    root.addHandler(_handler)
    # As `feedbot run` does (bot/logs.py): the HTTP client libraries log request URLs, and
    # Bot API URLs contain the token, so the bot keeps them at WARNING. What is checked here
    # is what the bot would log, before its RedactSecrets filter (the last line of defence).
    from bot.logs import quiet_noisy_loggers

    quiet_noisy_loggers()
    # INFO and above, as the bot logs by default (DEBUG would add every aiosqlite call).
    # Tests that lower a logger's level (caplog.at_level(DEBUG)) are checked at that level.
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def check() -> list[str]:
    _default_secrets()
    texts = list(_handler.texts)
    for path in _files:
        if path.exists():
            texts.append((f"file {path}", path.read_text(errors="replace")))
    return find_leaks(texts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logging.getLogger().removeHandler(_handler)
    _failures[:] = check()
    if _failures:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if _failures:
        terminalreporter.section("secrets guard: a secret was logged", red=True)
        for line in _failures:
            terminalreporter.write_line(line)
    else:
        terminalreporter.write_line(
            f"secrets guard: {len(_handler.texts)} log records and {len(_files)} process log file(s) checked, no secret found"
        )
