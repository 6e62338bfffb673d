// The programs page: each program's figures, the journey view, CSAT per staff member, and
// (owners) the programs' editing. Text only ever goes in with textContent.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const strings = JSON.parse($("strings").textContent);
  let lang = document.documentElement.lang === "en" ? "en" : "vi", csrf = "";
  const t = (key, params) => {
    let s = (strings[lang] || strings.vi)[key] || key;
    for (const [k, v] of Object.entries(params || {})) s = s.replace("{" + k + "}", v === null || v === undefined ? t("none") : v);
    return s;
  };
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const show = (v) => (v === null || v === undefined ? t("none") : String(v));
  async function call(path, body) {
    const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = csrf;
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    if (r.status === 401) { location.assign("/login?next=/dashboard/programs"); throw new Error("session"); }
    const data = await r.json();
    if (!r.ok) throw new Error(data.error ? data.error.message : String(r.status));
    return data;
  }
  function table(headers, rows) {
    const tb = el("table"), head = el("tr");
    headers.forEach((h) => head.appendChild(el("th", { scope: "col" }, h)));
    tb.appendChild(el("thead")).appendChild(head);
    const body = tb.appendChild(el("tbody"));
    rows.forEach((r) => { const tr = body.appendChild(el("tr")); r.forEach((c) => tr.appendChild(el("td", {}, show(c)))); });
    const wrap = el("div", { class: "scroll" });
    wrap.appendChild(tb);
    return wrap;
  }
  const stage = (s) => t("stage." + (s || "none"));
  const category = (c) => t("category." + c);
  function query() {
    const p = new URLSearchParams();
    if ($("from").value) p.set("from", $("from").value);
    if ($("to").value) p.set("to", $("to").value);
    if ($("store").value.trim()) p.set("store", $("store").value.trim());
    return p.toString();
  }
  function score(p) {
    if (p.nps) return t("figures.nps", p.nps);
    if (p.ces) return t("figures.ces", p.ces);
    if (p.csat) return t("figures.csat", p.csat);
    return "";
  }
  async function load() {
    const q = query();
    try {
      const [figures, journey, staff] = await Promise.all([
        call("/dashboard/api/programs/figures?" + q), call("/dashboard/api/journey?" + q), call("/dashboard/api/staff?" + q)]);
      $("figures").replaceChildren(figures.programs.length ? table(
        [t("figures.program"), t("figures.kind"), t("figures.answers"), t("figures.score"), t("figures.detail")],
        figures.programs.map((p) => [p.name, p.kind, p.answers, score(p), p.choices.slice(0, 5).map((c) => c.key + " (" + c.count + ")").join(", ")]))
        : el("p", {}, t("figures.empty")));
      $("drop").textContent = journey.drop_started_at !== null ? t("journey.drop", { stage: stage(journey.drop_started_at) }) : t("journey.no_drop");
      $("journey").replaceChildren(table(
        [t("journey.stage"), t("journey.csat"), t("journey.previous"), t("journey.answers"), t("journey.complaints"), t("journey.categories")],
        journey.stages.map((s) => [stage(s.stage), s.csat, s.previous_csat, s.answers, s.complaints,
          s.categories.map((c) => category(c.key) + " (" + c.count + ")").join(", ")])));
      $("staff").replaceChildren(table(
        [t("staff.name"), t("staff.store"), t("staff.csat"), t("staff.mean"), t("staff.answers")],
        staff.staff.map((r) => [r.staff, r.store, r.csat, r.mean, r.answers])));
      $("status").textContent = "";
    } catch (e) { $("status").textContent = e.message; }
    try { drawPrograms(await call("/dashboard/api/programs")); } catch (e) { $("editing").hidden = true; }
  }
  const LISTS = ["touchpoints", "stores", "tiers", "channels"];
  function field(form, key, label, value) {
    const lab = el("label", {}, label + " ");
    const input = el("input", { type: "text", name: key });
    input.value = value === undefined || value === null ? "" : String(value);
    lab.appendChild(input);
    form.appendChild(lab);
  }
  function drawPrograms(data) {
    csrf = data.csrf;
    $("editing").hidden = false;
    const box = $("programs");
    box.replaceChildren();
    data.programs.forEach((p) => {
      const form = el("form", { class: "controls", "data-program": p.name });
      form.appendChild(el("h3", {}, p.name + " · " + p.kind + " · " + p.trigger));
      form.appendChild(el("p", {}, p.edited_by ? t("edit.edited", { by: p.edited_by, at: p.edited_at }) : t("edit.from_config")));
      const on = el("input", { type: "checkbox", name: "enabled" });
      on.checked = p.enabled;
      const lab = el("label", {}, t("edit.enabled") + " ");
      lab.appendChild(on);
      form.appendChild(lab);
      const e = p.effective;
      if (p.trigger === "after_purchase" || p.trigger === "complaint_resolved") field(form, "delay", t("edit.delay"), e.delay);
      if (p.trigger === "days_after_purchase") field(form, "days", t("edit.days"), e.days);
      if (p.trigger === "every") field(form, "every_days", t("edit.every_days"), e.every_days);
      LISTS.forEach((k) => field(form, k, t("edit." + k), (e[k] || []).join(", ")));
      ["vi", "en"].forEach((l) => {
        field(form, l + ".question", t("edit.question", { lang: l }), (e[l] || {}).question);
        field(form, l + ".thanks", t("edit.thanks", { lang: l }), (e[l] || {}).thanks);
      });
      const save = el("button", { type: "submit" }, t("edit.save"));
      const reset = el("button", { type: "button" }, t("edit.reset"));
      const said = el("p", { role: "status" });
      form.append(save, reset, said);
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const changes = {};
        for (const input of form.querySelectorAll("input[type=text]")) {
          const v = input.value.trim(), k = input.name;
          if (LISTS.includes(k)) changes[k] = v ? v.split(",").map((x) => x.trim()).filter(Boolean) : [];
          else if (k.includes(".")) {
            const [l, key] = k.split(".");
            if (v) { changes[l] = Object.assign({}, (e[l] || {}), changes[l] || {}); changes[l][key] = v; }
          } else if (v) changes[k] = (k === "delay") ? v : Number(v);
        }
        try { drawPrograms(Object.assign(await call("/dashboard/api/programs/" + p.name, { enabled: on.checked, changes }), { csrf })); said.textContent = t("edit.saved"); }
        catch (err) { said.textContent = err.message; }
      });
      reset.addEventListener("click", async () => {
        try { drawPrograms(Object.assign(await call("/dashboard/api/programs/" + p.name + "/reset", {}), { csrf })); }
        catch (err) { said.textContent = err.message; }
      });
      box.appendChild(form);
    });
  }
  function translate() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = t(n.getAttribute("data-t")); });
    $("lang").textContent = t("lang.switch");
  }
  $("lang").addEventListener("click", () => { lang = lang === "vi" ? "en" : "vi"; translate(); load(); });
  $("controls").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  translate();
  load();
})();
