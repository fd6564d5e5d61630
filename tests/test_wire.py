"""ssehub.wire against WHATWG HTML §9.2.5 "Parsing an event stream" and §9.2.6 "Interpreting an
event stream": every rule and every example of the spec, the encoder's injection safety, and
properties (round trip, chunking independence, agreement with a literal transcription of the spec).

The whole module runs twice, once per implementation: the C accelerator ([c]) and the pure-Python
reference ([python]); see the `implementation` fixture. test_wire_c.py compares the two directly.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Iterator, Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ssehub import wire
from ssehub.wire import Decoder, Event, comment, encode


def c_implementation() -> tuple[object | None, str]:
    """The C implementation (set up), or None and why it is not available."""
    try:
        return wire._load_c(), ""
    except ImportError as exc:
        return None, f"the C extension ssehub._wire_c was not built or does not import: {exc}"


@pytest.fixture(scope="module", params=["c", "python"], autouse=True)
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test of this module with `Decoder`, `encode` and `comment` bound to one
    implementation (module-scoped, so that hypothesis tests are parametrized too)."""
    if request.param == "c":
        module, reason = c_implementation()
        if module is None:
            pytest.skip(reason)
        names = {name: getattr(module, name) for name in ("Decoder", "encode", "comment")}
    else:
        names = {"Decoder": wire.PyDecoder, "encode": wire.py_encode, "comment": wire.py_comment}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in names.items():
            patch.setattr(sys.modules[__name__], name, value)
        yield request.param


def test_the_implementation_under_test(implementation: str) -> None:
    python = implementation == "python"
    assert (Decoder is wire.PyDecoder) == python
    assert (encode is wire.py_encode) == python
    assert (comment is wire.py_comment) == python
    if not python:
        assert Decoder.__module__ == encode.__module__ == comment.__module__ == "ssehub._wire_c"


# ------------------------------------------------------------------------------------ helpers


def decode(
    stream: bytes | str, chunks: Iterable[int] | None = None, last_event_id: str = ""
) -> list[Event]:
    return run(stream, chunks, last_event_id)[0]


def run(
    stream: bytes | str, chunks: Iterable[int] | None = None, last_event_id: str = ""
) -> tuple[list[Event], str, int | None]:
    """Feed `stream` (whole, or cut at the given sizes); return events, last_event_id, retry."""
    raw = stream.encode() if isinstance(stream, str) else stream
    decoder = Decoder(last_event_id)
    events: list[Event] = []
    if chunks is None:
        events += decoder.feed(raw)
    else:
        pos = 0
        for size in chunks:
            events += decoder.feed(raw[pos : pos + size])
            pos += size
        events += decoder.feed(raw[pos:])
    return events, decoder.last_event_id, decoder.retry


def bytewise(stream: bytes | str) -> tuple[list[Event], str, int | None]:
    raw = stream.encode() if isinstance(stream, str) else stream
    return run(raw, [1] * len(raw))


def ev(data: str, event: str = "message", id: str = "") -> Event:
    return Event(data=data, event=event, id=id)


def reference(stream: bytes, last_event_id: str = "") -> tuple[list[Event], str, int | None]:
    """§9.2.6 transcribed literally, on the whole stream at once, character by character."""
    # "Streams must be decoded using the UTF-8 decode algorithm." "The UTF-8 decode algorithm
    # strips one leading UTF-8 Byte Order Mark (BOM), if any."
    text = stream.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # Lines end at CRLF, at LF not preceded by CR, at CR not followed by LF. The characters after
    # the last line end form no line (the end of the stream is not a line end).
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines.append("".join(current))
            current = []
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    data_buffer = ""
    event_type_buffer = ""
    last_event_id_buffer = last_event_id
    last_event_id_string = last_event_id
    reconnection_time: int | None = None
    events: list[Event] = []
    for line in lines:
        if line == "":
            last_event_id_string = last_event_id_buffer
            if data_buffer == "":
                event_type_buffer = ""
                continue
            if data_buffer[-1] == "\n":
                data_buffer = data_buffer[:-1]
            events.append(Event(data_buffer, event_type_buffer or "message", last_event_id_string))
            data_buffer = ""
            event_type_buffer = ""
            continue
        if line[0] == ":":
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value[:1] == " ":
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type_buffer = value
        elif field == "data":
            data_buffer += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_event_id_buffer = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            reconnection_time = int(value)
    return events, last_event_id_string, reconnection_time


