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


def test_the_complaint_and_privacy_buttons_keep_the_data_they_always_had():
    """Messages already sent carry the old data: the typed classes read and write it unchanged."""
    from flows.buttons import (
        ComplaintCategory, ComplaintOrder, ComplaintStart, ComplaintStep, PrivacyChoice, ReopenComplaint, ResolutionScore,
    )

    written = {
        ComplaintStart(3): "kn:new:3", ComplaintOrder(0): "kn:o:0", ComplaintOrder(None): "kn:o:-",
        ComplaintCategory(4): "kn:c:4", ComplaintStep("more"): "kn:more", ComplaintStep("send"): "kn:send",
        ComplaintStep("cancel"): "kn:cancel", ResolutionScore(12, 5): "kn:r:12:5", ReopenComplaint(12): "kn:re:12",
        PrivacyChoice("forget"): "privacy:forget", PrivacyChoice("keep"): "privacy:keep",
    }
    for data, packed in written.items():
        assert data.pack() == packed and type(data).unpack(packed) == data


@pytest.mark.parametrize("kind, data", [
    ("ComplaintOrder", "kn:o:x"), ("ComplaintOrder", "kn:o:01"), ("ComplaintOrder", "kn:o:"), ("ComplaintCategory", "kn:c:-"),
    ("ComplaintStep", "kn:o:1"), ("ComplaintStep", "kn:stop"), ("ComplaintStep", "kn"), ("ResolutionScore", "kn:r:5"),
    ("ResolutionScore", "kn:r:5:6"), ("ResolutionScore", "kn:r:5:05"), ("ResolutionScore", "kn:r:x:5"),
    ("ReopenComplaint", "kn:re:5:1"), ("ReopenComplaint", "kn:r:5:1"), ("ComplaintStart", "kn:new:²"),
    ("PrivacyChoice", "privacy:all"), ("PrivacyChoice", "privacy:forget:1"), ("DeskAction", "dk:claim:012"),
])
def test_malformed_complaint_privacy_or_non_canonical_data_unpacks_to_none(kind, data):
    import flows.buttons

    assert getattr(flows.buttons, kind).unpack(data) is None


def test_a_press_belongs_to_the_flow_named_by_its_first_part():
    from flows.buttons import family

    assert [family(d) for d in ("kn:r:1:5", "kn:more", "privacy:keep", "csat:1:4", "dk:esc:1", "x")] == [
        "kn", "kn", "privacy", "csat", "dk", "x"]
