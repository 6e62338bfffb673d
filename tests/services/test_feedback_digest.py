"""The digests of issue 21 on both backends: the owners' page (programs, ideas, journey view,
staff), each department's and each store's slice holding only its own rows, staff figures
shown to owners and to that store's manager only, and each digest queued once."""
from __future__ import annotations

from datetime import timedelta

from bot.services import rollups as rollup_service
from bot.services.feedback_digest import FeedbackDigestService
from bot.feedback_settings import FeedbackSettings
from flows.digest import Week
from flows.feedback_digest import Tally, journey
from flows.routing import Department, Routes, StoreManager
from storage import programs
from storage.db import Database
from storage.timefmt import to_db
from testkit.clock import FakeClock
from tests.digest_data import RULE, VN, ShopData, local

BACKENDS = ("sqlite", "postgresql")
W47 = Week(2026, 47)  # 16-22 Nov 2026
STAGES = ("consult", "order", "payment", "delivery", "after_sales")
ROUTES = Routes(
    departments=(Department("logistics", "-1001", categories=("delivery",), idea_topics=("delivery",)),
                 Department("product", "-1002", categories=("product_quality",), idea_topics=("product", "price"))),
    stores=(StoreManager("Q1", "501"), StoreManager("Q7", "507")),
)


def service(db: Database, owners=("900",)) -> FeedbackDigestService:
    return FeedbackDigestService(db, FakeClock(local(23, 9)), FeedbackSettings(routes=ROUTES), timezone=VN,
                                 shop_name="Shop An", stages=STAGES, owner_chat_ids=owners, min_answers=2)


async def answered(shop: ShopData, db: Database, at, score: int, *, store: str, staff: str | None, stage: str | None,
                   comment: str | None = None) -> int:
    survey_id = await shop.survey(sent_at=at, answered_at=at + timedelta(minutes=5), score=score, store=store,
                                  comment=comment)
    async with db.transaction() as tx:
        await tx.execute("UPDATE purchases SET staff = ?, stage = ? WHERE id = (SELECT purchase_id FROM surveys WHERE id = ?)",
                         (staff, stage, survey_id))
    return survey_id


async def history(db: Database) -> ShopData:
    shop = ShopData(db)
    # W46: everything fine at every stage
    for day in (10, 11, 12):
        for stage in ("order", "delivery"):
            await answered(shop, db, local(day), 5, store="Q1", staff="Hùng", stage=stage)
    # W47: the order stage drops first (Hùng at Q1), delivery drops after it; Q7's Mai is fine
    for day in (16, 17, 18):
        await answered(shop, db, local(day), 2, store="Q1", staff="Hùng", stage="order", comment="Chờ lâu quá")
        await answered(shop, db, local(day, 15), 3, store="Q1", staff="Lan", stage="delivery")
        await answered(shop, db, local(day, 16), 5, store="Q7", staff="Mai", stage="delivery")
    async with db.transaction() as tx:
        # complaints: a delivery one tied to a Q1 purchase at the delivery stage, a product one at Q7
        q1 = (await tx.execute_fetchall("SELECT id FROM purchases WHERE store = 'Q1' AND stage = 'delivery' ORDER BY id DESC LIMIT 1"))[0][0]
        q7 = (await tx.execute_fetchall("SELECT id FROM purchases WHERE store = 'Q7' ORDER BY id DESC LIMIT 1"))[0][0]
    for purchase, category, description in ((q1, "delivery", "Shipper giao trễ 2 ngày"), (q7, "product_quality", "Trà bị mốc")):
        ticket = await shop.ticket(created_at=local(19), category=category, description=description)
        async with db.transaction() as tx:
            await tx.execute("UPDATE tickets SET purchase_id = ? WHERE id = ?", (purchase, ticket))
    async with db.transaction() as tx:
        customer = (await tx.execute_fetchall("SELECT MIN(id) FROM customers"))[0][0]
        for topic, body in (("delivery", "Giao buổi tối được không"), ("product", "Bán thêm trà ô long"),
                            ("price", "Có gói tiết kiệm")):
            await programs.insert_idea(tx, topic=topic, text=body, now=local(20), customer_id=customer, contact_id=None)
        for score in (10, 9, 7, 3):  # NPS: 2 promoters, 1 detractor of 4 = 25
            sid = await programs.insert(tx, program="nps_q", kind="nps", customer_id=customer, priority=40,
                                        due_at=local(17), deadline_at=local(20), now=local(17))
            await tx.execute("UPDATE program_surveys SET status = 'answered', score = ?, answered_at = ? WHERE id = ?",
                             (score, to_db(local(18)), sid))
    # Stages, staff and program answers were written here past the app's writes: the rollups the
    # digests read are counted again from them.
    await rollup_service.rebuild(db, RULE)
    return shop


