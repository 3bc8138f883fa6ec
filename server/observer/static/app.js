// The observer's page: one push stream (server-sent events) per view, rendered as it comes.
"use strict";

const token = new URLSearchParams(location.search).get("token") || "";
const root = document.getElementById("view");
const detail = document.getElementById("detail");
const openNodes = new Set();           // supervision tree nodes the user expanded
let sort = { key: "mailbox", descending: true };
let stream = null;
let last = null;                       // the last view pushed
let installEvents = [];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function seconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function currentView() {
  const name = location.hash.replace("#", "");
  return ["overview", "trees", "processes", "code", "releases", "nodes"].includes(name)
    ? name : "overview";
}

function connect() {
  if (stream) stream.close();
  const name = currentView();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === name);
  }
  root.replaceChildren(el("p", {}, "waiting for the node..."));
  const url = `events?view=${name}&token=${encodeURIComponent(token)}`;
  stream = new EventSource(url);
  const status = document.getElementById("connection");
  stream.onopen = () => { status.textContent = "live"; };
  stream.onerror = () => { status.textContent = "reconnecting"; };
  stream.addEventListener("view", (event) => {
    last = JSON.parse(event.data);
    if (last.view === currentView()) render(last);
  });
  stream.addEventListener("install_history", (event) => {
    installEvents = JSON.parse(event.data);
    renderInstall();
  });
  stream.addEventListener("install", (event) => {
    const moment = JSON.parse(event.data);
    if (moment.index === 0 && moment.outcome === "running") installEvents = [];
    installEvents.push(moment);
    renderInstall();
  });
}

function render(pushed) {
  const overview = pushed.overview;
  document.getElementById("node").textContent =
    `${overview.node} · ${overview.release ? overview.release.name + " " + overview.release.vsn : "no release"}`;
  const views = { overview: renderOverview, trees: renderTrees, processes: renderProcesses,
                  code: renderCode, releases: renderReleases, nodes: renderNodes };
  root.replaceChildren(views[pushed.view](pushed.data));
  root.dataset.rendered = pushed.view;
}

function card(label, value, id) {
  return el("div", { class: "card", id },
            el("div", { class: "label" }, label), el("div", { class: "value" }, value));
}

function renderOverview(o) {
  const release = o.release ? `${o.release.name} ${o.release.vsn}` : "none";
  const cards = el("div", { class: "cards" },
    card("release", release, "card-release"),
    card("release status", o.release ? o.release.status : "", "card-status"),
    card("uptime", seconds(o.uptime), "card-uptime"),
    card("memory (RSS)", bytes(o.memory), "card-memory"),
    card("processes", o.processes, "card-processes"),
    card("messages in flight", o.in_flight, "card-in-flight"));
  const lag = o.loop_lag;
  const parts = [cards];
  if (lag) {
    const ms = (s) => `${(s * 1000).toFixed(2)} ms`;
    cards.append(card("loop lag p50 / p90", `${ms(lag.p50)} / ${ms(lag.p90)}`, "card-lag"),
                 card("loop lag p99 / max", `${ms(lag.p99)} / ${ms(lag.max)}`, "card-lag-max"));
    parts.push(el("h3", {}, `event-loop lag over the last ${Math.round(lag.window / 60)} minutes, per 10 s: `,
                  el("span", { style: "color:#d9822b" }, "max"), " and ",
                  el("span", { style: "color:#2b6cd9" }, "p99"), ` (top: ${ms(Math.max(0, ...(lag.series || []).map((b) => b.max)))})`),
               lagChart(lag.series || []));
  }
  parts.push(el("h3", {}, "applications"),
             table(["application", "vsn"], o.applications.map((a) => [a.name, a.vsn])));
  return el("div", {}, parts);
}

