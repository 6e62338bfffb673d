"""The program dispatch pass on both backends: who is skipped and why (opted out, mid-complaint,
outside the audience, too late, the program's own fatigue), quiet hours and holidays, a
customer without a chat, expiry, and complaints routed to their department once."""
from __future__ import annotations

from datetime import datetime, timedelta

from bot.config import parse_config
from bot.outbox.effects import Effects
from bot.services.programs import ProgramService
from storage import programs, settings
from storage.db import Database
from storage.timefmt import to_db
from testkit.clock import FakeClock
from tests.conftest import VN

BACKENDS = ("sqlite", "postgresql")
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=VN)


class _Channel:
    name = "telegram"
    conversational = True
    reply_window = None

    def fits(self, text: str, buttons: list) -> bool:
        return True


def service(db: Database, clock: FakeClock, programs_: list[dict], **extra) -> ProgramService:
    config = parse_config({"programs": programs_, **extra}, {})
    effects = Effects({"telegram": _Channel()})
    svc = ProgramService(db, clock, config.feedback, config.survey_policy(), "Shop An", effects)
    svc.register(effects)
    return svc


async def customer(db: Database, n: int, *, channel: str | None = "telegram", opted_out: bool = False) -> int:
    at = to_db(NOON - timedelta(days=30))
    async with db.transaction() as tx:
        cur = await tx.execute(
            "INSERT INTO customers (external_id, name, link_token, created_at, updated_at, opted_out_at)"
            " VALUES (?, ?, ?, ?, ?, ?)", (f"C-{n}", f"Khách {n}", f"tok{n}", at, at, at if opted_out else None))
        customer_id = cur.lastrowid
        if channel:
            await tx.execute(
                "INSERT INTO contacts (channel, platform_user_id, chat_id, customer_id, language, created_at, last_seen_at)"
                " VALUES (?, ?, ?, ?, 'vi', ?, ?)", (channel, str(n), str(n), customer_id, at, at))
    return customer_id


async def due(db: Database, customer_id: int, program: str, kind: str = "nps", *, late: timedelta = timedelta(days=3),
              at: datetime = NOON) -> int:
    async with db.transaction() as tx:
        survey_id = await programs.insert(tx, program=program, kind=kind, customer_id=customer_id, priority=40,
                                          due_at=at, deadline_at=at + late, now=at)
    assert survey_id is not None
    return survey_id


async def statuses(db: Database) -> dict[int, tuple[str, str | None]]:
    return {r[0]: (r[1], r[2]) for r in await db.fetchall("SELECT customer_id, status, skip_reason FROM program_surveys")}


async def test_skip_reasons_and_the_one_that_goes_out(db):
    clock = FakeClock(NOON)
    svc = service(db, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand", "channels": ["telegram"]}])
    ok = await customer(db, 1)
    stopped = await customer(db, 2, opted_out=True)
    on_web = await customer(db, 3, channel="web")
    no_chat = await customer(db, 4, channel=None)
    complaining = await customer(db, 5)
    async with db.transaction() as tx:
        contact = (await tx.execute_fetchall("SELECT id FROM contacts WHERE customer_id = ?", (complaining,)))[0][0]
        await tx.execute(
            "INSERT INTO tickets (contact_id, customer_id, source, category, description, tier, priority, status,"
            " created_at, first_response_due_at, resolution_due_at) VALUES (?, ?, 'command', 'delivery', 'x',"
            " 'regular', 'normal', 'open', ?, ?, ?)", (contact, complaining, to_db(NOON), to_db(NOON), to_db(NOON)))
    for c in (ok, stopped, on_web, no_chat, complaining):
        await due(db, c, "nps")
    # the web chat is not a channel this service can send on (only Telegram here) ...
    outcome = await svc.dispatch_due()
    assert outcome["sent"] == 1
    got = await statuses(db)
    assert got[ok] == ("sent", None)
    assert got[stopped] == ("skipped", "opted_out")
    assert got[complaining] == ("skipped", "open_complaint")
    assert got[on_web][0] == "scheduled" and got[no_chat][0] == "scheduled"  # no chat to reach them: looked at later
    assert (await db.fetchall("SELECT chat_id FROM outbox"))[0][0] == "1"
    # ... an hour later still no chat; after the deadline they are skipped as too late
    clock.advance(timedelta(days=3, hours=1))
    await svc.dispatch_due()
    got = await statuses(db)
    assert got[on_web] == ("skipped", "too_late") and got[no_chat] == ("skipped", "too_late")


async def test_audience_by_channel_and_the_programs_own_fatigue(db):
    clock = FakeClock(NOON)
    svc = service(db, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand", "channels": ["zalo"],
                               "fatigue_days": 90}, {"name": "brand", "kind": "brand", "trigger": "on_demand",
                                                     "fatigue_days": 90}])
    c = await customer(db, 1)
    await due(db, c, "nps")
    await svc.dispatch_due()
    assert (await statuses(db))[c] == ("skipped", "audience")  # a Telegram customer, a Zalo-only program
    first = await due(db, c, "brand")
    assert (await svc.dispatch_due())["sent"] == 1
    clock.advance(timedelta(days=30))  # the global limit (7 days) is over, the program's 90 days are not
    second = await due(db, c, "brand", at=clock.now())
    await svc.dispatch_due()
    rows = {r[0]: (r[1], r[2]) for r in await db.fetchall("SELECT id, status, skip_reason FROM program_surveys")}
    assert rows[first][0] == "sent" and rows[second] == ("skipped", "program_fatigue")


