"""The private key never reaches a filesystem path.

Method: a small client script gets a certificate and makes an mTLS request
in a child process run under ``strace -f``, tracing every system call that
can create, write or name a file (open/openat/openat2 with their flags,
creat, rename*, link*, symlink*) and memfd_create. The log must show

* memfd_create("session-ca-client", MFD_CLOEXEC) and the read of
  /proc/self/fd/N (how the key reaches OpenSSL),
* no open for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC), creat, rename,
  link or symlink of any path outside /dev/ and /proc/,

and the script must have completed its mTLS request. Python runs with -B and
PYTHONDONTWRITEBYTECODE=1 so that bytecode caches are not written either.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, os.environ["CLIENT_SRC"])
    from session_ca import SessionCertificate, SignerClient
    certificate = SessionCertificate(SignerClient(os.environ["SIGNER_URL"]), transaction_id="tx-strace")
    response = certificate.session(trust=os.environ["BACKEND_CA"]).get(os.environ["BACKEND_URL"], timeout=10)
    assert certificate.current().certificate.strip() in response.text
    print("mTLS status", response.status_code)
    """
)

WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
NAMING_CALLS = ("creat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat")


def _allowed(path: str) -> bool:
    return path.startswith("/dev/") or path.startswith("/proc/")


def _violations(calls):
    """The strace lines that open a path for writing or create a name, outside /dev/ and /proc/."""
    violations = []
    for call in calls:
        match = re.match(r"^\d+\s+(\w+)\((.*)", call)
        if not match or "resumed>" in call:
            continue
        name, args = match.groups()
        paths = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
        if name in ("open", "openat", "openat2"):
            if paths and any(flag in args for flag in WRITE_FLAGS) and not _allowed(paths[0]):
                violations.append(call)
        elif name in NAMING_CALLS and not all(_allowed(p) for p in paths):
            violations.append(call)
    return violations


def test_the_log_check_finds_writes():
    bad = [
        '12  openat(AT_FDCWD, "/tmp/key.pem", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3',
        '12  openat(AT_FDCWD, "/work/x", O_RDWR <unfinished ...>',
        '13  rename("/tmp/a", "/tmp/b") = 0',
        '13  creat("/tmp/c", 0600) = 3',
    ]
    assert _violations(bad) == bad
    assert _violations([
        '12  openat(AT_FDCWD, "/etc/ssl/cert.pem", O_RDONLY|O_CLOEXEC) = 3',
        '12  openat(AT_FDCWD, "/dev/null", O_RDWR|O_CLOEXEC) = 3',
        '12  openat(AT_FDCWD, "/proc/self/fd/4", O_RDONLY) = 5',
        '12  memfd_create("session-ca-client", MFD_CLOEXEC) = 4',
    ]) == []


def test_no_key_touches_a_filesystem_path(signer, backend, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(SCRIPT)
    log = tmp_path / "strace.log"
    env = dict(
        os.environ,
        PYTHONDONTWRITEBYTECODE="1",
        CLIENT_SRC=str(Path(__file__).resolve().parents[1] / "src"),
        SIGNER_URL=signer.url,
        BACKEND_URL=backend.url,
        BACKEND_CA=backend.server_cert_pem,
    )
    run = subprocess.run(
        ["strace", "-f", "-s", "256", "-o", str(log),
         "-e", "trace=open,openat,openat2,creat,rename,renameat,renameat2,link,linkat,symlink,symlinkat,memfd_create",
         sys.executable, "-B", str(script)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mTLS status 200" in run.stdout

    calls = log.read_text().splitlines()
    memfd = [c for c in calls if re.search(r'memfd_create\("session-ca-client", MFD_CLOEXEC\) = \d+', c)]
    assert memfd, "memfd_create was not called:\n" + "\n".join(calls[-50:])
    fd = re.search(r"= (\d+)", memfd[0]).group(1)
    assert any(f'"/proc/self/fd/{fd}", O_RDONLY' in c for c in calls), "the memfd was not read through /proc"

    violations = _violations(calls)
    assert not violations, "paths opened for writing or named:\n" + "\n".join(violations)
