"""Server-Sent Events in any ASGI app (FastAPI, Starlette, bare ASGI), and the hub over ASGI.

- `EventSourceResponse(content)` streams an async or sync iterable of `Event`s, strings or JSON
  values from an app's own route.
- `hub_app(hub)` is the hub's HTTP API (`ssehub.api`) as an ASGI app, to mount anywhere.
- `hub_stream(hub, request, topics)` streams hub topics from an app's own route, so the app
  authenticates and picks the topics.

Every response shares one engine (`Pump`): what is to be sent waits in an `Outbox`, and each
wake-up sends everything pending as ONE `http.response.body` message. The hub writes an event's
bytes (encoded once for all subscribers) straight into each stream's outbox — a list append — so
fan-out costs no task, queue or encoding per subscriber. A stream ends, running the source's
`finally`, when:

- its source ends (the final empty body is sent);
- the client goes away (`http.disconnect`, listened for concurrently);
- a send, heartbeat included, cannot complete within `send_timeout` (a frozen client);
- more than `max_pending_bytes` wait for a hub stream's client (a slow client; it resumes from
  its Last-Event-ID, and `hub.stats.slow_dropped` counts it);
- the server shuts down (see below).

Shutdown. On SIGTERM/SIGINT servers stop accepting and then wait for open responses: uvicorn
until every connection has closed (forever, unless --timeout-graceful-shutdown), granian until
the clients leave (unless --workers-kill-timeout), hypercorn for its graceful_timeout (3 s), and
none tells a streaming response to end (uvicorn sends `lifespan.shutdown` only after the
connections are gone, so the lifespan cannot help). What all of them do have is a Python signal
handler in the process that serves: uvicorn's `signal.signal` handler, or hypercorn's (`-w 0`)
and granian's workers' `loop.add_signal_handler`, whose Python-level handler asyncio and uvloop
set to a no-op (the loop learns of the signal through its wake-up fd). So when a stream opens on
the main thread, ssehub wraps whatever handler is installed in one that ends every stream and
then calls it: the server's code and behaviour are untouched, no server class is patched, and a
signal nobody handles in Python (SIG_DFL, SIG_IGN) is left alone. Streams end with a proper
final chunk; clients reconnect (to another instance) and resume from their Last-Event-ID.

Not covered: hypercorn's worker processes (its default `-w 1`) get no signal, only a flag their
parent sets, so there streams end at its graceful_timeout, by cancellation (the `finally` of the
source still runs, the hub subscription is still removed). Where no signal arrives at all (a
server stopped from code, or run off the main thread) call `end_streams()`.
"""

from ssehub.asgi._app import HubApp, hub_app
from ssehub.asgi._responses import EventSourceResponse, HubStreamResponse, hub_stream
from ssehub.asgi._scope import last_event_id
from ssehub.asgi._shutdown import end_streams

__all__ = [
    "EventSourceResponse",
    "HubApp",
    "HubStreamResponse",
    "end_streams",
    "hub_app",
    "hub_stream",
    "last_event_id",
]
