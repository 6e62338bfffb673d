"""Order import from a sales system's export (CSV or XLSX): columns found by header names
(KiotViet, Sapo and Haravan exports, or generic names), one order per order id (several
lines of one order are its items), each order validated like a webhook's and written through
the same OrderIntake.apply, so a survey is scheduled exactly as for a posted purchase.

- Bad rows are reported with their line numbers and skipped; cancelled orders are skipped.
- Idempotent by order id: importing the same file again (or an order a webhook already
  brought) writes nothing more.
- Nothing half-written: orders are validated before anything is written, and each batch of
  orders is one transaction (a crash leaves whole orders; running it again finishes)."""
from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from bot.services.orders import OrderIntake, Prepared
from flows.orders import OrderEvent

KINDS = ("kiotviet-export", "sapo-export", "haravan-export", "generic")
BATCH = 200
MAX_ROWS = 200_000
PREVIEW = 5

# field -> header names (compared without case, accents or punctuation). Export headers seen in
# each system's order/invoice export; generic accepts all of them plus plain English names.
COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "kiotviet-export": {
        "order_id": ("Mã hóa đơn", "Mã hoá đơn"),
        "purchased_at": ("Thời gian", "Thời gian tạo", "Ngày bán"),
        "customer_id": ("Mã khách hàng", "Mã KH"),
        "customer_name": ("Khách hàng", "Tên khách hàng"),
        "phone": ("Điện thoại", "Số điện thoại", "SĐT", "Điện thoại khách hàng"),
        "amount": ("Khách cần trả", "Tổng sau giảm giá", "Tổng tiền hàng", "Khách đã trả"),
        "store": ("Chi nhánh",),
        "status": ("Trạng thái",),
        "sku": ("Mã hàng",),
        "item_name": ("Tên hàng",),
        "qty": ("Số lượng",),
        "price": ("Đơn giá", "Giá bán"),
    },
    "sapo-export": {
        "order_id": ("Mã đơn hàng",),
        "purchased_at": ("Ngày tạo đơn", "Ngày tạo", "Ngày đặt hàng"),
        "customer_id": ("Mã khách hàng",),
        "customer_name": ("Tên khách hàng", "Khách hàng"),
        "phone": ("SĐT", "Số điện thoại", "Điện thoại", "SĐT khách hàng"),
        "amount": ("Khách phải trả", "Tổng tiền", "Tổng tiền đơn hàng"),
        "store": ("Chi nhánh",),
        "channel": ("Nguồn đơn", "Nguồn", "Kênh bán hàng"),
        "status": ("Trạng thái đơn hàng", "Trạng thái"),
        "sku": ("Mã SKU", "SKU"),
        "item_name": ("Tên sản phẩm",),
        "qty": ("Số lượng",),
        "price": ("Đơn giá", "Giá"),
    },
    "haravan-export": {
        "order_id": ("Name", "Mã đơn hàng"),
        "purchased_at": ("Created at", "Ngày đặt hàng", "Ngày tạo"),
        "customer_id": ("Customer ID", "Mã khách hàng"),
        "customer_name": ("Billing Name", "Shipping Name", "Tên khách hàng", "Khách hàng"),
        "phone": ("Phone", "Billing Phone", "Shipping Phone", "Số điện thoại", "Điện thoại"),
        "amount": ("Total", "Tổng tiền", "Tổng cộng"),
        "currency": ("Currency",),
        "store": ("Location", "Chi nhánh", "Kho"),
        "channel": ("Source", "Nguồn"),
        "status": ("Cancelled at", "Trạng thái"),
        "sku": ("Lineitem sku", "Mã SKU"),
        "item_name": ("Lineitem name", "Tên sản phẩm"),
        "qty": ("Lineitem quantity", "Số lượng"),
        "price": ("Lineitem price", "Đơn giá"),
    },
}
GENERIC_EXTRA = {
    "order_id": ("order_id", "order", "order number", "invoice", "mã đơn", "mã hóa đơn"),
    "purchased_at": ("purchased_at", "date", "time", "created", "ngày", "thời gian"),
    "customer_id": ("customer_id", "customer id"),
    "customer_name": ("customer_name", "customer", "name", "tên"),
    "phone": ("phone", "mobile", "telephone", "số điện thoại"),
    "amount": ("amount", "total", "tổng tiền"),
    "currency": ("currency", "tiền tệ"),
    "store": ("store", "branch", "cửa hàng"),
    "channel": ("channel", "source", "touchpoint", "kênh"),
    "status": ("status", "trạng thái"),
    "sku": ("sku", "product code", "mã sản phẩm"),
    "item_name": ("item", "product", "sản phẩm"),
    "qty": ("qty", "quantity"),
    "price": ("price", "unit price", "giá"),
}
REQUIRED = ("order_id",)
DEFAULT_CHANNEL = {"kiotviet-export": "pos"}  # KiotViet: counter sales
CANCELLED = ("da huy", "huy", "cancelled", "canceled", "voided", "refunded", "da hoan tien", "hoan tra")
DATE_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M:%S", "%d-%m-%Y", "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M", "%Y-%m-%d", "%m/%d/%Y %H:%M:%S")


