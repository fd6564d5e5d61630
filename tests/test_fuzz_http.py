"""Raw-HTTP fuzzing of a real `ssehub serve` process: whatever bytes a peer sends, the hub answers
what it can read with a 2xx or 4xx, never closes on a request without answering it, keeps
serving, and does not grow.

Hypothesis generates inputs at three levels, each sent over one short-lived loopback connection
(plain `socket`, so malformed bytes go out as generated, sometimes cut into several writes to
reach the server's partial-read paths), after which the client half-closes (SHUT_WR: "that is
all", as `nc -N` or a shell pipe does) and reads until the hub closes:

- structured requests: random methods, paths (`/events`, `/publish`, `/healthz`, `/metrics`,
  `/`, console files, random), query strings (topics ASCII or not, `%ff`-style escapes, huge
  values), header sets (Host present, absent or foreign; Content-Length lies and duplicates;
  `Transfer-Encoding: chunked` with random chunks, extensions, trailers, bad sizes;
  Content-Encoding, Authorization, Origin, Expect: 100-continue, Last-Event-ID huge or odd,
  Connection, Upgrade, random names and values) and bodies (forms, JSON with deep nesting, NaN,
  huge numbers, lone surrogates, random bytes, fillers around the size limits), one in four of
  them sloppy (odd versions, separators, line ends, folding), and exactly the plain form
  publishes the C fast path takes;
- pipelines of one to four such requests on one connection, some ending in garbage or in half
  a request;
- pure random bytes, bare or after a request line or a whole request.

Three campaigns, each against its own hub: structured and pipelined requests with the default
limits; the same with `--max-header-bytes 1024 --max-body-bytes 4096` (413 and 431 at every
step) and `--cors-origin`; random bytes. For every example:

1. no answer is a 5xx;
2. no silent close, no dropped request: llhttp (the hub's own parser, with the hub's leniency)
   reads the same bytes as an oracle, and the hub must answer every complete request, in
   order, up to the first that ends the connection (Connection: close, HTTP/1.0, or one it
   cannot parse: 400), and close only after an answer saying `Connection: close`, or at our EOF
   once every complete request is answered (at EOF in the middle of a request there is nothing
   to answer). A size limit (413, 431) may end the connection earlier, with such an answer; a
   `200 text/event-stream` answer is a stream, which ends the check. Answers must be
   well-formed HTTP/1.1 with a Content-Length (HEAD aside), JSON answers JSON, errors
   `{"error": ...}`, a 100 Continue only for a request that asked and never ahead of an
   earlier request's answer, and nothing may follow an answer that said close;
3. the process keeps serving: `GET /healthz` answers 200 after every example;

and after the run:

4. flat memory: the server's RSS (VmRSS) grows by less than `RSS_GROWTH_LIMIT` between the end
   of a warm-up batch (the first `WARM_UP` examples) and the end of the run;
5. the hub logged nothing (no traceback, no internal error); its `/metrics` count no 5xx and,
   once our sockets are closed, no open stream and no connection but the one asking.

The hubs run with `--history 4 --history-ttl 1`: the hub keeps published events for a second,
so that what the fuzzer publishes (to thousands of random topics) has a steady state, and memory
that grows over a run is a leak, not history.

The fuzzer found four bugs in the hub, all fixed since; each is pinned by a regression test at
the end of this file (a 500 for a path too long for the file system, answers dropped at the
client's EOF, a pipelined 100 Continue sent ahead of earlier answers, refused topic texts kept
in a cache), and the campaigns tolerate none of them.

Longer campaigns: `SSEHUB_FUZZ_EXAMPLES` sets the examples per campaign (300 by default, about
10 s for the whole file; 20000 take about 3.5 minutes per campaign). The pytest timeout scales
with it; `-s` prints each campaign's tally of answers and its RSS before and after:

    SSEHUB_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/test_fuzz_http.py -q -s \\
        --hypothesis-seed=$RANDOM

A failure prints the falsifying input (shrunk), what the hub sent back, the oracle's reading,
the hub's stderr, and a `@reproduce_failure` blob.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SSEHUB_FUZZ_EXAMPLES", "300"))
WARM_UP = max(1, min(60, EXAMPLES // 5))
# What the hub may legitimately hold at the end that it did not hold after the warm-up: history
# kept one second (the last second's events: a few MB at worst), caches of bounded size (the
# host and peer-address caches, `_topic_lines`), and what glibc keeps of freed blocks, bounded by
# the largest live set (a body just under the 1 MiB limit, its decoded copies, a few at once).
# Measured (while the hub still kept refused topic texts): +6 MiB over 20000 structured
# examples, flat over the last 10000, up to 5 MiB of it that cache. A leak of a
# kilobyte per example (a request's head, a connection's state) passes this bound in a campaign
# of 20000; the default run (300 examples) catches only gross leaks (a body per request).
RSS_GROWTH_LIMIT = 20 * 1024 * 1024
READ_TIMEOUT = 10.0  # after our EOF the hub answers what is owed and closes at once
MAX_BODY = 1024 * 1024  # the hub's defaults
MAX_HEADERS = 16 * 1024
SMALL_BODY = 4096  # the limits of the hub in test_fuzz_with_small_limits_and_cors
SMALL_HEADERS = 1024
HUB_ARGS = ("--history", "4", "--history-ttl", "1")

pytestmark = pytest.mark.timeout(120 + EXAMPLES // 5)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
    print_blob=True,
)


# -- the hub under test ------------------------------------------------------------------------


@dataclass
class FuzzHub:
    """`ssehub serve` in its own process, its stderr kept in a file for the report."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def complaints(self) -> list[str]:
        """What the hub wrote to stderr besides its info records, one log record (its
        line and the traceback that follows it) per item."""
        records: list[str] = []
        for line in self.stderr().splitlines():
            if _INFO_RECORD.match(line) or not line.strip():  # start-up and access lines
                continue
            if _LOG_RECORD.match(line) or not records:
                records.append(line)
            else:
                records[-1] += "\n" + line
        return records

    def rss(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
        assert match, status
        return int(match.group(1)) * 1024


_LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
_INFO_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO ")


@pytest.fixture
def start_fuzz_hub(tmp_path: Path) -> Iterator[Callable[..., FuzzHub]]:
    """Factory: `start_fuzz_hub(*args)`, a hub on an ephemeral loopback port, stopped after."""
    started: list[FuzzHub] = []

    def start(*args: str) -> FuzzHub:
        log = tmp_path / f"hub{len(started)}.stderr"
        argv = [sys.executable, "-m", "ssehub", "serve", "--port", "0", *args]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=sink,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        hub = FuzzHub(process, 0, log)
        started.append(hub)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+)/", hub.stderr())
            if match:
                hub.port = int(match.group(1))
                return hub
            assert process.poll() is None, f"the hub exited:\n{hub.stderr()}"
            time.sleep(0.02)
        raise AssertionError(f"the hub did not start:\n{hub.stderr()}")

    yield start
    for hub in started:
        if hub.process.poll() is None:
            hub.process.kill()
            hub.process.wait(timeout=10)


