// sealwatch's page script: compiled into the binary and inlined into `/`; no external asset,
// no framework. It follows `/events` (Server-Sent Events) and updates the row an event concerns
// at once, then re-reads `/containers?all=true`, `/pods` and `/-/ready` (coalesced) so that
// every cell ends up exactly as sealwatch knows it. It only ever talks to sealwatch, on the
// page's own origin (so basic-auth credentials apply), and never polls Podman. Every string that
// comes from Podman is set with textContent, never parsed as HTML.
(function () {
  "use strict";

  var live = document.getElementById("live");
  var containerBody = document.querySelector("#containers tbody");
  var podBody = document.querySelector("#pods tbody");
  var engineBody = document.querySelector("#engines tbody");
  if (!live || !containerBody || !podBody || !engineBody) {
    return;
  }

  function setLive(state, text, title) {
    live.className = "live live-" + state;
    live.dataset.state = state;
    live.querySelector(".live-text").textContent = text;
    live.title = title;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) {
      e.className = cls;
    }
    if (text !== undefined && text !== null) {
      e.textContent = String(text);
    }
    return e;
  }

  // The same class as the server's `state_class`: letters only, lower case.
  function badge(state) {
    var word = String(state);
    return el("span", "state st-" + word.toLowerCase().replace(/[^a-z]/g, ""), word);
  }

  function labelsText(labels) {
    return Object.keys(labels || {})
      .sort()
      .map(function (k) { return k + "=" + labels[k]; })
      .join(" ");
  }

  function short(id) {
    return String(id || "").slice(0, 12);
  }

  function key(engine, id) {
    return engine + "\u0000" + id;
  }

  function flash(tr) {
    tr.classList.remove("changed");
    // Restart the animation: read a layout property between removal and addition.
    void tr.offsetWidth;
    tr.classList.add("changed");
  }

  // A flash is over: drop its class, so that nothing replays it.
  document.addEventListener("animationend", function (e) {
    if (e.target && e.target.classList) {
      e.target.classList.remove("changed");
    }
  });

  // ---- containers ----

  function containerCells(tr, c) {
    tr.dataset.engine = c.engine;
    tr.dataset.id = c.id;
    tr.dataset.name = c.name || "";
    while (tr.firstChild) {
      tr.removeChild(tr.firstChild);
    }
    tr.appendChild(el("td", "c-engine", c.engine));
    tr.appendChild(el("td", "c-pod", c.pod && c.pod.name ? c.pod.name : ""));
    var name = el("td", "c-name");
    name.appendChild(el("span", "c-name-text", c.name || ""));
    if (c.infra) {
      name.appendChild(document.createTextNode(" "));
      name.appendChild(el("span", "tag", "infra"));
    }
    tr.appendChild(name);
    var state = el("td", "c-state");
    state.appendChild(badge(c.state || "unknown"));
    tr.appendChild(state);
    var health = el("td", "c-health");
    if (c.health) {
      health.appendChild(badge(c.health));
    }
    tr.appendChild(health);
    var exit = c.exit_code === null || c.exit_code === undefined ? "" : c.exit_code;
    tr.appendChild(el("td", "c-exit num" + (exit !== "" && exit !== 0 ? " bad" : ""), exit));
    tr.appendChild(el("td", "c-restarts num", c.restarts || 0));
    var image = el("td", "c-image", c.image || "");
    image.title = c.image || "";
    tr.appendChild(image);
    var labels = labelsText(c.labels);
    var lc = el("td", "c-labels labels", labels);
    lc.title = labels;
    tr.appendChild(lc);
    var id = el("td", "c-id id", short(c.id));
    id.title = c.id;
    tr.appendChild(id);
  }

  function sortKey(tr) {
    return [tr.dataset.engine || "", tr.dataset.name || "", tr.dataset.id || ""];
  }

  function before(a, b) {
    for (var i = 0; i < a.length; i++) {
      if (a[i] !== b[i]) {
        return a[i] < b[i];
      }
    }
    return false;
  }

  function rowsOf(body) {
    var out = new Map();
    Array.prototype.forEach.call(body.querySelectorAll("tr[data-id]"), function (tr) {
      out.set(key(tr.dataset.engine, tr.dataset.id), tr);
    });
    return out;
  }

  function dropEmpty(body) {
    Array.prototype.forEach.call(body.querySelectorAll("tr.empty"), function (tr) {
      tr.remove();
    });
  }

  function insertSorted(body, tr) {
    dropEmpty(body);
    var k = sortKey(tr);
    var rows = body.querySelectorAll("tr[data-id]");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i] !== tr && before(k, sortKey(rows[i]))) {
        body.insertBefore(tr, rows[i]);
        return;
      }
    }
    body.appendChild(tr);
  }

  function emptyRow(body, columns, text) {
    if (!body.querySelector("tr[data-id]") && !body.querySelector("tr.empty")) {
      var tr = el("tr", "empty");
      var td = el("td", null, text);
      td.colSpan = columns;
      tr.appendChild(td);
      body.appendChild(tr);
    }
  }

  // Replaces the table's rows with `list` (already sorted by the server): rows that did not
  // change stay untouched (and in place: moving a row would replay its flash), changed and new
  // ones flash.
  function renderList(body, list, cells, columns, emptyText) {
    var old = rowsOf(body);
    dropEmpty(body);
    var wanted = list.map(function (item) {
      var k = key(item.engine, item.id);
      var tr = old.get(k);
      var fresh = document.createElement("tr");
      cells(fresh, item);
      if (tr) {
        old.delete(k);
        if (tr.innerHTML !== fresh.innerHTML) {
          cells(tr, item);
          flash(tr);
        }
        return tr;
      }
      flash(fresh);
      return fresh;
    });
    old.forEach(function (tr) { tr.remove(); });
    wanted.forEach(function (tr, i) {
      var at = body.children[i] || null;
      if (at !== tr) {
        body.insertBefore(tr, at);
      }
    });
    emptyRow(body, columns, emptyText);
  }

  // What a container event says about the row before the lists are re-read.
  var STATE_OF_ACTION = {
    create: "created",
    init: "initialized",
    start: "running",
    restart: "running",
    unpause: "running",
    pause: "paused",
    died: "exited",
    stop: "exited"
  };

  function applyContainerEvent(ev) {
    var rows = rowsOf(containerBody);
    var k = key(ev.engine, ev.id);
    var tr = rows.get(k);
    if (ev.action === "remove") {
      if (tr) {
        tr.remove();
        emptyRow(containerBody, 10, "no containers");
      }
      return;
    }
    var state = STATE_OF_ACTION[ev.action];
    if (!tr) {
      if (!state) {
        return;
      }
      tr = document.createElement("tr");
      containerCells(tr, {
        engine: ev.engine,
        id: ev.id,
        name: ev.name,
        image: ev.image,
        state: state,
        pod: ev.pod,
        labels: ev.labels,
        exit_code: ev.exit_code,
        restarts: 0
      });
      insertSorted(containerBody, tr);
      flash(tr);
      return;
    }
    if (state) {
      var cell = tr.querySelector(".c-state");
      cell.textContent = "";
      cell.appendChild(badge(state));
    }
    if (ev.action === "died" && ev.exit_code !== null && ev.exit_code !== undefined) {
      var exit = tr.querySelector(".c-exit");
      exit.textContent = String(ev.exit_code);
      exit.className = "c-exit num" + (ev.exit_code !== 0 ? " bad" : "");
    }
    if (ev.action === "start") {
      tr.querySelector(".c-exit").textContent = "";
    }
    if (ev.health_status) {
      var health = tr.querySelector(".c-health");
      health.textContent = "";
      health.appendChild(badge(ev.health_status));
    }
    flash(tr);
  }

  // ---- pods ----

  function podCells(tr, p) {
    tr.dataset.engine = p.engine;
    tr.dataset.id = p.id;
    tr.dataset.name = p.name || "";
    while (tr.firstChild) {
      tr.removeChild(tr.firstChild);
    }
    tr.appendChild(el("td", "p-engine", p.engine));
    tr.appendChild(el("td", "p-name", p.name || ""));
    var state = el("td", "p-state");
    state.appendChild(badge(p.state || "unknown"));
    tr.appendChild(state);
    var members = Object.keys(p.containers || {})
      .sort()
      .map(function (s) { return p.containers[s] + " " + s; })
      .join(", ");
    tr.appendChild(el("td", "p-members", members));
    var labels = labelsText(p.labels);
    var lc = el("td", "p-labels labels", labels);
    lc.title = labels;
    tr.appendChild(lc);
    var id = el("td", "p-id id", short(p.id));
    id.title = p.id;
    tr.appendChild(id);
  }

  // ---- engines ----

  // Engine states from `/-/ready`, counts from the rows on the page.
  function renderEngines(ready) {
    var counts = {};
    function count(body, field) {
      Array.prototype.forEach.call(body.querySelectorAll("tr[data-id]"), function (tr) {
        var engine = tr.dataset.engine;
        counts[engine] = counts[engine] || { containers: 0, pods: 0 };
        counts[engine][field] += 1;
      });
    }
    count(containerBody, "containers");
    count(podBody, "pods");
    var rows = new Map();
    Array.prototype.forEach.call(engineBody.querySelectorAll("tr[data-engine]"), function (tr) {
      rows.set(tr.dataset.engine, tr);
    });
    (ready.engines || []).forEach(function (e) {
      var tr = rows.get(e.engine);
      rows.delete(e.engine);
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.engine = e.engine;
        ["e-name", "e-url", "e-version", "e-state", "e-containers num", "e-pods num", "e-stats"]
          .forEach(function (cls) { tr.appendChild(el("td", cls, "")); });
        tr.querySelector(".e-name").textContent = e.engine;
        tr.querySelector(".e-version").textContent = "-";
        engineBody.appendChild(tr);
      }
      tr.querySelector(".e-url").textContent = e.url;
      var state = tr.querySelector(".e-state");
      var text = e.ready ? "ready" : e.reason || "syncing";
      if (state.textContent !== text) {
        state.textContent = "";
        var b = badge(e.ready ? "ready" : "down");
        b.textContent = text;
        state.appendChild(b);
        flash(tr);
      }
      var n = counts[e.engine] || { containers: 0, pods: 0 };
      tr.querySelector(".e-containers").textContent = String(n.containers);
      tr.querySelector(".e-pods").textContent = String(n.pods);
    });
    rows.forEach(function (tr) { tr.remove(); });
  }

  // ---- reading sealwatch ----

  // Absolute on the page's origin: a page opened as user:password@host has credentials
  // in its URL, and fetch refuses relative URLs resolved against it (the browser sends the
  // credentials it was given for the origin either way).
  function here(path) {
    return window.location.origin + path;
  }

  function getJSON(path, acceptStatus) {
    return fetch(here(path), {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json" }
    }).then(function (r) {
      if (!r.ok && r.status !== acceptStatus) {
        throw new Error(path + ": HTTP " + r.status);
      }
      return r.json();
    });
  }

  var syncTimer = null;
  var syncing = false;
  var syncAgain = false;
  var syncErrors = 0;
  // How long the last re-read took: re-reads after events are spaced by at least four times
  // that, so that a page over tens of thousands of containers on a busy host costs sealwatch a
  // bounded share of its time, whatever the event rate.
  var lastSyncMs = 0;

  function sync() {
    syncTimer = null;
    if (syncing) {
      syncAgain = true;
      return;
    }
    syncing = true;
    var started = Date.now();
    Promise.all([
      getJSON("/containers?all=true"),
      getJSON("/pods"),
      getJSON("/-/ready", 503)
    ]).then(function (got) {
      delete document.body.dataset.syncError;
      syncErrors = 0;
      renderList(containerBody, got[0], containerCells, 10, "no containers");
      renderList(podBody, got[1], podCells, 6, "no pods");
      renderEngines(got[2]);
      document.getElementById("container-count").textContent = String(got[0].length);
      document.getElementById("pod-count").textContent = String(got[1].length);
      document.body.dataset.synced = String(Number(document.body.dataset.synced || 0) + 1);
      // Until sealwatch has synced every engine (say, right after it restarted) its lists may
      // still be partial: read again shortly.
      if (!got[2].ready) {
        syncAgain = true;
      }
    }).catch(function (err) {
      document.body.dataset.syncError = String(err);
      syncErrors += 1;
      syncAgain = true;
    }).then(function () {
      syncing = false;
      lastSyncMs = Date.now() - started;
      if (syncAgain) {
        syncAgain = false;
        // After failures: 1 s, doubling to 30 s.
        scheduleSync(Math.min(1000 * Math.pow(2, Math.max(syncErrors - 1, 0)), 30000));
      }
    });
  }

  // Coalesces re-reads: a burst of events costs one round of list requests.
  function scheduleSync(delay) {
    if (syncTimer === null) {
      syncTimer = setTimeout(sync, delay > 0 ? Math.max(delay, 4 * lastSyncMs) : 0);
    }
  }

  // ---- the feed ----

  var source = null;
  var failures = 0;

  // The browser's own EventSource reconnect is not used: it would send Last-Event-ID, whose
  // sequence numbers mean nothing to a sealwatch that restarted meanwhile. A fresh feed and a
  // re-read of the lists on every open lose nothing instead.
  function connect() {
    if (!window.EventSource) {
      setLive("down", "no live updates", "this browser has no EventSource; reload for fresh data");
      return;
    }
    if (failures === 0) {
      setLive("connecting", "connecting", "connecting to /events");
    }
    source = new EventSource(here("/events"));
    source.onopen = function () {
      failures = 0;
      setLive("live", "live", "following /events");
      // Whatever happened while not connected (or between rendering and subscribing).
      scheduleSync(0);
    };
    source.onmessage = function (m) {
      var ev;
      try {
        ev = JSON.parse(m.data);
      } catch (e) {
        return;
      }
      if (ev.type === "container") {
        applyContainerEvent(ev);
      }
      scheduleSync(300);
    };
    source.addEventListener("missed", function () {
      // The feed fell behind and ends; reconnect and re-read.
      retry();
    });
    source.onerror = retry;
  }

  function retry() {
    if (source) {
      source.onerror = null;
      source.close();
      source = null;
    } else {
      return;
    }
    failures += 1;
    // 1 s, doubling to 30 s.
    var delay = Math.min(1000 * Math.pow(2, failures - 1), 30000);
    if (failures === 1) {
      setLive("connecting", "reconnecting", "the feed ended; reconnecting");
    } else {
      setLive("down", "disconnected", "sealwatch's feed cannot be reached; retrying every " +
        delay / 1000 + " s");
    }
    setTimeout(connect, failures === 1 ? 250 : delay);
  }

  // Engine readiness has no event: read /-/ready now and then (sealwatch's snapshot, not
  // Podman; one small request).
  setInterval(function () {
    getJSON("/-/ready", 503).then(renderEngines).catch(function () {});
  }, 10000);

  connect();
})();
