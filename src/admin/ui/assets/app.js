// stripe-hookd inspector: vanilla JS, hash routes, no build step.
// The admin token is sent once, to POST /ui/login, and never stored: the
// session is an HttpOnly cookie; state-changing calls send X-CSRF-Token.
"use strict";

const $ = (sel) => document.querySelector(sel);
let csrf = null;
let stream = null;
let timers = [];
let viewToken = 0;

// ---- DOM helpers ---------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

function time(ms) {
  if (ms === null || ms === undefined) return h("span", { class: "muted" }, "—");
  const d = new Date(ms);
  return h("time", { datetime: d.toISOString(), title: d.toISOString().replace("T", " ").replace(".000Z", " UTC").replace("Z", " UTC") },
    d.toLocaleString());
}

function secs(s) {
  if (s === null || s === undefined) return "—";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function badge(status) {
  return h("span", { class: "badge s-" + status }, status);
}

function table(head, rows, empty) {
  if (!rows.length) return h("p", { class: "muted" }, empty || "None.");
  return h("div", { class: "scroll" }, h("table", {},
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows)));
}

function say(text, isError) {
  const s = $("#status");
  s.textContent = text || "";
  s.className = "statusline" + (isError ? " error" : "");
}

// ---- API -------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || ("HTTP " + status));
    this.status = status;
    this.reason = body && body.error && body.error.reason;
  }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["X-CSRF-Token"] = csrf || "";
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, {
    method, headers, credentials: "same-origin", cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (res.status === 401 && path !== "/ui/login") { signedOut(); }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// ---- sign-in ----------------------------------------------------------------
function signedOut() {
  csrf = null;
  stopTimers();
  if (stream) { stream.close(); stream = null; }
  $("#nav").hidden = true;
  $("#health").hidden = true;
  $("#view").hidden = true;
  $("#view").replaceChildren();
  $("#signin").hidden = false;
  $("#token").focus();
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $("#token");
  const err = $("#signin-error");
  err.textContent = "";
  try {
    const data = await api("POST", "/ui/login", { token: input.value });
    input.value = "";
    csrf = data.csrf_token;
    signedIn();
  } catch (e) {
    input.value = "";
    err.textContent = e.status === 401 ? "Wrong token." : e.message;
    input.focus();
  }
}

async function signOut() {
  try { await api("POST", "/ui/logout"); } catch (_) { /* signed out anyway */ }
  location.hash = "#/events";
  signedOut();
}

// Ends every session (other browsers too), then this page's.
async function signOutEverywhere() {
  try { await api("POST", "/ui/logout-everywhere"); } catch (_) { /* signed out anyway */ }
  location.hash = "#/events";
  signedOut();
}

function signedIn() {
  $("#signin").hidden = true;
  $("#nav").hidden = false;
  $("#view").hidden = false;
  $("#health").hidden = false;
  openStream();
  health();
  route();
}

// ---- live stream -------------------------------------------------------------
const listeners = new Set();
function openStream() {
  if (stream) stream.close();
  stream = new EventSource("/ui/stream");
  stream.addEventListener("event", (m) => {
    let row = null;
    try { row = JSON.parse(m.data); } catch (_) { return; }
    for (const fn of listeners) fn(row);
  });
  // The server ends the stream when its session ended (sign-out
  // elsewhere, expiry, a rotated admin token).
  stream.addEventListener("signed_out", () => signedOut());
  stream.addEventListener("open", () => {
    document.body.classList.remove("offline");
    // How many times the stream (re)connected: shown to tests, harmless.
    document.body.dataset.streamOpens = String(Number(document.body.dataset.streamOpens || 0) + 1);
  });
  stream.addEventListener("error", () => {
    document.body.classList.add("offline");
    // A closed stream (401 after the session ended) does not retry by itself.
    if (stream && stream.readyState === EventSource.CLOSED) {
      setTimeout(() => { if (csrf !== null) openStream(); }, 2000);
    }
  });
}

// ---- timers per view -----------------------------------------------------------
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; listeners.clear(); }

