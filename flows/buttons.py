"""Typed button data: one class per kind of button, with its prefix and typed fields.
`pack()` builds the data the platform carries back (checked once here against Telegram's
64-byte callback_data limit); `unpack()` reads it, or gives None for anything malformed
(button data comes from outside: a crafted press must not crash a flow). Every button's data
is read here and nowhere else: a flow asks `family(data)` which flow a press belongs to,
and the kind's class for its fields."""
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
        # Several per message (a survey question has six): the field names are looked up
        # once per class, and the checks are one count and one length.
        names = _NAMES.get(type(self)) or _names(type(self))
        values = [NONE if (v := getattr(self, name)) is None else str(v) for name in names]
        data = ":".join([self.PREFIX, *values])
        if data.count(":") != self.PREFIX.count(":") + len(values):
            raise ButtonDataError(f"{type(self).__name__}: a field holds ':' ({values})")
        if len(data) > MAX_BYTES // 4 and len(data.encode("utf-8")) > MAX_BYTES:  # 4 bytes at most per character
            raise ButtonDataError(f"{data!r} is longer than {MAX_BYTES} bytes")
        return data

    @classmethod
    def owns(cls, data: str) -> bool:
        """Whether the data starts with this kind's prefix (well-formed or not)."""
        return data == cls.PREFIX or data.startswith(cls.PREFIX + ":")

    @classmethod
    def unpack(cls: type[T], data: str) -> T | None:
        if not cls.owns(data):
            return None
        kinds = _FIELDS.get(cls) or _fields(cls)
        parts = data[len(cls.PREFIX) + 1:].split(":") if data != cls.PREFIX else []
        if len(parts) != len(kinds):
            return None
        try:
            return cls(*(_unpack_value(field.type, raw) for field, raw in zip(kinds, parts)))
        except ValueError:  # a malformed field, or the class's own check
            return None


NONE = "-"  # an optional int field's "none" (e.g. "another order")
_FIELDS: dict[type, tuple[Any, ...]] = {}  # per kind of button: its dataclass fields ...
_NAMES: dict[type, tuple[str, ...]] = {}  # ... and their names, in order


def _fields(cls: type) -> tuple[Any, ...]:
    _FIELDS[cls] = fields(cls)
    return _FIELDS[cls]


def _names(cls: type) -> tuple[str, ...]:
    _NAMES[cls] = tuple(f.name for f in (_FIELDS.get(cls) or _fields(cls)))
    return _NAMES[cls]


def _unpack_value(kind: Any, raw: str) -> Any:
    """A field's value as pack() writes it (ids: ASCII digits, no leading zero: one data
    string per value); ValueError for anything else."""
    if kind in ("int | None", int | None) and raw == NONE:
        return None
    if kind in ("int", int, "int | None", int | None):
        value = parse_id(raw)
        if value is None or str(value) != raw:
            raise ValueError(raw)
        return value
    return raw


def family(data: str) -> str:
    """The flow a button's data belongs to: its first part ("csat", "kn", "dk", "privacy")."""
    return data.partition(":")[0]


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


# --- the complaint flow's buttons ("kn": the customer's complaint, khiếu nại) ---------------

COMPLAINT = "kn"


@dataclass(frozen=True)
class ComplaintStart(ButtonData):
    """"File a complaint" under a low score: starts the intake with the survey's order."""

    PREFIX: ClassVar[str] = f"{COMPLAINT}:new"
    survey_id: int


@dataclass(frozen=True)
class ComplaintOrder(ButtonData):
    """Which order the complaint is about: the index of an offered order, None for another."""

    PREFIX: ClassVar[str] = f"{COMPLAINT}:o"
    index: int | None


@dataclass(frozen=True)
class ComplaintCategory(ButtonData):
    """Which kind of problem: the index of a configured category."""

    PREFIX: ClassVar[str] = f"{COMPLAINT}:c"
    index: int


@dataclass(frozen=True)
class ComplaintStep(ButtonData):
    """A step of the intake: go on after the photos, send, cancel."""

    PREFIX: ClassVar[str] = COMPLAINT
    MORE: ClassVar[str] = "more"
    SEND: ClassVar[str] = "send"
    CANCEL: ClassVar[str] = "cancel"
    step: str

    def __post_init__(self) -> None:
        if self.step not in (self.MORE, self.SEND, self.CANCEL):
            raise ValueError(f"not a step: {self.step!r}")


@dataclass(frozen=True)
class ResolutionScore(ButtonData):
    """The customer's score (1-5) for how their resolved ticket was handled."""

    PREFIX: ClassVar[str] = f"{COMPLAINT}:r"
    ticket_id: int
    score: int

    def __post_init__(self) -> None:
        if not 1 <= self.score <= 5:
            raise ValueError(f"not a score: {self.score!r}")


@dataclass(frozen=True)
class ReopenComplaint(ButtonData):
    """Reopen a resolved ticket (offered after a low resolution score, within the window)."""

    PREFIX: ClassVar[str] = f"{COMPLAINT}:re"
    ticket_id: int


# --- the privacy commands' buttons ------------------------------------------------------


@dataclass(frozen=True)
class PrivacyChoice(ButtonData):
    """The answer to /forget's confirmation: erase, or keep everything."""

    PREFIX: ClassVar[str] = "privacy"
    FORGET: ClassVar[str] = "forget"
    KEEP: ClassVar[str] = "keep"
    answer: str

    def __post_init__(self) -> None:
        if self.answer not in (self.FORGET, self.KEEP):
            raise ValueError(f"not an answer: {self.answer!r}")