# --------------------------------------------------------------------------- the spec examples


def test_spec_example_yhoo_multiline_data() -> None:
    # "The following event stream, once followed by a blank line: data: YHOO / data: +2 /
    # data: 10 ...would cause an event message ... The event's data attribute would contain the
    # string "YHOO\n+2\n10"".
    stream = "data: YHOO\ndata: +2\ndata: 10\n"
    assert decode(stream) == []
    assert decode(stream + "\n") == [ev("YHOO\n+2\n10")]
    assert decode(stream + "\n")[0].event == "message"


SPEC_FOUR_BLOCKS = (
    ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
)


def test_spec_example_four_blocks() -> None:
    # "The first block has just a comment, and will fire nothing. The second block ... an event
    # will be fired for this block, with the data "first event", and will then set the last event
    # ID to "1" ... The third block fires an event with data "second event", and also has an "id"
    # field, this time with no value, which resets the last event ID to the empty string ...
    # the last block just fires an event with the data " third event" (with a single leading
    # space character)."
    assert decode(SPEC_FOUR_BLOCKS) == [
        ev("first event", id="1"),
        ev("second event", id=""),
        ev(" third event", id=""),
    ]


def test_spec_example_four_blocks_last_event_id_after_each_block() -> None:
    decoder = Decoder()
    blocks = SPEC_FOUR_BLOCKS.encode().split(b"\n\n")
    assert decoder.feed(blocks[0] + b"\n\n") == []  # just a comment: fires nothing
    assert decoder.last_event_id == ""
    assert decoder.feed(blocks[1] + b"\n\n") == [ev("first event", id="1")]
    # "if the connection died between this block and the next, the server would be sent a
    # Last-Event-ID header with the value 1"
    assert decoder.last_event_id == "1"
    assert decoder.feed(blocks[2] + b"\n\n") == [ev("second event")]
    assert decoder.last_event_id == ""  # "resets the last event ID to the empty string"
    assert decoder.feed(blocks[3] + b"\n\n") == [ev(" third event")]


def test_spec_example_last_block_needs_its_blank_line() -> None:
    # "Note that the last still has to end with a blank line, the end of the stream is not enough
    # to trigger the dispatch of the last event."
    unterminated = SPEC_FOUR_BLOCKS[:-1]
    assert [e.data for e in decode(unterminated)] == ["first event", "second event"]


def test_spec_example_empty_data_and_newline_data() -> None:
    # "The following stream fires two events: data / (blank) / data / data / (blank) / data:
    # The first block fires events with the data set to the empty string, as would the last block
    # if it was followed by a blank line. The middle block fires an event with the data set to a
    # single newline character. The last block is discarded because it is not followed by a blank
    # line."
    stream = "data\n\ndata\ndata\n\ndata:"
    assert decode(stream) == [ev(""), ev("\n")]
    assert decode(stream + "\n\n") == [ev(""), ev("\n"), ev("")]


def test_spec_example_space_after_colon_is_ignored() -> None:
    # "The following stream fires two identical events: data:test / data: test. This is because
    # the space after the colon is ignored if present."
    first, second = decode("data:test\n\ndata: test\n\n")
    assert first == second == ev("test")


