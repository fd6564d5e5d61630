"""Every code sample in README.md runs, as a user would run it.

`test_every_block_is_run_or_marked` reads every fenced block of the README and fails on one that
is neither run by a test here (`@runs("<heading> #<n>")`), nor data (a fence in
`support.readme.DATA_LANGUAGES`: text, toml, ini, nginx, http, json), nor preceded by
`<!-- not run: <why>; full version: examples/x.py -->` naming an example that
tests/test_examples.py runs. So a sample added, moved or broken fails `make test`.

How a block is run, so that it stays the text a user copies:
- Python blocks are executed as they stand. Names a sample leaves to the reader's app
  (`get_token`, `current_user`) are the only ones the test supplies.
- Shell blocks run in bash with this venv's `bin` first on PATH. A command that serves gets
  `--port 0` instead of its port, and the address it announces replaces `127.0.0.1:8000` (or the
  port the README uses) in the commands that talk to it; paths under /etc and /var/lib and the
  Redis URL become a temporary directory and a private redis-server.
- JS and HTML blocks run in Debian's Chromium through Playwright, on a page of the hub's origin.
"""

from __future__ import annotations

import ast
import io
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import venv
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest
from starlette.requests import Request
from support.readme import DATA_LANGUAGES, ROOT, argv, block, readme_blocks, shell_commands
from test_asgi_support import WAIT, Process, events, http, python, serve_wsgi, server_process

from ssehub import Event, Hub
from ssehub.testing import assert_events, read_events, stream

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
README_HUB = "http://127.0.0.1:8000"
SERVING = r"serving on (http://127\.0\.0\.1:\d+)/"
CHROMIUM = "/usr/bin/chromium"

RUN: set[str] = set()
_T = TypeVar("_T", bound=Callable[..., Any])


def runs(name: str) -> Callable[[_T], _T]:
    """Declare that the decorated test runs the README block called `name`."""
    RUN.add(name)
    return lambda test: test


# -- the rule -----------------------------------------------------------------------------------


def test_every_block_is_run_or_marked() -> None:
    examples_tested = (ROOT / "tests" / "test_examples.py").read_text(encoding="utf-8")
    problems: list[str] = []
    for sample in readme_blocks():
        where = f"README.md:{sample.line} {sample.name!r} ({sample.language or 'no language'})"
        if not sample.language:
            problems.append(f"{where}: say what the fence holds (```text for data)")
        elif sample.language in DATA_LANGUAGES:
            continue
        elif sample.name in RUN:
            if sample.not_run:
                problems.append(f"{where}: marked not run, but a test here runs it")
        elif sample.not_run:
            example = sample.not_run.group("example")
            if example and not (ROOT / example).is_file():
                problems.append(f"{where}: its full version {example} does not exist")
            elif example and f'"{Path(example).stem}"' not in examples_tested:
                problems.append(f"{where}: tests/test_examples.py does not run {example}")
        elif sample.marker:
            problems.append(f"{where}: {sample.marker!r} is not `<!-- not run: why -->`")
        else:
            problems.append(f"{where}: neither run by tests/test_readme.py nor marked not run")
    names = {sample.name for sample in readme_blocks()}
    # A test that runs a block the README no longer has would pass on nothing.
    problems += [
        f"tests/test_readme.py runs {name!r}, which README.md lacks" for name in RUN - names
    ]
    assert not problems, "\n".join(problems)


def test_the_rule_catches_an_unmarked_block() -> None:
    text = "# A\n\n```python\nprint(1)\n```\n\n<!-- not run: why -->\n```sh\nx\n```\n```\ny\n```\n"
    found = readme_blocks(text)
    assert [(b.name, b.language, b.code, b.line) for b in found] == [
        ("A #1", "python", "print(1)\n", 3),
        ("A #2", "sh", "x\n", 8),
        ("A #3", "", "y\n", 11),
    ]
    assert found[0].not_run is None and found[1].not_run is not None


# -- helpers ------------------------------------------------------------------------------------