# -- talking to it -----------------------------------------------------------------------------


def exchange(port: int, data: bytes, splits: tuple[int, ...] = ()) -> tuple[bytes, str]:
    """Send `data` (cut at `splits`, a moment apart), half-close, read until the hub closes.

    Returns what the hub sent and how the connection ended: "eof", "reset" (after the hub
    closed with our bytes unread, which the kernel answers with RST), or "timeout".
    """
    pieces = [data[a:b] for a, b in zip((0, *splits), (*splits, len(data)), strict=True)]
    ended = "eof"
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for index, piece in enumerate(pieces):
                if index:
                    time.sleep(0.002)  # a read of its own on the hub's side
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # EPIPE, ECONNRESET, ENOTCONN: the hub closed before taking it all
            ended = "reset"  # read what it said before
        deadline = time.monotonic() + READ_TIMEOUT
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                ended = "reset"
                break
            except TimeoutError:
                ended = "timeout"
                break
            if not chunk:
                break
            received += chunk
            if time.monotonic() > deadline:
                ended = "timeout"
                break
    return bytes(received), ended


def healthz(port: int) -> bytes:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        return exchange(port, request)[0]
    except OSError as error:  # refused: the process is gone
        return repr(error).encode()


class Oracle:
    """What llhttp, the hub's parser, with the hub's leniency, reads in the same bytes."""

    def __init__(self, data: bytes) -> None:
        self.begun = 0
        self.methods: list[bytes] = []  # of the requests whose head was read, in order
        self.expects: list[bool] = []  # whether each request begun asks for 100 Continue
        self._expect: list[bytes] = []
        self.keep_alive: list[bool] = []  # of the complete requests, in order
        self.error = ""
        self._parser = httptools.HttpRequestParser(self)
        self._parser.set_dangerous_leniencies(lenient_data_after_close=True)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = "upgrade"
        except httptools.HttpParserError as error:
            self.error = str(error) or type(error).__name__

    def on_message_begin(self) -> None:
        self.begun += 1
        self.expects.append(False)
        self._expect = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"expect":
            self._expect.append(value)

    def on_headers_complete(self) -> None:
        self.methods.append(self._parser.get_method())
        # As the hub reads it: repeated headers are one comma-separated value.
        self.expects[-1] = b", ".join(self._expect).lower() == b"100-continue"

    def on_message_complete(self) -> None:
        self.keep_alive.append(self._parser.should_keep_alive())

    def owed(self) -> tuple[int, bool]:
        """How many answers the hub owes, and whether the last of them ends the connection."""
        count = 0
        for keep_alive in self.keep_alive:
            count += 1
            if not keep_alive:
                return count, True
        if self.error:
            return count + 1, True
        return count, False


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""

    @property
    def stream(self) -> bool:
        return (
            self.status == 200
            and self.headers.get("content-type", "").startswith("text/event-stream")
            and "content-length" not in self.headers
        )

    @property
    def closes(self) -> bool:
        return self.headers.get("connection", "").lower() == "close"