async def test_quiet_hours_and_tet_postpone(db):
    night = datetime(2026, 11, 24, 22, 0, tzinfo=VN)
    clock = FakeClock(night)
    svc = service(db, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand"}])
    c = await customer(db, 1)
    survey = await due(db, c, "nps", at=night)
    assert (await svc.dispatch_due())["postponed"] == 1
    row = (await db.fetchall("SELECT due_at FROM program_surveys WHERE id = ?", (survey,)))[0]
    assert row[0] == to_db(datetime(2026, 11, 25, 8, 0, tzinfo=VN))
    # Tết 2027 (6 Feb; blackout 5-10 Feb): a question due on the 7th waits for the 11th, 08:00
    tet = datetime(2027, 2, 7, 10, 0, tzinfo=VN)
    clock.set(tet)
    other = await customer(db, 2)
    held = await due(db, other, "nps", at=tet, late=timedelta(days=10))
    await svc.dispatch_due()
    row = (await db.fetchall("SELECT status, due_at FROM program_surveys WHERE id = ?", (held,)))[0]
    assert (row[0], row[1]) == ("scheduled", to_db(datetime(2027, 2, 11, 8, 0, tzinfo=VN)))


async def test_expiry(db):
    clock = FakeClock(NOON)
    svc = service(db, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand", "expires_after": "24h"}])
    c = await customer(db, 1)
    await due(db, c, "nps")
    await svc.dispatch_due()
    clock.advance(timedelta(hours=25))
    assert await svc.expire() == {"expired": 1}
    assert (await statuses(db))[c] == ("expired", None)


async def test_complaints_routed_to_their_department_once_and_not_the_history(db):
    clock = FakeClock(NOON)
    svc = service(db, clock, [], departments=[{"name": "logistics", "chat_id": -1001, "categories": ["delivery"]}])
    c = await customer(db, 1)

    async def complaint(category: str, text: str) -> None:
        async with db.transaction() as tx:
            contact = (await tx.execute_fetchall("SELECT id FROM contacts WHERE customer_id = ?", (c,)))[0][0]
            await tx.execute(
                "INSERT INTO tickets (contact_id, customer_id, source, category, description, tier, priority, status,"
                " created_at, first_response_due_at, resolution_due_at) VALUES (?, ?, 'command', ?, ?, 'regular',"
                " 'normal', 'open', ?, ?, ?)", (contact, c, category, text, to_db(NOON), to_db(NOON), to_db(NOON)))

    await complaint("delivery", "Cũ: trước khi bật định tuyến")
    assert await svc.route_new_complaints() == 0  # routing just configured: the history is not replayed
    await complaint("delivery", "Giao trễ 3 ngày")
    await complaint("product_quality", "Trà bị mốc")
    assert await svc.route_new_complaints() == 1
    assert await svc.route_new_complaints() == 0
    sent = [r[0] for r in await db.fetchall("SELECT payload FROM outbox WHERE chat_id = '-1001'")]
    assert len(sent) == 1 and "Giao trễ 3 ngày" in sent[0] and "KN-" in sent[0]
    async with db.transaction() as tx:
        assert await settings.get(tx, "routing.last_ticket_id") == "3"


async def test_a_program_turned_off_on_the_dashboard_skips_what_it_had_scheduled(db):
    from storage import program_overrides

    clock = FakeClock(NOON)
    svc = service(db, clock, [{"name": "nps", "kind": "nps", "trigger": "on_demand"},
                              {"name": "brand", "kind": "brand", "trigger": "on_demand"}])
    c = await customer(db, 1)
    await due(db, c, "nps")
    async with db.transaction() as tx:
        await program_overrides.put(tx, "nps", False, {}, NOON, "chu.shop")
        await program_overrides.put(tx, "brand", True, {"vi": {"question": "Bạn biết đến {shop} từ đâu vậy?"}}, NOON, "chu.shop")
    outcome = await svc.dispatch_due()  # the pass rereads the owners' edits first
    assert outcome["skipped_program_disabled"] == 1 and "sent" not in outcome
    assert svc.settings.program("nps") is None and svc.settings.known_program("nps") is not None
    assert svc.settings.program("brand").texts == {"vi": {"question": "Bạn biết đến {shop} từ đâu vậy?"}}
    async with db.transaction() as tx:
        await program_overrides.delete(tx, "nps")
    await svc.dispatch_due()
    assert svc.settings.program("nps") is not None
