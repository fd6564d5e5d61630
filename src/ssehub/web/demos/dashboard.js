/* Dashboard: topic "dashboard", one "metrics" event a second, drawn as inline SVG. */
(function () {
  "use strict";
  var $ = function (id) {
    return document.getElementById(id);
  };
  var SVG = "http://www.w3.org/2000/svg";
  var WINDOW = 60;
  var points = []; // {t, load, published, delivered}
  var previous = null;

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    return node;
  }

  /** A round upper bound whose quarters are round too (1, 2, 2.5 or 5 times a power of 10). */
  function niceMax(value) {
    if (value <= 4) return 4;
    var raw = value / 4;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var norm = raw / magnitude;
    var step = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
    return step * magnitude * 4;
  }

  function tick(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  /** Draw series [{key, color, area}] of `points` into `chart` with y from 0 to `max`. */
  function draw(chart, series, max) {
    var W = 600;
    var H = 220;
    var left = 44;
    var right = 8;
    var top = 10;
    var bottom = 24;
    var plotW = W - left - right;
    var plotH = H - top - bottom;
    chart.textContent = "";
    for (var g = 0; g <= 4; g++) {
      var y = top + plotH - (plotH * g) / 4;
      chart.appendChild(svg("line", { class: "grid-line", x1: left, x2: W - right, y1: y, y2: y }));
      var label = svg("text", { class: "axis-label", x: left - 8, y: y + 4, "text-anchor": "end" });
      label.textContent = tick((max * g) / 4);
      chart.appendChild(label);
    }
    var xLabel = svg("text", { class: "axis-label", x: W - right, y: H - 6, "text-anchor": "end" });
    xLabel.textContent = "now";
    chart.appendChild(xLabel);
    var startLabel = svg("text", { class: "axis-label", x: left, y: H - 6 });
    startLabel.textContent = "−" + WINDOW + " s";
    chart.appendChild(startLabel);
    series.forEach(function (s) {
      var coords = [];
      points.forEach(function (p, i) {
        if (p[s.key] == null) return;
        var x = left + plotW - ((points.length - 1 - i) * plotW) / (WINDOW - 1);
        var yv = top + plotH - (Math.min(p[s.key], max) / max) * plotH;
        coords.push(x.toFixed(1) + "," + yv.toFixed(1));
      });
      if (!coords.length) return;
      if (s.area && coords.length > 1) {
        var first = coords[0].split(",")[0];
        var last = coords[coords.length - 1].split(",")[0];
        chart.appendChild(
          svg("polygon", {
            class: "area",
            fill: s.color,
            points: first + "," + (top + plotH) + " " + coords.join(" ") + " " + last + "," + (top + plotH),
          })
        );
      }
      chart.appendChild(svg("polyline", { class: "series", stroke: s.color, points: coords.join(" ") }));
      var end = coords[coords.length - 1].split(",");
      chart.appendChild(svg("circle", { cx: end[0], cy: end[1], r: 3.5, fill: s.color }));
    });
    chart.dataset.points = String(points.length);
  }

  function update(event) {
    var m = event.json();
    var now = Date.parse(m.time) || Date.now();
    var point = { t: now, load: m.load, published: null, delivered: null };
    if (previous) {
      var seconds = Math.max((now - previous.t) / 1000, 1);
      point.published = Math.max(0, (m.published - previous.published) / seconds);
      point.delivered = Math.max(0, (m.delivered - previous.delivered) / seconds);
      $("published-rate").textContent = point.published.toFixed(1) + " /s";
      $("delivered-rate").textContent = point.delivered.toFixed(1) + " /s";
    }
    previous = { t: now, published: m.published, delivered: m.delivered };
    points.push(point);
    if (points.length > WINDOW) points.shift();
    $("published").textContent = m.published.toLocaleString("en");
    $("delivered").textContent = m.delivered.toLocaleString("en");
    $("subscribers").textContent = String(m.subscribers);
    $("load").textContent = m.load.toFixed(1) + "%";
    $("updated").textContent = "updated " + UI.clockTime().slice(0, 8);
    draw($("load-chart"), [{ key: "load", color: "#4353ff", area: true }], 100);
    var top = 0;
    points.forEach(function (p) {
      top = Math.max(top, p.published || 0, p.delivered || 0);
    });
    draw(
      $("rate-chart"),
      [
        { key: "published", color: "#0f9d58" },
        { key: "delivered", color: "#f59e0b" },
      ],
      niceMax(top * 1.15)
    );
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  draw($("load-chart"), [], 100);
  draw($("rate-chart"), [], 4);
  new SSEHub.Hub()
    .subscribe("dashboard")
    .onEvent("metrics", update)
    .onState(function (state, info) {
      UI.showState($("state"), state, info);
    });
})();
