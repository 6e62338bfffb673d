"""The one decision executor: every decision type a flow may return has exactly one handler,
in the app as it is wired (a new type in flows/model.py without one fails here)."""
from __future__ import annotations

import pytest

from bot.channels.web.channel import WebChannel
from bot.outbox.effects import Effects, decision_types
from flows.model import Reply


async def test_every_decision_type_has_exactly_one_handler_in_the_wired_app(harness):
    await harness.start()
    effects = harness.app.effects
    assert len(decision_types()) >= 22
    assert effects.missing() == []


def test_a_second_handler_for_a_decision_type_is_a_wiring_error():
    effects = Effects({"web": WebChannel(None)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Reply already has a handler"):
        effects.register(Reply, effects._reply)


async def test_a_decision_without_a_handler_is_refused_before_anything_is_done():
    effects = Effects({})
    unknown = object()
    with pytest.raises(TypeError, match="no handler"):
        await effects.apply(None, [unknown], None, None)  # type: ignore[arg-type, list-item]
