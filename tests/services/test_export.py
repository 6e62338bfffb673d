"""`feedbot export`: surveys, tickets and messages of a date range, CSV or JSON Lines,
streamed with progress on stderr; a real process against the app's SQLite file."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

import bot.services.export
from bot.services.export import Progress, export
from storage.timefmt import to_db
from tests.conftest import BOTH, Harness
from tests.digest_data import VN, ShopData, local
from tests.services.test_digest import typical_week
from tests.services.test_digest_send import config, feedbot

BACKENDS = BOTH  # the same files from SQLite and from PostgreSQL


@pytest.fixture
async def h(tmp_path, tg, clock, database_url):
    harness = Harness(config(tmp_path, tg, database_url), tg, clock)
    await harness.start()
    await typical_week(ShopData(harness.app.db))
    url = f'url = "{database_url}"\n' if database_url else ""
    (tmp_path / "cli.toml").write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n{url}')
    yield harness
    await harness.close()


def run(tmp_path, *args: str):
    return feedbot("export", *args, "--config", str(tmp_path / "cli.toml"), cwd=tmp_path)


async def test_surveys_as_csv_file_in_shop_time(h, tmp_path):
    result = run(tmp_path, "--from", "2026-11-16", "--to", "2026-11-22", "--what", "surveys", "--output", "s.csv")
    assert result.returncode == 0, result.stderr
    assert "exported 11 surveys row(s) to s.csv" in result.stderr
    raw = (tmp_path / "s.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # spreadsheet apps need the BOM for Vietnamese
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 11 and not (tmp_path / "s.csv.part").exists()
    first = rows[0]
    assert first["created_at"] == "2026-11-16T07:00:00+07:00" and first["answered_at"] == "2026-11-16T10:30:00+07:00"
    assert first["score"] == "5" and first["comment"].startswith("Rất hài lòng") and first["store"] == "Q1"


async def test_tickets_as_json_lines_on_stdout(h, tmp_path):
    result = run(tmp_path, "--from", "2026-11-16", "--to", "2026-11-22", "--what", "tickets", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["number"] for r in rows] == ["KN-0001", "KN-0002", "KN-0003", "KN-0005"]  # KN-0005: Sunday 23:59
    assert rows[0]["category"] == "delivery" and rows[0]["resolved_at"] == "2026-11-16T13:00:00+07:00"


async def test_messages_both_ways_in_time_order(h, tg, tmp_path):
    await h.customer_says(555001, "Xin chào shop")
    await tg.wait_for_messages(555001, 1)
    await h.app.digests.send_due()
    await h.app.sender.drain()
    result = run(tmp_path, "--from", "2026-11-23", "--to", "2026-11-23", "--what", "messages", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["direction"] == "in" and rows[0]["text"] == "Xin chào shop" and rows[0]["status"] == "processed"
    assert rows[1]["direction"] == "out" and rows[1]["chat_id"] == "555001"
    digest = [r for r in rows if r["chat_id"] == "777"]
    assert [r["kind"] for r in digest] == ["send_text", "send_photo_file"]
    assert "báo cáo tuần 2026-W47" in digest[0]["text"] and digest[1]["text"] == "📈 Biểu đồ tuần 2026-W47"
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)


async def test_bad_dates_exit_2(h, tmp_path):
    bad = run(tmp_path, "--from", "2026-11-31", "--to", "2026-12-01", "--what", "surveys")
    assert bad.returncode == 2 and "--from" in bad.stderr and "2026-11-30" in bad.stderr
    backwards = run(tmp_path, "--from", "2026-12-01", "--to", "2026-11-01", "--what", "surveys")
    assert backwards.returncode == 2 and "--to is before --from" in backwards.stderr
    unknown = run(tmp_path, "--from", "2026-11-01", "--to", "2026-11-30", "--what", "customers")
    assert unknown.returncode == 2 and "--what" in unknown.stderr


async def test_large_exports_stream_in_batches_with_progress(h, monkeypatch):
    at = to_db(local(10, 9))
    async with h.app.db.transaction() as tx:
        await tx.execute("INSERT INTO customers (external_id, name, link_token, created_at, updated_at) VALUES ('BULK', 'Bulk', 'bulk', ?, ?)", (at, at))
        customer = (await (await tx.execute("SELECT id FROM customers WHERE external_id = 'BULK'")).fetchone())[0]
        await tx.executemany(
            "INSERT INTO purchases (order_id, customer_id, amount, currency, items, touchpoint, purchased_at, fingerprint, created_at)"
            " VALUES (?, ?, 1, 'VND', '[]', 'delivery', ?, 'x', ?)", [(f"B-{i}", customer, at, at) for i in range(1500)])
        await tx.execute(
            "INSERT INTO surveys (purchase_id, customer_id, touchpoint, status, due_at, created_at)"
            " SELECT id, customer_id, 'delivery', 'scheduled', ?, ? FROM purchases WHERE order_id LIKE 'B-%'", (at, at))
    monkeypatch.setattr(bot.services.export, "BATCH", 100)
    out, progress = io.StringIO(), io.StringIO()
    start, end = datetime(2026, 11, 10, 1, tzinfo=timezone.utc), datetime(2026, 11, 10, 3, tzinfo=timezone.utc)
    assert await export(h.app.db, "surveys", "jsonl", start, end, out, VN, progress_stream=progress) == 1500
    assert len(out.getvalue().splitlines()) == 1500
    lines = progress.getvalue().splitlines()
    assert lines[0] == "exporting surveys: 6% (100/1,500 rows)" and lines[-1] == "exporting surveys: 100% (1,500/1,500 rows)"
    assert 10 <= len(lines) <= 12  # a line per 10%, not per batch


def test_progress_bar_on_a_terminal_and_silence_for_small_exports():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress("exporting tickets", 4000, tty)
    bar.update(1000)
    bar.update(4000)
    assert tty.getvalue() == (
        "\rexporting tickets [######...................]  25% 1,000/4,000 rows"
        "\rexporting tickets [#########################] 100% 4,000/4,000 rows\n"
    )
    quiet = io.StringIO()
    small = Progress("exporting tickets", 10, quiet)
    small.update(10)
    assert quiet.getvalue() == ""
