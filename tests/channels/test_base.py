"""The Channel protocol (bot/channels/base.py): every kind of channel declares all of it, so
nobody outside a channel has to ask what it is (no `channel == "web"`, no hasattr)."""
from bot.app import CHANNEL_TYPES
from bot.channels.base import Channel


def test_every_channel_kind_declares_every_member_of_the_protocol():
    members = set(Channel.__annotations__) | {
        name for name, value in vars(Channel).items() if callable(value) and not name.startswith("_")
    }
    assert {"proves_identity", "resets_after_erasure", "deliver", "fits"} <= members
    for kind in CHANNEL_TYPES:
        declared = set(dir(kind)) | set(getattr(kind, "__annotations__", {}))  # a value, or a type set at start
        missing = sorted(members - declared)
        assert not missing, f"{kind.__name__} does not declare {missing}"


def test_only_the_web_chat_does_not_prove_who_writes():
    assert {kind.name: kind.proves_identity for kind in CHANNEL_TYPES} == {"telegram": True, "zalo": True, "web": False}


def test_each_channel_says_where_its_customers_photos_are_kept():
    assert {kind.name: kind.photos for kind in CHANNEL_TYPES} == {"telegram": "platform", "zalo": None, "web": "ours"}


def test_no_module_outside_the_web_channel_asks_whether_a_channel_is_the_web_chat():
    import re
    from pathlib import Path

    bot = Path(__file__).resolve().parents[2] / "bot"
    web = bot / "channels" / "web"
    asks = re.compile(r"""(==|!=)\s*["']web["']|["']web["']\s*(==|!=)""")
    found = [
        f"{path.relative_to(bot.parent)}:{n}" for path in bot.rglob("*.py") if web not in path.parents
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if asks.search(line)
    ]
    assert not found, f"declare it on the Channel protocol instead: {found}"


def test_each_channel_says_how_long_after_a_customers_last_message_it_may_be_written_to():
    from datetime import timedelta

    from bot.channels.zalo.channel import ZnsChannel

    assert {kind.name: kind.reply_window for kind in CHANNEL_TYPES} == {
        "telegram": None, "zalo": timedelta(days=7), "web": None}
    assert ZnsChannel.reply_window is None and not ZnsChannel.conversational  # templates, by their own rules


def test_zalos_rules_live_in_the_zalo_channel_and_the_zalo_survey_routes_only():
    import re
    from pathlib import Path

    bot = Path(__file__).resolve().parents[2] / "bot"
    allowed = {bot / "services" / "survey_routes.py"}  # the routes between Zalo's CS messages and ZNS
    asks = re.compile(r"""(==|!=)\s*["']zalo["']|["']zalo["']\s*(==|!=)""")
    found = [
        f"{path.relative_to(bot.parent)}:{n}" for path in bot.rglob("*.py")
        if bot / "channels" / "zalo" not in path.parents and path not in allowed
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if asks.search(line)
    ]
    assert not found, f"declare it on the Channel protocol instead: {found}"
