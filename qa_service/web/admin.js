/* qa-service admin page: documents, analytics, content gaps and thumbs-down review.
 * Dependency-free; served with a strict Content-Security-Policy (script-src 'self'). Every piece of
 * server text is inserted with textContent (never as HTML); charts are SVG built element by element.
 * The admin key is kept in this tab's sessionStorage. */
(function () {
  "use strict";
  var KEY = "qa-service-admin-key";
  var SVG = "http://www.w3.org/2000/svg";
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function key() { return sessionStorage.getItem(KEY); }
  function when(t) { return new Date(t * 1000).toLocaleString(); }
  function days() { return $("period").value; }
  function period() { return "days=" + days() + "&utc_offset_minutes=" + (-new Date().getTimezoneOffset()); }

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({ Authorization: "Bearer " + key() }, options.headers || {});
    return fetch(path, options).then(function (r) {
      if (r.status === 401) { signOut("The admin key was refused; sign in again."); throw new Error("unauthorized"); }
      if (r.status === 204) return null;
      return r.json().then(function (body) {
        if (!r.ok) throw new Error((body && body.error && body.error.message) || ("HTTP " + r.status));
        return body;
      });
    });
  }

  // --- signing in and out ---------------------------------------------------------------------
  function showApp(signedIn) {
    $("sign-in").hidden = signedIn;
    $("app").hidden = !signedIn;
    document.querySelector("header .who").hidden = !signedIn;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    showApp(false);
    var error = $("sign-in-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("key").focus();
  }

  $("sign-in-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var candidate = $("key").value.trim();
    fetch("/v1/documents", { headers: { Authorization: "Bearer " + candidate } }).then(function (r) {
      if (r.ok) {
        sessionStorage.setItem(KEY, candidate);
        $("key").value = "";
        $("sign-in-error").hidden = true;
        showApp(true);
        loadAll();
        return;
      }
      var text = r.status === 401 ? "That key was refused."
        : r.status === 403 ? "The admin page is disabled on this server: set QA_ADMIN_API_KEY."
        : "The server answered " + r.status + "; try again.";
      signOut(text);
    }).catch(function () { signOut("Could not reach the server."); });
  });

  $("sign-out").addEventListener("click", function () { signOut(""); });
  $("refresh").addEventListener("click", function () { loadAll(); });
  $("period").addEventListener("change", function () { loadReports(); });

  // --- documents ----------------------------------------------------------------------------------
  function loadDocuments() {
    return api("/v1/documents").then(function (body) {
      var rows = clear($("document-rows"));
      $("documents-empty").hidden = body.documents.length > 0;
      body.documents.forEach(function (d) {
        var remove = el("button", { type: "button", class: "danger", text: "Delete", "aria-label": "Delete " + d.source });
        remove.addEventListener("click", function () {
          if (!remove.classList.contains("armed")) {  // two clicks: no dialog, no accident
            remove.classList.add("armed");
            remove.textContent = "Confirm delete";
            return;
          }
          remove.disabled = true;
          api("/v1/documents/" + encodeURIComponent(d.id), { method: "DELETE" })
            .then(loadDocuments).catch(function (e) { status(e.message, true); });
        });
        rows.appendChild(el("tr", { "data-id": d.id }, [
          el("td", { class: "source", text: d.source }),
          el("td", { class: "num", text: String(d.sentences) }),
          el("td", { text: when(d.indexed_at) }),
          el("td", {}, [remove]),
        ]));
      });
    });
  }

  function status(text, bad) {
    var node = $("upload-status");
    node.textContent = text;
    node.className = bad ? "error" : "ok";
  }

  $("upload-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var file = $("file").files[0];
    if (!file) return;
    var progress = $("upload-progress");
    var form = new FormData();
    form.append("file", file);
    var xhr = new XMLHttpRequest();  // fetch cannot report upload progress
    xhr.open("POST", "/v1/documents");
    xhr.setRequestHeader("Authorization", "Bearer " + key());
    progress.hidden = false;
    progress.value = 0;
    status("Uploading " + file.name + "…");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) progress.value = Math.round((100 * e.loaded) / e.total);
      if (e.loaded === e.total) status("Indexing " + file.name + "…");
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 201 && body) {
        progress.value = 100;
        status("Indexed " + body.source + ": " + body.sentences + " sentences.");
        $("upload-form").reset();
        loadDocuments();
      } else if (xhr.status === 401) {
        signOut("The admin key was refused; sign in again.");
      } else {
        status((body && body.error && body.error.message) || "Upload failed (" + xhr.status + ").", true);
      }
    });
    xhr.addEventListener("error", function () { status("Could not reach the server.", true); });
    xhr.send(form);
  });

  // --- analytics ------------------------------------------------------------------------------------
  function barChart(container, data, series, label) {
    var width = 640, height = 150, left = 30, bottom = 18, top = 8;
    var max = Math.max(1, Math.max.apply(null, data.map(function (d) {
      return series.reduce(function (sum, s) { return sum + d[s.key]; }, 0);
    })));
    var chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": label });
    var plot = height - bottom - top, step = (width - left) / Math.max(1, data.length);
    chart.appendChild(svg("line", { class: "axis", x1: left, y1: top + plot, x2: width, y2: top + plot }));
    chart.appendChild(svg("text", { x: 0, y: top + 8 }, String(max)));
    chart.appendChild(svg("text", { x: 0, y: top + plot }, "0"));
    data.forEach(function (d, i) {
      var y = top + plot, x = left + i * step + step * 0.15, w = Math.max(1, step * 0.7);
      series.forEach(function (s) {
        var h = (d[s.key] / max) * plot;
        if (!h) return;
        y -= h;
        var bar = svg("rect", { class: s.key, x: x.toFixed(1), y: y.toFixed(1), width: w.toFixed(1), height: h.toFixed(1) });
        bar.appendChild(svg("title", {}, d.date + ": " + d[s.key] + " " + s.label));
        chart.appendChild(bar);
      });
    });
    [0, data.length - 1].forEach(function (i) {
      if (data[i]) chart.appendChild(svg("text", { x: i ? width - 60 : left, y: height - 4 }, data[i].date));
    });
    clear(container).appendChild(chart);
    container.appendChild(el("div", { class: "legend" }, series.map(function (s) {
      return el("span", {}, [el("span", { class: "swatch " + s.key }), document.createTextNode(s.label)]);
    })));
  }

  function percent(x) { return x === null ? "–" : (100 * x).toFixed(1) + " %"; }
  function ms(x) { return x === null ? "–" : Math.round(x) + " ms"; }

  function loadAnalytics() {
    return api("/v1/admin/analytics?" + period()).then(function (a) {
      $("t-questions").textContent = String(a.questions);
      $("t-abstention").textContent = percent(a.abstention_rate);
      $("t-thumbs").textContent = a.up + " / " + a.down;
      $("t-latency").textContent = ms(a.p50_ms) + " / " + ms(a.p95_ms);
      var days = a.days.map(function (d) { return Object.assign({ answered: d.questions - d.abstained }, d); });
      barChart($("chart-questions"), days,
        [{ key: "answered", label: "answered" }, { key: "abstained", label: "refused" }], "Questions per day");
      barChart($("chart-ratings"), days,
        [{ key: "up", label: "thumbs up" }, { key: "down", label: "thumbs down" }], "Ratings per day");
    });
  }

  function loadQuestions() {
    return api("/v1/admin/questions?limit=25&" + period()).then(function (body) {
      var rows = clear($("question-rows"));
      body.questions.forEach(function (q) {
        rows.appendChild(el("tr", {}, [
          el("td", { text: when(q.asked_at) }),
          el("td", { class: "question", text: q.question }),
          el("td", { class: q.abstained ? "outcome-refused" : "", text: q.abstained ? "refused" : "answered" }),
          el("td", { class: "num", text: q.confidence.toFixed(2) }),
          el("td", { class: "num", text: String(Math.round(q.latency_ms)) }),
        ]));
      });
    });
  }

  // --- content gaps and review ------------------------------------------------------------------------
  function loadGaps() {
    return api("/v1/admin/gaps?" + period()).then(function (body) {
      var list = clear($("gap-list"));
      $("gaps-empty").hidden = body.groups.length > 0;
      body.groups.forEach(function (g) {
        var item = el("li", {}, [el("span", { class: "count", text: String(g.count) }),
          el("span", { class: "question", text: g.question })]);
        if (g.examples.length) item.appendChild(el("div", { class: "wordings", text: "also: " + g.examples.join(" · ") }));
        list.appendChild(item);
      });
    });
  }

  function loadReviews() {
    return api("/v1/admin/reviews?" + period()).then(function (body) {
      var list = clear($("review-list"));
      $("review-empty").hidden = body.reviews.length > 0;
      body.reviews.forEach(function (r) {
        var item = el("article", { class: "review-item" }, [
          el("div", { class: "q", text: r.question }),
          el("div", { class: "a", text: r.abstained ? "(refused) " + r.answer : r.answer }),
        ]);
        r.citations.forEach(function (c) {
          item.appendChild(el("blockquote", {}, [
            el("div", { text: "[" + c.index + "] " + c.text }),
            el("div", { class: "src", text: c.source + (c.location ? ", " + c.location : "") }),
          ]));
        });
        item.appendChild(el("div", { class: "comment", text: r.comment ? "Comment: " + r.comment : "No comment." }));
        item.appendChild(el("div", { class: "src", text: "Rated " + when(r.rated_at) }));
        list.appendChild(item);
      });
    });
  }

  function failed(error) {
    if (error.message === "unauthorized") return;
    var banner = $("report-error");
    banner.hidden = false;
    banner.textContent = "Could not load everything: " + error.message;
  }

  function loadReports() {
    $("report-error").hidden = true;
    return Promise.all([loadAnalytics(), loadQuestions(), loadGaps(), loadReviews()]).catch(failed);
  }

  function loadAll() {
    return Promise.all([loadDocuments().catch(failed), loadReports()]);
  }

  if (key()) { showApp(true); loadAll(); } else { showApp(false); }
})();
