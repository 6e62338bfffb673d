"""Vietnamese text folded for search: lower case, no diacritics, đ -> d ("Đóng gói" -> "dong goi")."""
from __future__ import annotations

import unicodedata


class _DropCombining(dict):  # type: ignore[type-arg]
    """A str.translate table that deletes combining characters (unicodedata.combining != 0)
    and keeps the rest: each character is asked about once, then looked up in C (a comment
    is folded on every inbound comment; a per-character loop in Python cost ~2% of an update)."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        if len(self) < 20_000:  # bounded: a text of rare characters never grows it without end
            self[code] = kept
        return kept


_DROP_COMBINING = _DropCombining()


def fold(text: str) -> str:
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "d"))
    return " ".join(plain.translate(_DROP_COMBINING).lower().split())