def test_spec_example_event_types() -> None:
    # The add/remove example of §9.2.4 (event: add / data: 73857293 / event: remove ...).
    stream = (
        "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    )
    assert decode(stream) == [
        ev("73857293", "add"),
        ev("2153", "remove"),
        ev("113411", "add"),
    ]


def test_comment_only_stream_fires_nothing() -> None:
    # Authoring notes: "authors can include a comment line (one starting with a ':' character)".
    events, last_id, retry = run(": keep-alive\n\n:\n\n: another\n: one\n\n")
    assert (events, last_id, retry) == ([], "", None)


# ------------------------------------------------------------------------ §9.2.5 line endings


@pytest.mark.parametrize(
    "stream",
    [
        "event: e\ndata: a\ndata: b\n\n",
        "event: e\r\ndata: a\r\ndata: b\r\n\r\n",
        "event: e\rdata: a\rdata: b\r\r",
        "event: e\r\ndata: a\rdata: b\n\r\n",
        "event: e\rdata: a\r\ndata: b\r\n\n",
    ],
)
def test_lines_end_at_crlf_lf_or_cr(stream: str) -> None:
    # "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF)
    # character pair, a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE
    # RETURN (CR) character."
    assert decode(stream) == [ev("a\nb", "e")]
    assert bytewise(stream)[0] == [ev("a\nb", "e")]


def test_crlf_is_one_line_end_not_a_blank_line() -> None:
    assert decode("data: a\r\ndata: b\r\n") == []
    assert decode("data: a\n\rdata: b\r\n\r\n") == [ev("a"), ev("b")]  # LF then CR: blank line


def test_cr_at_end_of_chunk_then_lf_at_start_of_next() -> None:
    # The CRLF pair split across chunks is one line end, not two.
    decoder = Decoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r") == [ev("a\nb")]
    assert decoder.feed(b"\ndata: c\r\n\r\n") == [ev("c")]


def test_cr_at_end_of_chunk_survives_empty_chunks() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []  # still the LF of the CRLF pair
    assert decoder.feed(b"\n") == [ev("a")]


def test_a_cr_ends_the_line_at_once() -> None:
    # A CR not followed by LF ends a line: the event must not wait for the next chunk.
    decoder = Decoder()
    assert decoder.feed(b"data: a\r\r") == [ev("a")]
    assert decoder.feed(b"data: b\n\r") == [ev("b")]


# ------------------------------------------------------------------------- §9.2.6 decoding


def test_invalid_utf8_becomes_replacement_character() -> None:
    # "Streams must be decoded using the UTF-8 decode algorithm."
    assert decode(b"data: a\xffb\xc3\n\n") == [ev("a\ufffdb\ufffd")]
    assert decode(b"data: \xed\xa0\x80\n\n") == [ev("\ufffd\ufffd\ufffd")]  # a surrogate
    assert decode(b"data: \xf0\x9f\x98\n\n") == [ev("\ufffd")]  # truncated before the LF


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: é€😀\n\n".encode()
    expected = [ev("é€😀")]
    for cut in range(len(raw) + 1):
        assert run(raw, [cut])[0] == expected, cut
    assert bytewise(raw)[0] == expected


def test_one_leading_bom_is_stripped() -> None:
    # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
    assert decode(b"\xef\xbb\xbfdata: a\n\n") == [ev("a")]
    # Only one: a second BOM is part of the first line, whose field name is then not "data".
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n") == [ev("b")]


def test_bom_only_at_the_start_of_the_stream() -> None:
    assert decode("data: a\n\n\ufeffdata: b\n\n") == [ev("a")]
    assert decode("data: \ufeffa\n\n") == [ev("\ufeffa")]


def test_bom_at_the_start_of_a_later_chunk_is_kept() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\n\n") == [ev("a")]
    assert decoder.feed("\ufeffdata: b\n\ndata: c\n\n".encode()) == [ev("c")]
    decoder = Decoder()
    assert decoder.feed(b"\r") == []  # the first line of the stream was empty
    assert decoder.feed("\ufeffdata: b\n\n".encode()) == []


def test_bom_split_across_chunks() -> None:
    raw = b"\xef\xbb\xbfdata: a\n\n"
    for cuts in ([1], [2], [1, 1], [3], [1, 1, 1, 1]):
        assert run(raw, cuts)[0] == [ev("a")], cuts


def test_comment_lines_are_ignored() -> None:
    # "If the line starts with a U+003A COLON character (:)": "Ignore the line."
    assert decode(": data: x\ndata: y\n:id: 5\n\n") == [ev("y")]


def test_field_and_value_split_at_the_first_colon() -> None:
    # "Collect the characters on the line before the first U+003A COLON character (:)" / "after".
    assert decode("data: a:b: c\nevent:x:y\n\n") == [ev("a:b: c", "x:y")]


def test_only_one_leading_space_is_removed() -> None:
    # "If value starts with a U+0020 SPACE character, remove it from value."
    assert decode("data:   x\n\n") == [ev("  x")]
    assert decode("data:\tx\n\n") == [ev("\tx")]
    assert decode("data: \n\n") == [ev("")]
    assert decode("event:  spaced\ndata\n\n") == [ev("", " spaced")]
    assert decode("id:  7\ndata\n\n") == [ev("", id=" 7")]


def test_line_without_colon_is_a_field_with_empty_value() -> None:
    # "the string is not empty but does not contain a U+003A COLON character (:)": "using the
    # whole line as the field name, and the empty string as the field value."
    assert decode("id: 3\nevent: e\ndata\nid\nevent\n\n") == [ev("", "message", "")]


def test_field_names_are_case_sensitive() -> None:
    # "Field names must be compared literally, with no case folding performed."
    assert decode("Data: x\nDATA: y\ndata : z\nEvent: e\nID: 1\ndata: ok\n\n") == [ev("ok")]


def test_unknown_fields_are_ignored() -> None:
    # "Otherwise": "The field is ignored."
    assert decode("foo: bar\ntopic: t\ndata: x\nretry2: 5\n\n") == [ev("x")]


def test_data_lines_are_joined_with_lf_and_one_trailing_lf_removed() -> None:
    # "Append the field value to the data buffer, then append a single U+000A LINE FEED (LF)
    # character" ... "If the data buffer's last character is a U+000A LINE FEED (LF) character,
    # then remove the last character from the data buffer."
    assert decode("data: a\ndata:\n\n") == [ev("a\n")]
    assert decode("data:\ndata:\ndata:\n\n") == [ev("\n\n")]


def test_event_type_buffer() -> None:
    # "Set the event type buffer to the field value." (the last one wins)
    assert decode("event: a\nevent: b\ndata: x\n\n") == [ev("x", "b")]
    # "If the event type buffer has a value other than the empty string, change the type".
    assert decode("event: a\nevent:\ndata: x\n\n") == [ev("x", "message")]
    assert decode("event\ndata: x\n\n") == [ev("x", "message")]
    assert decode("event: \ndata: x\n\n") == [ev("x", "message")]  # the value is ""
    assert decode("id: 1\nevent: \ndata: x\n\n") == [ev("x", "message", "1")]
    assert decode("event:  \ndata: x\n\n") == [ev("x", " ")]


def test_empty_id_value_resets_the_buffer() -> None:
    assert decode("id: 1\ndata: a\n\nid: \ndata: b\n\nid:\nevent: e\ndata: c\n\n") == [
        ev("a", id="1"),
        ev("b", id=""),
        ev("c", "e", ""),
    ]


def test_empty_data_buffer_dispatches_nothing_and_resets_the_type() -> None:
    # Step 2: "If the data buffer is an empty string, set the data buffer and the event type
    # buffer to the empty string and return."
    assert decode("event: lost\n\ndata: x\n\n") == [ev("x")]
    assert decode("event: lost\nid: 1\n\n\n\n") == []


def test_event_type_buffer_reset_after_dispatch() -> None:
    # Step 7: "Set the data buffer and the event type buffer to the empty string."
    assert decode("event: a\ndata: 1\n\ndata: 2\n\n") == [ev("1", "a"), ev("2")]


def test_id_sets_the_last_event_id_at_the_blank_line() -> None:
    # Step 1 runs even when the data buffer is empty.
    events, last_id, _ = run("id: 5\n\n")
    assert events == []
    assert last_id == "5"


def test_id_of_an_incomplete_event_does_not_count() -> None:
    decoder = Decoder()
    assert decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n") == [ev("a", id="1")]
    assert decoder.last_event_id == "1"


def test_id_buffer_is_not_reset_between_events() -> None:
    # "The buffer does not get reset" / "If an event doesn't have an "id" field, but an earlier
    # event did set the event source's last event ID string, then the event's lastEventId field
    # will be set to the value of whatever the last seen "id" field was."
    assert decode("id: 7\ndata: a\n\ndata: b\n\nid: 8\n\ndata: c\n\n") == [
        ev("a", id="7"),
        ev("b", id="7"),
        ev("c", id="8"),
    ]


def test_id_may_come_after_the_data() -> None:
    assert decode("data: a\nid: 9\n\n") == [ev("a", id="9")]


def test_id_containing_null_is_ignored() -> None:
    # "If the field value does not contain U+0000 NULL, then set the last event ID buffer to the
    # field value. Otherwise, ignore the field."
    events, last_id, _ = run("id: 5\ndata: a\n\nid: 6\0\ndata: b\n\nid: \0\n\n")
    assert events == [ev("a", id="5"), ev("b", id="5")]
    assert last_id == "5"


def test_id_containing_null_among_whole_events() -> None:
    stream = "".join(f"id: {i}\ndata: {i}\n\n" for i in range(5)) + "id: 5\0\ndata: x\n\n"
    events, last_id, _ = run(stream)
    assert [e.id for e in events] == ["0", "1", "2", "3", "4", "4"]
    assert last_id == "4"


def test_null_in_data_and_event_is_kept() -> None:
    assert decode("event: a\0b\ndata: c\0d\n\n") == [ev("c\0d", "a\0b")]


def test_constructor_last_event_id_initialises_the_buffer() -> None:
    decoder = Decoder("41")
    assert decoder.last_event_id == "41"
    assert decoder.feed(b"data: a\n\nid: 42\ndata: b\n\n") == [ev("a", id="41"), ev("b", id="42")]
    assert decoder.last_event_id == "42"


def test_empty_id_resets_a_constructor_last_event_id() -> None:
    events, last_id, _ = run("id\ndata: a\n\n", last_event_id="41")
    assert events == [ev("a", id="")]
    assert last_id == ""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("retry: 5000", 5000),
        ("retry:250", 250),
        ("retry: 0", 0),
        ("retry: 007", 7),
        ("retry: 12345678901234567890", 12345678901234567890),
        ("retry: 1a", None),
        ("retry: -1", None),
        ("retry: +1", None),
        ("retry: 1.5", None),
        ("retry: 1_000", None),
        ("retry:", None),
        ("retry: ", None),
        ("retry:  5", None),  # the value is " 5": not only digits
        ("retry: 5 ", None),
        ("retry: \u0663", None),  # ARABIC-INDIC DIGIT THREE: a digit, but not an ASCII digit
        ("retry: \uff15", None),  # FULLWIDTH DIGIT FIVE
        ("retry", None),
        ("Retry: 5", None),
    ],
)
def test_retry_accepts_ascii_digits_only(line: str, expected: int | None) -> None:
    # "If the field value consists of only ASCII digits, then interpret the field value as an
    # integer in base ten, and set the event stream's reconnection time to that integer.
    # Otherwise, ignore the field."
    assert run(line + "\n")[2] == expected