class Lines:
    """The lines a process writes, read by a thread, awaited with a deadline."""

    def __init__(self, pipe: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, wanted: Callable[[str], bool]) -> str:
        while True:
            try:
                line = self._queue.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"nothing wanted within {WAIT} s: {self.seen}") from None
            assert line is not None, f"the output ended first: {self.seen}"
            self.seen.append(line)
            if wanted(line):
                return line


@contextmanager
def running(command: str, cwd: Path | None = None, **env: str) -> Iterator[Lines]:
    """A shell command that runs until stopped (in its own process group), its stdout as Lines."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        text=True,
        env={**ENV, **env},
        cwd=cwd,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        yield Lines(process.stdout)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(WAIT)


def run(command: str, cwd: Path | None = None, **env: str) -> str:
    """A shell command that ends: its stdout, after asserting it succeeded."""
    done = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env={**ENV, **env},
        cwd=cwd,
        timeout=WAIT,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    return done.stdout


def serve_argv(command: str, **env: str) -> list[str]:
    """A README `ssehub serve ...` line as an argv on a free port, its `$VARS` expanded."""
    words = [re.sub(r"\$(\w+)", lambda m: {**ENV, **env}[m.group(1)], w) for w in argv(command)]
    assert words[0] == "ssehub", command
    if "--port" in words:
        at = words.index("--port")
        del words[at : at + 2]
    return [str(BIN / "ssehub"), *words[1:], "--port", "0"]


@contextmanager
def serving(command: str, **env: str) -> Iterator[Process]:
    """Start a README command that serves; the Process's url is where it listens."""
    with server_process(serve_argv(command, **env), ready=SERVING) as process:
        yield process


def wait_for_streams(url: str, count: int) -> None:
    """Until the hub counts `count` open streams: a client that prints nothing on connecting
    is subscribed once the hub says so."""
    deadline = time.monotonic() + WAIT
    while True:
        metrics = http.get(f"{url}/metrics").text
        match = re.search(r"^ssehub_open_streams (\d+)", metrics, re.MULTILINE)
        assert match, metrics
        if int(match.group(1)) >= count:
            return
        assert time.monotonic() < deadline, f"never {count} streams: {match.group(0)}"
        time.sleep(0.02)  # the hub's count is the only sign there is


def execute(code: str, **names: Any) -> tuple[dict[str, Any], str]:
    """Run a Python block as a script would; its globals and what it printed. It runs on a
    thread of its own so that a sample waiting forever fails after WAIT seconds, not hangs."""
    namespace: dict[str, Any] = {"__name__": "readme_sample", **names}
    failed: list[BaseException] = []

    def run_sample() -> None:
        try:
            exec(compile(code, "README.md", "exec"), namespace)
        except BaseException as error:
            failed.append(error)

    out = io.StringIO()
    with redirect_stdout(out):
        thread = threading.Thread(target=run_sample, daemon=True, name="readme-sample")
        thread.start()
        thread.join(WAIT)
    assert not thread.is_alive(), f"still running after {WAIT} s; printed {out.getvalue()!r}"
    if failed:
        raise failed[0]
    return namespace, out.getvalue()


def publish(url: str, topic: str, data: object, **fields: object) -> str:
    answer = http.post(f"{url}/publish", json={"topic": topic, "data": data, **fields})
    assert answer.status_code == 200, answer.text
    ids: list[str] = answer.json()["ids"]
    return ids[0]


# -- Install ------------------------------------------------------------------------------------


