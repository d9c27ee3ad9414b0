// baton dashboard: live updates over server-sent events. Plain script, no framework, no
// build step. Event data is written with textContent only, never parsed as HTML.
(function () {
  "use strict";
  var body = document.body;
  var stateEl = document.getElementById("live-state");
  var WARN = ["failed", "degraded", "verification-failed", "notification-failed", "bad-head",
    "blocked", "diverged", "trusted"];
  var KEEP = 200;

  function setState(s) {
    body.setAttribute("data-live", s);
    if (stateEl) { stateEl.textContent = s; }
  }
  function bump(name) {
    body.setAttribute(name, String((Number(body.getAttribute(name)) || 0) + 1));
  }
  if (!window.EventSource) { setState("unavailable (reload to refresh)"); return; }

  var table = document.getElementById("events");
  var url = "/api/v1/events/stream";
  var since = table ? table.getAttribute("data-since") : "";
  if (since) { url += "?since=" + encodeURIComponent(since); }
  var es = new EventSource(url);
  es.onopen = function () { setState("open"); };
  es.onerror = function () { setState("reconnecting"); };
  es.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (x) { return; }
    bump("data-events");
    if (table) { prepend(table, e); }
  };
  es.addEventListener("status", function () { refresh(); });
  es.addEventListener("lagged", function () { refresh(); });

  // Re-fetch the server-rendered fragments of this page (the pipeline rows, a model's runs).
  var timer = null;
  function refresh() {
    if (timer) { return; }
    timer = setTimeout(function () {
      timer = null;
      var els = document.querySelectorAll("[data-fragment-url]");
      Array.prototype.forEach.call(els, function (el) {
        fetch(el.getAttribute("data-fragment-url"), { credentials: "same-origin" })
          .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
          .then(function (html) { el.innerHTML = html; bump("data-refreshed"); })
          .catch(function () { setState("refresh failed; reload the page"); });
      });
    }, 200);
  }

  function keeps(t, e) {
    var keys = ["model", "environment", "kind"];
    for (var i = 0; i < keys.length; i++) {
      var want = t.getAttribute("data-" + keys[i]);
      if (want && e[keys[i]] !== want) { return false; }
    }
    return true;
  }
  function td(tr, text) {
    var c = document.createElement("td");
    if (text) { c.textContent = text; }
    tr.appendChild(c);
    return c;
  }
  function prepend(t, e) {
    if (!keeps(t, e)) { return; }
    var tb = t.tBodies[0];
    var tr = document.createElement("tr");
    tr.className = "event fresh" + (WARN.indexOf(e.kind) >= 0 ? " warning" : "");
    tr.setAttribute("data-kind", e.kind);
    td(tr, String(e.time || "").replace("T", " ").slice(0, 19) + " UTC");
    var k = document.createElement("span");
    k.className = "badge kind-" + e.kind;
    k.textContent = e.kind;
    td(tr, "").appendChild(k);
    td(tr, e.environment || "");
    var mc = td(tr, "");
    if (e.model) {
      var a = document.createElement("a");
      a.href = "/models/" + encodeURIComponent(e.model);
      a.textContent = e.model;
      mc.appendChild(a);
    }
    td(tr, e.version || "");
    var cc = td(tr, "");
    if (e.commit) {
      var code = document.createElement("code");
      code.title = e.commit;
      code.textContent = e.commit.slice(0, 10);
      cc.appendChild(code);
    }
    var msg = td(tr, e.message || "");
    if (e.author) {
      var au = document.createElement("span");
      au.className = "author";
      au.textContent = " (" + e.author + ")";
      msg.appendChild(au);
    }
    if (e.reasons && e.reasons.length) {
      var ul = document.createElement("ul");
      ul.className = "reasons";
      e.reasons.forEach(function (r) {
        var li = document.createElement("li");
        li.textContent = r;
        ul.appendChild(li);
      });
      msg.appendChild(ul);
    }
    tb.insertBefore(tr, tb.firstChild);
    while (tb.rows.length > KEEP) { tb.deleteRow(tb.rows.length - 1); }
    var none = document.getElementById("no-events");
    if (none) { none.parentNode.removeChild(none); }
  }
})();