def test_retry_takes_effect_at_its_line_and_keeps_the_last_valid_value() -> None:
    decoder = Decoder()
    decoder.feed(b"retry: 100\n")
    assert decoder.retry == 100  # no blank line needed
    decoder.feed(b"retry: x\nretry: 200\nretry: -5\n\n")
    assert decoder.retry == 200


def test_retry_with_more_digits_than_int_accepts() -> None:
    # Leading zeros do not count; a value beyond 4300 significant digits is ignored (see wire.py).
    assert run("retry: " + "0" * 5000 + "7\n")[2] == 7
    assert run("retry: 3\nretry: " + "9" * 5000 + "\n")[2] == 3
    assert run("retry: " + "9" * 4300 + "\n")[2] == int("9" * 4300)


def test_incomplete_event_at_end_of_stream_is_discarded() -> None:
    # "Once the end of the file is reached, any pending data must be discarded."
    assert decode("data: a\n\ndata: b\n") == [ev("a")]
    assert decode("data: a\n\ndata: b") == [ev("a")]


def test_events_dispatched_by_each_chunk() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\n\ndata: b\n\ndata: ") == [ev("a"), ev("b")]
    assert decoder.feed(b"c\n") == []
    assert decoder.feed(b"\n") == [ev("c")]


def test_ssehub_hub_stream_shape() -> None:
    # What ssehub's hub sends (CONTRACTS.md): an opening comment, retry and id, then events with
    # `topic:` lines (an unknown field, ignored).
    stream = (
        ": ssehub\nretry: 3000\n\nid: 10\n\n"
        "id: 11\ntopic: a\ntopic: b\nevent: order\ndata: {}\n\n"
        "id: 12\ntopic: a\ndata: x\ndata: y\n\n"
        ": heartbeat\n\n"
    )
    events, last_id, retry = run(stream)
    assert events == [ev("{}", "order", "11"), ev("x\ny", "message", "12")]
    assert (last_id, retry) == ("12", 3000)