class ImportError_(ValueError):
    """The file itself cannot be imported (unreadable, no order id column, ...)."""


def _key(text: Any) -> str:
    """A header or status as compared: no accents (đ -> d), lower case, single spaces."""
    value = unicodedata.normalize("NFD", str(text or "")).replace("đ", "d").replace("Đ", "D")
    value = "".join(c for c in value if unicodedata.category(c) != "Mn").lower()
    return re.sub(r"[^a-z0-9]+", " ", value).strip()


def columns_for(kind: str) -> dict[str, tuple[str, ...]]:
    if kind == "generic":
        merged: dict[str, tuple[str, ...]] = {f: tuple(names) for f, names in GENERIC_EXTRA.items()}
        for mapping in COLUMNS.values():
            for f, names in mapping.items():
                merged[f] = merged.get(f, ()) + names
        return merged
    return COLUMNS[kind]


def map_header(header: list[Any], kind: str) -> dict[str, int]:
    """field -> column index; the first alias found wins (aliases are in order of preference)."""
    keys = [_key(h) for h in header]
    found: dict[str, int] = {}
    for f, names in columns_for(kind).items():
        for name in names:
            if _key(name) in keys:
                found[f] = keys.index(_key(name))
                break
    missing = [f for f in REQUIRED if f not in found]
    if missing:
        names = ", ".join(repr(n) for n in columns_for(kind)[missing[0]][:3])
        raise ImportError_(f"no order id column: expected a header like {names} (--source {kind})")
    return found


# --- reading files ---------------------------------------------------------------------------------------


def read_rows(path: Path | str, data: bytes | None = None) -> Iterator[tuple[int, list[Any]]]:
    """(line number, cells) of a CSV or XLSX file; line 1 is the header."""
    name = str(path).lower()
    if name.endswith((".xlsx", ".xlsm")):
        yield from _xlsx_rows(path, data)
    elif name.endswith((".csv", ".txt")):
        yield from _csv_rows(path, data)
    else:
        raise ImportError_(f"{path}: expected a .csv or .xlsx file")


def _csv_rows(path: Path | str, data: bytes | None) -> Iterator[tuple[int, list[Any]]]:
    raw = data if data is not None else Path(path).read_bytes()
    for encoding in ("utf-8-sig", "utf-16", "cp1258"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportError_(f"{path}: not UTF-8 text; save it as CSV UTF-8")
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row in reader:
        yield reader.line_num, row


def _xlsx_rows(path: Path | str, data: bytes | None) -> Iterator[tuple[int, list[Any]]]:
    from zipfile import BadZipFile

    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data) if data is not None else path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as exc:
        raise ImportError_(f"{path}: not a readable .xlsx file ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, list(row)
    finally:
        book.close()


# --- rows to orders ---------------------------------------------------------------------------------------


@dataclass
class Problem:
    line: int
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    orders: int = 0
    recorded: int = 0
    already: int = 0
    skipped_cancelled: int = 0
    errors: list[Problem] = field(default_factory=list)
    duplicates: list[Problem] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)
    scheduled: int = 0
    valid: int = 0  # orders that passed validation (a dry run's "to import")


