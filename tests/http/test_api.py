"""The shop's purchase API against the real app object and a real SQLite file.

Bad input answers a clear error naming the field and stores nothing; the same order
twice schedules one survey; text is stored exactly as the shop sent it.
"""
from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import struct
import tempfile
import unicodedata
import zlib
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import pytest_asyncio
import segno
from yarl import URL

from bot.services.purchases import parse_purchase
from testkit.clock import FakeClock
from tests.conftest import API_TOKEN, BOT_TOKEN, BOTH, START, VN, Harness, make_config, purchase_body
from testkit.telegram_api import FakeTelegramServer

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
LIMIT = 65536  # http.max_body_bytes default
TABLES = ("customers", "purchases", "surveys", "outbox")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- helpers -------------------------------------------------------------------------

async def counts(h: Harness) -> dict[str, int]:
    return {t: (await h.rows(f"SELECT COUNT(*) AS n FROM {t}"))[0]["n"] for t in TABLES}


NOTHING = {t: 0 for t in TABLES}


async def send(h: Harness, data: Any, headers: dict[str, str]) -> tuple[int, Any, Any]:
    async with h.http.post(f"{h.url}/api/v1/purchases", data=data, headers=headers) as resp:
        text = await resp.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = text
        return resp.status, resp.headers, body