// ---- health strip ------------------------------------------------------------------
let healthTimer = null;
async function health() {
  clearTimeout(healthTimer);
  if (csrf === null) return;
  try {
    const d = await api("GET", "/ui/health");
    const parts = [];
    for (const [s, n] of Object.entries(d.outbox)) {
      parts.push(h("span", { class: "chip" }, badge(s), " ", String(n)));
    }
    parts.push(h("span", { class: "chip", title: "processing lag of the last " + d.lag_ms.of + " events" },
      "lag p50 ", secs(d.lag_ms.p50 === null ? null : d.lag_ms.p50 / 1000),
      " · p99 ", secs(d.lag_ms.p99 === null ? null : d.lag_ms.p99 / 1000)));
    parts.push(h("span", { class: "chip" }, "oldest pending ", secs(d.oldest_pending_secs)));
    for (const [ep, s] of Object.entries(d.since_verified_secs)) {
      parts.push(h("span", { class: "chip", title: "since the last verified event on endpoint " + ep }, ep, " ", secs(s)));
    }
    const rate = d.stripe_api.error_rate;
    parts.push(h("span", { class: "chip" + (rate > 0.05 ? " warn" : "") },
      "Stripe API errors ", rate === null ? "—" : (rate * 100).toFixed(1) + "% of " + d.stripe_api.calls));
    const b = d.stripe_api.budget;
    if (b) {
      const lowered = b.in_use < b.budget;
      parts.push(h("span", { class: "chip" + (lowered ? " warn" : ""),
        title: lowered ? "rate lowered after Stripe answered 429, " + Math.round(b.since_rate_limited_secs) + " s ago; it recovers over minutes"
                       : "Stripe API requests per second in use, of the budget (stripe.requests_per_sec)" },
        "Stripe ", String(Math.round(b.in_use)), "/", String(Math.round(b.budget)), " req/s · ",
        b.latency_secs === null ? "—" : Math.round(b.latency_secs * 1000) + " ms",
        " · ", String(b.in_flight), " in flight"));
    }
    for (const [dest, by] of Object.entries(d.destinations)) {
      parts.push(h("span", { class: "chip" + (by.dead ? " warn" : "") }, "→ " + dest + " ",
        Object.entries(by).map(([s, n]) => s + " " + n).join(", ")));
    }
    $("#health").replaceChildren(...parts);
  } catch (_) { /* shown as stale */ }
  healthTimer = setTimeout(health, 5000);
}

// ---- router -----------------------------------------------------------------------
function route() {
  if (csrf === null) return;
  stopTimers();
  const token = ++viewToken;
  const [_, name, ...rest] = (location.hash || "#/events").split("/");
  const arg = rest.map(decodeURIComponent).join("/");
  const view = $("#view");
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  say("");
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.getAttribute("href") === "#/" + name);
  }
  const views = { events: eventsView, event: eventView, dead: deadView, object: objectView, sweep: sweepView };
  (views[name] || eventsView)(view, arg, () => token === viewToken);
}

function link(href, text) { return h("a", { href }, text); }
function eventLink(id) { return link("#/event/" + encodeURIComponent(id), id); }
function objectLink(id) { return id ? link("#/object/" + encodeURIComponent(id), id) : h("span", { class: "muted" }, "—"); }

// An inline "are you sure" next to a button: Yes runs `action`.
function confirmed(label, question, action, cls) {
  const box = h("span", { class: "confirm" });
  const btn = h("button", { type: "button", class: cls || "", onclick: () => {
    const yes = h("button", { type: "button", class: "danger", onclick: async () => {
      box.replaceChildren(btn);
      await action();
    } }, "Yes, " + label.toLowerCase());
    const no = h("button", { type: "button", onclick: () => { box.replaceChildren(btn); btn.focus(); } }, "Cancel");
    box.replaceChildren(h("span", {}, question + " "), yes, " ", no);
    yes.focus();
  } }, label);
  box.append(btn);
  return box;
}

// ---- live events -------------------------------------------------------------------
const STATUSES = ["", "pending", "processing", "done", "ignored", "dead", "discarded"];
let eventsFilter = { type: "", status: "", object: "", since: "", until: "" };

