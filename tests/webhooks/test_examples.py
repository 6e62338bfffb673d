"""The receivers the README offers (examples/webhooks/), run with Node against requests our
worker's code signs: the n8n Code node's verification, and the Google Sheets Apps Script
with the Apps Script services it uses stubbed (a spreadsheet of arrays)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bot.webhooks import events, signing

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "webhooks"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")


def node(script: str, tmp_path: Path) -> dict:
    path = tmp_path / "driver.js"
    path.write_text(script, encoding="utf-8")
    done = subprocess.run([NODE, str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def signed(secret: str, event_type: str, data: dict, at: int | None = None) -> tuple[dict, str]:
    msg_id = signing.new_msg_id()
    body = events.body(msg_id, event_type, data, datetime.now(timezone.utc))
    ts = at if at is not None else int(time.time())
    return signing.headers(msg_id, ts, body.encode(), [secret]), body


def test_the_n8n_code_node_accepts_our_signature_and_refuses_forgeries(tmp_path):
    secret, other = signing.new_secret(), signing.new_secret()
    good_headers, body = signed(secret, "complaint.opened", {"number": "KN-0001", "description": "Hộp bị móp"})
    old_headers, _ = signed(secret, "complaint.opened", {}, at=int(time.time()) - 3600)
    cases = {
        "good": (good_headers, body),
        "tampered": (good_headers, body.replace("KN-0001", "KN-0002")),
        "other_secret": (signed(other, "complaint.opened", {})[0], body),
        "old": (old_headers, json.dumps({})),
        "no_headers": ({}, body),
    }
    out = node(f"""
const {{ verify }} = require({json.dumps(str(EXAMPLES / 'n8n-verify.js'))});
const cases = {json.dumps(cases, ensure_ascii=False)};
const out = {{}};
for (const [name, [headers, body]] of Object.entries(cases)) {{
  try {{ out[name] = verify({json.dumps(secret)}, headers, Buffer.from(body, 'utf8'), Math.floor(Date.now() / 1000)); }}
  catch (e) {{ out[name] = 'error: ' + e.message; }}
}}
console.log(JSON.stringify(out));
""", tmp_path)
    assert out["good"]["type"] == "complaint.opened" and out["good"]["data"]["description"] == "Hộp bị móp"
    assert out["tampered"] == "error: bad webhook signature" and out["other_secret"] == "error: bad webhook signature"
    assert out["old"] == "error: webhook-timestamp too old or too new"
    assert out["no_headers"].startswith("error: not a Standard Webhooks request")


APPS_SCRIPT_STUBS = """
const fs = require('fs'), vm = require('vm');
const tabs = {};
function Sheet(name) { this.name = name; this.rows = []; }
Sheet.prototype.appendRow = function (row) { this.rows.push(row.slice()); };
Sheet.prototype.getDataRange = function () { const rows = this.rows; return { getValues: () => rows.map((r) => r.slice()) }; };
Sheet.prototype.deleteRow = function (i) { this.rows.splice(i - 1, 1); };
const book = {
  getSheetByName: (n) => tabs[n] || null,
  insertSheet: (n) => (tabs[n] = new Sheet(n)),
  getSheets: () => Object.values(tabs),
};
const context = {
  SpreadsheetApp: { getActiveSpreadsheet: () => book },
  LockService: { getScriptLock: () => ({ waitLock() {}, releaseLock() {} }) },
  ContentService: { createTextOutput: (text) => ({ text }) },
  JSON,
};
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[2] || SCRIPT, 'utf8').replace("var TOKEN = 'change-me';", "var TOKEN = 't0k3n';"), context);
"""


def test_the_google_sheets_script_writes_rows_once_and_erases_a_customer(tmp_path):
    secret = signing.new_secret()
    customer = {"id": "C-42", "name": "Nguyễn Thị Lan", "phone": "+84912345678"}
    _, answered = signed(secret, "survey.answered", {"survey_id": 7, "order_id": "A-1001", "score": 2,
                                                     "touchpoint": "delivery", "store": "Q1", "customer": customer})
    _, opened = signed(secret, "complaint.opened", {"number": "KN-0001", "kind": "complaint", "category": "delivery",
                                                    "description": "Hộp bị móp", "customer": customer})
    _, other = signed(secret, "survey.answered", {"survey_id": 8, "order_id": "A-1002", "score": 5,
                                                  "customer": {"id": "C-7", "name": "Bình", "phone": None}})
    _, erased = signed(secret, "customer.erased", {"subject": "C-42", "customer_id": "C-42", "via": "chat"})
    posts = [("t0k3n", answered), ("t0k3n", answered), ("wrong", opened), ("t0k3n", opened), ("t0k3n", other)]
    out = node(f"""
const SCRIPT = {json.dumps(str(EXAMPLES / 'google-sheets.gs'))};
{APPS_SCRIPT_STUBS}
const answers = [];
for (const [token, body] of {json.dumps(posts, ensure_ascii=False)}) {{
  answers.push(context.doPost({{ parameter: {{ token }}, postData: {{ contents: body }} }}).text);
}}
const before = JSON.parse(JSON.stringify(tabs));
answers.push(context.doPost({{ parameter: {{ token: 't0k3n' }}, postData: {{ contents: {json.dumps(erased, ensure_ascii=False)} }} }}).text);
console.log(JSON.stringify({{ answers, before, after: tabs }}));
""", tmp_path)
    assert out["answers"] == ["ok", "duplicate", "forbidden", "ok", "ok", "ok"]
    surveys = out["before"]["Surveys"]["rows"]
    header = surveys[0]
    assert len(surveys) == 3  # header, C-42's answer once (its redelivery skipped), C-7's
    row = dict(zip(header, surveys[1]))
    assert row["order_id"] == "A-1001" and row["score"] == 2 and row["customer_name"] == "Nguyễn Thị Lan"
    assert dict(zip(out["before"]["Tickets"]["rows"][0], out["before"]["Tickets"]["rows"][1]))["description"] == "Hộp bị móp"
    # customer.erased: C-42's rows are gone from every tab; C-7's stays.
    assert [r[header.index("customer_id")] for r in out["after"]["Surveys"]["rows"][1:]] == ["C-7"]
    assert len(out["after"]["Tickets"]["rows"]) == 1
