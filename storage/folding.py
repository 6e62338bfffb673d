"""Vietnamese text folded for search: lower case, no diacritics, đ -> d ("Đóng gói" -> "dong goi")."""
from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    plain = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "d"))
    return " ".join("".join(c for c in plain if not unicodedata.combining(c)).lower().split())
