// The Kintsu web console: polls the node's admin API (same origin) and
// draws the cluster. Everything is built with DOM calls and textContent:
// event text comes from logs and is never parsed as HTML.
"use strict";

const SLOTS = 16384;
const POLL_MS = 2000;
const HISTORY = 60; // points kept per chart: two minutes at POLL_MS
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
const NO_LEADER = "#c4c8ce";
const SVG = "http://www.w3.org/2000/svg";

const state = { who: null, status: null, prev: new Map(), series: new Map(), latency: [], timers: [] };

function colorOf(node) { return node ? PALETTE[(node - 1) % PALETTE.length] : NO_LEADER; }

function el(tag, attrs, ...kids) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "class") e.setAttribute("class", v);
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

// url is path on this node, absolute: a page opened as
// https://user:password@host/ has a base URL fetch refuses to resolve.
function url(path) { return location.origin + path; }

// Credentials live in this tab's session storage, as user:password, and
// go with every call; a 401 brings the sign-in form back.
const AUTH_KEY = "kintsu-auth";

function headers() {
  const h = { "X-Kintsu-Console": "1" };
  const creds = sessionStorage.getItem(AUTH_KEY);
  if (creds) {
    const bytes = new TextEncoder().encode(creds);
    h.Authorization = "Basic " + btoa(String.fromCharCode(...bytes));
  }
  return h;
}

class AuthError extends Error {}

async function call(path, method) {
  const r = await fetch(url(path), { method: method || "GET", headers: headers(), credentials: "same-origin", cache: "no-store" });
  if (r.status === 401) throw new AuthError((await r.text()).trim());
  return r;
}

async function get(path) {
  const r = await call(path);
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()).trim());
  return r.json();
}

function showError(msg) { document.getElementById("error").textContent = msg || ""; }

// A partition is leaderless without a known leader or quorum, and
// under-replicated when a replica's node does not serve, a replica is
// still being added, or it has fewer replicas than most partitions.
function problems(st) {
  const serving = new Set(st.nodes.filter(n => ["up", "suspect", "draining"].includes(n.state)).map(n => n.id));
  const counts = {};
  for (const p of st.partitions) counts[p.replicas.length] = (counts[p.replicas.length] || 0) + 1;
  const usual = Number(Object.entries(counts).sort((a, b) => b[1] - a[1])[0]?.[0] || 0);
  const leaderless = [], under = [];
  for (const p of st.partitions) {
    if (!p.leader || p.no_quorum) leaderless.push(p);
    else if (p.replicas.length < usual || (p.learners || []).length > 0 || p.replicas.some(r => !serving.has(r))) under.push(p);
  }
  return { leaderless, under };
}

function arc(r0, r1, a0, a1) {
  const pt = (r, a) => [(r * Math.sin(a)).toFixed(2), (-r * Math.cos(a)).toFixed(2)];
  const large = a1 - a0 > Math.PI ? 1 : 0;
  const [x0, y0] = pt(r1, a0), [x1, y1] = pt(r1, a1), [x2, y2] = pt(r0, a1), [x3, y3] = pt(r0, a0);
  return `M${x0},${y0} A${r1},${r1} 0 ${large} 1 ${x1},${y1} L${x2},${y2} A${r0},${r0} 0 ${large} 0 ${x3},${y3} Z`;
}