@dataclass
class Reading:
    answers: list[Answer] = field(default_factory=list)  # final answers, in order
    interim: list[tuple[int, int]] = field(default_factory=list)  # 1xx, and finals before it
    problem: str = ""  # bytes that are not a well-formed answer


_STATUS_LINE = re.compile(r"HTTP/1\.1 ([1-5]\d\d) [ -~]*")


def read_answers(raw: bytes, methods: list[bytes]) -> Reading:
    reading = Reading()
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\r\n\r\n", pos)
        if end < 0:
            reading.problem = f"an incomplete answer head at byte {pos}"
            return reading
        lines = raw[pos:end].decode("latin-1").split("\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            reading.problem = f"not a status line at byte {pos}: {lines[0][:80]!r}"
            return reading
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(": ")
            if not colon or not re.fullmatch(r"[A-Za-z0-9-]+", name):
                reading.problem = f"a malformed header line {line[:80]!r}"
                return reading
            headers[name.lower()] = value
        pos = end + 4
        answer = Answer(int(match.group(1)), headers)
        if answer.status < 200:
            reading.interim.append((answer.status, len(reading.answers)))
            continue
        reading.answers.append(answer)
        if answer.stream:
            return reading  # the rest is the stream's body, until our EOF ended it
        length = headers.get("content-length", "")
        if not length.isdigit():
            reading.problem = f"an answer without Content-Length: {headers}"
            return reading
        index = len(reading.answers) - 1
        rest = raw[pos:]
        head_only = index < len(methods) and methods[index] == b"HEAD"
        if head_only and (not rest or rest.startswith(b"HTTP/1.1 ")):
            continue  # an answer to HEAD has no body (a refusal to read one may have one)
        answer.body = raw[pos : pos + int(length)]
        if len(answer.body) < int(length):
            reading.problem = f"a body cut short: {len(answer.body)} of {length} bytes"
            return reading
        pos += int(length)
        if answer.closes and pos < len(raw):
            reading.problem = f"{len(raw) - pos} bytes after an answer with Connection: close"
            return reading
    return reading


def show(data: bytes, limit: int = 600) -> str:
    text = repr(data[:limit])
    return text + (f"... ({len(data)} bytes)" if len(data) > limit else "")


def check_exchange(hub: FuzzHub, data: bytes, splits: tuple[int, ...] = ()) -> list[str]:
    """Send one input and check the hub's answers, then that it still serves; what it got."""
    oracle = Oracle(data)
    raw, ended = exchange(hub.port, data, splits)
    reading = read_answers(raw, oracle.methods)
    answers = reading.answers
    owed, owed_closes = oracle.owed()

    def context() -> str:
        return (
            f"\nsent: {show(data)}\nsplits: {splits}\nreceived: {show(raw, 1500)}"
            f"\nended: {ended}\nllhttp: {oracle.begun} begun, keep-alive of the complete ones: "
            f"{oracle.keep_alive}, error: {oracle.error!r}\nhub stderr:\n{hub.stderr()[-3000:]}"
        )

    outcomes = [f"{a.status}" + (" stream" if a.stream else "") for a in answers]
    outcomes += [f"{status} interim" for status, _ in reading.interim] + [f"ended: {ended}"]
    for answer in answers:
        assert answer.status < 500, "a 5xx answer" + context()
    for status, position in reading.interim:
        # A 100 Continue read before final answer k belongs to request k, which must ask for it:
        # one for a later request would go out ahead of the earlier requests' answers.
        assert status == 100, "an interim answer other than 100 Continue" + context()
        asked = position < len(oracle.expects) and oracle.expects[position]
        assert asked, "a 100 Continue no request asked for, or ahead of an answer" + context()
    for answer in answers:
        if answer.body and answer.headers.get("content-type") == "application/json":
            try:
                document = json.loads(answer.body)
            except ValueError:
                raise AssertionError("a JSON answer that is not JSON" + context()) from None
            if answer.status >= 400:
                assert "error" in document, "an error answer without 'error'" + context()

    assert ended != "timeout", "the hub neither closed nor finished answering" + context()
    assert not reading.problem, reading.problem + context()
    if owed:
        assert answers, "a silent close: a complete request, no answer" + context()
    if answers and answers[-1].stream:
        assert len(answers) <= owed, "a stream for a request never completed" + context()
    elif any(answer.status in (413, 431) for answer in answers):
        limit = next(a for a in answers if a.status in (413, 431))
        assert limit is answers[-1] and limit.closes, "a limit that did not close" + context()
        assert len(answers) <= owed + 1, "more answers than requests" + context()
    else:
        assert len(answers) == owed, f"{len(answers)} answers for {owed} requests" + context()
        if answers:
            assert answers[-1].closes == owed_closes, "closed (or not) unannounced" + context()
    health = healthz(hub.port)
    assert health.startswith(b"HTTP/1.1 200 "), f"/healthz: {show(health)}" + context()
    assert hub.process.poll() is None, "the hub died" + context()
    return outcomes


def finish_campaign(hub: FuzzHub, baseline: int | None) -> None:
    """The checks after a run: memory, the hub's log, its counters."""
    final = hub.rss()
    complaints = hub.complaints()
    assert not complaints, "the hub logged:\n" + "\n".join(complaints[:200])
    metrics = b""
    for _ in range(100):  # the hub notices our closed sockets a moment later
        metrics = exchange(
            hub.port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )[0]
        streams = re.search(rb"^ssehub_open_streams (\d+)$", metrics, re.MULTILINE)
        connections = re.search(rb"^ssehub_connections (\d+)$", metrics, re.MULTILINE)
        assert streams and connections, metrics
        if int(streams.group(1)) == 0 and int(connections.group(1)) <= 1:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"streams or connections left open:\n{metrics.decode()}")
    five = re.findall(rb'^ssehub_requests_rejected_total\{status="5\d\d"\} (\d+)', metrics, re.M)
    assert sum(map(int, five)) == 0, metrics.decode()
    if baseline is not None:
        growth = final - baseline
        print(
            f"hub RSS {baseline / 2**20:.1f} MiB after warm-up, {final / 2**20:.1f} MiB at end; "
            f"allowed growth: {RSS_GROWTH_LIMIT / 2**20:.0f} MiB"
        )
        assert growth < RSS_GROWTH_LIMIT, (
            f"RSS grew by {growth / 2**20:.1f} MiB over {EXAMPLES - WARM_UP} examples"
        )


