"use strict";
// The explorer (rnnlab/explore.py): record a text, colour it by one unit, show a token's values on
// hover or focus, find the units on throughout a span. Every value from the server reaches the page
// as text (textContent / text nodes), never as markup: a run directory may hold anything.
const $ = (id) => document.getElementById(id);
const TOP_UNITS = 8;  // units listed for a token, by |activation|
let recording = null;  // the last /api/record answer
let current = 0;  // the token that has the tab stop
let pickedStart = null;  // Enter on a token: the start of a range, then its end

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setState(state) {
  document.body.dataset.state = state;  // read by the end-to-end test
  $("go").disabled = state === "running";
  $("find").disabled = state === "running";
}

function bold(text) {
  const b = document.createElement("b");
  b.textContent = text;
  return b;
}

function code(text) {
  const c = document.createElement("code");
  c.textContent = text;
  return c;
}

function checkInfo(info) {
  const ok = info !== null && typeof info === "object" &&
    ["name", "run", "cell"].every((key) => typeof info[key] === "string") && ["char", "word"].includes(info.level) &&
    ["layers", "hidden", "parameters", "vocab_size"].every((key) => Number.isInteger(info[key]));
  if (!ok) throw new Error("the server sent malformed model information");
  return info;
}

// The shape of /api/record's answer; anything else is refused before it reaches the page.
function checkRecording(r) {
  const n = Array.isArray(r?.tokens) ? r.tokens.length : -1;
  const ok = n >= 2 && r.tokens.every((t) => typeof t === "string") && ["char", "word"].includes(r.level) &&
    Number.isInteger(r.layers) && Number.isInteger(r.hidden) && Number.isInteger(r.layer) &&
    typeof r.signal === "string" && r.signals !== null && typeof r.signals === "object" &&
    Object.values(r.signals).every((k) => typeof k === "string") &&
    Array.isArray(r.loss) && r.loss.length === n && r.loss.every((x) => x === null || Number.isFinite(x)) &&
    Array.isArray(r.top) && r.top.length === n &&
    r.top.every((row) => Array.isArray(row) && row.every((p) => typeof p[0] === "string" && Number.isFinite(p[1]))) &&
    Array.isArray(r.values) && r.values.length === n &&
    r.values.every((row) => Array.isArray(row) && row.length === r.hidden && row.every(Number.isFinite));
  if (!ok) throw new Error("the server sent a malformed recording");
  return r;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

async function loadInfo() {
  const info = checkInfo(await (await fetch("/api/info")).json());
  const line = document.createElement("span");
  line.append(bold(`${info.name} (${info.run})`),
    ` — ${info.cell} ${info.layers}×${info.hidden}, ${info.level}-level, vocabulary ${info.vocab_size}`);
  $("model").replaceChildren(line);
  $("layer").replaceChildren(...Array.from({ length: info.layers }, (_, l) => new Option(`${l}`, `${l}`)));
  $("layer").value = `${info.layers - 1}`;
  $("signal").replaceChildren(new Option("h", "h"));
  $("unit").max = info.hidden - 1;
}

function unit() {
  const j = Number($("unit").value);
  return Number.isInteger(j) && j >= 0 && j < (recording ? recording.hidden : Infinity) ? j : 0;
}

// The colour of an activation: red when positive, blue when negative, its opacity |value| / scale
// (scale 1 for gates and tanh signals, the largest |value| in the text for unbounded ones).
function colour(value, scale) {
  const alpha = Math.min(Math.abs(value) / scale, 1).toFixed(3);
  return value >= 0 ? `rgba(214, 39, 40, ${alpha})` : `rgba(31, 119, 180, ${alpha})`;
}

function scaleOf(j) {
  if (["gate", "tanh"].includes(recording.signals[recording.signal])) return 1;
  return Math.max(1e-6, ...recording.values.map((row) => Math.abs(row[j])));
}

function paint() {
  if (!recording) return;
  const j = unit();
  const scale = scaleOf(j);
  const spans = $("tokens").children;
  for (let t = 0; t < spans.length; t++) spans[t].style.backgroundColor = colour(recording.values[t][j], scale);
  $("tokens-title").textContent =
    `The text, coloured by unit ${j} of layer ${recording.layer}'s ${recording.signal}`;
}

function shownToken(token) {
  if (recording.level === "word") return token === "<eos>" ? "\n" : token;
  return token;
}

function render() {
  const spans = recording.tokens.map((token, t) => {
    const span = document.createElement("span");
    span.textContent = shownToken(token);
    span.dataset.index = `${t}`;
    span.tabIndex = t === 0 ? 0 : -1;
    span.setAttribute("aria-label", `token ${t}: ${JSON.stringify(token)}`);
    return span;
  });
  const nodes = [];
  spans.forEach((span, t) => {
    nodes.push(span);
    if (recording.level === "word" && recording.tokens[t] !== "<eos>") nodes.push(document.createTextNode(" "));
  });
  $("tokens").replaceChildren(...nodes);
  current = 0;
  paint();
}

function bits(nats) {
  return nats / Math.LN2;
}

function predictions(row) {
  return row.map(([token, p]) => `${JSON.stringify(token)} ${p.toFixed(2)}`).join(", ");
}

// A token's loss, the model's expectations and its most active units of the chosen signal.
function describe(t) {
  const r = recording;
  const row = r.values[t];
  const order = row.map((v, j) => j).sort((a, b) => Math.abs(row[b]) - Math.abs(row[a])).slice(0, TOP_UNITS);
  const lines = [];
  const head = document.createElement("div");
  head.append("token ", bold(`${t}`), " ", code(JSON.stringify(r.tokens[t])), ": ");
  if (r.loss[t] === null) head.append("the first token has no loss");
  else head.append(`loss ${bits(r.loss[t]).toFixed(2)} bits (p = ${Math.exp(-r.loss[t]).toFixed(3)})`);
  head.append(`; unit ${unit()} = ${row[unit()].toFixed(3)}`);
  lines.push(head);
  if (t > 0) {
    const expected = document.createElement("div");
    expected.append("the model expected here: ", predictions(r.top[t - 1]));
    lines.push(expected);
  }
  const next = document.createElement("div");
  next.append("after it, the model predicts: ", predictions(r.top[t]));
  lines.push(next);
  const units = document.createElement("div");
  units.className = "top-units";
  units.append(`largest |${r.signal}| in layer ${r.layer}: `,
    order.map((j) => `#${j} ${row[j].toFixed(3)}`).join(", "));
  lines.push(units);
  $("details").replaceChildren(...lines);
  $("details").dataset.token = `${t}`;
}

function focusToken(t) {
  const spans = $("tokens").children;
  if (!spans.length) return;
  t = Math.max(0, Math.min(spans.length - 1, t));
  spans[current].tabIndex = -1;
  spans[t].tabIndex = 0;
  current = t;
  spans[t].focus();
}

function tokenOf(node) {
  const element = node && (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement);
  const span = element && element.closest("#tokens span");
  return span ? Number(span.dataset.index) : null;
}

function setRange(start, end) {
  $("start").value = `${Math.min(start, end)}`;
  $("end").value = `${Math.max(start, end) + 1}`;
}

async function record(event) {
  if (event) event.preventDefault();
  const body = { text: $("text").value, layer: Number($("layer").value), signal: $("signal").value || "h" };
  setState("running");
  setStatus("recording…");
  try {
    const answer = checkRecording(await post("/api/record", body));
    const keep = $("signal").value;
    $("signal").replaceChildren(...Object.keys(answer.signals).map((name) => new Option(name, name)));
    $("signal").value = answer.signal || keep;
    $("unit").max = answer.hidden - 1;
    recording = answer;
    render();
    $("details").replaceChildren("Hover over or focus a token for its values.");
    const warned = answer.warnings.length ? ` (${answer.warnings.join("; ")})` : "";
    setStatus(`${answer.tokens.length} tokens recorded${warned}`);
    setState("done");
  } catch (error) {
    setStatus(error.message, true);
    setState("error");
  }
}

function span(text, marked) {
  const node = document.createElement(marked ? "mark" : "span");
  node.textContent = text;
  return node;
}

function places(n) {
  return n === 1 ? "1 place" : `${n} places`;
}

async function findUnits() {
  if (!recording) {
    setStatus("record a text first", true);
    return;
  }
  const body = { text: $("text").value, layer: recording.layer, signal: recording.signal,
                 start: Number($("start").value), end: Number($("end").value), threshold: Number($("threshold").value) };
  setState("running");
  setStatus("finding units (the validation text is recorded at the first search)…");
  try {
    const a = await post("/api/units", body);
    const ok = Array.isArray(a.units) && a.units.every(Number.isInteger) && Array.isArray(a.here) &&
      a.valid && Array.isArray(a.valid.matches) && Number.isInteger(a.valid.total) &&
      typeof a.valid.source === "string";
    if (!ok) throw new Error("the server sent a malformed answer");
    const spans = $("tokens").children;
    for (const s of spans) s.classList.remove("picked");
    for (const [s, e] of a.here) for (let t = s; t < e && t < spans.length; t++) spans[t].classList.add("picked");
    const found = a.units.length
      ? `${a.units.length} units of layer ${a.layer}'s ${a.signal} are above ${a.threshold} throughout tokens ` +
        `[${a.start}, ${a.end}): ${a.units.map((j) => `#${j}`).join(", ")}. All of them are above it again at ` +
        `${places(a.here.length)} in this text (underlined) and ${a.valid.total} in ${a.valid.source}` +
        (a.valid.total > a.valid.matches.length ? ` (the first ${a.valid.matches.length} below):` : ":")
      : `no unit of layer ${a.layer}'s ${a.signal} is above ${a.threshold} throughout tokens [${a.start}, ${a.end})`;
    $("found").textContent = found;
    $("matches").replaceChildren(...a.valid.matches.map((m) => {
      const item = document.createElement("li");
      item.dataset.start = `${m.start}`;
      item.dataset.end = `${m.end}`;
      item.append(`[${m.start}, ${m.end}) `, span(m.before, false), span(m.span, true), span(m.after, false));
      return item;
    }));
    setStatus(`${a.units.length} units, ${a.valid.total} matches`);
    setState("done");
  } catch (error) {
    setStatus(error.message, true);
    setState("error");
  }
}

const tokens = $("tokens");
tokens.addEventListener("mouseover", (event) => {
  const t = tokenOf(event.target);
  if (t !== null && recording) describe(t);
});
tokens.addEventListener("focusin", (event) => {
  const t = tokenOf(event.target);
  if (t !== null && recording) describe(t);
});
tokens.addEventListener("keydown", (event) => {
  const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1, Home: -Infinity, End: Infinity };
  if (event.key in moves) {
    event.preventDefault();
    const step = moves[event.key];
    focusToken(Number.isFinite(step) ? current + step : (step > 0 ? Infinity : 0));
  } else if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    if (pickedStart === null) {
      pickedStart = current;
      setStatus(`range starts at token ${current}; Enter on another token ends it`);
    } else {
      setRange(pickedStart, current);
      setStatus(`range [${$("start").value}, ${$("end").value}) picked`);
      pickedStart = null;
    }
  }
});
$("use-selection").addEventListener("click", () => {
  const selection = getSelection();
  const a = selection && tokenOf(selection.anchorNode);
  const b = selection && tokenOf(selection.focusNode);
  if (a === null || b === null) setStatus("select some of the coloured text first", true);
  else setRange(a, b);
});
$("form").addEventListener("submit", record);
$("layer").addEventListener("change", () => recording && record());
$("signal").addEventListener("change", () => recording && record());
$("unit").addEventListener("input", () => {
  paint();
  if (recording && $("details").dataset.token) describe(Number($("details").dataset.token));
});
$("find").addEventListener("click", findUnits);

// ?text=...&unit=...&autorun=1 fills the form (and records), for links and tests.
loadInfo().then(() => {
  const query = new URLSearchParams(location.search);
  for (const key of ["text", "unit", "start", "end", "threshold"]) if (query.has(key)) $(key).value = query.get(key);
  setState("ready");
  if (query.get("autorun") === "1") record();
}).catch((error) => { setStatus(`cannot load the model: ${error.message}`, true); setState("error"); });
