// Genesis admin dashboard. Plain JavaScript, no build step: served from the binary as written.
// The admin token lives in sessionStorage (this tab only) and goes out as a Bearer header, never
// in a URL. Every value from the server reaches the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "genesis.admin.token";
const TABLES = ["users", "conversations", "messages", "usage_metrics", "conversation_cache",
  "message_cache", "cache_content_mapping", "cache_migrations", "cache_metrics", "cache_embeddings"];
const $ = (id) => document.getElementById(id);
let timer = null;

// ---- small helpers -------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const when = (t) => (t ? new Date(t).toLocaleString() : "—");
const short = (s, n = 12) => (s && s.length > n ? s.slice(0, n) + "…" : s || "—");
const badge = (word) => el("span", { class: "badge " + word }, word);

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

// One request to Genesis. `auth`: "admin" (the signed-in token), a header object, or none.
async function api(path, { method = "GET", body, headers = {}, admin = true } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (admin) h.Authorization = "Bearer " + sessionStorage.getItem(TOKEN_KEY);
  if (body !== undefined) h["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = (data && data.error) || {};
    if (admin && resp.status === 401) signOut(e.message || "The admin token was not accepted.");
    throw new ApiError(resp.status, e.code || "http_" + resp.status, e.message || resp.statusText);
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

// ---- sign-in and views ---------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("signin-error").textContent = message || "";
  show("signin");
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("/v1/admin/stats");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent = e.status === 404
      ? "The admin API is off: start Genesis with GENESIS__ADMIN__TOKEN set."
      : e.status === 401 ? "That admin token is not the one Genesis was started with."
      : "Could not sign in: " + e.message;
    return;
  }
  $("signin-error").textContent = "";
  $("token").value = "";
  if (!location.hash || location.hash === "#signin") location.hash = "#overview";
  route();
}

