/* Small helpers shared by the console and the demo pages (not part of the ssehub.js API).
 * Everything that shows event data goes through textContent: never innerHTML. */
(function () {
  "use strict";

  /** el("li", {class: "event", text: "...", data: {id: 1}, attrs: {title: "x"}}, children) */
  function el(tag, props, children) {
    var node = document.createElement(tag);
    props = props || {};
    if (props.class) node.className = props.class;
    if (props.text != null) node.textContent = String(props.text);
    if (props.data) {
      Object.keys(props.data).forEach(function (key) {
        node.dataset[key] = String(props.data[key]);
      });
    }
    if (props.attrs) {
      Object.keys(props.attrs).forEach(function (key) {
        node.setAttribute(key, String(props.attrs[key]));
      });
    }
    (children || []).forEach(function (child) {
      if (child != null) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  /** Quote for a POSIX shell: 'it'\''s'. */
  function shellQuote(text) {
    return "'" + String(text).replace(/'/g, "'\\''") + "'";
  }

  /** Pretty-print JSON data; anything else is returned as it is. */
  function pretty(data) {
    var trimmed = data.trim();
    if (trimmed && (trimmed[0] === "{" || trimmed[0] === "[")) {
      try {
        return JSON.stringify(JSON.parse(trimmed), null, 2);
      } catch (_) {
        /* not JSON after all */
      }
    }
    return data;
  }

  function clockTime(date) {
    date = date || new Date();
    function pad(n, w) {
      return String(n).padStart(w || 2, "0");
    }
    return (
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + "." +
      pad(date.getMilliseconds(), 3)
    );
  }

  function randomId() {
    if (window.crypto && crypto.getRandomValues) {
      var bytes = crypto.getRandomValues(new Uint8Array(9));
      return Array.from(bytes, function (b) {
        return b.toString(16).padStart(2, "0");
      }).join("");
    }
    return Math.random().toString(36).slice(2) + Date.now().toString(36);
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    var area = el("textarea", { attrs: { readonly: "" } });
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try {
      document.execCommand("copy");
    } finally {
      area.remove();
    }
    return Promise.resolve();
  }

  /** Wire every `.code .copy` button to copy its block's <pre>. */
  function wireCopyButtons(root) {
    (root || document).querySelectorAll(".code .copy").forEach(function (button) {
      button.addEventListener("click", function () {
        var pre = button.parentElement.querySelector("pre");
        copyText(pre.textContent).then(
          function () {
            button.textContent = "Copied";
            setTimeout(function () {
              button.textContent = "Copy";
            }, 1200);
          },
          function () {
            button.textContent = "Select & copy";
          }
        );
      });
    });
  }

  /** "250 ms", "3.0 s" */
  function duration(ms) {
    ms = Number(ms) || 0;
    return ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(1) + " s";
  }

  /** Show a subscription's state in a badge (data-state drives the colour). */
  function showState(badge, state, info) {
    badge.dataset.state = state;
    var text = state;
    if (state === "reconnecting" && info && info.delay != null) {
      text = "reconnecting in " + duration(info.delay);
    }
    badge.textContent = text;
  }

  /** The hub's absolute URL for a path, for curl lines (the page may be under a prefix). */
  function hubUrl(path) {
    return new URL(path, new SSEHub.Hub().url).href;
  }

  function params() {
    return new URLSearchParams(location.search);
  }

  window.UI = {
    el: el,
    shellQuote: shellQuote,
    pretty: pretty,
    clockTime: clockTime,
    randomId: randomId,
    copyText: copyText,
    wireCopyButtons: wireCopyButtons,
    showState: showState,
    duration: duration,
    hubUrl: hubUrl,
    params: params,
  };
})();
