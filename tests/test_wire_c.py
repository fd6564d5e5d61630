"""The C accelerator ssehub._wire_c against the pure-Python reference in ssehub.wire.

test_wire.py runs the whole codec suite against each implementation; this module compares the
two directly: the same events, last event ID and reconnection time after every chunk of random
streams cut at random places, the same bytes or the same exception from the encoder for random
(also ill-typed) events, plus what is specific to C: memory, linear time, re-entrancy.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterable
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_wire import field_lines

from ssehub import wire
from ssehub.wire import Event


def _load() -> ModuleType:
    try:
        return wire._load_c()
    except ImportError as exc:
        pytest.skip(f"the C extension ssehub._wire_c was not built or does not import: {exc}")


c = _load()
CDecoder: Any = c.Decoder
PyDecoder: Any = wire.PyDecoder


def test_the_c_implementation_is_active_unless_disabled() -> None:
    expected = "python" if os.environ.get("SSEHUB_PURE_PYTHON") else "c"
    assert expected == wire.IMPLEMENTATION
    assert (wire.Decoder is c.Decoder) == (expected == "c")


@pytest.mark.parametrize(("value", "expected"), [("1", "python"), ("", "c")])
def test_ssehub_pure_python_selects_the_python_implementation(value: str, expected: str) -> None:
    code = "import ssehub.wire as w; print(w.IMPLEMENTATION, w.Decoder.__module__)"
    env = {**os.environ, "SSEHUB_PURE_PYTHON": value}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [expected, {"c": "ssehub._wire_c", "python": "ssehub.wire"}[expected]]


# ------------------------------------------------------------------------------- decoding


def feed_both(stream: bytes, cuts: Iterable[int], last_event_id: str = "") -> None:
    """Feed both decoders the same chunks; after every one they must agree on everything."""
    ours, theirs = CDecoder(last_event_id), PyDecoder(last_event_id)
    pos = 0
    for size in [*cuts, len(stream)]:
        chunk = stream[pos : pos + size]
        pos += size
        got, expected = ours.feed(chunk), theirs.feed(chunk)
        assert got == expected, chunk
        assert all(type(event) is Event for event in got)
        assert ours.last_event_id == theirs.last_event_id
        assert type(ours.last_event_id) is str
        assert ours.retry == theirs.retry
        assert type(ours.retry) is type(theirs.retry)


# Pieces that matter to the parser: every line terminator, field names near the real ones,
# colons and spaces, BOMs, NULs, invalid and split UTF-8, retry values of every length.
FIELD_NAMES = ["data", "event", "id", "retry", "topic", "Data", "", "dat", "data ", "\ufeffdata"]
values = st.text(st.sampled_from("ab1 :\0é\ufeff09\x7f😀"), max_size=6)
retry_values = st.one_of(
    st.integers(0, 10**30).map(str),
    st.sampled_from(["0" * 30 + "5", "9" * 19, "1" * 4300, "1" * 4301, "0" * 5000, "12a", "-1"]),
)
stream_piece = st.one_of(
    st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\r\r", "\r\n\r\n", ":", " ", "\ufeff", "\0"]).map(
        str.encode
    ),
    field_lines(FIELD_NAMES, values, ["\n", "\r", "\r\n", "\n\n", "\r\r", ""]),
    st.builds(
        lambda v, end: f"retry: {v}{end}".encode(), retry_values, st.sampled_from(["\n", ""])
    ),
    st.sampled_from(
        [
            *(b"\xef\xbb\xbf", b"\xef\xbb", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"),
            *(b"\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf"),
            b"\xf0\x9f\x98\x80",
        ]
    ),
    st.binary(max_size=8),
)
streams = st.lists(stream_piece, max_size=40).map(b"".join)


def cuts_for(length: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=max(1, length)), max_size=16)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams, data=st.data())
@example(stream=b"\xef\xbb\xbfdata: a\r\n\r\n", data=None)
def test_decoder_agrees_with_python_on_random_streams(
    stream: bytes, data: st.DataObject | None
) -> None:
    if data is None:
        for cut in range(len(stream) + 1):
            feed_both(stream, [cut])
        return
    last_event_id = data.draw(st.sampled_from(["", "x", "5", "é"]))
    feed_both(stream, [], last_event_id)
    feed_both(stream, data.draw(cuts_for(len(stream))), last_event_id)
    feed_both(stream, [1] * len(stream), last_event_id)


@settings(max_examples=500)
@given(stream=st.binary(max_size=400), data=st.data())
def test_decoder_agrees_with_python_on_arbitrary_bytes(stream: bytes, data: st.DataObject) -> None:
    feed_both(stream, data.draw(cuts_for(len(stream))))


@settings(max_examples=200)
@given(
    events=st.lists(
        st.builds(
            Event,
            data=st.text(),
            event=st.text(st.characters(exclude_characters="\r\n")),
            id=st.none() | st.text(st.characters(exclude_characters="\r\n\0")),
            retry=st.none() | st.integers(0, 2**70),
        ),
        max_size=20,
    ).filter(lambda events: all(isinstance(e.data, str) for e in events)),
    size=st.integers(1, 300),
)
def test_decoder_agrees_with_python_on_encoded_streams(events: list[Event], size: int) -> None:
    try:
        raw = b"".join(wire.py_encode(e) for e in events)
    except ValueError:  # a lone surrogate
        return
    feed_both(raw, [size] * (len(raw) // size))


def test_decoder_accepts_bytes_like_chunks() -> None:
    # (bytearray like the Python decoder; memoryview too, which the Python one accepts only
    # for chunks without a line end)
    decoder = CDecoder()
    assert decoder.feed(bytearray(b"data: a")) == []
    assert decoder.feed(memoryview(b"\n\n")) == [Event("a", "message", "")]
    with pytest.raises(TypeError):
        decoder.feed("data: x\n\n")


def test_decoder_api_matches() -> None:
    decoder = CDecoder(last_event_id="7")
    assert (decoder.last_event_id, decoder.retry) == ("7", None)
    assert decoder.feed(chunk=b"data: x\n\n") == [Event("x", "message", "7")]
    decoder.last_event_id = "set by hand"  # plain attributes, as in the Python decoder
    decoder.retry = 5
    assert decoder.feed(b"data: y\n") == []
    assert (decoder.last_event_id, decoder.retry) == ("set by hand", 5)
    assert decoder.feed(b"\n") == [Event("y", "message", "7")]
    assert decoder.last_event_id == "7"
    with pytest.raises(TypeError, match="last_event_id must be a str, not int"):
        CDecoder(7)
    with pytest.raises(TypeError, match="last_event_id must be a str, not bytes"):
        PyDecoder(b"7")
    with pytest.raises(TypeError, match="last_event_id must be a str, not bytes"):
        CDecoder(b"7")

    class Sub(str):
        pass

    sub_decoder = CDecoder(Sub("9"))
    assert type(sub_decoder.last_event_id) is str
    assert sub_decoder.feed(b"data\n\n")[0].id == "9"
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'chunk'"):
        decoder.feed()
    with pytest.raises(TypeError, match="unexpected keyword argument 'data'"):
        decoder.feed(data=b"")
    with pytest.raises(TypeError, match="takes 2 positional arguments but 3 were given"):
        decoder.feed(b"", b"")


def test_decoder_reinit_resets_everything() -> None:
    decoder = CDecoder("1")
    decoder.feed(b"retry: 5\nid: 2\ndata: half")
    decoder.__init__("3")
    assert (decoder.last_event_id, decoder.retry) == ("3", None)
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [Event("b", "message", "3")]


def test_decoder_can_be_subclassed() -> None:
    class Counting(CDecoder):  # type: ignore[misc, valid-type]
        def feed(self, chunk: bytes) -> list[Event]:
            self.fed = getattr(self, "fed", 0) + len(chunk)
            events: list[Event] = super().feed(chunk)
            return events

    decoder = Counting("x")
    assert decoder.feed(b"data: a\n\n") == [Event("a", "message", "x")]
    assert decoder.fed == 9


def test_decoder_without_init_is_usable() -> None:
    decoder = CDecoder.__new__(CDecoder)
    assert (decoder.last_event_id, decoder.retry) == ("", None)
    assert decoder.feed(b"data: a\n\n") == [Event("a", "message", "")]


def test_event_types_are_shared_but_equal() -> None:
    events = CDecoder().feed(
        b"event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\nevent:\xff\ndata\n\n"
    )
    assert [e.event for e in events] == ["tick", "tick", "\ufffd"]
    assert events[0].event is events[1].event


def test_reentrant_feed_from_a_finaliser_is_refused() -> None:
    """A finaliser run by the garbage collector in the middle of feed() cannot corrupt it."""
    decoder = CDecoder()
    outcomes: list[str] = []

    class Trap:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            try:
                decoder.feed(b"data: from the finaliser\n\n")
            except RuntimeError as exc:
                outcomes.append(str(exc))
            else:
                outcomes.append("ran")

    stream = b"".join(b"data: %d\n\n" % i for i in range(5000))
    threshold = gc.get_threshold()
    gc.collect()
    try:
        gc.set_threshold(1)
        Trap()
        events = decoder.feed(stream)
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    assert [e.data for e in events] == [str(i) for i in range(5000)]
    assert set(outcomes) <= {"Decoder.feed() is not reentrant", "ran"}


def test_huge_retry_values_match_python() -> None:
    for digits in ("9" * 18, "9" * 19, "1" * 4300, "1" * 4301, "0" * 9000 + "42", "1" * 100_000):
        feed_both(f"retry: 1\nretry: {digits}\n".encode(), [])
    limit = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(640)  # an application lowered the int() digit limit
        feed_both(f"retry: {'7' * 4000}\n".encode(), [])
    finally:
        sys.set_int_max_str_digits(limit)


def test_no_memory_grows_over_many_feeds_and_encodes() -> None:
    """No reference or buffer leaks: memory traced by tracemalloc stays flat."""
    stream = (
        b"\xef\xbb\xbfretry: 12345678901234567890123\r\nid: \xff1\r\nevent: e\xc3\rdata: a\r\n\r\n"
        b": c\nid: x\0\ndata:b\ndata\n\nevent: t\n\nid: 9\n\ndata: " + b"y" * 300 + b"\n\n"
    )
    events = [
        Event("a\nb\r\nc", "e", "1", 5),
        Event("é", "message", None, None),
        Event("x", "bad\n", "1"),
        Event("\ud800"),
        Event("x", retry=-1),
        Event(5),  # type: ignore[arg-type]
    ]

    def work() -> None:
        for size in (1, 7, 4096):
            decoder = CDecoder("z")
            for pos in range(0, len(stream), size):
                decoder.feed(stream[pos : pos + size])
        for event in events:
            with contextlib.suppress(TypeError, ValueError):
                c.encode(event)
        for text in ("a\r\nb", "", "é\n", "\udc00"):
            with contextlib.suppress(ValueError):
                c.comment(text)

    for _ in range(20):
        work()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            work()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000, grown


# ------------------------------------------------------------------------------- encoding


def outcome(function: Callable[..., bytes], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    try:
        return ("returned", function(*args, **kwargs))
    except Exception as exc:
        return ("raised", type(exc), str(exc))


class EvilStr(str):
    def __str__(self) -> str:
        return "x\nevent: injected"

    def __format__(self, spec: str) -> str:
        return "x\nevent: injected"

    def __contains__(self, item: object) -> bool:
        return False


class EqualsEverything(str):
    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


class EvilInt(int):
    def __str__(self) -> str:
        return "1\ndata: injected"

    def __format__(self, spec: str) -> str:
        return "1\ndata: injected"


surrogates = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
texts = st.one_of(
    st.text(st.sampled_from("ab \r\n\0:é€😀\ufeff"), max_size=12),
    st.text(max_size=12),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=3), surrogates, st.text(max_size=3)),
    st.sampled_from(["message", "", "message\n", "\r\n", "data: x", "x" * 1000]),
)
field_values = st.one_of(
    texts,
    texts.map(EvilStr),
    texts.map(EqualsEverything),
    st.none(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([True, False, 1.5, b"x", [1], 10**5000, -(10**5000), 2**63, 2**63 - 1]),
    st.integers(-5, 2**64).map(EvilInt),
)
any_events = st.builds(
    Event, data=field_values, event=field_values, id=field_values, retry=field_values
)


@settings(max_examples=2000)
@given(event=any_events)
@example(event=Event("x", retry=10**5000))
@example(event=Event("x", "message\n", "\0", -1))
@example(event=Event("\ud800", "\n", "\udc00"))
def test_encode_agrees_with_python(event: Event) -> None:
    assert outcome(c.encode, event) == outcome(wire.py_encode, event)


@given(
    event=st.one_of(
        st.builds(SimpleNamespace, data=texts, event=texts, id=texts, retry=st.none()),
        st.just(object()),
    )
)
def test_encode_agrees_with_python_on_other_objects(event: Any) -> None:
    class SubEvent(Event):
        __slots__ = ()

    assert outcome(c.encode, event) == outcome(wire.py_encode, event)
    if isinstance(event, SimpleNamespace):
        sub = SubEvent(event.data, event.event, event.id)
        assert outcome(c.encode, sub) == outcome(wire.py_encode, sub)


def test_encode_and_comment_argument_handling_matches() -> None:
    event = Event("x", "e", "1", 2)
    for args, kwargs in [((), {}), ((event,), {}), ((), {"event": event}), ((event, 1), {})]:
        assert outcome(c.encode, *args, **kwargs) == outcome(wire.py_encode, *args, **kwargs)
    assert outcome(c.encode, (), x=1) == outcome(wire.py_encode, (), x=1)
    for args, kwargs in [((), {}), (("a",), {}), ((), {"text": "a"}), (("a", "b"), {})]:
        assert outcome(c.comment, *args, **kwargs) == outcome(wire.py_comment, *args, **kwargs)


@settings(max_examples=1000)
@given(text=st.one_of(field_values, st.text()))
def test_comment_agrees_with_python(text: Any) -> None:
    assert outcome(c.comment, text) == outcome(wire.py_comment, text)


def test_encode_object_without_fields() -> None:
    bare = Event.__new__(Event)  # slots never set
    assert outcome(c.encode, bare) == outcome(wire.py_encode, bare)
    assert outcome(c.encode, bare)[1] is AttributeError
