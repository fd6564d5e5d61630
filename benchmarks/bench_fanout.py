"""Fan-out, idle-memory and publish-rate benchmark: ssehub vs nginx+nchan vs sse-starlette.

    .venv/bin/python benchmarks/bench_fanout.py [--only ssehub,nchan] [--subscribers 1000]
                                                [--events 2000] [--idle-subscribers 5000]
                                                [--baseline ../other-checkout]

Targets run one after another, never together (each test gets a fresh server process); a test's
runs go round by round, each target once per round, so that the machine's drift over minutes
weighs on every target alike:

* ssehub: `ssehub serve --heartbeat 60 --history 10000` (one process, uvloop + httptools).
* nchan: nginx with the nchan module, `worker_processes 1` (the single core the hub gets),
  config rendered from benchmarks/fanout/nginx.conf.template into benchmarks/.work.
* sse-starlette: the usual broadcaster (benchmarks/fanout/starlette_app.py: a queue per
  subscriber, EventSourceResponse) under uvicorn with uvloop + httptools, one process.

Tests:

* fan-out: N subscribers of one topic, all open (response headers read) and all confirmed
  registered (each received a warm-up event) before E events are published one at a time over one
  keep-alive connection; each event's data is "<seq>_<CLOCK_MONOTONIC ns at send>". Every
  delivery is checked for order and loss and timed (publish-to-delivery latency).
* memory: a fresh server, one subscriber opened and closed (lazy start-up allocations), VmRSS,
  then M idle subscribers, VmRSS again: (after - before) / M.
* publish rate: 8 concurrent keep-alive publishers (wrk -t1 -c8, POST) for a few seconds, one
  subscriber that must receive every event.

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

# The three targets, in the order they run.
TARGETS = ("ssehub", "nchan", "sse-starlette")
BASELINE = "ssehub-baseline"  # with --baseline DIR

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
    ours = {
        "fanout": (("gen_cpu_s", "server_cpu_s"), "cpu_wall_s"),
        "publish": (("wrk_cpu_s", "sub_cpu_s", "server_cpu_s"), "wall_s"),
    }.get(phase)
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
# HTTP probes (plain sockets: this is setup, not load)


def http_probe(port: int, path: str, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return sock.recv(64).startswith(b"HTTP/1.")
    except OSError:
        return False


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


@dataclass
class Target:
    name: str
    sub_path: str
    pub_path: str
    form_topic: str | None  # ssehub publishes a form; the others take the raw body
    start: Callable[[int, list[str]], Server]
    description: str = ""
    available: Callable[[], str | None] = lambda: None  # a reason to skip, or None

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


def start_ssehub(port: int, pin: list[str], venv_bin: Path = VENV_BIN) -> Server:
    argv = [str(venv_bin / "ssehub"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--heartbeat", "60", "--history", "10000"]
    log_file = (WORK / "ssehub.log").open("ab")
    process = spawn([*pin, *argv], stdout=log_file, stderr=log_file)
    wait_ready(process, port, "ssehub serve")
    return Server(process, port, [process.pid], [process.pid])


def ssehub_available(venv_bin: Path = VENV_BIN) -> str | None:
    exe = venv_bin / "ssehub"
    if not exe.exists():
        return f"{exe} not found"
    result = subprocess.run([str(exe), "serve", "--help"], capture_output=True, timeout=30)
    if result.returncode != 0:
        return "`ssehub serve` is not available yet (`ssehub serve --help` failed)"
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


def start_nchan(port: int, pin: list[str]) -> Server:
    workdir = WORK / f"nginx-{port}"
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "tmp").mkdir(parents=True)
    conf = (ASSETS / "nginx.conf.template").read_text()
    conf = conf.replace("{workdir}", str(workdir)).replace("{port}", str(port))
    (workdir / "nginx.conf").write_text(conf)
    argv = ["nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"]
    log_file = (WORK / "nginx.log").open("ab")
    process = spawn([*pin, *argv], stdout=log_file, stderr=log_file)
    wait_ready(process, port, "nginx")
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
    log_file = (WORK / "sse-starlette.log").open("ab")
    process = spawn([*pin, *argv], stdout=log_file, stderr=log_file, env=env)
    wait_ready(process, port, "uvicorn")
    return Server(process, port, [process.pid], [process.pid])


def make_targets(baseline: Path | None = None) -> dict[str, Target]:
    targets = {
        "ssehub": Target(
            "ssehub",
            f"/events?topic={TOPIC}",
            "/publish",
            TOPIC,
            start_ssehub,
            "ssehub serve --heartbeat 60 --history 10000 (1 process)",
            ssehub_available,
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
            lambda port, pin: start_ssehub(port, pin, venv_bin),
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
def running(target: Target, pin: list[str]) -> Iterator[Server]:
    server = target.start(free_port(), pin)
    try:
        yield server
    finally:
        stop(server.process)
        if server.error_log is not None:  # nginx's per-run prefix directory
            shutil.rmtree(server.error_log.parent, ignore_errors=True)


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

    def repeats(self, target: Target, phase: str) -> int:
        """Fresh-server runs of a phase; the table shows their medians.

        sse-starlette's fan-out takes over a minute and it is an order of magnitude from the
        others, so its tests run once to keep the whole benchmark within about five minutes.
        """
        if phase == "memory" or target.name == "sse-starlette":
            return 1
        return self.repeat


def sseload_argv(opts: Options, target: Target, server: Server, mode: str, subs: int) -> list[str]:
    argv = [*opts.load_pin, str(opts.sseload), mode, "--port", str(server.port)]
    argv += ["--sub-path", target.sub_path, "--subs", str(subs)]
    return argv


def run_fanout(opts: Options, target: Target) -> dict[str, Any]:
    with running(target, opts.server_pin) as server:
        argv = sseload_argv(opts, target, server, "fanout", opts.subscribers)
        argv += ["--events", str(opts.events), "--pub-path", target.pub_path]
        argv += ["--timeout", str(opts.fanout_timeout)]
        if target.form_topic is not None:
            argv += ["--form-topic", target.form_topic]
        for pid in server.pids:
            argv += ["--server-pid", str(pid)]
        started = time.monotonic()
        gen = spawn(argv, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None
        output = gen.stdout.read()
        status, _ = wait_rusage(gen, opts.fanout_timeout + 30)
        result: dict[str, Any] = json.loads(output) if output.strip() else {}
        result["exit_status"] = status
        result["elapsed_s"] = time.monotonic() - started
        return result


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
        wrk_argv += [f"-d{opts.pub_seconds:g}s", "--timeout", "10s", "-s", str(script), url]
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
        sub.stdin.close()
        sub_report = json.loads(sub.stdout.read() or "{}")
        wait_rusage(sub, 60)
        server_warnings = missed_message_warnings(server)
    match = re.search(r"WRKJSON (\{.*\})", wrk_out)
    if not match:
        return {"error": f"wrk failed (status {status}): {wrk_out[-500:]}"}
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
        # the subscriber's CPU is counted from READY to its exit, a little longer than wrk's run
        "machine_busy_s": busy1 - busy0,
        "steal_s": steal1 - steal0,
    }


def aggregate(phase: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with per-metric medians and worst-case correctness.

    Rates come from the undisturbed runs when there are any (runs next to someone else's
    CPU-heavy work are reported but not used); correctness counts every run.
    """
    valid = [r for r in runs if "error" not in r]
    if not valid:
        return {**runs[-1], "runs": runs}
    key = {"fanout": "deliveries_per_s", "publish": "publishes_per_s"}.get(phase)
    quiet = [r for r in valid if r.get("other_load", 0) <= DISTURBED]
    if key is None or len(runs) == 1:
        return {**runs[0], "runs": runs, "all_disturbed": not quiet}
    rated = quiet or valid
    ordered = sorted(rated, key=lambda r: r.get(key) or 0)
    merged = {**ordered[(len(ordered) - 1) // 2], "runs": runs, "all_disturbed": not quiet}
    errors = [r["error"] for r in runs if "error" in r]
    if errors:
        merged["error"] = errors[0]
    if phase == "fanout":
        for metric in ("p50_ms", "p99_ms"):
            merged[metric] = statistics.median(r[metric] for r in rated)
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


def fanout_ok(f: dict[str, Any], opts: Options) -> bool:
    return bool(
        f
        and f.get("open") == opts.subscribers
        and f.get("failed") == 0
        and f.get("lost") == 0
        and f.get("gaps") == 0
        and f.get("dups") == 0
        and f.get("closed_early") == 0
        and f.get("publish_error") == 0
    )


def bottleneck_verdict(f: dict[str, Any], p: dict[str, Any]) -> str:
    """Which side limited each test: the generators share core 1, the server has core 0."""
    verdicts = []
    for test, load, server in (
        (
            "fan-out",
            f.get("gen_cpu_s", 0) / f["cpu_wall_s"] if f.get("cpu_wall_s") else None,
            f.get("server_cpu_s", 0) / f["cpu_wall_s"] if f.get("cpu_wall_s") else None,
        ),
        (
            "publish",
            ((p.get("wrk_cpu_s") or 0) + (p.get("sub_cpu_s") or 0)) / p["wall_s"]
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


def check_failures(result: dict[str, Any], opts: Options) -> list[str]:
    failures = []
    f = result.get("fanout") or {}
    m = result.get("memory") or {}
    p = result.get("publish") or {}
    if "fanout" in opts.phases and not fanout_ok(f, opts):
        lost = fanout_lost(f)
        failures.append(f"fan-out: {f.get('error') or lost_cell(f, lost) + ' lost'}")
    if "memory" in opts.phases and m.get("open") != opts.idle_subscribers:
        opened = m.get("open")
        failures.append(f"memory: {m.get('error') or f'{opened} open'}")
    if "publish" in opts.phases and not p.get("delivered_ok"):
        if "error" in p:
            failures.append(f"publish: {p['error']}")
        else:
            missing = p.get("requests", 0) - p.get("subscriber_received", 0)
            failures.append(f"publish: subscriber missed {missing:,}")
    return failures


def report(opts: Options, targets: dict[str, Target], results: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []
    cores = os.cpu_count()
    out.append("## Fan-out benchmark: ssehub vs nginx+nchan vs sse-starlette\n")
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
        failures = check_failures(result, opts)
        check = "FAIL: " + "; ".join(failures) if failures else "PASS"
        out.append(
            f"| {name} | {fmt_rate(f.get('deliveries_per_s'))} | {fmt_ms(f.get('p50_ms'))} "
            f"| {fmt_ms(f.get('p99_ms'))} | {lost_cell(f, lost)} "
            f"| {fmt_bytes(m.get('per_sub_bytes'))} | {fmt_rate(p.get('publishes_per_s'))} "
            f"| {fmt_rate(p.get('received_per_s'))} | {check} |"
        )
    out.append("")
    for name, result in results.items():
        for phase in ("fanout", "publish"):
            if (result.get(phase) or {}).get("all_disturbed"):
                out.append(
                    f"**WARNING**: every {phase} run of {name} shared the machine with other "
                    f"processes using more than {DISTURBED:.0%} of a core (see 'other load' "
                    "below): its figures are not trustworthy; rerun on an idle machine."
                )
                out.append("")
    out.append(
        "`lost` = deliveries missing or duplicated over all subscribers (each subscriber must get "
        f"all {opts.events} events in order). `check` = nothing lost/out of order/closed in "
        "fan-out, every idle subscriber opened, and the publish-rate subscriber received every "
        "published event. nchan RSS is its one worker process (the master holds no connections); "
        "nginx preallocates its connection table (worker_connections 20000) before the "
        "'before' reading, so its per-connection figure excludes those ~0.4 KiB of "
        "preallocated structs."
    )
    out.append("")

    hub = results.get("ssehub", {})
    if "skipped" not in hub and hub:
        out.append("### ssehub ratios\n")
        peers = [p for p in ("nchan", "sse-starlette", BASELINE) if results.get(p)]
        out.append("| metric | " + " | ".join(f"ssehub/{peer}" for peer in peers) + " |")
        out.append("|---|" + "---:|" * len(peers))
        rows = [
            ("deliveries/s", "fanout", "deliveries_per_s"),
            ("p50 latency", "fanout", "p50_ms"),
            ("p99 latency", "fanout", "p99_ms"),
            ("RSS per idle subscriber", "memory", "per_sub_bytes"),
            ("publishes/s", "publish", "publishes_per_s"),
        ]
        for label, phase, key in rows:
            mine = (hub.get(phase) or {}).get(key)
            cells = []
            for other in peers:
                theirs = (results.get(other, {}).get(phase) or {}).get(key)
                cells.append(ratio(mine, theirs))
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("### ssehub targets\n")
        nchan = results.get("nchan", {})
        nf = nchan.get("fanout") or {}
        np_ = nchan.get("publish") or {}
        hf = hub.get("fanout") or {}
        hm = hub.get("memory") or {}
        hp = hub.get("publish") or {}

        def line(ok: bool | None, text: str) -> None:
            verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
            out.append(f"- {verdict} {text}")

        have_nchan = "skipped" not in nchan and bool(nchan)

        def at_least(what: str, factor: float, mine: float | None, nchans: float | None) -> None:
            line(
                None if not (have_nchan and mine and nchans) else mine >= factor * nchans,
                f"{what} >= {factor:g}x nchan: {fmt_rate(mine)} vs {factor:g} x "
                f"{fmt_rate(nchans)} ({ratio(mine, nchans)})",
            )

        if "fanout" in opts.phases:
            at_least("deliveries/s", 1.5, hf.get("deliveries_per_s"), nf.get("deliveries_per_s"))
            h99, n99 = hf.get("p99_ms"), nf.get("p99_ms")
            line(
                None if not (have_nchan and h99 is not None and n99) else h99 <= n99,
                f"p99 latency <= nchan: {fmt_ms(h99)} vs {fmt_ms(n99)}",
            )
            line(fanout_ok(hf, opts), f"nothing lost in fan-out: lost {fanout_lost(hf)}")
        if "memory" in opts.phases:
            per = hm.get("per_sub_bytes")
            line(
                None if per is None else per <= 2048,
                f"RSS per idle subscriber <= 2 KiB: {fmt_bytes(per)}",
            )
        if "publish" in opts.phases:
            at_least("publishes/s", 0.8, hp.get("publishes_per_s"), np_.get("publishes_per_s"))
            hg, ng = hp.get("received_per_s"), np_.get("received_per_s")
            if have_nchan and hg and ng:
                out.append(
                    f"- (for reference) events the publish-rate subscriber received per second: "
                    f"{fmt_rate(hg)} vs nchan {fmt_rate(ng)} ({ratio(hg, ng)})"
                )
            line(
                bool(hp.get("delivered_ok")),
                f"publish-rate subscriber got every event: {hp.get('subscriber_received')} "
                f"received for {hp.get('requests')} completed publishes",
            )
        out.append("")

    out.append("### Is the load generator the bottleneck?\n")
    out.append(
        "CPU time over the measured window, as a share of one core (generator: getrusage of "
        "sseload / wait4 of wrk; server: /proc/<pid>/stat utime+stime)."
    )
    out.append("")
    out.append(
        "| target, run | fan-out window | generator CPU | server CPU | publish-rate window "
        "| wrk CPU | subscriber CPU | server CPU | other load (fan-out / publish) | verdict |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, result in results.items():
        if "skipped" in result:
            continue
        fruns = (result.get("fanout") or {}).get("runs") or []
        pruns = (result.get("publish") or {}).get("runs") or []
        for i in range(max(len(fruns), len(pruns))):
            f = fruns[i] if i < len(fruns) else {}
            p = pruns[i] if i < len(pruns) else {}
            out.append(
                f"| {name} #{i + 1} | {secs(f.get('cpu_wall_s'))} "
                f"| {pct(f.get('gen_cpu_s'), f.get('cpu_wall_s'))} "
                f"| {pct(f.get('server_cpu_s'), f.get('cpu_wall_s'))} | {secs(p.get('wall_s'))} "
                f"| {pct(p.get('wrk_cpu_s'), p.get('wall_s'))} "
                f"| {pct(p.get('sub_cpu_s'), p.get('wall_s'))} "
                f"| {pct(p.get('server_cpu_s'), p.get('wall_s'))} "
                f"| {other_load(f, ('gen_cpu_s', 'server_cpu_s'), 'cpu_wall_s')} / "
                f"{other_load(p, ('wrk_cpu_s', 'sub_cpu_s', 'server_cpu_s'), 'wall_s')} "
                f"| {bottleneck_verdict(f, p)} |"
            )
    out.append("")
    out.append(
        "The generators (sseload, wrk) share core 1 and the server has core 0. 'server-bound': "
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
                f"  - fan-out: {f.get('open')}/{opts.subscribers} open, {f.get('warm')} warm, "
                f"{f.get('received'):,} deliveries in {f.get('window_s', 0):.3f} s (publishing "
                f"took {f.get('publish_s', 0):.3f} s; publish round trip p50 "
                f"{fmt_ms(f.get('pub_rtt_p50_ms'))}, p99 {fmt_ms(f.get('pub_rtt_p99_ms'))}); "
                f"latency p90 {fmt_ms(f.get('p90_ms'))}, p99.9 {fmt_ms(f.get('p999_ms'))}, max "
                f"{fmt_ms(f.get('max_ms'))} over {f.get('lat_samples'):,} samples; gaps "
                f"{f.get('gaps')}, duplicates {f.get('dups')}, closed early "
                f"{f.get('closed_early')}"
                + ("" if f.get("exit_status") == 0 else f"; generator exit {f.get('exit_status')}")
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
                    if name == "nchan"
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
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(TARGETS), help="targets, comma-separated")
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out subscribers")
    parser.add_argument("--events", type=int, default=2000, help="fan-out events")
    parser.add_argument("--idle-subscribers", type=int, default=5000, help="memory test")
    parser.add_argument("--pub-seconds", type=float, default=5.0, help="publish-rate duration")
    parser.add_argument("--pub-connections", type=int, default=8, help="concurrent publishers")
    parser.add_argument(
        "--fanout-timeout", type=float, default=120.0, help="give up on a fan-out run after this"
    )
    parser.add_argument(
        "--phases", default="fanout,memory,publish", help="which tests, comma-separated"
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
    unknown = [n for n in names if n not in (*TARGETS, BASELINE)]
    if unknown:
        sys.exit(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    WORK.mkdir(parents=True, exist_ok=True)
    nofile = raise_nofile()
    need = max(args.subscribers, args.idle_subscribers) + 100
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
    )
    opts.sseload = build_sseload()
    targets = make_targets(args.baseline)
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
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