class Campaign:
    """Runs the check for each example; takes the RSS baseline at the end of the warm-up."""

    def __init__(self, hub: FuzzHub) -> None:
        self.hub = hub
        self.examples = 0
        self.baseline: int | None = None
        self.outcomes: Counter[str] = Counter()

    def __call__(self, data: bytes, splits: tuple[int, ...] = ()) -> None:
        self.examples += 1
        self.outcomes.update(check_exchange(self.hub, data, splits))
        if self.examples == WARM_UP:
            self.baseline = self.hub.rss()

    def finish(self) -> None:
        print(f"{self.examples} examples; answers:", dict(sorted(self.outcomes.items())))
        finish_campaign(self.hub, self.baseline)


# -- what to send ------------------------------------------------------------------------------

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(TCHARS, min_size=1, max_size=12)
# Text of any kind, lone surrogates too (they become invalid UTF-8 on the wire).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=16) | st.sampled_from(
    ["\ud800", "a\udfffb", "\x00", "\r\n", "\u2028", "\x85", "\ufeff", "é", "日本"]
)


def huge(char: str, low: int = 1000, high: int = 20_000) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: char * n)


valid_topics = st.sampled_from(["t", "news", "a.b", "café.日本", "x" * 256, "orders/7", "~"])
topic_names = st.one_of(
    valid_topics,
    valid_topics,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=10),
    st.sampled_from(["", " ", "a b", "x" * 257, "a\u2028b", "a\u200bb", "\ud800", "a\x00"]),
    any_text,
    huge("t"),
)


def wire_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@st.composite
def escaped(draw: st.DrawFn, values: st.SearchStrategy[str]) -> bytes:
    """A value for a query string or a form: percent-encoded, plus-encoded, raw, or broken."""
    value = wire_text(draw(values))
    how = draw(st.sampled_from(["quote"] * 8 + ["plus", "plus", "raw", "escapes"]))
    if how == "quote":
        return quote(value, safe="").encode()
    if how == "plus":
        return quote_plus(value).encode()
    if how == "raw":
        return value
    escapes = ["%ff", "%ED%A0%80", "%", "%z", "%zz", "%00", "%0d%0a", "%E2%80%A8", "%C0%80", "%2"]
    parts = draw(st.lists(st.sampled_from(escapes) | st.just(quote(value, safe="")), max_size=4))
    return "".join(parts).encode()


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    if not rarely(draw, 2):  # what a subscriber sends: topics, maybe where to resume
        topics = draw(st.lists(valid_topics, min_size=1, max_size=3))
        query = "&".join(f"topic={quote(topic, safe='')}" for topic in topics)
        if rarely(draw, 4):
            query += "&last_event_id=" + draw(st.sampled_from(["0", "1", "x", "9" * 19]))
        return b"?" + query.encode()
    keys = st.sampled_from(["topic"] * 4 + ["last_event_id", "access_token", "topic[]", ""])
    pairs = draw(st.lists(st.tuples(keys | tokens, escaped(topic_names)), max_size=4))
    joined = b"&".join(key.encode() + b"=" + value for key, value in pairs)
    return draw(st.sampled_from([b"?", b"?", b"?", b"", b"??", b"?&"])) + joined


