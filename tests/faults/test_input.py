"""Issue 7, item 6: abusive input on the Telegram webhook and the HTTP API.

Every bad request gets the right 4xx (never a 5xx) and writes nothing; SQL-looking text in
every field is stored verbatim; Vietnamese text is stored exactly as received (NFC stays NFC,
NFD stays NFD: we never normalise what a customer or a shop sent, byte for byte); a
10,000-character Telegram message is stored whole and reaches the customer's confirmation and
the agents' card in several messages (Telegram allows 4096 characters per message).
The purchase API's own table of bad bodies is tests/http/test_api.py; the webhook's secret
and malformed-body basics are tests/channels/telegram/test_webhook.py. Zalo signature cases: the Zalo branch.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import unicodedata
from typing import Any, AsyncIterator

import pytest

from bot.channels.telegram.channel import TEXT_LIMIT, split_text
from tests.conftest import API_TOKEN, Harness, make_config, purchase_body

SECRET = "faults-input-webhook-secret-3f9a1c"
USER = 771001
GROUP = -1007710001
AGENT = 9201
TABLES = ("inbox", "contacts", "conversations", "outbox", "customers", "purchases", "surveys", "tickets", "ticket_events")
INJECTION = "'; DROP TABLE inbox; -- \" OR 1=1; /* */ \\x00 %s ?"
VI_NFC = unicodedata.normalize("NFC", "Đơn hàng bị giao thiếu, tôi rất thất vọng. Cảm ơn shop ạ! 🙏")
VI_NFD = unicodedata.normalize("NFD", VI_NFC)


@pytest.fixture
async def hook(tmp_path, tg, clock) -> AsyncIterator[Harness]:
    tg.make_group(GROUP, "Agents", is_forum=False, members={AGENT: "Minh"})
    config = make_config(
        tmp_path, tg,
        http={"public_url": "http://127.0.0.1"},
        telegram={"mode": "webhook", "webhook_secret": SECRET},
        agents={"chat_id": GROUP, "agent_ids": [AGENT]},
        sender={"group_messages_per_minute": 600},
    )
    h = Harness(config, tg, clock)
    await h.start()
    yield h
    await h.close()


async def counts(h: Harness) -> dict[str, int]:
    return {t: (await h.rows(f"SELECT COUNT(*) AS n FROM {t}"))[0]["n"] for t in TABLES}


async def post_raw(h: Harness, data: Any, headers: dict[str, str]) -> int:
    async with h.http.post(f"{h.url}/webhooks/telegram", data=data, headers=headers) as resp:
        await resp.read()
        return resp.status


def update_bytes(tg, **message_changes: Any) -> bytes:
    update = tg.make_message_update(USER, "xin chào")
    update["message"].update(message_changes)
    return json.dumps(update, ensure_ascii=False).encode()


def flipped(secret: str) -> str:
    """The secret with one byte changed."""
    return secret[:-1] + chr(ord(secret[-1]) ^ 1)


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


JSON = {"Content-Type": "application/json"}
TWO_MB = 2 * 1024 * 1024

# (id, headers without the secret, secret header value or None, body maker(tg), status)
WEBHOOK_CASES: list[tuple[str, dict[str, str], str | None, Any, int]] = [
    ("no-secret", JSON, None, lambda tg: update_bytes(tg), 401),
    ("wrong-secret", JSON, "x" * len(SECRET), lambda tg: update_bytes(tg), 401),
    ("one-changed-byte-in-secret", JSON, flipped(SECRET), lambda tg: update_bytes(tg), 401),
    ("secret-truncated", JSON, SECRET[:-1], lambda tg: update_bytes(tg), 401),
    ("bot-token-as-secret", JSON, "123456789:TESTtokenABCDEFGHIJKLMNOPQRSTUVWXYZabc", lambda tg: update_bytes(tg), 401),
    ("no-secret-and-2mb", JSON, None, lambda tg: b"{" + b" " * TWO_MB + b"}", 401),
    ("malformed-json", JSON, SECRET, lambda tg: b'{"update_id": 1, "message": {', 400),
    ("json-null", JSON, SECRET, lambda tg: b"null", 400),
    ("json-string", JSON, SECRET, lambda tg: b'"update"', 400),
    ("empty-body", JSON, SECRET, lambda tg: b"", 400),
    ("not-utf8", JSON, SECRET, lambda tg: b'{"update_id": 1, "x": "\xc3\x28"}', 400),
    ("text-plain", {"Content-Type": "text/plain"}, SECRET, lambda tg: update_bytes(tg), 415),
    ("form-encoded", {"Content-Type": "application/x-www-form-urlencoded"}, SECRET, lambda tg: b"update_id=5", 415),
    ("no-content-type", {}, SECRET, lambda tg: update_bytes(tg), 415),
    ("update_id-string", JSON, SECRET, lambda tg: b'{"update_id": "5", "message": {}}', 400),
    ("update_id-float", JSON, SECRET, lambda tg: b'{"update_id": 5.5, "message": {}}', 400),
    ("update_id-bool", JSON, SECRET, lambda tg: b'{"update_id": true, "message": {}}', 400),
    ("update_id-null", JSON, SECRET, lambda tg: b'{"update_id": null}', 400),
    ("update_id-list", JSON, SECRET, lambda tg: b'{"update_id": [1]}', 400),
    ("update_id-injection", JSON, SECRET, lambda tg: json.dumps({"update_id": INJECTION}).encode(), 400),
    ("2mb-body", JSON, SECRET,
     lambda tg: json.dumps({"update_id": 7, "message": {"text": "x" * TWO_MB}}).encode(), 413),
    ("2mb-body-chunked", JSON, SECRET,
     lambda tg: chunks(json.dumps({"update_id": 8, "message": {"text": "y" * TWO_MB}}).encode()), 413),
]


@pytest.mark.parametrize("headers, secret, body, status", [c[1:] for c in WEBHOOK_CASES], ids=[c[0] for c in WEBHOOK_CASES])
async def test_bad_webhook_requests_get_the_right_4xx_and_write_nothing(hook, tg, headers, secret, body, status):
    before = await counts(hook)
    sent = {**headers, **({"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {})}
    got = await post_raw(hook, body(tg), sent)
    assert got == status
    await asyncio.sleep(0.05)
    assert await counts(hook) == before
    assert tg.sent_messages(USER) == []


# Well-formed updates (a valid update_id) whose insides have the wrong types: acknowledged
# (200: Telegram would otherwise redeliver them forever), kept in the inbox with the error for
# a human to see, and nothing else written: no contact, no conversation, no reply.
WRONG_TYPES = [
    ("text-number", {"text": 12345}, "message.text"),
    ("from-id-string", {"from": {"id": "771001", "first_name": "An"}}, "from.id"),
    ("chat-id-string", {"chat": {"id": "771001", "type": "private"}}, "chat.id"),
    ("chat-not-object", {"chat": "private"}, "chat.id"),
    ("no-from", {"from": None}, "from.id"),
]


@pytest.mark.parametrize("changes, field", [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES])
async def test_wrong_field_types_inside_an_update_are_kept_with_their_error_and_change_nothing_else(
    hook, tg, changes, field
):
    before = await counts(hook)
    got = await post_raw(hook, update_bytes(tg, **changes), {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert got == 200
    after = await counts(hook)
    assert after == {**before, "inbox": before["inbox"] + 1}
    row = (await hook.rows("SELECT processed_at, error, contact_id FROM inbox ORDER BY id DESC LIMIT 1"))[0]
    assert row["processed_at"] and field in row["error"] and row["contact_id"] is None
    await asyncio.sleep(0.1)
    assert tg.sent_messages(USER) == []


async def test_a_crafted_callback_with_a_wrong_type_or_sql_data_is_harmless(hook, tg):
    for data in (INJECTION[:64], "dk:resolve:1 OR 1=1", "kn:r:1;DROP TABLE tickets:5"):
        update = tg.make_callback_update(USER, data, 1)
        got = await post_raw(hook, json.dumps(update).encode(), {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert got == 200
    bad = tg.make_callback_update(USER, "cs:1:5", 1)
    bad["callback_query"]["data"] = {"nested": True}
    assert await post_raw(hook, json.dumps(bad).encode(), {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET}) == 200
    rows = await hook.rows("SELECT error FROM inbox")
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    assert (await counts(hook))["tickets"] == 0


async def _webhook(h: Harness, update: dict) -> None:
    status = await post_raw(h, json.dumps(update, ensure_ascii=False).encode(),
                            {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET})
    assert status == 200


def _buttons(message) -> list[dict]:
    return [b for row in message.reply_markup["inline_keyboard"] for b in row]


async def test_vietnamese_nfc_and_nfd_and_sql_text_are_stored_as_received(hook, tg):
    assert VI_NFC != VI_NFD and VI_NFC.encode() != VI_NFD.encode()
    texts = [VI_NFC, VI_NFD, INJECTION]
    for text in texts:
        await _webhook(hook, tg.make_message_update(USER, text))
    with sqlite3.connect(hook.config.database.path) as conn:
        stored = conn.execute("SELECT CAST(text AS BLOB), payload FROM inbox ORDER BY id").fetchall()
    assert [blob for blob, _ in stored] == [t.encode() for t in texts]
    assert [json.loads(p)["message"]["text"] for _, p in stored] == texts
    assert {t for t in TABLES} <= {r["name"] for r in await hook.rows("SELECT name FROM sqlite_master")}


async def test_a_10000_character_complaint_is_stored_whole_and_reaches_customer_and_agents(hook, tg):
    description = ("Hàng bị hỏng, hộp móp méo, thiếu 2 món; " * 300)[:9998] + "🙏"
    assert len(description) == 9999 and len(description.encode("utf-16-le")) // 2 == 10000
    await _webhook(hook, tg.make_message_update(USER, "/complaint"))
    ask = (await tg.wait_for_messages(USER, 1))[0]
    await _webhook(hook, tg.make_callback_update(USER, _buttons(ask)[0]["callback_data"], ask.message_id))
    await tg.wait_for_messages(USER, 2)
    await _webhook(hook, tg.make_message_update(USER, description))
    photos = (await tg.wait_for_messages(USER, 3))[2]
    await _webhook(hook, tg.make_callback_update(USER, _buttons(photos)[0]["callback_data"], photos.message_id))
    # The confirmation echoes the description: over 4096 characters, it comes in parts, the
    # buttons on the last one (a single message would be refused: "message is too long").
    await tg.wait_for_messages(USER, 6)
    confirm_parts = tg.sent_messages(USER)[3:]
    assert all(len(m.text.encode("utf-16-le")) // 2 <= TEXT_LIMIT for m in confirm_parts)
    assert description in "".join(m.text for m in confirm_parts)
    assert confirm_parts[-1].reply_markup and not any(m.reply_markup for m in confirm_parts[:-1])
    await _webhook(hook, tg.make_callback_update(USER, _buttons(confirm_parts[-1])[0]["callback_data"],
                                                 confirm_parts[-1].message_id))
    card = await tg.wait_for_messages(GROUP, 3)
    assert description in "".join(m.text for m in card)
    await hook.app.sender.drain(10)
    assert (await hook.rows("SELECT description FROM tickets"))[0]["description"] == description
    inbox_text = await hook.rows("SELECT text FROM inbox WHERE kind = 'text'")
    assert [r["text"] for r in inbox_text] == [description]
    assert await hook.rows("SELECT id FROM outbox WHERE status != 'sent'") == []


@pytest.mark.parametrize("text", [
    "a" * 10000,
    ("Xin chào quý khách\n" * 600),
    unicodedata.normalize("NFD", "Trường hợp khiếu nại " * 500),
    "🙏" * 2100,
], ids=["one-word", "lines", "nfd", "astral"])
def test_split_text_joins_back_and_fits(text):
    parts = split_text(text, TEXT_LIMIT)
    assert "".join(parts) == text
    assert len(parts) > 1 and all(len(p.encode("utf-16-le")) // 2 <= TEXT_LIMIT for p in parts)
    assert all(not unicodedata.combining(p[0]) for p in parts)  # never a mark without its letter
    assert split_text("ngắn", TEXT_LIMIT) == ["ngắn"]


# --- the purchase API: SQL-injection strings in every field ---------------------------------

# Every string field of a purchase, with whether the API accepts free text there (else it
# must refuse the injection string with a 400 naming the field).
FIELDS = [
    ("order_id", False), ("customer.external_id", False), ("customer.name", True),
    ("customer.phone", False), ("currency", False), ("store", True), ("touchpoint", False),
    ("purchased_at", False), ("items.0.sku", True), ("items.0.name", True),
]


def _with(path: str, value: Any) -> dict:
    body = purchase_body("INJ-1")
    target: Any = body
    *parents, key = path.split(".")
    for parent in parents:
        target = target[int(parent)] if parent.isdigit() else target[parent]
    target[int(key) if key.isdigit() else key] = value
    return body


@pytest.fixture
async def api(tmp_path, clock) -> AsyncIterator[Harness]:
    h = Harness(make_config(tmp_path), None, clock)
    await h.start()
    yield h
    await h.close()


@pytest.mark.parametrize("field, free_text", FIELDS, ids=[f for f, _ in FIELDS])
async def test_sql_injection_in_every_purchase_field_is_refused_or_stored_verbatim(api, field, free_text):
    body = _with(field, INJECTION)
    async with api.http.post(f"{api.url}/api/v1/purchases", data=json.dumps(body).encode(),
                             headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}) as resp:
        status, answer = resp.status, await resp.json()
    tables = await api.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert {"purchases", "customers", "surveys", "inbox"} <= {t["name"] for t in tables}
    if not free_text:
        assert status == 400 and answer["error"]["field"] == field
        assert (await api.rows("SELECT COUNT(*) AS n FROM purchases"))[0]["n"] == 0
        return
    assert status == 202, answer
    with sqlite3.connect(api.config.database.path) as conn:
        name, store, items = conn.execute(
            "SELECT c.name, p.store, p.items FROM purchases p JOIN customers c ON c.id = p.customer_id"
        ).fetchone()
    stored = {"customer.name": name, "store": store, "items.0.sku": json.loads(items)[0]["sku"],
              "items.0.name": json.loads(items)[0].get("name")}
    assert stored[field] == INJECTION


async def test_2mb_purchase_body_is_413_and_writes_nothing(api):
    body = purchase_body("BIG-1")
    body["note"] = "x" * TWO_MB
    async with api.http.post(f"{api.url}/api/v1/purchases", data=json.dumps(body).encode(),
                             headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}) as resp:
        assert resp.status == 413
    assert (await api.rows("SELECT COUNT(*) AS n FROM purchases"))[0]["n"] == 0


async def test_the_webhook_body_is_stored_byte_for_byte_as_telegram_sent_it(hook, tg):
    # Telegram escapes non-ASCII text (\u1ea1...): what is kept is its body, not our re-encoding.
    update = tg.make_message_update(USER, VI_NFD + " 🙏")
    body = json.dumps(update, ensure_ascii=True, separators=(",", ":")).encode()
    assert await post_raw(hook, body, {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET}) == 200
    with sqlite3.connect(hook.config.database.path) as conn:
        [(payload, text)] = conn.execute("SELECT CAST(payload AS BLOB), text FROM inbox").fetchall()
    assert payload == body and text == VI_NFD + " 🙏"


async def test_text_with_a_lone_surrogate_is_acknowledged_and_kept_with_its_error(hook, tg):
    """Valid JSON ("\\ud83d" alone) that is no valid Unicode: SQLite cannot store it as text.
    Answered 200 (else Telegram delivers it again forever), kept as received, with the error."""
    update = tg.make_message_update(USER, "hỏng rồi \ud83d")
    body = json.dumps(update, ensure_ascii=True).encode()
    assert await post_raw(hook, body, {**JSON, "X-Telegram-Bot-Api-Secret-Token": SECRET}) == 200
    [row] = await hook.rows("SELECT CAST(payload AS BLOB) AS payload, error, processed_at FROM inbox")
    assert row["payload"] == body and row["processed_at"] and "surrogate" in row["error"]
