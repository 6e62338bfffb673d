// n8n: receive feedbot's webhooks and check their Standard Webhooks signature.
//
// Workflow: Webhook node (HTTP Method POST, Path e.g. "feedbot", Options > Raw Body: on)
//   -> Code node (Mode "Run Once for All Items", this file's code, SECRET set)
//   -> Switch node on {{$json.type}} (survey.answered, complaint.opened, ...)
//   -> whatever the shop uses (Google Sheets "Append Row", Slack, e-mail, a CRM).
// The Code node needs Node's crypto module: start n8n with NODE_FUNCTION_ALLOW_BUILTIN=crypto.
// Then: feedbot webhooks add https://<n8n host>/webhook/feedbot --events '*'
// A request that fails the check stops the workflow with an error (no data passes).

const crypto = require('crypto');

const SECRET = 'whsec_...';  // `feedbot webhooks secret <id>`
const TOLERANCE_S = 5 * 60;  // refuse requests signed longer ago than this (replays)

/** The event, if the headers sign exactly these body bytes with this secret; else throws. */
function verify(secret, headers, body, nowS) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = String(v);
  const id = h['webhook-id'], ts = h['webhook-timestamp'], signatures = h['webhook-signature'];
  if (!id || !ts || !signatures) throw new Error('not a Standard Webhooks request (headers missing)');
  if (!/^\d+$/.test(ts) || Math.abs(nowS - Number(ts)) > TOLERANCE_S) throw new Error('webhook-timestamp too old or too new');
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${ts}.`), body])).digest();
  const ok = signatures.split(' ').some((versioned) => {
    const [version, sig] = versioned.split(',');
    const given = Buffer.from(sig || '', 'base64');
    return version === 'v1' && given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
  if (!ok) throw new Error('bad webhook signature');
  return JSON.parse(body.toString('utf8'));
}

if (typeof $input !== 'undefined') {
  // Inside n8n: one item from the Webhook node, its raw body as binary "data".
  const item = $input.first();
  return this.helpers.getBinaryDataBuffer(0, 'data').then((body) => [
    { json: verify(SECRET, item.json.headers, body, Math.floor(Date.now() / 1000)) },
  ]);
} else if (typeof module !== 'undefined') {
  module.exports = { verify };  // for feedbot's own test of this file
}
