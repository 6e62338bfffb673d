/**
 * feedbot -> Google Sheets: one row per survey answer, comment and ticket, in tabs of the
 * spreadsheet this script is bound to; a customer's rows go when feedbot says they were erased.
 *
 * 1. In the spreadsheet: Extensions > Apps Script, paste this file, set TOKEN to a long random
 *    string (e.g. the output of `openssl rand -hex 24`), save.
 * 2. Deploy > New deployment > Web app: Execute as "Me", Who has access "Anyone". Copy the URL
 *    ending in /exec.
 * 3. feedbot webhooks add 'https://script.google.com/macros/s/<id>/exec?token=<TOKEN>' \
 *      --events survey.answered,survey.commented,complaint.opened,complaint.resolved,question.opened,customer.erased \
 *      --redirect-ok --description "Google Sheet"
 *
 * Apps Script shows a web app neither the request's headers nor lets it answer with an error
 * status, so it cannot check the Standard Webhooks signature: the token in the URL stands in
 * for it (keep the URL secret), and the event's "id" (the webhook-id, repeated in the body)
 * keeps a redelivered event from being written twice. A web app answers a POST with a
 * redirect after running the script, hence --redirect-ok.
 */
var TOKEN = 'change-me';

var TABS = {
  'survey.answered': ['Surveys', ['received_at', 'event_id', 'survey_id', 'order_id', 'score', 'touchpoint', 'store',
                                  'channel', 'answered_at', 'customer_id', 'customer_name', 'customer_phone']],
  'survey.commented': ['Comments', ['received_at', 'event_id', 'survey_id', 'order_id', 'score', 'comment',
                                    'commented_at', 'customer_id', 'customer_name']],
  'complaint.opened': ['Tickets', ['received_at', 'event_id', 'number', 'kind', 'category', 'priority', 'tier',
                                   'description', 'order_id', 'opened_at', 'customer_id', 'customer_name']],
  'question.opened': ['Tickets', null],
  'complaint.resolved': ['Resolved', ['received_at', 'event_id', 'number', 'category', 'assignee', 'opened_at',
                                      'first_response_at', 'resolved_at', 'customer_id']],
  'digest.ready': ['Digests', ['received_at', 'event_id', 'week', 'report_json']],
};
TABS['question.opened'][1] = TABS['complaint.opened'][1];

function doPost(e) {
  if (!e || !e.parameter || e.parameter.token !== TOKEN) {
    return answer('forbidden');  // nothing written
  }
  var event = JSON.parse(e.postData.contents);
  var lock = LockService.getScriptLock();
  lock.waitLock(20000);
  try {
    var book = SpreadsheetApp.getActiveSpreadsheet();
    var seen = tab(book, 'Received', ['event_id']);
    if (column(seen, 0).indexOf(event.id) !== -1) {
      return answer('duplicate');  // a redelivery: already written
    }
    if (event.type === 'customer.erased') {
      erase(book, event.data.customer_id);
    } else if (TABS[event.type]) {
      var spec = TABS[event.type];
      tab(book, spec[0], spec[1]).appendRow(spec[1].map(function (name) { return cell(event, name); }));
    }
    seen.appendRow([event.id]);
    return answer('ok');
  } finally {
    lock.releaseLock();
  }
}

function cell(event, name) {
  var d = event.data || {};
  var customer = d.customer || {};
  switch (name) {
    case 'received_at': return event.timestamp;
    case 'event_id': return event.id;
    case 'customer_id': return customer.id || '';
    case 'customer_name': return customer.name || '';
    case 'customer_phone': return customer.phone || '';
    case 'report_json': return JSON.stringify(d.report);
    default: return d[name] === null || d[name] === undefined ? '' : d[name];
  }
}

/** Every row naming this customer id goes, in every tab. */
function erase(book, customerId) {
  if (!customerId) return;
  book.getSheets().forEach(function (sheet) {
    var rows = sheet.getDataRange().getValues();
    var at = rows.length ? rows[0].indexOf('customer_id') : -1;
    if (at === -1) return;
    for (var i = rows.length - 1; i >= 1; i--) {
      if (rows[i][at] === customerId) sheet.deleteRow(i + 1);
    }
  });
}

function tab(book, name, header) {
  var sheet = book.getSheetByName(name);
  if (!sheet) {
    sheet = book.insertSheet(name);
    sheet.appendRow(header);
  }
  return sheet;
}

function column(sheet, index) {
  return sheet.getDataRange().getValues().map(function (row) { return row[index]; });
}

function answer(text) {
  return ContentService.createTextOutput(text);
}