function lagChart(series) {
  const ns = "http://www.w3.org/2000/svg";
  const width = 600, height = 120;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "lag");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const top = Math.max(0.001, ...series.map((b) => b.max));
  const step = series.length > 1 ? width / (series.length - 1) : width;
  for (const [key, color] of [["max", "#d9822b"], ["p99", "#2b6cd9"]]) {
    const points = series.map((b, i) => `${i * step},${height - (b[key] / top) * (height - 10)}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", color);
    svg.append(line);
  }
  return svg;
}

function table(headers, rows, options = {}) {
  const head = el("tr", {}, headers.map((h, i) => {
    const key = options.keys ? options.keys[i] : null;
    const th = el("th", { class: (options.numeric || []).includes(h) ? "num" : "" }, h);
    if (key) {
      th.dataset.sort = key;
      if (sort.key === key) th.classList.add("sorted");
      th.addEventListener("click", () => options.onSort(key));
    }
    return th;
  }));
  const body = rows.map((row, r) => {
    const tr = el("tr", options.onRow ? { class: "clickable" } : {},
                  row.map((cell, i) => el("td", (options.numeric || []).includes(headers[i]) ? { class: "num" } : {}, cell)));
    if (options.onRow) tr.addEventListener("click", () => options.onRow(r));
    if (options.rowData) Object.assign(tr.dataset, options.rowData(r));
    return tr;
  });
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

function renderTrees(trees) {
  return el("div", {}, trees.map((app) => treeNode(app.tree, app.application, app.application)));
}

function treeNode(node, label, key) {
  const status = el("span", { class: `status-${node.status}` }, node.status);
  if (node.type !== "supervisor") {
    const leaf = el("div", { class: "leaf clickable", "data-child": node.id, "data-pid": node.pid },
                    `${node.id} `, el("span", { class: "pid" }, node.pid),
                    node.name ? ` (${node.name}) ` : " ", status);
    if (node.status === "running") leaf.addEventListener("click", () => showProcess(node.pid, false));
    return leaf;
  }
  const summary = el("summary", {},
    `${label} `, el("span", { class: "pid" }, node.pid), node.name ? ` (${node.name}) ` : " ",
    status, " ", el("span", { class: "badge restarts", "data-restarts": node.restarts },
                    `${node.restarts} restarts`));
  const details = el("details", { "data-key": key, "data-child": node.id, "data-pid": node.pid },
                     summary, (node.children || []).map((c) => treeNode(c, c.id, `${key}/${c.id}`)));
  if (openNodes.has(key)) details.open = true;
  details.addEventListener("toggle", () => {
    if (details.open) openNodes.add(key); else openNodes.delete(key);
  });
  return details;
}

const PROCESS_COLUMNS = [
  ["pid", "pid"], ["name", "name"], ["behaviour", "behaviour"], ["module", "module"],
  ["mailbox", "mailbox"], ["handled", "messages handled"], ["memory", "memory"], ["age", "age"],
];

function renderProcesses(rows) {
  const key = sort.key;
  const sorted = [...rows].sort((a, b) => {
    const x = a[key], y = b[key];
    const order = typeof x === "number" && typeof y === "number"
      ? x - y : String(x ?? "").localeCompare(String(y ?? ""));
    return sort.descending ? -order : order;
  });
  const cells = sorted.map((p) => [p.pid, p.name || "", p.behaviour || "", p.module || "",
                                   p.mailbox, p.handled, bytes(p.memory), seconds(p.age)]);
  return el("div", {},
    el("p", {}, `${rows.length} processes, sorted by ${key}${sort.descending ? " (largest first)" : ""}; click a column to sort, a row for its detail`),
    table(PROCESS_COLUMNS.map((c) => c[1]), cells, {
      keys: PROCESS_COLUMNS.map((c) => c[0]),
      numeric: ["mailbox", "messages handled", "memory", "age"],
      onSort: (k) => {
        sort = { key: k, descending: sort.key === k ? !sort.descending : ["mailbox", "handled", "memory", "age"].includes(k) };
        if (last) render(last);
      },
      onRow: (r) => showProcess(sorted[r].pid, false),
      rowData: (r) => ({ pid: sorted[r].pid }),
    }));
}

async function showProcess(pid, withState) {
  const response = await fetch(`api/process?pid=${encodeURIComponent(pid)}${withState ? "&state=1" : ""}&token=${encodeURIComponent(token)}`);
  const d = await response.json();
  detail.hidden = false;
  if (!response.ok) { detail.replaceChildren(el("p", {}, d.error)); return; }
  const rows = [
    ["registered name", d.name || ""], ["module", d.module || ""], ["vsn", d.vsn ?? ""],
    ["status", d.status || ""], ["mailbox", d.mailbox], ["messages handled", d.handled],
    ["memory", bytes(d.memory)], ["age", seconds(d.age)], ["trap_exit", String(d.trap_exit)],
    ["links", d.links.join(", ")], ["monitors", d.monitors.join(", ")],
    ["monitored by", d.monitored_by], ["runs old code of", d.old_code.join(", ")],
  ];
  detail.replaceChildren(
    el("h2", {}, `process ${d.pid}`),
    table(["", ""], rows),
    d.state !== undefined
      ? el("div", {}, el("h3", {}, "state (sys.get_state)"), el("pre", { id: "state" }, d.state))
      : el("button", { id: "show-state", onclick: () => showProcess(pid, true) }, "show its state (sys.get_state)"),
    el("button", { id: "kill", onclick: () => killProcess(d.pid) }, "kill it (exit kill)"),
    el("button", { onclick: () => { detail.hidden = true; } }, "close"));
}

async function killProcess(pid) {
  await fetch(`api/kill?pid=${encodeURIComponent(pid)}&token=${encodeURIComponent(token)}`, { method: "POST" });
  detail.hidden = true;
}

function renderCode(rows) {
  return table(["module", "slot", "vsn", "loaded at", "old code still run by"],
    rows.map((m) => [m.module, el("span", { class: `badge ${m.slot}` }, m.slot), m.vsn,
                     new Date(m.loaded_at * 1000).toLocaleTimeString(), (m.running || []).join(", ")]));
}

function renderReleases(rows) {
  return table(["release", "vsn", "status", "applications"],
    rows.map((r) => [r.name, r.vsn, el("span", { class: `badge ${r.status}` }, r.status),
                     (r.applications || []).map((a) => typeof a === "string" ? a : `${a.name} ${a.vsn}`).join(", ")]),
    { rowData: (i) => ({ vsn: rows[i].vsn, status: rows[i].status }) });
}

function renderNodes(rows) {
  return table(["node", "running", "permanent", "releases", "error"],
    rows.map((n) => [n.node, n.running || "", n.permanent || "",
                     (n.releases || []).map((r) => `${r.vsn} (${r.status})`).join(", "), n.error || ""]));
}

function renderInstall() {
  const panel = document.getElementById("install");
  if (!installEvents.length) { panel.hidden = true; return; }
  const latest = installEvents[installEvents.length - 1];
  panel.hidden = false;
  panel.dataset.outcome = latest.outcome;
  document.getElementById("install-title").textContent =
    `${latest.from_vsn} → ${latest.to_vsn}: ${latest.outcome}`;
  const bar = document.getElementById("install-bar");
  bar.max = Math.max(1, latest.total);
  bar.value = latest.index;
  document.getElementById("install-step").textContent =
    `step ${latest.index}/${latest.total} ${latest.step} · ${latest.suspended} suspended · ${latest.migrated} migrated`;
  document.getElementById("install-log").replaceChildren(...installEvents.map((e) =>
    el("li", e.error ? { class: "error" } : {},
       `${e.index}/${e.total} ${e.step} (suspended ${e.suspended}, migrated ${e.migrated})${e.error ? ": " + e.error : ""}`)));
}

window.addEventListener("hashchange", () => { detail.hidden = true; connect(); });
connect();