@dataclass
class _Order:
    line: int
    cells: dict[str, Any]
    items: list[dict[str, Any]]
    rows: set[tuple[Any, ...]]


def _cell(row: list[Any], columns: dict[str, int], name: str) -> Any:
    index = columns.get(name)
    if index is None or index >= len(row):
        return None
    value = row[index]
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def parse_amount(value: Any) -> Any:
    """'1.250.000', '1,250,000', '1.250.000 ₫', 1250000.0 -> a number; anything else is left for
    the purchase validation to refuse (it names the amount)."""
    if value is None or isinstance(value, (int, float, Decimal)):
        return value
    text = re.sub(r"[\s₫đ]|VND|vnđ", "", str(value), flags=re.IGNORECASE)
    if re.fullmatch(r"\d{1,3}([.,]\d{3})+", text):
        return int(re.sub(r"[.,]", "", text))
    if re.fullmatch(r"\d{1,3}(\.\d{3})+,\d+", text):  # 1.250.000,50
        text = text.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d{1,3}(,\d{3})+\.\d+", text):  # 1,250,000.50
        text = text.replace(",", "")
    try:
        return str(Decimal(text))
    except InvalidOperation:
        return str(value)


def _number(value: Any) -> Any:
    """A quantity or price cell as a number where it is one ("2" -> 2, "12.5" -> 12.5)."""
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value.strip()):
        number = Decimal(value.strip())
        return int(number) if number == number.to_integral_value() else float(number)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def parse_time(value: Any) -> str | None:
    """A cell as ISO 8601 (no offset: shop time); None if empty; ValueError if unreadable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day).isoformat()
    text = str(value).strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).isoformat()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise ValueError(f"not a date and time: {text[:40]!r} (expected like 23/11/2026 10:00)") from None


def group_orders(rows: Iterable[tuple[int, list[Any]]], kind: str, report: ImportReport) -> tuple[list[_Order], dict[str, int]]:
    iterator = iter(rows)
    header_line, header = next(iterator, (0, None))
    if header is None:
        raise ImportError_("the file is empty")
    columns = map_header(header, kind)
    orders: dict[str, _Order] = {}
    for line, row in iterator:
        if all(c is None or (isinstance(c, str) and not c.strip()) for c in row):
            continue
        report.rows += 1
        if report.rows > MAX_ROWS:
            raise ImportError_(f"more than {MAX_ROWS:,} rows: split the file")
        order_id = _cell(row, columns, "order_id")
        if order_id is None:
            report.errors.append(Problem(line, "no order id"))
            continue
        order_id = str(int(order_id)) if isinstance(order_id, float) and order_id.is_integer() else str(order_id)
        values = tuple(str(c) if c is not None else "" for c in row)
        item = {k: v for k, v in (("sku", _cell(row, columns, "sku")), ("name", _cell(row, columns, "item_name")),
                                  ("qty", _number(_cell(row, columns, "qty"))),
                                  ("price", _number(parse_amount(_cell(row, columns, "price")))))
                if v is not None}
        order = orders.get(order_id)
        if order is None:
            cells = {f: _cell(row, columns, f) for f in columns}
            orders[order_id] = _Order(line, cells, [item] if item else [], {values})
        elif values in order.rows:
            report.duplicates.append(Problem(line, f"order {order_id}: the same row as line {order.line}, skipped"))
        else:
            order.rows.add(values)
            if item:
                order.items.append(item)
    report.orders = len(orders)
    return list(orders.values()), columns


def to_event(order: _Order, kind: str) -> OrderEvent | str:
    """The order as an event, or why it is skipped ('cancelled')."""
    cells = order.cells
    status = _key(cells.get("status"))
    if status and (status in CANCELLED or (kind == "haravan-export" and cells.get("status") and parse_time_ok(cells))):
        return "cancelled"
    channel = cells.get("channel") or DEFAULT_CHANNEL.get(kind)
    code = str(cells["order_id"]) if not isinstance(cells["order_id"], float) else str(int(cells["order_id"]))
    return OrderEvent(
        order_id=code,
        code=code,
        signals=frozenset({"completed"}),
        customer_id=str(cells["customer_id"]) if cells.get("customer_id") is not None else None,
        customer_name=str(cells["customer_name"]) if cells.get("customer_name") is not None else None,
        phone=cells.get("phone"),
        amount=parse_amount(cells.get("amount")),
        currency=str(cells.get("currency") or "VND"),
        items=tuple(order.items),
        store=str(cells["store"]) if cells.get("store") is not None else None,
        channel=str(channel) if channel is not None else None,
        purchased_at=parse_time(cells.get("purchased_at")),
    )


def parse_time_ok(cells: dict[str, Any]) -> bool:
    """Haravan's export puts a time in "Cancelled at" for cancelled orders."""
    try:
        return parse_time(cells.get("status")) is not None
    except ValueError:
        return False


