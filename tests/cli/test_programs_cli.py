"""The CLI's side of issue 21: check-config shows programs, holidays and routing and names a
bad [[programs]] key; `feedbot digest --slices` prints the slices."""
from __future__ import annotations

import tomllib

import pytest

from bot.config import ConfigError, parse_config
from tests.cli.test_main import feedbot

CONFIG = """
[[programs]]
name = "nps_quarterly"
kind = "nps"
trigger = "every"
every_days = 90

[[departments]]
name = "logistics"
chat_id = -1001
categories = ["delivery"]
idea_topics = ["delivery"]

[[stores]]
store = "Q1"
manager_chat_id = 501
"""


def test_check_config_shows_programs_holidays_and_routing(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    result = feedbot("check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "program nps_quarterly: nps, every, priority 40" in result.stdout
    assert "Tết (" in result.stdout and "department logistics: chat -1001" in result.stdout
    assert "store Q1: manager chat 501" in result.stdout


def test_bad_program_keys_are_named():
    for body, key in (
        ('[[programs]]\nname = "x"\nkind = "poll"\n', "programs.x.kind"),
        ('[[programs]]\nname = "x"\nkind = "nps"\ntrigger = "weekly"\n', "programs.x.trigger"),
        ('[[programs]]\nname = "x"\nkind = "nps"\ntouchpoints = ["moon"]\n', "programs.x.touchpoints"),
        ('[[programs]]\nname = "x"\nkind = "nps"\ncolour = "red"\n', "programs[0].colour"),
        ('[[programs]]\nname = "x"\nkind = "nps"\n[programs.vi]\noptions = ["a"]\n', "programs.x.vi.options"),
        ('[[departments]]\nname = "d"\nchat_id = -1\ncategories = ["weather"]\n', "departments.d.categories"),
        ('[holidays]\ndates = ["2027-02-30"]\n', "holidays.dates[0]"),
        ('[survey]\nstages = "order"\n', "survey.stages"),
    ):
        with pytest.raises(ConfigError) as raised:  # in process: `check-config` exits 2 with this message
            parse_config(tomllib.loads(body), {})
        assert str(raised.value).startswith(key), (body, str(raised.value))


def test_digest_slices_print(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG)
    result = feedbot("digest", "--slices", "--week", "2026-W47", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--- department:logistics (-1001)" in result.stdout and "--- store:Q1 (501)" in result.stdout
