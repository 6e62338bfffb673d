// The dashboard: reads the JSON API, draws inline SVG charts with a data table behind each,
// switches between Vietnamese and English, exports what is shown as CSV, refreshes every 30 s.
// Text only ever goes in with textContent (customer comments are data, never markup).
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let info = null, lang = "vi", shown = { csat: [], comments: [], complaints: [] }, last = {};
  const t = (key, params) => {
    let s = (info.strings[lang] || info.strings.vi)[key] || key;
    for (const [k, v] of Object.entries(params || {})) s = s.replace("{" + k + "}", v);
    return s;
  };
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const fmt = (v, suffix) => (v === null || v === undefined ? t("none") : String(v) + (suffix || ""));

  async function api(path) {
    const r = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { location.assign("/login?next=/dashboard"); throw new Error("session"); }
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : String(r.status));
    return body;
  }

  function table(headers, rows, numeric) {
    const tb = el("table");
    const head = el("tr");
    headers.forEach((h, i) => head.appendChild(el("th", { scope: "col", class: numeric && numeric[i] ? "num" : "" }, h)));
    tb.appendChild(el("thead")).appendChild(head);
    const body = tb.appendChild(el("tbody"));
    rows.forEach((r) => {
      const tr = el("tr");
      r.forEach((c, i) => {
        const td = el("td", { class: numeric && numeric[i] ? "num" : "" });
        if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? t("none") : String(c);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    const wrap = el("div", { class: "scroll" });  // a wide table scrolls by itself; the page never does
    wrap.appendChild(tb);
    return wrap;
  }

  // A line chart: series = [{values: [...], cls: "line"}], labels along x; y from 0 to max.
  function lineChart(box, labels, series, yMax, label) {
    const W = Math.max(300, Math.round(box.clientWidth || 640)), H = 220, L = 36, B = 24, T = 8, R = 20;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const add = (tag, attrs, text) => {
      const n = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
      if (text !== undefined) n.textContent = text;
      svg.appendChild(n);
      return n;
    };
    const n = labels.length, max = yMax || 1;
    const x = (i) => L + (n <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    for (const frac of [0, 0.5, 1]) {
      add("line", { x1: L, x2: W - R, y1: y(max * frac), y2: y(max * frac), class: "axis" });
      add("text", { x: 2, y: y(max * frac) + 4 }, String(Math.round(max * frac)));
    }
    const step = Math.max(1, Math.ceil(n / 6));
    labels.forEach((lab, i) => { if (i % step === 0) add("text", { x: x(i), y: H - 6, "text-anchor": i === n - 1 && n > 1 ? "end" : "middle" }, lab.slice(5)); });
    series.forEach((s) => {
      const pts = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`));
      let d = "", pen = false;
      pts.forEach((p) => { if (p === null) { pen = false; return; } d += (pen ? " L" : " M") + p; pen = true; });
      if (d) add("path", { d: d.trim(), class: s.cls });
      s.values.forEach((v, i) => { if (v !== null) add("circle", { cx: x(i), cy: y(v), r: 3, class: s.cls.replace("line", "dot") }); });
    });
    box.replaceChildren(svg);
  }

  function barTable(rows, key) {
    const max = Math.max(1, ...rows.map((r) => r.answers || r.count || 0));
    return table([t("dim." + key) || key, t("csat.pct"), t("csat.mean"), t("csat.answers"), ""],
      rows.map((r) => {
        const svg = document.createElementNS(SVG, "svg");
        svg.setAttribute("viewBox", "0 0 100 10"); svg.setAttribute("width", "80"); svg.setAttribute("height", "10");
        svg.setAttribute("aria-hidden", "true"); svg.setAttribute("class", "bars");
        const rect = document.createElementNS(SVG, "rect");
        rect.setAttribute("width", String(Math.round((100 * r.answers) / max))); rect.setAttribute("height", "10");
        svg.appendChild(rect);
        return [r.key || t("none"), fmt(r.csat, "%"), fmt(r.mean), r.answers, svg];
      }), [false, true, true, true, false]);
  }

  function query(extra) {
    const p = new URLSearchParams({ from: $("from").value, to: $("to").value });
    if ($("store").value) p.append("store", $("store").value);
    for (const [k, v] of Object.entries(extra || {})) if (v) p.append(k, v);
    return p.toString();
  }

  async function loadCsat() {
    const d = await api("/dashboard/api/csat?" + query({ group: $("group").value }));
    last.csat = d;
    const cards = $("totals");
    cards.replaceChildren();
    for (const [key, field, suffix] of [["csat.pct", "csat", "%"], ["csat.mean", "mean", ""], ["csat.answers", "answers", ""],
      ["csat.response_rate", "response_rate", "%"]]) {
      const c = el("div", { class: "card" });
      c.appendChild(el("div", {}, t(key)));
      c.appendChild(el("div", { class: "value" }, fmt(d.totals[field], suffix)));
      c.appendChild(el("div", { class: "prev" }, t("csat.previous") + ": " + fmt(d.previous_totals[field], suffix)));
      cards.appendChild(c);
    }
    const labels = d.series.map((s) => s.period);
    lineChart($("csat-chart"), labels, [
      { values: d.series.map((s) => s.previous.csat), cls: "line prev" },
      { values: d.series.map((s) => s.csat), cls: "line" },
    ], 100, t("csat.chart"));
    const headers = [t("csat.period"), t("csat.pct"), t("csat.mean"), t("csat.answers"), t("csat.previous") + " " + t("csat.pct"), t("csat.previous") + " " + t("csat.answers")];
    shown.csat = [headers, ...d.series.map((s) => [s.period, fmt(s.csat), fmt(s.mean), s.answers, fmt(s.previous.csat), s.previous.answers])];
    $("csat-table").replaceChildren(table(headers, shown.csat.slice(1), [false, true, true, true, true, true]));
    const box = $("breakdowns");
    box.replaceChildren();
    for (const [dim, rows] of Object.entries(d.breakdowns)) {
      const div = el("div");
      div.appendChild(el("h4", {}, t("dim." + dim)));
      div.appendChild(barTable(rows, dim));
      box.appendChild(div);
    }
  }

  async function loadComments() {
    const d = await api("/dashboard/api/comments?" + query({ q: $("q").value.trim(), score: $("score").value, complaint: $("complaint").value }));
    const headers = [t("comments.when"), t("comments.score"), t("comments.text"), t("dim.store"), t("dim.touchpoint"), t("dim.channel"), t("comments.customer"), t("comments.ticket")];
    shown.comments = [headers, ...d.comments.map((c) => [c.answered_at, c.score, c.comment, c.store, c.touchpoint, c.channel, c.customer, c.ticket_id ? "KN-" + String(c.ticket_id).padStart(4, "0") : ""])];
    if (!d.comments.length) { $("comments").replaceChildren(el("p", {}, t("comments.empty"))); return; }
    $("comments").replaceChildren(table(headers, d.comments.map((c) => {
      const who = el("button", { type: "button", class: "link", "data-customer": c.customer_id }, c.customer || t("comments.history"));
      who.setAttribute("aria-label", t("comments.history") + ": " + (c.customer || c.customer_id));
      const ticket = c.ticket_id ? el("a", { href: "/agent#/t/" + c.ticket_id }, "KN-" + String(c.ticket_id).padStart(4, "0")) : "";
      return [c.answered_at, c.score, c.comment, c.store, c.touchpoint, c.channel, who, ticket];
    }), [false, true, false, false, false, false, false, false]));
  }

  async function openCustomer(id) {
    const d = await api("/dashboard/api/customers/" + encodeURIComponent(id));
    const panel = $("customer");
    panel.replaceChildren();
    panel.appendChild(el("h3", {}, t("customer.heading", { name: d.name || d.external_id || "#" + d.id })));
    panel.appendChild(el("h4", {}, t("customer.orders")));
    panel.appendChild(table(["#", t("comments.when"), t("dim.store"), t("dim.touchpoint"), t("comments.score"), t("comments.text")],
      d.orders.map((o) => [o.order_id, o.purchased_at, o.store, o.touchpoint, o.score, o.comment])));
    panel.appendChild(el("h4", {}, t("customer.tickets")));
    panel.appendChild(table(["#", t("comments.when"), t("category"), t("status")],
      d.tickets.map((k) => [el("a", { href: "/agent#/t/" + k.id }, k.number), k.created_at, k.category, k.status])));
    const close = el("button", { type: "button" }, t("customer.close"));
    close.addEventListener("click", () => { panel.hidden = true; });
    panel.appendChild(close);
    panel.hidden = false;
    panel.focus();
  }

  async function loadComplaints() {
    const d = await api("/dashboard/api/complaints?" + query());
    const cards = $("complaint-cards");
    cards.replaceChildren();
    for (const [key, value] of [["complaints.opened", d.opened], ["complaints.resolved", d.resolved],
      ["complaints.first_response", fmt(d.first_response_hours.median) + " / " + fmt(d.first_response_hours.p90)],
      ["complaints.resolution", fmt(d.resolution_hours.median) + " / " + fmt(d.resolution_hours.p90)],
      ["complaints.sla", fmt(d.sla_compliance, "%")], ["complaints.reopen", fmt(d.reopen_rate, "%")]]) {
      const c = el("div", { class: "card" });
      c.appendChild(el("div", {}, t(key)));
      c.appendChild(el("div", { class: "value" }, value));
      cards.appendChild(c);
    }
    const days = d.over_time.map((x) => x.day);
    const max = Math.max(4, ...d.over_time.map((x) => Math.max(x.opened, x.resolved, x.open)));
    lineChart($("complaints-chart"), days, [
      { values: d.over_time.map((x) => x.open), cls: "line" },
      { values: d.over_time.map((x) => x.opened), cls: "line b" },
      { values: d.over_time.map((x) => x.resolved), cls: "line c" },
    ], max, t("complaints.chart"));
    const headers = [t("csat.period"), t("complaints.opened"), t("complaints.resolved"), t("complaints.open")];
    shown.complaints = [headers, ...d.over_time.map((x) => [x.day, x.opened, x.resolved, x.open])];
    $("complaints-table").replaceChildren(table(headers, shown.complaints.slice(1), [false, true, true, true]));
    $("categories").replaceChildren(table([t("category"), "#"], d.by_category.map((c) => [c.key, c.count]), [false, true]));
    $("agents").replaceChildren(table([t("complaints.agent"), t("csat.pct"), t("csat.mean"), t("complaints.ratings")],
      d.by_agent.map((a) => [a.name, fmt(a.csat, "%"), fmt(a.mean), a.answers]), [false, true, true, true]));
    $("oldest").replaceChildren(table(["#", t("category"), t("complaints.age")],
      d.oldest_open.map((o) => [el("a", { href: "/agent#/t/" + o.id }, o.number), o.category, o.age_hours]), [false, false, true]));
  }

  async function refresh() {
    try {
      await Promise.all([loadCsat(), loadComments(), loadComplaints()]);
      $("status").textContent = t("updated", { time: new Date().toLocaleTimeString(lang === "vi" ? "vi-VN" : "en-GB") });
    } catch (e) {
      if (e.message !== "session") $("status").textContent = t("error", { message: e.message });
    }
  }

  function csv(name) {
    const rows = shown[name];
    const text = rows.map((r) => r.map((c) => {
      const s = String(c === null || c === undefined ? "" : c);
      return /[",\n;]/.test(s) || /^[=+\-@]/.test(s) ? '"' + s.replace(/"/g, '""').replace(/^([=+\-@])/, "'$1") + '"' : s;
    }).join(",")).join("\r\n");
    const a = el("a", { href: URL.createObjectURL(new Blob(["\ufeff" + text], { type: "text/csv" })), download: `${name}-${$("from").value}-${$("to").value}.csv` });
    document.body.appendChild(a); a.click(); a.remove();
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.title = t("title", { shop: info.shop });
    $("title").textContent = t("title", { shop: info.shop });
    $("whoami").textContent = t("signed_in_as", { name: info.name });
    $("lang").textContent = t("lang.switch");
    document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.getAttribute("data-t")); });
    const store = $("store"), chosen = store.value;
    store.replaceChildren();
    if (info.role === "owner" || info.stores.length > 1) store.appendChild(el("option", { value: "" }, t("store.all")));
    info.stores.forEach((s) => store.appendChild(el("option", { value: s }, s)));
    store.value = chosen;
    if (store.selectedIndex < 0) store.selectedIndex = 0;
  }

  async function start() {
    info = await api("/dashboard/api/session");
    lang = localStorage.getItem("feedbot.dashboard.lang") || info.language;
    $("logout-csrf").value = info.csrf;
    const today = new Date(info.today + "T00:00:00Z");
    $("to").value = info.today;
    $("from").value = new Date(today.getTime() - 29 * 86400000).toISOString().slice(0, 10);
    applyLanguage();
    $("lang").addEventListener("click", () => {
      lang = lang === "vi" ? "en" : "vi";
      localStorage.setItem("feedbot.dashboard.lang", lang);
      $("customer").hidden = true;
      applyLanguage();
      refresh();
    });
    $("controls").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
    for (const id of ["group", "store", "from", "to"]) $(id).addEventListener("change", refresh);
    let typing = null;
    $("q").addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(loadComments, 300); });
    $("comment-filters").addEventListener("submit", (e) => { e.preventDefault(); loadComments(); });
    for (const id of ["score", "complaint"]) $(id).addEventListener("change", loadComments);
    $("comments").addEventListener("click", (e) => {
      const b = e.target.closest("[data-customer]");
      if (b) openCustomer(b.getAttribute("data-customer")).catch((err) => { $("status").textContent = t("error", { message: err.message }); });
    });
    document.querySelectorAll("[data-csv]").forEach((b) => b.addEventListener("click", () => csv(b.getAttribute("data-csv"))));
    await refresh();
    setInterval(() => { if (!document.hidden) refresh(); }, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => { start().catch((e) => { $("status").textContent = String(e.message); }); });
})();