async def get(h: Harness, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    async with h.http.get(f"{h.url}{path}", headers=AUTH if headers is None else headers) as resp:
        return resp.status, resp.headers, await resp.read()


def encoded(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def changed(path: str, value: Any = ..., *, drop: bool = False) -> bytes:
    """The standard purchase with one (dotted) field set or removed."""
    body = copy.deepcopy(purchase_body())
    *parents, key = path.split(".")
    target = body
    for parent in parents:
        target = target[parent]
    if drop:
        del target[key]
    else:
        target[key] = value
    return encoded(body)


def padded(size: int) -> bytes:
    """A valid purchase body padded with an extra field to exactly `size` bytes."""
    body = purchase_body("PAD-1")
    body["note"] = ""
    base = len(encoded(body))
    body["note"] = "x" * (size - base)
    data = encoded(body)
    assert len(data) == size
    return data


async def in_chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """A chunked request body (no Content-Length), arriving in several pieces."""
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


def db_file(h: Harness) -> str:
    return h.config.database.path


@pytest.fixture
async def api(tmp_path, clock) -> AsyncIterator[Harness]:
    """The real app without Telegram, for what does not involve a chat link: it starts in
    ~50 ms instead of ~300 ms (the Telegram client's TLS set-up)."""
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    yield h
    await h.close()


# --- bad input: the status, the field, and nothing stored ------------------------------

# (id, body bytes, headers, status, field named (400s), words the message must contain)
BAD_INPUT: list[tuple[str, bytes, dict[str, str], int, str | None, str]] = [
    ("not-json", b'{"order_id": "A-1001", ', JSON_AUTH, 400, "body", "not valid JSON"),
    ("not-utf8", b'{"order_id": "\xff\xfe"}', JSON_AUTH, 400, "body", "not valid JSON"),
    ("array", encoded([purchase_body()]), JSON_AUTH, 400, "body", "expected a JSON object"),
    ("missing-order_id", changed("order_id", drop=True), JSON_AUTH, 400, "order_id", "required"),
    ("missing-customer", changed("customer", drop=True), JSON_AUTH, 400, "customer", "required"),
    ("missing-customer.name", changed("customer.name", drop=True), JSON_AUTH, 400, "customer.name", "required"),
    ("missing-customer.external_id", changed("customer.external_id", drop=True), JSON_AUTH, 400,
     "customer.external_id", "required"),
    ("missing-amount", changed("amount", drop=True), JSON_AUTH, 400, "amount", "required"),
    ("missing-touchpoint", changed("touchpoint", drop=True), JSON_AUTH, 400, "touchpoint", "required"),
    ("missing-purchased_at", changed("purchased_at", drop=True), JSON_AUTH, 400, "purchased_at", "required"),
    ("amount-string", changed("amount", "abc"), JSON_AUTH, 400, "amount", "expected a number"),
    ("amount-negative", changed("amount", -1), JSON_AUTH, 400, "amount", "zero or above"),
    ("amount-bool", changed("amount", True), JSON_AUTH, 400, "amount", "expected a number"),
    ("amount-nan", b'{"amount": NaN, ' + changed("amount", drop=True)[1:], JSON_AUTH, 400, "amount", "zero or above"),
    ("order_id-list", changed("order_id", ["A-1001"]), JSON_AUTH, 400, "order_id", "expected a string"),
    ("customer-string", changed("customer", "C-42"), JSON_AUTH, 400, "customer", "an object"),
    ("telegram_user_id-string", changed("customer.telegram_user_id", "555001"), JSON_AUTH, 400,
     "customer.telegram_user_id", "positive integer"),
    ("items-not-list", changed("items", {"sku": "TEA-01"}), JSON_AUTH, 400, "items", "list of objects"),
    ("currency-dong", changed("currency", "dong"), JSON_AUTH, 400, "currency", "3-letter"),
    ("touchpoint-unknown", changed("touchpoint", "carrier_pigeon"), JSON_AUTH, 400, "touchpoint",
     "expected one of delivery, in_store, online"),
    ("purchased_at-not-iso", changed("purchased_at", "23/11/2026 10:00"), JSON_AUTH, 400, "purchased_at",
     "not an ISO 8601 time"),
    ("purchased_at-future", changed("purchased_at", (START + timedelta(days=2)).isoformat()), JSON_AUTH, 400,
     "purchased_at", "in the future"),
    ("order_id-spaces", changed("order_id", "A 1001"), JSON_AUTH, 400, "order_id", "1-64 letters"),
    ("order_id-65-chars", changed("order_id", "A" * 65), JSON_AUTH, 400, "order_id", "1-64 letters"),
    ("customer.name-201-chars", changed("customer.name", "Ễ" * 201), JSON_AUTH, 400, "customer.name",
     "longer than 200"),
    ("no-authorization", encoded(purchase_body()), {"Content-Type": "application/json"}, 401, None,
     "missing API token"),
    ("wrong-token", encoded(purchase_body()), {"Authorization": "Bearer nope", "Content-Type": "application/json"},
     401, None, "wrong API token"),
    ("basic-scheme", encoded(purchase_body()), {"Authorization": f"Basic {API_TOKEN}", "Content-Type": "application/json"},
     401, None, "missing API token"),
    ("wrong-token-bad-json", b"{{{", {"Authorization": "Bearer nope", "Content-Type": "application/json"}, 401, None,
     "wrong API token"),
    ("wrong-token-text-plain", b"hello", {"Authorization": "Bearer nope", "Content-Type": "text/plain"}, 401, None,
     "wrong API token"),
    ("over-limit-content-length", padded(LIMIT + 1), JSON_AUTH, 413, None, f"larger than {LIMIT} bytes"),
    ("text-plain", encoded(purchase_body()), {**AUTH, "Content-Type": "text/plain"}, 415, None,
     "Content-Type: application/json"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Harness]:
    """One running app (fake Telegram on) for every bad-input case: nothing may be stored,
    so the cases cannot disturb each other; each checks its own request stored nothing.
    (A start costs ~0.3 s, mostly the Telegram client's TLS set-up.)"""
    async with FakeTelegramServer(BOT_TOKEN) as server:
        with tempfile.TemporaryDirectory() as tmp:
            h = Harness(make_config(Path(tmp), server), server, FakeClock(START))
            try:
                await h.start()
                yield h
            finally:
                await h.close()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    "data, headers, status, field, words", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
async def test_bad_input_is_refused_and_stores_nothing(shared, data, headers, status, field, words):
    before = await counts(shared)  # NOTHING, unless an earlier case already failed by storing
    got, resp_headers, body = await send(shared, data, headers)
    assert got == status, body
    assert body["error"]["status"] == status
    assert words in body["error"]["message"]
    if status == 400:
        assert body["error"]["field"] == field
        assert body["error"]["message"].startswith(f"{field}: ")
    if status == 401:
        assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert await counts(shared) == before


@pytest.mark.asyncio(loop_scope="module")
async def test_body_over_the_limit_sent_chunked_is_413(shared):
    before = await counts(shared)
    status, _, body = await send(shared, in_chunks(padded(LIMIT + 1)), JSON_AUTH)
    assert status == 413, body
    assert f"larger than {LIMIT} bytes" in body["error"]["message"]
    assert await counts(shared) == before


@pytest.mark.asyncio(loop_scope="module")
async def test_after_every_bad_request_the_tables_are_still_empty(shared):
    assert await counts(shared) == NOTHING


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_of_exactly_the_limit_is_accepted(api, chunked):
    # The other side of the 413 boundary; chunked, it also arrives in many pieces that
    # must be read to the end (a partial read would be "not valid JSON").
    data = padded(LIMIT)
    status, _, body = await send(api, in_chunks(data) if chunked else data, JSON_AUTH)
    assert status == 202, body
    assert await counts(api) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}


async def test_wrong_token_on_reads_is_401(api):
    await api.post_purchase()
    for path in ("/api/v1/purchases/A-1001", "/api/v1/purchases/A-1001/qr.png"):
        status, headers, raw = await get(api, path, headers={})
        assert status == 401 and "WWW-Authenticate" in headers
        assert b"A-1001" not in raw
        status, _, _ = await get(api, path, headers={"Authorization": "Bearer wrong"})
        assert status == 401


# --- text is stored exactly ------------------------------------------------------------

NAME_NFC = unicodedata.normalize("NFC", "Nguyễn Thị Lan Phương 🌸")
NAME_NFD = unicodedata.normalize("NFD", "Nguyễn Thị Lan Phương 🌸")
INJECTION = "Robert'); DROP TABLE purchases;-- \" OR 1=1 --"


async def test_sql_looking_and_vietnamese_text_is_stored_byte_for_byte(api):
    assert NAME_NFC != NAME_NFD  # the two forms really differ in code points and bytes
    cases = [
        ("U-1", {"external_id": "C-NFC", "name": NAME_NFC}, "Quận 1 ☕", [{"sku": "TRÀ-SEN", "name": NAME_NFC}]),
        ("U-2", {"external_id": "C-NFD", "name": NAME_NFD}, unicodedata.normalize("NFD", "Cửa hàng Huế"),
         [{"sku": "x", "name": NAME_NFD, "note": "🍵🥭 giao nhanh"}]),
        ("U-3", {"external_id": "C-SQL", "name": INJECTION}, "Q1'; DELETE FROM surveys; --",
         [{"sku": "'; UPDATE customers SET name='pwned' --", "qty": 1}]),
    ]
    for order_id, customer, store, items in cases:
        status, body = await api.post_purchase(order_id, customer=customer, store=store, items=items)
        assert status == 202, body

    # Read back with a plain connection, as bytes: no normalisation, no escaping left over.
    with sqlite3.connect(db_file(api)) as conn:
        for order_id, customer, store, items in cases:
            name, stored_store, stored_items = conn.execute(
                "SELECT CAST(c.name AS BLOB), CAST(p.store AS BLOB), p.items FROM purchases p"
                " JOIN customers c ON c.id = p.customer_id WHERE p.order_id = ?",
                (order_id,),
            ).fetchone()
            assert name == customer["name"].encode("utf-8")
            assert stored_store == store.encode("utf-8")
            assert json.loads(stored_items) == items
            assert items[0]["name" if "name" in items[0] else "sku"].encode() in stored_items.encode()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"purchases", "surveys", "customers"} <= tables
    assert await counts(api) == {"customers": 3, "purchases": 3, "surveys": 3, "outbox": 0}


# --- idempotency -----------------------------------------------------------------------

async def test_same_order_twice_is_one_purchase_and_one_survey(api):
    first_status, first = await api.post_purchase()
    second_status, second = await api.post_purchase()
    assert (first_status, first["duplicate"]) == (202, False)
    assert (second_status, second["duplicate"]) == (200, True)
    assert second["survey"] == first["survey"]
    assert second["links"] == first["links"]
    assert await counts(api) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}


