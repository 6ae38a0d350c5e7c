// herd manager dashboard: polls the node's manager API every 2 s and renders the cluster.
// Plain DOM building (textContent only, never innerHTML with data), no dependencies.
"use strict";

(function () {
  const POLL_MS = 2000;
  const HISTORY = 60; // samples kept for the sparklines (2 minutes)
  const token = new URLSearchParams(window.location.search).get("token");
  // location.origin never carries user:password@, so fetch accepts these URLs even when the page
  // was opened with credentials in its address.
  const api = window.location.origin + "/manager/api/";

  const history = { sessions: [], lag: [], rate: [] };
  let lastRepl = null; // {time, peers: {name: {bytes, sent}}} for throughput
  let timer = null;

  // ---- DOM helpers -------------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") e.className = v;
        else if (k === "title") e.title = String(v);
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function replace(id, ...nodes) {
    const box = document.getElementById(id);
    box.replaceChildren(...nodes.flat().filter((n) => n));
  }

  function empty(text) {
    return el("div", { class: "empty" }, text);
  }

  function table(headers, rows) {
    const head = el("tr", null, headers.map((h) => {
      const [label, cls] = Array.isArray(h) ? h : [h, ""];
      return el("th", { class: cls || null }, label);
    }));
    return el("table", null, el("thead", null, head), el("tbody", null, rows));
  }

  function td(content, cls) {
    return el("td", { class: cls || null }, content);
  }

  function pill(text, kind) {
    return el("span", { class: "pill " + (kind || "idle") }, text);
  }

  function meter(fraction, kind) {
    const bar = el("span");
    bar.style.width = Math.max(0, Math.min(1, fraction)) * 100 + "%";
    return el("div", { class: "meter " + (kind || "") }, bar);
  }

  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 100 28");
    svg.setAttribute("preserveAspectRatio", "none");
    if (values.length > 1) {
      const max = Math.max(...values, 1);
      const pts = values.map((v, i) =>
        ((i / (values.length - 1)) * 100).toFixed(1) + "," + (26 - (v / max) * 24).toFixed(1));
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", pts.join(" "));
      svg.append(line);
    }
    return svg;
  }

  // ---- formatting --------------------------------------------------------------------------------

  function fmtBytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + units[i];
  }

  function fmtNum(n) {
    return typeof n === "number" ? n.toLocaleString("en-US") : String(n);
  }

  function fmtAgo(iso) {
    if (!iso) return "—";
    const t = Date.parse(iso);
    if (isNaN(t) || t <= 0) return "—";
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 2) return "just now";
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function fmtTime(iso) {
    const t = new Date(iso);
    if (isNaN(t.getTime())) return String(iso);
    return t.toLocaleTimeString("en-GB", { hour12: false });
  }

  function shortID(id) {
    id = String(id || "");
    return id.length > 12 ? id.slice(0, 10) + "…" : id;
  }

  function humanKey(k) {
    return String(k).replace(/([a-z])([A-Z])/g, "$1 $2").replace(/[_-]/g, " ").toLowerCase();
  }

  // fmtValue renders any JSON value for generic tables: numbers with separators (bytes when the key
  // says so), durations in ms, nested values as compact JSON.
  function fmtValue(key, v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "number") {
      if (/bytes/i.test(key)) return fmtBytes(v);
      if (/ms$/i.test(key)) return fmtNum(Math.round(v * 10) / 10) + " ms";
      return fmtNum(v);
    }
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "string") {
      if (/^\d{4}-\d\d-\d\dT/.test(v)) return fmtAgo(v);
      return v;
    }
    return JSON.stringify(v);
  }

  function stateKind(state) {
    switch (String(state).toLowerCase()) {
      case "alive": case "running": case "ok": case "done": case "complete": case "completed": case "healthy":
        return "ok";
      case "suspect": case "starting": case "deploying": case "draining": case "leaving": case "sending":
      case "receiving": case "transferring": case "pending": case "stopping":
        return "warn";
      case "dead": case "failed": case "crashed": case "error": case "unhealthy":
        return "bad";
    }
    return "idle";
  }

  // ---- generic renderers for sections whose shape may grow -----------------------------------------

  function kvList(obj, skip) {
    const dl = el("dl", { class: "kv" });
    for (const [k, v] of Object.entries(obj)) {
      if (skip && skip.includes(k)) continue;
      if (Array.isArray(v) && v.length && typeof v[0] === "object") continue; // rendered as a table
      dl.append(el("dt", null, humanKey(k)), el("dd", null, fmtValue(k, v)));
    }
    return dl.childElementCount ? dl : null;
  }

  function objectTable(list, preferred) {
    const keys = [];
    for (const k of preferred || []) if (list.some((o) => o && k in o)) keys.push(k);
    for (const o of list) for (const k of Object.keys(o || {})) if (!keys.includes(k)) keys.push(k);
    const numeric = (k) => list.every((o) => o == null || o[k] == null || typeof o[k] === "number");
    const rows = list.map((o) => el("tr", null, keys.map((k) => {
      const v = o ? o[k] : undefined;
      if (k === "state" || k === "status") return td(pill(String(v ?? "—"), stateKind(v)));
      return td(fmtValue(k, v), numeric(k) ? "num" : "");
    })));
    return table(keys.map((k) => [humanKey(k), numeric(k) ? "num" : ""]), rows);
  }

  function genericSection(obj) {
    if (obj === undefined || obj === null) return null;
    if (Array.isArray(obj)) return obj.length ? objectTable(obj) : empty("none");
    if (typeof obj !== "object") return el("div", null, fmtValue("", obj));
    const parts = [kvList(obj)];
    for (const [k, v] of Object.entries(obj)) {
      if (Array.isArray(v) && v.length && typeof v[0] === "object") {
        parts.push(el("h3", null, humanKey(k)), objectTable(v));
      }
    }
    return parts;
  }

  // ---- sections ----------------------------------------------------------------------------------

  function renderMembers(members) {
    const alive = members.filter((m) => m.state === "alive").length;
    replace("members-count", `${alive} of ${members.length} alive`);
    if (!members.length) return replace("members", empty("no members"));
    const withSessions = members.some((m) => typeof m.sessions === "number");
    const headers = ["name", "role", "state", "HTTP", "apps", "version", "last heard"];
    if (withSessions) headers.push(["sessions", "num"]);
    const rows = members.map((m) => el("tr", { "data-member": m.name },
      td([el("strong", null, m.name), m.local ? el("span", { class: "badge" }, "this node") : null,
        m.route && m.route !== m.name ? el("div", { class: "muted mono" }, "route " + m.route) : null]),
      td(m.role || "node"),
      td([pill(m.state || "unknown", stateKind(m.state)), m.draining ? pill("draining", "warn") : null]),
      td(m.http || "—", "mono"),
      td((m.apps || []).length ? (m.apps || []).map((a) =>
        el("span", { class: "chip", title: a.context }, a.name + (a.version ? " v" + a.version : ""))) :
        el("span", { class: "muted" }, "none")),
      td(m.version || "—", "mono"),
      td(m.local ? "—" : fmtAgo(m.lastHeard)),
      withSessions ? td(fmtNum(m.sessions ?? 0), "num") : null));
    replace("members", table(headers, rows));
  }

  function renderMatrix(members) {
    const nodes = members.filter((m) => (m.role || "node") === "node");
    const apps = new Map(); // name|context -> {name, context}
    for (const m of nodes) for (const a of m.apps || []) {
      const k = a.name + "|" + a.context;
      if (!apps.has(k)) apps.set(k, { name: a.name, context: a.context });
    }
    if (!apps.size) return replace("matrix", empty("no app is deployed anywhere"));
    const headers = ["app", "context", ...nodes.map((m) => m.name)];
    const rows = [...apps.values()].sort((a, b) => a.name.localeCompare(b.name)).map((app) =>
      el("tr", { "data-app": app.name },
        td(el("strong", null, app.name)), td(app.context, "mono"),
        nodes.map((m) => {
          const vs = (m.apps || []).filter((a) => a.name === app.name && a.context === app.context);
          if (!vs.length) return td("—", "muted");
          return td(vs.map((a) => el("span", { class: "chip" + (m.local ? " local" : "") },
            a.version ? "v" + a.version : "unversioned")));
        })));
    replace("matrix", table(headers, rows));
  }

  function renderApps(apps) {
    if (!apps.length) return replace("apps", empty("no app deployed on this node"));
    const rows = apps.map((a) => el("tr", { "data-app": a.name },
      td([el("strong", null, a.name), a.version ? el("span", { class: "muted" }, " v" + a.version) : null]),
      td(a.context, "mono"),
      td(a.kind || "—"),
      td(pill(a.state || "unknown", stateKind(a.state))),
      td(fmtNum(a.sessions || 0), "num"),
      td(fmtAgo(a.deployedAt)),
      td(a.sha256 ? a.sha256.slice(0, 12) : "—", "mono")));
    replace("apps", table(["app", "context", "kind", "state", ["sessions", "num"], "deployed", "sha256"], rows));
  }

  function renderSessions(list) {
    const own = list.filter((s) => !s.replica).length;
    replace("sessions-count", `${list.length} held here: ${own} own, ${list.length - own} replicas`);
    history.sessions.push(list.length);
    if (history.sessions.length > HISTORY) history.sessions.shift();
    if (!list.length) return replace("sessions", empty("no sessions on this node"));
    const byApp = new Map();
    for (const s of list) byApp.set(s.app, (byApp.get(s.app) || 0) + 1);
    const max = Math.max(...byApp.values());
    const bars = el("div", { class: "bars" }, [...byApp.entries()].sort((a, b) => b[1] - a[1]).map(([app, n]) =>
      el("div", { class: "row" }, el("span", { class: "name", title: app }, app), meter(n / max),
        el("span", { class: "n" }, fmtNum(n)))));
    const recent = [...list].sort((a, b) => Date.parse(b.lastAccess) - Date.parse(a.lastAccess)).slice(0, 8);
    const rows = recent.map((s) => el("tr", null,
      td(shortID(s.id), "mono"), td(s.app, "mono"), td(s.replica ? pill("replica", "info") : pill("own", "ok")),
      td(fmtAgo(s.lastAccess)), td(fmtBytes(s.size), "num"), td(fmtNum(s.version), "num")));
    replace("sessions", bars, el("h3", null, "most recently used"),
      table(["id", "app", "kind", "last access", ["size", "num"], ["version", "num"]], rows));
  }

  function renderReplication(repl) {
    if (!repl || typeof repl !== "object") {
      replace("replication-mode", "");
      history.lag.push(0);
      if (history.lag.length > HISTORY) history.lag.shift();
      return replace("replication", empty("this node reports no replication"));
    }
    replace("replication-mode", repl.mode ? "mode " + repl.mode : "");
    const peers = Array.isArray(repl.peers) ? repl.peers : [];
    const now = Date.now();
    let rate = 0;
    const prev = lastRepl;
    const rates = {};
    for (const p of peers) {
      const was = prev && prev.peers[p.name];
      if (was && typeof p.bytes === "number") {
        const dt = (now - prev.time) / 1000;
        rates[p.name] = dt > 0 ? Math.max(0, (p.bytes - was.bytes) / dt) : 0;
        rate += rates[p.name];
      }
    }
    lastRepl = { time: now, peers: Object.fromEntries(peers.map((p) => [p.name, { bytes: p.bytes }])) };
    const maxLag = peers.reduce((m, p) => Math.max(m, Number(p.lagMs) || 0), 0);
    history.lag.push(maxLag);
    history.rate.push(rate);
    for (const h of [history.lag, history.rate]) if (h.length > HISTORY) h.shift();

    const parts = [];
    if (peers.length) {
      const known = ["name", "queue", "sent", "acked", "failures", "lagMs", "bytes"];
      const extra = [];
      for (const p of peers) for (const k of Object.keys(p)) if (!known.includes(k) && !extra.includes(k)) extra.push(k);
      const lagScale = Math.max(maxLag, 100);
      const rows = peers.map((p) => el("tr", { "data-peer": p.name },
        td(el("strong", null, p.name ?? "?")),
        td(fmtNum(p.queue ?? 0), "num"),
        td(fmtNum(p.sent ?? 0), "num"),
        td(fmtNum(p.acked ?? 0), "num"),
        td(p.failures ? pill(fmtNum(p.failures), "bad") : "0", "num"),
        td([el("div", null, fmtValue("lagMs", p.lagMs ?? 0)),
          meter((Number(p.lagMs) || 0) / lagScale, (p.lagMs || 0) > 1000 ? "bad" : (p.lagMs || 0) > 100 ? "warn" : "")]),
        td(fmtBytes(p.bytes ?? 0), "num"),
        td(p.name in rates ? fmtBytes(rates[p.name]) + "/s" : "—", "num"),
        extra.map((k) => td(fmtValue(k, p[k])))));
      parts.push(table(["peer", ["queue", "num"], ["sent", "num"], ["acked", "num"], ["failures", "num"], "lag",
        ["bytes", "num"], ["throughput", "num"], ...extra.map(humanKey)], rows));
    } else {
      parts.push(empty("no peers"));
    }
    const totals = kvList(repl, ["mode", "peers"]);
    if (totals) parts.push(el("h3", null, "this node"), totals);
    for (const [k, v] of Object.entries(repl)) {
      if (k !== "peers" && Array.isArray(v) && v.length && typeof v[0] === "object") {
        parts.push(el("h3", null, humanKey(k)), objectTable(v));
      }
    }
    replace("replication", parts);
  }

  function renderFarm(farm) {
    if (farm === undefined || farm === null) return replace("farm", empty("this node reports no farm"));
    const parts = [];
    const transfers = farm.transfers || farm.inProgress || farm.active;
    if (Array.isArray(transfers)) {
      parts.push(kvList(farm, ["transfers", "inProgress", "active"]));
      if (!transfers.length) parts.push(empty("no transfer in progress"));
      else {
        parts.push(el("h3", null, "in progress"), el("div", { class: "bars" }, transfers.map((x) => {
          const total = Number(x.size ?? x.total ?? x.totalBytes ?? 0);
          const done = Number(x.bytes ?? x.sent ?? x.received ?? x.doneBytes ?? 0);
          const label = [x.bundle ?? x.name ?? x.file ?? "?", x.peer ?? x.to ?? x.from ?? x.member]
            .filter(Boolean).join(" → ");
          return el("div", { class: "row" }, el("span", { class: "name", title: label }, label),
            meter(total > 0 ? done / total : 0), el("span", { class: "n" }, total > 0 ? Math.round((done / total) * 100) + "%" : fmtBytes(done)));
        })), objectTable(transfers));
      }
      for (const [k, v] of Object.entries(farm)) {
        if (v !== transfers && Array.isArray(v) && v.length && typeof v[0] === "object") {
          parts.push(el("h3", null, humanKey(k)), objectTable(v));
        }
      }
    } else {
      parts.push(...[].concat(genericSection(farm) || []));
    }
    replace("farm", parts.filter(Boolean).length ? parts : [empty("nothing to show")]);
  }

  function eventKind(type) {
    type = String(type);
    if (/dead|fail|error|crash/.test(type)) return "bad";
    if (/leave|suspect|undeploy|drain/.test(type)) return "warn";
    if (/join|alive|deployed|start/.test(type)) return "ok";
    return "info";
  }

  function renderEvents(events) {
    if (!events.length) return replace("events", empty("no events yet"));
    const rows = events.slice(0, 40).map((e) => el("tr", null,
      td(fmtTime(e.time), "ev-time"), td(pill(e.type, eventKind(e.type))),
      td(e.member || "", "mono"), td(e.app || "", "mono"), td(e.message || "")));
    replace("events", table(["time", "event", "member", "app", "message"], rows));
  }

  function renderNode(stats) {
    const skip = ["replication", "farm"];
    const shown = {};
    for (const [k, v] of Object.entries(stats)) if (!skip.includes(k)) shown[k] = v;
    const nested = Object.keys(shown).filter((k) => shown[k] && typeof shown[k] === "object" && !Array.isArray(shown[k]));
    const parts = [kvList(shown, nested)];
    for (const [k, v] of Object.entries(shown)) {
      if (Array.isArray(v) && v.length && typeof v[0] === "object") {
        parts.push(el("h3", null, humanKey(k)), objectTable(v));
      } else if (v && typeof v === "object" && !Array.isArray(v)) {
        // a section another component adds to the stats: shown as its own list
        parts.push(el("h3", null, humanKey(k)), ...[].concat(genericSection(v) || []));
      }
    }
    replace("node", parts);
  }

  function tile(label, value, kind, spark) {
    return el("div", { class: "tile" }, el("div", { class: "label" }, label),
      el("div", { class: "value " + (kind || "") }, value), spark ? sparkline(spark) : null);
  }

  function renderTiles(d) {
    const tiles = [];
    if (d.members) {
      const alive = d.members.filter((m) => m.state === "alive").length;
      tiles.push(tile("members alive", `${alive}/${d.members.length}`, alive === d.members.length ? "ok" : "warn"));
      const apps = new Set();
      for (const m of d.members) for (const a of m.apps || []) apps.add(a.name + "|" + a.context);
      tiles.push(tile("apps in cluster", fmtNum(apps.size)));
    }
    if (d.sessions) tiles.push(tile("sessions here", fmtNum(d.sessions.length), "", history.sessions));
    if (d.stats && d.stats.replication) {
      const lag = history.lag[history.lag.length - 1] || 0;
      tiles.push(tile("max replication lag", fmtValue("lagMs", lag), lag > 1000 ? "bad" : lag > 100 ? "warn" : "ok", history.lag));
      tiles.push(tile("replication out", fmtBytes(history.rate[history.rate.length - 1] || 0) + "/s", "", history.rate));
    }
    if (d.stats && typeof d.stats.heapBytes === "number") tiles.push(tile("heap", fmtBytes(d.stats.heapBytes)));
    replace("tiles", tiles);
  }

  // ---- polling -----------------------------------------------------------------------------------

  class HTTPError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function getJSON(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const resp = await fetch(api + path, { headers, cache: "no-store", credentials: "same-origin" });
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { const body = await resp.json(); if (body && body.error) msg = body.error; } catch (_) { /* not JSON */ }
      throw new HTTPError(resp.status, path + ": " + msg);
    }
    return resp.json();
  }

  function setStatus(ok, text) {
    const s = document.getElementById("status");
    s.className = "status " + (ok ? "ok" : "err");
    document.getElementById("status-text").textContent = text;
  }

  function showAlert(text) {
    const a = document.getElementById("alert");
    a.hidden = !text;
    a.textContent = text || "";
  }

  async function poll() {
    const names = ["members", "apps", "sessions", "stats", "events"];
    const results = await Promise.allSettled(names.map(getJSON));
    const d = {};
    const errors = [];
    results.forEach((r, i) => {
      if (r.status === "fulfilled") d[names[i]] = r.value;
      else errors.push(r.reason);
    });
    const renderers = [
      ["members", () => { renderMembers(d.members); renderMatrix(d.members); }],
      ["apps", () => renderApps(d.apps)],
      ["sessions", () => renderSessions(d.sessions)],
      ["stats", () => { renderReplication(d.stats.replication); renderFarm(d.stats.farm); renderNode(d.stats); }],
      ["events", () => renderEvents(d.events)],
    ];
    for (const [name, render] of renderers) {
      if (d[name] === undefined) continue;
      try { render(); } catch (e) { errors.push(new Error(name + ": cannot render: " + e.message)); }
    }
    try { renderTiles(d); } catch (e) { errors.push(e); }
    if (d.stats && d.stats.node) {
      document.getElementById("where").textContent = "node " + d.stats.node + " · " + window.location.host;
      document.title = "herd · " + d.stats.node;
    }
    if (errors.some((e) => e.status === 401 || e.status === 403)) {
      const e = errors.find((x) => x.status === 401 || x.status === 403);
      showAlert("Not authorized: " + e.message + ". Open this page as /manager/?token=<manager token>, " +
        "or with the manager's basic auth user.");
    } else if (errors.length) {
      showAlert(errors.map((e) => e.message).join("; "));
    } else {
      showAlert("");
    }
    setStatus(errors.length === 0, (errors.length ? "error · " : "updated ") + new Date().toLocaleTimeString("en-GB", { hour12: false }));
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  }

  async function loop() {
    try { await poll(); } catch (e) { setStatus(false, "error"); showAlert(String(e)); }
    timer = setTimeout(loop, POLL_MS);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer !== null) { clearTimeout(timer); loop(); }
  });
  loop();
})();