async def test_owner_page_programs_journey_and_staff(db):
    await history(db)
    page = await service(db).owner_page(W47)
    assert [(p.name, p.answers) for p in page.programs] == [("nps_q", 4)]
    assert page.journey.drop_started_at == "order"  # order fell 100 -> 0 before delivery 100 -> 50
    stages = {s.stage: s for s in page.journey.stages}
    assert [s.stage for s in page.journey.stages] == ["order", "delivery"]
    assert stages["order"].now == Tally(3, 0) and stages["order"].before == Tally(3, 3)
    assert stages["delivery"].now == Tally(6, 3)
    assert stages["delivery"].complaints == 2  # the Q1 delivery one and the Q7 product one
    assert page.staff == {"Hùng": Tally(3, 0), "Lan": Tally(3, 0), "Mai": Tally(3, 3)}
    assert page.ideas == {"delivery": 1, "product": 1, "price": 1}
    text = dict(((r, s), b) for r, s, _, b in await service(db).texts(W47))[("900", "owner")]
    assert "NPS 25" in text and "Đặt hàng" in text and "bắt đầu từ giai đoạn Đặt hàng" in text
    assert "Hùng" in text and "Mai" in text


async def test_each_department_and_store_gets_only_its_slice_and_staff_stay_with_owners_and_their_manager(db):
    await history(db)
    pages = {(r, s): b for r, s, _, b in await service(db).texts(W47)}
    logistics = pages[("-1001", "department:logistics")]
    assert "Shipper giao trễ 2 ngày" in logistics and "Giao buổi tối được không" in logistics
    assert "Trà bị mốc" not in logistics and "Bán thêm trà ô long" not in logistics
    product = pages[("-1002", "department:product")]
    assert "Trà bị mốc" in product and "Bán thêm trà ô long" in product and "Có gói tiết kiệm" in product
    assert "Shipper giao trễ" not in product and "Giao buổi tối" not in product
    for department in (logistics, product):  # no department sees staff figures
        assert not any(name in department for name in ("Hùng", "Lan", "Mai"))
    q1, q7 = pages[("501", "store:Q1")], pages[("507", "store:Q7")]
    assert "Hùng" in q1 and "Lan" in q1 and "Mai" not in q1  # a manager sees her own store's staff only
    assert "Mai" in q7 and "Hùng" not in q7 and "Lan" not in q7
    assert "Chờ lâu quá" in q1 and "Chờ lâu quá" not in q7
    assert "Giao hàng: 1" in q1 and "Giao hàng" not in q7.split("Khiếu nại")[1]


async def test_each_digest_is_queued_once_per_recipient_and_week(db):
    await history(db)
    svc = service(db)
    assert await svc.send(W47) == 5  # the owner, two departments, two stores
    assert await svc.send(W47) == 0
    rows = await db.fetchall("SELECT chat_id FROM outbox WHERE method = 'send_text' ORDER BY chat_id")
    assert sorted(r[0] for r in rows) == ["-1001", "-1002", "501", "507", "900"]


async def test_no_owner_page_without_anything_to_show(db):
    assert [s for _, s, _, _ in await service(db).texts(W47)] == [
        "department:logistics", "department:product", "store:Q1", "store:Q7"]


def test_journey_points_at_the_first_stage_that_dropped_in_journey_order():
    now = {"delivery": Tally(10, 2), "order": Tally(10, 5), "consult": Tally(10, 9), "": Tally(4, 1)}
    before = {"delivery": Tally(10, 9), "order": Tally(10, 9), "consult": Tally(10, 9)}
    j = journey(STAGES, now, before, {"delivery": {"delivery": 3, "other": 1}}, drop_points=15, min_answers=5)
    assert [s.stage for s in j.stages] == ["consult", "order", "delivery", ""]  # unnamed stage last
    assert j.drop_started_at == "order"  # delivery fell more, but the fall began at ordering
    assert j.stages[2].complaints == 4 and j.stages[2].top_category == "delivery"
    quiet = journey(STAGES, {"order": Tally(3, 0)}, {"order": Tally(3, 3)}, {}, drop_points=15, min_answers=5)
    assert quiet.drop_started_at is None  # too few answers to call it a drop
