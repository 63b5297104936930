// The analysts' and auditors' dashboard. Reads the API with the key kept in sessionStorage;
// renders every value as text (textContent / text nodes; no HTML parsing of data).
import { lineChart } from "./chart.js";

const KEY = "incident-ledger.api-key";
const SEVERITIES = ["P1", "P2", "P3", "P4"];
const KINDS = {
  major_incident_without_bridge: "P1/P2 incident without a bridge",
  closed_incident_without_report: "Closed incident without its draft report",
  emergency_change_without_approval: "Emergency change without executive approval",
  bridge_active_on_closed_incident: "Bridge still active on a closed incident",
  major_incident_without_rca: "Resolved P1/P2 without an RCA",
};
const SHOWN = 200;
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body) {
    const code = body && typeof body.code === "string" ? body.code : `http.${status}`;
    const text = body && typeof body.message === "string" ? body.message : `HTTP ${status}`;
    super(`${text} (${status} ${code})`);
    this.status = status;
    this.code = code;
  }
}

// --- DOM helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function table(target, headings, rows) {
  const head = el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h))));
  target.replaceChildren(head, el("tbody", {}, rows));
}

function emptyRow(target, columns, text) {
  target.tBodies[0].append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, text)));
}

function showError(section, error) {
  const box = section.querySelector(".error");
  box.textContent = !error ? "" : typeof error === "string" ? error : describe(error);
  box.hidden = !error;
}

function describe(error) {
  if (!(error instanceof ApiError)) return `Cannot reach the service: ${error.message}`;
  if (error.status === 403) return `Your key may not read this: ${error.message}`;
  if (error.status === 503) return `Not available right now, try Refresh: ${error.message}`;
  return error.message;
}

function message(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

// --- formatting --------------------------------------------------------------------------------

function minutes(value) {
  return value === null || value === undefined ? "—" : String(value);
}

function human(value) {
  if (value === null || value === undefined || value < 60) return "";
  const m = Math.round(value);
  const d = Math.floor(m / 1440);
  const h = Math.floor((m % 1440) / 60);
  return d > 0 ? `≈ ${d} d ${h} h` : `≈ ${h} h ${m % 60} m`;
}

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${value} %`;
}

function incidentLink(number, id) {
  const ref = number || id;
  if (!ref) return "—";
  return el("a", { href: `#incident=${encodeURIComponent(ref)}`, class: "incident-link" }, ref);
}

function badge(status) {
  return el("span", { class: `badge ${String(status).replace(/[^a-z_]/g, "")}` }, status);
}

// --- the API -----------------------------------------------------------------------------------