async def test_same_order_with_different_details_is_409_and_changes_nothing(api):
    await api.post_purchase()
    before = await api.rows("SELECT * FROM purchases")
    status, body = await api.post_purchase(amount=999000)
    assert status == 409, body
    assert body["error"]["field"] == "order_id"
    assert "already posted with different details" in body["error"]["message"]
    after = await api.rows("SELECT * FROM purchases")
    assert after == before
    assert str(after[0]["amount"]) == "250000"
    assert await counts(api) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}


async def test_same_order_with_its_time_written_another_way_is_a_duplicate_not_409(api):
    # The same instant as +07:00, as Z and as shop time without an offset: one order, and a
    # retry that writes the time in UTC (a queue, a second integration) must not be refused.
    vn = timezone(timedelta(hours=7))
    status, first = await api.post_purchase(purchased_at=START.astimezone(vn).isoformat())
    assert status == 202, first
    for written in (START.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    START.astimezone(vn).replace(tzinfo=None).isoformat()):
        status, again = await api.post_purchase(purchased_at=written)
        assert (status, again.get("duplicate")) == (200, True), (written, again)
        assert again["links"] == first["links"]
    assert await counts(api) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}


async def test_an_order_stored_with_the_old_fingerprint_still_matches_its_retry(api):
    # Orders stored before the time was fingerprinted in UTC carry it as posted (+07:00).
    status, first = await api.post_purchase(purchased_at=START.isoformat())
    assert status == 202, first
    data = parse_purchase(purchase_body(purchased_at=START.isoformat()), touchpoints=("delivery",), timezone=VN, now=START)
    legacy = data._fingerprint(data.purchased_at)
    assert legacy != data.fingerprint()
    assert api.app is not None
    async with api.app.db.transaction() as tx:
        await tx.execute("UPDATE purchases SET fingerprint = ?", (legacy,))
    for written in (START.isoformat(), START.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")):
        status, again = await api.post_purchase(purchased_at=written)
        assert (status, again.get("duplicate")) == (200, True), (written, again)
    status, _ = await api.post_purchase(purchased_at=(START + timedelta(minutes=1)).isoformat())
    assert status == 409  # another time is still another order


async def test_concurrent_duplicates_store_one_purchase(api):
    results = await asyncio.gather(*(api.post_purchase() for _ in range(5)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 200, 200, 200, 202]
    assert len({body["survey"]["id"] for _, body in results}) == 1
    assert sum(not body["duplicate"] for _, body in results) == 1
    assert await counts(api) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}


async def test_one_customer_two_orders_keeps_one_customer_and_each_order_has_its_own_link(harness):
    await harness.start()
    _, first = await harness.post_purchase("A-1001")
    status, second = await harness.post_purchase(
        "A-1002", customer={"external_id": "C-42", "name": "Lan Nguyễn"}, purchased_at=START.isoformat()
    )
    assert status == 202, second
    customers = await harness.rows("SELECT id, name, phone, link_token FROM customers")
    assert len(customers) == 1
    assert customers[0]["name"] == "Lan Nguyễn"  # the shop's latest word on the name
    assert customers[0]["phone"] == "+84 912 345 678"  # not forgotten when a later order omits it
    # A receipt's link is that order's, not a key to the customer (issue 19).
    tokens = [r["token"] for r in await harness.rows("SELECT token FROM start_tokens ORDER BY id")]
    assert len(set(tokens)) == 2
    assert [first["links"]["telegram"], second["links"]["telegram"]] == [
        f"https://t.me/feedbot_test_bot?start={t}" for t in tokens]
    purchases = await harness.rows("SELECT order_id, customer_id FROM purchases ORDER BY id")
    assert [p["order_id"] for p in purchases] == ["A-1001", "A-1002"]
    assert {p["customer_id"] for p in purchases} == {customers[0]["id"]}


async def test_reposting_an_order_keeps_its_link_and_revoke_link_replaces_it(harness):
    await harness.start()
    _, first = await harness.post_purchase("A-1001")
    status, again = await harness.post_purchase("A-1001")
    assert status == 200 and again["duplicate"] and again["links"] == first["links"]  # a retry: the same link
    status, revoked = await harness.post_purchase("A-1001", revoke_link=True)
    assert status == 200 and revoked["duplicate"] and revoked["links"]["telegram"] != first["links"]["telegram"]
    status, _, raw = await get(harness, "/api/v1/purchases/A-1001")
    assert json.loads(raw)["links"]["telegram"] == revoked["links"]["telegram"]
    rows = await harness.rows("SELECT revoked_at FROM start_tokens ORDER BY id")
    assert [r["revoked_at"] is not None for r in rows] == [True, False]
    status, bad = await harness.post_purchase("A-1001", revoke_link="yes")
    assert status == 400 and bad["error"]["field"] == "revoke_link"
    # Different details are still a conflict, and revoke nothing.
    status, _ = await harness.post_purchase("A-1001", amount=1, revoke_link=True)
    assert status == 409 and len(await harness.rows("SELECT id FROM start_tokens")) == 2


# --- QR code ---------------------------------------------------------------------------

def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def png_dark_pixels(data: bytes) -> list[list[bool]]:
    """Decode a 1-bit greyscale, non-interlaced PNG (what segno writes) into rows of dark pixels."""
    width, height = png_size(data)
    bit_depth, colour_type, _, _, interlace = data[24:29]
    assert (bit_depth, colour_type, interlace) == (1, 0, 0), "unexpected PNG format"
    idat, i = b"", 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        if data[i + 4 : i + 8] == b"IDAT":
            idat += data[i + 8 : i + 8 + length]
        i += 12 + length
    raw = zlib.decompress(idat)
    stride = (width + 7) // 8
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - 1] if x else 0
            up, up_left = previous[x], previous[x - 1] if x else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append([not (line[x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
        previous = line
    return rows


def qr_modules(pixels: list[list[bool]], modules: int) -> list[list[bool]]:
    """Sample the centre of each module between the quiet zones."""
    dark = [(y, x) for y, row in enumerate(pixels) for x, d in enumerate(row) if d]
    top, left = min(y for y, _ in dark), min(x for _, x in dark)
    bottom, right = max(y for y, _ in dark), max(x for _, x in dark)
    size = (right - left + 1) / modules
    assert size == (bottom - top + 1) / modules and size == int(size) and size >= 2
    return [
        [pixels[int(top + (r + 0.5) * size)][int(left + (c + 0.5) * size)] for c in range(modules)]
        for r in range(modules)
    ]


async def test_qr_png_encodes_the_customers_deep_link(harness):
    await harness.start()
    _, body = await harness.post_purchase()
    link = body["links"]["telegram"]
    status, headers, data = await get(harness, body["links"]["qr_png"])
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert data.startswith(PNG_SIGNATURE)
    width, height = png_size(data)
    assert width == height and 100 <= width <= 2000
    # No QR decoder here: compare the printed modules with the symbol for the expected link.
    expected = segno.make(link, error="m").matrix
    got = qr_modules(png_dark_pixels(data), len(expected))
    assert got == [[bool(m) for m in row] for row in expected]


async def test_qr_png_of_unknown_order_is_404(api):
    status, _, raw = await get(api, "/api/v1/purchases/NOPE-1/qr.png")
    assert status == 404
    assert json.loads(raw)["error"]["field"] == "order_id"


async def test_without_telegram_purchases_work_and_qr_is_409(tmp_path, clock):
    h = Harness(make_config(tmp_path), None, clock)
    try:
        await h.start()
        status, body = await h.post_purchase()
        assert status == 202, body
        assert body["links"]["telegram"] is None
        assert body["links"]["qr_png"] == "/api/v1/purchases/A-1001/qr.png"
        assert body["survey"]["status"] == "scheduled"
        status, headers, raw = await get(h, body["links"]["qr_png"])
        assert status == 409
        assert headers["Content-Type"].startswith("application/json")
        message = json.loads(raw)["error"]["message"]
        assert "no Telegram bot configured" in message and "telegram.token" in message
        assert await counts(h) == {"customers": 1, "purchases": 1, "surveys": 1, "outbox": 0}
    finally:
        await h.close()


# --- reading a purchase back -----------------------------------------------------------

async def test_get_purchase_shows_the_survey_state(harness):
    await harness.start()
    _, posted = await harness.post_purchase()
    status, _, raw = await get(harness, "/api/v1/purchases/A-1001")
    assert status == 200
    body = json.loads(raw)
    assert body["order_id"] == "A-1001"
    survey = body["survey"]
    assert survey["id"] == posted["survey"]["id"]
    assert (survey["status"], survey["skip_reason"], survey["sent_at"], survey["score"]) == ("scheduled", None, None, None)
    # Shop time with its offset, exactly as the POST answered it.
    assert survey["due_at"] == posted["survey"]["due_at"] == "2026-11-23T12:00:00+07:00"
    assert body["links"] == posted["links"]


async def test_get_unknown_purchase_is_404(api):
    status, _, raw = await get(api, "/api/v1/purchases/NOPE-1")
    assert status == 404
    error = json.loads(raw)["error"]
    assert error["field"] == "order_id" and "NOPE-1" in error["message"]


async def test_order_id_with_slash_and_hash_round_trips_through_its_links(harness):
    # The id pattern allows / and #: the links the API hands out must still reach the order.
    await harness.start()
    status, body = await harness.post_purchase("POS/7#12")
    assert status == 202, body
    assert body["links"]["qr_png"] == "/api/v1/purchases/POS%2F7%2312/qr.png"
    status, _, data = await get(harness, body["links"]["qr_png"])
    assert status == 200 and data.startswith(PNG_SIGNATURE)
    async with harness.http.get(URL(f"{harness.url}/api/v1/purchases/POS%2F7%2312", encoded=True), headers=AUTH) as resp:
        assert resp.status == 200
        assert (await resp.json())["order_id"] == "POS/7#12"


# --- survey policy at intake -----------------------------------------------------------

async def test_purchase_older_than_max_lateness_is_accepted_but_skipped(api):
    status, body = await api.post_purchase(purchased_at=(START - timedelta(days=5)).isoformat())
    assert status == 202, body
    assert (body["survey"]["status"], body["survey"]["skip_reason"]) == ("skipped", "too_late")
    survey = (await api.rows("SELECT status, skip_reason, closed_at FROM surveys"))[0]
    assert (survey["status"], survey["skip_reason"]) == ("skipped", "too_late")
    assert survey["closed_at"] is not None
    assert await api.app.dispatcher.dispatch_due() == {}


async def test_healthz(api):
    status, _, raw = await get(api, "/healthz", headers={})
    assert status == 200
    assert json.loads(raw) == {"ok": True, "parts": {"database": {"status": "ok"}, "sender": {"status": "ok"},
                                                    "scheduler": {"status": "off"}, "backup": {"status": "off"}}}


async def test_behind_a_trusted_proxy_wrong_tokens_wait_per_client_not_for_the_shop(tmp_path, tg, clock):
    """Behind the shop's proxy every connection comes from its address: five wrong tokens from
    anyone made the shop's own systems wait 15 minutes, even with the right token."""
    h = Harness(make_config(tmp_path, tg, http={"trusted_proxies": ["127.0.0.1"]}), tg, clock)
    await h.start()
    try:
        url = f"{h.url}/api/v1/reports/weekly"
        for _ in range(5):
            async with h.http.get(url, headers={"Authorization": "Bearer guess", "X-Forwarded-For": "203.0.113.9"}) as resp:
                assert resp.status == 401
        async with h.http.get(url, headers={**AUTH, "X-Forwarded-For": "203.0.113.9"}) as resp:
            assert resp.status == 429  # the guesser waits, even with the right token
        async with h.http.get(url, headers={**AUTH, "X-Forwarded-For": "198.51.100.7"}) as resp:
            assert resp.status == 200  # the shop's system, through the same proxy
    finally:
        await h.close()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
@pytest.mark.parametrize("field", ["store", "customer.name", "note"])
async def test_a_nul_character_in_a_text_field_is_a_400_on_both_backends(tmp_path, tg, clock, database_url, field):
    """PostgreSQL's text cannot hold U+0000: a store or customer name with one was a 500 there
    (and stored as is on SQLite)."""
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    try:
        body = purchase_body()
        if field == "customer.name":
            body["customer"]["name"] = "Lan\x00"
        else:
            body[field] = "Q\x001"
        async with h.http.post(f"{h.url}/api/v1/purchases", json=body, headers=AUTH) as resp:
            assert resp.status == 400, await resp.text()
        assert await h.rows("SELECT id FROM purchases") == []
    finally:
        await h.close()


@pytest.mark.parametrize("backend", BOTH, indirect=True)
async def test_an_order_id_that_could_not_be_posted_is_looked_up_as_none(tmp_path, tg, clock, database_url):
    """GET /api/v1/purchases/<id> took any text: a NUL in it was a 500 on PostgreSQL. And the
    posted id's pattern ended in "$", which also matches before a trailing newline."""
    h = Harness(make_config(tmp_path, tg, database_url=database_url), tg, clock)
    await h.start()
    try:
        for path in ("/api/v1/purchases/A%00", "/api/v1/purchases/A%00/qr.png"):
            async with h.http.get(f"{h.url}{path}", headers=AUTH) as resp:
                assert resp.status == 404, (path, resp.status)
        async with h.http.post(f"{h.url}/api/v1/purchases", json=purchase_body(order_id="A-1\n"), headers=AUTH) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["field"] == "order_id"
    finally:
        await h.close()
