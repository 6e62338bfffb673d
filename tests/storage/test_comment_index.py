"""Comment search through the trigram index (issue 20): the same answers as the scan it replaces,
with or without diacritics, đ or d, words under 3 characters, LIKE's wildcards literal; the index
kept by the writes (a comment recorded, blanked, a survey deleted); and after an erasure no entry
of the erased comment left in the index's pages (SQLite: FTS5 merges its segments)."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.services.data_rights import Privacy
from storage import dashboard, surveys
from storage.folding import fold
from tests.digest_data import ShopData, local
from testkit.clock import FakeClock

COMMENTS = ("Đóng gói rất đẹp, giao nhanh", "Hộp bị móp, đợi lâu", "Giao hàng chậm quá", "Trà ngon, sẽ mua lại",
            "100% hài lòng", "giao_hang ok", "Đi xa vẫn ghé mua")
QUERIES = ("dong goi", "ĐÓNG GÓI", "giao", "giao hang", "hop mop", "xa", "di xa", "100%", "100", "_hang", "khongcotu",
           "tra ngon mua", "ĐI", "a")
BACKENDS = ("sqlite", "postgresql")  # the index on both
START, END = datetime(2026, 10, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)


async def search(db, q: str) -> list[int]:
    return [c.survey_id for c in await dashboard.comments(db.reader, START, END, stores=None, query=q)]


async def test_the_index_answers_as_the_scan_does(db, monkeypatch):
    data = ShopData(db)
    for i, comment in enumerate(COMMENTS * 3):
        await data.survey(sent_at=local(1 + i, 9), answered_at=local(1 + i, 10), score=1 + i % 5, comment=comment)
    indexed = {q: await search(db, q) for q in QUERIES}
    # The index itself, not only the LIKE after it, finds "dong goi" (3+ characters).
    assert len(await dashboard._indexed_matches(db.reader, ["dong", "goi"])) == 3  # type: ignore[arg-type]
    assert await dashboard._indexed_matches(db.reader, ["xa"]) is None  # too short for trigrams: the range is walked
    monkeypatch.setattr(dashboard, "MAX_CANDIDATES", 0)  # every search with a long word now walks the range
    scanned = {q: await search(db, q) for q in QUERIES}
    assert indexed == scanned
    assert len(indexed["giao"]) == 9 and indexed["khongcotu"] == [] and len(indexed["100%"]) == 3
    assert len(indexed["di xa"]) == 3 and len(indexed["_hang"]) == 3  # `_` is literal, as `%` is


async def test_the_index_follows_every_write(db):
    data = ShopData(db)
    survey_id = await data.survey(sent_at=local(2, 9), answered_at=local(2, 10), score=5)
    assert await search(db, "tuyet voi") == []
    async with db.transaction() as tx:
        assert await surveys.record_comment(tx, survey_id, "Tuyệt vời", local(2, 11))
    assert await search(db, "tuyet voi") == [survey_id]
    async with db.transaction() as tx:
        await tx.execute("UPDATE surveys SET comment = NULL, comment_folded = NULL WHERE id = ?", (survey_id,))
    assert await search(db, "tuyet voi") == [] and await dashboard._indexed_matches(db.reader, ["tuyet"]) == []
    other = await data.survey(sent_at=local(3, 9), answered_at=local(3, 10), score=4, comment="Sẽ quay lại")
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM surveys WHERE id = ?", (other,))
    assert await dashboard._indexed_matches(db.reader, ["quay"]) == []


async def test_an_erased_comment_leaves_no_entry_in_the_index(db):
    data = ShopData(db)
    secret = "Mã bí mật qqxzzw của tôi"
    customer = await data.customer("Lê Thị Hoa")
    await data.survey(sent_at=local(4, 9), answered_at=local(4, 10), score=2, comment=secret, customer_id=customer)
    for i in range(20):  # others' comments, which stay
        await data.survey(sent_at=local(5, 9), answered_at=local(5, 10), score=4, comment=f"Giao hàng nhanh lần {i}")
    assert len(await search(db, "qqxzzw")) == 1
    if getattr(db, "dialect", "sqlite") == "sqlite":
        assert b"qqx" in await _index_pages(db)  # the check below can fail
    [(external_id,)] = await db.reader.execute_fetchall("SELECT external_id FROM customers WHERE id = ?", (customer,))
    await Privacy(db, FakeClock(local(6)), retention_days=30).erase(external_id)
    assert await search(db, "qqxzzw") == [] and len(await search(db, "giao hang")) == 20
    assert fold(secret) not in [r[0] for r in await db.reader.execute_fetchall(
        "SELECT comment_folded FROM surveys WHERE comment_folded IS NOT NULL")]
    if getattr(db, "dialect", "sqlite") == "sqlite":
        pages = await _index_pages(db)
        assert b"qqx" not in pages and b"xzzw" not in pages and b"zzw" not in pages


async def _index_pages(db) -> bytes:
    return b"".join(r[0] for r in await db.reader.execute_fetchall("SELECT block FROM comments_fts_data ORDER BY id"))
