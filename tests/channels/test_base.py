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