function drawRing(st, pr) {
  const svg = document.getElementById("ring");
  svg.replaceChildren();
  const bad = new Set(pr.leaderless.map(p => p.id)), warn = new Set(pr.under.map(p => p.id));
  for (const p of st.partitions) {
    const a0 = 2 * Math.PI * p.slot_start / SLOTS, a1 = 2 * Math.PI * (p.slot_end + 1) / SLOTS;
    const title = el("svg:title", { text: `partition ${p.id}: slots ${p.slot_start}-${p.slot_end}, leader ${p.leader ? "node " + p.leader : "none"}, replicas on ${p.replicas.join(", ")}, ${p.keys} keys` });
    svg.append(el("svg:path", { d: arc(140, 200, a0, a1), fill: colorOf(bad.has(p.id) ? 0 : p.leader), stroke: "#fff", "stroke-width": st.partitions.length > 128 ? 0 : 1 }, title));
    if (bad.has(p.id) || warn.has(p.id)) {
      svg.append(el("svg:path", { d: arc(126, 136, a0, a1), fill: bad.has(p.id) ? "#d1353b" : "#e08a1e" }));
    }
  }
  const leaders = st.partitions.filter(p => p.leader && !bad.has(p.id)).length;
  svg.append(el("svg:text", { x: 0, y: -6, "text-anchor": "middle", "font-size": 34, "font-weight": 700, fill: "#1d232b", text: String(st.partitions.length) }));
  svg.append(el("svg:text", { x: 0, y: 18, "text-anchor": "middle", "font-size": 13, fill: "#6a7380", text: "partitions" }));
  svg.append(el("svg:text", { x: 0, y: 38, "text-anchor": "middle", "font-size": 12, fill: "#6a7380", text: `${leaders} led` }));
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  for (const n of st.nodes.filter(n => n.state !== "removed")) {
    legend.append(el("span", {}, el("span", { class: "sw", "data-node": n.id }), `node ${n.id}`));
  }
  legend.append(el("span", {}, el("span", { class: "sw", "data-node": 0 }), "no leader"));
  for (const sw of legend.querySelectorAll(".sw")) sw.style.background = colorOf(Number(sw.dataset.node));
}

function stat(label, value, isBad) {
  return el("div", { class: "stat" + (isBad ? " bad" : "") }, el("b", { text: value }), el("span", { text: label }));
}

function fmtRate(x) { return x >= 1000 ? (x / 1000).toFixed(1) + "k" : x.toFixed(0); }
function fmtMs(s) { return s == null ? "–" : s * 1000 < 1 ? (s * 1e6).toFixed(0) + " µs" : (s * 1000).toFixed(1) + " ms"; }

// quantile of the commands between two cumulative histograms.
function quantile(prev, cur, q) {
  if (!prev || !cur.buckets || !prev.buckets) return null;
  const total = cur.commands - prev.commands;
  if (total <= 0) return null;
  for (let i = 0; i < cur.buckets.length; i++) {
    const n = cur.buckets[i].count - (prev.buckets[i]?.count || 0);
    if (n >= q * total) return cur.buckets[i].le;
  }
  return cur.buckets[cur.buckets.length - 1]?.le ?? null;
}

function drawSummary(st, pr, rates) {
  const up = st.nodes.filter(n => n.state === "up").length;
  const members = st.nodes.filter(n => n.state !== "removed").length;
  const keys = st.partitions.reduce((s, p) => s + (p.keys || 0), 0);
  const total = [...rates.values()].reduce((s, r) => s + r.ops, 0);
  const p99 = state.latency.length ? state.latency[state.latency.length - 1].p99 : null;
  document.getElementById("summary").replaceChildren(
    stat("nodes up", `${up} / ${members}`, up < members),
    stat("leaderless partitions", String(pr.leaderless.length), pr.leaderless.length > 0),
    stat("under-replicated", String(pr.under.length), pr.under.length > 0),
    stat("keys", keys.toLocaleString("en-US")),
    stat("commands/s", fmtRate(total)),
    stat("p99 latency", fmtMs(p99)),
  );
  const ul = document.getElementById("problems");
  ul.replaceChildren();
  for (const p of pr.leaderless) ul.append(el("li", { class: "bad", text: `partition ${p.id} (slots ${p.slot_start}-${p.slot_end}) has no leader with a quorum` }));
  for (const p of pr.under) ul.append(el("li", { class: "warn", text: `partition ${p.id} is under-replicated: replicas on ${p.replicas.join(", ")}${(p.learners || []).length ? ", adding " + p.learners.join(", ") : ""}` }));
  for (const reason of st.not_ready || []) ul.append(el("li", { class: "warn", text: `node ${st.node_id} not ready: ${reason}` }));
  if (!ul.children.length) ul.append(el("li", { text: "none" }));
}

