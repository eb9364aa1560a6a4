"use strict";
const $ = (id) => document.getElementById(id);
const NUMBERS = ["temperature", "top_k", "top_p", "length", "seed"];
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
  $("stop").disabled = !busy;
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

function readForm() {
  const body = { prompt: $("prompt").value };
  for (const key of NUMBERS) {
    const text = $(key).value.trim();
    if (text !== "") body[key] = Number(text);
  }
  return body;
}

async function generate(event) {
  if (event) event.preventDefault();
  if (controller) return;
  const body = readForm();
  $("prompt-echo").textContent = body.prompt + (wordLevel && body.prompt.trim() ? " " : "");
  $("generated").textContent = "";
  setStatus("generating…");
  setState("running");
  controller = new AbortController();
  let state = "done";
  try {
    const response = await fetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({ error: response.statusText }));
      throw new Error(problem.error || `HTTP ${response.status}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (message.text !== undefined) $("generated").textContent += message.text;
        if (message.warning) setStatus(message.warning);
        if (message.error) throw new Error(message.error);
        if (message.done) {
          const rate = message.seconds > 0 ? `, ${Math.round(message.tokens / message.seconds)} tokens/s` : "";
          setStatus(`${message.tokens} tokens in ${message.seconds.toFixed(2)} s${rate}`);
        }
      }
    }
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

$("form").addEventListener("submit", generate);
$("stop").addEventListener("click", () => controller && controller.abort());

// ?prompt=...&temperature=...&length=...&autorun=1 fills the form (and starts), for links and tests.
loadInfo().then(() => {
  const query = new URLSearchParams(location.search);
  for (const key of ["prompt", ...NUMBERS]) if (query.has(key)) $(key).value = query.get(key);
  setState("ready");
  if (query.get("autorun") === "1") generate();
}).catch((error) => { setStatus(`cannot load the model: ${error.message}`, true); setState("error"); });
