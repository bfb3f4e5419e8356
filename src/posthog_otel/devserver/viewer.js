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
  td.append(personLink(event.distinct_id));
  return td;
}

// A distinct id, linked to its person page (events, traces and log lines together).
function personLink(distinctId) {
  const link = el("a", "id", clip(distinctId));
  link.href = "#person=" + encodeURIComponent(text(distinctId));
  link.addEventListener("click", (click) => click.stopPropagation());
  return link;
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

// The view the address asks for: ["trace", id], ["person", distinct id], or null (the list).
function currentView() {
  const found = location.hash.match(/^#(trace|person)=(.+)$/);
  if (!found) return null;
  try {
    return [found[1], decodeURIComponent(found[2])];
  } catch {
    return null;
  }
}

async function fetchJson(path, query) {
  const response = await fetch(`${path}?${query}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`the devserver answered ${response.status}`);
  return response.json();
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

// -- spans as a waterfall, with the trace's events and log lines on it --------------------

const nanosToMillis = (nanos) => Number(nanos) / 1e6;

function logMillis(record) {
  return nanosToMillis(record.time_unix_nano || record.observed_time_unix_nano || 0);
}

function logLevel(record) {
  const words = ["", "trace", "debug", "info", "warn", "error", "fatal"];
  const number = Number(record.severity_number) || 0;
  return record.severity_text || words[Math.min(6, Math.ceil(number / 4))] || "";
}

function levelClass(record) {
  const number = Number(record.severity_number) || 0;
  return number >= 21 ? "fatal" : number >= 17 ? "error" : number >= 13 ? "warn" : "";
}

// Spans in tree order (each after its parent, siblings by start), with their depth. A span
// whose parent is not stored (or a loop) starts a tree of its own.
function treeOrder(spans) {
  const byId = new Map(spans.map((span) => [span.span_id, span]));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    const parent = span.parent_span_id;
    if (parent && parent !== span.span_id && byId.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(span);
    } else {
      roots.push(span);
    }
  }
  const byStart = (a, b) => nanosToMillis(a.start_time_unix_nano) - nanosToMillis(b.start_time_unix_nano);
  const ordered = [];
  const seen = new Set();
  const walk = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [span, depth] = stack.pop();
      if (seen.has(span.span_id)) continue;
      seen.add(span.span_id);
      ordered.push([span, depth]);
      const below = (children.get(span.span_id) || []).slice().sort(byStart).reverse();
      for (const child of below) stack.push([child, depth + 1]);
    }
  };
  roots.sort(byStart).forEach(walk);
  spans.filter((span) => !seen.has(span.span_id)).sort(byStart).forEach(walk);
  return ordered;
}

function showWaterfall(stored, events, logs) {
  const box = $("waterfall");
  box.replaceChildren();
  box.hidden = stored.length === 0;
  if (!stored.length) return;
  const times = [];
  for (const span of stored) {
    times.push(nanosToMillis(span.start_time_unix_nano), nanosToMillis(span.end_time_unix_nano));
  }
  for (const event of events) {
    const when = millis(event.timestamp);
    if (when !== null) times.push(when);
  }
  for (const record of logs) times.push(logMillis(record));
  const usable = times.filter((t) => Number.isFinite(t) && t > 0);
  const start = Math.min(...usable);
  const total = Math.max(Math.max(...usable) - start, 0.001);
  const at = (when) => Math.min(100, Math.max(0, ((when - start) / total) * 100));

  const axis = el("div", "span-row axis");
  const axisTrack = el("div", "track");
  const last = el("span", "", `${total.toFixed(1)} ms`);
  last.style.right = "0";
  axisTrack.append(el("span", "", "0 ms"), last);
  axis.append(el("div", "span-label", `${stored.length} span${stored.length === 1 ? "" : "s"}`), axisTrack);
  box.append(axis);

  const marks = (spanId) => {
    const found = [];
    for (const event of events) {
      const p = event.properties || {};
      const when = millis(event.timestamp);
      if ((p.$span_id ?? null) !== spanId || when === null) continue;
      const mark = el("span", "mark event");
      mark.dataset.event = event.event;
      mark.title = `${text(event.event)} at +${(when - start).toFixed(1)} ms`;
      mark.style.left = `${at(when)}%`;
      found.push(mark);
    }
    for (const record of logs) {
      if ((record.span_id || null) !== spanId) continue;
      const mark = el("span", `mark log ${levelClass(record)}`.trim());
      mark.dataset.level = logLevel(record);
      mark.title = `${logLevel(record)}: ${clip(record.body)}`;
      mark.style.left = `${at(logMillis(record))}%`;
      found.push(mark);
    }
    return found;
  };

  const shown = new Set();
  for (const [span, depth] of treeOrder(stored)) {
    shown.add(span.span_id);
    const row = el("div", "span-row");
    row.dataset.spanId = span.span_id;
    row.dataset.depth = String(depth);
    const label = el("div", "span-label");
    label.style.paddingLeft = `${8 + 14 * Math.min(depth, 20)}px`;
    label.append(el("span", "span-name", clip(span.name)));
    const service = (span.resource || {})["service.name"];
    if (service !== undefined) label.append(el("span", "span-service", clip(service)));
    const began = nanosToMillis(span.start_time_unix_nano);
    const took = nanosToMillis(span.end_time_unix_nano) - began;
    label.title = `${text(span.name)} (${span.span_id}): ${took.toFixed(2)} ms`;
    const track = el("div", "track");
    const error = span.status && span.status.code === 2;
    const bar = el("div", error ? "bar error" : "bar");
    bar.style.left = `${at(began)}%`;
    bar.style.width = `${Math.max(0, at(began + took) - at(began))}%`;
    bar.title = label.title + (error && span.status.message ? ` · ${text(span.status.message)}` : "");
    track.append(bar, el("span", "duration", `${took.toFixed(1)} ms`), ...marks(span.span_id));
    row.append(label, track);
    box.append(row);
  }
  // What names no stored span (or none at all) goes on a row of its own.
  const loose = [];
  for (const id of new Set([...events.map((e) => (e.properties || {}).$span_id ?? null), ...logs.map((r) => r.span_id || null)])) {
    if (!shown.has(id)) loose.push(...marks(id));
  }
  if (loose.length) {
    const row = el("div", "span-row loose");
    const track = el("div", "track");
    track.append(...loose);
    row.append(el("div", "span-label", "not in a stored span"), track);
    box.append(row);
  }
}

function showTraceLogs(logs, spans, start) {
  const body = $("trace-logs");
  body.replaceChildren();
  for (const record of logs) {
    const row = el("tr", "log");
    row.dataset.level = logLevel(record);
    const offset = start === null ? "" : `+${Math.round(logMillis(record) - start)}`;
    const span = spans.get(record.span_id) || {};
    row.append(
      el("td", "offset", offset),
      el("td", `level ${levelClass(record)}`.trim(), clip(logLevel(record))),
      textCell("span", span.name ?? record.span_id ?? ""),
      textCell("preview", record.body),
    );
    body.append(row);
  }
}

async function showTrace(id) {
  const query = new URLSearchParams({ trace_id: id, order: "time", limit: "10000" });
  const [{ events }, stored, logs] = await Promise.all([
    fetchEvents(query),
    fetchJson("/api/spans", new URLSearchParams({ trace_id: id, limit: "10000" })),
    fetchJson("/api/logs", new URLSearchParams({ trace_id: id, limit: "10000" })),
  ]);
  events.reverse(); // oldest first: the order things happened in
  logs.sort((a, b) => logMillis(a) - logMillis(b));
  const key = `trace|${id}|${events.map((e) => e.uuid).join(",")}|${stored.length}|${logs.length}`;
  if (key !== shownKey) {
    shownKey = key;
    $("trace-id").textContent = id;
    const spans = spansOf(events);
    for (const span of stored) {
      const known = spans.get(span.span_id) || {};
      known.name ??= span.name;
      known.parent ??= span.parent_span_id || undefined;
      known.service ??= (span.resource || {})["service.name"];
      spans.set(span.span_id, known);
    }
    summary(events, spans);
    $("trace-summary").append(` · ${stored.length} spans · ${logs.length} log lines`);
    showWaterfall(stored, events, logs);
    const starts = stored.map((span) => nanosToMillis(span.start_time_unix_nano));
    const first = events.length ? millis(events[0].timestamp) : null;
    showTraceLogs(logs, spans, starts.length ? Math.min(...starts) : first);
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
    $("empty").hidden = events.length + stored.length + logs.length > 0;
    $("empty").textContent = "Nothing stored belongs to this trace.";
  }
  $("status").textContent = `trace of ${events.length} events, ${stored.length} spans, ${logs.length} log lines · updated ${new Date().toLocaleTimeString()}`;
}

// -- one person: their events, traces and log lines ------------------------------------------

function traceLink(id) {
  const td = el("td", "trace-id");
  const link = el("a", "", clip(id));
  link.href = "#trace=" + encodeURIComponent(id);
  link.title = `trace ${id}`;
  td.append(link);
  return td;
}

function nanosCell(nanos) {
  const when = nanosToMillis(nanos);
  return whenCell(Number.isFinite(when) && when > 0 ? new Date(Math.round(when)).toISOString() : "");
}

// Each trace the person appears in (by their spans, or their events' $trace_id), newest first.
function tracesOf(spans, events) {
  const traces = new Map();
  const entry = (id) => {
    if (!traces.has(id)) traces.set(id, { id, spans: [], events: 0, start: Infinity, end: -Infinity });
    return traces.get(id);
  };
  for (const span of spans) {
    const trace = entry(span.trace_id);
    trace.spans.push(span);
    trace.start = Math.min(trace.start, nanosToMillis(span.start_time_unix_nano));
    trace.end = Math.max(trace.end, nanosToMillis(span.end_time_unix_nano));
  }
  for (const event of events) {
    const id = traceOf(event);
    if (id === null) continue;
    const trace = entry(id);
    trace.events += 1;
    const when = millis(event.timestamp);
    if (when !== null && !trace.spans.length) {
      trace.start = Math.min(trace.start, when);
      trace.end = Math.max(trace.end, when);
    }
  }
  return [...traces.values()].sort((a, b) => b.start - a.start);
}

async function showPerson(distinctId) {
  const [{ events }, spans, logs] = await Promise.all([
    fetchEvents(new URLSearchParams({ distinct_id: distinctId, order: "time", limit: String(LIMIT) })),
    fetchJson("/api/spans", new URLSearchParams({ distinct_id: distinctId, limit: "10000" })),
    fetchJson("/api/logs", new URLSearchParams({ distinct_id: distinctId, limit: String(LIMIT) })),
  ]);
  const key = `person|${distinctId}|${events.map((e) => e.uuid).join(",")}|${spans.length}|${logs.length}`;
  const traces = tracesOf(spans, events);
  if (key !== shownKey) {
    shownKey = key;
    $("person-id").textContent = distinctId;
    const sessions = new Set(events.map((e) => (e.properties || {}).$session_id).filter((s) => typeof s === "string"));
    for (const record of logs) {
      const session = (record.attributes || {}).sessionId;
      if (typeof session === "string") sessions.add(session);
    }
    $("person-summary").textContent = `${events.length} events · ${traces.length} traces · ${logs.length} log lines`
      + (sessions.size ? ` · sessions: ${[...sessions].join(", ")}` : "");

    const traceBody = $("person-traces");
    traceBody.replaceChildren();
    for (const trace of traces) {
      const row = el("tr", "trace");
      row.dataset.trace = trace.id;
      const ids = new Set(trace.spans.map((s) => s.span_id));
      const root = trace.spans.filter((s) => !ids.has(s.parent_span_id))
        .sort((a, b) => nanosToMillis(a.start_time_unix_nano) - nanosToMillis(b.start_time_unix_nano))[0];
      const took = Number.isFinite(trace.end - trace.start) ? `${(trace.end - trace.start).toFixed(1)} ms` : "";
      row.append(
        whenCell(Number.isFinite(trace.start) ? new Date(Math.round(trace.start)).toISOString() : ""),
        traceLink(trace.id),
        textCell("name", root ? root.name : ""),
        el("td", "count", String(trace.spans.length)),
        el("td", "count", String(trace.events)),
        el("td", "count", took),
      );
      traceBody.append(row);
    }

    const eventBody = $("person-events");
    eventBody.replaceChildren();
    for (const event of events) {
      append(eventBody, event, [
        whenCell(event.timestamp),
        textCell("name", event.event),
        traceCell(event),
        flagsCell(event),
        previewCell(event),
      ]);
    }

    const logBody = $("person-logs");
    logBody.replaceChildren();
    for (const record of logs) {
      const row = el("tr", "log");
      row.dataset.level = logLevel(record);
      row.append(
        nanosCell(record.time_unix_nano || record.observed_time_unix_nano),
        el("td", `level ${levelClass(record)}`.trim(), clip(logLevel(record))),
        record.trace_id ? traceLink(record.trace_id) : el("td", "trace-id"),
        textCell("preview", record.body),
      );
      logBody.append(row);
    }
    $("empty").hidden = events.length + spans.length + logs.length > 0;
    $("empty").textContent = "Nothing stored names this person.";
  }
  $("status").textContent = `person: ${events.length} events, ${traces.length} traces, ${logs.length} log lines · updated ${new Date().toLocaleTimeString()}`;
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
    const view = currentView();
    const kind = view === null ? "list" : view[0];
    $("trace-view").hidden = kind !== "trace";
    $("person-view").hidden = kind !== "person";
    $("list-view").hidden = kind !== "list";
    if (kind === "trace") await showTrace(view[1]);
    else if (kind === "person") await showPerson(view[1]);
    else await showList();
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
for (const id of ["trace-back", "person-back"]) {
  $(id).addEventListener("click", (click) => {
    click.preventDefault();
    history.pushState(null, "", location.pathname + location.search);
    shownKey = "";
    refresh();
  });
}
window.addEventListener("hashchange", () => {
  shownKey = "";
  refresh();
});
refresh();
setInterval(() => {
  if ($("auto-refresh").checked) refresh();
}, REFRESH_MS);