function drawNodes(st, rates) {
  const body = document.querySelector("#nodes tbody");
  body.replaceChildren();
  const leads = {}, reps = {};
  for (const p of st.partitions) {
    if (p.leader) leads[p.leader] = (leads[p.leader] || 0) + 1;
    for (const r of p.replicas) reps[r] = (reps[r] || 0) + 1;
  }
  for (const n of st.nodes) {
    const r = rates.get(n.id);
    const sw = el("span", { class: "sw" });
    sw.style.background = colorOf(n.id);
    let action = null;
    if (state.who?.admin && ["up", "suspect"].includes(n.state)) {
      action = el("button", { text: "decommission", title: `move node ${n.id}'s replicas away, then remove it` });
      action.addEventListener("click", () => decommission(n.id));
    }
    body.append(el("tr", { class: "state-" + n.state },
      el("td", {}, sw, ` ${n.id}${n.id === st.node_id ? " (this)" : ""}`),
      el("td", {}, el("span", { class: "state " + n.state, text: n.state })),
      el("td", { text: n.resp_addr || "" }),
      el("td", { text: String(leads[n.id] || 0) }),
      el("td", { text: String(reps[n.id] || 0) }),
      el("td", { text: r ? String(r.clients) : "–" }),
      el("td", { text: r ? fmtRate(r.ops) : "–" }),
      el("td", { text: r ? fmtMs(r.p99) : "–" }),
      el("td", { text: n.last_heartbeat || "" }),
      el("td", {}, action)));
  }
  for (const sw of body.querySelectorAll(".sw")) { sw.classList.add("legend-sw"); }
}

async function decommission(id) {
  if (!confirm(`Decommission node ${id}? Its replicas move to the other nodes, then it is removed for good.`)) return;
  const r = await call(`/v1/nodes/${id}/decommission`, "POST");
  showError(r.ok ? "" : `decommission of node ${id}: ${r.status} ${(await r.text()).trim()}`);
}

// rates turns two polls of every node's counters into per-node rates.
function rates(loads) {
  const out = new Map();
  for (const l of loads) {
    const p = state.prev.get(l.node);
    // A rate needs two polls: until then the node has none.
    if (l.error || !p || l.time_ms <= p.time_ms) continue;
    const ops = Math.max(0, (l.commands - p.commands) * 1000 / (l.time_ms - p.time_ms));
    out.set(l.node, { ops, p99: quantile(p, l, 0.99), p50: quantile(p, l, 0.5), clients: l.clients });
  }
  return out;
}

function merged(prev, cur) {
  // Cluster-wide quantiles: the nodes' histograms summed.
  const sum = (ls) => {
    const b = [];
    let commands = 0;
    for (const l of ls) {
      if (!l || l.error || !l.buckets) continue;
      commands += l.commands;
      l.buckets.forEach((x, i) => { b[i] = { le: x.le, count: (b[i]?.count || 0) + x.count }; });
    }
    return { commands, buckets: b };
  };
  const ids = cur.filter(l => !l.error && prev.has(l.node)).map(l => l.node);
  return [sum(ids.map(i => prev.get(i))), sum(ids.map(i => cur.find(l => l.node === i)))];
}

