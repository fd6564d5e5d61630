/* Notifications: POST /demo/notify; every tab subscribed to "notifications" shows a toast. */
(function () {
  "use strict";
  var $ = function (id) {
    return document.getElementById(id);
  };
  var el = UI.el;
  var shared = UI.params().get("shared") !== "0";
  var hub = new SSEHub.Hub({ shared: shared });
  var received = 0;

  function toast(note) {
    var node = el("div", { class: "toast", data: { level: note.level } }, [
      el("strong", { text: note.title }),
      note.body ? el("p", { text: note.body }) : null,
    ]);
    $("toasts").appendChild(node);
    setTimeout(function () {
      node.remove();
    }, 8000);
  }

  function remember(event, note) {
    received += 1;
    $("received-count").textContent = String(received);
    $("empty").classList.add("hidden");
    var item = el("li", { class: "event", data: { id: event.id, level: note.level } }, [
      el("div", { class: "event-meta" }, [
        el("span", { class: "event-type", text: note.level, data: { type: note.level } }),
        el("strong", { class: "note-title", text: note.title }),
        el("time", { text: UI.clockTime() }),
      ]),
      note.body ? el("p", { class: "small", text: note.body, attrs: { style: "margin: .25rem 0 0" } }) : null,
    ]);
    $("received").insertBefore(item, $("received").firstChild);
  }

  var sub = hub.subscribe("notifications").onEvent("notification", function (event) {
    var note = event.json();
    toast(note);
    remember(event, note);
  });
  sub.onState(function (state, info) {
    UI.showState($("state"), state, info);
    document.body.dataset.connection = state;
    var how =
      info.transport === "shared"
        ? "one connection shared by " + (info.tabs || 1) + " tab" + (info.tabs === 1 ? "" : "s")
        : info.transport === "eventsource"
          ? "this tab's own EventSource"
          : info.transport
            ? "this tab's own connection (" + info.transport + ")"
            : "";
    if (how) $("connection").textContent = "Connection: " + how + ".";
    if (info.tabs) document.body.dataset.tabs = String(info.tabs);
  });
  window.notificationSubscription = sub;

  function curl() {
    var body = { title: $("title").value, body: $("body").value, level: $("level").value };
    $("curl").textContent =
      "curl " + UI.shellQuote(UI.hubUrl("demo/notify")) +
      " \\\n  -H 'Content-Type: application/json' \\\n  -d " + UI.shellQuote(JSON.stringify(body));
  }
  ["title", "body", "level"].forEach(function (id) {
    $(id).addEventListener("input", curl);
  });
  curl();
  UI.wireCopyButtons();

  $("notify-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var result = $("result");
    $("send").disabled = true;
    fetch(UI.hubUrl("demo/notify"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: $("title").value, body: $("body").value, level: $("level").value }),
    })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || "HTTP " + response.status);
          result.dataset.kind = "ok";
          result.textContent = "Sent as event " + body.id + ".";
        });
      })
      .catch(function (error) {
        result.dataset.kind = "error";
        result.textContent = "Not sent: " + error.message;
      })
      .finally(function () {
        $("send").disabled = false;
      });
  });
})();