def test_a_large_data_line_in_many_chunks() -> None:
    payload = "x" * 300_000 + "é" * 10
    raw = f"id: 1\ndata: {payload}\ndata: {payload}\n\n".encode()
    assert run(raw, [4096] * (len(raw) // 4096))[0] == [ev(payload + "\n" + payload, id="1")]


def test_feed_returns_a_new_list_each_time() -> None:
    decoder = Decoder()
    first = decoder.feed(b"data")
    first.append(ev("intruder"))
    assert decoder.feed(b"\n\n") == [ev("")]


# --------------------------------------------------------------------------------- Event


def test_event_defaults_and_immutability() -> None:
    event = Event()
    assert (event.data, event.event, event.id, event.retry) == ("", "message", None, None)
    assert [f.name for f in dataclasses.fields(Event)] == ["data", "event", "id", "retry"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "x"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")  # slots
    assert Event("a", "b", "c", 1) == Event(data="a", event="b", id="c", retry=1)
    assert hash(Event("a")) == hash(Event("a"))


def test_decoded_events_are_plain_events() -> None:
    (event,) = decode("id: 1\nevent: e\ndata: d\n\n")
    assert type(event) is Event
    assert event == Event("d", "e", "1", None)
    assert repr(event) == "Event(data='d', event='e', id='1', retry=None)"
    assert hash(event) == hash(Event("d", "e", "1"))


# --------------------------------------------------------------------------------- encoder


def test_encode_data_only() -> None:
    assert encode(Event("hello")) == b"data: hello\n\n"
    assert encode(Event()) == b"data: \n\n"


def test_encode_all_fields() -> None:
    raw = encode(Event("d", event="update", id="42", retry=3000))
    assert raw == b"retry: 3000\nid: 42\nevent: update\ndata: d\n\n"


def test_encode_omits_default_and_empty_event_type() -> None:
    assert b"event" not in encode(Event("x", event="message"))
    # "" means "message" to every receiver (dispatch step 6), so it is written as the default.
    assert encode(Event("x", event="")) == b"data: x\n\n"
    assert encode(Event("x", event="", id="1")) == b"id: 1\ndata: x\n\n"
    assert encode(Event("x", event="", retry=1)) == b"retry: 1\ndata: x\n\n"
    assert decode(encode(Event("x", event=""))) == [ev("x", "message")]


def test_encode_empty_id_resets_the_receivers_last_event_id() -> None:
    assert encode(Event("x", id="")) == b"id: \ndata: x\n\n"
    assert run(encode(Event("x", id="")), last_event_id="9") == ([ev("x", id="")], "", None)


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        ("a\nb", [b"data: a", b"data: b"]),
        ("a\rb", [b"data: a", b"data: b"]),
        ("a\r\nb", [b"data: a", b"data: b"]),
        ("a\n\rb", [b"data: a", b"data: ", b"data: b"]),
        ("\n", [b"data: ", b"data: "]),
        ("a\n", [b"data: a", b"data: "]),
        ("\r\n\r\n", [b"data: ", b"data: ", b"data: "]),
    ],
)
def test_encode_multiline_data(data: str, lines: list[bytes]) -> None:
    assert encode(Event(data)) == b"\n".join(lines) + b"\n\n"
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decode(encode(Event(data))) == [ev(normalised)]


def test_encode_data_with_leading_space_round_trips() -> None:
    assert encode(Event(" x")) == b"data:  x\n\n"
    assert decode(encode(Event(" x\n  y", event=" e", id=" 1"))) == [ev(" x\n  y", " e", " 1")]


def test_encode_non_ascii() -> None:
    assert encode(Event("é😀", event="ü", id="ñ")) == "id: ñ\nevent: ü\ndata: é😀\n\n".encode()


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "x\n\ndata: injected", "\r"])
def test_encode_rejects_line_breaks_in_event(bad: str) -> None:
    with pytest.raises(ValueError, match="event"):
        encode(Event("x", event=bad))


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "1\ndata: injected", "a\0b", "\0"])
def test_encode_rejects_line_breaks_and_null_in_id(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        encode(Event("x", id=bad))


@pytest.mark.parametrize("bad", [-1, -3000])
def test_encode_rejects_negative_retry(bad: int) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode(Event("x", retry=bad))


@pytest.mark.parametrize("bad", [True, False, 1.5, 1000.0, "1000", b"1", [1]])
def test_encode_rejects_retry_that_is_not_an_int(bad: object) -> None:
    with pytest.raises(TypeError, match="retry"):
        encode(Event("x", retry=bad))  # type: ignore[arg-type]


def test_encode_accepts_int_subclass_retry_as_plain_int() -> None:
    class Evil(int):
        def __format__(self, spec: str) -> str:
            return "1\ndata: injected"

        def __str__(self) -> str:
            return "1\ndata: injected"

    assert encode(Event("x", retry=Evil(5))) == b"retry: 5\ndata: x\n\n"


@pytest.mark.parametrize(
    ("field", "bad"),
    [("data", b"x"), ("data", 5), ("data", None), ("event", None), ("event", 1), ("id", 7)],
)
def test_encode_rejects_wrong_types(field: str, bad: object) -> None:
    with pytest.raises(TypeError, match=field):
        encode(Event(**{field: bad}))  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["data", "event", "id"])
