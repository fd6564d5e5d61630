"""Codec benchmark: ssehub.wire against httpx-sse, sseclient-py and FastAPI, side by side.

Run:  .venv/bin/python benchmarks/bench_wire.py        (about 20 s; prints markdown tables)
      SSEHUB_PURE_PYTHON=1 .venv/bin/python benchmarks/bench_wire.py   (the pure-Python codec)

Decoding, from response-body bytes to event objects, the same streams through each library:

* ssehub: ``Decoder().feed(chunk)`` per chunk.
* httpx-sse 0.4: the pipeline ``EventSource.iter_sse`` runs over a response, minus the socket:
  ``httpx._decoders.TextDecoder`` (what ``Response.iter_text`` uses: an incremental UTF-8
  decoder with errors="replace"; empty texts are skipped as its ``TextChunker`` does), then
  ``httpx_sse._decoders.SSELineDecoder`` (the line splitter of ``_iter_sse_lines``), then
  ``line.rstrip("\\n")`` and ``httpx_sse._decoders.SSEDecoder.decode`` per line, as in
  ``iter_sse``.
* sseclient-py 1.9: ``sseclient.SSEClient(iter(chunks)).events()``, its documented use over an
  iterator of byte chunks.

Streams: (a) ~100-byte JSON events, each with an id and an event type (the line order
sse-starlette writes: id, event, data), 64 KiB chunks; (b) ~100 KB events of 1000 CSV-like
lines each (mostly ASCII, one non-ASCII character per line), with an id and a type, 64 KiB
chunks; (c) a part of (a) fed one byte at a time. Every run checks that the three libraries
produced the same events (type, data and id), so none is fast by skipping work.

Encoding compares ``ssehub.encode`` with ``fastapi.sse.format_sse_event`` (the function
FastAPI's EventSourceResponse routing uses for every event), on the same events, both called
once per event; both outputs are decoded back and compared.

Times are CPU times of this process (``time.process_time``), best of several rounds, the
contenders interleaved within each round: the machine may be shared. Ratios are ssehub against
the faster of its peers on that row.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any

import sseclient
from fastapi.sse import format_sse_event
from httpx._decoders import TextDecoder
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from ssehub import wire
from ssehub.wire import Decoder, Event, encode

CHUNK = 64 * 1024
Triple = tuple[str, str, str]  # (type, data, id) of one decoded event


# ------------------------------------------------------------------------------------ streams
def small_events(n: int) -> list[Event]:
    """JSON events of about 100 bytes on the wire, each with an id and an event type."""
    kinds = ("order.created", "order.updated", "price", "chat.message")
    events = []
    for i in range(n):
        payload = {"seq": i, "user": f"u{i % 977}", "price": round(i * 1.37 % 1000, 2), "ok": True}
        events.append(Event(json.dumps(payload), event=kinds[i % 4], id=str(1_000_000 + i)))
    return events


def wire_small(events: Sequence[Event]) -> bytes:
    # The order sse-starlette writes (id, event, data), LF line ends.
    return "".join(f"id: {e.id}\nevent: {e.event}\ndata: {e.data}\n\n" for e in events).encode()


def wire_large(n: int, lines: int = 1000) -> bytes:
    """Events of ~100 KB made of 1000 CSV-like lines, with an id and an event type."""
    out = []
    for i in range(n):
        body = "".join(
            f"data: {i:06d},{j:04d},Zoë Martín,{'x' * 56},{j * 7919 % 100000:05d}\n"
            for j in range(lines)
        )
        out.append(f"id: {i}\nevent: batch\n{body}\n")
    return "".join(out).encode()


def chunked(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)]


# ----------------------------------------------------------------------------------- decoders
# Each runs one library from bytes to that library's own event objects (what is timed); the
# conversion to comparable (type, data, id) triples happens after timing.


def decode_ssehub(chunks: Iterable[bytes]) -> list[Event]:
    feed = Decoder().feed
    events: list[Event] = []
    for chunk in chunks:
        events += feed(chunk)
    return events


def decode_httpx_sse(chunks: Iterable[bytes]) -> list[Any]:
    text_decoder = TextDecoder()  # what httpx.Response.iter_text() uses
    line_decoder = SSELineDecoder()  # httpx_sse._api._iter_sse_lines
    decoder = SSEDecoder()  # httpx_sse EventSource.iter_sse

    def lines() -> Iterator[str]:
        for chunk in chunks:
            text = text_decoder.decode(chunk)
            if text:
                yield from line_decoder.decode(text)
        text = text_decoder.flush()
        if text:
            yield from line_decoder.decode(text)
        yield from line_decoder.flush()

    events: list[Any] = []
    for line in lines():
        line = line.rstrip("\n")
        sse = decoder.decode(line)
        if sse is not None:
            events.append(sse)
    return events


def decode_sseclient(chunks: Iterable[bytes]) -> list[Any]:
    return list(sseclient.SSEClient(iter(chunks)).events())


def triples(events: Iterable[Any]) -> list[Triple]:
    # ssehub and httpx-sse give the last event ID in effect ("" if none); sseclient-py gives the
    # event's own id field (None if absent): every event of the streams here has one.
    return [(e.event, e.data, e.id or "") for e in events]


DECODERS: dict[str, Callable[[Iterable[bytes]], list[Any]]] = {
    "ssehub": decode_ssehub,
    "httpx-sse": decode_httpx_sse,
    "sseclient-py": decode_sseclient,
}


# -------------------------------------------------------------------------------------- timing
def race(
    contenders: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best CPU time of each contender over `rounds` rounds, interleaved; and its last result."""
    best = dict.fromkeys(contenders, float("inf"))
    results: dict[str, Any] = {}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()
            start = time.process_time()
            results[name] = contenders[name]()
            best[name] = min(best[name], time.process_time() - start)
    return best, results


