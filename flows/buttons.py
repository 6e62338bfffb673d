"""Typed button data: one class per kind of button, with its prefix and typed fields.
`pack()` builds the data the platform carries back (checked once here against Telegram's
64-byte callback_data limit); `unpack()` reads it, or gives None for anything malformed
(button data comes from outside: a crafted press must not crash a flow)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from flows.model import parse_id

MAX_BYTES = 64  # Telegram's callback_data limit; Zalo's postback payload is longer

T = TypeVar("T", bound="ButtonData")


class ButtonDataError(ValueError):
    """Button data that cannot be packed (too long, a field with the separator in it)."""


@dataclass(frozen=True)
class ButtonData:
    """Base of every kind of button data: "<prefix>:<field>:<field>..."; int fields are
    positive ids, str fields any text without ":"."""

    PREFIX: ClassVar[str]

    def __post_init__(self) -> None:
        """Subclasses check their fields here (raise ValueError): unpack() turns that into None."""

    def pack(self) -> str:
        values = [str(getattr(self, f.name)) for f in fields(self)]
        if any(":" in v for v in values):
            raise ButtonDataError(f"{type(self).__name__}: a field holds ':' ({values})")
        data = ":".join([self.PREFIX, *values])
        if len(data.encode("utf-8")) > MAX_BYTES:
            raise ButtonDataError(f"{data!r} is longer than {MAX_BYTES} bytes")
        return data

    @classmethod
    def owns(cls, data: str) -> bool:
        return data.startswith(cls.PREFIX + ":")

    @classmethod
    def unpack(cls: type[T], data: str) -> T | None:
        if not cls.owns(data):
            return None
        parts = data[len(cls.PREFIX) + 1:].split(":")
        kinds = fields(cls)  # type: ignore[arg-type]
        if len(parts) != len(kinds):
            return None
        values: list[Any] = []
        for field, raw in zip(kinds, parts):
            value = parse_id(raw) if field.type in ("int", int) else raw
            if value is None:
                return None
            values.append(value)
        try:
            return cls(*values)
        except ValueError:
            return None


@dataclass(frozen=True)
class CsatChoice(ButtonData):
    """A tap on a survey question: a score 1-5, or "skip"."""

    PREFIX: ClassVar[str] = "csat"
    SKIP: ClassVar[str] = "skip"
    survey_id: int
    value: str

    def __post_init__(self) -> None:
        if self.value != self.SKIP and self.value not in {"1", "2", "3", "4", "5"}:
            raise ValueError(f"not a score: {self.value!r}")


@dataclass(frozen=True)
class ProgramChoice(ButtonData):
    """A tap on a program survey's question: a score ("0"-"10"), an option ("o2"), "other" or "skip"."""

    PREFIX: ClassVar[str] = "pg"
    SKIP: ClassVar[str] = "skip"
    OTHER: ClassVar[str] = "other"
    survey_id: int
    value: str

    def __post_init__(self) -> None:
        v = self.value
        ok = v in (self.SKIP, self.OTHER) or (v.isascii() and v.isdigit() and int(v) <= 10 and len(v) <= 2) or (
            v[:1] == "o" and v[1:].isascii() and v[1:].isdigit() and len(v) <= 3)
        if not ok:
            raise ValueError(f"not a program answer: {v!r}")


@dataclass(frozen=True)
class IdeaTopic(ButtonData):
    """/gopy: the topic of the idea about to be written (an index into ideas.topics), or "skip"."""

    PREFIX: ClassVar[str] = "idea"
    MENU: ClassVar[str] = "menu"
    value: str

    def __post_init__(self) -> None:
        if self.value not in ("skip", self.MENU) and not (self.value.isascii() and self.value.isdigit() and len(self.value) <= 2):
            raise ValueError(f"not an idea topic: {self.value!r}")


@dataclass(frozen=True)
class DeskAction(ButtonData):
    """A button on a ticket's card in the agents' group (claim, resolve, esc)."""

    PREFIX: ClassVar[str] = "dk"
    action: str
    ticket_id: int
