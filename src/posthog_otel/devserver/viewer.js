// The devserver's event viewer. Filters run on the server, over every stored event; every
// value reaches the page as text (textContent, never HTML), so captured data stays inert.
"use strict";

const LIMIT = 500;
const REFRESH_MS = 1500;
const FILTER_DELAY_MS = 200;
const TEXT_LIMIT = 300; // characters of a value shown in a cell; the expanded row has it all
// Namespaces of OpenTelemetry's semantic conventions: an event's context, shown after its own.
const CONVENTIONS = new Set([
  "browser", "client", "cloud", "code", "container", "db", "deployment", "device", "enduser",
  "error", "exception", "faas", "gen_ai", "host", "http", "k8s", "messaging", "net", "network",
  "os", "otel", "peer", "process", "rpc", "server", "service", "session", "system",
  "telemetry", "thread", "url", "user_agent", "webengine",
]);

const $ = (id) => document.getElementById(id);
const expanded = new Set();
let shownKey = "";
let running = false;
let again = false;

// -- what an event says --------------------------------------------------------------

function text(value) {
  const shown = typeof value === "string" ? value : JSON.stringify(value);
  return shown === undefined ? "" : shown;
}

function clip(value) {
  const shown = text(value);
  return shown.length > TEXT_LIMIT ? shown.slice(0, TEXT_LIMIT) + "…" : shown;
}

function isConvention(key) {
  const dot = key.indexOf(".");
  return dot > 0 && CONVENTIONS.has(key.slice(0, dot));
}

function ownParts(properties, count) {
  const keys = Object.keys(properties).filter((key) => !key.startsWith("$"));
  const ordered = keys.filter((key) => !isConvention(key)).concat(keys.filter(isConvention));
  return ordered.slice(0, count).map((key) => [key, properties[key]]);
}

// [label, value] pairs that say what matters about this event; a null label shows the value alone.
function previewParts(event) {
  const p = event.properties || {};
  if (event.event === "$feature_flag_called") {
    return [["flag", p.$feature_flag], ["response", p.$feature_flag_response]].concat(ownParts(p, 4));
  }
  if (event.event === "$exception") {
    const list = Array.isArray(p.$exception_list) ? p.$exception_list : [];
    const first = list[0] && typeof list[0] === "object" ? list[0] : {};
    const type = first.type ?? p.$exception_type ?? "Error";
    const message = first.value ?? p.$exception_message ?? "";
    return [[null, `${text(type)}: ${text(message)}`]].concat(ownParts(p, 4));
  }
  if (event.event.startsWith("$ai_")) {
    const parts = [];
    if (p.$ai_model !== undefined) parts.push(["model", p.$ai_model]);
    if (p.$ai_input_tokens !== undefined || p.$ai_output_tokens !== undefined) {
      parts.push(["tokens", `${text(p.$ai_input_tokens ?? "?")} in, ${text(p.$ai_output_tokens ?? "?")} out`]);
    }
    if (typeof p.$ai_latency === "number") parts.push(["latency", `${p.$ai_latency.toFixed(2)} s`]);
    if (p.$ai_is_error === true) parts.push(["error", p.$ai_error ?? true]);
    return parts.concat(ownParts(p, 4));
  }
  return ownParts(p, 8);
}

function isAnonymous(event) {
  return (event.properties || {}).$process_person_profile === false;
}

function flagsOf(event) {
  return Object.entries(event.properties || {}).filter(([key]) => key.startsWith("$feature/"));
}

function traceOf(event) {
  const p = event.properties || {};
  const id = p.$trace_id ?? p.$ai_trace_id;
  return typeof id === "string" && id ? id : null;
}

function millis(timestamp) {
  const when = Date.parse(timestamp);
  return Number.isNaN(when) ? null : when;
}

// -- cells -------------------------------------------------------------------------------

function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined) node.textContent = content;
  return node;
}

function textCell(className, value) {
  const td = el("td", className, clip(value));
  td.title = text(value).slice(0, 2000);
  return td;
}

