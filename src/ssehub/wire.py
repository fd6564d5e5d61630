"""The ``text/event-stream`` codec (WHATWG HTML §9.2.5-9.2.6), sans-IO.

This module does no I/O at all: no sockets, no files, no asyncio, no threads. It turns
:class:`Event` objects into bytes (:func:`encode`, :func:`comment`) and bytes into events
(:class:`Decoder`), so the same code serves any server, any client, sync or async.

Encoding::

    >>> encode(Event("hello\\nworld", event="greeting", id="7"))
    b'id: 7\\nevent: greeting\\ndata: hello\\ndata: world\\n\\n'

Decoding, incrementally, in chunks of any size (the result never depends on where the chunks
are split)::

    >>> decoder = Decoder()
    >>> decoder.feed(b"id: 7\\nevent: greeting\\ndata: hel")
    []
    >>> decoder.feed(b"lo\\n\\n")
    [Event(data='hello', event='greeting', id='7', retry=None)]
    >>> decoder.last_event_id  # send it as Last-Event-ID when reconnecting
    '7'

The decoder implements "9.2.6 Interpreting an event stream" exactly; the comments in
:meth:`Decoder.feed` and ``Decoder._lines`` quote the sentence of the spec each branch
implements. For speed, whole events of the usual shape and runs of ``data:`` lines are parsed by
one regular expression per chunk and turned into events in bulk (see ``_SPLIT``); everything else
goes through the line rules one line at a time. Both give the same result, which the tests check
against a literal transcription of the spec on random streams cut into random chunks.

Two implementations: this module's Python code is the reference, readable and always available;
``ssehub._wire_c`` is a C accelerator doing exactly the same (compiled at install time when a C
compiler is available; the tests run the whole codec suite against both and compare them on
random input). :data:`IMPLEMENTATION` says which one :class:`Decoder`, :func:`encode` and
:func:`comment` are: ``"c"`` when the extension imports and the environment variable
``SSEHUB_PURE_PYTHON`` is unset or empty, else ``"python"``. The Python implementation stays
available as :data:`PyDecoder`, :func:`py_encode` and :func:`py_comment`.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice, repeat
from types import ModuleType
from typing import TYPE_CHECKING, Final, Literal

__all__ = ["Decoder", "Event", "comment", "encode"]


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event.

    ``data`` is the payload (may contain line breaks), ``event`` the type ("message" is the
    default a browser dispatches on ``onmessage``), ``id`` the event ID (None: no ``id:`` field),
    ``retry`` the reconnection time in milliseconds to announce (None: no ``retry:`` field).

    Events produced by :class:`Decoder` carry ``id`` = the last event ID in effect when the event
    was dispatched ("" if none; like the browser's ``MessageEvent.lastEventId``) and
    ``retry=None``; the reconnection time a stream announced is :attr:`Decoder.retry`.
    """

    data: str = ""
    event: str = "message"
    id: str | None = None
    retry: int | None = None


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _exact_str(field: str, value: object) -> str:
    """`value` as an exact `str`, or TypeError naming the field.

    A `str` subclass could override `__format__`, `__str__` or `__contains__` and smuggle a line
    break past the checks; `str.__str__` returns the underlying characters as a plain `str`.
    """
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"{field} must be a str, not {type(value).__name__}")


def _single_line(field: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"{field} must not contain a line break (CR or LF): {value!r}")


def _unencodable(event: Event) -> ValueError:
    """The ValueError for a field holding a lone surrogate (not representable in UTF-8)."""
    for field in ("data", "event", "id"):
        value = getattr(event, field)
        if isinstance(value, str):
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                return ValueError(f"{field} is not encodable as UTF-8: {exc.reason}")
    return ValueError("event is not encodable as UTF-8")  # pragma: no cover


