"""Feedback goes to the people who act on it: complaint categories and idea topics to the
chat of the department that owns them, each store's slice to its manager. The owner still
sees everything (the agents' group and the owners' digest are unchanged)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Department:
    name: str
    chat_id: str  # a Telegram chat (group) of the department
    categories: tuple[str, ...] = ()  # complaint categories it owns
    idea_topics: tuple[str, ...] = ()  # idea topics it owns
    language: str = "vi"


@dataclass(frozen=True)
class StoreManager:
    store: str
    chat_id: str
    language: str = "vi"


@dataclass(frozen=True)
class Routes:
    departments: tuple[Department, ...] = ()
    stores: tuple[StoreManager, ...] = ()

    def for_category(self, category: str) -> tuple[Department, ...]:
        return tuple(d for d in self.departments if category in d.categories)

    def for_topic(self, topic: str) -> tuple[Department, ...]:
        return tuple(d for d in self.departments if topic in d.idea_topics)

    def manager_of(self, store: str | None) -> StoreManager | None:
        return next((m for m in self.stores if store is not None and m.store == store), None)


NO_ROUTES = Routes()
