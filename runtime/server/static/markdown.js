// A small Markdown renderer that builds DOM nodes and sets only textContent, so nothing a model writes can
// become HTML: fenced code blocks (monospace), inline code, **bold**, *italic*, # headings and - / 1. lists.
// Unfinished constructs (a fence still streaming) render as what they will become.
"use strict";

function renderMarkdown(text, into) {
  into.replaceChildren();
  const parts = text.split(/^```[^\n]*\n?/m);  // even: prose, odd: code (a trailing odd part: an open fence)
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = part.replace(/\n$/, "");
      pre.appendChild(code);
      into.appendChild(pre);
    } else if (part) {
      renderProse(part, into);
    }
  });
}

function renderProse(text, into) {
  let list = null;
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    const item = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (item) {
      const ordered = /^\s*\d/.test(line);
      if (!list || (list.tagName === "OL") !== ordered) {
        list = document.createElement(ordered ? "ol" : "ul");
        into.appendChild(list);
      }
      const li = document.createElement("li");
      renderInline(item[1], li);
      list.appendChild(li);
      return;
    }
    list = null;
    if (heading) {
      const h = document.createElement("h" + Math.min(heading[1].length + 2, 6));
      renderInline(heading[2], h);
      into.appendChild(h);
      return;
    }
    const span = document.createElement("span");
    renderInline(line + (i < lines.length - 1 ? "\n" : ""), span);
    into.appendChild(span);
  });
}

// `code`, **bold**, *italic*; everything else is text.
function renderInline(text, into) {
  const pattern = /`([^`\n]+)`|\*\*([^*\n]+)\*\*|\*([^*\s][^*\n]*?)\*/g;
  let last = 0;
  for (const m of text.matchAll(pattern)) {
    into.appendChild(document.createTextNode(text.slice(last, m.index)));
    const tag = m[1] !== undefined ? "code" : m[2] !== undefined ? "strong" : "em";
    const el = document.createElement(tag);
    el.textContent = m[1] ?? m[2] ?? m[3];
    into.appendChild(el);
    last = m.index + m[0].length;
  }
  into.appendChild(document.createTextNode(text.slice(last)));
}