@runs("Install #1")
def test_install_from_a_checkout_in_a_fresh_venv(tmp_path: Path) -> None:
    """`pip install .` (not editable) from a copy of the checkout, in a venv of its own."""
    checkout = tmp_path / "ssehub"
    shutil.copytree(
        ROOT,
        checkout,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "dist",
            "artifacts",
            ".work",
            ".*_cache",
            ".hypothesis",
            "*.egg-info",
            "__pycache__",
            "*.so",
        ),
    )
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": ""}
    commands = shell_commands(block("Install #1").code)
    assert [c.split()[:2] for c in commands] == [
        ["pip", "install"],
        ["pip", "install"],
        ["python", "-m"],
        ["ssehub", "serve"],
    ]
    try:
        run(commands[0], cwd=checkout, **env)
    except AssertionError as error:
        if "No matching distribution" in str(error) or "Could not find a version" in str(error):
            pytest.skip(f"the package index cannot be reached: {error}")
        raise
    # The core alone: no server, and `ssehub serve` says which extra brings it, in one line.
    refused = subprocess.run(
        [str(bin_dir / "ssehub"), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert refused.returncode == 1
    assert refused.stderr == (
        "ssehub serve: error: the hub's server is not installed: pip install 'ssehub[server]'\n"
    )
    run(commands[1], cwd=checkout, **env)
    no_redis = subprocess.run(
        [str(bin_dir / "ssehub"), "serve", "--port", "0", "--backend", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert no_redis.returncode == 2
    assert no_redis.stderr == (
        "ssehub serve: error: --backend: "
        "the Redis backend needs redis-py: pip install 'ssehub[redis]'\n"
    )
    assert "usage: ssehub" in run(commands[2], cwd=tmp_path, **env)
    installed = run("python -c 'import ssehub; print(ssehub.__file__)'", cwd=tmp_path, **env)
    assert installed.startswith(str(tmp_path / "venv")), installed  # not this checkout's
    words = serve_argv(commands[3])
    words[0] = str(bin_dir / "ssehub")
    with server_process(words, ready=SERVING, cwd=str(tmp_path)) as hub:
        assert http.get(f"{hub.url}/healthz").json() == {"status": "ok"}


# -- The codec ----------------------------------------------------------------------------------


@runs("The codec: `ssehub.wire` #1")
def test_codec_sample() -> None:
    code = block("The codec: `ssehub.wire` #1").code
    namespace, printed = execute(code)
    assert printed == "update a 7\n"
    assert namespace["decoder"].retry == 3000
    # Each `expression  # b"..."` line says what the expression gives: check it does.
    claims = re.findall(r"^(\S.*?)\s+# (b\".*\")$", code, re.MULTILINE)
    assert len(claims) == 3
    for expression, claimed in claims:
        assert eval(expression, namespace) == ast.literal_eval(claimed), expression


# -- The hub ------------------------------------------------------------------------------------


@runs("The hub: `ssehub serve` #1")
def test_serve_commands() -> None:
    plain, demo = shell_commands(block("The hub: `ssehub serve` #1").code)
    with serving(plain) as hub:
        assert http.get(f"{hub.url}/healthz").json() == {"status": "ok"}
        assert http.post(f"{hub.url}/demo/notify", json={}).status_code == 404
    with serving(demo) as hub:
        assert http.get(f"{hub.url}/demos/").status_code == 200
        with events(f"{hub.url}/demo/clock?session=readme") as clock:
            assert clock.next().data  # the demos' routes are there


@runs("The hub: `ssehub serve` #3")
def test_curl_commands() -> None:
    *publishes, watch = shell_commands(block("The hub: `ssehub serve` #3").code)
    assert watch.startswith("curl -N")
    with serving("ssehub serve") as hub, running(watch.replace(README_HUB, hub.url)) as stream:
        stream.until(lambda line: line == ": ssehub")
        wait_for_streams(hub.url, 1)
        ids = [json.loads(run(c.replace(README_HUB, hub.url)))["ids"] for c in publishes]
        assert [len(i) for i in ids] == [1, 1]
        for event_id in (ids[0][0], ids[1][0]):
            stream.until(lambda line, i=event_id: line == f"id: {i}")
            data = stream.until(lambda line: line.startswith("data: "))
            assert json.loads(data.removeprefix("data: ")) == {"id": 7}


@runs("Running several hubs #1")
def test_several_hubs_commands(tmp_path: Path) -> None:
    from support.redis_server import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (make test installs it)")
    commands = shell_commands(block("Running several hubs #1").code)
    assert len(commands) == 4
    with RedisServer() as redis, ExitStack() as stack:

        def local(command: str) -> str:
            command = command.replace("redis://127.0.0.1:6379/0", redis.url)
            return command.replace("/var/lib/ssehub/hub.db", str(tmp_path / "hub.db"))

        node1, node2, on_disk, workers = (
            stack.enter_context(serving(local(command))) for command in commands
        )
        # Two nodes on one Redis are one hub: published through one, delivered by the other.
        with events(f"{node2.url}/events?topic=orders") as stream:
            stream.until_position()
            event_id = publish(node1.url, "orders", "to every node")
            assert_events([stream.next()], [Event("to every node", id=event_id)])
        first = publish(on_disk.url, "orders", "first")
        second = publish(on_disk.url, "orders", "kept on disk")
        assert (tmp_path / "hub.db").is_file()
        with events(f"{on_disk.url}/events?topic=orders", last_event_id=first) as stream:
            assert_events([stream.next()], [Event("kept on disk", id=second)])
        assert any("4 workers" in line for line in workers.output)
        assert http.get(f"{workers.url}/healthz").json() == {"status": "ok"}


@runs("Security #1")
def test_security_commands(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "pub.pem"
    pem.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    secret = secrets.token_hex(32)
    hmac_hub, rsa_hub, mint = shell_commands(block("Security #1").code)
    rsa_hub = rsa_hub.replace("/etc/ssehub/pub.pem", str(pem))
    token = run(mint, SECRET=secret).strip()
    with serving(hmac_hub, SECRET=secret) as hub, serving(rsa_hub) as anonymous:
        refused = http.post(f"{hub.url}/publish", data={"topic": "orders", "data": "x"})
        assert refused.status_code == 401, refused.text
        granted = http.post(
            f"{hub.url}/publish",
            data={"topic": "orders", "data": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert granted.status_code == 200, granted.text
        with http.stream("GET", f"{hub.url}/events?topic=orders") as response:
            assert response.status_code == 401  # reading needs a token here
        with events(f"{anonymous.url}/events?topic=orders") as stream:
            assert stream.until_position()  # --allow-anonymous: reading needs none
        # The PEM hub takes tokens signed by its key pair, and not the HMAC hub's.
        signed = jwt.encode({"mercure": {"publish": ["*"]}}, key, algorithm="RS256")
        for bearer, status in ((signed, 200), (token, 401)):
            answer = http.post(
                f"{anonymous.url}/publish",
                data={"topic": "orders", "data": "x"},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            assert answer.status_code == status, answer.text


@runs("Using ssehub as a Mercure hub #1")
def test_symfony_settings_point_at_ssehub() -> None:
    """The `.env` and the hub command of the sample, with Symfony's own publisher."""
    from support.symfony import symfony_publish

    from ssehub.auth import mint_token

    code = block("Using ssehub as a Mercure hub #1").code
    settings = {
        name: value.strip('"') for name, value in re.findall(r"^(MERCURE_\w+)=(.*)$", code, re.M)
    }
    command = code[code.index("ssehub serve") :].replace("\\\n", " ")
    with serving(command, **settings) as hub:
        assert settings["MERCURE_URL"].startswith(README_HUB)
        # What MercureBundle sends with MERCURE_JWT_SECRET: a token signed with it.
        token = mint_token(settings["MERCURE_JWT_SECRET"], publish=["*"], ttl=None)
        topic = "https://example.com/books/1"
        with events(f"{hub.url}/.well-known/mercure?topic={topic}") as stream:
            stream.until_position()  # --allow-anonymous: public updates need no token
            [event_id] = symfony_publish(hub.url, token, [{"topics": [topic], "data": "new"}])
            [event] = stream.take(1)
        assert (event.id, event.data) == (event_id, "new")
        preflight = http.options(
            settings["MERCURE_URL"].replace(README_HUB, hub.url),
            headers={
                "Origin": "https://example.com",
                "Access-Control-Request-Method": "GET",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://example.com"
        assert preflight.headers["access-control-allow-credentials"] == "true"


# -- From Python, the client, the shell ---------------------------------------------------------


@runs("From Python #1")
def test_hub_in_python_sample() -> None:
    _, printed = execute(block("From Python #1").code)
    assert printed == 'True created {"id": 7}\n'


@runs("The client: `EventSource` for Python #1")
def test_event_source_sample(tmp_path: Path) -> None:
    script = tmp_path / "listen.py"
    with serving("ssehub serve") as hub:
        script.write_text(
            block("The client: `EventSource` for Python #1").code.replace(README_HUB, hub.url)
        )
        with running(f"{sys.executable} -u {script}") as printed:
            wait_for_streams(hub.url, 1)
            event_id = publish(hub.url, "orders", '{"id": 7}', event="created")
            assert printed.until(bool) == f'{event_id} created {{"id": 7}}'


@runs("The client: `EventSource` for Python #2")
def test_async_event_source_sample() -> None:
    code = block("The client: `EventSource` for Python #2").code
    tokens: list[str] = []

    async def get_token() -> str:
        tokens.append(secrets.token_hex(8))
        return tokens[-1]

    chat = str(ROOT / "examples" / "ai_chat.py")
    with server_process(python(chat, "--port", "0", "--token-delay", "0.001")) as example:
        _, printed = execute(
            code.replace("http://127.0.0.1:8003", example.url), get_token=get_token
        )
        # The same answer again, read by the test: the example replays an answer by its id.
        body = json.loads(re.search(r"json=(\{.*?\})", code, re.DOTALL).group(1))  # type: ignore[union-attr]
        with events(f"{example.url}/chat", method="POST", json=body) as stream:
            answer = [json.loads(event.data) for event in stream.rest()]
    assert answer[-1] == {"done": True}
    assert printed == "".join(part["content"] for part in answer[:-1]) and printed
    assert len(tokens) == 1  # one connection, one token


@runs("Operations #2")
def test_a_bad_setting_is_one_line_and_exit_2() -> None:
    code = block("Operations #2").code
    command = code.splitlines()[0]
    expected = [line.removeprefix("# ") for line in code.splitlines()[1:]]
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=ENV, timeout=WAIT
    )
    assert done.stderr.splitlines() + done.stdout.splitlines() == expected


@runs("From the shell #1")
def test_shell_commands(tmp_path: Path) -> None:
    listen, listen_json, publish_line, tail = shell_commands(block("From the shell #1").code)

    def here(command: str, url: str) -> str:
        command = command.replace(README_HUB, url)
        return command.replace("ssehub publish", f"ssehub publish --hub {url}")

    log = tmp_path / "app.log"
    log.write_text("")
    with (
        serving("ssehub serve") as hub,
        running(here(listen, hub.url)) as plain,
        running(here(listen_json, hub.url)) as as_json,
    ):
        wait_for_streams(hub.url, 2)
        event_id = run(here(publish_line, hub.url)).strip()
        assert plain.until(bool) == f'[{event_id}] orders created: {{"id": 42}}'
        assert json.loads(as_json.until(bool)) == {
            "event": "created",
            "data": '{"id": 42}',
            "id": event_id,
            "topics": ["orders"],
        }
        with events(f"{hub.url}/events?topic=logs") as logs, running(here(tail, hub.url), tmp_path):
            logs.until_position()
            with log.open("a") as file:
                file.write("GET / 200\nGET /x 404\n")
            assert [e.data for e in logs.take(2)] == ["GET / 200", "GET /x 404"]


# -- Embedding ----------------------------------------------------------------------------------


class _User:
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def current_user(request: Request) -> _User:
    """The app's own authentication, which the sample leaves to the reader: `X-User: 42`."""
    return _User(request.headers.get("x-user", "anonymous"))


@runs("FastAPI / Starlette (ASGI) #1")
@pytest.mark.anyio
async def test_fastapi_sample() -> None:
    namespace, _ = execute(block("FastAPI / Starlette (ASGI) #1").code, current_user=current_user)
    app, hub = namespace["app"], namespace["hub"]
    assert_events(await read_events(app, "/clock", count=1), [Event("tick 0", id="0")])
    me = {"x-user": "42"}
    async with (
        hub,
        stream(app, "/me/events", headers=me) as mine,
        stream(app, "/sse/events?topic=user.42") as anonymous,
        stream(app, "/sse/events?topic=user.42", headers=me) as mounted,
    ):
        for opened in (mine, anonymous, mounted):
            await opened.position()
        await hub.publish("user.42", "for 42 only", private=True)
        await hub.publish("user.42", "for anyone")
        assert [e.data for e in await mine.take(2)] == ["for 42 only", "for anyone"]
        assert [e.data for e in await mounted.take(2)] == ["for 42 only", "for anyone"]
        assert [e.data for e in await anonymous.take(1)] == ["for anyone"]
        refused = await read_status(app, "/sse/publish", {"x-user": "7"})
        assert refused == 403  # user 7 may publish to user.7 only


async def read_status(app: Any, target: str, headers: dict[str, str]) -> int:
    body = b"topic=user.42&data=x"
    form = {**headers, "content-type": "application/x-www-form-urlencoded"}
    async with stream(app, target, method="POST", headers=form, body=body) as answer:
        return int(answer.status or 0)


@runs("Flask / Django (WSGI) #1")
def test_flask_sample() -> None:
    namespace, _ = execute(block("Flask / Django (WSGI) #1").code)
    hub: Hub = namespace["hub"]
    with serve_wsgi(namespace["app"]) as url:
        with events(f"{url}/clock") as clock:
            assert_events([clock.next()], [Event("tick 0", id="0")])
        first = hub.publish_sync("orders", "missed")
        second = hub.publish_sync("orders", "replayed")
        # The relay reads Last-Event-ID in the view: it resumes after it, then goes on live.
        with events(f"{url}/orders/events", last_event_id=first) as orders:
            assert_events([orders.next()], [Event("replayed", id=second)])
            third = hub.publish_sync("orders", "live")
            assert_events([orders.next()], [Event("live", id=third)])


# -- In the browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (make test installs Debian's chromium)")
    from browser.conftest import CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A Chromium page at `url` (on the hub's origin) whose document is `html`. `until(js)` waits
    for a condition and fails at once, with the message, when the page's script threw."""

    def __init__(self, chromium: Any, url: str, html: str) -> None:
        self.errors: list[str] = []
        self.page = chromium.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.route(url, lambda route: route.fulfill(content_type="text/html", body=html))
        self.page.goto(url)

    def until(self, condition: str) -> None:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        deadline = time.monotonic() + WAIT
        while True:
            assert not self.errors, self.errors
            try:
                # Short waits, so that a script error is reported when it happens.
                self.page.wait_for_function(condition, timeout=200)
                return
            except PlaywrightTimeout:
                assert time.monotonic() < deadline, f"never true: {condition}"

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)


@contextmanager
def page_of(chromium: Any, url: str, html: str) -> Iterator[Page]:
    page = Page(chromium, url, html)
    try:
        yield page
    finally:
        page.page.close()
    assert not page.errors, page.errors


@runs("The hub: `ssehub serve` #2")
def test_browser_event_source_sample(chromium: Any) -> None:
    code = block("The hub: `ssehub serve` #2").code
    with serving("ssehub serve") as hub:
        script = f"<script>\n{code.replace(README_HUB, hub.url)}</script>"
        with page_of(chromium, f"{hub.url}/readme.html", script) as page:
            page.until("source.readyState === EventSource.OPEN")
            with page.page.expect_console_message() as logged:
                event_id = publish(hub.url, "orders", {"id": 7}, event="created")
            first, second = logged.value.args
            assert (first.json_value(), second.json_value()) == (event_id, {"id": 7})


PAGE_OWNS = """<pre id="out"></pre>
<script>
  // What the sample leaves to the page: record what it is given.
  var seen = {render: [], alarm: [], refetchState: 0, states: []};
  function render(value) { seen.render.push(value); }
  function alarm(text) { seen.alarm.push(text); }
  function refetchState() { seen.refetchState += 1; }
  function show(state, reconnects) { seen.states.push(state); }
</script>
"""


@runs("ssehub.js #1")
def test_ssehub_js_sample(chromium: Any) -> None:
    from ssehub.demo import answer

    with serving("ssehub serve --demo") as hub:
        html = PAGE_OWNS + block("ssehub.js #1").code
        with page_of(chromium, f"{hub.url}/readme.html", html) as page:
            page.until("seen.render.length === 1")
            assert page.evaluate("seen.render") == [{"id": 7}]
            assert page.evaluate("seen.states")[-1] == "open"
            # The chat answer, token by token, whole and in order, until `done` closed it.
            page.until(f"out.textContent === {json.dumps(answer('What is SSE?'))}")
            publish(hub.url, "alerts", "disk full")
            page.until("seen.alarm.length === 1")
            assert page.evaluate("seen.alarm") == ["disk full"]
