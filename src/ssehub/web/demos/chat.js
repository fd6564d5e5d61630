/* AI chat: POST /demo/chat through SSEHub.EventStream; tokens typed out as they arrive. */
(function () {
  "use strict";
  var $ = function (id) {
    return document.getElementById(id);
  };
  var el = UI.el;
  var current = null;
  // What each answer received, for the curious (and the browser tests).
  var demo = (window.chatDemo = { answers: [] });

  function scrollDown(node) {
    node.scrollIntoView({ block: "end", behavior: "auto" });
  }

  function ask(prompt) {
    prompt = prompt.trim();
    if (!prompt || current) return;
    $("empty").classList.add("hidden");
    $("chips").classList.add("hidden");
    var id = UI.randomId();
    var record = { id: id, prompt: prompt, indices: [], text: "", drops: 0, done: false, problems: [] };
    demo.answers.push(record);

    $("chat").appendChild(el("div", { class: "bubble user", text: prompt }));
    var answer = el("span", { class: "answer" });
    var meta = el("span", { class: "meta", text: "thinking…" });
    var bubble = el("div", { class: "bubble ai", data: { streaming: "true", answer: id } }, [answer, meta]);
    $("chat").appendChild(bubble);
    scrollDown(bubble);

    var stream = new SSEHub.EventStream(UI.hubUrl("demo/chat"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ id: id, prompt: prompt }),
    });
    current = stream;
    Object.defineProperty(record, "stream", { value: stream }); // not enumerable: stays JSON
    $("drop").disabled = false;
    $("send").disabled = true;

    function finish(state, text) {
      stream.close();
      current = null;
      bubble.dataset.streaming = "false";
      $("drop").disabled = true;
      $("send").disabled = false;
      UI.showState($("state"), state);
      meta.textContent = text;
    }

    stream.onopen = function () {
      UI.showState($("state"), "open");
      if (stream.reconnects > 0) {
        meta.textContent = "resumed from Last-Event-ID " + (stream.lastEventId || "(start)") + "…";
      }
    };
    stream.addEventListener("token", function (e) {
      var token = JSON.parse(e.data);
      var expected = record.indices.length;
      if (token.i !== expected) record.problems.push("expected token " + expected + ", got " + token.i);
      record.indices.push(token.i);
      record.text += token.t;
      answer.appendChild(document.createTextNode(token.t));
      if (!stream.reconnects) meta.textContent = record.indices.length + " tokens";
      scrollDown(bubble);
    });
    stream.addEventListener("done", function (e) {
      var total = JSON.parse(e.data).tokens;
      record.done = true;
      if (total !== record.indices.length) record.problems.push("done after " + record.indices.length + " of " + total);
      var text = total + " tokens";
      if (record.drops) {
        text += " · resumed after " + record.drops + " dropped connection" + (record.drops > 1 ? "s" : "");
        text += record.problems.length ? " · " + record.problems.join("; ") : ", none lost or repeated";
      }
      finish("closed", text);
      bubble.dataset.done = "true";
    });
    stream.addEventListener("reset", function () {
      record.problems.push("reset");
      finish("error", "the hub no longer has this answer; ask again");
    });
    stream.onerror = function (e) {
      if (stream.readyState === SSEHub.CLOSED) {
        finish("error", "failed: " + e.reason);
        return;
      }
      record.drops += 1;
      UI.showState($("state"), "reconnecting", e);
      meta.textContent =
        "connection lost — reconnecting in " + UI.duration(e.delay) + " with Last-Event-ID " +
        (stream.lastEventId || "(none yet)");
    };
  }

  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var prompt = $("prompt").value;
    $("prompt").value = "";
    ask(prompt);
  });
  $("chips").addEventListener("click", function (e) {
    if (e.target.tagName === "BUTTON") ask(e.target.textContent);
  });
  $("drop").addEventListener("click", function () {
    if (current) current.reconnect();
  });
  var first = UI.params().get("ask");
  if (first) ask(first);
})();