def test_encode_str_subclass_cannot_inject(field: str) -> None:
    class Evil(str):
        def __format__(self, spec: str) -> str:
            return "x\nevent: injected\ndata: injected"

        def __str__(self) -> str:
            return "x\nevent: injected\ndata: injected"

        def __contains__(self, item: object) -> bool:
            return False

    # What is written is the string's own characters, checked like any str.
    raw = encode(Event(**{field: Evil("plain")}))  # type: ignore[arg-type]
    assert b"injected" not in raw
    expected = {"data": ev("plain"), "event": ev("", "plain"), "id": ev("", id="plain")}[field]
    assert decode(raw) == [expected]
    if field != "data":
        with pytest.raises(ValueError, match=field):
            encode(Event(**{field: Evil("a\nb")}))  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["data", "event", "id"])
def test_encode_lone_surrogate_is_a_value_error_naming_the_field(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        encode(Event(**{field: "a\ud800b"}))  # type: ignore[arg-type]


def test_encode_output_always_ends_with_exactly_one_blank_line() -> None:
    for event in (Event(), Event("a\n"), Event("a", "e", "1", 5), Event("\r\n")):
        raw = encode(event)
        assert raw.endswith(b"\n\n")
        assert not raw.endswith(b"\n\n\n")
        assert raw.count(b"\n\n") == 1


def test_comment() -> None:
    assert comment("heartbeat") == b": heartbeat\n\n"
    assert comment("") == b":\n\n"
    assert comment("a\nb\r\nc\rd") == b": a\n: b\n: c\n: d\n\n"
    assert comment("a\n\nb") == b": a\n:\n: b\n\n"


@pytest.mark.parametrize(
    "text", ["x\ndata: injected", "\n\ndata: injected\n\n", "a\rid: 9", "a\r\nevent: e"]
)
def test_comment_with_line_breaks_stays_a_comment(text: str) -> None:
    raw = comment(text)
    assert all(line.startswith(b":") for line in raw[:-2].split(b"\n"))
    assert b"\r" not in raw
    decoder = Decoder("7")
    assert decoder.feed(raw) == []
    assert (decoder.last_event_id, decoder.retry) == ("7", None)


def test_comment_between_events_does_not_disturb_them() -> None:
    raw = encode(Event("a", id="1")) + comment("ping\npong") + encode(Event("b"))
    assert decode(raw) == [ev("a", id="1"), ev("b", id="1")]


def test_comment_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="text"):
        comment(b"x")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- properties

