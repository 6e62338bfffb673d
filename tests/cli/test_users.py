"""`feedbot user ...` through the real command line: add, list, passwd, role, disable, remove, log;
bad input exits 2 naming what is wrong; the password is read from stdin, never an argument."""
from __future__ import annotations

from tests.cli.test_main import feedbot


def test_user_commands_end_to_end(tmp_path):
    secret = "mật-khẩu-đủ-dài-9"
    added = feedbot("user", "add", "Lan", "--role", "manager", "--store", "Q1", "--name", "Lan Anh", "--password-stdin",
                    cwd=tmp_path, input=secret + "\n")
    assert added.returncode == 0 and "created manager lan (stores: Q1)" in added.stdout
    assert secret not in added.stdout + added.stderr
    listed = feedbot("user", "list", cwd=tmp_path)
    assert "lan\tmanager\tactive\tLan Anh\tQ1\t-" in listed.stdout
    bad = feedbot("user", "add", "bob", "--role", "agent", "--store", "Q1", "--password-stdin", cwd=tmp_path, input=secret + "\n")
    assert bad.returncode == 2 and "only managers have stores" in bad.stderr
    short = feedbot("user", "add", "bob", "--role", "agent", "--password-stdin", cwd=tmp_path, input="short\n")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    no_tty = feedbot("user", "add", "bob", "--role", "agent", cwd=tmp_path, input="")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    assert feedbot("user", "passwd", "lan", "--password-stdin", cwd=tmp_path, input="một-mật-khẩu-khác\n").returncode == 0
    assert feedbot("user", "role", "lan", "--role", "agent", cwd=tmp_path).returncode == 0
    assert feedbot("user", "disable", "lan", cwd=tmp_path).returncode == 0
    assert "lan\tagent\tdisabled" in feedbot("user", "list", cwd=tmp_path).stdout
    assert feedbot("user", "remove", "lan", cwd=tmp_path).returncode == 0
    assert feedbot("user", "remove", "lan", cwd=tmp_path).returncode == 2
    log = feedbot("user", "log", "lan", cwd=tmp_path).stdout
    assert [line.split("\t")[1] for line in log.splitlines()] == [
        "created by cli", "password_changed by cli", "role_changed by cli", "disabled by cli", "removed by cli"]
    assert feedbot("user", "list", cwd=tmp_path).stdout.startswith("no accounts yet")


def test_user_telegram_links_and_unlinks(tmp_path):
    added = feedbot("user", "add", "an", "--role", "agent", "--telegram-id", "7000000001", "--no-password", cwd=tmp_path)
    assert added.returncode == 0 and "created agent an, Telegram id 7000000001" in added.stdout
    assert "an\tagent\tactive\tan\t\t7000000001" in feedbot("user", "list", cwd=tmp_path).stdout
    bad = feedbot("user", "add", "bob", "--role", "agent", "--no-password", cwd=tmp_path)
    assert bad.returncode == 2 and "only with --telegram-id" in bad.stderr
    assert feedbot("user", "add", "bob", "--role", "agent", "--password-stdin", cwd=tmp_path,
                   input="mật-khẩu-đủ-dài-9\n").returncode == 0
    taken = feedbot("user", "telegram", "bob", "7000000001", cwd=tmp_path)
    assert taken.returncode == 2 and "linked to the account 'an' already" in taken.stderr
    linked = feedbot("user", "telegram", "bob", "7000000002", cwd=tmp_path)
    assert linked.returncode == 0 and "bob may sign in with Telegram as user 7000000002" in linked.stdout
    assert "Telegram sign-in unlinked" in feedbot("user", "telegram", "bob", "--unlink", cwd=tmp_path).stdout
    assert feedbot("user", "telegram", "an", "--unlink", cwd=tmp_path).returncode == 2  # no password: it could not sign in
    assert feedbot("user", "telegram", "bob", cwd=tmp_path).returncode == 2  # an id or --unlink
    log = feedbot("user", "log", "bob", cwd=tmp_path).stdout
    assert [line.split("\t")[1] for line in log.splitlines()] == ["created by cli", "telegram_linked by cli",
                                                                  "telegram_unlinked by cli"]
