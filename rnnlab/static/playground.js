"use strict";
const $ = (id) => document.getElementById(id);
const NUMBERS = ["temperature", "top_k", "top_p", "length", "seed"];
const MAX_COMPARE = 4;  // the server samples at most 4 streams at a time
let controller = null;
let wordLevel = false;  // word models' text comes without the space after the prompt

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setState(state) {
  document.body.dataset.state = state;  // read by the end-to-end test
  const busy = state === "running";
  $("go").disabled = busy;
  $("compare-go").disabled = busy;
  $("stop-button").disabled = !busy;
}

// Every value from the server reaches the page as text (textContent / text nodes), never as markup:
// run metadata is whatever files a run directory holds, and those may have been written by anyone.
function bold(text) {
  const b = document.createElement("b");
  b.textContent = text;
  return b;
}

function checkInfo(info) {
  const ok = info !== null && typeof info === "object" &&
    ["name", "run", "cell"].every((key) => typeof info[key] === "string") &&
    ["char", "word"].includes(info.level) && ["best", "last"].includes(info.checkpoint) &&
    ["layers", "hidden", "parameters", "vocab_size", "step"].every((key) => Number.isInteger(info[key])) &&
    (info.valid === null || (typeof info.valid === "object" && typeof info.valid.measure === "string" &&
                             Number.isFinite(info.valid.value))) &&
    info.defaults !== null && typeof info.defaults === "object";
  if (!ok) throw new Error("the server sent malformed model information");
  return info;
}

async function loadInfo() {
  const info = checkInfo(await (await fetch("/api/info")).json());
  const line = document.createElement("span");
  line.append(bold(`${info.name} (${info.run})`),
    ` — ${info.cell} ${info.layers}×${info.hidden}, ${info.parameters.toLocaleString()} parameters, ` +
    `${info.level}-level, vocabulary ${info.vocab_size}`);
  if (info.valid) line.append(`, validation ${info.valid.measure} `, bold(info.valid.value.toFixed(3)));
  line.append(` (checkpoint '${info.checkpoint}' at step ${info.step})`);
  $("model").replaceChildren(line);
  $("top_k").max = info.vocab_size;
  wordLevel = info.level === "word";
  for (const key of ["prompt", ...NUMBERS]) {
    const value = info.defaults[key];
    if (typeof value === "string" || Number.isFinite(value)) $(key).value = value;
  }
}

// The stop field takes the command line's escapes: \n, \t, \r and \\ (rnnlab generate --stop).
function unescapeStop(text) {
  return text.replace(/\\([ntr\\])/g, (_, c) => ({ n: "\n", t: "\t", r: "\r", "\\": "\\" })[c]);
}

function readForm() {
  const body = { prompt: $("prompt").value };
  for (const key of NUMBERS) {
    const text = $(key).value.trim();
    if (text !== "") body[key] = Number(text);
  }
  const stop = unescapeStop($("stop").value);
  if (stop !== "") body.stop = stop;
  return body;
}

// One request to /api/generate: `onText` gets each piece of text as it streams in; resolves with the
// closing {"done": ...} message. Warnings go to the status line; errors are thrown.
async function stream(body, onText, signal) {
  const response = await fetch("/api/generate", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
  });
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ error: response.statusText }));
    throw new Error(problem.error || `HTTP ${response.status}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finished = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const message = JSON.parse(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
      if (message.text !== undefined) onText(message.text);
      if (message.warning) setStatus(message.warning);
      if (message.error) throw new Error(message.error);
      if (message.done) finished = message;
    }
  }
  return finished;
}

function rate(message) {
  if (!message) return "";
  const speed = message.seconds > 0 ? `, ${Math.round(message.tokens / message.seconds)} tokens/s` : "";
  return `${message.tokens} tokens in ${message.seconds.toFixed(2)} s${speed}`;
}

function echo(prompt) {
  return prompt + (wordLevel && prompt.trim() ? " " : "");
}

// Runs `work(signal)` as the page's one job: buttons, status and the Stop button follow it.
async function job(work) {
  if (controller) return;
  setState("running");
  controller = new AbortController();
  let state = "done";
  try {
    setStatus(await work(controller.signal));
  } catch (error) {
    if (error.name === "AbortError") {
      setStatus("stopped");
    } else {
      setStatus(error.message, true);
      state = "error";
    }
  } finally {
    controller = null;
    setState(state);
  }
}

function generate(event) {
  if (event) event.preventDefault();
  const body = readForm();
  $("prompt-echo").textContent = echo(body.prompt);
  $("generated").textContent = "";
  setStatus("generating…");
  return job(async (signal) => rate(await stream(body, (text) => { $("generated").textContent += text; }, signal)));
}

// The same prompt, settings and seed at 2-4 temperatures, in columns side by side: the temperature is
// the only difference between them. Without a seed, one is drawn here and shown, so the columns share it.
function compare() {
  const temperatures = $("compare").value.trim().split(/[\s,]+/).filter((t) => t !== "").map(Number);
  if (temperatures.length < 2 || temperatures.length > MAX_COMPARE ||
      !temperatures.every((t) => Number.isFinite(t) && t >= 0 && t <= 5)) {
    setStatus(`compare: give 2 to ${MAX_COMPARE} temperatures between 0 and 5, e.g. 0.2 0.6 1.0 1.5`, true);
    return Promise.resolve();
  }
  const body = readForm();
  if (body.seed === undefined) body.seed = Math.floor(Math.random() * 1e9);
  $("comparison-title").textContent =
    `The same prompt and seed (${body.seed}) at ${temperatures.length} temperatures`;
  const outputs = temperatures.map((t) => {
    const column = document.createElement("div");
    const title = document.createElement("h3");
    title.textContent = `temperature ${t}`;
    const pre = document.createElement("pre");
    const prompt = document.createElement("span");
    prompt.className = "prompt-echo";
    prompt.textContent = echo(body.prompt);
    const text = document.createElement("span");
    text.className = "generated";
    pre.append(prompt, text);
    column.append(title, pre);
    return { column, text };
  });
  $("columns").replaceChildren(...outputs.map((o) => o.column));
  $("comparison").hidden = false;
  setStatus("generating side by side…");
  return job(async (signal) => {
    const done = await Promise.all(temperatures.map((t, i) =>
      stream({ ...body, temperature: t }, (piece) => { outputs[i].text.textContent += piece; }, signal)));
    const tokens = done.reduce((sum, d) => sum + (d ? d.tokens : 0), 0);
    return `${temperatures.length} samples, ${tokens} tokens`;
  });
}

$("form").addEventListener("submit", generate);
$("compare-go").addEventListener("click", compare);
$("stop-button").addEventListener("click", () => controller && controller.abort());

// ?prompt=...&temperature=...&length=...&stop=...&autorun=1 fills the form (and starts), for links and tests.
loadInfo().then(() => {
  const query = new URLSearchParams(location.search);
  for (const key of ["prompt", ...NUMBERS, "stop"]) if (query.has(key)) $(key).value = query.get(key);
  setState("ready");
  if (query.get("autorun") === "1") generate();
}).catch((error) => { setStatus(`cannot load the model: ${error.message}`, true); setState("error"); });
