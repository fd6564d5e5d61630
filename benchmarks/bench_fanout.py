"""Fan-out, idle-memory and publish-rate benchmark: ssehub (and its backends) vs nginx+nchan vs
sse-starlette.

    .venv/bin/python benchmarks/bench_fanout.py [--only ssehub,nchan] [--subscribers 1000]
                                                [--events 2000] [--idle-subscribers 5000]
                                                [--phases fanout,memory,publish] [--repeat 5]
                                                [--baseline ../other-checkout]

The backends (SQLite, Redis) against the memory backend and nchan, in memory and in Redis mode,
with the two-hub test, in one command (about 15 minutes):

    .venv/bin/python benchmarks/bench_fanout.py \
        --only ssehub,ssehub-sqlite,ssehub-redis,nchan,nchan-redis \
        --phases fanout,memory,publish,nodes --repeat 3

JWT authorization (tokens on every request; private events to half the subscribers) against
ssehub without it, and nchan, in one command:

    .venv/bin/python benchmarks/bench_fanout.py --only ssehub,ssehub-auth,ssehub-private,nchan

(a quick check of the whole harness: add `--subscribers 100 --events 200 --idle-subscribers 500
--pub-seconds 1 --repeat 1`). The report goes to stdout and benchmarks/.work/results.md, the raw
figures to benchmarks/.work/results.json.

Targets run one after another, never together (each test gets a fresh server process); a test's
runs go round by round, each target once per round, so that the machine's drift over minutes
weighs on every target alike. --only picks them (default: ssehub,nchan,sse-starlette):

* ssehub: `ssehub serve --heartbeat 60 --history 10000` (one process, uvloop + httptools; the
  default backend, memory).
* ssehub-sqlite: the same with `--backend sqlite:////<abs path>/ssehub-sqlite-<port>.db`, a fresh
  database file in benchmarks/.work for each run (removed after it).
* ssehub-redis: the same with `--backend redis://127.0.0.1:<port>/0`, on the benchmark's Redis.
* ssehub-auth: `ssehub serve --jwt-key <secret>` (HS256, a random 64-character secret per
  benchmark run), otherwise as ssehub, with a token on every request: each subscriber sends its
  own token (`subscribe: ["bench"]`; tokens differ by their iat/exp, so the hub verifies and
  caches each one, as with real clients) in the `authorization` query parameter of its
  `/events`, and every publish (sseload's fan-out publisher, wrk's publishers) carries
  `Authorization: Bearer <publisher token>` (`publish: ["*"]`). Events are public. Targets (when
  ssehub ran in the same run): publish rate >= 0.8x ssehub, fan-out deliveries/s >= 0.95x
  ssehub; RSS per idle subscriber <= 2 KiB.
* ssehub-private (fan-out test only: its memory and publish-rate tests would be ssehub-auth's):
  the same hub and publisher; of the N fan-out subscribers, N/2 hold a token granting the topic
  (`subscribe: ["bench"]`), the other N/2 a token granting nothing (no `subscribe` claim), and
  the E events are published private (`private=on`); the warm-up event before them is public, so
  that every subscriber of both halves confirms its registration. The granted half (sseload in
  fanout mode, with the publisher) must get every event in order; the other half (a second
  sseload, in follow mode with `--events 0`, started first) must get none of them: a private
  event reaching it is reported as PRIVATE EVENTS LEAKED at the top of the report and fails the
  check. Target: the granted half's deliveries/s >= 0.9x ssehub's public fan-out deliveries/s
  (N subscribers in both runs). The PASS line compares total deliveries per second, the figure
  the issue states: each delivery costs the same as a public one when the hub skips the
  ungranted subscribers (and checks grants) at no cost, so the ratio is exactly the price of
  private delivery; half the subscribers receive nothing, so the run has half the deliveries
  per event, and deliveries per second per delivering subscriber (how fast events get through,
  reported for reference) comes out 2x that ratio and would pass trivially.
* nchan: nginx with the nchan module, `worker_processes 1` (the single core the hub gets),
  config rendered from benchmarks/fanout/nginx.conf.template into benchmarks/.work.
* nchan-redis: the same in nchan's Redis mode (benchmarks/fanout/nginx-redis.conf.template:
  `upstream { nchan_redis_server redis://127.0.0.1:<port>/1; }` and `nchan_redis_pass` in the
  publisher and subscriber locations; nchan's default storage mode, distributed), on the
  benchmark's Redis.
* sse-starlette: the usual broadcaster (benchmarks/fanout/starlette_app.py: a queue per
  subscriber, EventSourceResponse) under uvicorn with uvloop + httptools, one process.
* ssehub-baseline (with --baseline DIR): ssehub from another checkout, with its own .venv.

The benchmark's Redis: when a Redis target is selected, a private `redis-server --save ''
--appendonly no` on a free port (never the machine's shared Redis), pinned with the load
generators to core 1 (it stands for a Redis on another machine), emptied (FLUSHALL, to that
port only) before each fresh server and stopped at the end. Its own CPU time (INFO cpu) is
reported per test, and per event.

Tests (--phases; fanout, memory and publish by default):

* fanout: N subscribers of one topic, all open (response headers read) and all confirmed
  registered (each received a warm-up event) before E events are published one at a time over one
  keep-alive connection; each event's data is "<seq>_<CLOCK_MONOTONIC ns at send>". Every
  delivery is checked for order and loss and timed (publish-to-delivery latency).
* memory: a fresh server, one subscriber opened and closed (lazy start-up allocations), VmRSS,
  then M idle subscribers, VmRSS again: (after - before) / M.
* publish: 8 concurrent keep-alive publishers (wrk -t1 -c8, POST) for a few seconds, one
  subscriber that must receive every event.
* nodes (ssehub-redis only, off by default): two `ssehub serve --backend redis://...` hubs on the
  same Redis, hub A pinned to core 0 and hub B to core 1, N subscribers on each, E events
  published through hub A only: an sseload in fanout mode on hub A, and one in follow mode on hub
  B (started first; it checks B's subscribers as fanout mode does, timing each delivery against
  the publish time in the event). Reported: total deliveries/s of both hubs against one hub (the
  fanout test of ssehub-redis in the same run), and Redis's CPU per event with one hub and with
  two (each hub reads each event once: the difference is one read per hub). On a two-core
  machine the hubs take both cores, so the generators (`taskset -c 0,1`) and Redis share them;
  the report says so.

The report: a table of every target; ratios (ssehub/nchan, ssehub/sse-starlette,
ssehub-redis/nchan-redis, ssehub-redis/ssehub, ssehub-sqlite/ssehub, ssehub-auth/ssehub,
ssehub-private/ssehub, ssehub-private/ssehub-auth, nchan-redis/nchan, ... for the pairs that
ran); PASS/FAIL lines for the targets (ssehub vs nchan; ssehub-redis vs nchan-redis and vs
ssehub; ssehub-sqlite, ssehub-auth and ssehub-private vs ssehub; RSS per idle subscriber on every
ssehub backend and with tokens; no private event leaked; comparisons only when both sides
ran); the two-hub test; Redis's CPU; whether the load generator was the bottleneck; details,
with what the servers logged (ssehub's warnings and errors, nginx's error.log).

The load generator is benchmarks/fanout/sseload.c (epoll, non-blocking sockets, compiled here with
gcc into benchmarks/.work); publish-rate load comes from wrk. Servers are pinned to core 0 and
the generators to core 1 (taskset) when the machine has two or more cores. The report shows the
generators' CPU time against wall time and the server's: a generator well under one core while
the server is near one core means the server is what is being measured.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ASSETS = HERE / "fanout"
WORK = HERE / ".work"
VENV_BIN = ROOT / ".venv" / "bin"
NCHAN_MODULE = Path("/usr/lib/nginx/modules/ngx_nchan_module.so")
TOPIC = "bench"
PUB_PAYLOAD = "p" * 64  # data of each publish-rate event

# The default targets (--only), in the order they run.
TARGETS = ("ssehub", "nchan", "sse-starlette")
# Every target --only knows: the default ones and the backends' (off by default, they take time).
ALL_TARGETS = (
    "ssehub",
    "ssehub-mercure",
    "ssehub-sqlite",
    "ssehub-redis",
    "ssehub-auth",
    "ssehub-private",
    "nchan",
    "nchan-redis",
    "sse-starlette",
)
REDIS_TARGETS = ("ssehub-redis", "nchan-redis")  # these share the benchmark's private Redis
AUTH_TARGETS = ("ssehub-auth", "ssehub-private")  # these share the run's JWT secret and tokens
PRIVATE = "ssehub-private"
BASELINE = "ssehub-baseline"  # with --baseline DIR
PHASES = ("fanout", "nodes", "publish", "memory")  # in the order they run

CHILDREN: list[subprocess.Popen[Any]] = []


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# processes


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            return want
        except (ValueError, OSError):
            continue
    return soft


def spawn(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child in its own session (its own process group), remembered for clean-up."""
    process = subprocess.Popen(argv, start_new_session=True, **kwargs)
    CHILDREN.append(process)
    return process


