"""Typed button data (flows/buttons.py): packed and unpacked by one class per kind, the
64-byte limit checked once, anything malformed read as None."""
import pytest

from flows.buttons import MAX_BYTES, ButtonDataError, CsatChoice, DeskAction


def test_each_kind_packs_and_unpacks_to_itself():
    for data in (CsatChoice(12, "4"), CsatChoice(7, "skip"), DeskAction("claim", 42)):
        assert type(data).unpack(data.pack()) == data
    assert CsatChoice(12, "4").pack() == "csat:12:4" and DeskAction("esc", 3).pack() == "dk:esc:3"


@pytest.mark.parametrize("data", ["csat:12", "csat:12:6", "csat:x:4", "csat:12:4:1", "csat:²:4", "dk:claim", "dk:a:b",
                                  "kn:r:1:2", "", "csat:-1:4"])
def test_malformed_data_unpacks_to_none(data):
    assert CsatChoice.unpack(data) is None or DeskAction.unpack(data) is None
    assert not (CsatChoice.unpack(data) or DeskAction.unpack(data))


def test_data_over_telegrams_64_bytes_or_with_the_separator_is_refused_when_packed():
    with pytest.raises(ButtonDataError):
        DeskAction("x" * MAX_BYTES, 1).pack()
    with pytest.raises(ButtonDataError):
        DeskAction("a:b", 1).pack()
    with pytest.raises(ValueError):
        CsatChoice(1, "9")