function eventsView(view, _arg, current) {
  const f = eventsFilter;
  const input = (name, label, type, extra) => h("label", {}, label,
    h("input", Object.assign({ name, type: type || "text", value: f[name] }, extra || {})));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    for (const k of Object.keys(eventsFilter)) eventsFilter[k] = String(fd.get(k) || "").trim();
    pages = 1;
    load();
  } },
    input("type", "Type prefix", "text", { placeholder: "invoice." }),
    h("label", {}, "Status", h("select", { name: "status" },
      STATUSES.map((s) => h("option", { value: s, selected: s === f.status }, s || "any")))),
    input("object", "Object id", "text", { placeholder: "sub_…" }),
    input("since", "From", "datetime-local"),
    input("until", "Until", "datetime-local"),
    h("button", { type: "submit" }, "Filter"));
  const list = h("div", { id: "events" });
  view.replaceChildren(h("h1", {}, "Live events ", h("span", { class: "live", title: "new events appear as they arrive" }, "●")), form, list);

  let shown = "";
  let pages = 1;
  async function load() {
    const q = new URLSearchParams();
    if (f.type) q.set("type", f.type);
    if (f.status) q.set("status", f.status);
    if (f.object) q.set("object", f.object);
    if (f.since) q.set("since", String(new Date(f.since).getTime()));
    if (f.until) q.set("until", String(new Date(f.until).getTime()));
    q.set("limit", String(Math.min(500, 100 * pages)));
    try {
      const d = await api("GET", "/ui/events?" + q);
      if (!current()) return;
      const key = JSON.stringify(d.events);
      if (key === shown) return;
      shown = key;
      list.replaceChildren(...[table(["Event", "Type", "Object", "Status", "Attempts", "Received"],
        d.events.map((e) => h("tr", { "data-event": e.event_id },
          h("td", {}, eventLink(e.event_id)), h("td", {}, e.event_type), h("td", {}, objectLink(e.object_id)),
          h("td", {}, badge(e.status)), h("td", { class: "num" }, String(e.attempts)), h("td", {}, time(e.received_at)))),
        "No events match."),
        d.events.length === 100 * pages && pages < 5
          ? h("button", { type: "button", onclick: () => { pages += 1; load(); } }, "Show older")
          : null].filter(Boolean));
    } catch (e) { if (current()) say(e.message, true); }
  }
  let pending = null;
  listeners.add(() => { if (!pending) pending = setTimeout(() => { pending = null; load(); }, 100); });
  every(3000, load);
  load();
}