async def import_orders(
    intake: OrderIntake, rows: Iterable[tuple[int, list[Any]]], *, kind: str, source: str, dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None, stores: tuple[str, ...] | None = None,
) -> ImportReport:
    """`stores`: only orders of these stores are taken (a store manager's import), the others
    are errors of their lines; None: any store."""
    if kind not in KINDS:
        raise ImportError_(f"--source: expected one of {', '.join(KINDS)}")
    report = ImportReport()
    grouped, _ = group_orders(rows, kind, report)
    now = intake.clock.now()
    ready: list[tuple[_Order, Prepared]] = []
    for order in grouped:
        try:
            event = to_event(order, kind)
        except ValueError as exc:
            report.errors.append(Problem(order.line, f"order {order.cells['order_id']}: {exc}"))
            continue
        if event == "cancelled":
            report.skipped_cancelled += 1
            continue
        assert isinstance(event, OrderEvent)
        prepared = intake.prepare(source, "completed", event, now)
        if prepared.error is not None:
            report.errors.append(Problem(order.line, f"order {event.code}: {prepared.error}"))
            continue
        store = prepared.data.store if prepared.data is not None else None
        if stores is not None and store not in stores:
            report.errors.append(Problem(order.line, f"order {event.code}: store {store or '(none)'!r} is not one of"
                                                     f" yours ({', '.join(stores) or 'none'})"))
            continue
        ready.append((order, prepared))
        if len(report.preview) < PREVIEW and prepared.data is not None:
            d = prepared.data
            report.preview.append({"line": order.line, "order_id": d.order_id, "customer": d.customer_name,
                                   "phone": d.phone, "amount": str(d.amount), "currency": d.currency,
                                   "store": d.store, "touchpoint": d.touchpoint,
                                   "purchased_at": d.purchased_at.isoformat(), "items": len(d.items)})
    report.errors.sort(key=lambda p: p.line)
    report.valid = len(ready)
    if dry_run:
        return report
    for start in range(0, len(ready), BATCH):
        batch = ready[start:start + BATCH]
        async with intake.db.transaction() as tx:
            outcomes = [await intake.apply(tx, source, p, None, now) for _, p in batch]
        for (order, p), outcome in zip(batch, outcomes):
            if outcome.startswith("purchase recorded"):
                report.recorded += 1
                report.scheduled += outcome.endswith("scheduled")
            elif outcome.startswith("failed: order") and "different details" in outcome:
                report.already += 1  # recorded before (by a webhook or another file) with other details
            elif outcome.startswith("failed"):
                report.errors.append(Problem(order.line, f"order {p.event.code}: {outcome[8:]}"))
            else:
                report.already += 1
        if progress is not None:
            progress(min(start + BATCH, len(ready)), len(ready))
    return report