def encode(event: Event) -> bytes:
    """Serialise one event to the bytes of a ``text/event-stream``, ending with a blank line.

    Field order: ``retry:``, ``id:``, ``event:``, then one ``data: `` line per line of ``data``.

    * ``data`` may contain line breaks: LF, CR and CRLF each end a ``data:`` line, so the
      receiver gets the same text back with its line breaks normalised to LF (the stream format
      cannot carry a CR inside a field). Every line is written as ``data: <line>`` with one space,
      which the receiver strips, so data that starts with a space survives.
    * ``event``: the ``event:`` line is omitted for "message", the type a receiver assumes when
      there is none. It is also omitted for "": an empty event type buffer makes a receiver
      dispatch "message" too (§9.2.6, dispatch step 6), so "" and "message" mean the same thing on
      the wire and both are sent as the default.
    * ``id``: None writes no ``id:`` line (the receiver keeps its last event ID); "" writes
      ``id: `` which resets the receiver's last event ID.

    Raises ValueError naming the field when ``event`` or ``id`` contains CR or LF, ``id``
    contains NUL (a receiver would ignore such an ``id:`` line), ``retry`` is negative, or a field
    holds a lone surrogate; TypeError when a field has the wrong type (``retry`` must be an int,
    and a bool is rejected). No argument can inject a field or end the event early.
    """
    # Fast paths for plain str fields without retry: one f-string each.
    data = event.data
    if type(data) is str and event.retry is None:
        if "\n" in data or "\r" in data:
            if "\r" in data:
                data = data.replace("\r\n", "\n").replace("\r", "\n")
            data = data.replace("\n", "\ndata: ")
        eid = event.id
        name = event.event
        try:
            if eid is None:
                if name == "message":
                    return f"data: {data}\n\n".encode()
                if type(name) is str and name and "\n" not in name and "\r" not in name:
                    return f"event: {name}\ndata: {data}\n\n".encode()
            elif type(eid) is str and "\n" not in eid and "\r" not in eid and "\0" not in eid:
                if name == "message":
                    return f"id: {eid}\ndata: {data}\n\n".encode()
                if type(name) is str and name and "\n" not in name and "\r" not in name:
                    return f"id: {eid}\nevent: {name}\ndata: {data}\n\n".encode()
        except UnicodeEncodeError:
            raise _unencodable(event) from None
    return _encode(event)


def _encode(event: Event) -> bytes:
    """`encode` for every case, with every check."""
    data = event.data
    etype = event.event
    eid = event.id
    retry = event.retry
    if type(data) is not str:
        data = _exact_str("data", data)
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in data:
        data = data.replace("\n", "\ndata: ")
    head = ""
    if retry is not None:
        if type(retry) is not int:
            if isinstance(retry, bool) or not isinstance(retry, int):
                raise TypeError(f"retry must be an int, not {type(retry).__name__}")
            retry = int.__int__(retry)
        if retry < 0:
            raise ValueError(f"retry must not be negative: {retry}")
        try:
            head = f"retry: {retry}\n"
        except ValueError:  # more digits than int->str conversion allows
            raise ValueError("retry is too large to be written in decimal") from None
    if eid is not None:
        if type(eid) is not str:
            eid = _exact_str("id", eid)
        _single_line("id", eid)
        if "\0" in eid:
            raise ValueError(f"id must not contain NUL: {eid!r}")
        head = f"{head}id: {eid}\n"
    if type(etype) is not str:
        etype = _exact_str("event", etype)
    if etype != "message" and etype:
        _single_line("event", etype)
        head = f"{head}event: {etype}\n"
    try:
        return f"{head}data: {data}\n\n".encode()
    except UnicodeEncodeError:
        raise _unencodable(event) from None


