"""The CSAT question and its follow-ups per touchpoint and per store: the shop's own texts
from the config ([[wording]]), else the catalog's text for the touchpoint, else the general one."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from flows.texts import has, text

KEYS = ("question", "reminder", "thanks_high", "thanks_low", "followup_high", "followup_low")


@dataclass(frozen=True)
class WordingRule:
    touchpoint: str = ""  # "": any touchpoint
    store: str = ""  # "": any store
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # language -> key -> text

    def matches(self, touchpoint: str, store: str | None) -> bool:
        return (not self.touchpoint or self.touchpoint == touchpoint) and (not self.store or self.store == (store or ""))

    @property
    def specificity(self) -> int:
        return 2 * bool(self.store) + bool(self.touchpoint)  # a store's own text first, then a touchpoint's


@dataclass(frozen=True)
class Wording:
    rules: tuple[WordingRule, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(sorted(self.rules, key=lambda r: -r.specificity)))

    def text(self, language: str, key: str, *, touchpoint: str = "", store: str | None = None, **params: object) -> str:
        for rule in self.rules:
            own = rule.texts.get(language, {}).get(key) if rule.matches(touchpoint, store) else None
            if own:
                try:
                    return own.format(**params)
                except (KeyError, IndexError, ValueError):
                    return own  # a stray brace in the shop's text: shown as written
        specific = f"csat.{key}.{touchpoint}"
        return text(language, specific if touchpoint and has(language, specific) else f"csat.{key}", **params)


DEFAULT = Wording()
