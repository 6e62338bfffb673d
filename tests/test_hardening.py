"""Issue 19 items 7-11: what an attack run against the running bot broke, each as a test that
failed before the fix: absurd amounts, agent logout, the API token's throttle and strength,
malformed input without authentication (500s and tracebacks), an unwritable database and a
/healthz that said ok while every write failed."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.conftest import START, purchase_body
from tests.test_http_api import JSON_AUTH, NOTHING, api, changed, counts, send  # noqa: F401 - the fixture

# --- item 7: amounts ---------------------------------------------------------------------------

ABSURD_AMOUNTS = [
    ("exponent-string", "1E+999999999", "VND", "larger than"),
    ("exponent-number", b"1E+999999999", "VND", "finite"),  # JSON parses it as inf
    ("infinity-string", "Infinity", "VND", "finite"),
    ("nan-string", "NaN", "USD", "finite"),
    ("vnd-over-10^12", 10**12 + 1, "VND", "larger than 1,000,000,000,000 VND"),
    ("usd-over-10^9", 10**9 + 1, "USD", "larger than 1,000,000,000 USD"),
    ("digits-5000", b"9" * 5000, "VND", "body: not valid JSON"),  # beyond int()'s digit limit: not a 500
    ("tiny", "1E-999999999", "VND", "decimal places"),
]


def with_amount(amount, currency: str) -> bytes:
    body = changed("currency", currency)
    if isinstance(amount, bytes):  # a JSON number as written, not a Python value
        return body.replace(b'"amount": 250000', b'"amount": ' + amount)
    return changed("amount", amount).replace(b'"currency": "VND"', json.dumps({"currency": currency})[1:-1].encode())


@pytest.mark.parametrize("amount, currency, words", [c[1:] for c in ABSURD_AMOUNTS], ids=[c[0] for c in ABSURD_AMOUNTS])
async def test_absurd_amounts_are_400_naming_the_field_and_store_nothing(api, amount, currency, words):
    status, _, body = await send(api, with_amount(amount, currency), JSON_AUTH)
    assert status == 400, body
    assert body["error"]["field"] == ("body" if words.startswith("body:") else "amount")
    assert words.split(": ")[-1] in body["error"]["message"]
    assert await counts(api) == NOTHING


async def test_largest_real_amounts_are_accepted_and_stored_finite(api):
    status, _, _ = await send(api, with_amount(10**12, "VND"), JSON_AUTH)
    assert status == 202
    status, _, _ = await send(api, changed("order_id", "U-1").replace(b'"amount": 250000', b'"amount": 999.9999')
                              .replace(b'"currency": "VND"', b'"currency": "USD"'), JSON_AUTH)
    assert status == 202
    rows = await api.rows("SELECT amount, typeof(amount) AS t FROM purchases ORDER BY id")
    assert [(r["amount"], r["t"]) for r in rows] == [(10**12, "integer"), (999.9999, "real")]


@pytest.mark.parametrize("when", ["0001-01-01", "0001-01-01T00:00:00+07:00", "9999-12-31T23:59:59-12:00", "1999-12-31"])
async def test_purchase_times_out_of_range_are_400(api, when):
    status, _, body = await send(api, changed("purchased_at", when), JSON_AUTH)
    assert status == 400, body
    assert body["error"]["field"] == "purchased_at"
    assert await counts(api) == NOTHING


async def test_a_purchase_of_today_still_goes_through(api):
    status, _, _ = await send(api, changed("purchased_at", (START - timedelta(hours=1)).isoformat()), JSON_AUTH)
    assert status == 202
    assert purchase_body()["amount"] == 250000