line_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"))
any_text = st.text(st.characters(exclude_categories=["Cs"]))
event_names = line_text
ids = st.none() | line_text.filter(lambda s: "\0" not in s)
retries = st.none() | st.integers(min_value=0, max_value=2**64)
events_strategy = st.builds(Event, data=any_text, event=event_names, id=ids, retry=retries)


@given(st.lists(events_strategy, max_size=8), st.data())
@example([Event("", event="", id="", retry=0)], None)
def test_round_trip(events: list[Event], data: st.DataObject | None) -> None:
    """decode(encode(e)) gives e back: data with line breaks normalised to LF, the type
    ("message" for ""), the id in effect, and the retry on the decoder; in any chunking."""
    raw = b"".join(encode(e) for e in events)
    expected: list[Event] = []
    last_id = ""
    retry = None
    for e in events:
        if e.id is not None:
            last_id = e.id
        if e.retry is not None:
            retry = e.retry
        data_ = e.data.replace("\r\n", "\n").replace("\r", "\n")
        expected.append(Event(data_, e.event or "message", last_id))
    cuts = data.draw(chunkings(len(raw))) if data is not None else None
    assert run(raw, cuts) == (expected, last_id, retry)


def chunkings(length: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(min_value=0, max_value=max(1, length)), max_size=12)


