"""Config: defaults, every key documented, env secrets, errors naming the key."""
import re
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from dataclasses import fields

from bot.config import SCHEMA, SECTION_TYPES, Config, ConfigError, load_config, parse_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:" + "A" * 35


def test_embedded_defaults_are_valid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.toml here
    config = load_config(env={})
    assert config.source == "embedded defaults"
    assert not config.telegram_enabled
    policy = config.survey_policy()
    assert policy.delay == timedelta(hours=3) and policy.expires_after == timedelta(hours=72)
    assert policy.reminder_after is None and policy.fatigue == timedelta(days=7)


def test_every_schema_key_is_a_typed_field_and_every_field_a_schema_key():
    """SCHEMA (parsers, defaults) and the typed sections (config.<section>.<key>) agree: a key
    added to SCHEMA gets its field in the section's class in bot/config.py, a new section its
    class in SECTION_TYPES and its field on Config."""
    assert set(SECTION_TYPES) == set(SCHEMA), "a section of SCHEMA without its class in SECTION_TYPES, or the reverse"
    # sources: [[sources]], a list; feedback: [[programs]], [[departments]], [[stores]], [[wording]] (bot/feedback_settings.py)
    on_config = {f.name for f in fields(Config)} - {"values", "source", "sources", "feedback"}
    assert on_config == set(SCHEMA), "Config's section fields differ from SCHEMA's sections"
    for section, keys in SCHEMA.items():
        declared = {f.name for f in fields(SECTION_TYPES[section])}
        assert declared == set(keys), (
            f"[{section}]: SCHEMA keys without a field in {SECTION_TYPES[section].__name__}: "
            f"{sorted(set(keys) - declared)}; fields not in SCHEMA: {sorted(declared - set(keys))}"
        )


def test_typed_sections_hold_the_parsed_values():
    config = parse_config({"survey": {"delay": "90m"}, "agents": {"chat_id": -1001, "agent_ids": [5, 6]},
                           "database": {"path": "shop.db"}}, {})
    assert config.survey.delay == timedelta(minutes=90)
    assert config.agents.chat_id == "-1001" and config.agents.agent_ids == ("5", "6")
    assert config.sla.normal == (timedelta(hours=2), timedelta(hours=48))
    assert config.database.describe() == "shop.db"
    for section in SCHEMA:  # the same values as the parsed mapping (Config.values)
        for key in SCHEMA[section]:
            assert getattr(getattr(config, section), key) == config.values[section][key]


def test_example_file_documents_every_key_and_loads():
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    for section, keys in SCHEMA.items():
        for key in keys:
            assert re.search(rf"^#?\s*{key}\s*=", text, re.M), f"{section}.{key} not in config.example.toml"
    parse_config(raw, {})


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"survey": {"delay": "soon"}}, "survey.delay"),
        ({"survey": {"expires_after": "0s"}}, "survey.expires_after"),
        ({"survey": {"quiet_hours": "25:00-08:00"}}, "survey.quiet_hours"),
        ({"survey": {"fatigue_days": -1}}, "survey.fatigue_days"),
        ({"survey": {"touchpoints": []}}, "survey.touchpoints"),
        ({"survey": {"reminder": "yes"}}, "survey.reminder"),
        ({"shop": {"timezone": "Mars/Olympus"}}, "shop.timezone"),
        ({"shop": {"language": "fr"}}, "shop.language"),
        ({"http": {"port": 70000}}, "http.port"),
        ({"http": {"port": "8080"}}, "http.port"),
        ({"telegram": {"token": "not-a-token"}}, "telegram.token"),
        ({"telegram": {"api_base_url": "ftp://x"}}, "telegram.api_base_url"),
        ({"telegram": {"mode": "webhook"}}, "http.public_url"),
        ({"telegram": {"mode": "carrier-pigeon"}}, "telegram.mode"),
        ({"sender": {"messages_per_second": 0}}, "sender.messages_per_second"),
        ({"survey": {"dealy": "3h"}}, "survey.dealy"),
        ({"surveys": {}}, "surveys"),
    ],
)
def test_bad_values_name_the_key(raw, key):
    with pytest.raises(ConfigError) as info:
        parse_config(raw, {})
    assert str(info.value).startswith(key + ":") or str(info.value).startswith(key + " ")


