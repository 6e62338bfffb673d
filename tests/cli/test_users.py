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
    assert "lan\tmanager\tactive\tLan Anh\tQ1" in listed.stdout
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
