/* The top bar every page shares: the brand, a link to each page, the current one marked.
 * A page loads this script in its <head> and has a `<header class="topbar"></header>` placeholder;
 * whatever the placeholder already holds (the console's health badge) stays after the links.
 * Links are written relative to the page, so the site works under any path prefix. */
(function () {
  "use strict";

  /** [path from the web root, label]; "" is the console. */
  var PAGES = [
    ["", "Console"],
    ["demos/", "Demos"],
    ["demos/clock.html", "Clock"],
    ["demos/notifications.html", "Notifications"],
    ["demos/chat.html", "AI chat"],
    ["demos/logs.html", "Log tail"],
    ["demos/dashboard.html", "Dashboard"],
  ];

  var root = new URL(".", document.currentScript.src).href; // this script sits at the web root
  var here = new URL(".", location.href).href;
  var folder = here.indexOf(root) === 0 ? here.slice(root.length) : ""; // "" or "demos/"

  /** A web-root path as the page links to it: "clock.html" from demos/, "demos/clock.html" from /. */
  function relative(path) {
    if (path.indexOf(folder) === 0) return path.slice(folder.length) || "./";
    return "../".repeat(folder.split("/").length - 1) + path || "./";
  }

  function isCurrent(href) {
    var strip = function (path) {
      return path.replace(/index\.html$/, "");
    };
    return strip(new URL(href, location.href).pathname) === strip(location.pathname);
  }

  function link(path, label, className) {
    var a = document.createElement("a");
    a.setAttribute("href", relative(path));
    a.textContent = label;
    if (className) a.className = className;
    return a;
  }

  function render() {
    var nav = document.createElement("nav");
    nav.setAttribute("aria-label", "Pages");
    PAGES.forEach(function (page) {
      var a = link(page[0], page[1]);
      if (isCurrent(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
      nav.appendChild(a);
    });
    document.querySelector("header.topbar").prepend(link("", "ssehub", "brand"), nav);
  }

  var icon = document.createElement("link");
  icon.rel = "icon";
  icon.type = "image/svg+xml";
  icon.href = root + "favicon.svg";
  document.head.appendChild(icon);

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