# Streams built from the pieces that matter to the parser, so that the properties explore field
# lines, all line terminators, comments, BOMs, NULs, split and invalid UTF-8.
FIELD_NAMES = ["data", "event", "id", "retry", "topic", "Data", "", "dat", "data "]


def field_lines(
    names: list[str], values: st.SearchStrategy[str], ends: list[str]
) -> st.SearchStrategy[bytes]:
    """`name:value` lines, right and wrong: known and unknown names, colon or not, spaces."""
    return st.builds(
        lambda name, colon, space, value, end: f"{name}{colon}{space}{value}{end}".encode(),
        st.sampled_from(names),
        st.sampled_from([":", ":", ""]),
        st.sampled_from(["", " ", "  "]),
        values,
        st.sampled_from(ends),
    )


stream_piece = st.one_of(
    st.sampled_from(["\n", "\r", "\r\n", "\n\n", "\r\n\r\n", ":", " ", "\ufeff", "\0", "é"]).map(
        str.encode
    ),
    field_lines(
        FIELD_NAMES,
        st.text(st.sampled_from("ab1 :\0é\ufeff0"), max_size=4),
        ["\n", "\r", "\r\n", "\n\n", ""],
    ),
    st.sampled_from([b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98\x80", b"\x80"]),
    st.binary(max_size=6),
)
streams = st.lists(stream_piece, max_size=30).map(b"".join)


@settings(max_examples=400)
@given(stream=streams, data=st.data())
def test_matches_the_literal_spec_transcription(stream: bytes, data: st.DataObject) -> None:
    last_event_id = data.draw(st.sampled_from(["", "x", "5"]))
    expected = reference(stream, last_event_id)
    assert run(stream, None, last_event_id) == expected
    assert run(stream, data.draw(chunkings(len(stream))), last_event_id) == expected


@settings(max_examples=300)
@given(stream=streams, data=st.data())
def test_chunking_never_changes_the_result(stream: bytes, data: st.DataObject) -> None:
    whole = run(stream)
    assert run(stream, data.draw(chunkings(len(stream)))) == whole
    assert bytewise(stream) == whole


@given(stream=st.binary(max_size=300), data=st.data())
def test_arbitrary_bytes_never_raise(stream: bytes, data: st.DataObject) -> None:
    # and still agree with the transcription
    expected = reference(stream)
    assert run(stream) == expected
    assert run(stream, data.draw(chunkings(len(stream)))) == expected


@settings(max_examples=200)
@given(events=st.lists(events_strategy, min_size=1, max_size=30), size=st.integers(1, 200))
def test_long_encoded_streams_in_fixed_size_chunks(events: Sequence[Event], size: int) -> None:
    # Many whole events per chunk (the bulk path), against the transcription.
    raw = b"".join(encode(e) for e in events)
    assert run(raw, [size] * (len(raw) // size)) == reference(raw)


def test_large_and_small_events_mixed() -> None:
    big = "x" * 5000
    raw = "".join(
        f"id: {i}\nevent: e{i % 3}\ndata: {big if i % 4 == 0 else i}\ndata: {i}\n\n"
        for i in range(40)
    ).encode()
    expected = reference(raw)
    for size in (100, 4096, 65536, len(raw)):
        assert run(raw, [size] * (len(raw) // size)) == expected


def test_module_docstring_examples() -> None:
    import doctest

    import ssehub.wire

    implementations = {"Decoder": Decoder, "encode": encode, "comment": comment}
    result = doctest.testmod(ssehub.wire, extraglobs=implementations)
    assert result.attempted >= 5
    assert result.failed == 0