// ---- one event ------------------------------------------------------------------------
function eventView(view, id, current) {
  let shown = "";
  async function load() {
    let d, dl;
    try {
      [d, dl] = await Promise.all([
        api("GET", "/v1/events/" + encodeURIComponent(id)),
        api("GET", "/ui/events/" + encodeURIComponent(id) + "/deliveries"),
      ]);
    } catch (e) {
      if (current()) view.replaceChildren(h("h1", {}, id), h("p", { class: "error" }, e.message));
      return;
    }
    if (!current()) return;
    const key = JSON.stringify([d, dl]);
    if (key === shown) return;
    shown = key;
    const ev = d.event;
    let headers = ev.headers;
    try { headers = JSON.stringify(JSON.parse(ev.headers), null, 2); } catch (_) { /* raw */ }
    const actions = h("div", { class: "actions" },
      confirmed("Replay", "Re-queue " + ev.event_id + "?", async () => {
        try { await api("POST", "/v1/events/" + encodeURIComponent(id) + "/replay"); say("Replay queued."); load(); } catch (e) { say(e.message, true); }
      }),
      ev.object_id ? confirmed("Resync", "Fetch " + ev.object_id + " from Stripe now?", async () => {
        try { const r = await api("POST", "/v1/resync/" + encodeURIComponent(ev.object_id)); say("Resynced: " + r.written.join(", ")); } catch (e) { say(e.message, true); }
      }) : null);
    const attempts = d.attempts.map((a) => h("tr", { class: "attempt" },
      h("td", { class: "num" }, "#" + a.attempt), h("td", {}, time(a.started_at)),
      h("td", { class: "num" }, a.finished_at ? secs((a.finished_at - a.started_at) / 1000) : "running"),
      h("td", {}, a.outcome ? badge(a.outcome) : "—"), h("td", {}, a.worker),
      h("td", { class: "err" }, a.error || "")));
    const deliveries = dl.deliveries.map((x) => h("tr", {},
      h("td", {}, x.destination), h("td", {}, badge(x.status)), h("td", { class: "num" }, String(x.attempts)),
      h("td", {}, x.last_status === null ? "—" : String(x.last_status)), h("td", {}, time(x.delivered_at)),
      h("td", { class: "err" }, x.last_error || "")));
    view.replaceChildren(
      h("h1", {}, ev.event_type, " ", badge(ev.status)),
      h("dl", { class: "facts" },
        h("dt", {}, "Event"), h("dd", { id: "event-id" }, ev.event_id),
        h("dt", {}, "Object"), h("dd", {}, objectLink(ev.object_id), ev.object_type ? " (" + ev.object_type + ")" : ""),
        h("dt", {}, "Endpoint"), h("dd", {}, ev.endpoint),
        h("dt", {}, "Matched secret"), h("dd", {}, "#" + ev.secret_index + (ev.secret_index === 0 ? " (newest)" : " (an older one, rolling)")),
        h("dt", {}, "Mode"), h("dd", {}, ev.livemode ? "live" : "test"),
        h("dt", {}, "API version"), h("dd", {}, ev.api_version || "—"),
        h("dt", {}, "Received"), h("dd", {}, time(ev.received_at)),
        h("dt", {}, "Processed"), h("dd", {}, time(ev.processed_at)),
        ev.last_error ? [h("dt", {}, "Last error"), h("dd", { class: "err" }, ev.last_error)] : null),
      actions,
      h("h2", {}, "Attempts"),
      h("div", { id: "attempts" }, table(["#", "Started", "Took", "Outcome", "Worker", "Error"], attempts, "No attempt yet.")),
      h("h2", {}, "Deliveries"),
      table(["Destination", "Status", "Attempts", "Answer", "Delivered", "Error"], deliveries, "Not forwarded."),
      h("h2", {}, "Payload"),
      h("pre", { id: "payload", class: "code", tabindex: "0" }, JSON.stringify(d.payload, null, 2)),
      h("details", {}, h("summary", {}, "Raw body, byte for byte"), h("pre", { class: "code", tabindex: "0" }, ev.payload)),
      h("h2", {}, "Kept headers"),
      h("pre", { class: "code", tabindex: "0" }, headers));
  }
  every(1000, load);
  load();
}

// ---- dead letters ---------------------------------------------------------------------------
function deadView(view, _arg, current) {
  const list = h("div", { id: "dead" });
  view.replaceChildren(h("h1", {}, "Dead letters"), list);
  let shown = "";
  async function load(force) {
    let d;
    try { d = await api("GET", "/v1/dead?limit=500"); } catch (e) { say(e.message, true); return; }
    if (!current()) return;
    const key = JSON.stringify(d.events);
    if (key === shown && !force) return;
    shown = key;
    list.replaceChildren(table(["Event", "Type", "Object", "Attempts", "Last error", ""],
      d.events.map((e) => {
        const reason = h("input", { type: "text", placeholder: "reason", "aria-label": "Reason to discard " + e.event_id, class: "reason" });
        return h("tr", { "data-event": e.event_id },
          h("td", {}, eventLink(e.event_id)), h("td", {}, e.event_type), h("td", {}, objectLink(e.object_id)),
          h("td", { class: "num" }, String(e.attempts)), h("td", { class: "err" }, e.last_error || ""),
          h("td", { class: "actions" },
            confirmed("Retry", "Retry " + e.event_id + "?", async () => {
              try { await api("POST", "/v1/dead/" + encodeURIComponent(e.event_id) + "/retry"); say("Retry queued: " + e.event_id); load(true); } catch (x) { say(x.message, true); }
            }, "retry"),
            " ", reason,
            confirmed("Discard", "Discard " + e.event_id + "?", async () => {
              if (!reason.value.trim()) { say("Say why it is discarded.", true); reason.focus(); return; }
              try { await api("POST", "/v1/dead/" + encodeURIComponent(e.event_id) + "/discard", { reason: reason.value.trim() }); say("Discarded: " + e.event_id); load(true); } catch (x) { say(x.message, true); }
            }, "discard")));
      }), "No dead letters."));
  }
  every(5000, load);
  load();
}