function whenCell(timestamp) {
  const when = millis(timestamp);
  const shown = when === null ? clip(timestamp) : new Date(when).toISOString().replace("T", " ").slice(0, 23);
  const td = el("td", "when", shown);
  td.title = text(timestamp);
  return td;
}

function personCell(event) {
  const td = el("td", "person");
  if (isAnonymous(event)) {
    td.append(el("span", "anonymous", "anonymous"));
    td.title = "personless: $process_person_profile is false";
  } else {
    td.title = event.distinct_id;
  }
  td.append(el("span", "id", clip(event.distinct_id)));
  return td;
}

function flagsCell(event) {
  const td = el("td", "flags");
  for (const [key, value] of flagsOf(event)) {
    const badge = el("span", "flag", clip(`${key.slice(9)}: ${JSON.stringify(value)}`));
    badge.title = `${key} = ${JSON.stringify(value)}`;
    td.append(badge);
  }
  return td;
}

function previewCell(event) {
  const td = el("td", "preview");
  const parts = previewParts(event);
  parts.forEach(([label, value], index) => {
    if (index > 0) td.append("  ");
    if (label !== null) {
      td.append(el("b", "", label), "=");
    }
    td.append(clip(value));
  });
  td.title = parts.map(([label, value]) => (label === null ? text(value) : `${label}=${text(value)}`)).join("\n").slice(0, 2000);
  return td;
}

function traceCell(event) {
  const td = el("td", "trace");
  const id = traceOf(event);
  if (id !== null) {
    const link = el("a", "", id.slice(0, 8));
    link.href = "#trace=" + encodeURIComponent(id);
    link.title = `every event of trace ${id}`;
    link.addEventListener("click", (click) => click.stopPropagation());
    td.append(link);
  }
  return td;
}

function append(body, event, cells) {
  const row = el("tr", "event");
  row.dataset.uuid = event.uuid;
  row.dataset.event = event.event;
  row.dataset.person = event.distinct_id;
  row.append(...cells);
  row.addEventListener("click", () => {
    expanded.has(event.uuid) ? expanded.delete(event.uuid) : expanded.add(event.uuid);
    shownKey = "";
    refresh();
  });
  body.append(row);
  if (expanded.has(event.uuid)) {
    const details = el("tr", "details");
    details.dataset.uuid = event.uuid;
    const td = el("td");
    td.colSpan = cells.length;
    if (event.event === "$exception") td.append(stackOf(event));
    td.append(el("pre", "", JSON.stringify(event, null, 2)));
    details.append(td);
    body.append(details);
  }
}

// An $exception's entries as error tracking shows them: each exception, then its frames
// (outermost call first), with the lines around in-app ones and the failing line marked.
function stackOf(event) {
  const box = el("div", "stack");
  const list = (event.properties || {}).$exception_list;
  for (const entry of Array.isArray(list) ? list : []) {
    if (!entry || typeof entry !== "object") continue;
    const how = entry.mechanism && entry.mechanism.type ? ` (${text(entry.mechanism.type)})` : "";
    box.append(el("div", "exception", clip(`${text(entry.type ?? "Error")}: ${text(entry.value ?? "")}${how}`)));
    const frames = entry.stacktrace && Array.isArray(entry.stacktrace.frames) ? entry.stacktrace.frames : [];
    for (const frame of frames) {
      if (!frame || typeof frame !== "object") continue;
      const where = `${text(frame.filename ?? "?")}:${text(frame.lineno ?? "?")} in ${text(frame.function ?? "?")}`;
      const item = el("div", frame.in_app ? "frame in-app" : "frame", where);
      const lines = [];
      const pre = Array.isArray(frame.pre_context) ? frame.pre_context : [];
      const post = Array.isArray(frame.post_context) ? frame.post_context : [];
      pre.forEach((line) => lines.push(`  ${text(line)}`));
      if (frame.context_line !== undefined) lines.push(`> ${text(frame.context_line)}`);
      post.forEach((line) => lines.push(`  ${text(line)}`));
      if (lines.length) item.append(el("pre", "context", lines.join("\n")));
      const variables = frame.code_variables && typeof frame.code_variables === "object" ? frame.code_variables : null;
      if (variables) {
        const shown = Object.entries(variables).map(([name, value]) => `${name} = ${text(value)}`);
        item.append(el("pre", "variables", shown.join("\n")));
      }
      box.append(item);
    }
  }
  return box;
}