PATHS = ["/events"] * 6 + ["/publish"] * 6 + ["/healthz", "/metrics", "/", "/ssehub.js"]
PATHS += ["/index.html", "/events/", "//publish", "/../../etc/passwd", "/%2e%2e/%2e%2e/", "/nope"]
PATHS += ["/publish/../healthz", "http://127.0.0.1/publish", "/%00", "/a%2Fb"]
ODD_PATHS = ["*", "", "/\x7f", "/a b", "/\xc3\xa9", "http://evil.example/events", "//"]
METHODS = ["GET"] * 6 + ["POST"] * 6 + ["HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"]
ODD_METHODS = ["TRACE", "CONNECT", "PRI", "get", "M-SEARCH", "FOO", ""]
VERSIONS = [b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"http/1.1"]
VERSIONS += [b"HTTP/11", b""]
HOSTS: list[bytes | None] = [b"127.0.0.1"] * 8
HOSTS += [b"localhost", b"LOCALHOST:8000", b"[::1]:80"]
HOSTS += [b"127.0.0.2", b"evil.example", b"", b"127.0.0.1:", b"127.0.0.1, evil.example", b"::1"]
HOSTS += [b"[::1", None, None]

HEADER_VALUES: dict[str, list[bytes]] = {
    "Content-Type": [
        b"application/x-www-form-urlencoded",
        b"application/json",
        b"application/json; charset=utf-8",
        b"APPLICATION/X-WWW-FORM-URLENCODED;charset=utf-8",
        b"text/plain",
        b"multipart/form-data; boundary=x",
        b"",
    ],
    "Content-Encoding": [b"identity", b"gzip", b"br", b"", b"IDENTITY", b"gzip, identity"],
    "Authorization": [b"Bearer x", b"Basic dXNlcjpwYXNz", b"Bearer e30.e30.", b"", b"Bearer"],
    "Origin": [b"http://127.0.0.1:8000", b"http://localhost", b"null", b"http://evil.example"],
    "Expect": [b"100-continue", b"100-Continue", b"200-ok", b""],
    "Last-Event-ID": [b"0", b"1", b"9" * 30, b"-1", b"abc", b"\xff\xfe", b"", b"1" * 300],
    "Connection": [b"keep-alive", b"close", b"Upgrade", b"keep-alive, close", b"foo", b""],
    "Upgrade": [b"websocket", b"h2c"],
    "Cookie": [b"mercureAuthorization=x", b"a=b; c"],
    "Transfer-Encoding": [b"chunked", b"gzip", b"identity", b"chunked, gzip", b"gzip, chunked"],
    "Content-Length": [b"0", b"-1", b"1e3", b"9" * 30, b"+5", b"5, 5", b""],
    "Sec-Fetch-Site": [b"cross-site", b"same-origin"],
    "Accept": [b"text/event-stream", b"*/*"],
    "Access-Control-Request-Method": [b"POST", b"GET"],
    "Access-Control-Request-Headers": [b"last-event-id", b"content-type, authorization"],
    "X-Forwarded-For": [b"203.0.113.9"],
}


printable = st.binary(max_size=30).map(lambda value: bytes(b for b in value if 0x20 <= b < 0x7F))


FRAMING = ("Content-Length", "Transfer-Encoding", "Upgrade")  # more of these: in sloppy requests


@st.composite
def extra_headers(draw: st.DrawFn, sloppy: bool) -> tuple[bytes, bytes]:
    kind = draw(st.sampled_from(["known"] * 12 + ["random", "huge", "odd"]))
    if kind == "random":
        return draw(tokens).encode(), draw(st.binary(max_size=30) if sloppy else printable)
    names = sorted(HEADER_VALUES) if sloppy else sorted(set(HEADER_VALUES) - set(FRAMING))
    name = draw(st.sampled_from(names))
    if kind == "huge":
        return name.encode(), draw(huge("v", 100, MAX_HEADERS + 100)).encode()
    if kind == "odd":
        return name.encode(), draw(st.binary(max_size=30) if sloppy else printable)
    return name.encode(), draw(st.sampled_from(HEADER_VALUES[name]))


