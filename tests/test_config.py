"""`ssehub serve`'s configuration: flags, SSEHUB_* variables, a TOML file, and what each refuses.

The precedence is checked on a real hub over HTTP (the `retry:` a stream opens with); the many
refusals are checked by running the command's `main`, which refuses before any socket exists,
and a few by the real command, for the exit code and the single line a user sees.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.hub_process import HubProcess

from ssehub._settings import SERVE_OPTIONS, resolve
from ssehub.cli import build_parser, main


def opening_retry(url: str) -> int:
    """The reconnect delay a fresh stream of this hub opens with."""
    with httpx.stream("GET", f"{url}/events", params={"topic": "t"}, timeout=5) as answer:
        text = ""
        for chunk in answer.iter_text():
            text += chunk
            if "\n\n" in text:
                break
    retry = next(line for line in text.splitlines() if line.startswith("retry: "))
    return int(retry.removeprefix("retry: "))


def settings(*argv: str, environ: dict[str, str] | None = None) -> dict[str, object]:
    return resolve(build_parser().parse_args(["serve", *argv]), environ or {})


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What `ssehub <argv>` says on stderr when it refuses with exit code 2: one line."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_flag_beats_env_beats_file_beats_default(
    start_hub: Callable[..., HubProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ssehub.toml"
    config.write_text("retry = 1111\nhistory-ttl = 60\n")
    assert opening_retry(start_hub().url) == 3000  # the default
    assert opening_retry(start_hub("--config", str(config)).url) == 1111
    monkeypatch.setenv("SSEHUB_RETRY", "2222")
    assert opening_retry(start_hub("--config", str(config)).url) == 2222
    assert opening_retry(start_hub("--config", str(config), "--retry", "3333").url) == 3333
    monkeypatch.setenv("SSEHUB_CONFIG", str(config))
    monkeypatch.delenv("SSEHUB_RETRY")
    assert opening_retry(start_hub().url) == 1111  # the file named by the environment


def test_every_option_has_a_variable_and_a_file_key(tmp_path: Path) -> None:
    """One table drives all three: each option read from each source gives the same value."""
    for option in SERVE_OPTIONS:
        if option.type is bool:
            flag, text, toml = [f"--{option.name}"], "on", "true"
            expected: object = True
        elif option.repeated:
            flag, text, toml = (
                [f"--{option.name}", "a", f"--{option.name}", "b"],
                "a,b",
                '["a", "b"]',
            )
            expected = ("a", "b")
        elif option.choices:
            value = option.choices[-1]
            flag, text, toml, expected = [f"--{option.name}", value], value, f'"{value}"', value
        elif option.type is str:
            flag, text, toml, expected = [f"--{option.name}", "x:y"], "x:y", '"x:y"', "x:y"
        else:
            number = option.type(option.maximum or 7)
            flag, text, toml, expected = (
                [f"--{option.name}", str(number)],
                str(number),
                str(number),
                number,
            )
        path = tmp_path / f"{option.dest}.toml"
        path.write_text(f"{option.name} = {toml}\n")
        assert settings(*flag)[option.dest] == expected, option.name
        assert settings(environ={option.env: text})[option.dest] == expected, option.env
        assert settings("--config", str(path))[option.dest] == expected, path.read_text()
        assert settings()[option.dest] == option.default


def test_file_keys_take_dashes_or_underscores_and_lists_take_a_string(tmp_path: Path) -> None:
    path = tmp_path / "ssehub.toml"
    path.write_text(
        'max_body_bytes = 10\nmax-header-bytes = 20\ncors-origin = "https://a.example"\n'
    )
    values = settings("--config", str(path))
    assert (values["max_body_bytes"], values["max_header_bytes"]) == (10, 20)
    assert values["cors_origin"] == ("https://a.example",)
    assert settings("--config", str(path), "--cors-origin", "https://b.example")["cors_origin"] == (
        "https://b.example",
    )  # a flag replaces the list of the layers below it; it does not add to them


def test_a_switch_set_below_is_turned_off_by_its_no_flag(tmp_path: Path) -> None:
    path = tmp_path / "ssehub.toml"
    path.write_text("access_log = true\n")
    assert settings("--config", str(path))["access_log"] is True
    assert settings("--config", str(path), "--no-access-log")["access_log"] is False
    assert (
        settings(
            environ={"SSEHUB_ACCESS_LOG": "off"},
        )["access_log"]
        is False
    )


def test_existing_variables_keep_working() -> None:
    values = settings(environ={"SSEHUB_BACKEND": "sqlite:///x.db", "SSEHUB_JWT_KEY": "k" * 32})
    assert (values["backend"], values["jwt_key"]) == ("sqlite:///x.db", "k" * 32)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--port", "x"], "argument --port: expected an integer, not 'x'"),
        (["--port", "70000"], "argument --port: must be <= 65535, not 70000"),
        (["--history", "-1"], "argument --history: must be >= 0, not -1"),
        (["--heartbeat", "0"], "argument --heartbeat: must be >= 0.001, not 0"),
        (["--log-format", "xml"], "argument --log-format: must be one of text, json, not 'xml'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--backend", "nosuch://x"], "--backend:"),
        (["--workers", "2"], "--workers 2 needs a backend that processes share"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    err = refusal(capsys, "serve", *argv)
    assert err.startswith("ssehub serve: error: ")
    assert said in err


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("SSEHUB_PORT", "eighty", "SSEHUB_PORT: expected an integer, not 'eighty'"),
        ("SSEHUB_HISTORY_TTL", "-5", "SSEHUB_HISTORY_TTL: must be >= 0, not -5"),
        ("SSEHUB_CORS_CREDENTIALS", "maybe", "SSEHUB_CORS_CREDENTIALS: expected true or false"),
        ("SSEHUB_LOG_LEVEL", "loud", "SSEHUB_LOG_LEVEL: must be one of debug, info"),
        ("SSEHUB_CONFIG", "/nonexistent/x.toml", "--config /nonexistent/x.toml: No such file"),
    ],
)
def test_a_bad_variable_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    said: str,
) -> None:
    monkeypatch.setenv(variable, value)
    err = refusal(capsys, "serve")
    assert said in err, err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("histroy = 5\n", "unknown key 'histroy'"),
        ('history = "5"\n', "history: expected an integer, not '5'"),
        ("history = true\n", "history: expected an integer, not True"),
        ("history = -1\n", "history: must be >= 0, not -1"),
        ("heartbeat = 0.0\n", "heartbeat: must be >= 0.001"),
        ("cors_origin = [1]\n", "cors_origin: expected a string or an array of strings"),
        ("demo = 1\n", "demo: expected true or false, not 1"),
        ("history = 5\nhistory = 6\n", "not TOML"),
        ("history_ttl = 1\nhistory-ttl = 2\n", "'history-ttl' is set twice"),
        ("[serve]\nhistory = 5\n", "unknown key 'serve'"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "ssehub.toml"
    path.write_text(text)
    err = refusal(capsys, "serve", "--config", str(path))
    assert f"ssehub serve: error: {path}" in err or "--config" in err
    assert said in err, err


def test_the_real_command_refuses_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ssehub.toml"
    path.write_text("max_conections = 5\n")
    run = subprocess.run(
        [sys.executable, "-m", "ssehub", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert run.stderr == (
        f"ssehub serve: error: {path}: unknown key 'max_conections' "
        "(keys are the flags of ssehub serve --help)\n"
    )


def test_help_shows_every_default_and_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    shown = " ".join(out.split())

    def squashed(text: str) -> str:  # argparse wraps lines, also after hyphens
        return "".join(text.split()).replace("-", "")

    for option in SERVE_OPTIONS:
        assert f"--{option.name}" in shown
        assert squashed(option.described()) in squashed(out), option.name
    assert "[default: 3600; env SSEHUB_HISTORY_TTL]" in shown
    assert "[default: memory; env SSEHUB_BACKEND]" in shown
    assert "SSEHUB_CONFIG" in shown


def test_each_subcommand_names_itself(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: ssehub demo ")
    assert "--no-demo" not in out  # `ssehub demo` always has them
    err = refusal(capsys, "demo", "--port", "x")
    assert err.startswith("ssehub demo: error: ")


def test_python_dash_m_ssehub_is_the_command() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ssehub", "--help"], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 0
    assert run.stdout.startswith("usage: ssehub ")


def run_serve(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ssehub", "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        user=user,
        group=user,
        cwd="/",
    )


def test_a_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = run_serve("--port", str(port))
    assert run.returncode == 1
    assert run.stderr == (
        f"ssehub serve: error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there: stop it or pick another --port)\n"
    )


def test_permission_denied_is_one_line_and_exit_1() -> None:
    """Port 80 as an unprivileged user (the tests may run as root: the hub then runs as nobody)."""
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
        pytest.skip("this kernel lets anyone bind port 80")
    nobody = 65534 if os.geteuid() == 0 else None
    run = run_serve("--port", "80", user=nobody)
    assert run.returncode == 1
    assert run.stderr.startswith(
        "ssehub serve: error: cannot listen on 127.0.0.1:80: permission denied"
    )
    assert run.stderr.count("\n") == 1


def test_an_address_not_on_this_machine_is_one_line_and_exit_1() -> None:
    run = run_serve("--host", "192.0.2.1")  # TEST-NET-1: never on a host
    assert run.returncode == 1
    assert run.stderr.startswith("ssehub serve: error: cannot listen on 192.0.2.1:8000: ")
    assert run.stderr.count("\n") == 1


def test_the_readme_table_is_the_options_table() -> None:
    """README's Operations table has a row per option, with its variable and its default."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `--")]
    for option in SERVE_OPTIONS:
        row = next((r for r in rows if r.startswith(f"| `--{option.name}")), None)
        assert row is not None, f"README has no row for --{option.name}"
        described = option.described()
        default = described[described.index("[default: ") + 10 : described.index("; env")]
        assert f"| `{option.env}` | {default} |" in row, row
