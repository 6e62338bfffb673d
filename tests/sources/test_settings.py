"""[[sources]] in the config file: the documented example parses; bad entries name the key."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_commented_example_sources_parse():
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [[sources]]"):]
    uncommented = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    config = parse_config(tomllib.loads(uncommented), {})
    assert [(s.name, s.platform, s.delivered_on) for s in config.sources] == [
        ("haravan", "haravan", "delivered"), ("kiotviet", "kiotviet", "completed")]


@pytest.mark.parametrize("entry,key", [
    ({"name": "A b", "platform": "haravan", "secret": "x" * 10}, "sources[0].name"),
    ({"name": "a", "platform": "lazada", "secret": "x" * 10}, "sources[0].platform"),
    ({"name": "a", "platform": "haravan", "secret": "short"}, "sources[0].secret"),
    ({"name": "a", "platform": "haravan", "secret": "x" * 10, "delivered_on": "soon"}, "sources[0].delivered_on"),
    ({"name": "a", "platform": "kiotviet", "secret": "x" * 10, "signature": "md5"}, "sources[0].signature"),
    ({"name": "a", "platform": "haravan", "secret": "x" * 10, "colour": 1}, "sources[0].colour"),
])
def test_bad_entries_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_config({"sources": [entry]}, {})


def test_a_name_used_twice_is_refused():
    entry = {"name": "a", "platform": "haravan", "secret": "x" * 10}
    with pytest.raises(ConfigError, match="used twice"):
        parse_config({"sources": [entry, entry]}, {})
    with pytest.raises(ConfigError, match="array of tables"):
        parse_config({"sources": {"name": "a"}}, {})
