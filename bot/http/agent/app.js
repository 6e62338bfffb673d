// The agents' page: ticket list and one ticket at a time (#/t/<id>). News is pushed by the
// server (Server-Sent Events at /agent/api/stream); only while that stream is down does the
// page ask for news itself, every poll_seconds.
// Everything that comes from customers is put on the page with textContent, never as HTML.
"use strict";

(() => {
  let S = {};
  let csrf = "";
  let pollMs = 30000;
  let cursor = null; // the list's feed position: the stream starts there
  let stream = null; // the EventSource while it is open or reconnecting
  let streamUp = false;
  let pollTimer = null;
  let refreshTimer = null;
  let refreshOpen = false; // the open ticket has news too
  const seenEvents = new Set(); // pushed event ids already handled (a reconnect may repeat some)
  let isOwner = false;
  let current = null; // the open ticket's id
  let lastEventId = 0; // the open ticket's newest event shown
  let known = null; // ticket ids seen in the list (null until the first load)
  let busy = false;
  let listShown = ""; // what the list shows now, to leave it (and the focus in it) alone when nothing changed
  let factsShown = "";

  const $ = (id) => document.getElementById(id);

  function t(key, params) {
    let s = S[key] || key;
    for (const [k, v] of Object.entries(params || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function setStatus(message, isError) {
    const status = $("status");
    status.textContent = message || "";
    status.classList.toggle("error", Boolean(isError));
  }

  function announce(message) {
    const box = $("announce");
    box.append(el("p", { text: message }));
    while (box.childElementCount > 5) box.firstElementChild.remove();
  }

  async function api(path, options) {
    let res;
    try {
      res = await fetch(path, { credentials: "same-origin", ...options });
    } catch (e) {
      setStatus(t("error.network"), true);
      throw e;
    }
    if (res.status === 401) {
      location.assign("/login?next=/agent");
      throw new Error("session");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((body.error && body.error.message) || res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  function post(path, data) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(data || {}),
    });
  }

  // --- the list ---------------------------------------------------------------------

  function badges(ticket) {
    const box = el("span", { class: "badges" });
    if (ticket.kind === "question") box.append(el("span", { class: "badge kind-question", text: "❓ " + ticket.kind_label }));
    box.append(el("span", { class: "badge prio-" + ticket.priority, text: t("col.priority") + ": " + ticket.priority_label }));
    if (ticket.breached) box.append(el("span", { class: "badge breached", text: "⏰ " + t("breached") }));
    if (ticket.escalated) box.append(el("span", { class: "badge escalated", text: "⏫ " + t("escalated") }));
    if (ticket.card_undelivered) box.append(el("span", { class: "badge undelivered", text: "⚠️ " + t("undelivered") }));
    // Anyone can open the web chat: a ticket with no shop customer behind it is unverified.
    if (ticket.unverified) box.append(el("span", { class: "badge unverified", text: "? " + t("unverified") }));
    if (ticket.demo) box.append(el("span", { class: "badge demo", text: t("demo") }));
    box.append(el("span", { class: "badge status-" + ticket.status, text: ticket.status_label }));
    return box;
  }

  function listItem(ticket) {
    const link = el("a", { href: "#/t/" + ticket.id, class: "ticket-link", "data-ticket": String(ticket.id) },
      el("span", { class: "number", text: ticket.number }), " ", badges(ticket));
    const facts = el("dl", { class: "row-facts" });
    const add = (label, value) => facts.append(el("div", {}, el("dt", { text: label }), el("dd", { text: value || t("nobody") })));
    add(t("col.customer"), ticket.customer);
    add(t("col.tier"), ticket.tier_label);
    add(t("col.category"), ticket.category_label);
    add(t("col.assignee"), ticket.assignee);
    if (ticket.status !== "resolved") {
      add(t("col.first_due"), ticket.first_response_at ? "✓ " + ticket.first_response_at : ticket.first_response_due);
      add(t("col.resolution_due"), ticket.resolution_due);
    }
    return el("li", { class: "ticket" + (ticket.breached ? " is-breached" : "") }, link, facts);
  }

  function renderList(data) {
    $("list-meta").textContent = t("list.count", { count: data.tickets.filter((x) => x.status !== "resolved").length }) +
      " · " + t("list.updated", { time: data.updated_at });
    const shown = JSON.stringify(data.tickets);
    if (shown === listShown) return;
    listShown = shown;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.ticket : null;
    const open = data.tickets.filter((x) => x.status !== "resolved");
    const done = data.tickets.filter((x) => x.status === "resolved");
    $("tickets").replaceChildren(...(open.length ? open.map(listItem) : [el("li", { class: "empty", text: t("list.empty") })]));
    $("resolved").replaceChildren(...done.map(listItem));
    $("resolved-heading").hidden = done.length === 0;
    if (focused) {
      const again = document.querySelector('[data-ticket="' + focused + '"]');
      if (again) again.focus();
    }
    const ids = new Set(data.tickets.map((x) => x.id));
    if (known !== null) {
      for (const x of open) if (!known.has(x.id)) announce(t(x.kind === "question" ? "new_question" : "new_ticket", { number: x.number }));
    }
    known = ids;
  }

  async function refreshList() {
    const data = await api("/agent/api/tickets");
    if (cursor === null) cursor = data.cursor;
    renderList(data);
  }

  // --- one ticket -------------------------------------------------------------------

  function renderFacts(d) {
    const shown = JSON.stringify([d.ticket, d.customer, d.order]);
    if (shown === factsShown) return;
    factsShown = shown;
    const x = d.ticket;
    $("detail-heading").textContent = x.number + " · " + x.category_label;
    $("detail-badges").replaceChildren(badges(x));
    const facts = $("facts");
    facts.replaceChildren();
    const add = (label, value, wide) =>
      facts.append(el("div", wide ? { class: "wide" } : {}, el("dt", { text: label }), el("dd", { text: value || t("nobody") })));
    add(t("detail.customer"), d.customer.name + " (" + x.tier_label + ")");
    add(t("detail.phone"), d.customer.phone);
    add(t("detail.channel"), d.customer.channel);
    add(t("detail.past_csat"), d.customer.past_csat.join(", "));
    if (d.order) {
      add(t("detail.order"), "#" + d.order.order_id);
      add(t("detail.amount"), d.order.amount + " " + d.order.currency);
      add(t("detail.store"), d.order.store);
      add(t("detail.purchased_at"), d.order.purchased_at);
    } else {
      add(t("detail.order"), t("detail.no_order"));
    }
    add(t("detail.description"), x.description, true);
    const photos = el("dd", { class: "photos" });
    x.photos.forEach((url, i) => {
      const img = el("img", { src: url, alt: t("photo.alt", { n: i + 1 }), loading: "lazy" });
      img.addEventListener("error", () => img.parentNode.replaceWith(el("span", { class: "photo-missing", text: t("photo.unavailable", { n: i + 1 }) })));
      photos.append(el("a", { href: url, target: "_blank", rel: "noopener" }, img));
    });
    if (x.photos_elsewhere) photos.append(el("span", { text: t("photo.elsewhere", { count: x.photos_elsewhere }) }));
    if (!x.photos.length && !x.photos_elsewhere) photos.textContent = t("photo.none");
    facts.append(el("div", { class: "wide" }, el("dt", { text: t("detail.photos") }), photos));
    add(t("detail.opened_at"), x.created_at);
    add(t("col.first_due"), x.first_response_at ? "✓ " + x.first_response_at : x.first_response_due);
    add(t("col.resolution_due"), x.resolution_due);
    add(t("col.assignee"), x.assignee);
    const resolved = x.status === "resolved";
    for (const id of ["do-claim", "do-resolve", "do-escalate", "reply-send", "canned-pick"]) $(id).disabled = resolved;
    $("reply-text").disabled = resolved;
    renderCanned(d.canned || []);
  }

  // --- canned replies -----------------------------------------------------------------

  let cannedTexts = [];

  function renderCanned(replies) {
    cannedTexts = replies.map((r) => r.text);
    const pick = $("canned-pick");
    pick.replaceChildren(el("option", { value: "", text: replies.length ? t("canned.choose") : t("canned.none") }),
      ...replies.map((r, i) => el("option", { value: String(i), text: r.title })));
    $("canned-row").hidden = replies.length === 0;
  }

  function insertCanned() {
    const pick = $("canned-pick");
    if (pick.value === "") return;
    const box = $("reply-text");
    const add = cannedTexts[Number(pick.value)];
    const at = box.selectionStart ?? box.value.length;
    box.value = box.value.slice(0, at) + add + box.value.slice(box.selectionEnd ?? at);
    pick.value = "";
    box.focus();
    box.setSelectionRange(at + add.length, at + add.length);
  }

  async function loadCannedAdmin() {
    const data = await api("/agent/api/canned");
    const list = $("canned-admin-list");
    list.replaceChildren(...data.replies.map((r) => {
      const title = el("input", { value: r.title, maxlength: String(data.title_max), "aria-label": t("canned.title") });
      const body = el("textarea", { rows: "2", maxlength: String(data.body_max), "aria-label": t("canned.body") });
      body.value = r.body;
      const save = el("button", { type: "button", text: t("canned.save") });
      const del = el("button", { type: "button", class: "secondary", text: t("canned.delete") });
      save.addEventListener("click", () => cannedChange("/agent/api/canned/" + r.id, { title: title.value, body: body.value }));
      del.addEventListener("click", () => cannedChange("/agent/api/canned/" + r.id + "/delete", {}));
      return el("li", { class: "canned-item" }, title, body, el("span", { class: "row-buttons" }, save, del));
    }));
  }

  async function cannedChange(path, data) {
    try {
      const done = await post(path, data);
      setStatus(done.message, false);
      await loadCannedAdmin();
      return true;
    } catch (e) {
      if (e.message !== "session") setStatus(e.message, true);
      return false;
    }
  }

  function eventItem(e) {
    return el("li", { class: "event ev-" + e.action + " by-" + e.actor, "data-event": String(e.id) },
      el("p", { class: "event-head" },
        el("strong", { text: e.who }), " · ", el("span", { text: e.label }), " · ", el("time", { text: e.at })),
      e.body ? el("p", { class: "event-body", text: e.body }) : null);
  }

  function renderEvents(events, fresh) {
    const list = $("events");
    if (fresh) list.replaceChildren();
    for (const e of events) {
      if (e.id <= lastEventId && !fresh) continue;
      list.append(eventItem(e));
      if (!fresh && e.actor === "customer" && e.body) {
        announce(t("new_message", { number: $("detail-heading").textContent.split(" ")[0], who: e.who, text: e.body }));
      }
      lastEventId = Math.max(lastEventId, e.id);
    }
  }

  async function openTicket(id) {
    let d;
    try {
      d = await api("/agent/api/tickets/" + id);
    } catch (e) {
      if (e.status === 404) {
        setStatus(t("not_found"), true);
        location.hash = "";
      }
      return;
    }
    current = id;
    lastEventId = 0;
    factsShown = "";
    renderFacts(d);
    renderEvents(d.events, true);
    $("list-view").hidden = true;
    $("detail-view").hidden = false;
    $("detail-heading").focus();
  }

  async function refreshTicket() {
    if (current === null) return;
    const id = current;
    const d = await api("/agent/api/tickets/" + id + "?since=" + lastEventId);
    if (id !== current) return;
    renderFacts(d);
    renderEvents(d.events, false);
  }

  async function act(action, data) {
    if (current === null || busy) return null;
    busy = true;
    try {
      const d = await post("/agent/api/tickets/" + current + "/" + action, data);
      renderFacts(d);
      lastEventId = 0;
      renderEvents(d.events, true);
      setStatus(d.message, false);
      return d;
    } catch (e) {
      if (e.message !== "session") setStatus(e.message, true);
      return null;
    } finally {
      busy = false;
    }
  }

  function showList() {
    current = null;
    $("detail-view").hidden = true;
    $("list-view").hidden = false;
  }

  async function route() {
    const m = /^#\/t\/(\d+)$/.exec(location.hash);
    if (m) await openTicket(Number(m[1]));
    else {
      const wasOpen = current;
      showList();
      await refreshList().catch(() => {});
      if (wasOpen !== null) {
        const link = document.querySelector('[data-ticket="' + wasOpen + '"]');
        if (link) link.focus();
      }
    }
  }

  async function refresh(withTicket) {
    try {
      await refreshList(); // also while a ticket is open: new complaints are announced
      if (withTicket) await refreshTicket();
      if ($("status").classList.contains("error") && $("status").textContent === t("error.network")) setStatus("");
    } catch (e) {
      /* shown by api() */
    }
  }

  // The fallback: only while the stream is down.
  function schedulePoll() {
    if (pollTimer) return; // one at a time: the stream's reconnect errors come every few seconds
    pollTimer = setTimeout(async () => {
      pollTimer = null;
      if (streamUp) return;
      await refresh(true);
      if (stream === null) openStream(); // closed for good (a 429, a restart): try again
      schedulePoll();
    }, pollMs);
  }

  // News for the list (and the open ticket): one refresh for a burst of events.
  function soon(withTicket) {
    refreshOpen = refreshOpen || withTicket;
    if (refreshTimer) return;
    refreshTimer = setTimeout(async () => {
      const open = refreshOpen;
      refreshTimer = null;
      refreshOpen = false;
      await refresh(open);
    }, 100);
  }

  function openStream() {
    if (!window.EventSource) return;
    stream = new EventSource("/agent/api/stream" + (cursor !== null ? "?after=" + cursor : ""));
    stream.addEventListener("open", () => {
      streamUp = true;
      $("list-meta").classList.remove("offline");
    });
    stream.addEventListener("ticket", (ev) => {
      const e = JSON.parse(ev.data);
      if (seenEvents.has(e.id)) return;
      seenEvents.add(e.id);
      soon(e.ticket === current);
    });
    stream.addEventListener("reload", () => soon(true));
    stream.addEventListener("signed_out", () => location.assign("/login?next=/agent"));
    stream.addEventListener("error", () => {
      streamUp = false;
      $("list-meta").classList.add("offline");
      if (stream.readyState === EventSource.CLOSED) {
        stream = null; // refused (429) or gone: the fallback asks, and retries the stream
      }
      schedulePoll();
    });
  }

  function wireForm(formId, textId, action) {
    $(formId).addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const box = $(textId);
      const value = box.value.trim();
      if (!value) {
        setStatus(t("refused.empty"), true);
        box.focus();
        return;
      }
      if (await act(action, { text: value })) box.value = "";
    });
  }

  async function start() {
    const info = await api("/agent/api/session");
    S = info.strings;
    csrf = info.csrf;
    pollMs = Math.max(1000, info.poll_seconds * 1000);
    document.documentElement.lang = info.language;
    $("whoami").textContent = t("signed_in_as", { agent: info.agent });
    $("logout-button").textContent = t("logout");
    $("logout-csrf").value = csrf;
    $("list-heading").textContent = t("list.heading");
    $("resolved-heading").textContent = t("list.resolved_heading");
    $("back").textContent = t("detail.back");
    $("conversation-heading").textContent = t("detail.conversation");
    $("reply-label").textContent = t("detail.reply_label");
    $("reply-send").textContent = t("detail.reply_send");
    $("note-label").textContent = t("detail.note_label");
    $("note-send").textContent = t("detail.note_send");
    $("actions-heading").textContent = t("detail.actions");
    $("do-claim").textContent = t("action.claim");
    $("do-resolve").textContent = t("action.resolve");
    $("do-escalate").textContent = t("action.escalate");
    $("canned-label").textContent = t("canned.label");
    $("canned-pick").addEventListener("change", insertCanned);
    isOwner = Boolean(info.owner);
    if (isOwner) {
      $("canned-admin").hidden = false;
      $("canned-admin-heading").textContent = t("canned.heading");
      $("canned-admin-help").textContent = t("canned.help");
      $("canned-new-title-label").textContent = t("canned.title");
      $("canned-new-body-label").textContent = t("canned.body");
      $("canned-new-add").textContent = t("canned.add");
      $("canned-new").addEventListener("submit", async (ev) => {
        ev.preventDefault();
        if (await cannedChange("/agent/api/canned", { title: $("canned-new-title").value, body: $("canned-new-body").value })) {
          $("canned-new-title").value = "";
          $("canned-new-body").value = "";
        }
      });
      loadCannedAdmin().catch(() => {});
    }
    wireForm("reply-form", "reply-text", "reply");
    wireForm("note-form", "note-text", "note");
    for (const id of ["do-claim", "do-resolve", "do-escalate"]) {
      $(id).addEventListener("click", () => act($(id).dataset.action));
    }
    $("back").addEventListener("click", (ev) => {
      ev.preventDefault();
      location.hash = "";
    });
    window.addEventListener("hashchange", route);
    await route();
    if (cursor === null) await refreshList().catch(() => {}); // opened on a ticket: the stream needs the cursor
    openStream();
    document.body.classList.add("ready");
    if (!window.EventSource) schedulePoll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    start().catch((e) => setStatus(e.message, true));
  });
})();
