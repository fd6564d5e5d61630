/* The hub console: subscribe, watch events arrive, publish. Uses only the hub's HTTP API
 * (GET /events, POST /publish, GET /healthz) through ssehub.js.
 *
 * The token field (a hub with --jwt-key) is kept in sessionStorage, so it lives as long as the
 * tab and no longer; it is read before every connection, reconnection and publish (ssehub.js's
 * `token` option, sent as `Authorization: Bearer`), and the page's text only ever shows the
 * start of it. */
(function () {
  "use strict";
  var el = UI.el;
  var $ = function (id) {
    return document.getElementById(id);
  };
  var MAX_ROWS = 500;
  var TOKEN_KEY = "ssehub.console.token";
  var hub = new SSEHub.Hub({ token: currentToken });
  var sub = null;
  var count = 0;
  var paused = false;
  var held = [];
  var opened = 0;

  function topicsOf(text) {
    return text.split(/[\s,]+/).filter(Boolean);
  }

  // -- the token -----------------------------------------------------------------------------

  function currentToken() {
    return $("token").value.trim();
  }

  function storeToken() {
    try {
      if (currentToken()) sessionStorage.setItem(TOKEN_KEY, currentToken());
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      /* storage refused (privacy settings): the field still works for this page */
    }
  }

  function restoreToken() {
    try {
      $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      /* as above */
    }
  }

  /** The start of the token, for text on the page: never the whole of it. */
  function shortToken(token) {
    return token.slice(0, Math.min(12, Math.floor(token.length / 2))) + "…";
  }

  /** The curl -H line carrying the token (shortened), or "" without one. */
  function tokenCurl() {
    var token = currentToken();
    if (!token) return "";
    return " \\\n  -H " + UI.shellQuote("Authorization: Bearer " + shortToken(token));
  }

  // -- curl equivalents ----------------------------------------------------------------------

  function subscribeCurl() {
    var topics = topicsOf($("topics").value);
    var url = new URL("events", hub.url);
    topics.forEach(function (t) {
      url.searchParams.append("topic", t);
    });
    var line = "curl -N " + UI.shellQuote(url.href) + tokenCurl();
    var lastId = $("last-event-id").value.trim();
    if (lastId) line += " \\\n  -H " + UI.shellQuote("Last-Event-ID: " + lastId);
    $("curl-subscribe").textContent = line;
  }

  function publishBody() {
    var topics = topicsOf($("pub-topic").value);
    var body = { topic: topics.length === 1 ? topics[0] : topics };
    var event = $("pub-event").value.trim();
    if (event && event !== "message") body.event = event;
    body.data = $("pub-data").value;
    if ($("pub-private").checked) body.private = true;
    return body;
  }

  function publishCurl() {
    $("curl-publish").textContent =
      "curl " + UI.shellQuote(new URL("publish", hub.url).href) + tokenCurl() +
      " \\\n  -H 'Content-Type: application/json' \\\n  -d " +
      UI.shellQuote(JSON.stringify(publishBody()));
  }

  // -- the event list ------------------------------------------------------------------------

  function addRow(row) {
    var list = $("events");
    list.insertBefore(row, list.firstChild);
    while (list.children.length > MAX_ROWS) list.removeChild(list.lastChild);
    $("empty").classList.add("hidden");
  }

  function systemRow(text, kind) {
    addRow(
      el("li", { class: "event system", data: { kind: kind || "info" } }, [
        el("span", { text: UI.clockTime() + "  " + text }),
      ])
    );
  }

  function eventRow(event, received) {
    var meta = el("div", { class: "event-meta" }, [
      el("span", { class: "event-id", text: "#" + (event.id || "—"), attrs: { title: "event id" } }),
      el("span", { class: "event-type", text: event.type, data: { type: event.type } }),
    ]);
    event.topics.forEach(function (topic) {
      meta.appendChild(el("span", { class: "topic", text: topic }));
    });
    meta.appendChild(el("time", { text: UI.clockTime(received), attrs: { datetime: received.toISOString() } }));
    return el("li", { class: "event", data: { id: event.id, type: event.type } }, [
      meta,
      el("pre", { class: "event-data", text: UI.pretty(event.data) }),
    ]);
  }

  function onEvent(event) {
    count += 1;
    $("count").textContent = String(count);
    $("last-id").textContent = event.id || "—";
    var row = eventRow(event, new Date());
    if (paused) held.push(row);
    else addRow(row);
    if (event.type === "reset") {
      systemRow("reset: the hub could not replay from that id; live from here", "error");
    }
  }

  function onState(state, info) {
    UI.showState($("state"), state, info);
    $("reconnects").textContent = String(info.reconnects || 0);
    if (info.lastEventId) $("last-id").textContent = info.lastEventId;
    var connected = state === "open" || state === "connecting" || state === "reconnecting";
    $("disconnect").disabled = !connected;
    if (state === "open") {
      opened += 1;
      var topics = sub ? sub.topics.join(", ") : "";
      if (opened === 1) systemRow("connected to " + topics + " (" + info.transport + " transport)");
      else systemRow("reconnected with Last-Event-ID " + (info.lastEventId || "(none)"));
    } else if (state === "reconnecting") {
      systemRow(
        "connection lost (" + (info.reason || "?") + "); reconnecting in " + UI.duration(info.delay) +
          " with Last-Event-ID " + (info.lastEventId || "(none)"),
        "error"
      );
    } else if (state === "closed" && info.status) {
      // The hub's own words when it refused (401: "token has expired", "no token: ...").
      systemRow("closed: " + info.reason + (info.message ? " — " + info.message : ""), "error");
    }
  }

  // -- actions -------------------------------------------------------------------------------

  function connect() {
    var topics = topicsOf($("topics").value);
    if (!topics.length) return;
    disconnect(true);
    opened = 0;
    var lastEventId = $("last-event-id").value.trim();
    var query = new URLSearchParams({ topics: topics.join(",") });
    if (lastEventId) query.set("last_event_id", lastEventId);
    history.replaceState(null, "", "?" + query.toString());
    sub = hub.subscribe(topics, { transport: "fetch", lastEventId: lastEventId || undefined });
    sub.on("*", onEvent).onState(onState);
    window.consoleSubscription = sub;
  }

  function disconnect(quiet) {
    if (!sub) return;
    var old = sub;
    sub = null;
    old.close();
    if (!quiet) systemRow("disconnected");
  }

  function publish(form) {
    var result = $("publish-result");
    var body = publishBody();
    if (!topicsOf($("pub-topic").value).length) return;
    $("publish").disabled = true;
    hub
      .publish(body.topic, body.data, { event: body.event, private: body.private })
      .then(
        function (id) {
          result.dataset.kind = "ok";
          result.textContent =
            "Published id " + id + " to " + [].concat(body.topic).join(", ") +
            (body.private ? " (private)" : "");
        },
        function (error) {
          result.dataset.kind = "error";
          result.textContent = "Not published: " + error.message;
        }
      )
      .finally(function () {
        $("publish").disabled = false;
        form.dataset.published = String(Number(form.dataset.published || 0) + 1);
      });
  }

  // -- wiring --------------------------------------------------------------------------------

  $("subscribe-form").addEventListener("submit", function (e) {
    e.preventDefault();
    connect();
  });
  $("disconnect").addEventListener("click", function () {
    disconnect(false);
  });
  $("publish-form").addEventListener("submit", function (e) {
    e.preventDefault();
    publish(e.target);
  });
  $("pause").addEventListener("change", function (e) {
    paused = e.target.checked;
    if (!paused) {
      held.forEach(addRow);
      held = [];
    }
  });
  $("clear").addEventListener("click", function () {
    $("events").textContent = "";
    held = [];
    $("empty").classList.remove("hidden");
  });
  ["topics", "last-event-id"].forEach(function (id) {
    $(id).addEventListener("input", subscribeCurl);
  });
  ["pub-topic", "pub-event", "pub-data", "pub-private"].forEach(function (id) {
    $(id).addEventListener("input", publishCurl);
  });
  $("token").addEventListener("input", function () {
    storeToken();
    subscribeCurl();
    publishCurl();
  });
  document.querySelectorAll(".hub-origin").forEach(function (node) {
    node.textContent = hub.url.replace(/\/$/, "");
  });
  UI.wireCopyButtons();

  fetch(new URL("healthz", hub.url).href)
    .then(function (r) {
      return r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status));
    })
    .then(
      function (body) {
        $("health").dataset.state = "open";
        $("health").textContent = "hub " + body.status;
      },
      function () {
        $("health").dataset.state = "error";
        $("health").textContent = "hub unreachable";
      }
    );

  restoreToken();
  var query = UI.params();
  if (query.get("topics")) $("topics").value = query.get("topics").split(",").join(" ");
  if (query.get("last_event_id")) $("last-event-id").value = query.get("last_event_id");
  subscribeCurl();
  publishCurl();
  if (query.get("connect") !== "0") connect();
})();
