/*! ssehub.js — the browser client for an ssehub hub. No dependencies, no build step.
 *
 * A classic script (load it with <script src="/ssehub.js">) that defines one global, `SSEHub`
 * (or `module.exports` under CommonJS). The same file is also the SharedWorker that lets all tabs
 * of an origin share one hub connection: started as a SharedWorker it serves tabs instead.
 *
 *   const hub = new SSEHub.Hub();                      // the hub that served this script
 *   hub.subscribe(["orders", "alerts"])
 *      .on("orders", (e) => show(e.json()))             // per-topic handlers (fetch transport)
 *      .on("alerts", (e) => alarm(e.data))
 *      .onEvent("reset", () => reload())                // per event type
 *      .onState((state, info) => badge(state));         // connecting|open|reconnecting|closed
 *   await hub.publish("orders", {id: 7});              // POST /publish (JSON)
 *
 *   // A stream that needs a POST body or headers, with what EventSource gives and fetch loses:
 *   // reconnect honouring `retry:`, Last-Event-ID on reconnect, custom event types, close().
 *   const s = new SSEHub.EventStream("/demo/chat", {method: "POST", body, headers});
 *   s.addEventListener("token", (e) => out.append(e.data));
 *
 *   // A hub started with --jwt-key: a token (Mercure's JWT claims) for streams and publishes.
 *   const secure = new SSEHub.Hub({token: () => fetch("/my-token").then((r) => r.text())});
 *
 * Authorization (hub option `token`, or per subscription / EventStream):
 * - `token`: a string, or a function returning a string or a Promise of one. A function is
 *   called before every connection and reconnection (and every publish), so a client whose
 *   token expired (the hub ends a stream when its token expires) comes back with a fresh one.
 *   An empty string, null or undefined sends no token (anonymous). A function that throws or
 *   rejects counts as a failed connection attempt: retried after the reconnect delay.
 * - The fetch transport, EventStream and publish send it as `Authorization: Bearer <token>`
 *   (replacing any Authorization in `headers`). The EventSource transport, which cannot send
 *   headers, sends it as the `authorization` query parameter. A token, like custom headers,
 *   makes "auto" choose fetch, so it travels in a header rather than in a URL that proxies and
 *   access logs record; the query parameter is used only when transport "eventsource" is
 *   asked for. With a token function that transport reopens the EventSource itself at each
 *   reconnect (after `retry` ms, doubling while attempts fail), resuming from the last event
 *   it delivered with `last_event_id` (the browser does not expose the position the hub
 *   announces, so a drop before the first event resumes from "now": prefer fetch).
 * - A page that sets the `mercureAuthorization` cookie itself needs no token option: a
 *   same-origin hub gets the cookie on every request. A hub on another origin gets it only
 *   with `withCredentials: true` (hub or EventStream option; EventSource's withCredentials,
 *   fetch's credentials: "include"), and the hub must then allow the page's origin explicitly
 *   (`--cors-origin https://app.example`, never `*`); it also refuses a publish authenticated
 *   by cookie unless the page's origin is listed there.
 * - The "shared" transport passes a string token to the SharedWorker (tabs with different
 *   tokens never share a connection); a token function cannot cross to the worker, so a
 *   subscription with one uses its own fetch connection instead.
 *
 * Transports of hub.subscribe():
 * - "eventsource": the browser's own EventSource. Chosen by "auto" for a GET stream of one topic
 *   with no custom headers and no per-topic or catch-all handler: each event's topic is then the
 *   subscribed topic. EventSource cannot see the `topic:` lines, nor event types nobody asked for.
 * - "fetch": EventStream (fetch + ReadableStream). Chosen by "auto" for several topics, custom
 *   headers, a token, or per-topic/catch-all handlers ("per-topic handlers force the fetch
 *   transport").
 * - "shared": one connection per distinct topic set and hub, held by a SharedWorker running this
 *   file, shared by every tab of the origin (hub option `shared: true`). Falls back to "fetch"
 *   where SharedWorker does not exist (e.g. Chrome on Android), and for a token function.
 */
