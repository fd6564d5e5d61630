"""The clock of fastapi_clock.py in Flask (WSGI): ticks over Server-Sent Events, then `end`.

A WSGI app can stream too: `ssehub.wsgi.event_stream` runs the (blocking) generator in a thread
of its own and writes heartbeats while it sleeps, which is also how the server finds out that a
client has gone; the generator is then closed, so its `finally` runs.

Run:  .venv/bin/python examples/flask_clock.py             # werkzeug on http://127.0.0.1:8004/
Try:  curl -N 'http://127.0.0.1:8004/clock?count=5'
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from _cli import arguments
from flask import Flask, Response, request

from ssehub import Event
from ssehub.wsgi import HEADERS, event_stream

app = Flask(__name__)

PAGE = """<!doctype html>
<meta charset="utf-8"><title>SSE clock (Flask)</title>
<h1>SSE clock (Flask)</h1><div id="app"></div>
<script>
  const source = new EventSource("/clock");
  const show = (event) => { document.getElementById("app").innerHTML += event.data + "<br>"; };
  source.onmessage = show;
  source.addEventListener("end", (event) => { show(event); source.close(); });
</script>
"""


@app.get("/")
def page() -> str:
    return PAGE


@app.get("/clock")
def clock() -> Response:
    count = min(max(request.args.get("count", 10, type=int), 0), 1000)
    interval = min(max(request.args.get("interval", 1.0, type=float), 0.0), 60.0)
    # A browser that reconnects continues the count after the last tick it saw.
    resume = request.headers.get("Last-Event-ID", "")
    start = int(resume) + 1 if resume.isdigit() else 0

    def ticks() -> Iterator[Event]:
        for n in range(start, count):
            if n > start:
                time.sleep(interval)
            yield Event(data=f"{datetime.now():%Y-%m-%d %H:%M:%S} tick {n}", id=str(n))
        yield Event(data="bye", event="end")

    return Response(event_stream(ticks(), heartbeat=15.0), headers=HEADERS)


if __name__ == "__main__":
    args = arguments(__doc__, 8004).parse_args()
    app.run(host=args.host, port=args.port, threaded=True)