def test_secrets_from_environment_win(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('[telegram]\ntoken = ""\n[http]\napi_token = "from-file"\n')
    config = load_config(file, env={"FEEDBOT_TELEGRAM_TOKEN": TOKEN, "FEEDBOT_API_TOKEN": "token-from-the-environment-1"})
    assert config.telegram.token == TOKEN and config.telegram_enabled
    assert config.http.api_token == "token-from-the-environment-1"


def test_bad_env_secret_names_key_and_variable():
    with pytest.raises(ConfigError, match=r"telegram.token.*FEEDBOT_TELEGRAM_TOKEN|telegram.token"):
        parse_config({}, {"FEEDBOT_TELEGRAM_TOKEN": "oops"})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[survey\ndelay=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_config_path_from_environment(tmp_path):
    file = tmp_path / "c.toml"
    file.write_text('[shop]\nname = "Tiệm Hoa"\n')
    assert load_config(env={"FEEDBOT_CONFIG": str(file)}).shop.name == "Tiệm Hoa"


def test_webhook_mode_follows_public_url():
    assert not parse_config({"telegram": {"token": TOKEN}}, {}).telegram_webhook
    assert parse_config({"telegram": {"token": TOKEN}, "http": {"public_url": "https://shop.example"}}, {}).telegram_webhook
    forced = {"telegram": {"token": TOKEN, "mode": "polling"}, "http": {"public_url": "https://shop.example"}}
    assert not parse_config(forced, {}).telegram_webhook


@pytest.mark.parametrize("text, expected", [("3h", timedelta(hours=3)), ("90m", timedelta(minutes=90)),
                                            ("1h30m", timedelta(minutes=90)), ("2d", timedelta(days=2)), ("45s", timedelta(seconds=45))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3", "h", "3 hours", 3])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["3h", "90m", "1h30m", "2d", "45s", "72h", "1d2h3m4s"])
def test_durations_print_as_the_config_writes_them(text):
    from bot.durations import format_duration

    printed = format_duration(parse_duration(text))
    assert re.fullmatch(r"(\d+d)?(\d+h)?(\d+m)?(\d+s)?", printed) and parse_duration(printed) == parse_duration(text)
    assert format_duration(timedelta(hours=3)) == "3h" and format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(hours=72)) == "72h" and format_duration(timedelta(days=7)) == "7d"


def test_every_default_duration_prints_as_the_example_file_writes_it():
    from bot.durations import format_duration

    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, keys in SCHEMA.items():
        for key, (parse, default) in keys.items():
            if parse in (parse_duration,) or getattr(parse, "__name__", "") == "_positive_duration":
                assert format_duration(parse(default)) == default, (section, key)
                assert re.search(rf'^{key} = "{default}"', text, re.M), (section, key)


def test_a_short_token_is_refused_with_what_is_wrong_and_a_valid_example():
    from bot.config import BOT_TOKEN_EXAMPLE

    with pytest.raises(ConfigError) as info:
        parse_config({"telegram": {"token": "123456:ABC-test"}}, {})
    message = str(info.value)
    assert "the part after ':' has 8 characters" in message and "123456:ABC-test" not in message
    example = re.search(r"looks like '([^']+)'", message).group(1)
    assert example == BOT_TOKEN_EXAMPLE
    assert parse_config({"telegram": {"token": example}}, {}).telegram_enabled  # the example itself passes
    for token, problem in [("abc", "no ':'"), ("12a:" + "A" * 35, "numeric id"), ("1:" + "A" * 30 + " x", "only hold")]:
        with pytest.raises(ConfigError, match=problem):
            parse_config({"telegram": {"token": token}}, {})


@pytest.mark.parametrize("url", ["https://api.telegram.org/bot", "http://127.0.0.1:8081/bot/",
                                 "https://api.telegram.org/bot" + TOKEN])
def test_api_base_url_with_the_bot_suffix_is_refused_saying_so(url):
    with pytest.raises(ConfigError) as info:
        parse_config({"telegram": {"api_base_url": url}}, {})
    assert str(info.value).startswith("telegram.api_base_url: give the server's address without the /bot suffix")
    assert TOKEN not in str(info.value)
    assert parse_config({"telegram": {"api_base_url": "http://127.0.0.1:8081/botapi"}}, {})  # a path of its own is fine
