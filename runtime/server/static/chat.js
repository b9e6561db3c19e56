// The chat page: keeps the conversation (across reloads too), streams each answer from /v1/chat/completions
// (server-sent events) and renders it as Markdown (markdown.js: text only, never HTML). Before each turn the
// oldest turns are left out until the prompt leaves room for an answer, and max_tokens is capped to the room
// left, so a long chat never runs into the context limit.
"use strict";
const $ = (id) => document.getElementById(id);
const STORE = "tritlm.conversation";
const history = JSON.parse(localStorage.getItem(STORE) || "[]");
let controller = null;

// Settings the user changed survive a reload.
for (const id of ["max-tokens", "temperature", "top-p", "top-k", "seed", "system-prompt", "api-key"]) {
  const saved = localStorage.getItem("tritlm." + id);
  if (saved !== null) $(id).value = saved;
  $(id).addEventListener("change", () => localStorage.setItem("tritlm." + id, $(id).value));
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("api-key").value) h["Authorization"] = "Bearer " + $("api-key").value;
  return h;
}

function save() {
  localStorage.setItem(STORE, JSON.stringify(history));
}

// A message bubble; an assistant's text is rendered as Markdown, its source kept in data-text.
function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  show(div, text);
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function show(div, text) {
  div.dataset.text = text;
  if (div.classList.contains("assistant")) renderMarkdown(text, div); else div.textContent = text;
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch { return response.status + " " + response.statusText; }
}

async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

// The served context (tokens per request) from /v1/models, asked once.
const contextSize = fetch("/v1/models", { headers: headers() })
  .then((r) => (r.ok ? r.json() : null))
  .then((j) => {
    if (!j) return null;
    $("model-name").textContent = j.data[0].id;
    return j.data[0].meta.n_ctx;
  });

// Prompt tokens of a conversation: the server's chat template, then its tokenizer. BOS may be counted twice
// (template text and add_special): one token too many errs on the safe side.
async function promptTokens(messages, signal) {
  const { prompt } = await (await post("/apply-template", { messages }, signal)).json();
  const { tokens } = await (await post("/tokenize", { content: prompt, add_special: true, parse_special: true }, signal)).json();
  return tokens.length;
}

// The messages to send and the answer's max_tokens: the oldest turns are left out while the prompt leaves less
// than min(max tokens, a quarter of the context) for the answer; the newest message always goes.
async function fit(maxTokens, signal) {
  const nCtx = await contextSize;
  const system = $("system-prompt").value.trim();
  const keep = Math.min(maxTokens, Math.floor(nCtx / 4));
  for (let first = 0; ; ) {
    const turns = history.slice(first);
    const messages = system ? [{ role: "system", content: system }, ...turns] : turns;
    const n = await promptTokens(messages, signal);
    if (n + keep <= nCtx || first === history.length - 1) {
      if (n >= nCtx) throw new Error(`message too long: the prompt has ${n} tokens, the context ${nCtx}`);
      $("notice").hidden = first === 0;
      $("notice").textContent = `${first} earlier message(s) left out: they no longer fit the context of ${nCtx} tokens`;
      return { messages, maxTokens: Math.min(maxTokens, nCtx - n) };
    }
    first += history[first].role === "user" && first + 2 < history.length ? 2 : 1;  // a question and its answer
  }
}

// Reads the SSE body and calls onDelta with each piece of text; returns at [DONE].
async function readStream(response, onDelta) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        const content = chunk.choices.length ? chunk.choices[0].delta.content : undefined;
        if (content) onDelta(content);
      }
    }
  }
}

function busy(on) {
  $("send").hidden = on;
  $("stop").hidden = !on;
}

function sampling() {
  const settings = {
    temperature: parseFloat($("temperature").value),
    top_p: parseFloat($("top-p").value),
    top_k: parseInt($("top-k").value, 10),
  };
  if ($("seed").value !== "") settings.seed = parseInt($("seed").value, 10);
  return settings;
}

async function send(text) {
  history.push({ role: "user", content: text });
  bubble("user", text);
  const answer = bubble("assistant", "");
  controller = new AbortController();
  busy(true);
  let failed = false;
  try {
    const { messages, maxTokens } = await fit(parseInt($("max-tokens").value, 10), controller.signal);
    const response = await post("/v1/chat/completions",
      { messages, stream: true, max_tokens: maxTokens, ...sampling() }, controller.signal);
    let content = "";
    await readStream(response, (delta) => {
      content += delta;
      show(answer, content);
      $("log").scrollTop = $("log").scrollHeight;
    });
  } catch (e) {
    failed = e.name !== "AbortError";  // a stopped answer stays in the conversation; a failed turn leaves it
    if (failed) bubble("error", e.message);
  } finally {
    if (failed) { history.pop(); answer.remove(); } else history.push({ role: "assistant", content: answer.dataset.text });
    save();
    controller = null;
    busy(false);
  }
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || controller) return;
  $("input").value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => controller && controller.abort());
$("clear").addEventListener("click", () => {
  history.length = 0;
  save();
  $("log").replaceChildren();
  $("notice").hidden = true;
});

for (const message of history) bubble(message.role, message.content);
