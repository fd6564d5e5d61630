"""Server-Sent Events in any WSGI app (Flask, Django), and the hub from synchronous code.

```python
from ssehub.wsgi import HEADERS, event_stream

@app.get("/clock")                                   # Flask
def clock():
    return Response(event_stream(ticks()), headers=HEADERS)

def clock(request):                                  # Django
    return StreamingHttpResponse(event_stream(ticks()), headers=HEADERS)
```

A WSGI server learns that a client went away only when a write fails, and a source may block
for a long time between events; so `event_stream` iterates its source in a thread of its own,
feeding a queue that the server's thread reads with a timeout: when nothing arrives for
`heartbeat` seconds the server's thread writes a heartbeat comment, which both keeps proxies
from timing the stream out and discovers a departed client. The server then calls the body's
`close()`, which stops the feeder: a generator source is closed (its `finally` runs) as soon as
it yields again, and hub subscriptions it opened with `subscribe_sync` are closed at once, so a
generator waiting for hub events ends straight away.

For the hub: `HubThread(hub).start()` runs a hub's event loop in a background thread;
`subscribe_sync(hub, topics)` and `publish_sync(hub, topic, data)` then work from any thread,
e.g. a Flask view; both also take a hub server's URL, to talk to `ssehub serve` over HTTP
(subscribing with `ssehub.client.EventSource`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Final, Protocol, overload

import httpx

from ssehub._items import encode_item
from ssehub.api import SSE_HEADERS
from ssehub.client import EventSource
from ssehub.hub import Hub, SlowSubscriberError
from ssehub.model import topic_tuple
from ssehub.wire import Event, comment

__all__ = [
    "HEADERS",
    "EventStream",
    "HubThread",
    "SyncSubscription",
    "event_stream",
    "publish_sync",
    "subscribe_sync",
]

#: The response headers of an event stream. The server frames the response (WSGI forbids
#: hop-by-hop headers such as `Connection`).
HEADERS: Final[dict[str, str]] = dict(SSE_HEADERS)

_HEARTBEAT: Final = comment("heartbeat")
# How many encoded items the feeder may be ahead of the client before it waits.
_FEEDER_AHEAD: Final = 64


class _End:
    """Queued after the last item; carries the source's exception, if it raised one."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


# The EventStream whose feeder runs on this thread, so subscribe_sync can register with it.
_feeding = threading.local()


class EventStream:
    """A WSGI response body streaming `source` as Server-Sent Events; see `event_stream`."""

    def __init__(
        self,
        source: Iterable[object],
        *,
        heartbeat: float | None = 15.0,
        retry: int | None = None,
    ) -> None:
        if retry is not None and (type(retry) is not int or retry < 0):
            raise ValueError("retry must be a whole, non-negative number of milliseconds")
        self.source = source
        self.heartbeat = heartbeat or None
        self.retry = retry
        self._queue: queue.SimpleQueue[bytes | _End] = queue.SimpleQueue()
        self._room = threading.Semaphore(_FEEDER_AHEAD)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._subscriptions: list[_Closable] = []
        self._feeder: threading.Thread | None = None
        self._end: _End | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._end is not None:
            if self._end.error is not None:
                raise self._end.error
            raise StopIteration
        if self._feeder is None:
            # Started on first use: a body that is never iterated costs no thread.
            self._feeder = threading.Thread(target=self._feed, daemon=True, name="ssehub-feeder")
            self._feeder.start()
            if self.retry is not None:
                return b"retry: %d\n\n" % self.retry
        try:
            item = self._queue.get(timeout=self.heartbeat)
        except queue.Empty:
            return _HEARTBEAT
        chunks: list[bytes] = []
        # Everything already waiting goes out in one write.
        while not isinstance(item, _End):
            chunks.append(item)
            self._room.release()
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return b"".join(chunks)
        self._end = item
        self.close()
        return b"".join(chunks) if chunks else self.__next__()

    def close(self) -> None:
        """Stop the stream (the server calls this when the response ends, or the client left)."""
        with self._lock:
            self._stopped.set()
            subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            subscription.close()
        self._room.release()  # a feeder waiting for room wakes up and sees the stop

    def _adopt(self, subscription: _Closable) -> None:
        with self._lock:
            if not self._stopped.is_set():
                self._subscriptions.append(subscription)
                return
        subscription.close()

    def _feed(self) -> None:
        _feeding.stream = self
        iterator: Iterator[object] | None = None
        end = _End()
        try:
            iterator = iter(self.source)
            for item in iterator:
                if self._stopped.is_set():
                    break
                self._queue.put(encode_item(item))
                self._room.acquire()
                if self._stopped.is_set():
                    break
        except BaseException as error:
            end = _End(error)
        finally:
            _feeding.stream = None
            close: Callable[[], object] | None = getattr(iterator, "close", None)
            try:
                if close is not None:
                    close()
            except BaseException as error:
                end = _End(end.error or error)
            self._queue.put(end)


