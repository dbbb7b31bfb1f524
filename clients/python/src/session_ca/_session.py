"""``SessionCertificate``: one session's certificate, renewed when due, as an SSLContext or a requests.Session."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import requests

from ._client import IssuedCertificate, PemOrPath, SignerClient, trust_context
from ._errors import SessionCAError
from ._memfd import _check_supported, load_cert_chain_from_memory
from ._tls import ContextAdapter

logger = logging.getLogger("session_ca")


class SessionCertificate:
    """The current certificate of one session, issued on first use and renewed at ``renew_after``.

    The keyword arguments are those of :meth:`SignerClient.issue`. When no
    ``session_id`` is given, the signer's generated one is kept for renewals,
    so every certificate of this object names the same session. ``clock``
    returns the time as Unix seconds (``time.time``; tests inject their own).
    Thread-safe: concurrent callers share one issuance.

    If a renewal fails while the current certificate is still valid, the
    failure is logged and the current certificate is kept (the next call
    tries again); once it has expired the error is raised.
    """

    def __init__(
        self,
        client: SignerClient,
        *,
        profile: Optional[str] = None,
        session_id: Optional[str] = None,
        transaction_id: Optional[str] = None,
        claims: Optional[Mapping[str, Any]] = None,
        key_type: Optional[str] = None,
        ttl: Optional[int] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._request: Dict[str, Any] = dict(
            profile=profile,
            session_id=session_id,
            transaction_id=transaction_id,
            claims=dict(claims) if claims is not None else None,
            key_type=key_type,
            ttl=ttl,
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._certificate: Optional[IssuedCertificate] = None

    def __repr__(self) -> str:
        serial = self._certificate.serial if self._certificate else None
        return f"SessionCertificate(client={self.client!r}, serial={serial!r})"

    def current(self) -> IssuedCertificate:
        """The current certificate, issuing a new one first when none is held or ``renew_after`` has passed."""
        with self._lock:
            held = self._certificate
            now = self._clock()
            if held is not None and now < held.renew_after.timestamp():
                return held
            try:
                return self._issue()
            except SessionCAError as e:
                # A failed renewal may have taken several timeouts: read the
                # clock again, so that a certificate which expired meanwhile
                # is never handed back.
                if held is not None and self._clock() < held.not_after.timestamp():
                    logger.warning("session-ca: renewal failed, keeping serial %s until it expires: %s", held.serial, e)
                    return held
                raise

    def renew(self) -> IssuedCertificate:
        """Issue a new certificate now, whatever ``renew_after`` says.

        Raises if the signer does not issue one; the certificate held, while
        still valid, stays the :meth:`current` one.
        """
        with self._lock:
            return self._issue()

    def _issue(self) -> IssuedCertificate:
        """Issues a certificate and holds it (called with the lock held)."""
        issued = self.client.issue(**self._request)
        if issued.private_key is None:
            raise SessionCAError("the signer returned no private key (CSR mode is not supported here)")
        if self._request["session_id"] is None:
            self._request["session_id"] = issued.session_id
        self._certificate = issued
        return issued

    def ssl_context(self, trust: Optional[PemOrPath] = None) -> ssl.SSLContext:
        """A TLS client context with the current certificate, its chain and key loaded from memory.

        ``trust`` is the backend's server CA (PEM text/bytes, or a path), or
        ``None`` for the system roots; verification and hostname checks are
        on. The context holds the certificate current *now*: call again
        after ``renew_after`` (or use :meth:`session`, which does so itself).
        Raises :class:`InMemoryKeyUnsupported` where the key cannot be loaded
        without a file (checked before any certificate is issued).
        """
        _check_supported()  # before issuing: a certificate that cannot be loaded would be signed for nothing
        return self._context_for(self.current(), trust)

    @staticmethod
    def _context_for(certificate: IssuedCertificate, trust: Optional[PemOrPath]) -> ssl.SSLContext:
        context = trust_context(trust)
        assert certificate.private_key is not None
        load_cert_chain_from_memory(context, certificate.certificate, certificate.private_key, certificate.ca_chain)
        return context

    def session(self, trust: Optional[PemOrPath] = None) -> requests.Session:
        """A ``requests.Session`` whose ``https://`` requests present the session's certificate.

        Before each request the certificate is renewed if due, and a renewed
        certificate gets a new context and new connections. ``trust`` as for
        :meth:`ssl_context`; ``verify=`` and ``cert=`` of requests are not used.
        """
        _check_supported()  # before issuing: a certificate that cannot be loaded would be signed for nothing
        cache_lock = threading.Lock()
        cache: List[Tuple[IssuedCertificate, ssl.SSLContext]] = []

        def provider() -> ssl.SSLContext:
            certificate = self.current()
            with cache_lock:
                if not cache or cache[0][0] is not certificate:
                    cache[:] = [(certificate, self._context_for(certificate, trust))]
                return cache[0][1]

        provider()  # fail now (no memfd, signer refusal) rather than at the first request
        session = requests.Session()
        session.mount("https://", ContextAdapter(provider))
        return session