def rate(value: float, unit: str) -> str:
    if unit == "MB/s":
        return f"{value:,.0f} MB/s"
    if value >= 1e6:
        return f"{value / 1e6:,.2f} M{unit}"
    return f"{value / 1e3:,.0f} k{unit}"


rows: list[tuple[str, dict[str, str], float]] = []  # (workload, {library: rate}, ratio)
failures: list[str] = []


def bench_decode(name: str, raw: bytes, size: int, rounds: int, unit: str) -> None:
    chunks = chunked(raw, size)
    contenders: dict[str, Callable[[], Any]] = {
        lib: (lambda fn=fn: fn(chunks))  # type: ignore[misc]
        for lib, fn in DECODERS.items()
    }
    times, results = race(contenders, rounds)
    reference = triples(results["ssehub"])
    for lib, got in results.items():
        if triples(got) != reference:
            failures.append(f"{name}: {lib} decoded different events than ssehub")
    amount = len(reference) if unit == "events/s" else len(raw) / 1e6
    rates = {lib: amount / t for lib, t in times.items()}
    peer = max(r for lib, r in rates.items() if lib != "ssehub")
    label = f"{name} ({len(raw) / 1e6:.1f} MB, {len(reference):,} events, {len(chunks):,} chunks)"
    rows.append((label, {lib: rate(r, unit) for lib, r in rates.items()}, rates["ssehub"] / peer))


def bench_encode(name: str, events: Sequence[Event], rounds: int) -> None:
    args = [(e.data, None if e.event == "message" else e.event, e.id, e.retry) for e in events]

    def run_ssehub() -> list[bytes]:
        return [encode(e) for e in events]

    def run_fastapi() -> list[bytes]:
        return [format_sse_event(data_str=d, event=t, id=i, retry=r) for d, t, i, r in args]

    times, results = race({"ssehub": run_ssehub, "FastAPI": run_fastapi}, rounds)
    ours = triples(decode_ssehub([b"".join(results["ssehub"])]))
    theirs = triples(decode_ssehub([b"".join(results["FastAPI"])]))
    if ours != theirs or ours != triples(events):  # field order differs: compare what decodes
        failures.append(f"{name}: ssehub and FastAPI encodings do not decode to the events")
    n = len(events)
    shown = {lib: rate(n / t, "events/s") for lib, t in times.items()}
    rows.append((f"{name} ({n:,} events)", shown, times["FastAPI"] / times["ssehub"]))