(function (root, factory) {
  "use strict";
  var api = factory(root);
  if (typeof module === "object" && module && module.exports) module.exports = api;
  else root.SSEHub = api;
  if (typeof SharedWorkerGlobalScope !== "undefined" && root instanceof SharedWorkerGlobalScope) {
    api._serveTabs(root);
  }
})(typeof self !== "undefined" ? self : this, function (root) {
  "use strict";

  var VERSION = "0.1.0";
  var CONNECTING = 0;
  var OPEN = 1;
  var CLOSED = 2;

  // Where this script came from: the default hub and the SharedWorker's script.
  var SCRIPT_URL = (function () {
    try {
      if (typeof document !== "undefined" && document.currentScript) {
        return document.currentScript.src;
      }
      if (root.location) return root.location.href;
    } catch (_) {
      /* fall through */
    }
    return "";
  })();

  function baseURI() {
    if (typeof document !== "undefined" && document.baseURI) return document.baseURI;
    return root.location ? root.location.href : SCRIPT_URL;
  }

  function setProps(target, props) {
    for (var key in props) {
      if (Object.prototype.hasOwnProperty.call(props, key)) {
        Object.defineProperty(target, key, { value: props[key], enumerable: true });
      }
    }
    return target;
  }

  function randomId() {
    if (root.crypto && typeof root.crypto.randomUUID === "function") {
      return root.crypto.randomUUID();
    }
    var out = "";
    for (var i = 0; i < 4; i++) out += Math.floor(Math.random() * 0x100000000).toString(36);
    return out;
  }

  function errorText(error) {
    return error && error.message ? error.message : String(error);
  }

  /**
   * A `token` option's value now: a Promise of a string ("" for none). A function is called
   * (it may return a string or a Promise of one); a throw becomes a rejection.
   */
  function resolveToken(token) {
    var value;
    try {
      value = typeof token === "function" ? token() : token;
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(value).then(function (resolved) {
      return resolved == null ? "" : String(resolved);
    });
  }

  /** `headers` (a Headers) with `Authorization: Bearer <token>` when there is a token. */
  function withToken(headers, token) {
    if (token) headers.set("Authorization", "Bearer " + token);
    return headers;
  }

  /**
   * The JSON error a hub answered with ({"error": "..."}), read from at most `limit` bytes of
   * a failed response: Promise of {message, body} (message "" and body null when there is none).
   */
  function readError(response, limit) {
    var none = { message: "", body: null };
    var type = (response.headers.get("Content-Type") || "").toLowerCase();
    if (!response.body || type.indexOf("json") === -1) {
      if (response.body) response.body.cancel().catch(function () {});
      return Promise.resolve(none);
    }
    var reader = response.body.getReader();
    var chunks = [];
    var size = 0;
    function read() {
      return reader.read().then(function (result) {
        if (!result.done) {
          chunks.push(result.value);
          size += result.value.length;
          if (size < limit) return read();
          reader.cancel().catch(function () {});
        }
        var bytes = new Uint8Array(size);
        var at = 0;
        chunks.forEach(function (chunk) {
          bytes.set(chunk, at);
          at += chunk.length;
        });
        var body = JSON.parse(new TextDecoder().decode(bytes));
        var message = body && typeof body.error === "string" ? body.error : "";
        return { message: message, body: body };
      });
    }
    return read().catch(function () {
      return none;
    });
  }

  // -- the event-stream parser (WHATWG HTML, "Parsing an event stream") ---------------------

  /**
   * Incremental parser. `feed(chunk)` takes bytes (Uint8Array/ArrayBuffer, decoded as UTF-8)
   * or text. Callbacks:
   *   onEvent({type, data, lastEventId, topics}) for each dispatched event;
   *   onLastEventId(id) at every blank line (even when no event is dispatched);
   *   onRetry(ms) for a valid `retry:` field.
   * Lines end at CRLF, LF or CR (a CR at the end of one chunk and LF at the start of the next
   * count once); one leading BOM is skipped; `:` lines are comments; an `id` containing NUL is
   * ignored; `retry` must be ASCII digits only. `topic:` (ssehub's own field) is collected per
   * event. At end of stream, call `end()`: an incomplete event is discarded.
   */
  function Parser(options) {
    options = options || {};
    this.onEvent = options.onEvent || null;
    this.onLastEventId = options.onLastEventId || null;
    this.onRetry = options.onRetry || null;
    // The last event ID (set at each blank line, as the source's is) and the buffer it
    // comes from (set by `id:` lines).
    this.lastEventId = options.lastEventId ? String(options.lastEventId) : "";
    this._idBuffer = this.lastEventId;
    this._decoder = null;
    this._line = "";
    this._started = false; // first character seen (BOM check)
    this._afterCR = false; // previous chunk ended with CR: a leading LF belongs to it
    this._data = "";
    this._hasData = false;
    this._type = "";
    this._topics = [];
  }

  Parser.prototype.feed = function (chunk) {
    var text;
    if (typeof chunk === "string") {
      text = chunk;
    } else {
      if (!this._decoder) this._decoder = new TextDecoder("utf-8", { ignoreBOM: true });
      text = this._decoder.decode(chunk, { stream: true });
    }
    this._text(text);
  };

  Parser.prototype.end = function () {
    if (this._decoder) this._text(this._decoder.decode());
    // Whatever is left (a partial line, an event without its blank line) is discarded.
    this._line = "";
    this._data = "";
    this._hasData = false;
    this._type = "";
    this._topics = [];
  };

  Parser.prototype._text = function (text) {
    if (!text) return;
    var start = 0;
    if (!this._started) {
      this._started = true;
      if (text.charCodeAt(0) === 0xfeff) start = 1;
    }
    if (this._afterCR) {
      this._afterCR = false;
      if (text.charCodeAt(start) === 10) start += 1;
    }
    var n = text.length;
    var i = start;
    while (i < n) {
      var c = text.charCodeAt(i);
      if (c === 10 || c === 13) {
        var line = this._line + text.slice(start, i);
        this._line = "";
        if (c === 13) {
          if (i + 1 < n) {
            if (text.charCodeAt(i + 1) === 10) i += 1;
          } else {
            this._afterCR = true;
          }
        }
        i += 1;
        start = i;
        this._processLine(line);
      } else {
        i += 1;
      }
    }
    if (start < n) this._line += text.slice(start);
  };

  Parser.prototype._processLine = function (line) {
    if (line === "") {
      this._dispatch();
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ":" comment
    var colon = line.indexOf(":");
    var field;
    var value;
    if (colon === -1) {
      field = line;
      value = "";
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this._type = value;
        break;
      case "data":
        this._data += value + "\n";
        this._hasData = true;
        break;
      case "id":
        if (value.indexOf("\u0000") === -1) this._idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value) && this.onRetry) this.onRetry(parseInt(value, 10));
        break;
      case "topic":
        this._topics.push(value);
        break;
      default:
      // unknown fields are ignored
    }
  };

  Parser.prototype._dispatch = function () {
    var lastEventId = (this.lastEventId = this._idBuffer);
    if (this.onLastEventId) this.onLastEventId(lastEventId);
    var hasData = this._hasData;
    var data = this._data;
    var type = this._type;
    var topics = this._topics;
    this._data = "";
    this._hasData = false;
    this._type = "";
    this._topics = [];
    if (!hasData) return;
    if (data.charCodeAt(data.length - 1) === 10) data = data.slice(0, -1);
    if (this.onEvent) {
      this.onEvent({ type: type || "message", data: data, lastEventId: lastEventId, topics: topics });
    }
  };

  /** Parse a complete stream (bytes or text) at once; returns the events (for tests and tools). */
  function parse(stream, lastEventId) {
    var events = [];
    var retries = [];
    var parser = new Parser({
      lastEventId: lastEventId,
      onEvent: function (e) {
        events.push(e);
      },
      onRetry: function (ms) {
        retries.push(ms);
      },
    });
    parser.feed(stream);
    parser.end();
    return { events: events, retry: retries.length ? retries[retries.length - 1] : null,
      lastEventId: parser.lastEventId };
  }

  // -- EventStream: an EventSource over fetch -------------------------------------------------

  var RETRYABLE_STATUS = { 429: true, 502: true, 503: true, 504: true };

  /**
   * `new EventStream(url, options)`: like `new EventSource(url)`, over fetch, so it can send a
   * method, body and headers. Options: method ("GET"), body, headers, token (a string, or a
   * function returning one or a Promise of one, called before every request: sent as
   * `Authorization: Bearer`), credentials ("same-origin"), withCredentials (true: credentials
   * "include", cookies to a cross-origin hub), lastEventId (resume point of the first
   * request), retry (ms before a reconnect until the server sends `retry:`; 3000), maxRetry
   * (cap of the doubling delay after repeated failed attempts; 30000), idleTimeout (ms without
   * a byte — hub heartbeats count — after which the connection is treated as lost; 0 = never),
   * fetch (a fetch function).
   *
   * Fires "open", "error" (with .reason, .status, .delay, and .message: the `error` of the
   * server's JSON answer when it closes the stream for good, e.g. a hub's 401 "token has
   * expired", else ""; readyState says if it reconnects), and a MessageEvent per event under
   * its type ("message", "reset", "token", ...) carrying .data, .lastEventId and .topics (the
   * `topic:` lines). `onevent` is called for every event whatever its type. Reconnects (after a
   * network error, the end of the response, or 429/502/503/504) re-send the same request with
   * `Last-Event-ID` (and a token from the token function, called again); other statuses and
   * non-event-stream responses close it for good, as EventSource does.
   */
  class EventStream extends EventTarget {
    constructor(url, options) {
      super();
      options = options || {};
      this.url = String(new URL(url, baseURI()));
      if (options.withCredentials && !options.credentials) {
        options = Object.assign({}, options, { credentials: "include" });
      }
      this.withCredentials = options.credentials === "include";
      this.readyState = CONNECTING;
      this.lastEventId = options.lastEventId ? String(options.lastEventId) : "";
      this.retry = options.retry == null ? 3000 : Number(options.retry);
      this.reconnects = 0;
      this.onopen = null;
      this.onmessage = null;
      this.onerror = null;
      this.onevent = null;
      this._options = options;
      this._fetch = options.fetch || root.fetch.bind(root);
      this._generation = 0;
      this._abort = null;
      this._timer = null;
      this._idle = null;
      this._failures = 0;
      // Start on the next task, so listeners added right after construction see "open".
      var self = this;
      setTimeout(function () {
        if (self.readyState !== CLOSED) self._connect();
      }, 0);
    }

    _emit(event) {
      var handler = this["on" + event.type];
      if (
        (event.type === "open" || event.type === "error" || event.type === "message") &&
        typeof handler === "function"
      ) {
        handler.call(this, event);
      }
      this.dispatchEvent(event);
    }

    _connect() {
      var self = this;
      var generation = ++this._generation;
      var controller = new AbortController();
      this._abort = controller;
      var options = this._options;
      this._armIdle(generation);
      // The token first (a function may fetch a fresh one), then the request.
      resolveToken(options.token).then(
        function (token) {
          if (generation !== self._generation) return;
          var headers = new Headers(options.headers || {});
          headers.set("Accept", "text/event-stream");
          if (self.lastEventId) headers.set("Last-Event-ID", self.lastEventId);
          else headers.delete("Last-Event-ID");
          withToken(headers, token);
          var init = {
            method: options.method || "GET",
            headers: headers,
            credentials: options.credentials || "same-origin",
            cache: "no-store",
            redirect: "follow",
            signal: controller.signal,
          };
          if (options.body != null) init.body = options.body;
          self._fetch(self.url, init).then(
            function (response) {
              if (generation !== self._generation) {
                if (response.body) response.body.cancel().catch(function () {});
                return;
              }
              self._opened(generation, response);
            },
            function (error) {
              if (generation !== self._generation) return;
              self._lost("network error: " + errorText(error));
            }
          );
        },
        function (error) {
          if (generation !== self._generation) return;
          self._lost("token: " + errorText(error));
        }
      );
    }

    _armIdle(generation) {
      var self = this;
      var timeout = Number(this._options.idleTimeout || 0);
      if (this._idle) clearTimeout(this._idle);
      this._idle = null;
      if (timeout > 0) {
        this._idle = setTimeout(function () {
          if (generation !== self._generation) return;
          self._generation++;
          if (self._abort) self._abort.abort();
          self._lost("no data for " + timeout + " ms");
        }, timeout);
      }
    }

    _opened(generation, response) {
      var self = this;
      if (!response.ok) {
        if (RETRYABLE_STATUS[response.status]) {
          if (response.body) response.body.cancel().catch(function () {});
          var after = parseFloat(response.headers.get("Retry-After") || "");
          this._lost(
            "HTTP " + response.status,
            isFinite(after) ? Math.max(after * 1000, this.retry) : null,
            response.status
          );
        } else {
          // Closed for good; the error says why, in the server's words when it gave some
          // (a hub's 401: "token has expired", "no token: ...").
          readError(response, 16384).then(function (answer) {
            if (generation !== self._generation) return;
            self._fail("HTTP " + response.status, response.status, answer.message, answer.body);
          });
        }
        return;
      }
      var contentType = (response.headers.get("Content-Type") || "").split(";")[0].trim();
      if (contentType.toLowerCase() !== "text/event-stream" || !response.body) {
        if (response.body) response.body.cancel().catch(function () {});
        this._fail("not an event stream (Content-Type: " + contentType + ")", response.status);
        return;
      }
      this.readyState = OPEN;
      this._failures = 0;
      this._emit(new Event("open"));
      if (generation !== this._generation) return; // closed by an open handler
      var origin = new URL(this.url).origin;
      var parser = new Parser({
        lastEventId: this.lastEventId,
        onLastEventId: function (id) {
          if (generation === self._generation) self.lastEventId = id;
        },
        onRetry: function (ms) {
          if (generation === self._generation) self.retry = ms;
        },
        onEvent: function (e) {
          if (generation !== self._generation) return;
          var event = new MessageEvent(e.type, {
            data: e.data,
            lastEventId: e.lastEventId,
            origin: origin,
          });
          setProps(event, { topics: e.topics });
          if (typeof self.onevent === "function") self.onevent(event);
          if (generation !== self._generation) return;
          self._emit(event);
        },
      });
      var reader = response.body.getReader();
      function stop() {
        reader.cancel().catch(function () {});
      }
      function pump() {
        return reader.read().then(function (result) {
          if (generation !== self._generation) return stop();
          if (result.done) {
            parser.end();
            self._lost("the server ended the stream");
            return;
          }
          self._armIdle(generation);
          parser.feed(result.value);
          if (generation !== self._generation) return stop();
          return pump();
        });
      }
      pump().catch(function (error) {
        if (generation !== self._generation) return;
        self._lost("connection lost: " + (error && error.message ? error.message : error));
      });
    }

    /** The connection is gone but the stream lives: reconnect after the retry delay. */
    _lost(reason, delay, status) {
      var self = this;
      if (this.readyState === CLOSED) return;
      this._generation++;
      if (this._idle) clearTimeout(this._idle);
      this._idle = null;
      if (delay == null) {
        // The server's retry delay; doubled after each attempt that did not even open.
        var cap = Math.max(this.retry, Number(this._options.maxRetry || 30000));
        delay = Math.min(this.retry * Math.pow(2, this._failures), cap);
      }
      this._failures += 1;
      this.readyState = CONNECTING;
      var event = setProps(new Event("error"), {
        reason: reason,
        status: status || 0,
        delay: delay,
        message: "",
        body: null,
      });
      this._emit(event);
      if (this.readyState !== CONNECTING) return; // closed by an error handler
      var generation = this._generation;
      this._timer = setTimeout(function () {
        self._timer = null;
        if (self.readyState !== CONNECTING || generation !== self._generation) return;
        self.reconnects += 1;
        self._connect();
      }, delay);
    }

    _fail(reason, status, message, body) {
      this._generation++;
      this.readyState = CLOSED;
      if (this._idle) clearTimeout(this._idle);
      this._idle = null;
      this._emit(
        setProps(new Event("error"), {
          reason: reason,
          status: status || 0,
          delay: null,
          message: message || "",
          body: body == null ? null : body,
        })
      );
    }

    /** Close for good (no reconnect). */
    close() {
      if (this.readyState === CLOSED) return;
      this.readyState = CLOSED;
      this._generation++;
      if (this._timer) clearTimeout(this._timer);
      if (this._idle) clearTimeout(this._idle);
      this._timer = this._idle = null;
      if (this._abort) this._abort.abort();
    }

    /**
     * Drop the current connection as a network failure would, and reconnect after `delay` ms
     * (default: the retry delay) with Last-Event-ID. For "reconnect now" buttons and for tests.
     */
    reconnect(delay) {
      if (this.readyState === CLOSED) return;
      this._generation++;
      if (this._timer) clearTimeout(this._timer);
      this._timer = null;
      if (this._abort) this._abort.abort();
      this._failures = 0;
      this._lost("reconnect() called", delay == null ? null : delay);
    }
  }
  EventStream.CONNECTING = EventStream.prototype.CONNECTING = CONNECTING;
  EventStream.OPEN = EventStream.prototype.OPEN = OPEN;
  EventStream.CLOSED = EventStream.prototype.CLOSED = CLOSED;

  // -- Hub and subscriptions ------------------------------------------------------------------

  /** What a subscription's handlers receive. */
  function HubEvent(type, data, id, topics) {
    this.type = type;
    this.data = data;
    this.id = id;
    this.lastEventId = id;
    this.topics = topics;
  }
  HubEvent.prototype.json = function () {
    return JSON.parse(this.data);
  };

  /**
   * `new Hub({url, headers, token, credentials, withCredentials, shared, workerUrl})`: url is
   * the hub's base URL (default: where ssehub.js was loaded from); headers go with every stream
   * and publish (they force the fetch transport); token (a string, or a function returning one
   * or a Promise of one, called before every connection, reconnection and publish) is sent as
   * `Authorization: Bearer`, or as the `authorization` query parameter by the EventSource
   * transport (see "Authorization" above); credentials ("same-origin") is fetch's, and
   * withCredentials: true is credentials "include" (cookies, e.g. `mercureAuthorization`, to a
   * cross-origin hub: EventSource's withCredentials); shared: true shares connections between
   * the tabs of this origin through a SharedWorker.
   */
  function Hub(options) {
    options = options || {};
    var base = options.url || (SCRIPT_URL ? new URL(".", SCRIPT_URL).href : baseURI());
    this.url = new URL(base, baseURI()).href.replace(/\/?$/, "/");
    this.headers = options.headers || null;
    this.token = options.token == null ? null : options.token;
    this.credentials = options.credentials || (options.withCredentials ? "include" : "same-origin");
    this.withCredentials = this.credentials === "include";
    this.shared = !!options.shared;
    this.workerUrl = options.workerUrl || SCRIPT_URL;
  }

  Hub.prototype.eventsUrl = function (topics, lastEventId) {
    var url = new URL("events", this.url);
    toTopics(topics).forEach(function (topic) {
      url.searchParams.append("topic", topic);
    });
    if (lastEventId) url.searchParams.set("last_event_id", String(lastEventId));
    return url.href;
  };

  /**
   * Subscribe to topics. Options: lastEventId (resume point), transport ("auto", "fetch",
   * "eventsource", "shared"), shared (overrides the hub's), token (overrides the hub's; null:
   * none), retry (ms before a reconnect until the hub sends `retry:`; 3000; the EventSource
   * transport, which cannot see `retry:`, waits this long before the reconnects it makes
   * itself, with a token function). Returns a Subscription; register
   * handlers in the same task (the connection starts on a microtask, once the handlers are
   * known, so the transport can be chosen).
   */
  Hub.prototype.subscribe = function (topics, options) {
    return new Subscription(this, toTopics(topics), options || {});
  };

  /**
   * POST /publish of one event: `{"topic", "data", "event"?, "retry"?, "private"?}` as JSON
   * (`data` that is not a string is JSON-encoded by the hub). Options: event, retry, private
   * (true: only subscribers whose token grants one of its topics receive it). The hub's token
   * goes as `Authorization: Bearer`. Resolves to the event id; rejects with the hub's error
   * message (error.status, error.body), e.g. a 401 "token has expired" or a 403.
   */
  Hub.prototype.publish = function (topics, data, options) {
    options = options || {};
    var list = toTopics(topics);
    var item = { topic: list.length === 1 ? list[0] : list };
    if (options.event && options.event !== "message") item.event = options.event;
    if (options.retry != null) item.retry = options.retry;
    if (options.private) item.private = true;
    item.data = data;
    return this._post(item).then(function (ids) {
      return ids[0];
    });
  };

  /** POST /publish of a batch `[{topic, data, event, retry, private}, ...]`, all or nothing. */
  Hub.prototype.publishMany = function (items) {
    return this._post(Array.prototype.slice.call(items));
  };

  Hub.prototype._post = function (body) {
    var self = this;
    return resolveToken(this.token)
      .then(function (token) {
        var headers = withToken(new Headers(self.headers || {}), token);
        headers.set("Content-Type", "application/json");
        return root.fetch(new URL("publish", self.url).href, {
          method: "POST",
          headers: headers,
          credentials: self.credentials,
          body: JSON.stringify(body),
        });
      })
      .then(function (response) {
        return response.text().then(function (text) {
          var parsed = null;
          try {
            parsed = JSON.parse(text);
          } catch (_) {
            /* not JSON */
          }
          if (!response.ok) {
            var error = new Error((parsed && parsed.error) || "HTTP " + response.status);
            error.status = response.status;
            error.body = parsed;
            throw error;
          }
          return parsed.ids;
        });
      });
  };

  function toTopics(topics) {
    var list = typeof topics === "string" ? [topics] : Array.prototype.slice.call(topics || []);
    if (!list.length) throw new TypeError("at least one topic is required");
    return list.map(String);
  }

  /** One subscription: handlers by topic, by event type, for everything, and for state. */
  function Subscription(hub, topics, options) {
    var self = this;
    this.hub = hub;
    this.topics = topics;
    this.options = options;
    this.state = "connecting"; // connecting | open | reconnecting | closed
    this.lastEventId = options.lastEventId ? String(options.lastEventId) : "";
    this.reconnects = 0;
    this.transport = null; // "fetch" | "eventsource" | "shared", once started
    this.info = {};
    this._byTopic = Object.create(null);
    this._byType = Object.create(null);
    this._any = [];
    this._state = [];
    this._impl = null;
    this._closed = false;
    Promise.resolve().then(function () {
      if (!self._closed) self._start();
    });
  }

  function pushHandler(table, key, fn) {
    (table[key] || (table[key] = [])).push(fn);
  }

  /** `on(topic, fn)`: events carrying that topic, any type. `on("*", fn)`: every event. */
  Subscription.prototype.on = function (topic, fn) {
    if (topic === "*") this._any.push(fn);
    else {
      if (this.topics.indexOf(topic) === -1) {
        throw new Error("not subscribed to topic " + JSON.stringify(topic));
      }
      pushHandler(this._byTopic, topic, fn);
    }
    // An "auto" subscription that chose EventSource needs the fetch transport from now on
    // (resuming from the last event it had); an explicit "eventsource" stays as asked.
    var wanted = this.options.transport || "auto";
    if (this.transport === "eventsource" && wanted === "auto") this._switch("fetch");
    return this;
  };

  /** `onEvent(type, fn)`: events of that type ("message", "reset", "end", ...). */
  Subscription.prototype.onEvent = function (type, fn) {
    pushHandler(this._byType, type, fn);
    if (this.transport === "eventsource" && this._impl) this._impl.listen(type);
    return this;
  };

  /** `onState(fn)`: fn(state, info) on every change; called at once with the current state. */
  Subscription.prototype.onState = function (fn) {
    this._state.push(fn);
    fn(this.state, this.info);
    return this;
  };

  Subscription.prototype.close = function () {
    if (this._closed) return;
    this._closed = true;
    if (this._impl) this._impl.close();
    this._impl = null;
    this._setState("closed", { reason: "closed by the page" });
  };

  /** Drop the connection and reconnect with Last-Event-ID (see EventStream.reconnect). */
  Subscription.prototype.reconnect = function (delay) {
    if (this._impl && this._impl.reconnect) this._impl.reconnect(delay);
  };

  Subscription.prototype._wantsTopics = function () {
    return this._any.length > 0 || Object.keys(this._byTopic).length > 0;
  };

  /** The token option in effect: the subscription's, else the hub's (null: none). */
  Subscription.prototype._token = function () {
    var token = this.options.token !== undefined ? this.options.token : this.hub.token;
    return token == null ? null : token;
  };

  Subscription.prototype._choose = function () {
    var wanted = this.options.transport || "auto";
    var shared = this.options.shared != null ? this.options.shared : this.hub.shared;
    var token = this._token();
    if (wanted === "shared" || (wanted === "auto" && shared)) {
      // The worker cannot call a token function of this page: a connection of its own.
      if (typeof token === "function") return "fetch";
      return typeof SharedWorker === "function" && this.hub.workerUrl ? "shared" : "fetch";
    }
    if (wanted !== "auto") return wanted;
    // A token, like headers, goes in a header (fetch) rather than in the URL.
    if (this.topics.length === 1 && !this.hub.headers && token === null && !this._wantsTopics()) {
      return typeof EventSource === "function" ? "eventsource" : "fetch";
    }
    return "fetch";
  };

  Subscription.prototype._start = function () {
    this.transport = this._choose();
    if (this.transport === "shared") this._impl = new SharedTransport(this);
    else if (this.transport === "eventsource") this._impl = new NativeTransport(this);
    else this._impl = new FetchTransport(this);
  };

  Subscription.prototype._switch = function (transport) {
    if (this._closed || !this._impl) return;
    this._impl.close();
    this.options = Object.assign({}, this.options, { transport: transport });
    this._start();
  };

  Subscription.prototype._setState = function (state, info) {
    this.state = state;
    this.info = Object.assign(
      { transport: this.transport, reconnects: this.reconnects, lastEventId: this.lastEventId },
      info || {}
    );
    for (var i = 0; i < this._state.length; i++) this._state[i](state, this.info);
  };

  Subscription.prototype._deliver = function (type, data, id, topics) {
    if (this._closed) return;
    this.lastEventId = id;
    var event = new HubEvent(type, data, id, topics);
    var called = [];
    var i;
    var j;
    for (i = 0; i < this._any.length; i++) this._any[i](event);
    for (i = 0; i < topics.length; i++) {
      var handlers = this._byTopic[topics[i]] || [];
      for (j = 0; j < handlers.length; j++) {
        if (called.indexOf(handlers[j]) === -1) {
          called.push(handlers[j]); // once per event, even if it carries several topics
          handlers[j](event);
        }
      }
    }
    var typed = this._byType[type] || [];
    for (i = 0; i < typed.length; i++) typed[i](event);
  };

  Subscription.prototype._stateFromStream = function (stream, event) {
    this.reconnects = stream.reconnects;
    this.lastEventId = stream.lastEventId;
    if (event.type === "open") this._setState("open");
    else if (stream.readyState === CLOSED) {
      this._closed = true;
      this._setState("closed", {
        reason: event.reason,
        status: event.status,
        message: event.message || "",
      });
    } else {
      this._setState("reconnecting", { reason: event.reason, delay: event.delay });
    }
  };

  function FetchTransport(sub) {
    var hub = sub.hub;
    var stream = new EventStream(hub.eventsUrl(sub.topics), {
      headers: hub.headers || undefined,
      token: sub._token(),
      credentials: hub.credentials,
      lastEventId: sub.lastEventId,
      retry: sub.options.retry,
    });
    stream.onevent = function (e) {
      sub._deliver(e.type, e.data, e.lastEventId, e.topics);
    };
    stream.addEventListener("open", function (e) {
      sub._stateFromStream(stream, e);
    });
    stream.addEventListener("error", function (e) {
      sub._stateFromStream(stream, e);
    });
    this.stream = stream;
  }
  FetchTransport.prototype.close = function () {
    this.stream.close();
  };
  FetchTransport.prototype.reconnect = function (delay) {
    this.stream.reconnect(delay);
  };

  /**
   * The browser's own EventSource: GET, one topic, event types known in advance. A token goes
   * in the `authorization` query parameter. The browser reconnects by itself (with the same
   * URL, so the same token), except with a token function: then each reconnect is a new
   * EventSource, opened after the delay with a fresh token and `last_event_id`.
   */
  function NativeTransport(sub) {
    var self = this;
    var token = sub._token();
    this.sub = sub;
    this.types = Object.create(null);
    this.source = null;
    this.managed = typeof token === "function"; // reconnects itself, to call the function
    this.retry = sub.options.retry == null ? 3000 : Number(sub.options.retry);
    this.failures = 0;
    this.generation = 0;
    this.timer = null;
    ["message", "reset"].concat(Object.keys(sub._byType)).forEach(function (type) {
      self.types[type] = true;
    });
    if (this.managed) this._connect();
    else this._open(token || "");
  }
  NativeTransport.prototype._connect = function () {
    var self = this;
    var generation = ++this.generation;
    resolveToken(this.sub._token()).then(
      function (token) {
        if (generation === self.generation) self._open(token);
      },
      function (error) {
        if (generation === self.generation) self._lost("token: " + errorText(error));
      }
    );
  };
  NativeTransport.prototype._open = function (token) {
    var self = this;
    var sub = this.sub;
    var url = new URL(sub.hub.eventsUrl(sub.topics, sub.lastEventId));
    if (token) url.searchParams.set("authorization", token);
    var source = (this.source = new EventSource(url.href, {
      withCredentials: sub.hub.credentials === "include",
    }));
    source.onopen = function () {
      self.failures = 0;
      sub._setState("open");
    };
    source.onerror = function () {
      if (source !== self.source) return;
      if (source.readyState === CLOSED) {
        // Refused (any HTTP error, e.g. 401) or not an event stream: EventSource gives up.
        self.source = null;
        sub._closed = true;
        sub._setState("closed", { reason: "EventSource failed" });
      } else if (self.managed) {
        self._lost("connection lost");
      } else {
        sub.reconnects += 1;
        sub._setState("reconnecting", { reason: "connection lost" });
      }
    };
    Object.keys(this.types).forEach(function (type) {
      self._listen(source, type);
    });
  };
  /** With a token function: close this EventSource and open another after the delay. */
  NativeTransport.prototype._lost = function (reason) {
    var self = this;
    if (this.source) this.source.close();
    this.source = null;
    var delay = Math.min(this.retry * Math.pow(2, this.failures), Math.max(this.retry, 30000));
    this.failures += 1;
    var generation = ++this.generation;
    this.sub.reconnects += 1;
    this.sub._setState("reconnecting", { reason: reason, delay: delay });
    this.timer = setTimeout(function () {
      self.timer = null;
      if (generation === self.generation) self._connect();
    }, delay);
  };
  NativeTransport.prototype._listen = function (source, type) {
    var sub = this.sub;
    source.addEventListener(type, function (e) {
      sub._deliver(e.type, e.data, e.lastEventId, e.type === "reset" ? [] : sub.topics.slice());
    });
  };
  NativeTransport.prototype.listen = function (type) {
    if (this.types[type]) return;
    this.types[type] = true;
    if (this.source) this._listen(this.source, type);
  };
  NativeTransport.prototype.close = function () {
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  };

  // -- sharing one connection between tabs (SharedWorker) -------------------------------------

  var tab = null; // this page's link to the worker: {port, subs}

  function tabLink(workerUrl) {
    if (tab) return tab;
    var worker = new SharedWorker(workerUrl, { name: "ssehub" });
    var port = worker.port;
    tab = { port: port, subs: Object.create(null) };
    // A worker that cannot run (script blocked, crashed): every tab falls back to its own
    // connection, resuming from the last event it had.
    worker.addEventListener("error", function () {
      var subs = tab.subs;
      tab.subs = Object.create(null);
      tab.broken = true;
      Object.keys(subs).forEach(function (sid) {
        subs[sid]._switch("fetch");
      });
    });
    port.onmessage = function (message) {
      var msg = message.data || {};
      var sub = tab.subs[msg.sid];
      if (!sub) return;
      if (msg.op === "event") sub._deliver(msg.type, msg.data, msg.lastEventId, msg.topics);
      else if (msg.op === "state") {
        sub.reconnects = msg.info.reconnects || 0;
        if (msg.info.lastEventId) sub.lastEventId = msg.info.lastEventId;
        if (msg.state === "closed") sub._closed = true;
        sub._setState(msg.state, msg.info);
      }
    };
    port.start();
    // Tell the worker when this tab is gone: a Web Lock held for the page's life is released
    // when it closes or crashes (the worker waits for it), and pagehide covers the rest.
    var lock = "ssehub-tab-" + randomId();
    if (root.navigator && root.navigator.locks) {
      root.navigator.locks.request(lock, function () {
        port.postMessage({ op: "hello", lock: lock });
        return new Promise(function () {});
      });
    }
    root.addEventListener("pagehide", function (event) {
      if (!event.persisted) port.postMessage({ op: "bye" });
    });
    return tab;
  }

  function SharedTransport(sub) {
    var link;
    try {
      link = tabLink(sub.hub.workerUrl);
      if (link.broken) throw new Error("the SharedWorker failed");
    } catch (error) {
      // No SharedWorker after all: use this tab's own connection.
      sub.transport = "fetch";
      this.fallback = new FetchTransport(sub);
      return;
    }
    this.sid = randomId();
    this.link = link;
    link.subs[this.sid] = sub;
    link.port.postMessage({
      op: "subscribe",
      sid: this.sid,
      url: sub.hub.eventsUrl(sub.topics.slice().sort()),
      headers: sub.hub.headers,
      token: sub._token() || "", // a string: _choose sends a token function to "fetch"
      credentials: sub.hub.credentials,
      lastEventId: sub.lastEventId,
    });
  }
  SharedTransport.prototype.close = function () {
    if (this.fallback) return this.fallback.close();
    delete this.link.subs[this.sid];
    this.link.port.postMessage({ op: "unsubscribe", sid: this.sid });
  };
  SharedTransport.prototype.reconnect = function (delay) {
    if (this.fallback) return this.fallback.reconnect(delay);
    this.link.port.postMessage({ op: "reconnect", sid: this.sid, delay: delay });
  };

  /** Inside the SharedWorker: one EventStream per (url, headers, resume point), fanned out. */
  function serveTabs(scope) {
    var groups = new Map(); // key -> {stream, members: Set<member>, state, info}
    var members = new Map(); // port -> Map<sid, member>

    function send(member, message) {
      message.sid = member.sid;
      try {
        member.port.postMessage(message);
      } catch (_) {
        /* a port of a dead tab */
      }
    }

    function broadcastState(group) {
      group.info.tabs = group.members.size;
      group.info.shared = true;
      group.info.transport = "shared";
      group.members.forEach(function (member) {
        send(member, { op: "state", state: group.state, info: group.info });
      });
    }

    function openGroup(key, msg) {
      var stream = new EventStream(msg.url, {
        headers: msg.headers || undefined,
        token: typeof msg.token === "string" ? msg.token : null,
        credentials: msg.credentials,
        lastEventId: msg.lastEventId,
      });
      var group = { key: key, stream: stream, members: new Set(), state: "connecting", info: {} };
      function update(event) {
        group.info = { reconnects: stream.reconnects, lastEventId: stream.lastEventId };
        if (event.type === "open") group.state = "open";
        else if (stream.readyState === CLOSED) {
          // Failed for good (e.g. HTTP 4xx): tell the members, and let later tabs start afresh.
          group.state = "closed";
          group.info.reason = event.reason;
          group.info.status = event.status;
          group.info.message = event.message;
          if (groups.get(group.key) === group) groups.delete(group.key);
        } else {
          group.state = "reconnecting";
          group.info.reason = event.reason;
          group.info.delay = event.delay;
        }
        broadcastState(group);
      }
      stream.addEventListener("open", update);
      stream.addEventListener("error", update);
      stream.onevent = function (e) {
        group.members.forEach(function (member) {
          send(member, {
            op: "event",
            type: e.type,
            data: e.data,
            lastEventId: e.lastEventId,
            topics: e.topics,
          });
        });
      };
      groups.set(key, group);
      return group;
    }

    function leave(port, sid) {
      var mine = members.get(port);
      var member = mine && mine.get(sid);
      if (!member) return;
      mine.delete(sid);
      var group = member.group;
      group.members.delete(member);
      if (group.members.size === 0) {
        group.stream.close();
        if (groups.get(group.key) === group) groups.delete(group.key);
      } else {
        broadcastState(group);
      }
    }

    function dropPort(port) {
      var mine = members.get(port);
      if (!mine) return;
      Array.from(mine.keys()).forEach(function (sid) {
        leave(port, sid);
      });
      members.delete(port);
    }

    function handle(port, msg) {
      if (!msg || typeof msg !== "object") return;
      if (msg.op === "subscribe") {
        // Fresh subscriptions to the same topics share (only with the same headers and token:
        // private events follow the token); a resume point makes its own stream.
        var key = JSON.stringify([msg.url, msg.headers || null, msg.token || "",
          msg.credentials || "", msg.lastEventId ? "resume:" + msg.sid : ""]);
        var group = groups.get(key) || openGroup(key, msg);
        var member = { port: port, sid: msg.sid, group: group };
        if (!members.has(port)) members.set(port, new Map());
        members.get(port).set(msg.sid, member);
        group.members.add(member);
        broadcastState(group);
      } else if (msg.op === "unsubscribe") {
        leave(port, msg.sid);
      } else if (msg.op === "reconnect") {
        var mine = members.get(port);
        var target = mine && mine.get(msg.sid);
        if (target) target.group.stream.reconnect(msg.delay);
      } else if (msg.op === "hello" && scope.navigator && scope.navigator.locks) {
        scope.navigator.locks.request(msg.lock, function () {
          dropPort(port);
        });
      } else if (msg.op === "bye") {
        dropPort(port);
      }
    }

    scope.addEventListener("connect", function (event) {
      var port = event.ports[0];
      port.onmessage = function (message) {
        handle(port, message.data);
      };
      port.addEventListener("close", function () {
        dropPort(port);
      });
      port.start();
    });

    // For diagnostics: how many hub connections this worker holds.
    scope.ssehubGroups = groups;
  }

  return {
    version: VERSION,
    Hub: Hub,
    Subscription: Subscription,
    EventStream: EventStream,
    Parser: Parser,
    parse: parse,
    HubEvent: HubEvent,
    CONNECTING: CONNECTING,
    OPEN: OPEN,
    CLOSED: CLOSED,
    _serveTabs: serveTabs,
  };
});