retry_values = st.sampled_from(["3000", "0", "-1", "2147483647", "2147483648", "1e3", "٣", ""])
form_fields = st.sampled_from(["topic"] * 3 + ["data"] * 2 + ["event", "retry", "private", "id"])


@st.composite
def form_bodies(draw: st.DrawFn) -> bytes:
    pairs = []
    for name in draw(st.lists(form_fields | tokens, max_size=6)):
        if name == "topic":
            value = draw(escaped(topic_names))
        elif name == "retry":
            value = draw(escaped(retry_values | huge("9", 11, 5000)))
        else:
            value = draw(escaped(any_text | huge("d", 100, 5000)))
        pairs.append(name.encode() + draw(st.sampled_from([b"="] * 6 + [b""])) + value)
    return draw(st.sampled_from([b"&"] * 6 + [b"&&", b";"])).join(pairs)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
publications = st.fixed_dictionaries(
    {"topic": topic_names | st.lists(topic_names, max_size=4) | json_values},
    optional={
        "data": json_values,
        "event": any_text | json_values,
        "retry": st.integers(-5, 2**32) | retry_values | json_values,
        "private": st.booleans() | json_values,
        "id": any_text,
    },
)
JSON_SPECIALS = [
    b'{"topic": "t", "data": NaN}',
    b'{"topic": "t", "data": -Infinity}',
    b'{"topic": "\\ud800", "data": "x"}',
    b'{"topic": "t", "data": "\\ud800"}',
    b'{"topic": "t", "data": "x"',
    b'\xef\xbb\xbf{"topic": "t"}',
    b"[]",
    b"{}",
    b"[{}, 1]",
    b'{"topic": "t", "topic": "u"}',
]


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["publication"] * 4 + ["batch", "value", "special", "deep"]))
    if kind == "special":
        return draw(st.sampled_from(JSON_SPECIALS))
    if kind == "deep":
        depth = draw(st.integers(100, 100_000))
        closed = draw(st.booleans())
        return b"[" * depth + (b"]" * depth if closed else b"")
    if kind == "value":
        value = draw(json_values)
    elif kind == "batch":
        value = draw(st.lists(publications, min_size=1, max_size=4))
    else:
        value = draw(publications)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    if draw(st.integers(0, 9)) == 0:  # a number no parser should take whole
        text = text.replace("0", "9" * draw(st.integers(4000, 6000)), 1)
    return wire_text(text)


@st.composite
def bodies(draw: st.DrawFn, max_body: int) -> tuple[bytes, bytes | None]:
    """A body and the Content-Type that usually goes with it."""
    kind = draw(st.sampled_from(["form"] * 4 + ["json"] * 3 + ["empty", "bytes", "filler"]))
    if kind == "form":
        return draw(form_bodies()), draw(st.sampled_from([None, HEADER_VALUES["Content-Type"][0]]))
    if kind == "json":
        return draw(json_bodies()), b"application/json"
    if kind == "empty":
        return b"", None
    if kind == "bytes":
        return draw(st.binary(max_size=512)), None
    size = draw(st.sampled_from([max_body - 1, max_body, max_body + 1, 100, 50_000]))
    return b"topic=t&data=" + b"x" * max(0, size - 13), None


@st.composite
def chunked(draw: st.DrawFn, body: bytes) -> bytes:
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, max(1, len(rest))))
        chunk, rest = rest[:size], rest[size:]
        head = b"%x" % len(chunk)
        form = draw(st.sampled_from(["plain"] * 16 + ["upper", "zeros", "ext", "wrong", "bad"]))
        if form == "upper":
            head = head.upper()
        elif form == "zeros":
            head = b"000" + head
        elif form == "ext":
            head += b";name=value"
        elif form == "wrong":
            head = b"%x" % (len(chunk) + draw(st.sampled_from([-1, 1, 100])))
        elif form == "bad":
            head = draw(st.sampled_from([b"", b"-1", b"zz", b"f" * 20, b"1 2"]))
        out += head + b"\r\n" + chunk + b"\r\n"
    trailers = draw(st.sampled_from([b"", b"", b"", b"X-Trailer: 1\r\n", b"Content-Length: 3\r\n"]))
    end = draw(st.sampled_from([b"0\r\n" + trailers + b"\r\n"] * 6 + [b"0\r\n", b"", b"0\n\n"]))
    return out + end


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (and not in the shrunk, simplest case)."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