async function api(path, params = []) {
  const query = new URLSearchParams(params).toString();
  const response = await fetch(query ? `${path}?${query}` : path, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}`, Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 401) signOut(`Your API key was not accepted: ${error.message}. Sign in again.`);
    throw error;
  }
  return body;
}

// --- MTTA / MTTR trend -------------------------------------------------------------------------

let metrics = null;

function weeksBack(count) {
  const now = new Date();
  const day = (now.getUTCDay() + 6) % 7; // 0 = Monday
  const monday = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - day);
  return Array.from({ length: count }, (_, i) =>
    new Date(monday - (count - 1 - i) * 7 * 86400000).toISOString().slice(0, 10));
}

async function loadTrend() {
  const section = $("trend");
  const weeks = weeksBack(Number($("weeks").value));
  try {
    const report = await api("/metrics/mtta-mttr", [
      ["group_by", "week"], ["group_by", "severity"], ["detected_from", weeks[0]], ["provenance", "false"],
    ]);
    metrics = { report, weeks };
    showError(section, null);
    renderTrend();
  } catch (error) {
    showError(section, error);
  }
}

function card(name, label, value, unit, detail) {
  return el("div", { class: "card", "data-figure": name },
    el("span", { class: "label" }, label),
    el("span", { class: "value" }, value),
    unit ? el("span", { class: "unit" }, ` ${unit}`) : null,
    el("span", { class: "detail" }, detail));
}

function spread(stat) {
  const parts = [human(stat.mean), `median ${minutes(stat.median)}`, `p90 ${minutes(stat.p90)}`, `n ${stat.count}`];
  return parts.filter(Boolean).join(" · ");
}

function renderTrend() {
  if (!metrics) return;
  const { report, weeks } = metrics;
  const stat = $("statistic").value;
  const o = report.overall;
  $("trend-range").textContent =
    `Incidents detected from ${weeks[0]} (UTC) to now; ${o.incidents} incident(s). ` +
    "MTTA: detection → first acknowledgment; MTTR: detection → last resolution.";
  $("overall").replaceChildren(
    card("mtta-mean", "MTTA mean", minutes(o.mtta.mean), "min", spread(o.mtta)),
    card("mttr-mean", "MTTR mean", minutes(o.mttr.mean), "min", spread(o.mttr)),
    card("incidents", "Incidents", String(o.incidents), "", "detected in the period"),
    card("sla-compliance", "SLA compliance", percent(o.sla_compliance.percent), "",
      `${o.sla_compliance.compliant} of ${o.sla_compliance.decided} decided clocks`),
    card("reopen-rate", "Reopen rate", percent(o.reopen_rate.rate), "",
      `${o.reopen_rate.reopened} of ${o.reopen_rate.resolved} resolved`),
  );
  const present = SEVERITIES.filter((s) => report.groups.some((g) => g.key.severity === s));
  for (const metric of ["mtta", "mttr"]) {
    const series = present.map((severity) => ({
      name: severity,
      className: `sev-${severity}`,
      points: report.groups
        .filter((g) => g.key.severity === severity && weeks.includes(g.key.week))
        .map((g) => ({
          index: weeks.indexOf(g.key.week),
          value: g[metric][stat],
          tip: `${severity}, week of ${g.key.week}: ${metric.toUpperCase()} ${stat} ` +
            `${minutes(g[metric][stat])} min (n ${g[metric].count})`,
        })),
    }));
    lineChart($(`chart-${metric}`), {
      title: `${metric.toUpperCase()} ${stat} by week (minutes)`,
      labels: weeks,
      series,
      unit: "minutes",
    });
  }
  const stats = ["mtta", "mttr"].flatMap((m) => ["mean", "median", "p90"].map((s) => [m, s]));
  table($("trend-table"),
    ["Week", "Severity", "Incidents", ...stats.map(([m, s]) => `${m.toUpperCase()} ${s}`)],
    report.groups.map((g) => el("tr", {},
      el("td", {}, g.key.week), el("td", {}, g.key.severity), el("td", {}, g.incidents),
      stats.map(([m, s]) => el("td", { class: "num" }, minutes(g[m][s]))))));
}

// --- SLA clocks --------------------------------------------------------------------------------

let slaCursor = null;

function clock(state) {
  return el("div", { class: "clock" }, badge(state.status),
    ` ${state.elapsed_minutes} / ${state.target_minutes} min (${state.used_percent} %)`,
    el("div", { class: "detail" }, `due ${when(state.due_at)}`));
}

function slaRow(p) {
  return el("tr", { "data-number": p.number },
    el("td", {}, incidentLink(p.number, p.incident_id)),
    el("td", {}, p.client_name || p.client_id), el("td", {}, p.tier), el("td", {}, p.severity),
    el("td", {}, p.status), el("td", {}, badge(p.sla_status)),
    el("td", {}, clock(p.response)), el("td", {}, clock(p.resolution)),
    el("td", {}, when(p.detection_time)));
}

async function loadSla(more = false) {
  const section = $("sla");
  try {
    const params = [["limit", "100"]];
    if (more && slaCursor) params.push(["cursor", slaCursor]);
    const page = await api("/sla/breaches", params);
    showError(section, null);
    slaCursor = page.next_cursor;
    $("sla-more").hidden = !slaCursor;
    if (!more) {
      $("sla-now").textContent = `as of ${when(page.now)} · breached and at-risk clocks`;
      const s = page.summary;
      $("sla-summary").replaceChildren(
        card("breached", "Breached", String(s.breached), "", "pairs (incident, client)"),
        card("at-risk", "At risk", String(s.at_risk), "", "≥ 75 % of a target used"),
        card("running", "Running", String(s.running), "", "within target"),
        card("met", "Met", String(s.met), "", "both clocks met"),
      );
      const headings = ["Incident", "Client", "Tier", "Severity", "Status", "SLA", "Response",
        "Resolution", "Detected"];
      table($("sla-table"), headings, page.items.map(slaRow));
      if (page.items.length === 0) emptyRow($("sla-table"), 9, "No breached or at-risk clocks.");
    } else {
      $("sla-table").tBodies[0].append(...page.items.map(slaRow));
    }
  } catch (error) {
    showError(section, error);
  }
}

// --- obligations -------------------------------------------------------------------------------

async function loadObligations() {
  const section = $("obligations");
  try {
    const { items } = await api("/obligations");
    showError(section, null);
    $("obligations-count").textContent = `${items.length} open`;
    table($("obligations-table"), ["Owed", "Record", "Incident", "Since", "What"],
      items.slice(0, SHOWN).map((o) => el("tr", { "data-kind": o.kind },
        el("td", {}, KINDS[o.kind] || o.kind),
        el("td", { class: "record" }, `${o.record_type} `, o.number || o.record_id),
        el("td", {}, incidentLink(o.incident_number, o.incident_id)),
        el("td", {}, when(o.since)), el("td", {}, o.description))));
    if (items.length === 0) emptyRow($("obligations-table"), 5, "Nothing owed.");
    $("obligations-more").hidden = items.length <= SHOWN;
    $("obligations-more").textContent = `Showing the oldest ${SHOWN} of ${items.length}.`;
  } catch (error) {
    showError(section, error);
  }
}

// --- timeline ----------------------------------------------------------------------------------

function change(field, pair) {
  const show = (v) => (typeof v === "string" ? v : JSON.stringify(v));
  const [before, after] = Array.isArray(pair) ? pair : [null, pair];
  const text = `${field}: ${show(before)} → ${show(after)}`;
  return el("li", {}, text.length > 240 ? `${text.slice(0, 240)}…` : text);
}

function entryRow(e) {
  const changes = Object.entries(e.changes || {}).map(([f, p]) => change(f, p));
  return el("tr", { "data-position": e.position },
    el("td", { class: "num" }, e.position), el("td", {}, when(e.occurred_at)),
    el("td", {}, e.event_type), el("td", {}, e.record_type),
    el("td", {}, e.actor_name ? `${e.actor_name} (${e.actor_role})` : "—"),
    el("td", {}, el("ul", { class: "changes" }, changes)));
}

async function openIncident(ref) {
  const section = $("timeline");
  const body = $("timeline-body");
  $("incident").value = ref;
  const wanted = /^inc\d+$/i.test(ref) ? ref.toUpperCase() : ref;
  try {
    const path = `/incidents/${encodeURIComponent(wanted)}`;
    const [incident, timeline] = await Promise.all([api(path), api(`${path}/timeline`)]);
    showError(section, null);
    const entries = el("table", { class: "grid", id: "timeline-table" });
    table(entries, ["#", "Occurred", "Event", "Record", "Actor", "Changes"],
      timeline.entries.map(entryRow));
    body.replaceChildren(
      el("h3", { id: "timeline-incident" }, `${incident.number} · ${incident.title}`),
      el("p", { class: "note" },
        `${incident.severity} · ${incident.status} · detected ${when(incident.detection_time)} · `,
        el("span", { id: "timeline-count" }, `${timeline.entries.length} entries`)),
      entries);
    section.scrollIntoView({ block: "start" });
  } catch (error) {
    body.replaceChildren();
    if (error instanceof ApiError && error.status === 404) {
      showError(section, `No incident ${wanted} (or not yours to read).`);
    } else {
      showError(section, error);
    }
  }
}

function fromHash() {
  const match = /^#incident=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

// --- session -----------------------------------------------------------------------------------

function signOut(text) {
  sessionStorage.removeItem(KEY);
  $("board").hidden = true;
  $("session").hidden = true;
  $("signin").hidden = false;
  $("who").textContent = "";
  message(text);
}

async function refresh() {
  await Promise.all([loadTrend(), loadSla(), loadObligations()]);
}

async function start() {
  delete document.body.dataset.ready;
  if (!sessionStorage.getItem(KEY)) return signOut("");
  let me;
  try {
    me = await api("/me");
  } catch (error) {
    if (error.status !== 401) message(describe(error));
    return;
  }
  message("");
  $("who").textContent = `${me.first_name} ${me.last_name} (${me.role})`;
  $("signin").hidden = true;
  $("session").hidden = false;
  $("board").hidden = false;
  await refresh();
  const ref = fromHash();
  if (ref) await openIncident(ref);
  document.body.dataset.ready = "true";
}

$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("key").value.trim();
  $("key").value = "";
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  start();
});
$("signout").addEventListener("click", () => signOut("Signed out."));
$("refresh").addEventListener("click", () => refresh());
$("weeks").addEventListener("change", () => loadTrend());
$("statistic").addEventListener("change", () => renderTrend());
$("sla-more").addEventListener("click", () => loadSla(true));
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const ref = $("incident").value.trim();
  if (!ref) return;
  if (fromHash() === ref) openIncident(ref);
  else location.hash = `incident=${encodeURIComponent(ref)}`;
});
window.addEventListener("hashchange", () => {
  const ref = fromHash();
  if (ref && sessionStorage.getItem(KEY)) openIncident(ref);
});
start();
