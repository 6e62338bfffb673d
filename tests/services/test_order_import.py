"""Order import: a KiotViet-style export with Vietnamese headers (several lines per invoice), a
broken row, a duplicate row, phones in 0xxx and +84 forms; XLSX the same; a dry run writes
nothing; running it again imports nothing twice; a crash mid-import leaves whole orders."""
from __future__ import annotations

from datetime import datetime

import openpyxl
import pytest

from bot.cli.main import build_parser
from bot.cli import order_import as import_cli
from bot.services import order_import
from bot.services.order_import import ImportError_, import_orders, read_rows
from bot.services.orders import OrderIntake
from tests.conftest import BOTH, START, make_config, open_db

BACKENDS = BOTH

# A KiotViet "Hóa đơn" export (one line per invoice item), Vietnamese headers.
KIOTVIET_CSV = """\
Mã hóa đơn,Thời gian,Mã khách hàng,Khách hàng,Điện thoại,Chi nhánh,Khách cần trả,Trạng thái,Mã hàng,Tên hàng,Số lượng,Đơn giá
HD000101,23/11/2026 08:15:00,KH001,Nguyễn Thị Lan,0912 345 678,Chi nhánh Q1,"250.000",Hoàn thành,SP01,Trà sen,2,"125.000"
HD000101,23/11/2026 08:15:00,KH001,Nguyễn Thị Lan,0912 345 678,Chi nhánh Q1,"250.000",Hoàn thành,SP02,Bánh,1,"0"
HD000102,23/11/2026 08:20:00,KH002,Trần Văn Minh,+84 987 654 321,Chi nhánh Q3,"90.000",Hoàn thành,SP03,Cà phê,3,"30.000"
HD000103,hôm qua,KH003,Lê Hoa,0903 111 222,Chi nhánh Q1,"50.000",Hoàn thành,SP01,Trà sen,1,"50.000"
HD000102,23/11/2026 08:20:00,KH002,Trần Văn Minh,+84 987 654 321,Chi nhánh Q3,"90.000",Hoàn thành,SP03,Cà phê,3,"30.000"
HD000104,23/11/2026 08:30:00,KH004,Phạm Bình,0903 000 999,Chi nhánh Q1,"70.000",Đã hủy,SP01,Trà sen,1,"70.000"
"""


@pytest.fixture
async def intake(tmp_path, clock, database_url):
    config = make_config(tmp_path, database_url=database_url)
    async with open_db(tmp_path, database_url) as db:
        yield OrderIntake(db, clock, config.survey_policy(), config.survey.touchpoints)


async def purchases(db) -> list[dict]:
    return [dict(r) for r in await db.fetchall(
        "SELECT p.order_id, p.store, p.touchpoint, p.amount, p.items, c.name, c.phone, s.status FROM purchases p"
        " JOIN customers c ON c.id = p.customer_id JOIN surveys s ON s.purchase_id = p.id ORDER BY p.order_id")]


async def test_kiotviet_csv_import(tmp_path, intake):
    path = tmp_path / "hoadon.csv"
    path.write_text(KIOTVIET_CSV, encoding="utf-8-sig")
    report = await import_orders(intake, read_rows(path), kind="kiotviet-export", source="kiotviet")
    assert (report.rows, report.orders, report.recorded, report.skipped_cancelled) == (6, 4, 2, 1)
    assert [(p.line, "hôm qua" in p.message) for p in report.errors] == [(5, True)]  # the broken row, by line
    assert [p.line for p in report.duplicates] == [6]
    rows = await purchases(intake.db)
    assert [(r["order_id"], r["phone"], r["store"], r["touchpoint"], r["status"]) for r in rows] == [
        ("kiotviet:HD000101", "+84912345678", "Chi nhánh Q1", "in_store", "scheduled"),
        ("kiotviet:HD000102", "+84987654321", "Chi nhánh Q3", "in_store", "scheduled"),
    ]
    assert float(rows[0]["amount"]) == 250000 and '"qty": 2' in rows[0]["items"] and "SP02" in rows[0]["items"]
    # Again: nothing new (idempotent by order id).
    again = await import_orders(intake, read_rows(path), kind="kiotviet-export", source="kiotviet")
    assert (again.recorded, again.already) == (0, 2)
    assert await purchases(intake.db) == rows


