// The chat page: keeps the conversation, streams each answer from /v1/chat/completions (server-sent events).
"use strict";
const $ = (id) => document.getElementById(id);
const history = [];
let controller = null;

// Settings the user changed survive a reload.
for (const id of ["max-tokens", "temperature", "system-prompt", "api-key"]) {
  const saved = localStorage.getItem("tritlm." + id);
  if (saved !== null) $(id).value = saved;
  $(id).addEventListener("change", () => localStorage.setItem("tritlm." + id, $(id).value));
}

function headers() {
  const h = { "Content-Type": "application/json" };
  if ($("api-key").value) h["Authorization"] = "Bearer " + $("api-key").value;
  return h;
}

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch { return response.status + " " + response.statusText; }
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

async function send(text) {
  history.push({ role: "user", content: text });
  bubble("user", text);
  const answer = bubble("assistant", "");
  const system = $("system-prompt").value.trim();
  const messages = system ? [{ role: "system", content: system }, ...history] : history;
  controller = new AbortController();
  busy(true);
  let failed = false;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: headers(), signal: controller.signal,
      body: JSON.stringify({
        messages, stream: true,
        max_tokens: parseInt($("max-tokens").value, 10),
        temperature: parseFloat($("temperature").value),
      }),
    });
    if (!response.ok) throw new Error(await errorText(response));
    await readStream(response, (delta) => {
      answer.textContent += delta;
      $("log").scrollTop = $("log").scrollHeight;
    });
  } catch (e) {
    failed = e.name !== "AbortError";  // a stopped answer stays in the conversation; a failed turn leaves it
    if (failed) bubble("error", e.message);
  } finally {
    if (failed) { history.pop(); answer.remove(); } else history.push({ role: "assistant", content: answer.textContent });
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
$("clear").addEventListener("click", () => { history.length = 0; $("log").replaceChildren(); });

fetch("/v1/models", { headers: headers() })
  .then((r) => (r.ok ? r.json() : null))
  .then((j) => { if (j) $("model-name").textContent = j.data[0].id; });