def stop(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    else:  # the leader is gone; its group may not be
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    if process in CHILDREN:
        CHILDREN.remove(process)


def stop_all() -> None:
    for process in list(CHILDREN):
        stop(process, grace=2.0)


def wait_rusage(process: subprocess.Popen[Any], timeout: float) -> tuple[int, float]:
    """Wait for a child; returns (exit status, its CPU seconds) from wait4's rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            if process in CHILDREN:
                CHILDREN.remove(process)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            stop(process)
            return -1, float("nan")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def proc_cpu(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine_cpu() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine (all cores) and steal seconds, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


DISTURBED = 0.25  # other processes' CPU, in cores, above which a run counts as disturbed
# Per test: the CPU readings of our own processes in a run, and the window they cover.
OURS = {
    "fanout": (("gen_cpu_s", "server_cpu_s", "redis_cpu_s"), "cpu_wall_s"),
    "nodes": (("gen_cpu_s", "server_cpu_s", "redis_cpu_s"), "cpu_wall_s"),
    "publish": (("wrk_cpu_s", "sub_cpu_s", "server_cpu_s", "redis_cpu_s"), "wall_s"),
}


def wait_for_quiet(limit: float = 5.0, sample: float = 0.5) -> float:
    """Wait (at most `limit` s) until the rest of the machine is quiet; returns its busy share.

    Nothing of ours runs between tests, so whatever is busy now is someone else's: the machine is
    shared, and a benchmark run next to a test suite measures the test suite.
    """
    deadline = time.monotonic() + limit
    while True:
        busy0, _ = machine_cpu()
        time.sleep(sample)
        busy = (machine_cpu()[0] - busy0) / sample
        if busy < DISTURBED or time.monotonic() > deadline:
            return busy
        time.sleep(0.5)


def disturbance(phase: str, run: dict[str, Any]) -> float:
    """CPU (in cores) used by other processes during a run's measured window."""
    ours = OURS.get(phase)
    if ours is None or not run.get(ours[1]) or run.get("machine_busy_s") is None:
        return 0.0
    if run[ours[1]] < 0.5:
        return 0.0  # /proc/stat counts 10 ms ticks: too coarse to judge a shorter window
    keys, wall_key = ours
    other = float(run["machine_busy_s"]) - sum(float(run.get(k) or 0) for k in keys)
    return max(0.0, other / float(run[wall_key]))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


# --------------------------------------------------------------------------------------------
# the benchmark's own Redis


def redis_command(port: int, *args: str, timeout: float = 5.0) -> bytes:
    """One command to the Redis on 127.0.0.1:port (RESP over a plain socket): its reply."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload.encode())
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("Redis closed the connection")
            data += chunk
        line, _, rest = data.partition(b"\r\n")
        if line.startswith(b"-"):
            raise RuntimeError(f"Redis: {line[1:].decode(errors='replace')}")
        if not line.startswith(b"$"):
            return line[1:]  # +simple, :integer
        size = int(line[1:])
        if size < 0:
            return b""
        while len(rest) < size + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("Redis closed the connection")
            rest += chunk
        return rest[:size]


@dataclass
class BenchRedis:
    """A private redis-server for the run (no persistence), pinned with the load generators.

    Never the machine's shared Redis: between runs it is emptied (FLUSHALL), which is only ever
    sent to the port of the process started here.
    """

    process: subprocess.Popen[Any]
    port: int
    version: str

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def reset(self) -> None:
        assert self.process.poll() is None, "the benchmark's Redis is gone"
        redis_command(self.port, "FLUSHALL")

    def cpu_seconds(self) -> float:
        """used_cpu_sys + used_cpu_user (getrusage, microseconds) of the Redis server."""
        info = redis_command(self.port, "INFO", "cpu").decode()
        values = dict(
            line.split(":", 1) for line in info.splitlines() if ":" in line and line[0] != "#"
        )
        return float(values["used_cpu_sys"]) + float(values["used_cpu_user"])

    def reset_stats(self) -> None:
        redis_command(self.port, "CONFIG", "RESETSTAT")

    def command_stats(self) -> dict[str, list[int]]:
        """Per command since reset_stats: [calls, microseconds inside Redis] (INFO
        commandstats), without the benchmark's own INFO and CONFIG."""
        info = redis_command(self.port, "INFO", "commandstats").decode()
        stats = {}
        for match in re.finditer(r"cmdstat_([^:]+):calls=(\d+),usec=(\d+)", info):
            if not match[1].startswith(("info", "config")):
                stats[match[1]] = [int(match[2]), int(match[3])]
        return stats


def redis_available() -> str | None:
    if not shutil.which("redis-server"):
        return "redis-server is not installed (apt-get install redis-server)"
    return None


def start_redis(pin: list[str]) -> BenchRedis:
    port = free_port()
    workdir = WORK / f"redis-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir), "--logfile", str(WORK / "redis.log")]
    argv += ["--maxclients", "10000", "--daemonize", "no"]
    process = spawn([*pin, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}; see redis.log")
        try:
            if redis_command(port, "PING", timeout=0.5) == b"PONG":
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer on port {port}")
        time.sleep(0.05)
    info = redis_command(port, "INFO", "server").decode()
    version = re.search(r"redis_version:(\S+)", info)
    shutil.rmtree(workdir, ignore_errors=True)  # nothing is saved there (--save "")
    return BenchRedis(process, port, version.group(1) if version else "?")


# --------------------------------------------------------------------------------------------
# JWT authorization: the run's secret and tokens

TOKEN_TTL = 86400  # seconds: longer than any run
# Mints the tokens with ssehub's own mint_token, in the checkout's .venv (PyJWT is there). The
# subscribers' tokens differ by their issue time (iat, and so exp): a hub that verifies and
# caches tokens has one entry per subscriber, as with real clients.
MINT_SCRIPT = """
import json, os, sys, time
from ssehub.auth import mint_token
secret = os.environ["BENCH_JWT_KEY"]
granted, denied, topic, ttl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
now = time.time()
json.dump({
    "publisher": mint_token(secret, publish=["*"], ttl=ttl),
    "granted": [
        mint_token(secret, subscribe=[topic], ttl=ttl, now=now - i) for i in range(granted)
    ],
    "denied": [mint_token(secret, ttl=ttl, now=now - i) for i in range(denied)],
}, sys.stdout)
"""


@dataclass
class AuthSetup:
    """The run's HS256 secret and its tokens, with files of subscriber request paths (one per
    line, each with its own token in the `authorization` query parameter) for sseload's
    --sub-paths."""

    secret: str
    publisher: str  # publish: ["*"]
    granted_paths: Path  # subscribe: [TOPIC], one token per subscriber
    denied_paths: Path  # no subscribe claim: grants nothing
    probe_path: str  # one more granted token, for the memory test's first subscriber
    granted: int
    denied: int

    @property
    def pub_headers(self) -> tuple[str, ...]:
        return (f"Authorization: Bearer {self.publisher}",)


def sub_path_with(token: str) -> str:
    return f"/events?topic={TOPIC}&authorization={token}"


def auth_setup(granted: int, denied: int) -> AuthSetup:
    """A fresh random secret (>= 32 bytes) and `granted` + 1 / `denied` subscriber tokens."""
    secret = secrets.token_hex(32)  # 64 characters (never starting with "-", unlike base64)
    env = {**os.environ, "BENCH_JWT_KEY": secret}
    argv = [str(VENV_BIN / "python"), "-c", MINT_SCRIPT, str(granted + 1), str(denied), TOPIC]
    result = subprocess.run(
        [*argv, str(TOKEN_TTL)], capture_output=True, text=True, env=env, timeout=300
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise RuntimeError(f"minting tokens failed: {lines[-1] if lines else result.returncode}")
    tokens = json.loads(result.stdout)
    granted_paths = WORK / "auth-granted.paths"
    denied_paths = WORK / "auth-denied.paths"
    granted_paths.write_text("".join(sub_path_with(t) + "\n" for t in tokens["granted"][:-1]))
    denied_paths.write_text("".join(sub_path_with(t) + "\n" for t in tokens["denied"]) or "\n")
    return AuthSetup(
        secret,
        tokens["publisher"],
        granted_paths,
        denied_paths,
        sub_path_with(tokens["granted"][-1]),
        granted,
        denied,
    )


# --------------------------------------------------------------------------------------------
# HTTP probes (plain sockets: this is setup, not load)


def http_probe(port: int, path: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


def http_status(port: int, path: str, timeout: float = 0.5) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            match = re.match(rb"HTTP/1\.\d (\d{3})", sock.recv(64))
            return int(match.group(1)) if match else None
    except OSError:
        return None


def open_and_close_subscriber(port: int, path: str) -> None:
    """One subscriber, headers read, then gone: the server's lazy first-use costs are paid."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# targets


@dataclass
class Server:
    process: subprocess.Popen[Any]
    port: int
    pids: list[int]  # the processes that do the work (CPU, RSS): the nginx worker, not master
    all_pids: list[int]
    error_log: Path | None = None  # nginx: where nchan reports missed messages
    log: Path | None = None  # the hub's or uvicorn's stdout+stderr (appended to, run after run)
    log_offset: int = 0  # where this run's part of `log` starts
    cleanup: list[Path] = field(default_factory=list)  # files the run leaves (SQLite database)
    log_problems: list[str] = field(default_factory=list)  # set when the server has stopped


@dataclass
class Target:
    name: str
    sub_path: str
    pub_path: str
    form_topic: str | None  # ssehub publishes a form; the others take the raw body
    start: Callable[[int, list[str]], Server]
    description: str = ""
    available: Callable[[], str | None] = lambda: None  # a reason to skip, or None
    reset: Callable[[], None] | None = None  # before each fresh server: empty the shared Redis
    redis: BenchRedis | None = None  # the Redis the target uses, whose CPU time is reported
    # JWT authorization: a request path per subscriber (sseload --sub-paths; `sub_path` is then
    # only the memory test's first subscriber's), headers for every publish
    sub_paths: Path | None = None
    pub_headers: tuple[str, ...] = ()
    # ssehub-private: the events are private, and this is the ungranted half's --sub-paths
    denied_sub_paths: Path | None = None
    phases: tuple[str, ...] | None = None  # the tests it runs (None: every one selected)

    @property
    def private(self) -> bool:
        return self.denied_sub_paths is not None

    def pub_body(self, data: str) -> tuple[str, str]:
        if self.form_topic is not None:
            return f"topic={self.form_topic}&data={data}", "application/x-www-form-urlencoded"
        return data, "text/plain"


def wait_ready(process: subprocess.Popen[Any], port: int, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} while starting")
        if http_probe(port, "/healthz"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout:.0f} s")


def start_ssehub(
    port: int,
    pin: list[str],
    venv_bin: Path = VENV_BIN,
    backend: str | None = None,
    name: str = "ssehub",
    extra: tuple[str, ...] = (),
) -> Server:
    """`ssehub serve`; `backend` is its --backend URL (None: the default, memory), "sqlite" a
    fresh database file in benchmarks/.work, removed after the run; `extra`: more options."""
    argv = [str(venv_bin / "ssehub"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--heartbeat", "60", "--history", "10000", *extra]
    cleanup = []
    if backend == "sqlite":
        database = WORK / f"{name}-{port}.db"
        cleanup = [database.with_name(database.name + suffix) for suffix in SQLITE_FILES]
        for path in cleanup:
            path.unlink(missing_ok=True)
        backend = f"sqlite:///{database}"  # an absolute path: sqlite:////abs/path.db
    if backend is not None:
        argv += ["--backend", backend]
    log_path = WORK / f"{name}.log"
    with log_path.open("ab") as log_file:
        offset = log_file.tell()
        process = spawn([*pin, *argv], stdout=log_file, stderr=log_file)
    try:
        shown = ["<secret>" if argv[i - 1] == "--jwt-key" else a for i, a in enumerate(argv)]
        wait_ready(process, port, f"{name} ({' '.join(shown[1:])})")
    except RuntimeError as error:
        tail = log_path.read_bytes()[offset:].decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{error}: {' / '.join(tail[-3:])}") from None
    return Server(process, port, [process.pid], [process.pid], None, log_path, offset, cleanup)


SQLITE_FILES = ("", "-wal", "-shm", "-journal")


def ssehub_available(venv_bin: Path = VENV_BIN) -> str | None:
    exe = venv_bin / "ssehub"
    if not exe.exists():
        return f"{exe} not found"
    result = subprocess.run([str(exe), "serve", "--help"], capture_output=True, timeout=30)
    if result.returncode != 0:
        return "`ssehub serve` is not available yet (`ssehub serve --help` failed)"
    return None


def ssehub_backend_available(backend: str, venv_bin: Path = VENV_BIN) -> str | None:
    """Whether this checkout's `ssehub serve` takes --backend, and has the backend's module."""
    reason = ssehub_available(venv_bin)
    if reason:
        return reason
    result = subprocess.run(
        [str(venv_bin / "ssehub"), "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    if "--backend" not in result.stdout:
        return "`ssehub serve` has no --backend option yet"
    module = f"ssehub.backends.{backend}"
    result = subprocess.run(
        [str(venv_bin / "python"), "-c", f"import {module}"], capture_output=True, text=True
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"`import {module}` failed: {lines[-1] if lines else result.returncode}"
    return None


def ssehub_auth_available(auth: AuthSetup | str | None) -> str | None:
    """Whether this checkout's `ssehub serve` takes --jwt-key, and the tokens were minted."""
    reason = ssehub_available()
    if reason:
        return reason
    result = subprocess.run(
        [str(VENV_BIN / "ssehub"), "serve", "--help"], capture_output=True, text=True, timeout=30
    )
    if "--jwt-key" not in result.stdout:
        return "`ssehub serve` has no --jwt-key option yet"
    if not isinstance(auth, AuthSetup):
        return auth or "no tokens were minted"
    return None


def nginx_version() -> str:
    if not shutil.which("nginx"):
        return "nginx not installed"
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    nchan = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"], capture_output=True, text=True
    ).stdout.strip()
    return f"{out.removeprefix('nginx version: ')}, nchan {nchan or '?'} (libnginx-mod-nchan)"


def nchan_available() -> str | None:
    if not shutil.which("nginx"):
        return "nginx is not installed (apt-get install nginx libnginx-mod-nchan)"
    if not NCHAN_MODULE.exists():
        return f"{NCHAN_MODULE} missing (apt-get install libnginx-mod-nchan)"
    return None


def start_nchan(port: int, pin: list[str], redis_url: str | None = None) -> Server:
    """nginx+nchan: memory mode (nginx.conf.template), or with `redis_url` its Redis mode
    (nginx-redis.conf.template)."""
    workdir = WORK / f"nginx-{port}"
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "tmp").mkdir(parents=True)
    template = "nginx.conf.template" if redis_url is None else "nginx-redis.conf.template"
    conf = (ASSETS / template).read_text()
    conf = conf.replace("{workdir}", str(workdir)).replace("{port}", str(port))
    conf = conf.replace("{redis_url}", redis_url or "")
    (workdir / "nginx.conf").write_text(conf)
    argv = ["nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"]
    with (WORK / "nginx.log").open("ab") as log_file:
        process = spawn([*pin, *argv], stdout=log_file, stderr=log_file)
    wait_ready(process, port, "nginx")
    if redis_url is not None:
        # nchan answers a publisher GET of an unknown channel with 404 once it has Redis, and
        # with 5xx while it is still connecting.
        deadline = time.monotonic() + 10
        while (http_status(port, f"/pub/{TOPIC}") or 599) >= 500:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nchan did not connect to Redis: see {workdir}/error.log")
            time.sleep(0.05)
    deadline = time.monotonic() + 5
    workers = children_of(process.pid)
    while not workers and time.monotonic() < deadline:
        time.sleep(0.05)
        workers = children_of(process.pid)
    if len(workers) != 1:
        raise RuntimeError(f"expected one nginx worker, found {workers}")
    return Server(process, port, workers, [process.pid, *workers], workdir / "error.log")


def starlette_available() -> str | None:
    for module in ("sse_starlette", "uvicorn", "uvloop", "httptools"):
        result = subprocess.run(
            [str(VENV_BIN / "python"), "-c", f"import {module}"], capture_output=True
        )
        if result.returncode != 0:
            return f"python module {module} is not installed in .venv"
    return None


def start_starlette(port: int, pin: list[str]) -> Server:
    argv = [str(VENV_BIN / "python"), "-m", "uvicorn", "starlette_app:app"]
    argv += ["--app-dir", str(ASSETS), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--loop", "uvloop", "--http", "httptools", "--ws", "none", "--lifespan", "off"]
    argv += ["--no-access-log", "--log-level", "warning", "--backlog", "4096"]
    argv += ["--timeout-keep-alive", "300"]
    env = {**os.environ, "BENCH_PING_SECONDS": "60"}
    log_path = WORK / "sse-starlette.log"
    with log_path.open("ab") as log_file:
        offset = log_file.tell()
        process = spawn([*pin, *argv], stdout=log_file, stderr=log_file, env=env)
    wait_ready(process, port, "uvicorn")
    return Server(process, port, [process.pid], [process.pid], None, log_path, offset)


def make_targets(
    baseline: Path | None = None,
    redis: BenchRedis | str | None = None,
    auth: AuthSetup | str | None = None,
) -> dict[str, Target]:
    """The targets; `redis` is the benchmark's Redis, or why there is none (the Redis targets
    are then skipped with that reason); `auth` the run's JWT secret and tokens, or why there
    are none (the same for the JWT targets)."""
    bench_redis = redis if isinstance(redis, BenchRedis) else None
    no_redis = redis if isinstance(redis, str) else "the benchmark's Redis was not started"

    def with_redis(available: Callable[[], str | None]) -> Callable[[], str | None]:
        return lambda: available() if bench_redis is not None else no_redis

    redis_url = bench_redis.url(0) if bench_redis else "redis://127.0.0.1:<port>/0"
    nchan_redis_url = bench_redis.url(1) if bench_redis else "redis://127.0.0.1:<port>/1"
    redis_note = (
        f"private redis-server {bench_redis.version} on port {bench_redis.port}, no persistence, "
        "emptied before each fresh server"
        if bench_redis
        else "private redis-server"
    )
    reset = bench_redis.reset if bench_redis else None
    jwt_options = ("--jwt-key", auth.secret) if isinstance(auth, AuthSetup) else ()
    targets = {
        "ssehub": Target(
            "ssehub",
            f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            start_ssehub,
            "ssehub serve --heartbeat 60 --history 10000 (1 process; backend: memory)",
            ssehub_available,
        ),
        # The same hub spoken to as a Mercure hub: subscribe and publish on /.well-known/mercure
        # (a form publish answered with the id as text/plain; never the C fast path).
        "ssehub-mercure": Target(
            "ssehub-mercure",
            f"/.well-known/mercure?topic={TOPIC}",
            "/.well-known/mercure",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, name="ssehub-mercure"),
            "ssehub serve --heartbeat 60 --history 10000 (1 process; backend: memory), "
            "through /.well-known/mercure",
            ssehub_available,
        ),
        "ssehub-sqlite": Target(
            "ssehub-sqlite",
            f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, backend="sqlite", name="ssehub-sqlite"),
            "ssehub serve --backend sqlite:////<benchmarks/.work/ssehub-sqlite-<port>.db> "
            "--heartbeat 60 --history 10000 (1 process; a fresh database file per run)",
            lambda: ssehub_backend_available("sqlite"),
        ),
        "ssehub-redis": Target(
            "ssehub-redis",
            f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, backend=redis_url, name="ssehub-redis"),
            f"ssehub serve --backend {redis_url} --heartbeat 60 --history 10000 (1 process; "
            f"{redis_note})",
            with_redis(lambda: ssehub_backend_available("redis")),
            reset,
            bench_redis,
        ),
        "ssehub-auth": Target(
            "ssehub-auth",
            auth.probe_path if isinstance(auth, AuthSetup) else f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, name="ssehub-auth", extra=jwt_options),
            "ssehub serve --jwt-key <secret> --heartbeat 60 --history 10000 (1 process; "
            "backend: memory; HS256, a random 64-character secret): each subscriber sends its "
            f'own token (subscribe: ["{TOPIC}"]) as `/events?topic={TOPIC}&authorization=<jwt>`, '
            'every publish `Authorization: Bearer <jwt>` (publish: ["*"]); events public',
            lambda: ssehub_auth_available(auth),
            sub_paths=auth.granted_paths if isinstance(auth, AuthSetup) else None,
            pub_headers=auth.pub_headers if isinstance(auth, AuthSetup) else (),
        ),
        PRIVATE: Target(
            PRIVATE,
            auth.probe_path if isinstance(auth, AuthSetup) else f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, name=PRIVATE, extra=jwt_options),
            "the same hub as ssehub-auth; fan-out only: half the subscribers hold a token "
            f'granting the topic (subscribe: ["{TOPIC}"]), the other half one granting nothing '
            "(no subscribe claim); events published with private=on (the warm-up event public)",
            lambda: ssehub_auth_available(auth),
            sub_paths=auth.granted_paths if isinstance(auth, AuthSetup) else None,
            pub_headers=auth.pub_headers if isinstance(auth, AuthSetup) else (),
            denied_sub_paths=auth.denied_paths if isinstance(auth, AuthSetup) else Path("-"),
            phases=("fanout",),
        ),
        "nchan": Target(
            "nchan",
            f"/sub/{TOPIC}",
            f"/pub/{TOPIC}",
            None,
            start_nchan,
            f"nginx+nchan, worker_processes 1 ({nginx_version()})",
            nchan_available,
        ),
        "nchan-redis": Target(
            "nchan-redis",
            f"/sub/{TOPIC}",
            f"/pub/{TOPIC}",
            None,
            lambda port, pin: start_nchan(port, pin, nchan_redis_url),
            f"nginx+nchan in Redis mode (`nchan_redis_server {nchan_redis_url}`, "
            "`nchan_redis_pass` in the pub and sub locations; storage mode distributed), "
            f"worker_processes 1 ({redis_note})",
            with_redis(nchan_available),
            reset,
            bench_redis,
        ),
        "sse-starlette": Target(
            "sse-starlette",
            f"/sub/{TOPIC}",
            f"/pub/{TOPIC}",
            None,
            start_starlette,
            "sse-starlette broadcaster (queue per subscriber) on uvicorn+uvloop+httptools, "
            "1 process",
            starlette_available,
        ),
    }
    if baseline is not None:
        # Another checkout of ssehub (with its own .venv), side by side in the same run: how a
        # change compares with the commit before it.
        venv_bin = baseline.resolve() / ".venv" / "bin"
        targets[BASELINE] = Target(
            BASELINE,
            f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            lambda port, pin: start_ssehub(port, pin, venv_bin, name=BASELINE),
            f"ssehub serve from {baseline} ({_commit_of(baseline)}), same options",
            lambda: ssehub_available(venv_bin),
        )
    return targets