async def test_a_dry_run_writes_nothing_and_previews(tmp_path, intake):
    path = tmp_path / "hoadon.csv"
    path.write_text(KIOTVIET_CSV)
    report = await import_orders(intake, read_rows(path), kind="kiotviet-export", source="kiotviet", dry_run=True)
    assert report.valid == 2 and [p["order_id"] for p in report.preview] == ["kiotviet:HD000101", "kiotviet:HD000102"]
    assert await purchases(intake.db) == []


async def test_xlsx_with_real_dates_and_numbers(tmp_path, intake):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Mã đơn hàng", "Ngày tạo đơn", "Tên khách hàng", "SĐT", "Khách phải trả", "Chi nhánh", "Nguồn đơn"])
    sheet.append(["SON1001", datetime(2026, 11, 23, 8, 0), "Đỗ An", 912345678, 150000, "Kho tổng", "web"])
    sheet.append(["SON1002", datetime(2026, 11, 23, 8, 5), "Vũ Hà", "0987654321", 99000.0, None, "pos"])
    path = tmp_path / "donhang.xlsx"
    book.save(path)
    report = await import_orders(intake, read_rows(path), kind="sapo-export", source="sapo")
    assert report.recorded == 2 and not report.errors
    rows = await purchases(intake.db)
    assert [(r["order_id"], r["phone"], r["touchpoint"]) for r in rows] == [
        ("sapo:SON1001", "+84912345678", "online"), ("sapo:SON1002", "+84987654321", "in_store")]


async def test_generic_headers_and_a_file_without_order_ids(tmp_path, intake):
    path = tmp_path / "orders.csv"
    path.write_text("order;date;name;phone;total\nA1;2026-11-23 08:00;An;0912345678;1,250,000\n")
    report = await import_orders(intake, read_rows(path), kind="generic", source="import")
    assert report.recorded == 1
    assert float((await purchases(intake.db))[0]["amount"]) == 1250000
    path.write_text("foo,bar\n1,2\n")
    with pytest.raises(ImportError_, match="no order id column"):
        await import_orders(intake, read_rows(path), kind="generic", source="import")


async def test_a_crash_mid_import_leaves_whole_orders_and_a_rerun_finishes(tmp_path, intake, monkeypatch):
    lines = ["Mã hóa đơn,Thời gian,Khách hàng,Điện thoại,Khách cần trả"]
    lines += [f"HD{n:05},23/11/2026 08:00:00,Khách {n},09123{n:05},10000" for n in range(10)]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(order_import, "BATCH", 4)
    calls = {"n": 0}
    real_apply = intake.apply

    async def failing_apply(tx, source, prepared, row, now):
        calls["n"] += 1
        if calls["n"] == 6:  # inside the second batch
            raise RuntimeError("power cut")
        return await real_apply(tx, source, prepared, row, now)

    monkeypatch.setattr(intake, "apply", failing_apply)
    with pytest.raises(RuntimeError):
        await import_orders(intake, read_rows(path), kind="kiotviet-export", source="kiotviet")
    assert len(await purchases(intake.db)) == 4  # the first batch whole, the second not at all
    monkeypatch.setattr(intake, "apply", real_apply)
    report = await import_orders(intake, read_rows(path), kind="kiotviet-export", source="kiotviet")
    assert (report.recorded, report.already) == (6, 4)
    assert len(await purchases(intake.db)) == 10


async def test_the_cli_reports_lines_and_exits_2_on_a_bad_file(tmp_path, capsys, database_url):
    config = make_config(tmp_path, database_url=database_url)
    path = tmp_path / "hoadon.csv"
    path.write_text(KIOTVIET_CSV)
    args = build_parser().parse_args(["import", str(path), "--source", "kiotviet-export", "--dry-run"])
    assert await import_cli.run(config, args) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing written" in out and "line 5:" in out and "line 6:" in out and "2 valid to import" in out
    (tmp_path / "x.pdf").write_text("x")
    args = build_parser().parse_args(["import", str(tmp_path / "x.pdf"), "--source", "generic"])
    assert await import_cli.run(config, args) == 2
