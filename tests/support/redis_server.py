"""A private `redis-server` for tests that stop, restart or flush it.

No persistence (`--save "" --appendonly no`): a restart comes back empty, as a Redis without
persistence does. Loopback only, on a free port that `restart()` keeps.
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["REDIS_SERVER", "RedisServer", "free_port"]

#: The redis-server binary, or None when there is none (tests that need one skip).
REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the test process dies, even if it is killed."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _self_signed(certificate: Path, key_file: Path) -> None:
    """A key and a certificate for 127.0.0.1, signed by that key (its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """`start()`, `stop()`, `restart()`; `url` is `redis://127.0.0.1:<port>/0`.

    With `tls`, it listens with TLS only (a certificate made here, `ca_file`), and `url` is a
    `rediss://` URL that trusts it; with `password`, clients must authenticate.
    """

    def __init__(self, *, tls: bool = False, password: str | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self._directory = tempfile.TemporaryDirectory(prefix="ssehub-redis-")
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.password = password
        self.ca_file: Path | None = None
        if tls:
            self.ca_file = Path(self._directory.name) / "redis.crt"
            _self_signed(self.ca_file, Path(self._directory.name) / "redis.key")

    @property
    def url(self) -> str:
        auth = "" if self.password is None else f":{self.password}@"
        if self.ca_file is None:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"

    def client(self) -> redis.Redis:
        if self.ca_file is None:
            return redis.Redis(
                host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5
            )
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=5,
            ssl=True,
            ssl_ca_certs=str(self.ca_file),
        )

    def start(self, timeout: float = 10.0) -> None:
        assert self.process is None, "already running"
        assert REDIS_SERVER is not None
        # Options are given as arguments so the server reads no configuration file.
        argv = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._directory.name,
            "--logfile",
            "",
            "--loglevel",
            "warning",
        ]
        if self.ca_file is not None:
            key = self.ca_file.with_suffix(".key")
            argv[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            argv += ["--tls-cert-file", str(self.ca_file), "--tls-key-file", str(key)]
            argv += ["--tls-ca-cert-file", str(self.ca_file), "--tls-auth-clients", "no"]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        client = self.client()
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.01)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def restart(self) -> None:
        """Stop and start again on the same port: empty, as a Redis without persistence."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._directory.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
