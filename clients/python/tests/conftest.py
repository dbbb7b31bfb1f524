"""Fixtures: real `session-ca serve` signers and `openssl s_server` mTLS backends.

Needs SESSION_CA_BIN (the session-ca binary), openssl and strace. When one is
missing every test fails with a message saying so: nothing is skipped.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from email.message import Message
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

STARTUP_TIMEOUT = 20.0
HMAC_KEY_ID = "test-client"
HMAC_SECRET = b"0123456789abcdef0123456789abcdef-test-secret"


def _requirements() -> List[str]:
    problems = []
    binary = os.environ.get("SESSION_CA_BIN")
    if not binary:
        problems.append("SESSION_CA_BIN is not set: point it at a session-ca binary (e.g. target/release/session-ca)")
    elif not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        problems.append(f"SESSION_CA_BIN={binary!r} is not an executable file")
    for tool in ("openssl", "strace"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} is not on PATH (apt-get install {tool})")
    return problems


@pytest.fixture(scope="session", autouse=True)
def requirements() -> None:
    problems = _requirements()
    if problems:
        pytest.fail("the Python client's tests cannot run:\n  " + "\n  ".join(problems), pytrace=False)


# One step of a script: (status, headers, body), or None to drop the connection unanswered.
Step = Optional[Tuple[int, Dict[str, str], bytes]]


def refusal(status: int, code: str, headers: Optional[Dict[str, str]] = None) -> Step:
    """The service's JSON error answer, as a step of a script."""
    body = json.dumps({"error": {"code": code, "message": f"scripted {code}"}}).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


@dataclass
class Received:
    """A request as a scripted server received it (``headers``: case-insensitive lookups)."""

    method: str
    path: str
    headers: Message
    body: bytes


class Scripted:
    """A loopback HTTP server answering request N with step N of its script, recording each request."""

    def __init__(self, steps: List[Step]) -> None:
        self.steps = list(steps)
        self.received: List[Received] = []
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self.do_POST()

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                scripted.received.append(Received(self.command, self.path, self.headers, body))
                step = scripted.steps.pop(0) if scripted.steps else refusal(500, "script_exhausted")
                if step is None:
                    self.close_connection = True
                    return
                status, headers, answer = step
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    """Starts scripted servers (``scripted(step, ...)``) and stops them after the test."""
    servers: List[Scripted] = []

    def start(*steps: Step) -> Scripted:
        server = Scripted(list(steps))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


class Process:
    """A child process whose stdout+stderr lines are collected by a thread (so its pipe never fills)."""

    def __init__(self, args: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> None:
        self.args = args
        self.lines: List[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> "re.Match[str]":
        """The first output line matching ``pattern``; fails if the process exits or time runs out."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._thread.is_alive():
                    raise RuntimeError(f"{self.args[0]} exited ({self.proc.returncode}):\n" + "\n".join(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.args[0]} did not print {pattern!r} in time:\n" + "\n".join(self.lines))
                self._cond.wait(min(left, 0.2))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Signer:
    """A running `session-ca serve`."""

    def __init__(self, url: str, directory: Path, process: Process) -> None:
        self.url = url
        self.directory = directory
        self.process = process
        response = requests.get(url + "/v1/ca", timeout=5)
        response.raise_for_status()
        self.ca_chain_pem = response.text
        self.ca_chain_file = directory / "served-chain.pem"
        self.ca_chain_file.write_text(self.ca_chain_pem)


def _start_signer(directory: Path, extra_config: str = "", env: Optional[Dict[str, str]] = None) -> Signer:
    binary = os.environ["SESSION_CA_BIN"]
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "ca" / "ca-key.pem").exists():
        subprocess.run([binary, "init", "--dir", str(directory / "ca")], check=True, capture_output=True)
    config = directory / "session-ca.toml"
    config.write_text(
        extra_config
        + f"""
[cas.default]
source = "file:{directory / 'ca'}"

[profiles.default]
default_ttl = "5m"
max_ttl = "15m"
"""
    )
    child_env = dict(os.environ, SESSION_CA_LOG_FORMAT="json", **(env or {}))
    process = Process([binary, "serve", "--config", str(config), "--listen", "127.0.0.1:0"], directory, child_env)
    try:
        line = process.wait_for(r'"session-ca listening"')
        address = json.loads(line.string)["address"]
        url = f"http://{address}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:  # readiness: /healthz answers 200 once every CA can sign
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the signer's /healthz never answered 200:\n" + "\n".join(process.lines))
            time.sleep(0.05)
        return Signer(url, directory, process)
    except BaseException:
        process.stop()
        raise


@pytest.fixture(scope="session")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    """A signer without authentication (loopback)."""
    s = _start_signer(tmp_path_factory.mktemp("signer"))
    yield s
    s.process.stop()


@pytest.fixture(scope="session")
def foreign_signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    """A second signer with a CA of its own, which the backends do not trust."""
    s = _start_signer(tmp_path_factory.mktemp("foreign"))
    yield s
    s.process.stop()


@pytest.fixture(scope="session")
def hmac_signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signer]:
    """A signer with `server.auth = "hmac"` and key HMAC_KEY_ID."""
    directory = tmp_path_factory.mktemp("hmac-signer")
    secret_file = directory / "hmac-secret"
    secret_file.write_bytes(HMAC_SECRET + b"\n")  # the trailing newline is dropped by the service
    config = f"""
[server]
auth = "hmac"

[hmac_keys.{HMAC_KEY_ID}]
secret_file = "{secret_file}"
"""
    s = _start_signer(directory, config)
    yield s
    s.process.stop()


class Backend:
    """An `openssl s_server -www` that requires a client certificate from a given chain."""

    def __init__(self, url: str, server_cert_pem: str, process: Process) -> None:
        self.url = url
        self.server_cert_pem = server_cert_pem
        self.process = process


@pytest.fixture(scope="session")
def server_identity(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """A throwaway self-signed server certificate for localhost and 127.0.0.1."""
    directory = tmp_path_factory.mktemp("server-identity")
    cert, key = directory / "server.pem", directory / "server-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return {"cert": cert, "key": key, "dir": directory}


@pytest.fixture(scope="session")
def make_backend(server_identity: Dict[str, Path]) -> Iterator[Callable[..., Backend]]:
    started: List[Process] = []

    def start(ca_file: Optional[Path], attime: Optional[int] = None) -> Backend:
        """A backend requiring a client certificate from ``ca_file`` (None: plain TLS, no client certificate)."""
        args = ["openssl", "s_server", "-accept", "127.0.0.1:0",
                "-cert", str(server_identity["cert"]), "-key", str(server_identity["key"]), "-www"]
        if ca_file is not None:
            args += ["-Verify", "1", "-verify_return_error", "-CAfile", str(ca_file)]
        if attime is not None:
            args += ["-attime", str(attime)]  # verify client certificates as if at this time
        process = Process(args, server_identity["dir"])
        started.append(process)
        port = int(process.wait_for(r"^ACCEPT .*:(\d+)$").group(1))
        return Backend(f"https://localhost:{port}/", server_identity["cert"].read_text(), process)

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def backend(make_backend: Callable[..., Backend], signer: Signer) -> Backend:
    """A backend trusting `signer`'s chain (from GET /v1/ca)."""
    return make_backend(signer.ca_chain_file)