@st.composite
def requests(draw: st.DrawFn, max_body: int = MAX_BODY) -> bytes:
    """One HTTP request: mostly well-formed enough to reach the API, a sloppy one in four."""
    sloppy = rarely(draw, 4)
    if rarely(draw, 12):
        method = draw(tokens | st.sampled_from(ODD_METHODS)).encode()
    else:
        method = draw(st.sampled_from(METHODS)).encode()
    if rarely(draw, 8):
        path = draw(
            st.text(TCHARS + "/%?=", max_size=20).map("/".__add__) | st.sampled_from(ODD_PATHS)
        )
    else:
        path = draw(st.sampled_from(PATHS))
    target = path.encode("utf-8") + draw(query_strings())
    version, space, eol, separator = b"HTTP/1.1", b" ", b"\r\n", b": "
    if sloppy:
        version = draw(st.sampled_from(VERSIONS))
        space = draw(st.sampled_from([b" "] * 4 + [b"  ", b"\t"]))
        eol = draw(st.sampled_from([b"\r\n"] * 4 + [b"\n", b"\r"]))
        separator = draw(st.sampled_from([b": "] * 4 + [b":", b" : ", b":\t", b":  "]))
    elif rarely(draw, 8):
        version = b"HTTP/1.0"
    line = space.join(part for part in (method, target, version) if part) + eol
    headers: list[tuple[bytes, bytes]] = []
    host = draw(
        st.sampled_from(HOSTS) | st.binary(max_size=12) if sloppy else st.sampled_from(HOSTS)
    )
    if host is not None:
        headers.append((b"Host", host))
    body, content_type = b"", None
    if method not in (b"GET", b"HEAD") or rarely(draw, 10):
        body, content_type = draw(bodies(max_body))
    if content_type is not None and not rarely(draw, 5):
        headers.append((b"Content-Type", content_type))
    framing = "length"
    if rarely(draw, 3):
        framing = draw(st.sampled_from(["chunked"] * 4 + ["lie", "none", "both"]))
    if framing in ("length", "both") and (body or draw(st.booleans())):
        headers.append((b"Content-Length", b"%d" % len(body)))
    if framing == "lie":
        lie = draw(st.integers(0, len(body) + 64) | st.sampled_from([max_body + 1, 10**12]))
        headers.append((b"Content-Length", b"%d" % lie))
    if framing in ("chunked", "both"):
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = draw(chunked(body))
    for header in draw(st.lists(extra_headers(sloppy), max_size=4)):
        headers.insert(draw(st.integers(0, len(headers))), header)
    head = b"".join(name + separator + value + eol for name, value in headers)
    if sloppy and rarely(draw, 5):
        head += b" folded\r\n"  # obs-fold, which llhttp refuses
    return line + head + eol + body


@st.composite
def plain_publishes(draw: st.DrawFn) -> bytes:
    """Exactly what the C fast path takes (or declines at the last moment): a form publish."""
    fields = [b"topic=" + draw(escaped(topic_names))]
    if draw(st.booleans()):
        fields.append(b"data=" + draw(escaped(any_text)))
    if draw(st.booleans()):
        fields.append(b"event=" + draw(escaped(any_text)))
    if draw(st.booleans()):
        fields.append(b"retry=" + draw(retry_values).encode())
    body = b"&".join(draw(st.permutations(fields)))
    close = b"Connection: close\r\n" if draw(st.integers(0, 4)) == 0 else b""
    return b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
        close,
        len(body),
        body,
    )