def _commit_of(checkout: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(checkout), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return result.stdout.strip()[:60] or "not a git checkout"


@contextlib.contextmanager
def running(target: Target, pin: list[str], reset: bool = True) -> Iterator[Server]:
    """A fresh server of the target (and, with `reset`, an empty Redis under it)."""
    if reset and target.reset is not None:
        target.reset()
    server = target.start(free_port(), pin)
    try:
        yield server
    finally:
        stop(server.process)
        server.log_problems = log_problems(server)
        if server.error_log is not None:  # nginx's per-run prefix directory
            shutil.rmtree(server.error_log.parent, ignore_errors=True)
        for path in server.cleanup:
            path.unlink(missing_ok=True)


# What a server's log says that may matter: ssehub logs only its start line otherwise.
LOG_PROBLEM = re.compile(
    r"error|warn|exception|traceback|critical|lost|fell behind|unreachable|refused", re.I
)
NGINX_PROBLEM = re.compile(r"\[(warn|error|crit|alert|emerg)\]")


def log_problems(server: Server, limit: int = 5) -> list[str]:
    """This run's notable log lines (distinct, at most `limit`, with how often each came)."""
    lines: list[str] = []
    if server.log is not None and server.log.exists():
        with server.log.open("rb") as file:
            file.seek(server.log_offset)
            text = file.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if LOG_PROBLEM.search(line)]
    if server.error_log is not None and server.error_log.exists():
        lines += [
            line
            for line in server.error_log.read_text(errors="replace").splitlines()
            # "Missed message" is reported by the publish-rate test (missed_message_warnings)
            if NGINX_PROBLEM.search(line) and "Missed message" not in line
        ]
    counts: dict[str, int] = {}
    for line in lines:
        # nginx lines start with a timestamp and pid; the rest says what happened
        key = re.sub(
            r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (\*\d+ )?", r"[\1] ", line
        )
        key = key.split(", client:")[0][:300]
        counts[key] = counts.get(key, 0) + 1
    return [f"{n} x {key}" if n > 1 else key for key, n in list(counts.items())[:limit]] + (
        [f"... and {len(counts) - limit} other kinds of line"] if len(counts) > limit else []
    )


# --------------------------------------------------------------------------------------------
# the load generator


def build_sseload() -> Path:
    source = ASSETS / "sseload.c"
    binary = WORK / "sseload"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        compiler = os.environ.get("CC", "gcc")
        argv = [compiler, "-O2", "-Wall", "-pthread", "-o", str(binary), str(source)]
        log(f"compiling: {' '.join(argv)}")
        subprocess.run(argv, check=True)
    return binary


@dataclass
class Options:
    subscribers: int
    events: int
    idle_subscribers: int
    pub_seconds: float
    pub_connections: int
    fanout_timeout: float
    server_pin: list[str]
    load_pin: list[str]
    phases: set[str]
    repeat: int = 3
    sseload: Path = field(default_factory=Path)
    # the nodes test: hub A's pin, hub B's pin, and the generators' (which share both cores)
    node_pins: tuple[list[str], list[str], list[str]] = ([], [], [])

    def repeats(self, target: Target, phase: str) -> int:
        """Fresh-server runs of a phase; the table shows their medians.

        sse-starlette's fan-out takes over a minute and it is an order of magnitude from the
        others, so its tests run once to keep the whole benchmark within about five minutes.
        The nodes test is ssehub-redis's alone; ssehub-private runs the fan-out test only.
        """
        if target.phases is not None and phase not in target.phases:
            return 0
        if phase == "nodes":
            return self.repeat if target.name == "ssehub-redis" else 0
        if phase == "memory" or target.name == "sse-starlette":
            return 1
        return self.repeat


def sseload_argv(
    opts: Options,
    target: Target,
    server: Server,
    mode: str,
    subs: int,
    sub_paths: Path | None = None,
) -> list[str]:
    """`sub_paths`: the subscribers' request paths (default: the target's, if it has some)."""
    argv = [*opts.load_pin, str(opts.sseload), mode, "--port", str(server.port)]
    argv += ["--sub-path", target.sub_path, "--subs", str(subs)]
    if sub_paths or target.sub_paths:
        argv += ["--sub-paths", str(sub_paths or target.sub_paths)]
    return argv


def split_subscribers(opts: Options) -> tuple[int, int]:
    """ssehub-private's fan-out: (granted, ungranted) subscribers, N in all."""
    return opts.subscribers // 2, opts.subscribers - opts.subscribers // 2


