"""Loading a client key and certificate into an ``ssl.SSLContext`` without a file path.

``SSLContext.load_cert_chain`` only takes paths. On Linux an anonymous
``memfd_create`` file lives in memory only (it has no name in any
filesystem), and ``/proc/self/fd/N`` lets OpenSSL open it by "path": the
kernel resolves that link to the memfd itself, so nothing is written to a
disk, tmpfs or any directory. The descriptor is closed as soon as OpenSSL has
read it, which frees the memory. Where ``memfd_create`` or ``/proc`` is
unavailable this fails with :class:`InMemoryKeyUnsupported`; it never falls
back to a temporary file.
"""

from __future__ import annotations

import os
import ssl
from typing import Iterable

from ._errors import InMemoryKeyUnsupported

_MEMFD_NAME = "session-ca-client"


def _check_supported() -> None:
    if not hasattr(os, "memfd_create"):
        raise InMemoryKeyUnsupported(
            "os.memfd_create is not available on this platform (it needs Linux and CPython >= 3.8); "
            "session-ca will not write the private key to a file instead"
        )
    if not os.path.isdir("/proc/self/fd"):
        raise InMemoryKeyUnsupported(
            "/proc is not mounted, so an in-memory key cannot be handed to OpenSSL; "
            "session-ca will not write the private key to a file instead"
        )


def load_cert_chain_from_memory(
    context: ssl.SSLContext, certificate: str, private_key: str, chain: Iterable[str] = ()
) -> None:
    """Load ``certificate`` (PEM), its ``chain`` (PEM, issuing CA first) and ``private_key`` (PEM) into ``context``.

    Uses a ``memfd_create`` file read through ``/proc/self/fd/N``; raises
    :class:`InMemoryKeyUnsupported` where that is impossible.
    """
    _check_supported()
    # The leaf first, then the chain (OpenSSL's use_certificate_chain_file
    # order), then the key, which use_PrivateKey_file finds by its PEM label.
    pem = certificate.strip() + "\n"
    for ca in chain:
        pem += ca.strip() + "\n"
    pem += private_key.strip() + "\n"
    data = pem.encode("ascii")
    try:
        fd = os.memfd_create(_MEMFD_NAME, os.MFD_CLOEXEC)
    except OSError as e:
        raise InMemoryKeyUnsupported(f"memfd_create failed: {e}") from e
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        path = f"/proc/self/fd/{fd}"
        if not os.path.exists(path):
            raise InMemoryKeyUnsupported(f"{path} does not resolve (is /proc mounted?)")
        context.load_cert_chain(path)
    finally:
        os.close(fd)
