"""Canned replies' placeholders (flows/canned.py)."""
from flows.canned import BODY_MAX, TITLE_MAX, fill, problem, unknown_placeholders


def test_placeholders_are_filled_and_other_text_is_left_as_written():
    body = "Chào {ten_khach}, về phiếu {ma_phieu}: {ten_khach} ơi, giá {100} nghìn, {} và { ma_phieu }"
    assert fill(body, customer_name="Nguyễn Thị Lan", ticket_number="KN-0007") == (
        "Chào Nguyễn Thị Lan, về phiếu KN-0007: Nguyễn Thị Lan ơi, giá {100} nghìn, {} và { ma_phieu }")


def test_a_name_with_braces_is_not_read_again():
    assert fill("{ten_khach} {ma_phieu}", customer_name="{ma_phieu}", ticket_number="KN-1") == "{ma_phieu} KN-1"


def test_unknown_placeholders_are_named_once_each_and_refused():
    assert unknown_placeholders("{ten} {ten_khach} {ten} {ma_don}") == ["ten", "ma_don"]
    assert problem("Mẫu", "Chào {ten}") == "canned.unknown_placeholder"
    assert problem("Mẫu", "Chào {ten_khach}") is None


def test_empty_and_too_long_are_refused():
    assert problem("", "x") == problem("x", "  ") == "canned.empty"
    assert problem("x" * (TITLE_MAX + 1), "x") == problem("x", "x" * (BODY_MAX + 1)) == "canned.too_long"
    assert problem("x" * TITLE_MAX, "x" * BODY_MAX) is None
