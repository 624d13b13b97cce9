/*
 * qa-service chat widget. Embed with:
 *   <script src="https://HOST/widget.js" data-api="https://HOST" data-key="..." defer></script>
 * Options (data attributes): data-title, data-greeting, data-accent, data-position ("right" | "left"),
 * data-open ("true" to start open), data-key (chat API key, if the server requires one),
 * data-collection (the collection to ask, e.g. "faq"; default "default").
 * Everything renders inside a Shadow DOM; all server text is inserted as text, never as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__qaWidgetLoaded) return;
  window.__qaWidgetLoaded = true;

  var data = script.dataset;
  var cfg = {
    api: (data.api || new URL(script.src, location.href).origin).replace(/\/$/, ""),
    key: data.key || "",
    title: data.title || "Ask the documents",
    greeting: data.greeting || "Hi! Ask me anything about these documents.",
    accent: /^#[0-9a-fA-F]{3,8}$|^[a-zA-Z]+$/.test(data.accent || "") ? data.accent : "#2457d6",
    position: data.position === "left" ? "left" : "right",
    open: data.open === "true",
    collection: /^[a-z0-9-]{1,64}$/.test(data.collection || "") ? data.collection : "default",
  };
  var STORE_KEY = "qa-widget:" + cfg.api + ":" + cfg.collection;  // one conversation per collection
  var ABSTAIN_TEXT = "I could not find this in the documents.";

  var CSS = [
    ":host { all: initial !important; }",
    "* { box-sizing: border-box; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }",
    ".launcher { position: fixed; bottom: 20px; " + cfg.position + ": 20px; z-index: 2147483000;",
    "  width: 56px; height: 56px; border-radius: 50%; border: 0; cursor: pointer; color: #fff;",
    "  background: var(--accent); box-shadow: 0 4px 14px rgba(0,0,0,.25); padding: 0; display: flex; align-items: center; justify-content: center; }",
    ".launcher:focus-visible, button:focus-visible, textarea:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }",
    ".panel { position: fixed; bottom: 88px; " + cfg.position + ": 20px; z-index: 2147483000; width: 380px;",
    "  max-width: calc(100vw - 40px); height: 560px; max-height: calc(100vh - 120px); display: flex; flex-direction: column;",
    "  background: #fff; color: #1b1b1b; border-radius: 12px; box-shadow: 0 8px 32px rgba(0,0,0,.3); overflow: hidden;",
    "  font-size: 15px; line-height: 1.45; text-align: left; letter-spacing: normal; }",
    ".panel[hidden] { display: none; }",
    "header { background: var(--accent); color: #fff; padding: 12px 14px; display: flex; align-items: center; gap: 8px; }",
    "header h2 { margin: 0; font-size: 16px; font-weight: 600; flex: 1; color: #fff; }",
    "header button { background: transparent; border: 0; color: #fff; font-size: 20px; cursor: pointer; padding: 2px 6px; }",
    ".log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 10px; background: #f6f7f9; }",
    ".msg { max-width: 88%; padding: 8px 11px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word; }",
    ".msg.user { align-self: flex-end; background: var(--accent); color: #fff; }",
    ".msg.bot { align-self: flex-start; background: #fff; border: 1px solid #e1e4e8; }",
    ".msg.abstained { background: #fff8e6; border-color: #f0d48a; font-style: italic; }",
    ".msg.error { background: #fdecea; border-color: #f5c2c0; color: #7a1c17; }",
    ".chip { display: inline-block; margin: 0 2px; padding: 0 6px; border-radius: 9px; border: 1px solid var(--accent);",
    "  background: #fff; color: var(--accent); font-size: 12px; font-weight: 600; cursor: pointer; line-height: 18px; }",
    ".meta { display: flex; gap: 6px; margin-top: 6px; align-items: center; font-size: 12px; color: #5b6470; }",
    ".meta button { border: 1px solid #d0d5db; background: #fff; color: #5b6470; border-radius: 6px; cursor: pointer; padding: 2px 7px; line-height: 0; }",
    ".meta button[aria-pressed='true'] { background: var(--accent); color: #fff; border-color: var(--accent); }",
    ".retry { margin-top: 6px; border: 1px solid #7a1c17; background: #fff; color: #7a1c17; border-radius: 6px; cursor: pointer; padding: 2px 10px; }",
    ".typing { align-self: flex-start; color: #5b6470; font-size: 13px; padding: 4px 8px; }",
    ".typing span { animation: blink 1.2s infinite; } .typing span:nth-child(2) { animation-delay: .2s; } .typing span:nth-child(3) { animation-delay: .4s; }",
    "@keyframes blink { 0%, 80%, 100% { opacity: .2; } 40% { opacity: 1; } }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e1e4e8; background: #fff; }",
    "textarea { flex: 1; resize: none; border: 1px solid #c9ced6; border-radius: 8px; padding: 8px; font-size: 15px; min-height: 40px; max-height: 120px; color: #1b1b1b; background: #fff; }",
    "form button { border: 0; border-radius: 8px; background: var(--accent); color: #fff; padding: 0 14px; cursor: pointer; font-size: 15px; }",
    ".context { position: absolute; inset: 52px 0 0 0; background: #fff; display: flex; flex-direction: column; }",
    ".context[hidden] { display: none; }",
    ".context .bar { display: flex; align-items: center; gap: 8px; padding: 10px 12px; border-bottom: 1px solid #e1e4e8; }",
    ".context .bar strong { flex: 1; font-size: 14px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }",
    ".context .bar button { border: 1px solid #d0d5db; background: #fff; border-radius: 6px; cursor: pointer; padding: 2px 10px; }",
    ".context .text { padding: 12px; overflow-y: auto; white-space: pre-wrap; color: #333; }",
    "mark { background: #ffe58a; color: #1b1b1b; padding: 1px 0; }",
    ".sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }",
    "@media (max-width: 480px) { .panel { width: 100vw; max-width: 100vw; height: 100vh; max-height: 100vh; bottom: 0; " +
      cfg.position + ": 0; border-radius: 0; } }",
  ].join("\n");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }

  var ICONS = {
    chat: "M20 2H4c-1.1 0-2 .9-2 2v18l4-4h14c1.1 0 2-.9 2-2V4c0-1.1-.9-2-2-2z",
    up: "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 " +
        "7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z",
    down: "M15 3H6c-.83 0-1.54.5-1.84 1.22l-3.02 7.05c-.09.23-.14.47-.14.73v2c0 1.1.9 2 2 2h6.31l-.95 4.57-.03.32c0 " +
          ".41.17.79.44 1.06L9.83 23l6.59-6.59c.36-.36.58-.86.58-1.41V5c0-1.1-.9-2-2-2zm4 0v12h4V3h-4z",
  };

  function icon(name, size) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", size);
    svg.setAttribute("height", size);
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS(ns, "path");
    path.setAttribute("d", ICONS[name]);
    path.setAttribute("fill", "currentColor");
    svg.appendChild(path);
    return svg;
  }

  /* Answer text with [n] markers -> text nodes and citation chips (never HTML). */
  function renderAnswer(container, text, citations, onChip) {
    container.textContent = "";
    var byIndex = {};
    (citations || []).forEach(function (c) { byIndex[c.index] = c; });
    var parts = String(text).split(/(\[\d+\])/);
    parts.forEach(function (part) {
      var m = /^\[(\d+)\]$/.exec(part);
      if (m && byIndex[m[1]]) {
        var c = byIndex[m[1]];
        var chip = el("button", { class: "chip", type: "button", text: m[1],
          "aria-label": "Show source " + m[1] + ": " + c.source, "data-citation": m[1] });
        chip.addEventListener("click", function () { onChip(c); });
        container.appendChild(chip);
      } else if (part) {
        container.appendChild(document.createTextNode(part));
      }
    });
  }

  function load() {
    try { return JSON.parse(sessionStorage.getItem(STORE_KEY)) || { conversationId: null, messages: [], open: false }; }
    catch (e) { return { conversationId: null, messages: [], open: false }; }
  }

  var state = load();
  var host = el("div", { id: "qa-widget-host" });
  document.body.appendChild(host);
  var root = host.attachShadow({ mode: "open" });
  var style = el("style");
  style.textContent = CSS;
  root.appendChild(style);

  var launcher = el("button", { class: "launcher", type: "button", "aria-label": "Open chat: " + cfg.title,
    "aria-expanded": "false", "aria-controls": "qa-panel" }, [icon("chat", "26")]);
  var closeBtn = el("button", { type: "button", "aria-label": "Close chat", text: "✕" });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-relevant": "additions text" });
  var input = el("textarea", { rows: "1", placeholder: "Ask a question…", "aria-label": "Your question" });
  var send = el("button", { type: "submit", text: "Send" });
  var form = el("form", {}, [input, send]);
  var ctxTitle = el("strong");
  var ctxBack = el("button", { type: "button", text: "Back" });
  var ctxText = el("div", { class: "text", tabindex: "0" });
  var context = el("div", { class: "context", hidden: "", role: "region", "aria-label": "Cited source" },
    [el("div", { class: "bar" }, [ctxTitle, ctxBack]), ctxText]);
  var panel = el("div", { class: "panel", id: "qa-panel", role: "dialog", "aria-label": cfg.title, hidden: "" },
    [el("header", {}, [el("h2", { text: cfg.title }), closeBtn]), log, form, context]);
  panel.style.setProperty("--accent", cfg.accent);
  launcher.style.setProperty("--accent", cfg.accent);
  panel.style.position = "fixed";
  root.appendChild(launcher);
  root.appendChild(panel);

  function save() {
    try { sessionStorage.setItem(STORE_KEY, JSON.stringify(state)); } catch (e) { /* storage full or disabled */ }
  }

  function setOpen(open, focus) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    state.open = open;
    save();
    if (open) { log.scrollTop = log.scrollHeight; if (focus !== false) input.focus(); }
    else if (focus !== false) launcher.focus();
  }

  function headers() {
    var h = { "Content-Type": "application/json" };
    if (cfg.key) h.Authorization = "Bearer " + cfg.key;
    return h;
  }

  function showContext(c) {
    ctxTitle.textContent = c.location ? c.source + ", " + c.location : c.source;  // e.g. "deck.pptx, slide 4"
    ctxText.textContent = "";
    ctxText.appendChild(el("mark", { text: c.text }));
    context.hidden = false;
    ctxBack.focus();
    var url = cfg.api + "/v1/documents/" + encodeURIComponent(c.document_id) + "/context?start=" + c.start + "&end=" + c.end +
      "&collection=" + encodeURIComponent(cfg.collection);
    fetch(url, { headers: headers() }).then(function (r) { return r.ok ? r.json() : null; }).then(function (ctx) {
      if (!ctx) return;
      ctxText.textContent = "";
      ctxText.appendChild(document.createTextNode((ctx.before.length >= 400 ? "…" : "") + ctx.before));
      ctxText.appendChild(el("mark", { text: ctx.sentence }));
      ctxText.appendChild(document.createTextNode(ctx.after + (ctx.after.length >= 400 ? "…" : "")));
    }).catch(function () { /* keep the sentence alone */ });
  }

  function feedback(msg, rating, buttons) {
    fetch(cfg.api + "/v1/feedback", { method: "POST", headers: headers(),
      body: JSON.stringify({ conversation_id: state.conversationId, turn: msg.turn, rating: rating }) })
      .then(function (r) {
        if (!r.ok) return;
        msg.rating = rating;
        save();
        buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.rating === rating)); });
      }).catch(function () {});
  }

  function renderMessage(msg) {
    var node;
    if (msg.role === "user") {
      node = el("div", { class: "msg user", text: msg.text });
    } else if (msg.error) {
      node = el("div", { class: "msg bot error", role: "alert", text: msg.text });
      var retry = el("button", { class: "retry", type: "button", text: "Retry" });
      retry.addEventListener("click", function () {
        state.messages.splice(state.messages.indexOf(msg), 1);
        save();
        node.remove();
        ask(msg.question, true);
      });
      node.appendChild(el("div", {}, [retry]));
    } else {
      node = el("div", { class: "msg bot" + (msg.abstained ? " abstained" : "") });
      var body = el("div", { class: "body" });
      if (msg.abstained) body.textContent = ABSTAIN_TEXT;
      else renderAnswer(body, msg.text, msg.citations, showContext);
      node.appendChild(body);
      if (msg.turn) {
        var up = el("button", { type: "button", "aria-label": "Helpful", "aria-pressed": String(msg.rating === "up"),
          "data-rating": "up" }, [icon("up", "14")]);
        var down = el("button", { type: "button", "aria-label": "Not helpful",
          "aria-pressed": String(msg.rating === "down"), "data-rating": "down" }, [icon("down", "14")]);
        [up, down].forEach(function (b) { b.addEventListener("click", function () { feedback(msg, b.dataset.rating, [up, down]); }); });
        node.appendChild(el("div", { class: "meta" }, [up, down]));
      }
    }
    log.appendChild(node);
    log.scrollTop = log.scrollHeight;
    return node;
  }

  function errorText(status, body, retryAfter) {
    if (status === 429) return "Too many questions right now. Please retry" + (retryAfter ? " in " + retryAfter + " s." : " shortly.");
    if (status >= 500) return "The server had a problem answering. Please retry.";
    if (body && body.error && body.error.message) return "Could not ask: " + body.error.message;
    if (status) return "Could not ask (HTTP " + status + ").";
    return "Could not reach the server. Check your connection and retry.";
  }

  function parseEvents(buffer, onEvent) {
    var blocks = buffer.split("\n\n");
    var rest = blocks.pop();
    blocks.forEach(function (block) {
      var name = "message", lines = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event: ") === 0) name = line.slice(7);
        else if (line.indexOf("data: ") === 0) lines.push(line.slice(6));
      });
      if (lines.length) onEvent(name, JSON.parse(lines.join("\n")));
    });
    return rest;
  }

  function ask(question, isRetry) {
    if (!isRetry) {
      var userMsg = { role: "user", text: question };
      state.messages.push(userMsg);
      save();
      renderMessage(userMsg);
    }
    var typing = el("div", { class: "typing", "aria-label": "Assistant is typing" },
      [el("span", { text: "●" }), el("span", { text: "●" }), el("span", { text: "●" })]);
    log.appendChild(typing);
    log.scrollTop = log.scrollHeight;
    send.disabled = true;
    var live = null, liveBody = null;

    function fail(text) {
      typing.remove();
      if (live) live.remove();
      var msg = { role: "bot", error: true, text: text, question: question };
      state.messages.push(msg);
      save();
      renderMessage(msg);
    }

    fetch(cfg.api + "/v1/chat", {
      method: "POST",
      headers: Object.assign(headers(), { Accept: "text/event-stream" }),
      body: JSON.stringify({ message: question, conversation_id: state.conversationId, collection: cfg.collection }),
    }).then(function (response) {
      if (!response.ok) {
        var retryAfter = response.headers.get("Retry-After");
        return response.json().catch(function () { return null; })
          .then(function (body) { fail(errorText(response.status, body, retryAfter)); });
      }
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "", done = false;
      function onEvent(name, payload) {
        if (name === "answer") {
          if (!live) {
            typing.remove();
            live = el("div", { class: "msg bot" });
            liveBody = el("div", { class: "body" });
            live.appendChild(liveBody);
            log.appendChild(live);
          }
          liveBody.appendChild(document.createTextNode(payload.delta));
          log.scrollTop = log.scrollHeight;
        } else if (name === "done") {
          done = true;
          typing.remove();
          if (live) live.remove();
          state.conversationId = payload.conversation_id;
          var msg = { role: "bot", text: payload.answer, citations: payload.citations,
                      abstained: payload.abstained, turn: payload.turn };
          state.messages.push(msg);
          save();
          renderMessage(msg);
        } else if (name === "error") {
          done = true;
          fail(errorText(payload.error && payload.error.code === "rate_limited" ? 429 : 500, payload));
        }
      }
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) {
            if (!done) fail(errorText(0));
            return;
          }
          buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), onEvent);
          return pump();
        });
      }
      return pump();
    }).catch(function () { fail(errorText(0)); })
      .then(function () { send.disabled = false; });
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var q = input.value.trim();
    if (!q || send.disabled) return;
    input.value = "";
    ask(q, false);
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  launcher.addEventListener("click", function () { setOpen(panel.hidden); });
  closeBtn.addEventListener("click", function () { setOpen(false); });
  ctxBack.addEventListener("click", function () { context.hidden = true; input.focus(); });
  root.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    if (!context.hidden) { context.hidden = true; input.focus(); } else if (!panel.hidden) setOpen(false);
  });

  if (!state.messages.length) renderMessage({ role: "bot", text: cfg.greeting, citations: [] });
  state.messages.forEach(renderMessage);
  setOpen(state.open || cfg.open, false);

  window.QAWidget = { renderAnswer: renderAnswer, open: function () { setOpen(true); } };
})();
