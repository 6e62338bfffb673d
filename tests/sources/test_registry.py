"""The running bot's order sources follow `feedbot source add` / `remove` within seconds: a
source added, removed, or removed and added again with another secret (the way to fix a
wrong secret) is what the next delivery meets, without a restart."""
from __future__ import annotations

from bot.sources import registry
from storage import orders as order_rows
from testkit import orders as kit


async def test_a_source_removed_or_added_again_with_another_secret_is_seen_without_a_restart(orders_app,
                                                                                               monkeypatch):
    monkeypatch.setattr(registry, "RELOAD_SPACING_S", 0.0)  # "within seconds": no waiting in a test
    db, now = orders_app.app.db, orders_app.clock.now()
    wrong, right = "pasted-the-wrong-one", "hrv-auth-string-right"

    async with db.transaction() as tx:
        await order_rows.add_source(tx, "hrv", "haravan", {"secret": wrong}, now)
    headers, raw = kit.signed("haravan", right, kit.haravan_order(), delivery_id="d1")
    assert (await orders_app.deliver("hrv", headers, raw))[0] == 401  # the shop's real key: refused

    # `feedbot source remove hrv` and `feedbot source add haravan --name hrv --secret <right>`
    async with db.transaction() as tx:
        await order_rows.remove_source(tx, "hrv")
        await order_rows.add_source(tx, "hrv", "haravan", {"secret": right}, now)
    assert (await orders_app.deliver("hrv", headers, raw))[0] == 200
    assert len(await orders_app.purchases()) == 1

    async with db.transaction() as tx:
        await order_rows.remove_source(tx, "hrv")
    headers, raw = kit.signed("haravan", right, kit.haravan_order(order_id=2, name="#100812"), delivery_id="d2")
    assert (await orders_app.deliver("hrv", headers, raw))[0] == 404
    assert len(await orders_app.purchases()) == 1


async def test_a_new_source_is_found_at_its_first_delivery_while_others_deliver(orders_app, monkeypatch):
    """Reading the sources again every few seconds for the known ones must not hide a new one:
    its first delivery reads them again (a 404 makes KiotViet stop sending for good)."""
    import time as real_time
    from types import SimpleNamespace

    from tests.sources.conftest import SECRETS

    at = [real_time.monotonic() + 10.0]
    monkeypatch.setattr(registry, "time", SimpleNamespace(monotonic=lambda: at[0]))
    headers, raw = kit.signed("haravan", SECRETS["haravan"], kit.haravan_order(), delivery_id="known")
    assert (await orders_app.deliver("haravan", headers, raw))[0] == 200  # another source's traffic

    async with orders_app.app.db.transaction() as tx:
        await order_rows.add_source(tx, "hrv2", "haravan", {"secret": "hrv2-auth-string"}, orders_app.clock.now())
    at[0] += 1.0
    headers, raw = kit.signed("haravan", "hrv2-auth-string", kit.haravan_order(order_id=3, name="#3"),
                              delivery_id="new")
    assert (await orders_app.deliver("hrv2", headers, raw))[0] == 200
