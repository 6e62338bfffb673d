"""[[programs]] keys added for issue 21's second part: resolution_rating."""
from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config

BASE = {"shop": {"name": "Shop An"}, "http": {"api_token": "test-api-token-0123456789"}}


def programs(*tables):
    return parse_config({**BASE, "programs": list(tables)}, {}).feedback


def test_a_ces_after_resolution_may_replace_the_rating_and_nothing_else_may():
    settings = programs({"name": "ces", "kind": "ces", "resolution_rating": "replace"})
    assert settings.replacing_resolution_rating().name == "ces"
    assert programs({"name": "ces", "kind": "ces"}).replacing_resolution_rating() is None  # follows by default
    with pytest.raises(ConfigError, match="programs.nps.resolution_rating"):
        programs({"name": "nps", "kind": "nps", "resolution_rating": "replace"})
    with pytest.raises(ConfigError, match="programs.ces.resolution_rating"):
        programs({"name": "ces", "kind": "ces", "trigger": "on_demand", "resolution_rating": "replace"})
    with pytest.raises(ConfigError, match="expected 'follow' or 'replace'"):
        programs({"name": "ces", "kind": "ces", "resolution_rating": "instead"})
