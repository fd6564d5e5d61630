/* Log tail: the native EventSource (through SSEHub.Hub), one line element per line. */
(function () {
  "use strict";
  var $ = function (id) {
    return document.getElementById(id);
  };
  var MAX_LINES = 5000;
  var topic = UI.params().get("topic") || "logs";
  var hub = new SSEHub.Hub();
  var lines = 0;

  $("topic-name").textContent = topic;
  $("placeholder").textContent = "Waiting for lines on topic “" + topic + "”…";
  $("pipe-command").textContent = "tail -f /var/log/app.log | ssehub publish --topic " + topic + " -";
  $("curl").textContent =
    "curl " + UI.shellQuote(UI.hubUrl("publish")) + " -d topic=" + encodeURIComponent(topic) +
    " --data-urlencode " + UI.shellQuote("data=GET /health 200 3ms");

  function level(text) {
    if (/\b(ERROR|FATAL|CRITICAL|error)\b/.test(text)) return "error";
    if (/\b(WARN|WARNING|warn)\b/.test(text)) return "warn";
    return "info";
  }

  function append(event) {
    var terminal = $("terminal");
    $("placeholder").classList.add("hidden");
    var stamp = UI.clockTime();
    event.data.split("\n").forEach(function (text) {
      lines += 1;
      terminal.appendChild(
        UI.el("div", { class: "line", data: { id: event.id, level: level(text) } }, [
          UI.el("time", { text: stamp }),
          UI.el("span", { class: "text", text: text }),
        ])
      );
    });
    while (terminal.querySelectorAll(".line").length > MAX_LINES) {
      terminal.querySelector(".line").remove();
    }
    $("line-count").textContent = String(lines);
    if ($("follow").checked) terminal.scrollTop = terminal.scrollHeight;
  }

  var sub = hub.subscribe(topic, { transport: "eventsource" });
  sub.onEvent("message", append);
  sub.onEvent("reset", function () {
    append({ id: "", data: "-- the hub could not replay the lines missed while disconnected --" });
  });
  sub.onState(function (state, info) {
    UI.showState($("state"), state, info);
    document.body.dataset.connection = state;
    $("connection").textContent =
      "EventSource · " + (info.reconnects || 0) + " reconnect" + (info.reconnects === 1 ? "" : "s");
  });

  $("clear").addEventListener("click", function () {
    $("terminal").querySelectorAll(".line").forEach(function (line) {
      line.remove();
    });
    lines = 0;
    $("line-count").textContent = "0";
  });
  $("write-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = $("write").value;
    if (!text) return;
    hub.publish(topic, text).then(
      function () {
        $("write").value = "";
      },
      function (error) {
        $("connection").textContent = "Not written: " + error.message;
      }
    );
  });
  UI.wireCopyButtons();
})();
