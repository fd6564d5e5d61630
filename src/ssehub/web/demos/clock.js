/* Live clock: the native EventSource, ticks as "message" events, closed on "end". */
(function () {
  "use strict";
  var $ = function (id) {
    return document.getElementById(id);
  };
  var query = UI.params();
  var source = null;
  var READY = ["CONNECTING", "OPEN", "CLOSED"];

  function state(name) {
    UI.showState($("state"), name);
    if (source) $("ready-state").textContent = "EventSource.readyState: " + READY[source.readyState];
  }

  function log(kind, id, text) {
    var item = UI.el("li", { class: "event", data: { type: kind } }, [
      UI.el("div", { class: "event-meta" }, [
        UI.el("span", { class: "event-id", text: "#" + (id || "—") }),
        UI.el("span", { class: "event-type", text: kind, data: { type: kind } }),
        UI.el("time", { text: UI.clockTime() }),
      ]),
      UI.el("pre", { class: "event-data", text: text }),
    ]);
    var list = $("log");
    list.insertBefore(item, list.firstChild);
  }

  function start() {
    if (source) source.close();
    document.body.dataset.clock = "running";
    $("restart").disabled = true;
    $("log").textContent = "";
    $("progress").style.width = "0";
    var url = new URL("../demo/clock", location.href);
    url.searchParams.set("session", UI.randomId());
    ["count", "interval"].forEach(function (name) {
      if (query.get(name)) url.searchParams.set(name, query.get(name));
    });
    source = new EventSource(url.href);
    state("connecting");
    source.onopen = function () {
      state("open");
    };
    source.onmessage = function (e) {
      var tick = JSON.parse(e.data);
      // Server time as the server wrote it (its own time zone).
      var match = /T(\d\d:\d\d:\d\d)/.exec(tick.time);
      $("time").textContent = match ? match[1] : tick.time;
      $("tick").textContent = "tick " + tick.count + " of " + tick.of + " · " + tick.time.slice(0, 10);
      $("progress").style.width = (100 * tick.count) / tick.of + "%";
      document.body.dataset.ticks = String(tick.count);
      log("message", e.lastEventId, e.data);
    };
    source.addEventListener("end", function (e) {
      source.close(); // the point of the demo: no reconnect after the end
      var end = JSON.parse(e.data);
      log("end", e.lastEventId, e.data);
      $("tick").textContent = end.text + " · connection closed";
      state("closed");
      document.body.dataset.clock = "ended";
      $("restart").disabled = false;
    });
    source.onerror = function () {
      state(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
    };
  }

  $("restart").addEventListener("click", start);
  start();
})();