function show(name) {
  clearInterval(timer);
  timer = null;
  const signedIn = !!sessionStorage.getItem(TOKEN_KEY);
  $("nav").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + name;
  for (const a of document.querySelectorAll("#nav a")) {
    const here = a.dataset.view === name || (name === "guest" && a.dataset.view === "guests");
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = "Genesis admin — " + (name === "signin" ? "sign in" : name);
}

function every(ms, fn) {
  fn();
  timer = setInterval(fn, ms);
}

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { show("signin"); $("token").focus(); return; }
  const [name, arg] = location.hash.replace(/^#/, "").split("/");
  switch (name) {
    case "guests": show("guests"); loadGuests(false); break;
    case "guest": show("guest"); every(3000, () => loadGuest(decodeURIComponent(arg || ""))); break;
    case "migrations": show("migrations"); loadMigrations(); break;
    case "verify": show("verify"); break;
    case "try": show("try"); startTry(); break;
    default: show("overview"); every(3000, loadOverview);
  }
}

// ---- overview ------------------------------------------------------------------------------

async function loadOverview() {
  let stats, live;
  try {
    [stats, live] = await Promise.all([api("/v1/admin/stats"), api("/v1/admin/live")]);
  } catch (e) {
    $("overview-status").textContent = "Could not refresh: " + e.message;
    return;
  }
  $("overview-status").textContent = "Updated " + new Date().toLocaleTimeString() + " · up " +
    Math.floor(stats.uptime_secs / 60) + " min";
  $("tables").replaceChildren(...TABLES.map((t) => {
    const n = stats.tables[t] ?? 0;
    const why = stats.empty && stats.empty[t];
    return el("li", { class: n === 0 ? "zero" : "", "data-table": t },
      el("span", { class: "name" }, t),
      el("span", { class: "count" }, n.toLocaleString()),
      n === 0 ? el("span", { class: "why" }, why ? "Empty: " + why : "Empty") : null);
  }));
  const last = live.samples[live.samples.length - 1] || {};
  const facts = [
    ["Hot cache (L1)", stats.l1.backend + " · " + stats.l1.state],
    ["L1 hit ratio", (stats.l1.hit_ratio * 100).toFixed(1) + " %"],
    ["Embeddings", stats.embeddings.provider + (stats.embeddings.model ? " · " + stats.embeddings.model : "")],
    ["Embedding backlog", stats.embeddings.backlog],
    ["Writer queue", last.writer_queue ?? 0],
    ["Writer batch (mean jobs)", last.writer_batch != null ? last.writer_batch.toFixed(1) : "—"],
  ];
  $("layers-summary").replaceChildren(...facts.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
  drawCharts(live);
}

const CHARTS = [
  { title: "Requests per second", unit: "/s", series: [["requests", "requests_per_sec"], ["5xx", "errors_per_sec"]] },
  { title: "Latency", unit: " ms", series: [["p50", "p50_ms"], ["p95", "p95_ms"], ["p99", "p99_ms"]] },
  { title: "Writer queue and batch size", unit: "", series: [["queued jobs", "writer_queue"], ["jobs per batch", "writer_batch"]] },
  { title: "Embedding backlog", unit: "", series: [["messages waiting", "embedding_backlog"]] },
  { title: "L1 hit ratio", unit: " %", scale: 100, series: [["hit ratio", "l1_hit_ratio"]] },
];

function drawCharts(live) {
  const samples = live.samples;
  $("charts").replaceChildren(...CHARTS.map((c) => chart(c, samples, live.interval_secs)));
}

function fmt(v) {
  if (v == null || Number.isNaN(v)) return "—";
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString() : (+v.toFixed(2)).toString();
}

function chart(spec, samples, interval) {
  const W = 360, H = 110, pad = 26, scale = spec.scale || 1;
  const values = spec.series.map(([, key]) => samples.map((s) => (s[key] == null ? null : s[key] * scale)));
  const max = Math.max(1, ...values.flat().filter((v) => v != null)) * 1.1;
  const span = Math.max(samples.length - 1, 1);
  const x = (i) => pad + (i / span) * (W - pad - 4);
  const y = (v) => H - 14 - (v / max) * (H - 22);
  const nowText = spec.series.map(([label], i) => label + " " + fmt(values[i][values[i].length - 1]) + spec.unit).join(" · ");
  const graph = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${spec.title}, last ${samples.length} samples: ${nowText}`, preserveAspectRatio: "none" });
  for (const f of [0, 0.5, 1]) {
    graph.append(svg("line", { class: "grid", x1: pad, x2: W - 4, y1: y(max * f / 1.1), y2: y(max * f / 1.1) }));
    graph.append(svg("text", { class: "axis", x: 0, y: y(max * f / 1.1) + 3 }, fmt(max * f / 1.1)));
  }
  graph.append(svg("text", { class: "axis", x: pad, y: H - 2 }, `−${Math.round(span * interval)} s`));
  graph.append(svg("text", { class: "axis", x: W - 30, y: H - 2 }, "now"));
  values.forEach((vals, i) => {
    const points = vals.map((v, j) => (v == null ? null : `${x(j).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    if (points.length) graph.append(svg("polyline", { class: "s" + i, points: points.join(" ") }));
  });
  return el("figure", { class: "chart" },
    el("figcaption", {}, el("span", {}, spec.title), el("span", { class: "now muted" }, samples.length ? "" : "waiting for samples…")),
    graph,
    el("div", { class: "legend" }, spec.series.map(([label], i) =>
      el("span", { class: "k" + i }, label + ": " + fmt(values[i][values[i].length - 1]) + spec.unit))));
}

// ---- guests --------------------------------------------------------------------------------

let guestCursor = null;

async function loadGuests(more) {
  const body = $("guest-table").tBodies[0];
  if (!more) { body.replaceChildren(); guestCursor = null; }
  const page = await api("/v1/admin/guests" + query({
    q: $("guest-q").value.trim(), status: $("guest-status").value, limit: 50, cursor: more ? guestCursor : "",
  })).catch((e) => ({ guests: [], error: e }));
  for (const g of page.guests) {
    const open = () => { location.hash = "#guest/" + encodeURIComponent(g.guest_id); };
    body.append(el("tr", { tabindex: 0, "data-guest": g.guest_id, onclick: open,
      onkeydown: (e) => { if (e.key === "Enter") open(); } },
      el("td", {}, el("a", { href: "#guest/" + encodeURIComponent(g.guest_id), class: "mono" }, g.guest_id)),
      el("td", {}, badge(g.status)),
      el("td", {}, g.messages + (g.conversations > 1 ? ` (${g.conversations} conversations)` : "")),
      el("td", {}, when(g.created_at)), el("td", {}, when(g.last_activity_at)),
      el("td", {}, when(g.expires_at)), el("td", { class: "mono" }, g.migrated_to || "—")));
  }
  guestCursor = page.next_cursor || null;
  $("guests-more").hidden = !guestCursor;
  $("guests-empty").hidden = body.rows.length > 0;
}

async function loadGuest(id) {
  $("guest-title").textContent = "Guest " + id;
  try {
    renderLayers($("guest-inspector"), await api("/v1/admin/guests/" + encodeURIComponent(id) + "/layers"));
  } catch (e) {
    $("guest-inspector").replaceChildren(el("p", { class: "error" }, e.message));
  }
}

// The layer picture: the hot cache, the cache tables, the ledger, vectors, usage, migration.
function renderLayers(into, v) {
  const layer = (cls, on, title, big, ...lines) => el("section", { class: `layer ${cls} ${on ? "on" : "off"}`, "aria-label": title },
    el("h3", {}, title), el("p", { class: "big" }, big), ...lines.map((l) => el("p", {}, l)));
  const m = v.migration;
  const boxes = [
    layer("l1", v.l1.present, "L1 · hot cache", v.l1.present ? v.l1.messages + " messages" : "not cached",
      v.l1.ttl_secs != null ? "TTL " + v.l1.ttl_secs + " s" : "no TTL reported"),
    layer("l2", !!v.l2, "L2 · cache tables", v.l2 ? v.l2.messages + " messages" : "deleted",
      v.l2 ? "conversation " + short(v.l2.conversation_id, 8) : "", v.l2 ? "expires " + when(v.l2.expires_at) : ""),
    layer("map", v.mapping.rows > 0, "Content mapping", v.mapping.rows + " rows", v.mapping.synced + " synced into an account"),
    layer("emb", v.embeddings > 0, "Embeddings", v.embeddings + " vectors"),
    layer("use", !!v.usage, "Usage", v.usage ? v.usage.total_requests + " requests" : "not flushed yet",
      v.usage ? v.usage.messages_stored + " messages stored · " + v.usage.tier : ""),
    layer("main", !!m, "Migration", m ? m.status : "not migrated",
      m ? "to user " + short(m.user_id, 8) : "", m ? m.messages_migrated + " messages · " + m.conversations_migrated + " conversation(s)" : "",
      m && m.checksum ? "checksum " + short(m.checksum, 16) : ""),
  ];
  const messages = v.messages.length
    ? el("ol", { class: "messages" }, v.messages.map((msg) => el("li", {},
        el("span", { class: "role" }, msg.role), "#" + msg.sequence + " ", msg.content)))
    : el("p", { class: "muted" }, "No messages in the cache tables.");
  into.replaceChildren(el("div", { class: "layers" }, boxes), el("h3", {}, "Messages (cache tables)"), messages);
}

// ---- migrations and verify -------------------------------------------------------------------

async function loadMigrations() {
  const f = new FormData($("migration-filter"));
  const iso = (v) => (v ? new Date(v).toISOString() : "");
  $("migrations-error").textContent = "";
  let list;
  try {
    list = await api("/v1/admin/migrations" + query({
      guest_id: f.get("guest_id").trim(), user_id: f.get("user_id").trim(), status: f.get("status"),
      since: iso(f.get("since")), until: iso(f.get("until")),
    }));
  } catch (e) {
    $("migrations-error").textContent = e.message;
    return;
  }
  $("migration-table").tBodies[0].replaceChildren(...list.migrations.map((m) =>
    el("tr", { class: m.status === "failed" ? "failed" : "" },
      el("td", {}, when(m.started_at)), el("td", {}, badge(m.status), m.error ? " " + m.error : ""),
      el("td", {}, el("a", { href: "#guest/" + encodeURIComponent(m.guest_id), class: "mono" }, m.guest_id)),
      el("td", { class: "mono" }, m.user_id), el("td", {}, m.conversations_migrated),
      el("td", {}, m.messages_migrated), el("td", { class: "mono", title: m.checksum || "" }, short(m.checksum, 16)))));
  $("migrations-empty").hidden = list.migrations.length > 0;
}

async function runVerify() {
  const button = $("verify-run");
  button.disabled = true;
  $("verify-summary").textContent = "Running…";
  try {
    const r = await api("/v1/admin/verify");
    $("verify-summary").replaceChildren(badge(r.ok ? "ok" : "bad"), r.ok ? " Every check passed." : " Some checks failed.");
    $("verify-checks").replaceChildren(...r.checks.map((c) => el("li", { class: c.ok ? "ok" : "bad" },
      el("span", { class: "name" }, c.name), " ", badge(c.ok ? "ok" : "bad"), el("br"), c.detail)));
  } catch (e) {
    $("verify-summary").textContent = "Could not verify: " + e.message;
  } finally {
    button.disabled = false;
  }
}

// ---- try it --------------------------------------------------------------------------------

const trial = { guestId: null, guestToken: null, access: null, conversation: null };

function startTry() {
  if (!$("try-email").value) $("try-email").value = "try-" + Math.random().toString(36).slice(2, 10) + "@example.com";
  if (!$("try-password").value) $("try-password").value = "try-" + Math.random().toString(36).slice(2, 14);
  every(1500, refreshTry);
}

async function refreshTry() {
  if (trial.guestId) {
    try {
      renderLayers($("try-inspector"), await api("/v1/admin/guests/" + encodeURIComponent(trial.guestId) + "/layers"));
    } catch (e) { /* the next tick tries again */ }
  }
}

async function sendTry(role) {
  const text = $("try-text").value;
  if (!text.trim()) return;
  $("try-error").textContent = "";
  try {
    if (trial.access) {
      await api(`/v1/conversations/${trial.conversation}/messages`, { method: "POST", admin: false,
        headers: { Authorization: "Bearer " + trial.access }, body: { role, content: text } });
    } else {
      if (!trial.guestId) {
        const s = await api("/v1/guest/sessions", { method: "POST", admin: false });
        trial.guestId = s.guest_id;
        trial.guestToken = s.guest_token;
        $("try-who").replaceChildren("Guest ", el("span", { class: "mono" }, s.guest_id));
      }
      await api("/v1/guest/chat/" + encodeURIComponent(trial.guestId), { method: "POST", admin: false,
        headers: { "X-Guest-Token": trial.guestToken }, body: { role, content: text } });
    }
    $("try-log").append(el("li", { class: role }, el("span", { class: "sr" }, role + ": "), text));
    $("try-text").value = "";
    refreshTry();
  } catch (e) {
    $("try-error").textContent = e.message;
  }
}

async function signUpTry() {
  $("try-error").textContent = "";
  if (!trial.guestId) { $("try-error").textContent = "Send a message as a guest first."; return; }
  if (trial.access) { $("try-error").textContent = "This guest has signed up already."; return; }
  try {
    const s = await api("/v1/auth/signup", { method: "POST", admin: false, body: {
      email: $("try-email").value, password: $("try-password").value,
      guest_id: trial.guestId, guest_token: trial.guestToken } });
    trial.access = s.access_token;
    trial.conversation = s.migration && s.migration.conversation_ids[0];
    const moved = s.migration ? s.migration.messages_migrated : 0;
    $("try-who").replaceChildren("Signed up as ", el("span", { class: "mono" }, s.user.email),
      ` — ${moved} message(s) moved into the account; the chat carries on there.`);
    refreshTry();
  } catch (e) {
    $("try-error").textContent = e.message;
  }
}

// ---- wiring --------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => { signOut(""); location.hash = ""; });
  $("guest-filter").addEventListener("submit", (e) => { e.preventDefault(); loadGuests(false); });
  $("guests-more").addEventListener("click", () => loadGuests(true));
  $("migration-filter").addEventListener("submit", (e) => { e.preventDefault(); loadMigrations(); });
  $("verify-run").addEventListener("click", runVerify);
  $("try-form").addEventListener("submit", (e) => { e.preventDefault(); sendTry(e.submitter ? e.submitter.value : "user"); });
  $("try-signup").addEventListener("submit", (e) => { e.preventDefault(); signUpTry(); });
  window.addEventListener("hashchange", route);
  route();
});