function drawChart(id, series, fmt) {
  const svg = document.getElementById(id);
  svg.replaceChildren();
  const W = 560, H = 200, L = 48, B = 20, T = 8;
  let maxY = 0;
  for (const s of series) for (const v of s.points) if (v != null) maxY = Math.max(maxY, v);
  maxY = maxY > 0 ? maxY * 1.15 : 1;
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (1 - i / 4);
    svg.append(el("svg:line", { class: "axis", x1: L, x2: W, y1: y, y2: y }));
    svg.append(el("svg:text", { x: L - 4, y: y + 3, "text-anchor": "end", text: fmt(maxY * i / 4) }));
  }
  svg.append(el("svg:text", { x: L, y: H - 4, text: "-2 min" }));
  svg.append(el("svg:text", { x: W, y: H - 4, "text-anchor": "end", text: "now" }));
  for (const s of series) {
    const pts = [];
    s.points.forEach((v, i) => {
      if (v == null) return;
      const x = L + (W - L) * (i + HISTORY - s.points.length) / (HISTORY - 1);
      const y = T + (H - T - B) * (1 - v / maxY);
      pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    if (pts.length) svg.append(el("svg:polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }, el("svg:title", { text: s.name })));
  }
}

function push(arr, v) { arr.push(v); if (arr.length > HISTORY) arr.shift(); }

async function pollStatus() {
  try {
    const st = await get("/v1/status");
    state.status = st;
    document.getElementById("cluster").textContent = `cluster ${st.cluster_id}`;
    document.getElementById("served").textContent = `served by node ${st.node_id} · ${st.version}`;
    const ready = document.getElementById("ready");
    ready.textContent = st.ready ? "ready" : "not ready";
    ready.className = "pill " + (st.ready ? "ok" : "bad");
    render();
    showError("");
  } catch (e) { if (e instanceof AuthError) throw e; showError(String(e)); }
}

async function pollLoad() {
  try {
    const loads = await get("/v1/load");
    const r = rates(loads);
    const [p, c] = merged(state.prev, loads);
    for (const l of loads) {
      if (!state.series.has(l.node)) state.series.set(l.node, []);
      push(state.series.get(l.node), r.get(l.node)?.ops ?? null);
    }
    if (state.prev.size) push(state.latency, { p50: quantile(p, c, 0.5), p99: quantile(p, c, 0.99) });
    for (const l of loads) if (!l.error) state.prev.set(l.node, l);
    state.rates = r;
    render();
  } catch (e) { if (e instanceof AuthError) throw e; showError(String(e)); }
}

async function pollEvents() {
  try {
    const evs = await get("/v1/events?limit=60");
    const body = document.querySelector("#events tbody");
    body.replaceChildren();
    for (const e of evs) {
      body.append(el("tr", {},
        el("td", { text: new Date(e.time_ms).toLocaleTimeString("en-GB") }),
        el("td", { text: String(e.node) }),
        el("td", { class: "lvl-" + e.level, text: e.level }),
        el("td", { text: e.message }),
        el("td", { class: "attrs", text: e.attrs || "" })));
    }
  } catch (e) { if (e instanceof AuthError) throw e; showError(String(e)); }
}

function render() {
  const st = state.status;
  if (!st) return;
  const pr = problems(st);
  const r = state.rates || new Map();
  drawRing(st, pr);
  drawSummary(st, pr, r);
  drawNodes(st, r);
  const tput = [...state.series.entries()].map(([node, pts]) => ({ name: `node ${node}`, color: colorOf(node), points: pts }));
  drawChart("tput", tput, fmtRate);
  drawChart("lat", [
    { name: "p50", color: "#4e79a7", points: state.latency.map(x => x.p50 == null ? null : x.p50 * 1000) },
    { name: "p99", color: "#e15759", points: state.latency.map(x => x.p99 == null ? null : x.p99 * 1000) },
  ], v => v.toFixed(v < 10 ? 1 : 0));
}

function showLogin(msg) {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = msg || "";
}

async function start() {
  document.getElementById("signout").hidden = !sessionStorage.getItem(AUTH_KEY);
  try {
    state.who = await get("/v1/whoami");
  } catch (e) {
    if (e instanceof AuthError) {
      showLogin(sessionStorage.getItem(AUTH_KEY) ? e.message : "");
      return;
    }
    showError(String(e));
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  document.getElementById("who").textContent = `${state.who.user} · ${state.who.admin ? "admin" : "read-only"}`;
  const poll = (fn) => async () => {
    try { await fn(); } catch (e) { if (e instanceof AuthError) showLogin(e.message); else showError(String(e)); }
  };
  await Promise.all([poll(pollStatus)(), poll(pollLoad)(), poll(pollEvents)()]);
  state.timers = [setInterval(poll(pollStatus), POLL_MS), setInterval(poll(pollLoad), POLL_MS), setInterval(poll(pollEvents), 2 * POLL_MS)];
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  sessionStorage.setItem(AUTH_KEY, `${f.get("user")}:${f.get("password")}`);
  start();
});
document.getElementById("signout").addEventListener("click", () => {
  sessionStorage.removeItem(AUTH_KEY);
  location.reload();
});

start();