def comment(text: str = "") -> bytes:
    """A comment block: every line of ``text`` (split at LF, CR or CRLF) prefixed with ``:``.

    Receivers ignore comments; they keep idle connections alive through proxies. The block ends
    with a blank line, which dispatches nothing when written between events (the data buffer is
    empty there), so a comment can never change or end an event.
    """
    if type(text) is not str:
        text = _exact_str("text", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [f": {line}" if line else ":" for line in text.split("\n")]
    try:
        return ("\n".join(lines) + "\n\n").encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not encodable as UTF-8: {exc.reason}") from None


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

# The decoder parses text made of complete lines, each ending in LF (CR and CRLF are normalised
# first), with one re.split() of this pattern. Its last alternative matches any line, so
# consecutive matches cover the text without gaps. Each match is one of:
#
# A. A whole event in the shape servers usually send, parsed in C:
#        [id: I] [: comment | topic: ...]* [event: T] data: D <blank line>
#    (groups 1-3: I, T, D). "One leading space" is stripped by ` ?+` (possessive, so it never
#    gives the space back) for id and event, and by the literal "data: " for data (a "data:x"
#    line is left to C). Empty id and event values are left to C too. Comments are ignored, and
#    "topic" (sent by ssehub's hub) is an unknown field, which is ignored: skipping them is
#    exactly what the line rules do.
# B. A run of "data: " lines, appended to the data buffer in one go (group 4).
# C. Any other single line, LF included (group 4), processed by the line rules of §9.2.6.
#
# Group 4 is set for B and C (a B run and a C line tell apart by whether they start with
# "data: ", since such a line always matches B first) and None for A; groups 1 and 2 are None
# when A has no such line. re.split() returns the groups of all matches in one flat list,
# [gap, I, T, D, other, gap, I, T, D, other, ..., gap] (every gap is "": no gaps), which is
# cheaper than findall()'s tuple per match and lets the bulk path take columns by slicing.
_SPLIT: Final = re.compile(
    r"(?:id: ?+(.++)\n)?"
    r"(?:(?::|topic:).*+\n)*+"
    r"(?:event: ?+(.++)\n)?"
    r"data: (.*+)\n\n"
    r"|((?:data: .*+\n)++|.*+\n)"
).split
_Match = tuple[str | None, str | None, str | None, str | None, str | None]


def _matches(flat: list[str | None], start: int) -> Iterator[_Match]:
    """The matches of a `_SPLIT` result from the `start`-th on, each as (I, T, D, other, gap)."""
    items = islice(flat, 1 + 5 * start, None)
    return zip(items, items, items, items, items, strict=True)


# Dispatched events are built in bulk with C-level calls: a frozen dataclass's __init__ goes
# through object.__setattr__ once per field, which would cost more than parsing the event.
_new: Final = object.__new__
_set_data: Final = vars(Event)["data"].__set__
_set_event: Final = vars(Event)["event"].__set__
_set_id: Final = vars(Event)["id"].__set__
_set_retry: Final = vars(Event)["retry"].__set__
_exhaust: Final[Callable[[Iterable[object]], None]] = deque[object](maxlen=0).extend


def _build(datas: list[str], types: list[str], ids: list[str], n: int) -> list[Event]:
    events: list[Event] = list(map(_new, repeat(Event, n)))
    _exhaust(map(_set_data, events, datas))
    _exhaust(map(_set_event, events, types))
    _exhaust(map(_set_id, events, ids))
    _exhaust(map(_set_retry, events, repeat(None, n)))
    return events


# Python refuses int() on more than sys.get_int_max_str_digits() digits (4300 by default; an
# application may lower it to 640). Reconnection times anywhere near that are meaningless, and
# browsers ignore values that overflow their integer type; so do we beyond this many significant
# digits, which also keeps a hostile `retry:` line from costing quadratic time.
_MAX_RETRY_DIGITS: Final = 4300


def _retry_value(digits: str) -> int | None:
    significant = digits.lstrip("0")
    if len(significant) > _MAX_RETRY_DIGITS:
        return None
    try:
        return int(significant or "0")
    except ValueError:  # the application lowered the int() digit limit
        value = 0
        for start in range(0, len(significant), 500):
            part = significant[start : start + 500]
            value = value * 10 ** len(part) + int(part)
        return value


class Decoder:
    """Incremental ``text/event-stream`` parser (WHATWG HTML §9.2.6), sans-IO.

    Feed it the bytes of one response body as they arrive; :meth:`feed` returns the events each
    chunk completes. Chunk boundaries never change the result, even inside a UTF-8 sequence, a
    CRLF pair or the leading BOM. Events are dispatched as soon as their blank line arrives (a
    CR at the end of a chunk ends the line at once; it does not wait for a possible LF).

    ``last_event_id`` initialises the last event ID buffer: pass the previous decoder's
    :attr:`last_event_id` when reconnecting, as browsers carry it across reconnections.

    Attributes:
        last_event_id: the last event ID string (what a client sends as ``Last-Event-ID``).
            Updated at every blank line from the ``id:`` fields seen so far, even when no event
            is dispatched; an ``id:`` in an event that never completes does not count.
        retry: the last valid reconnection time announced by the stream, in ms, or None.

    End of stream needs no call: "once the end of the file is reached, any pending data must be
    discarded", so nothing is ever dispatched at the end. Lines are unbounded; a caller reading
    untrusted streams should cap the response size itself.
    """

    __slots__ = (
        "_at_start",
        "_cr",
        "_id_buf",
        "_parts",
        "_pending",
        "_type_buf",
        "last_event_id",
        "retry",
    )

    def __init__(self, last_event_id: str = "") -> None:
        if type(last_event_id) is not str:
            last_event_id = _exact_str("last_event_id", last_event_id)
        self.last_event_id: str = last_event_id
        self.retry: int | None = None
        # "When a stream is parsed, a data buffer, an event type buffer, and a last event ID
        # buffer must be associated with it. They must be initialized to the empty string."
        # The data buffer is a list of pieces, each standing for its value followed by LF (a
        # piece may hold several lines, joined by LF): the empty list is "". The last
        # event ID buffer starts from the constructor's argument (see the class docstring).
        self._parts: list[str] = []
        self._type_buf = ""
        self._id_buf = last_event_id
        # Bytes of the line in progress (no CR or LF yet), joined once the line ends.
        self._pending: list[bytes] = []
        # The previous chunk ended with CR: an LF starting the next chunk completes that CRLF.
        self._cr = False
        # Nothing decoded yet: the BOM check is still to do.
        self._at_start = True

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse the next bytes of the stream; return the events they dispatch, in order."""
        if self._cr:
            if not chunk:
                return []
            self._cr = False
            if chunk[0] == 10:
                # A line ends at "a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF) character
                # pair": the CR ending the previous chunk already ended the line; skip its LF.
                chunk = chunk[1:]
        # Only complete lines are decoded and parsed. CR and LF bytes never occur inside a UTF-8
        # sequence (and an invalid sequence before them becomes U+FFFD), so decoding the stream
        # line by line gives the same text as decoding it whole.
        pending = self._pending
        if 10 not in chunk and 13 not in chunk:  # no LF, no CR (int tests are the fast ones)
            if chunk:
                pending.append(chunk)
            return []
        end = chunk.rfind(b"\n")
        cr = chunk.rfind(b"\r")
        if cr > end:
            end = cr
            if cr == len(chunk) - 1:
                self._cr = True
        end += 1
        if pending:
            pending.append(chunk[:end])
            raw = b"".join(pending)
            pending.clear()
        else:
            raw = chunk[:end]
        if end < len(chunk):
            pending.append(chunk[end:])

        # "Streams must be decoded using the UTF-8 decode algorithm": invalid bytes become
        # U+FFFD, never an error.
        text = raw.decode("utf-8", "replace")
        if self._at_start:
            self._at_start = False
            # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
            if text[0] == "\ufeff":
                text = text[1:]
        # "The stream must then be parsed by reading everything line by line, with a U+000D
        # CARRIAGE RETURN U+000A LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF)
        # character not preceded by a U+000D CARRIAGE RETURN (CR) character, and a single U+000D
        # CARRIAGE RETURN (CR) character not followed by a U+000A LINE FEED (LF) character being
        # the ways in which a line can end."
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")

        flat: list[str | None] = _SPLIT(text)
        datas: list[str] = []
        types: list[str] = []
        ids: list[str] = []
        start = 0
        if self._parts or self._type_buf:
            # An event is in progress: finish it line by line, then try the bulk path.
            start = self._lines(_matches(flat, 0), True, datas, types, ids)
        if 5 * start + 1 < len(flat):
            columns = self._bulk(flat, start)
            if columns is None:
                self._lines(_matches(flat, start), False, datas, types, ids)
            elif datas:
                datas += columns[0]
                types += columns[1]
                ids += columns[2]
            else:
                return _build(*columns, len(columns[0]))
        if not datas:
            return []
        return _build(datas, types, ids, len(datas))

    def _bulk(
        self, flat: list[str | None], start: int
    ) -> tuple[list[str], list[str], list[str]] | None:
        """The (data, type, id) columns of the matches from the `start`-th on, if they all are
        whole events of shape A.

        Only valid with empty data and event type buffers (each A event starts from them and
        leaves them empty). Returns None, having changed nothing, when the fast path does not
        apply.
        """
        if any(flat[4 + 5 * start :: 5]):
            return None
        ids: list[str] = flat[1 + 5 * start :: 5]  # type: ignore[assignment]
        if all(ids):  # every event has its own id line
            if "\x00" in "".join(ids):
                return None
        elif not any(ids):  # none has: they all carry the last event ID buffer
            ids = [self._id_buf] * len(ids)
        else:
            return None
        # Each event dispatches, so the last event ID string is set to the buffer each time.
        self._id_buf = self.last_event_id = ids[-1]
        types: list[str] = flat[2 + 5 * start :: 5]  # type: ignore[assignment]
        if not all(types):
            types = [t or "message" for t in types]
        datas: list[str] = flat[3 + 5 * start :: 5]  # type: ignore[assignment]
        return datas, types, ids

    def _lines(
        self,
        matches: Iterable[_Match],
        until_dispatch: bool,
        datas: list[str],
        types: list[str],
        ids: list[str],
    ) -> int:
        """Apply the §9.2.6 line rules to `matches`; dispatched events go to the lists.

        With `until_dispatch`, stop after the first blank line. Returns how many matches were
        processed.
        """
        parts = self._parts
        type_buf = self._type_buf
        id_buf = self._id_buf
        last_id = self.last_event_id
        index = 0
        # "Lines must be processed, in the order they are received, as follows:"
        for id_value, event_type, data, other, _ in matches:
            index += 1
            if other:
                if other.startswith("data: "):
                    # B: "data" lines, each: "Append the field value to the data buffer, then
                    # append a single U+000A LINE FEED (LF) character to the data buffer."
                    parts.append("\n".join(other[6:-1].split("\ndata: ")))
                    continue
                line = other[:-1]
                if not line:
                    pass  # a blank line: dispatch, below
                elif line[0] == ":":
                    # "If the line starts with a U+003A COLON character (:)": "Ignore the line."
                    continue
                else:
                    # "If the line contains a U+003A COLON character (:)": "Collect the
                    # characters on the line before the first U+003A COLON character (:), and
                    # let field be that string." "Collect the characters on the line after the
                    # first U+003A COLON character (:), and let value be that string."
                    # "Otherwise, the string is not empty but does not contain a U+003A COLON
                    # character (:)": "using the whole line as the field name, and the empty
                    # string as the field value." (partition gives exactly that)
                    field, _, value = line.partition(":")
                    if value[:1] == " ":
                        # "If value starts with a U+0020 SPACE character, remove it from value."
                        value = value[1:]
                    # "Field names must be compared literally, with no case folding performed."
                    if field == "data":
                        # "If the field name is "data"": "Append the field value to the data
                        # buffer, then append a single U+000A LINE FEED (LF) character to the
                        # data buffer."
                        parts.append(value)
                    elif field == "event":
                        # "If the field name is "event"": "Set the event type buffer to the field
                        # value."
                        type_buf = value
                    elif field == "id":
                        # "If the field name is "id"": "If the field value does not contain
                        # U+0000 NULL, then set the last event ID buffer to the field value.
                        # Otherwise, ignore the field."
                        if "\x00" not in value:
                            id_buf = value
                    elif field == "retry" and value.isdigit() and value.isascii():
                        # "If the field name is "retry"": "If the field value consists of only
                        # ASCII digits, then interpret the field value as an integer in base ten,
                        # and set the event stream's reconnection time to that integer.
                        # Otherwise, ignore the field."
                        retry = _retry_value(value)
                        if retry is not None:
                            self.retry = retry
                    # "Otherwise": "The field is ignored."
                    continue
            else:
                # A: the field lines of one event, then its blank line.
                if id_value and "\x00" not in id_value:
                    id_buf = id_value
                if not parts and not type_buf:
                    # From empty buffers the data buffer is just `data` + LF, which dispatch
                    # (below) would join and strip again: dispatch directly.
                    last_id = id_buf
                    datas.append(data or "")  # (data is a str in an A match)
                    types.append(event_type or "message")
                    ids.append(id_buf)
                    continue  # (never reached while finishing an event: its buffers are not empty)
                if event_type:
                    type_buf = event_type
                parts.append(data or "")
            # "If the line is empty (a blank line)": "Dispatch the event", as follows.
            # Step 1: "Set the last event ID string of the event source to the value of the last
            # event ID buffer. The buffer does not get reset".
            last_id = id_buf
            if parts:
                # Step 3: "If the data buffer's last character is a U+000A LINE FEED (LF)
                # character, then remove the last character from the data buffer." It always is:
                # the buffer is its pieces each followed by LF, so this is joining them with LF.
                datas.append("\n".join(parts))
                # Steps 5-6: the type is "message" unless "the event type buffer has a value
                # other than the empty string"; lastEventId is the last event ID string.
                types.append(type_buf or "message")
                ids.append(id_buf)
                # Step 7: "Set the data buffer and the event type buffer to the empty string."
                parts.clear()
            # Step 2: "If the data buffer is an empty string, set the data buffer and the event
            # type buffer to the empty string and return."
            type_buf = ""
            if until_dispatch:
                break
        self._type_buf = type_buf
        self._id_buf = id_buf
        self.last_event_id = last_id
        return index


# --------------------------------------------------------------------------------------------
# Choosing the implementation
# --------------------------------------------------------------------------------------------

#: The pure-Python implementation, whichever one is active: the reference the C one is tested
#: against.
PyDecoder: Final = Decoder
py_encode: Final = encode
py_comment: Final = comment


def _load_c() -> ModuleType:
    """The C implementation, set up for this module; ImportError if it was not built.

    It creates instances of this module's :class:`Event` and hands the cases it does not handle
    itself (subclasses of str and int, invalid events, huge retry values) to the functions here.
    """
    from ssehub import _wire_c

    _wire_c._setup(Event, py_encode, py_comment, _retry_value)
    return _wire_c


#: Which implementation :class:`Decoder`, :func:`encode` and :func:`comment` are.
IMPLEMENTATION: Literal["c", "python"] = "python"

# (Type checkers see the Python implementation, whose interface the C one has exactly.)
if not TYPE_CHECKING and not os.environ.get("SSEHUB_PURE_PYTHON"):
    try:
        _c = _load_c()
    except ImportError:
        pass
    else:
        Decoder = _c.Decoder
        encode = _c.encode
        comment = _c.comment
        IMPLEMENTATION = "c"