def delivering_subscribers(name: str, opts: Options) -> int:
    """The fan-out subscribers that must get every event."""
    return split_subscribers(opts)[0] if name == PRIVATE else opts.subscribers


def fanout_argv(
    opts: Options, target: Target, server: Server, subs: int | None = None
) -> list[str]:
    argv = sseload_argv(opts, target, server, "fanout", opts.subscribers if subs is None else subs)
    argv += ["--events", str(opts.events), "--pub-path", target.pub_path]
    argv += ["--timeout", str(opts.fanout_timeout)]
    if target.form_topic is not None:
        argv += ["--form-topic", target.form_topic]
    for header in target.pub_headers:
        argv += ["--pub-header", header]
    if target.private:
        argv += ["--private"]
    for pid in server.pids:
        argv += ["--server-pid", str(pid)]
    if target.redis is not None:  # the Redis server's CPU over the same window
        argv += ["--redis-port", str(target.redis.port)]
    return argv


def run_fanout(opts: Options, target: Target) -> dict[str, Any]:
    if target.private:
        return run_private_fanout(opts, target)
    with running(target, opts.server_pin) as server:
        argv = fanout_argv(opts, target, server)
        if target.redis is not None:
            target.redis.reset_stats()
        started = time.monotonic()
        gen = spawn(argv, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None
        output = gen.stdout.read()
        status, _ = wait_rusage(gen, opts.fanout_timeout + 30)
        result: dict[str, Any] = json.loads(output) if output.strip() else {}
        result["exit_status"] = status
        result["elapsed_s"] = time.monotonic() - started
        if target.redis is not None:  # the whole run's: subscribers connecting, warm-up, events
            result["redis_commands"] = target.redis.command_stats()
    result["log_problems"] = server.log_problems
    if not result.get("t_first_ns") and "error" not in result:
        result["error"] = not_published(result, server)
    return result


LEAK_GRACE = 1.0  # s the ungranted half keeps listening after the granted half got everything


def run_private_fanout(opts: Options, target: Target) -> dict[str, Any]:
    """ssehub-private: the granted half of the subscribers in fanout mode (with the publisher,
    events private), the ungranted half in follow mode expecting no event (`--events 0`).

    The ungranted half is opened first (READY: all open); the warm-up event, public, reaches
    both halves, so that the ungranted subscribers' registration is confirmed too ("warm").
    Once the granted half has every event (or the publisher gave up), the ungranted half gets
    LEAK_GRACE more to show a stray event, then SIGTERM makes it report.
    """
    granted, denied = split_subscribers(opts)
    assert target.denied_sub_paths is not None
    with running(target, opts.server_pin) as server:
        follow = sseload_argv(opts, target, server, "follow", denied, target.denied_sub_paths)
        follow += ["--events", "0", "--timeout", str(opts.fanout_timeout + 60)]
        follower = spawn(follow, stdout=subprocess.PIPE, text=True)
        assert follower.stdout is not None
        ready = follower.stdout.readline()
        if not ready.startswith("READY"):
            wait_rusage(follower, 5)
            raise RuntimeError(f"the ungranted subscribers did not get ready: {ready!r}")
        argv = fanout_argv(opts, target, server, granted)
        started = time.monotonic()
        gen = spawn(argv, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None
        output = gen.stdout.read()
        status, _ = wait_rusage(gen, opts.fanout_timeout + 30)
        elapsed = time.monotonic() - started
        time.sleep(LEAK_GRACE)
        with contextlib.suppress(ProcessLookupError):
            os.kill(follower.pid, signal.SIGTERM)
        follower_status, follower_cpu = wait_rusage(follower, 30)
        follower_output = follower.stdout.read()
    result: dict[str, Any] = json.loads(output) if output.strip() else {}
    result["exit_status"] = status
    result["elapsed_s"] = elapsed
    result["log_problems"] = server.log_problems
    result["delivering_subscribers"] = granted
    match = re.search(r"open=(\d+) failed=(\d+)", ready)
    d: dict[str, Any] = json.loads(follower_output) if follower_output.strip() else {}
    result["denied"] = {
        "subs": denied,
        "open": d.get("open", int(match.group(1)) if match else 0),
        "failed": d.get("failed", int(match.group(2)) if match else None),
        "still_open": d.get("still_open"),
        "closed_early": d.get("closed_early"),
        "warm": d.get("warm"),
        # every event but the public warm-up one: private events that reached them
        "leaked": d.get("received"),
        "leaked_min_per_sub": d.get("min_per_sub"),
        "leaked_max_per_sub": d.get("max_per_sub"),
        "exit_status": follower_status,
        "cpu_s": follower_cpu,  # the whole life of the follower, connecting included
    }
    if not result.get("t_first_ns") and "error" not in result:
        result["error"] = not_published(result, server)
    elif not d:
        result["error"] = f"the ungranted subscribers reported nothing (exit {follower_status})"
    return result


def not_published(result: dict[str, Any], server: Server) -> str:
    """Why a fan-out run published nothing: a run to report, not to rate."""
    why = f"nothing published ({result.get('open', 0)} subscribers open"
    why += f", {result.get('failed', 0)} failed, generator exit {result.get('exit_status')})"
    problems = [p for p in server.log_problems if "Traceback" not in p]
    return why + (f"; server log: {problems[0]}" if problems else "")


NODE_KEYS = (
    "open",
    "warm",
    "received",
    "lost",
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "server_cpu_s",
    "gen_cpu_s",
    "cpu_wall_s",
)


def run_nodes(opts: Options, target: Target) -> dict[str, Any]:
    """Two hubs on one Redis, N subscribers on each, E events published through hub A only.

    Hub B's subscribers are followed by a second sseload (`follow` mode), started first: the
    publisher starts once they are all open. Each hub reads each event from Redis once.
    """
    redis = target.redis
    if redis is None:
        return {"error": "no Redis"}
    pin_a, pin_b, gen_pin = opts.node_pins
    with running(target, pin_a) as node_a, running(target, pin_b, reset=False) as node_b:
        follow = [*gen_pin, str(opts.sseload), "follow", "--port", str(node_b.port)]
        follow += ["--sub-path", target.sub_path, "--subs", str(opts.subscribers)]
        follow += ["--events", str(opts.events), "--timeout", str(opts.fanout_timeout)]
        follow += ["--redis-port", str(redis.port)]
        for pid in node_b.pids:
            follow += ["--server-pid", str(pid)]
        redis.reset_stats()
        follower = spawn(follow, stdout=subprocess.PIPE, text=True)
        assert follower.stdout is not None
        ready = follower.stdout.readline()
        if not ready.startswith("READY"):
            wait_rusage(follower, 5)
            raise RuntimeError(f"the follower on hub B did not get ready: {ready!r}")
        argv = fanout_argv(opts, target, node_a)
        argv[: len(opts.load_pin)] = gen_pin
        started = time.monotonic()
        gen = spawn(argv, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None
        output_a = gen.stdout.read()
        status_a, _ = wait_rusage(gen, opts.fanout_timeout + 30)
        # The follower ends once its subscribers have every event (or 5 s after the last one);
        # if it does not, wait_rusage's SIGTERM makes it report what it has.
        status_b, _ = wait_rusage(follower, 30)
        output_b = follower.stdout.read()
        elapsed = time.monotonic() - started
        commands = redis.command_stats()
    a: dict[str, Any] = json.loads(output_a) if output_a.strip() else {}
    b: dict[str, Any] = json.loads(output_b) if output_b.strip() else {}
    problems = [f"hub A: {line}" for line in node_a.log_problems]
    problems += [f"hub B: {line}" for line in node_b.log_problems]
    if not a.get("t_first_ns") or not b.get("t_last_delivery_ns"):
        return {
            "error": f"no result (publisher exit {status_a}, follower exit {status_b}): "
            + not_published(a, node_a),
            "node_a": a,
            "node_b": b,
            "log_problems": problems,
        }
    t_last = max(a["t_last_delivery_ns"], b["t_last_delivery_ns"])
    window = (t_last - a["t_first_ns"]) / 1e9
    received = a["received"] + b["received"]
    redis_end = max(a.get("redis_cpu_at_end_s", 0), b.get("redis_cpu_at_end_s", 0))
    redis_cpu = redis_end - a["redis_cpu_at_start_s"] if "redis_cpu_at_start_s" in a else None

    def both(key: str) -> Any:
        return a.get(key, 0) + b.get(key, 0)

    return {
        "nodes": 2,
        "subscribers_per_node": opts.subscribers,
        "events": opts.events,
        "open": both("open"),
        "failed": both("failed"),
        "warm": both("warm"),
        "received": received,
        "lost": both("lost"),
        "gaps": both("gaps"),
        "dups": both("dups"),
        "closed_early": both("closed_early"),
        "publish_error": a.get("publish_error", 1),
        "timed_out": max(a.get("timed_out", 1), b.get("timed_out", 1)),
        "window_s": window,
        "deliveries_per_s": received / window if window > 0 else 0.0,
        # the worse hub's (percentiles of two sample sets do not add up)
        "p50_ms": max(a.get("p50_ms", -1), b.get("p50_ms", -1)),
        "p99_ms": max(a.get("p99_ms", -1), b.get("p99_ms", -1)),
        "publish_s": a.get("publish_s"),
        "pub_rtt_p50_ms": a.get("pub_rtt_p50_ms"),
        "pub_rtt_p99_ms": a.get("pub_rtt_p99_ms"),
        "gen_cpu_s": both("gen_cpu_s"),
        "server_cpu_s": both("server_cpu_s"),
        "redis_cpu_s": redis_cpu,
        "redis_commands": commands,
        # the machine-wide reading and its window are the publisher's (they overlap the
        # follower's within the delivery time of the first and of the last event)
        "cpu_wall_s": a.get("cpu_wall_s"),
        "machine_busy_s": a.get("machine_busy_s"),
        "steal_s": a.get("steal_s"),
        "node_a": {key: a.get(key) for key in NODE_KEYS},
        "node_b": {key: b.get(key) for key in NODE_KEYS},
        "exit_status": status_a or status_b,
        "elapsed_s": elapsed,
        "log_problems": problems,
    }


def run_memory(opts: Options, target: Target) -> dict[str, Any]:
    with running(target, opts.server_pin) as server:
        open_and_close_subscriber(server.port, target.sub_path)
        before = {pid: rss_bytes(pid) for pid in server.all_pids}
        argv = sseload_argv(opts, target, server, "subs", opts.idle_subscribers)
        argv += ["--timeout", "120"]
        gen = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert gen.stdin is not None and gen.stdout is not None
        ready = gen.stdout.readline()
        time.sleep(1.0)  # let the server finish whatever the last connections started
        after = {pid: rss_bytes(pid) for pid in server.all_pids}
        still_up = server.process.poll() is None
        gen.stdin.close()
        report = json.loads(gen.stdout.read() or "{}")
        wait_rusage(gen, 30)
        time.sleep(1.0)
        closed = {pid: rss_bytes(pid) for pid in server.all_pids} if still_up else {}
    match = re.search(r"open=(\d+) failed=(\d+)", ready)
    opened = int(match.group(1)) if match else report.get("open", 0)
    work = server.pids
    delta = sum(after[p] - before[p] for p in work)
    return {
        "subscribers": opts.idle_subscribers,
        "open": opened,
        "failed": int(match.group(2)) if match else report.get("failed"),
        "still_open": report.get("still_open"),
        "rss_before": sum(before[p] for p in work),
        "rss_after": sum(after[p] for p in work),
        "rss_after_close": sum(closed[p] for p in work) if closed else None,
        "rss_all_before": sum(before.values()),
        "rss_all_after": sum(after.values()),
        "per_sub_bytes": delta / opened if opened else float("nan"),
        "per_sub_bytes_all": (sum(after.values()) - sum(before.values())) / opened
        if opened
        else float("nan"),
        "log_problems": server.log_problems,
    }


def write_wrk_script(target: Target) -> Path:
    body, content_type = target.pub_body(PUB_PAYLOAD)
    script = WORK / f"post-{target.name}.lua"
    script.write_text(
        f"""wrk.method = "POST"
wrk.body = "{body}"
wrk.headers["Content-Type"] = "{content_type}"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
    )
    return script


def missed_message_warnings(server: Server) -> list[str]:
    """nchan logs it when a subscriber skips messages; the hub and uvicorn have no such log."""
    if server.error_log is None or not server.error_log.exists():
        return []
    lines = [line for line in server.error_log.read_text().splitlines() if "Missed message" in line]
    if not lines:
        return []
    message = lines[0].split("nchan: ", 1)[-1].split(", client:")[0]
    return [f"{len(lines)} x nchan error.log: {message}"]


def run_publish_rate(opts: Options, target: Target) -> dict[str, Any]:
    if not shutil.which("wrk"):
        return {"error": "wrk is not installed"}
    script = write_wrk_script(target)
    with running(target, opts.server_pin) as server:
        argv = sseload_argv(opts, target, server, "subs", 1)
        argv += ["--timeout", str(opts.pub_seconds + 120), "--drain-ms", "1500"]
        argv += ["--batch-us", "1000"]  # only counting here: read in batches, to spare core 1
        sub = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert sub.stdin is not None and sub.stdout is not None
        sub.stdout.readline()  # READY
        url = f"http://127.0.0.1:{server.port}{target.pub_path}"
        wrk_argv = [*opts.load_pin, "wrk", "-t1", f"-c{opts.pub_connections}"]
        for header in target.pub_headers:
            wrk_argv += ["-H", header]
        wrk_argv += [f"-d{opts.pub_seconds:g}s", "--timeout", "10s", "-s", str(script), url]
        redis0 = target.redis.cpu_seconds() if target.redis else None
        cpu0 = proc_cpu(server.pids)
        busy0, steal0 = machine_cpu()
        t0 = time.monotonic()
        wrk = spawn(wrk_argv, stdout=subprocess.PIPE, text=True)
        assert wrk.stdout is not None
        wrk_out = wrk.stdout.read()
        status, wrk_cpu = wait_rusage(wrk, opts.pub_seconds + 30)
        wall = time.monotonic() - t0
        server_cpu = proc_cpu(server.pids) - cpu0
        busy1, steal1 = machine_cpu()
        redis_cpu = target.redis.cpu_seconds() - redis0 if target.redis and redis0 else None
        sub.stdin.close()
        sub_report = json.loads(sub.stdout.read() or "{}")
        wait_rusage(sub, 60)
        server_warnings = missed_message_warnings(server)
    match = re.search(r"WRKJSON (\{.*\})", wrk_out)
    if not match:
        return {
            "error": f"wrk failed (status {status}): {wrk_out[-500:]}",
            "log_problems": server.log_problems,
        }
    stats = json.loads(match.group(1))
    requests = stats["requests"]
    errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    received = sub_report.get("received", 0)
    # wrk counts completed responses; up to one request per connection may still have been in
    # flight (published, not yet answered) when its clock ran out.
    delivered_ok = (
        errors == 0
        and requests <= received <= requests + opts.pub_connections
        and sub_report.get("closed_early", 1) == 0
    )
    return {
        "requests": requests,
        "errors": errors,
        "duration_s": stats["duration_us"] / 1e6,
        "publishes_per_s": requests / (stats["duration_us"] / 1e6),
        # What the one subscriber actually got, per second of publishing: a server that answers
        # publishes faster than it delivers them (and drops the excess) shows it here.
        "received_per_s": received / (stats["duration_us"] / 1e6),
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "subscriber_received": received,
        "subscriber_closed_early": sub_report.get("closed_early"),
        "delivered_ok": delivered_ok,
        "server_warnings": server_warnings,
        "wall_s": wall,
        "wrk_cpu_s": wrk_cpu,
        "sub_cpu_s": sub_report.get("gen_cpu_s"),
        "server_cpu_s": server_cpu,
        "redis_cpu_s": redis_cpu,
        # the subscriber's CPU is counted from READY to its exit, a little longer than wrk's run
        "machine_busy_s": busy1 - busy0,
        "steal_s": steal1 - steal0,
        "log_problems": server.log_problems,
    }


RATE_KEY = {"fanout": "deliveries_per_s", "nodes": "deliveries_per_s", "publish": "publishes_per_s"}


def aggregate(phase: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with per-metric medians and worst-case correctness.

    Rates come from the undisturbed runs when there are any (runs next to someone else's
    CPU-heavy work are reported but not used); correctness counts every run.
    """
    valid = [r for r in runs if "error" not in r]
    if not valid:
        return {**runs[-1], "runs": runs}
    key = RATE_KEY.get(phase)
    quiet = [r for r in valid if r.get("other_load", 0) <= DISTURBED]
    if key is None or len(runs) == 1:
        return {**runs[0], "runs": runs, "all_disturbed": not quiet}
    rated = quiet or valid
    ordered = sorted(rated, key=lambda r: r.get(key) or 0)
    merged = {**ordered[(len(ordered) - 1) // 2], "runs": runs, "all_disturbed": not quiet}
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        merged["error"] = errors[0]
    if phase in ("fanout", "nodes"):
        for metric in ("p50_ms", "p99_ms"):
            merged[metric] = statistics.median(r[metric] for r in rated)
        redis = [r["redis_cpu_s"] for r in rated if r.get("redis_cpu_s") is not None]
        if redis:  # for the Redis CPU per event
            merged["redis_cpu_s"] = statistics.median(redis)
        for metric in (
            "lost",
            "gaps",
            "dups",
            "closed_early",
            "failed",
            "publish_error",
            "timed_out",
        ):
            merged[metric] = max(r.get(metric, 1) for r in valid)
        merged["open"] = min(r.get("open", 0) for r in valid)
        denied = [r["denied"] for r in valid if "denied" in r]
        if denied:  # ssehub-private's ungranted half: the worst of the runs
            merged["denied"] = {
                **merged.get("denied", {}),
                "open": min(d.get("open") or 0 for d in denied),
                "failed": max(d.get("failed") or 0 for d in denied),
                "closed_early": max(d.get("closed_early") or 0 for d in denied),
                "warm": min(d.get("warm") or 0 for d in denied),
            }
    else:
        merged["delivered_ok"] = all(r.get("delivered_ok") for r in valid)
        merged["server_warnings"] = [w for r in valid for w in r.get("server_warnings", [])]
    return merged


# --------------------------------------------------------------------------------------------
# report


def fmt_rate(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.0f}"


def fmt_ms(value: float | None) -> str:
    if value is None or value != value or value < 0:
        return "-"
    return f"{value:.2f} ms" if value < 100 else f"{value:,.0f} ms"


def fmt_bytes(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:,.0f} B ({value / 1024:.2f} KiB)"


def other_load(run: dict[str, Any], ours: tuple[str, ...], wall_key: str) -> str:
    """CPU the rest of the machine used during a run (other processes), in % of one core."""
    wall = run.get(wall_key)
    busy = run.get("machine_busy_s")
    if not wall or busy is None:
        return "-"
    other = max(0.0, busy - sum(run.get(k) or 0 for k in ours))
    steal = run.get("steal_s") or 0
    return f"{100 * other / wall:.0f}%" + (f" (+{100 * steal / wall:.0f}% steal)" if steal else "")


def disturbed_note(run: dict[str, Any]) -> str:
    load = run.get("other_load", 0)
    return f" (DISTURBED: others used {load:.0%} of a core; not used)" if load > DISTURBED else ""


def secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def pct(cpu: float | None, wall: float | None) -> str:
    if cpu is None or not wall or cpu != cpu:
        return "-"
    return f"{100 * cpu / wall:.0f}%"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or a != a or b != b:
        return "-"
    return f"{a / b:.2f}x"


def fanout_lost(f: dict[str, Any]) -> int | None:
    if not f:
        return None
    lost = f.get("lost")
    if lost is None:
        return None
    return int(lost) + int(f.get("dups", 0))


def lost_cell(f: dict[str, Any], lost: int | None) -> str:
    if lost is None:
        return "-"
    if f.get("timed_out"):
        return f"timed out, {lost:,} undelivered"
    return f"{lost:,}"


def fanout_ok(f: dict[str, Any], opts: Options, subscribers: int | None = None) -> bool:
    return bool(
        f
        and "error" not in f  # a run that failed (the others may have been fine)
        and f.get("open") == (opts.subscribers if subscribers is None else subscribers)
        and f.get("failed") == 0
        and f.get("lost") == 0
        and f.get("gaps") == 0
        and f.get("dups") == 0
        and f.get("closed_early") == 0
        and f.get("publish_error") == 0
    )


def leaks(f: dict[str, Any]) -> list[int]:
    """ssehub-private: the private events each fan-out run's ungranted half received (every run,
    the failed ones too: a leak is reported whatever else went wrong)."""
    return [
        int(r["denied"]["leaked"])
        for r in f.get("runs") or [f]
        if (r.get("denied") or {}).get("leaked") is not None
    ]


def denied_problems(f: dict[str, Any]) -> list[str]:
    """ssehub-private: what went wrong with the ungranted half (besides leaks)."""
    d = f.get("denied")
    if not d:
        return ["the ungranted subscribers reported nothing"] if f else []
    problems = []
    if d.get("open") != d.get("subs") or d.get("failed"):
        problems.append(f"{d.get('open')}/{d.get('subs')} ungranted subscribers open")
    if d.get("closed_early"):
        problems.append(f"{d.get('closed_early')} ungranted subscribers closed early")
    if (d.get("warm") or 0) < (d.get("open") or 0):
        problems.append(
            f"only {d.get('warm')} of {d.get('open')} ungranted subscribers got the public "
            "warm-up event"
        )
    return problems


def nodes_ok(n: dict[str, Any], opts: Options) -> bool:
    return fanout_ok(n, opts, 2 * opts.subscribers)


def bottleneck_verdict(f: dict[str, Any], p: dict[str, Any]) -> str:
    """Which side limited each test: the generators (and Redis) share core 1, the server has
    core 0."""
    verdicts = []
    for test, load, server in (
        (
            "fan-out",
            (f.get("gen_cpu_s", 0) + (f.get("redis_cpu_s") or 0)) / f["cpu_wall_s"]
            if f.get("cpu_wall_s")
            else None,
            f.get("server_cpu_s", 0) / f["cpu_wall_s"] if f.get("cpu_wall_s") else None,
        ),
        (
            "publish",
            ((p.get("wrk_cpu_s") or 0) + (p.get("sub_cpu_s") or 0) + (p.get("redis_cpu_s") or 0))
            / p["wall_s"]
            if p.get("wall_s")
            else None,
            (p.get("server_cpu_s") or 0) / p["wall_s"] if p.get("wall_s") else None,
        ),
    ):
        if load is None or server is None:
            continue
        if load < 0.85:
            verdict = "server-bound" if server >= 0.85 else "round-trip-bound, neither core full"
            verdict += ", generator has headroom"
        elif server >= 0.85:
            verdict = "BOTH cores near full: the server figure is a lower bound"
        else:
            verdict = "WARNING: GENERATOR-BOUND"
        verdicts.append(f"{test}: {verdict}")
    return "; ".join(verdicts) or "-"


def target_phases(name: str, opts: Options) -> set[str]:
    """The selected tests this target runs."""
    return {"fanout"} & opts.phases if name == PRIVATE else opts.phases


def check_failures(result: dict[str, Any], opts: Options, name: str = "") -> list[str]:
    failures = []
    f = result.get("fanout") or {}
    m = result.get("memory") or {}
    p = result.get("publish") or {}
    n = result.get("nodes")
    phases = target_phases(name, opts)
    if "fanout" in phases and not fanout_ok(f, opts, delivering_subscribers(name, opts)):
        lost = fanout_lost(f)
        failures.append(f"fan-out: {f.get('error') or lost_cell(f, lost) + ' lost'}")
    if name == PRIVATE and "fanout" in phases:
        leaked = sum(leaks(f))
        if leaked:
            failures.append(f"PRIVATE EVENTS LEAKED: {leaked:,} to ungranted subscribers")
        failures += denied_problems(f)
    if n is not None and not nodes_ok(n, opts):
        lost = fanout_lost(n)
        failures.append(f"two hubs: {n.get('error') or lost_cell(n, lost) + ' lost'}")
    if "memory" in phases and m.get("open") != opts.idle_subscribers:
        opened = m.get("open")
        failures.append(f"memory: {m.get('error') or f'{opened} open'}")
    if "publish" in phases and not p.get("delivered_ok"):
        if "error" in p:
            failures.append(f"publish: {p['error']}")
        else:
            missing = p.get("requests", 0) - p.get("subscriber_received", 0)
            failures.append(f"publish: subscriber missed {missing:,}")
    return failures


# Ratio columns, first target / second, shown when both ran.
PAIRS = (
    ("ssehub", "nchan"),
    ("ssehub", "sse-starlette"),
    ("ssehub", BASELINE),
    ("ssehub-redis", "nchan-redis"),
    ("ssehub-redis", "ssehub"),
    ("ssehub-sqlite", "ssehub"),
    ("ssehub-auth", "ssehub"),
    (PRIVATE, "ssehub"),
    (PRIVATE, "ssehub-auth"),
    ("nchan-redis", "nchan"),
)


def fmt_commands(stats: dict[str, list[int]] | None, events: int, top: int = 4) -> str:
    """The commands Redis ran most time in, per event: calls and microseconds inside Redis."""
    if not stats or not events:
        return "-"
    ordered = sorted(stats.items(), key=lambda item: -item[1][1])[:top]
    return ", ".join(
        f"{name} {calls / events:.2f} x {usec / calls:.0f} µs" for name, (calls, usec) in ordered
    )


def fmt_us(value: float | None) -> str:
    if value is None or value != value:
        return "-"
    return f"{value * 1e6:.1f} µs"


def report(opts: Options, targets: dict[str, Target], results: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []
    cores = os.cpu_count()

    def ran(name: str) -> bool:
        return bool(results.get(name)) and "skipped" not in results[name]

    def get(name: str, phase: str, key: str) -> Any:
        return ((results.get(name) or {}).get(phase) or {}).get(key)

    def per_delivering(name: str) -> float | None:
        """Fan-out deliveries/s per subscriber that gets the events (ssehub-private: half)."""
        rate = get(name, "fanout", "deliveries_per_s")
        return rate / delivering_subscribers(name, opts) if rate else None

    names = [n for n in results if ran(n)] or list(results)
    out.append(f"## Fan-out benchmark: {' vs '.join(names)}\n")
    out.append(
        f"fan-out: {opts.subscribers} subscribers x {opts.events} events, published one at a "
        "time over one keep-alive connection; memory: "
        f"{opts.idle_subscribers} idle subscribers; publish rate: {opts.pub_connections} "
        f"keep-alive publishers (wrk -t1 -c{opts.pub_connections}) for {opts.pub_seconds:g} s, "
        "1 subscriber. Each test runs on a fresh server; fan-out and publish rate run "
        f"{opts.repeat} times (sse-starlette's fan-out once) and the table shows medians.\n"
    )
    pinning = (
        f"server pinned to core 0 (`{' '.join(opts.server_pin)}`), load generators to core 1 "
        f"(`{' '.join(opts.load_pin)}`)"
        if opts.server_pin
        else "no CPU pinning"
    )
    redis = next((t.redis for n, t in targets.items() if n in results and t.redis), None)
    if redis is not None:
        pinning += (
            f"; the benchmark's Redis (redis-server {redis.version}, port {redis.port}, no "
            "persistence, emptied before each fresh server) "
            + ("on core 1 with the load generators" if opts.server_pin else "unpinned")
            + ": it stands for a Redis on another machine, and its CPU time is reported"
        )
    out.append(f"Machine: {cores} cores; {pinning}.\n")
    for name, result in results.items():
        out.append(f"- **{name}**: {targets[name].description}")
        if "skipped" in result:
            out.append(f"  - SKIPPED: {result['skipped']}")
    out.append("")
    out.append(
        "| target | deliveries/s | p50 | p99 | lost | RSS/idle sub | publishes/s "
        "| subscriber got/s | check |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for name, result in results.items():
        if "skipped" in result:
            out.append(f"| {name} | skipped | | | | | | | |")
            continue
        f = result.get("fanout") or {}
        m = result.get("memory") or {}
        p = result.get("publish") or {}
        lost = fanout_lost(f)
        failures = check_failures(result, opts, name)
        check = "FAIL: " + "; ".join(failures) if failures else "PASS"
        out.append(
            f"| {name} | {fmt_rate(f.get('deliveries_per_s'))} | {fmt_ms(f.get('p50_ms'))} "
            f"| {fmt_ms(f.get('p99_ms'))} | {lost_cell(f, lost)} "
            f"| {fmt_bytes(m.get('per_sub_bytes'))} | {fmt_rate(p.get('publishes_per_s'))} "
            f"| {fmt_rate(p.get('received_per_s'))} | {check} |"
        )
    out.append("")
    for name, result in results.items():
        for phase in ("fanout", "nodes", "publish"):
            if (result.get(phase) or {}).get("all_disturbed"):
                out.append(
                    f"**WARNING**: every {phase} run of {name} shared the machine with other "
                    f"processes using more than {DISTURBED:.0%} of a core (see 'other load' "
                    "below): its figures are not trustworthy; rerun on an idle machine."
                )
                out.append("")
    if ran(PRIVATE):
        f = results[PRIVATE].get("fanout") or {}
        leaked = leaks(f)
        granted, denied = split_subscribers(opts)
        if sum(leaked):
            out.append(
                f"**FAIL: PRIVATE EVENTS LEAKED**: ssehub-private's {denied} subscribers whose "
                "token grants nothing received private events they must never see: "
                + ", ".join(f"run {i}: {n:,}" for i, n in enumerate(leaked, 1))
                + " (see the ssehub-private details below)."
            )
            out.append("")
        out.append(
            f"ssehub-private's row: its fan-out figures (deliveries/s, latency, lost) are those "
            f"of the {granted} granted subscribers, the only ones events go to; the other "
            f"{denied} (token granting nothing) must receive none of the {opts.events} private "
            f"events: they received {' / '.join(f'{n:,}' for n in leaked) or 'unknown'} "
            "(per run)."
        )
        out.append("")
    out.append(
        "`lost` = deliveries missing or duplicated over all subscribers (each subscriber must get "
        f"all {opts.events} events in order). `check` = nothing lost/out of order/closed in "
        "fan-out (and in the two-hub test), every idle subscriber opened, and the publish-rate "
        "subscriber received every published event. nchan RSS is its one worker process (the "
        "master holds no connections); nginx preallocates its connection table "
        "(worker_connections 20000) before the 'before' reading, so its per-connection figure "
        "excludes those ~0.4 KiB of preallocated structs."
    )
    out.append("")

    pairs = [(a, b) for a, b in PAIRS if ran(a) and ran(b)]
    if pairs:
        out.append("### Ratios (first target / second)\n")
        out.append("| metric | " + " | ".join(f"{a}/{b}" for a, b in pairs) + " |")
        out.append("|---|" + "---:|" * len(pairs))
        rows = [
            ("deliveries/s", "fanout", "deliveries_per_s"),
            ("p50 latency", "fanout", "p50_ms"),
            ("p99 latency", "fanout", "p99_ms"),
            ("RSS per idle subscriber", "memory", "per_sub_bytes"),
            ("publishes/s", "publish", "publishes_per_s"),
        ]
        for label, phase, key in rows:
            cells = [ratio(get(a, phase, key), get(b, phase, key)) for a, b in pairs]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        if any(PRIVATE in pair for pair in pairs):
            cells = [
                ratio(per_delivering(a), per_delivering(b)) if PRIVATE in (a, b) else "-"
                for a, b in pairs
            ]
            out.append("| deliveries/s per delivering subscriber | " + " | ".join(cells) + " |")
        out.append("")

    def line(ok: bool | None, text: str) -> None:
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        out.append(f"- {verdict} {text}")

    def at_least(
        label: str, factor: float, mine: float | None, theirs: float | None, peer: str
    ) -> None:
        shown = "ssehub (memory)" if peer == "ssehub" else peer
        line(
            None if not (ran(peer) and mine and theirs) else mine >= factor * theirs,
            f"{label} >= {factor:g}x {shown}: {fmt_rate(mine)} vs {factor:g} x "
            f"{fmt_rate(theirs)} ({ratio(mine, theirs)})",
        )

    def p99_at_most(name: str, peer: str) -> None:
        mine, theirs = get(name, "fanout", "p99_ms"), get(peer, "fanout", "p99_ms")
        line(
            None if not (ran(peer) and mine is not None and theirs) else mine <= theirs,
            f"p99 latency <= {peer}: {fmt_ms(mine)} vs {fmt_ms(theirs)}",
        )

    def nothing_lost(name: str) -> None:
        f = (results.get(name) or {}).get("fanout") or {}
        line(fanout_ok(f, opts), f"nothing lost in fan-out: lost {fanout_lost(f)}")

    def rss_line(name: str) -> None:
        per = get(name, "memory", "per_sub_bytes")
        line(
            None if per is None else per <= 2048,
            f"RSS per idle subscriber <= 2 KiB: {fmt_bytes(per)}",
        )

    def every_event(name: str) -> None:
        p = (results.get(name) or {}).get("publish") or {}
        line(
            bool(p.get("delivered_ok")),
            f"publish-rate subscriber got every event: {p.get('subscriber_received')} "
            f"received for {p.get('requests')} completed publishes",
        )

    def received_reference(name: str, peer: str) -> None:
        mine, theirs = (
            get(name, "publish", "received_per_s"),
            get(peer, "publish", "received_per_s"),
        )
        if ran(peer) and mine and theirs:
            out.append(
                f"- (for reference) events the publish-rate subscriber received per second: "
                f"{fmt_rate(mine)} vs {peer} {fmt_rate(theirs)} ({ratio(mine, theirs)})"
            )

    def rate(name: str, phase: str) -> Any:
        return get(name, phase, RATE_KEY[phase])

    if ran("ssehub"):
        out.append("### ssehub targets\n")
        if "fanout" in opts.phases:
            at_least(
                "deliveries/s", 1.5, rate("ssehub", "fanout"), rate("nchan", "fanout"), "nchan"
            )
            p99_at_most("ssehub", "nchan")
            nothing_lost("ssehub")
        if "memory" in opts.phases:
            rss_line("ssehub")
        if "publish" in opts.phases:
            at_least(
                "publishes/s", 0.8, rate("ssehub", "publish"), rate("nchan", "publish"), "nchan"
            )
            received_reference("ssehub", "nchan")
            every_event("ssehub")
        out.append("")

    if ran("ssehub-redis"):
        out.append("### ssehub-redis targets (vs nchan-redis, and vs ssehub's memory backend)\n")
        mine = "ssehub-redis"
        if "fanout" in opts.phases:
            if ran("nchan-redis"):
                at_least(
                    "deliveries/s",
                    2,
                    rate(mine, "fanout"),
                    rate("nchan-redis", "fanout"),
                    "nchan-redis",
                )
                p99_at_most(mine, "nchan-redis")
            nothing_lost(mine)
            if ran("ssehub"):
                at_least(
                    "deliveries/s",
                    0.8,
                    rate(mine, "fanout"),
                    rate("ssehub", "fanout"),
                    "ssehub",
                )
        if "publish" in opts.phases:
            if ran("nchan-redis"):
                at_least(
                    "publishes/s",
                    1,
                    rate(mine, "publish"),
                    rate("nchan-redis", "publish"),
                    "nchan-redis",
                )
                received_reference(mine, "nchan-redis")
            every_event(mine)
        if "memory" in opts.phases:
            rss_line(mine)
        out.append("")

    def against_memory(
        mine: str, title: str, publish_ratio: float, fanout_label: str, fanout_ratio: float
    ) -> None:
        """The target lines of an ssehub variant measured against ssehub's memory backend."""
        if not ran(mine):
            return
        out.append(f"### {mine} targets ({title})\n")
        if "publish" in opts.phases:
            if ran("ssehub"):
                at_least(
                    "publishes/s",
                    publish_ratio,
                    rate(mine, "publish"),
                    rate("ssehub", "publish"),
                    "ssehub",
                )
            every_event(mine)
        if "fanout" in opts.phases:
            if ran("ssehub"):
                at_least(
                    fanout_label,
                    fanout_ratio,
                    rate(mine, "fanout"),
                    rate("ssehub", "fanout"),
                    "ssehub",
                )
            nothing_lost(mine)
        if "memory" in opts.phases:
            rss_line(mine)
        out.append("")

    against_memory(
        "ssehub-sqlite",
        "vs ssehub's memory backend",
        0.5,
        'fan-out deliveries/s "unchanged"',
        0.9,
    )
    against_memory(
        "ssehub-auth",
        "a JWT on every request, vs ssehub without auth",
        0.8,
        "fan-out deliveries/s",
        0.95,
    )

    if ran(PRIVATE) and "fanout" in opts.phases:
        granted, denied = split_subscribers(opts)
        out.append(
            f"### ssehub-private targets ({granted} of {opts.subscribers} subscribers granted the "
            "private events, vs ssehub's public fan-out to all of them)\n"
        )
        mine = PRIVATE
        if ran("ssehub"):
            at_least(
                f"deliveries/s of the {granted} granted subscribers (total per second, vs the "
                f"public run's {opts.subscribers})",
                0.9,
                rate(mine, "fanout"),
                rate("ssehub", "fanout"),
                "ssehub",
            )
            out.append(
                f"- (for reference) deliveries/s per delivering subscriber: "
                f"{per_delivering(mine) or 0:,.1f} vs ssehub {per_delivering('ssehub') or 0:,.1f} "
                f"({ratio(per_delivering(mine), per_delivering('ssehub'))}): how fast each event "
                "got through; 2x the ratio above, as half the subscribers take no delivery. The "
                "PASS line uses total deliveries per second: the same count as the public run's, "
                "so the ratio is what a private delivery costs against a public one, the "
                "ungranted subscribers' checks included."
            )
        if ran("ssehub-auth"):
            out.append(
                f"- (for reference) against ssehub-auth (the same hub, public events): "
                f"{fmt_rate(rate(mine, 'fanout'))} vs {fmt_rate(rate('ssehub-auth', 'fanout'))} "
                f"({ratio(rate(mine, 'fanout'), rate('ssehub-auth', 'fanout'))}); per delivering "
                f"subscriber {ratio(per_delivering(mine), per_delivering('ssehub-auth'))}"
            )
        f = results[mine].get("fanout") or {}
        line(
            fanout_ok(f, opts, granted),
            f"the granted half got every event, in order: lost {fanout_lost(f)}, "
            f"{f.get('open')}/{granted} open",
        )
        leaked = leaks(f)
        d = f.get("denied") or {}
        line(
            bool(leaked) and not sum(leaked) and not denied_problems(f),
            f"no private event reached the {denied} ungranted subscribers: "
            + (" / ".join(f"{n:,}" for n in leaked) or "unknown")
            + f" received (per run); {d.get('open')}/{denied} open, {d.get('warm')} got the "
            "public warm-up event (registered before the first private event)"
            + "".join(f"; {problem}" for problem in denied_problems(f)),
        )
        out.append("")

    if "nodes" in opts.phases:
        out += nodes_report(opts, results)

    redis_rows = []
    for name in results:
        if not (ran(name) and targets[name].redis):
            continue
        f = results[name].get("fanout") or {}
        p = results[name].get("publish") or {}
        per_event = (
            f["redis_cpu_s"] / f["events"] if f.get("redis_cpu_s") and f.get("events") else None
        )
        per_publish = (
            p["redis_cpu_s"] / p["requests"] if p.get("redis_cpu_s") and p.get("requests") else None
        )
        redis_rows.append(
            f"| {name} | {fmt_us(per_event)} | {pct(f.get('redis_cpu_s'), f.get('cpu_wall_s'))} "
            f"| {fmt_commands(f.get('redis_commands'), opts.events)} "
            f"| {fmt_us(per_publish)} | {pct(p.get('redis_cpu_s'), p.get('wall_s'))} |"
        )
    if redis_rows:
        out.append("### Redis's own CPU time\n")
        out.append(
            "From Redis's INFO cpu (used_cpu_sys + used_cpu_user, getrusage in µs): in fan-out "
            "over the measured window (first publish to last delivery; median over the runs), in "
            "the publish-rate test over wrk's run. Busy = share of one core. Commands: from INFO "
            "commandstats over the whole fan-out run (subscribers connecting, warm-up, events; "
            "the median run's), the four Redis spent most time in: calls per event x "
            "microseconds per call inside Redis (wall time, so it includes Redis being preempted "
            "on the core it shares with the generators; what is not in there is Redis's network "
            "I/O)."
        )
        out.append("")
        out.append(
            "| target | fan-out: Redis CPU per event | fan-out: Redis busy "
            "| fan-out: commands per event | publish rate: Redis CPU per publish "
            "| publish rate: Redis busy |"
        )
        out.append("|---|---:|---:|---|---:|---:|")
        out += redis_rows
        out.append("")

    out.append("### Is the load generator the bottleneck?\n")
    out.append(
        "CPU time over the measured window, as a share of one core (generator: getrusage of "
        "sseload / wait4 of wrk; server: /proc/<pid>/stat utime+stime"
        + ("; Redis: its INFO cpu)." if redis is not None else ").")
    )
    out.append("")
    out.append(
        "| target, run | fan-out window | generator CPU | server CPU | publish-rate window "
        "| wrk CPU | subscriber CPU | server CPU "
        + ("| Redis CPU (fan-out / publish) " if redis is not None else "")
        + "| other load (fan-out / publish) | verdict |"
    )
    out.append(
        "|---|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * (redis is not None) + "---:|---|"
    )
    for name, result in results.items():
        if "skipped" in result:
            continue
        fruns = (result.get("fanout") or {}).get("runs") or []
        pruns = (result.get("publish") or {}).get("runs") or []
        for i in range(max(len(fruns), len(pruns))):
            f = fruns[i] if i < len(fruns) else {}
            p = pruns[i] if i < len(pruns) else {}
            redis_cells = (
                f"{pct(f.get('redis_cpu_s'), f.get('cpu_wall_s'))} / "
                f"{pct(p.get('redis_cpu_s'), p.get('wall_s'))}"
                if targets[name].redis
                else "-"
            )
            out.append(
                f"| {name} #{i + 1} | {secs(f.get('cpu_wall_s'))} "
                f"| {pct(f.get('gen_cpu_s'), f.get('cpu_wall_s'))} "
                f"| {pct(f.get('server_cpu_s'), f.get('cpu_wall_s'))} | {secs(p.get('wall_s'))} "
                f"| {pct(p.get('wrk_cpu_s'), p.get('wall_s'))} "
                f"| {pct(p.get('sub_cpu_s'), p.get('wall_s'))} "
                f"| {pct(p.get('server_cpu_s'), p.get('wall_s'))} "
                + (f"| {redis_cells} " if redis is not None else "")
                + f"| {other_load(f, OURS['fanout'][0], 'cpu_wall_s')} / "
                f"{other_load(p, OURS['publish'][0], 'wall_s')} "
                f"| {bottleneck_verdict(f, p)} |"
            )
    out.append("")
    out.append(
        "The generators (sseload, wrk) share core 1"
        + (" (with the benchmark's Redis, counted on their side)" if redis is not None else "")
        + " and the server has core 0. 'server-bound': "
        "the server used >= 85% of its core while the load side used < 85% of its own. "
        "'round-trip-bound': neither core was full; the test's own shape (one sequential "
        "publisher, or 8 publishers each waiting for its answer) limits the rate by wake-up "
        "latency between the cores, and the generator still had headroom. 'other load': CPU "
        "used by anything else on the machine during the run (other processes; tick-granular, "
        "so a few % is noise); a large value means the run was disturbed."
    )
    out.append("")
    out.append("### Details\n")
    for name, result in results.items():
        if "skipped" in result:
            continue
        f = result.get("fanout") or {}
        m = result.get("memory") or {}
        p = result.get("publish") or {}
        out.append(f"- **{name}**")
        if f:
            out.append(
                f"  - fan-out: {f.get('open')}/{delivering_subscribers(name, opts)} open, "
                f"{f.get('warm')} warm, "
                f"{f.get('received') or 0:,} deliveries in {f.get('window_s') or 0:.3f} s "
                "(publishing "
                f"took {f.get('publish_s', 0):.3f} s; publish round trip p50 "
                f"{fmt_ms(f.get('pub_rtt_p50_ms'))}, p99 {fmt_ms(f.get('pub_rtt_p99_ms'))}); "
                f"latency p90 {fmt_ms(f.get('p90_ms'))}, p99.9 {fmt_ms(f.get('p999_ms'))}, max "
                f"{fmt_ms(f.get('max_ms'))} over {f.get('lat_samples') or 0:,} samples; gaps "
                f"{f.get('gaps')}, duplicates {f.get('dups')}, closed early "
                f"{f.get('closed_early')}"
                + ("" if f.get("exit_status") == 0 else f"; generator exit {f.get('exit_status')}")
            )
        if f and name == PRIVATE:

            def ungranted(d: dict[str, Any]) -> str:
                text = (
                    f"{d.get('open')}/{d.get('subs')} open, {d.get('warm')} got the public "
                    f"warm-up, {d.get('leaked')} private events received"
                )
                if d.get("leaked"):
                    text += (
                        f" (min/max per subscriber {d.get('leaked_min_per_sub')}/"
                        f"{d.get('leaked_max_per_sub')})"
                    )
                if d.get("closed_early") or d.get("still_open") != d.get("open"):
                    text += (
                        f", closed early {d.get('closed_early')}, still open at the end "
                        f"{d.get('still_open')}"
                    )
                if d.get("exit_status"):
                    text += f", follower exit {d.get('exit_status')}"
                return text + f", its CPU {secs(d.get('cpu_s'))} (whole life)"

            out.append(
                "  - ungranted half, per run: "
                + "; ".join(ungranted(r.get("denied") or {}) for r in f.get("runs") or [f])
            )
        if len(f.get("runs", [])) > 1:
            out.append(
                "  - fan-out runs (median shown in the table): "
                + "; ".join(
                    f"{fmt_rate(r.get('deliveries_per_s'))}/s p50 {fmt_ms(r.get('p50_ms'))} "
                    f"p99 {fmt_ms(r.get('p99_ms'))} lost {fanout_lost(r)}" + disturbed_note(r)
                    if "error" not in r
                    else f"ERROR {r['error']}"
                    for r in f["runs"]
                )
            )
        if len(p.get("runs", [])) > 1:
            out.append(
                "  - publish-rate runs: "
                + "; ".join(
                    f"{fmt_rate(r.get('publishes_per_s'))}/s, subscriber "
                    f"{r.get('subscriber_received', 0):,} of {r.get('requests', 0):,}"
                    + disturbed_note(r)
                    if "error" not in r
                    else f"ERROR {r['error']}"
                    for r in p["runs"]
                )
            )
        if m:
            closed = m.get("rss_after_close")
            out.append(
                f"  - memory: {m.get('open')}/{m.get('subscribers')} idle subscribers open; RSS "
                f"{m['rss_before'] / 2**20:.1f} MiB before, {m['rss_after'] / 2**20:.1f} MiB with "
                "them"
                + (
                    f", {closed / 2**20:.1f} MiB 1 s after they closed"
                    if closed is not None
                    else ""
                )
                + (
                    f"; master+worker: {fmt_bytes(m['per_sub_bytes_all'])} per subscriber"
                    if name.startswith("nchan")
                    else ""
                )
            )
        if p:
            if "error" in p:
                out.append(f"  - publish rate: ERROR {p['error']}")
            else:
                out.append(
                    f"  - publish rate: {p['requests']:,} publishes in {p['duration_s']:.2f} s, "
                    f"{p['errors']} errors, latency p50 {fmt_ms(p['p50_ms'])} p99 "
                    f"{fmt_ms(p['p99_ms'])}; subscriber received {p['subscriber_received']:,} "
                    f"(closed early: {p['subscriber_closed_early']})"
                    + "".join(f"; {w}" for w in p.get("server_warnings", []))
                )
        for phase in ("fanout", "nodes", "publish", "memory"):
            phase_result = result.get(phase) or {}
            for i, run in enumerate(phase_result.get("runs") or [phase_result], 1):
                for problem in run.get("log_problems") or []:
                    out.append(f"  - server log, {phase} run {i}: `{problem}`")
    return "\n".join(out) + "\n"


def nodes_report(opts: Options, results: dict[str, dict[str, Any]]) -> list[str]:
    """Two hubs on one Redis against one (the fan-out test of ssehub-redis in the same run)."""
    hub = results.get("ssehub-redis") or {}
    n = hub.get("nodes")
    out = ["### Two hubs on one Redis (ssehub-redis)\n"]
    if "skipped" in hub or not hub:
        out += [
            "Not run: the nodes test needs the ssehub-redis target (`--only ...,ssehub-redis`).",
            "",
        ]
        return out
    if not n:
        return [*out, "Not run.", ""]
    one = hub.get("fanout") or {}
    pin_a, pin_b, gen_pin = opts.node_pins
    out.append(
        f"Hub A (`{' '.join(pin_a) or 'unpinned'}`) and hub B (`{' '.join(pin_b) or 'unpinned'}`) "
        f"follow the same Redis log; {opts.subscribers} subscribers on each; {opts.events} events "
        "published one at a time through hub A only (an sseload in fanout mode on A; a second "
        "sseload in follow mode checks B's subscribers for order, loss and latency). This "
        "machine has only two cores, and the two hubs take one each: the two sseloads "
        f"(`{' '.join(gen_pin) or 'unpinned'}`) and Redis have no core of their own here, unlike "
        "in the fan-out test, where the generator has core 1 to itself. The total below is "
        "therefore what two hubs deliver while sharing their cores with the 2x larger "
        "subscriber fleet's load generation: a lower bound for two hubs on two machines."
    )
    out.append("")
    out.append(
        "| setup | subscribers | deliveries/s | p50 | p99 | lost | hubs' CPU "
        "| deliveries per hub CPU-second | generators' CPU | Redis CPU per event | Redis busy "
        "| machine busy |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    cores = os.cpu_count() or 1

    def per_cpu(r: dict[str, Any]) -> float | None:
        """Deliveries per second of hub CPU time: how much each hub does with what it gets."""
        cpu, received = r.get("server_cpu_s"), r.get("received")
        return received / cpu if cpu and received else None

    def row(label: str, subs: str, r: dict[str, Any]) -> None:
        events = r.get("events") or opts.events
        redis = r.get("redis_cpu_s")
        wall = r.get("cpu_wall_s")
        busy = r.get("machine_busy_s")
        out.append(
            f"| {label} | {subs} | {fmt_rate(r.get('deliveries_per_s'))} "
            f"| {fmt_ms(r.get('p50_ms'))} | {fmt_ms(r.get('p99_ms'))} "
            f"| {lost_cell(r, fanout_lost(r))} | {pct(r.get('server_cpu_s'), wall)} "
            f"| {fmt_rate(per_cpu(r))} "
            f"| {pct(r.get('gen_cpu_s'), wall)} | {fmt_us(redis / events if redis else None)} "
            f"| {pct(redis, wall)} | {pct(busy, wall * cores if wall else None)} |"
        )

    row("1 hub (fan-out test)", f"{opts.subscribers}", one)
    row("2 hubs, total (p50/p99: the worse hub)", f"2 x {opts.subscribers}", n)
    for key, label in (("node_a", "hub A (publishes)"), ("node_b", "hub B (follows)")):
        node = n.get(key) or {}
        out.append(
            f"| {label} | {node.get('open')} | {fmt_rate(node.get('deliveries_per_s'))} "
            f"| {fmt_ms(node.get('p50_ms'))} | {fmt_ms(node.get('p99_ms'))} "
            f"| {node.get('lost')} | {pct(node.get('server_cpu_s'), node.get('cpu_wall_s'))} "
            f"| {fmt_rate(per_cpu(node))} "
            f"| {pct(node.get('gen_cpu_s'), node.get('cpu_wall_s'))} | | | |"
        )
    out.append("")
    scale = ratio(n.get("deliveries_per_s"), one.get("deliveries_per_s"))
    out.append(
        f"- total deliveries/s, 2 hubs / 1 hub: {scale}; deliveries per hub CPU-second, 2 hubs / "
        f"1 hub: {ratio(per_cpu(n), per_cpu(one))} (1x: each of two hubs does as much with its "
        "CPU time as one hub alone; the total is then bounded by the CPU time this machine has "
        "left for the hubs)"
    )

    def per_event(r: dict[str, Any]) -> float | None:
        return r["redis_cpu_s"] / opts.events if r.get("redis_cpu_s") else None

    one_cost, two_cost = per_event(one), per_event(n)
    if one_cost and two_cost:
        out.append(
            f"- Redis CPU per event: {fmt_us(one_cost)} with 1 hub, {fmt_us(two_cost)} with 2 "
            f"(+{fmt_us(two_cost - one_cost)}, {ratio(two_cost, one_cost)}): the publish (one "
            "script call that numbers the event and appends it to the log and the topic's "
            "history) is the same whatever the number of hubs, and each hub adds one read of "
            "the log per event (XREAD, a round trip of its own). Nothing in Redis is per "
            "subscriber. The commands below show it; the CPU figure also carries what sharing "
            "its core costs Redis (with hub B and the generators here, with the generator only "
            "in the fan-out test)."
        )
    out.append(
        f"- Redis commands per event (calls x wall µs per call inside Redis): 1 hub: "
        f"{fmt_commands(one.get('redis_commands'), opts.events)}; 2 hubs: "
        f"{fmt_commands(n.get('redis_commands'), opts.events)}"
    )
    line_ok = nodes_ok(n, opts)
    out.append(
        f"- {'PASS' if line_ok else 'FAIL'} nothing lost across both hubs: lost "
        f"{fanout_lost(n)}, {n.get('open')}/{2 * opts.subscribers} open"
    )
    runs = n.get("runs") or []
    if len(runs) > 1:
        out.append(
            "- runs (median shown): "
            + "; ".join(
                f"{fmt_rate(r.get('deliveries_per_s'))}/s p99 {fmt_ms(r.get('p99_ms'))} lost "
                f"{fanout_lost(r)}, Redis {fmt_us(per_event(r))}/event" + disturbed_note(r)
                if "error" not in r
                else f"ERROR {r['error']}"
                for r in runs
            )
        )
    out.append("")
    return out


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(TARGETS),
        help=f"targets, comma-separated, from {', '.join(ALL_TARGETS)} (default: %(default)s)",
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out subscribers")
    parser.add_argument("--events", type=int, default=2000, help="fan-out events")
    parser.add_argument("--idle-subscribers", type=int, default=5000, help="memory test")
    parser.add_argument("--pub-seconds", type=float, default=5.0, help="publish-rate duration")
    parser.add_argument("--pub-connections", type=int, default=8, help="concurrent publishers")
    parser.add_argument(
        "--fanout-timeout", type=float, default=120.0, help="give up on a fan-out run after this"
    )
    parser.add_argument(
        "--phases",
        default="fanout,memory,publish",
        help="which tests, comma-separated: fanout, memory, publish, and nodes (two ssehub-redis "
        "hubs on one Redis; off by default) (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="fresh-server runs per rate test (median shown)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another ssehub checkout (with its .venv) to run as target ssehub-baseline",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument("--json", type=Path, default=WORK / "results.json")
    return parser.parse_args(argv)


def run_once(
    opts: Options,
    target: Target,
    phase: str,
    run: Callable[[Options, Target], dict[str, Any]],
    attempt: int,
) -> dict[str, Any]:
    """One fresh-server run of a phase; a run that other processes disturbed is run once more."""
    for last_try in (False, True):
        busy = wait_for_quiet()
        log(f"[{target.name}] {phase} run {attempt} (machine was {busy:.0%} busy) ...")
        t0 = time.monotonic()
        try:
            outcome = run(opts, target)
        except (RuntimeError, OSError, ValueError) as error:
            log(f"[{target.name}] {phase} failed: {error}")
            outcome = {"error": str(error)}
        log(f"[{target.name}] {phase} done in {time.monotonic() - t0:.1f} s: {outcome}")
        disturbed = disturbance(phase, outcome)
        quick = time.monotonic() - t0 < 30
        if disturbed > DISTURBED and quick and phase != "memory" and not last_try:
            log(f"[{target.name}] other processes used {disturbed:.0%} of a core; again")
            continue
        break
    outcome["other_load"] = disturbed
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.baseline is not None and BASELINE not in names:
        names.insert(names.index("ssehub") + 1 if "ssehub" in names else 0, BASELINE)
    unknown = [n for n in names if n not in (*ALL_TARGETS, BASELINE)]
    if unknown:
        sys.exit(f"unknown target(s) {unknown}; choose from {', '.join(ALL_TARGETS)}")
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if phases - set(PHASES):
        sys.exit(f"unknown phase(s) {sorted(phases - set(PHASES))}; choose from {PHASES}")
    if "nodes" in phases and "ssehub-redis" not in names:
        log("the nodes test runs two ssehub-redis hubs: add ssehub-redis to --only")
    WORK.mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()
    need = (
        max(2 * args.subscribers if "nodes" in phases else args.subscribers, args.idle_subscribers)
        + 100
    )
    if nofile < need:
        sys.exit(f"open-file limit {nofile} is below the {need} this run needs")
    pin = (os.cpu_count() or 1) >= 2 and not args.no_pin and shutil.which("taskset") is not None
    opts = Options(
        subscribers=args.subscribers,
        events=args.events,
        idle_subscribers=args.idle_subscribers,
        pub_seconds=args.pub_seconds,
        pub_connections=args.pub_connections,
        fanout_timeout=args.fanout_timeout,
        server_pin=["taskset", "-c", "0"] if pin else [],
        load_pin=["taskset", "-c", "1"] if pin else [],
        phases=phases,
        repeat=max(1, args.repeat),
        node_pins=(
            (["taskset", "-c", "0"], ["taskset", "-c", "1"], ["taskset", "-c", "0,1"])
            if pin
            else ([], [], [])
        ),
    )
    opts.sseload = build_sseload()
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        # The Redis targets share one private redis-server, started only when one is asked for.
        redis: BenchRedis | str | None = None
        if any(name in REDIS_TARGETS for name in names):
            redis = redis_available()
            if redis is None:
                try:
                    redis = start_redis(opts.load_pin)
                    log(f"started redis-server {redis.version} on port {redis.port}")
                except (RuntimeError, OSError) as error:
                    redis = f"the benchmark's redis-server did not start: {error}"
        # The JWT targets share one secret and its tokens, minted only when one is asked for.
        auth: AuthSetup | str | None = None
        if any(name in AUTH_TARGETS for name in names):
            try:
                auth = auth_setup(
                    max(opts.subscribers, opts.idle_subscribers, 1), split_subscribers(opts)[1]
                )
                log(f"minted {auth.granted + auth.denied + 2} JWTs (HS256)")
            except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as error:
                auth = str(error)
        targets = make_targets(args.baseline, redis, auth)
        available = []
        for name in names:
            reason = targets[name].available()
            if reason:
                log(f"[{name}] SKIPPED: {reason}")
                results[name] = {"skipped": reason}
            else:
                available.append(targets[name])
                results[name] = {}
        for phase, run in (
            ("fanout", run_fanout),
            ("nodes", run_nodes),
            ("publish", run_publish_rate),
            ("memory", run_memory),
        ):
            if phase not in phases:
                continue
            # Round by round, every target once per round: the machine's speed drifts over
            # minutes, and this way a drift weighs on every target's runs alike.
            runs: dict[str, list[dict[str, Any]]] = {target.name: [] for target in available}
            rounds = max((opts.repeats(target, phase) for target in available), default=0)
            for attempt in range(1, rounds + 1):
                for target in available:
                    if attempt <= opts.repeats(target, phase):
                        runs[target.name].append(run_once(opts, target, phase, run, attempt))
            for target in available:
                if runs[target.name]:
                    results[target.name][phase] = aggregate(phase, runs[target.name])
    except KeyboardInterrupt:
        log("interrupted; stopping child processes")
        return 130
    finally:
        stop_all()
    text = report(opts, targets, results)
    text += f"\nWhole run: {time.monotonic() - started:.0f} s.\n"
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str))
    (WORK / "results.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