def event_stream(
    source: Iterable[object], *, heartbeat: float | None = 15.0, retry: int | None = None
) -> EventStream:
    """A WSGI body streaming `source` as Server-Sent Events, for Flask or Django.

    `source` yields `Event`s, strings (data), bytes (already encoded) or JSON values (dicts,
    lists, pydantic models), and may block between items. A heartbeat comment is written after
    `heartbeat` seconds without an event; `retry` (ms), if given, is sent first. Send it with
    `HEADERS` (Content-Type, Cache-Control: no-cache, X-Accel-Buffering: no).
    """
    return EventStream(source, heartbeat=heartbeat, retry=retry)


# -- the hub from sync code ---------------------------------------------------------------------

_hub_loops: weakref.WeakKeyDictionary[Hub, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()


class HubThread:
    """Runs a hub's event loop in a daemon thread, for sync apps (Flask, Django, scripts).

    `HubThread(hub).start()`; then `subscribe_sync(hub, ...)` and `publish_sync(hub, ...)` find
    the loop by themselves. `stop()` closes the hub and ends the thread.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="ssehub")

    def start(self) -> HubThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.hub.start(), self.loop).result()
        _hub_loops[self.hub] = self.loop
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        _hub_loops.pop(self.hub, None)
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

    async def _close(self) -> None:
        await self.hub.close()
        # Subscriptions still forwarding end now rather than being destroyed with the loop.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def __enter__(self) -> HubThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _loop_of(hub: Hub, loop: asyncio.AbstractEventLoop | None) -> asyncio.AbstractEventLoop:
    loop = loop or _hub_loops.get(hub)
    if loop is None:
        raise RuntimeError(
            "this hub's event loop is unknown: run it with ssehub.wsgi.HubThread(hub).start(), "
            "or pass loop= (the loop it runs on, in another thread)"
        )
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise RuntimeError("called on the hub's own event loop, which it would block: use await")
    return loop


class _Closable(Protocol):
    def close(self) -> None: ...


def _adopt_in_feeder(subscription: _Closable) -> None:
    """Opened by an event_stream's source: closed when that stream is (even mid-wait)."""
    feeding: EventStream | None = getattr(_feeding, "stream", None)
    if feeding is not None:
        feeding._adopt(subscription)


class SyncSubscription:
    """A hub subscription for sync code: `for event in sub: ...`; `close()` from any thread.

    Events are forwarded from the hub's loop into a thread-safe queue. A subscriber that falls
    more than `hub.max_pending` events behind gets `SlowSubscriberError`, as with
    `hub.subscribe`.
    """

    def __init__(
        self,
        hub: Hub,
        topics: str | Iterable[str],
        last_event_id: str | None = None,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.hub = hub
        #: The id of the last event handed out: where to resume.
        self.last_event_id = last_event_id
        # Validates the topics here, in the caller's thread: ValueError before anything starts.
        self._subscription = hub.subscribe(topics, last_event_id)
        self.topics = self._subscription.topics
        self._queue: queue.SimpleQueue[Event | _End] = queue.SimpleQueue()
        self._subscribed = threading.Event()
        self._ended = False
        loop = _loop_of(hub, loop)
        self._task: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            self._forward(), loop
        )
        self._task.add_done_callback(lambda _: self._subscribed.set())
        if not self._subscribed.wait(timeout):
            self._task.cancel()
            raise TimeoutError(f"the hub's loop did not subscribe within {timeout} s: running?")
        if self._task.done() and not self._task.cancelled():
            self._task.result()  # it failed to subscribe: raise why, here
        _adopt_in_feeder(self)

    async def _forward(self) -> None:
        # Cancelled by close(), which queues the end itself.
        try:
            async with self._subscription as subscription:
                self._subscribed.set()
                async for event in subscription:
                    if self._queue.qsize() >= self.hub.max_pending:
                        self.hub.stats.slow_dropped += 1
                        raise SlowSubscriberError(
                            f"subscriber fell {self._queue.qsize()} events behind; "
                            "resume from its last id"
                        )
                    self._queue.put(event)
        except Exception as error:
            if not self._subscribed.is_set():
                raise  # to the caller of subscribe_sync, still waiting
            self._queue.put(_End(error))
        else:
            self._queue.put(_End())

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds without one or once closed."""
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _End):
            self._ended = True
            if item.error is not None:
                raise item.error
            return None
        self.last_event_id = item.id
        return item

    def __iter__(self) -> Iterator[Event]:
        while (event := self.get()) is not None:
            yield event

    def close(self) -> None:
        """Unsubscribe; safe from any thread. Iteration ends (after queued events)."""
        self._task.cancel()
        self._queue.put(_End())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@overload
def subscribe_sync(
    hub: Hub,
    topics: str | Iterable[str],
    last_event_id: str | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> SyncSubscription: ...


@overload
def subscribe_sync(
    hub: str,
    topics: str | Iterable[str],
    last_event_id: str | None = None,
    *,
    loop: None = None,
) -> EventSource: ...


def subscribe_sync(
    hub: Hub | str,
    topics: str | Iterable[str],
    last_event_id: str | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
) -> SyncSubscription | EventSource:
    """Subscribe from sync code (a Flask view) to a hub in this process, or to a hub server.

    `with subscribe_sync(hub, ["orders"]) as sub: for event in sub: ...` — with replay from
    `last_event_id`, and a `reset` event when it cannot be honoured, as with `hub.subscribe`.

    `hub` is a Hub running on another thread's loop (see `HubThread`; or pass `loop`): this
    returns once subscribed, so whatever is published after that is received. Or `hub` is the
    base URL of `ssehub serve` (`http://127.0.0.1:8000`): this returns an `ssehub.client.
    EventSource` on its `/events`, which reconnects and resumes by itself. Either way, opened
    inside an `event_stream` source, the subscription is closed when the stream is.
    """
    if isinstance(hub, Hub):
        return SyncSubscription(hub, topics, last_event_id, loop=loop)
    source = EventSource(
        f"{hub.rstrip('/')}/events",
        params={"topic": list(topic_tuple(topics))},
        last_event_id=last_event_id or "",
    )
    _adopt_in_feeder(source)
    return source


def publish_sync(
    hub: Hub | str,
    topics: str | Iterable[str],
    data: str,
    event: str = "message",
    retry: int | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    timeout: float | None = 10.0,
) -> str:
    """Publish from sync code; returns the event's id. Raises ValueError for invalid input.

    `hub` is a Hub running on another thread's loop (see `HubThread`) or the base URL of a hub
    server (`http://127.0.0.1:8000`), published to with `POST /publish`.
    """
    if isinstance(hub, str):
        names = [topics] if isinstance(topics, str) else list(topics)
        fields: dict[str, object] = {"topic": names, "data": data, "event": event}
        if retry is not None:
            fields["retry"] = retry
        reply = httpx.post(f"{hub.rstrip('/')}/publish", json=fields, timeout=timeout)
        if reply.status_code == 400:
            raise ValueError(reply.json().get("error", reply.text))
        reply.raise_for_status()
        [event_id] = reply.json()["ids"]
        return str(event_id)
    publishing = hub.publish(topics, data, event, retry)
    try:
        future = asyncio.run_coroutine_threadsafe(publishing, _loop_of(hub, loop))
    except BaseException:
        publishing.close()
        raise
    return future.result(timeout)