// ---- an object ------------------------------------------------------------------------------------
function objectView(view, id, current) {
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    const v = new FormData(form).get("id").trim();
    if (v) location.hash = "#/object/" + encodeURIComponent(v);
  } }, h("label", {}, "Customer or object id", h("input", { name: "id", value: id, placeholder: "cus_…", required: true })),
  h("button", { type: "submit" }, "Show"));
  const out = h("div", {});
  view.replaceChildren(h("h1", {}, "Object"), form, out);
  if (!id) { out.replaceChildren(h("p", { class: "muted" }, "A customer shows its subscriptions, invoices, payments, charges, disputes, access and events.")); return; }
  (async () => {
    let d;
    try { d = await api("GET", "/ui/objects/" + encodeURIComponent(id)); } catch (e) { if (current()) out.replaceChildren(h("p", { class: "error" }, e.message)); return; }
    if (!current()) return;
    const money = (n, c) => n === null || n === undefined ? "—" : (n / 100).toFixed(2) + " " + (c || "").toUpperCase();
    const drift = h("div", { class: "drift" });
    const cus = d.customer;
    out.replaceChildren(...[
      cus ? h("dl", { class: "facts" }, h("dt", {}, "Customer"), h("dd", {}, cus.id),
        h("dt", {}, "Email"), h("dd", {}, cus.email || "—"), h("dt", {}, "Name"), h("dd", {}, cus.name || "—"),
        cus.deleted ? [h("dt", {}, "Deleted"), h("dd", {}, "yes")] : null) : null,
      h("div", { class: "actions" }, confirmed("Resync from Stripe", "Fetch " + id + " from Stripe now and write what it says?", async () => {
        drift.replaceChildren(h("p", { class: "muted" }, "Asking Stripe…"));
        try { const r = await api("POST", "/v1/resync/" + encodeURIComponent(id)); drift.replaceChildren(h("p", {}, "Written from Stripe: " + (r.written.join(", ") || "nothing"))); }
        catch (e) { drift.replaceChildren(h("p", { class: "error" }, e.message)); }
      }), drift),
      d.access ? [h("h2", {}, "Access now"), table(["Subscription", "Item", "Product", "Price", "Status", "Access", "Until"],
        d.access.map((a) => h("tr", {}, h("td", {}, a.subscription_id), h("td", {}, a.item_id), h("td", {}, a.product_id || "—"),
          h("td", {}, a.price_id || "—"), h("td", {}, badge(a.status)), h("td", {}, a.active_now ? badge("yes") : badge("no")), h("td", {}, time(a.access_until)))),
        "No entitlement rows.")] : null,
      d.subscriptions ? [h("h2", {}, "Subscriptions"), table(["Id", "Status", "Period end", "Past due since", "Cancels"],
        d.subscriptions.map((s) => h("tr", {}, h("td", {}, objectLink(s.id)), h("td", {}, badge(s.status)), h("td", {}, time(s.current_period_end)),
          h("td", {}, time(s.past_due_since)), h("td", {}, s.cancel_at_period_end ? "at period end" : (s.canceled_at ? "canceled" : "—")))))] : null,
      d.invoices ? [h("h2", {}, "Invoices"), table(["Id", "Subscription", "Status", "Due", "Paid", "Period end"],
        d.invoices.map((i) => h("tr", {}, h("td", {}, objectLink(i.id)), h("td", {}, i.subscription || "—"), h("td", {}, i.status ? badge(i.status) : "—"),
          h("td", { class: "num" }, money(i.amount_due, i.currency)), h("td", { class: "num" }, money(i.amount_paid, i.currency)), h("td", {}, time(i.period_end)))))] : null,
      d.payments ? [h("h2", {}, "Payments"), table(["Id", "Status", "Amount", "Last error"],
        d.payments.map((p) => h("tr", {}, h("td", {}, objectLink(p.id)), h("td", {}, p.status ? badge(p.status) : "—"),
          h("td", { class: "num" }, money(p.amount, p.currency)), h("td", { class: "err" }, p.last_payment_error || ""))))] : null,
      d.charges ? [h("h2", {}, "Charges"), table(["Id", "Payment", "Status", "Amount", "Refunded", "Disputed"],
        d.charges.map((c) => h("tr", {}, h("td", {}, objectLink(c.id)), h("td", {}, c.payment_intent || "—"), h("td", {}, c.status ? badge(c.status) : "—"),
          h("td", { class: "num" }, money(c.amount, c.currency)), h("td", { class: "num" }, money(c.amount_refunded, c.currency)), h("td", {}, c.disputed ? badge("yes") : "no"))))] : null,
      d.disputes ? [h("h2", {}, "Disputes"), table(["Id", "Payment", "Status", "Reason", "Amount"],
        d.disputes.map((x) => h("tr", {}, h("td", {}, x.id), h("td", {}, x.payment_intent || x.charge || "—"), h("td", {}, x.status ? badge(x.status) : "—"),
          h("td", {}, x.reason || "—"), h("td", { class: "num" }, money(x.amount, x.currency)))))] : null,
      h("h2", {}, "Events that touched it"),
      table(["Event", "Type", "Object", "Status", "Received"], d.events.map((e) => h("tr", {},
        h("td", {}, eventLink(e.event_id)), h("td", {}, e.event_type), h("td", {}, e.object_id || "—"),
        h("td", {}, badge(e.status)), h("td", {}, time(e.received_at)))))].flat().filter(Boolean));
  })();
}