@st.composite
def pipelines(draw: st.DrawFn, max_body: int = MAX_BODY) -> tuple[bytes, tuple[int, ...]]:
    """Requests back to back on one connection, maybe ending in garbage; and where to cut."""
    one = requests(max_body) | plain_publishes()
    parts = draw(st.lists(one, min_size=1, max_size=4))
    tail = draw(
        st.sampled_from([b""] * 6 + [b"\r\n", b"\x00", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
        | st.binary(max_size=64)
        | one.map(lambda request: request[: len(request) // 2])
    )
    data = b"".join(parts) + tail
    return data, draw(cuts(data))


def cuts(data: bytes) -> st.SearchStrategy[tuple[int, ...]]:
    """Where to split `data` into separate writes: mostly nowhere."""
    if len(data) < 2:
        return st.just(())
    points = st.lists(st.integers(1, len(data) - 1), max_size=3, unique=True)
    return st.one_of(st.just(()), st.just(()), points.map(lambda p: tuple(sorted(p))))


@st.composite
def random_inputs(draw: st.DrawFn) -> tuple[bytes, tuple[int, ...]]:
    kind = draw(st.sampled_from(["bytes", "after a request line", "lines", "after a request"]))
    noise = draw(st.binary(min_size=1, max_size=2048))
    if kind == "after a request line":
        noise = b"POST /publish HTTP/1.1\r\n" + noise
    elif kind == "lines":
        noise = b"\r\n".join(draw(st.lists(st.binary(max_size=40), min_size=1, max_size=8)))
    elif kind == "after a request":
        noise = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + noise
    return noise, draw(cuts(noise))


# -- the campaigns -----------------------------------------------------------------------------


def test_fuzz_structured_and_pipelined_requests(start_fuzz_hub: Callable[..., FuzzHub]) -> None:
    campaign = Campaign(start_fuzz_hub(*HUB_ARGS))

    @FUZZ_SETTINGS
    @given(pipelines())
    def fuzz(case: tuple[bytes, tuple[int, ...]]) -> None:
        campaign(*case)

    fuzz()
    campaign.finish()


def test_fuzz_with_small_limits_and_cors(start_fuzz_hub: Callable[..., FuzzHub]) -> None:
    """The same inputs against small header and body limits (413 and 431 at every step), on a
    hub that answers CORS for an origin the inputs send now and then, and logs every request
    (its access-log lines are info records, not complaints)."""
    hub = start_fuzz_hub(
        *HUB_ARGS,
        "--access-log",
        "--cors-origin",
        "http://localhost",
        "--max-header-bytes",
        str(SMALL_HEADERS),
        "--max-body-bytes",
        str(SMALL_BODY),
    )
    campaign = Campaign(hub)

    @FUZZ_SETTINGS
    @given(pipelines(max_body=SMALL_BODY))
    def fuzz(case: tuple[bytes, tuple[int, ...]]) -> None:
        campaign(*case)

    fuzz()
    campaign.finish()


def test_fuzz_random_bytes(start_fuzz_hub: Callable[..., FuzzHub]) -> None:
    campaign = Campaign(start_fuzz_hub(*HUB_ARGS))

    @FUZZ_SETTINGS
    @given(random_inputs())
    def fuzz(case: tuple[bytes, tuple[int, ...]]) -> None:
        campaign(*case)

    fuzz()
    campaign.finish()


def test_the_oracle_and_the_reader_agree_with_a_plain_exchange(
    start_fuzz_hub: Callable[..., FuzzHub],
) -> None:
    """The checker itself: two pipelined requests and garbage are two answers and a 400."""
    hub = start_fuzz_hub(*HUB_ARGS)
    data = (
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"
        b"\x00garbage\r\n\r\n"
    )
    oracle = Oracle(data)
    assert oracle.owed() == (3, True)
    raw, ended = exchange(hub.port, data)
    reading = read_answers(raw, oracle.methods)
    assert not reading.problem and ended == "eof"
    assert [a.status for a in reading.answers] == [200, 200, 400]
    assert reading.answers[1].body == b"" and reading.answers[2].closes
    check_exchange(hub, data)


# -- regression tests for the bugs the fuzzer found ---------------------------------------------


@pytest.mark.parametrize(
    "request_line",
    [b"GET /" + b"a" * 256 + b" HTTP/1.1", b"HEAD /" + b"a/" * 2100 + b" HTTP/1.1"],
    ids=["256-byte segment", "4201-byte path"],
)
def test_a_path_too_long_for_the_file_system_is_a_404(
    start_fuzz_hub: Callable[..., FuzzHub], request_line: bytes
) -> None:
    hub = start_fuzz_hub()
    raw, _ = exchange(hub.port, request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404 "), raw[:200]
    assert not hub.complaints(), hub.stderr()


def test_answers_owed_at_the_clients_eof_are_sent(
    start_fuzz_hub: Callable[..., FuzzHub],
) -> None:
    hub = start_fuzz_hub()
    request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(5):  # the drop was a race the hub lost 99 times in 100: repeat
        raw, ended = exchange(hub.port, request * 3)
        assert ended == "eof"
        assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3, raw[:200]


def test_a_pipelined_100_continue_never_precedes_earlier_answers(
    start_fuzz_hub: Callable[..., FuzzHub],
) -> None:
    hub = start_fuzz_hub()
    raw, _ = exchange(
        hub.port,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
        b"Content-Length: 14\r\n\r\ntopic=t&data=x",
    )
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n"), raw  # the GET's answer first
    continue_at = raw.find(b"HTTP/1.1 100 Continue\r\n")  # the hub may omit the 100
    assert continue_at == -1 or continue_at > raw.index(b'{"status": "ok"}'), raw
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2, raw


def test_refused_topics_are_not_kept(start_fuzz_hub: Callable[..., FuzzHub]) -> None:
    hub = start_fuzz_hub()
    request = b"GET /events?topic=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for index in range(100):  # warm-up
        exchange(hub.port, request % (b"%05d" % index + b"x" * 10_000))
    before = hub.rss()
    for index in range(1500):  # 15 MB of topics, each refused: over 256 characters
        raw, _ = exchange(hub.port, request % (b"%05d" % (1000 + index) + b"x" * 10_000))
        assert raw.startswith(b"HTTP/1.1 400 "), raw[:200]
    growth = hub.rss() - before
    assert growth < 5 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB"