def linearity() -> list[str]:
    """Time one huge `data:` line, in 64 KiB chunks and byte by byte, at sizes 4x apart.

    The time grows as size ** k: k is 1 for a linear decoder, 2 for a quadratic one. Caches and
    freshly mapped pages make big lines somewhat dearer per KB even in linear time (the 10 MB
    line is copied into memory the allocator has to map), so k up to 1.5 passes.
    """
    out = ["| one data line of | fed in | ssehub time | µs per KB |", "|---|---|---:|---:|"]
    cases = (("64 KiB chunks", (0.625, 2.5, 10), CHUNK), ("1-byte chunks", (0.0125, 0.05, 0.2), 1))
    for label, sizes_mb, size in cases:
        per_kb = []
        for mb in sizes_mb:
            length = int(mb * 1_000_000)
            chunks = chunked(b"data: " + b"x" * length + b"\n\n", size)
            times, results = race({"ssehub": partial(decode_ssehub, chunks)}, 3)
            if [len(e.data) for e in results["ssehub"]] != [length]:
                failures.append(f"linearity: the {mb} MB line was not decoded")
            per_kb.append(times["ssehub"] / (length / 1000) * 1e6)
            out.append(
                f"| {mb:g} MB | {label} | {times['ssehub'] * 1000:,.1f} ms | {per_kb[-1]:.3f} |"
            )
        exponent = 1 + math.log(per_kb[-1] / per_kb[0]) / math.log(sizes_mb[-1] / sizes_mb[0])
        out.append(f"| | {label}: time grows as size^{exponent:.2f} | | |")
        if exponent > 1.5:
            failures.append(f"linearity ({label}): time grows as size^{exponent:.2f}")
    return out


def main() -> int:
    start = time.process_time()
    events = small_events(36_000)
    bench_decode("decode a: small JSON events", wire_small(events), CHUNK, 9, "events/s")
    bench_decode("decode b: 100 KB multi-line events", wire_large(40), CHUNK, 9, "MB/s")
    bench_decode("decode c: stream a, byte by byte", wire_small(events[:1600]), 1, 4, "events/s")
    bench_encode("encode id + event + JSON data", events, 11)
    bench_encode("encode JSON data only", [Event(e.data) for e in events], 11)
    multi = [
        Event("\n".join(f"line {j} of event {i}" for j in range(20)), "log") for i in range(3000)
    ]
    bench_encode("encode 20-line data + event", multi, 11)

    print(
        f"Python {sys.version.split()[0]}; ssehub.wire implementation: {wire.IMPLEMENTATION} "
        "(SSEHUB_PURE_PYTHON=1 selects the pure-Python one); "
        "CPU time, best of 4-11 interleaved rounds\n"
    )
    print("| workload | ssehub | httpx-sse | sseclient-py | FastAPI | ssehub vs faster peer |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, shown, ratio in rows:
        cells = [shown.get(lib, "—") for lib in ("ssehub", "httpx-sse", "sseclient-py", "FastAPI")]
        print(f"| {label} | " + " | ".join(cells) + f" | **{ratio:.1f}x** |")
    print()
    print("\n".join(linearity()))
    print()
    low = [label.split(" (")[0] + f" ({ratio:.1f}x)" for label, _, ratio in rows if ratio < 3.0]
    print(f"target >= 3x on every row: {'met' if not low else 'NOT met for ' + '; '.join(low)}")
    verdict = "yes" if not failures else "NO"
    print(f"same events from every library, round trips, linear time: {verdict}")
    for failure in failures:
        print("  FAIL:", failure)
    print(f"total CPU time {time.process_time() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