// ---- drift sweep -------------------------------------------------------------------------------------
let sweepJob = null;
function sweepView(view, _arg, current) {
  const out = h("div", { id: "sweep" });
  const start = (dry) => async () => {
    try { const r = await api("POST", "/v1/reconcile", { dry_run: dry }); sweepJob = r.job; poll(); }
    catch (e) { if (e.reason === "already_running") { sweepJob = Number((e.message.match(/job (\d+)/) || [])[1]) || sweepJob; poll(); } else say(e.message, true); }
  };
  view.replaceChildren(h("h1", {}, "Drift sweep"),
    h("p", { class: "muted" }, "Compares every stored object with Stripe. A dry run reports drift without writing."),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: start(true) }, "Dry run"), " ",
      confirmed("Sweep and repair", "Sweep every object and write what Stripe says?", start(false))),
    out);
  async function poll() {
    if (sweepJob === null || !current()) return;
    let job;
    try { job = await api("GET", "/v1/jobs/" + sweepJob); } catch (e) { out.replaceChildren(h("p", { class: "error" }, e.message)); return; }
    if (!current()) return;
    const parts = [h("p", {}, "Job " + job.id + ": ", badge(job.state))];
    if (job.progress) parts.push(h("pre", { class: "code" }, JSON.stringify(job.progress, null, 2)));
    if (job.error) parts.push(h("p", { class: "error" }, job.error));
    if (job.state === "running") { out.replaceChildren(...parts); setTimeout(poll, 700); return; }
    if (job.result) parts.push(h("pre", { class: "code" }, JSON.stringify(job.result, null, 2)));
    try {
      const items = await api("GET", "/v1/jobs/" + sweepJob + "/items?limit=500");
      parts.push(h("h2", {}, "Drift (" + items.total + ")"),
        table(["Entry"], items.items.map((i) => h("tr", {}, h("td", {}, h("code", {}, JSON.stringify(i))))), "No drift."));
    } catch (_) { /* no items */ }
    out.replaceChildren(...parts);
  }
  poll();
}

// ---- start -----------------------------------------------------------------------------------------
window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", async () => {
  $("#signin-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  $("#signout-everywhere").addEventListener("click", signOutEverywhere);
  try {
    const s = await api("GET", "/ui/session");
    csrf = s.csrf_token || "";
    signedIn();
  } catch (_) {
    signedOut();
  }
});