// -- the event list ------------------------------------------------------------------

function listQuery() {
  const query = new URLSearchParams({ limit: String(LIMIT), order: $("order").value });
  const filters = [["event_contains", "filter-event"], ["distinct_id_contains", "filter-distinct-id"], ["q", "filter-text"]];
  for (const [name, id] of filters) {
    const value = $(id).value.trim();
    if (value) query.set(name, value);
  }
  return query;
}

async function fetchEvents(query) {
  const response = await fetch(`/api/events?${query}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`the devserver answered ${response.status}`);
  const total = Number(response.headers.get("X-Total-Count"));
  const events = await response.json();
  return { events, total: Number.isFinite(total) ? total : events.length };
}

async function showList() {
  const query = listQuery();
  const { events, total } = await fetchEvents(query);
  const filtered = [...query.keys()].some((name) => !["limit", "order"].includes(name));
  const key = `list|${query}|${total}|${events.map((e) => e.uuid).join(",")}`;
  if (key !== shownKey) {
    shownKey = key;
    const body = $("events");
    body.replaceChildren();
    for (const event of events) {
      append(body, event, [
        whenCell(event.timestamp),
        textCell("name", event.event),
        personCell(event),
        traceCell(event),
        flagsCell(event),
        previewCell(event),
      ]);
    }
    const empty = $("empty");
    empty.hidden = events.length > 0;
    empty.textContent = filtered
      ? "No events match these filters."
      : `No events yet. Point a PostHog SDK at ${location.origin} and they appear here.`;
  }
  const of = total > events.length ? ` of ${total}` : "";
  const what = filtered ? "matching events" : "events";
  $("status").textContent = `${events.length}${of} ${what}, newest first · updated ${new Date().toLocaleTimeString()}`;
}

// -- one trace, across services --------------------------------------------------------

function currentTrace() {
  const found = location.hash.match(/^#trace=(.+)$/);
  if (!found) return null;
  try {
    return decodeURIComponent(found[1]);
  } catch {
    return null;
  }
}

function spansOf(events) {
  const spans = new Map();
  for (const event of events) {
    const p = event.properties || {};
    const id = p.$span_id ?? p.$ai_span_id;
    if (typeof id !== "string") continue;
    const span = spans.get(id) || {};
    span.name ??= p.$otel_span_name ?? p.$ai_span_name;
    span.parent ??= p.$otel_parent_span_id ?? p.$ai_parent_id;
    span.service ??= p["service.name"];
    spans.set(id, span);
  }
  return spans;
}

function depthOf(spans, id) {
  const seen = new Set([id]);
  let depth = 0;
  for (let span = spans.get(id); span && span.parent && !seen.has(span.parent); span = spans.get(span.parent)) {
    seen.add(span.parent);
    depth += 1;
  }
  return depth;
}

function summary(events, spans) {
  const services = new Set();
  const people = new Set();
  let anonymous = 0;
  const flags = new Map();
  for (const event of events) {
    const p = event.properties || {};
    const span = spans.get(p.$span_id ?? p.$ai_span_id) || {};
    const service = p["service.name"] ?? span.service;
    if (service !== undefined) services.add(text(service));
    if (isAnonymous(event)) anonymous += 1;
    else people.add(event.distinct_id);
    for (const [key, value] of flagsOf(event)) {
      const values = flags.get(key.slice(9)) || new Set();
      values.add(JSON.stringify(value));
      flags.set(key.slice(9), values);
    }
  }
  const line = $("trace-summary");
  line.replaceChildren();
  const say = (words, warn) => line.append(warn ? el("span", "warn", words) : words);
  say(`${events.length} events from ${services.size} service${services.size === 1 ? "" : "s"}`);
  if (services.size) say(` (${[...services].join(", ")})`);
  say(" · people: ");
  say([...people].join(", ") || "none identified", people.size > 1);
  if (people.size > 1) say(" (more than one person in one trace)", true);
  if (anonymous) say(` · ${anonymous} anonymous`);
  say(" · flags in force: ");
  const shown = [...flags].map(([key, values]) => `${key}=${[...values].join(" | ")}`);
  say(shown.join(", ") || "none", false);
}

async function showTrace(id) {
  const query = new URLSearchParams({ trace_id: id, order: "time", limit: "10000" });
  const { events } = await fetchEvents(query);
  events.reverse(); // oldest first: the order things happened in
  const key = `trace|${id}|${events.map((e) => e.uuid).join(",")}`;
  if (key !== shownKey) {
    shownKey = key;
    $("trace-id").textContent = id;
    const spans = spansOf(events);
    summary(events, spans);
    const start = events.length ? millis(events[0].timestamp) : null;
    const body = $("trace-events");
    body.replaceChildren();
    for (const event of events) {
      const p = event.properties || {};
      const spanId = p.$span_id ?? p.$ai_span_id;
      const span = spans.get(spanId) || {};
      const when = millis(event.timestamp);
      const offset = start === null || when === null ? "" : `+${when - start}`;
      const spanName = p.$otel_span_name ?? p.$ai_span_name ?? span.name ?? "";
      const spanCell = el("td", "span");
      spanCell.append(clip(spanName));
      if (typeof spanId === "string") spanCell.append(el("span", "span-id", spanId.slice(0, 8)));
      spanCell.style.paddingLeft = `${10 + 14 * depthOf(spans, spanId)}px`;
      spanCell.title = `span ${text(spanName)} (${text(spanId ?? "no span id")})`;
      append(body, event, [
        el("td", "offset", offset),
        textCell("service", p["service.name"] ?? span.service ?? ""),
        spanCell,
        textCell("name", event.event),
        personCell(event),
        flagsCell(event),
        previewCell(event),
      ]);
    }
    $("empty").hidden = events.length > 0;
    $("empty").textContent = "No stored events belong to this trace.";
  }
  $("status").textContent = `trace of ${events.length} events, oldest first · updated ${new Date().toLocaleTimeString()}`;
}

// -- what the server was asked and does not speak ------------------------------------------

async function showNotSpoken() {
  const response = await fetch("/api/requests", { cache: "no-store" });
  if (!response.ok) return;
  const summary = await response.json();
  const routes = Object.entries(summary.not_spoken || {});
  const notice = $("not-spoken");
  notice.hidden = routes.length === 0;
  notice.textContent = "Requests this server does not speak (answered 404 or 405): "
    + routes.map(([route, count]) => `${route} (${count})`).join(", ");
}

// -- the loop ------------------------------------------------------------------------------

async function refresh() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    const trace = currentTrace();
    $("trace-view").hidden = trace === null;
    $("list-view").hidden = trace !== null;
    if (trace === null) await showList();
    else await showTrace(trace);
    await showNotSpoken();
  } catch (error) {
    $("status").textContent = `cannot reach the devserver (${error.message || error})`;
  } finally {
    running = false;
    if (again) {
      again = false;
      refresh();
    }
  }
}

let pending = null;
function refreshSoon() {
  clearTimeout(pending);
  pending = setTimeout(refresh, FILTER_DELAY_MS);
}

for (const id of ["filter-event", "filter-distinct-id", "filter-text"]) {
  $(id).addEventListener("input", refreshSoon);
}
$("order").addEventListener("change", refresh);
$("trace-back").addEventListener("click", (click) => {
  click.preventDefault();
  history.pushState(null, "", location.pathname + location.search);
  refresh();
});
window.addEventListener("hashchange", () => {
  shownKey = "";
  refresh();
});
refresh();
setInterval(() => {
  if ($("auto-refresh").checked) refresh();
}, REFRESH_MS);
