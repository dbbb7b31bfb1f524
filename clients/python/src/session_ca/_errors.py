"""Exceptions raised by the session-ca client."""

from __future__ import annotations

from typing import Optional


class SessionCAError(Exception):
    """Base class of every error this package raises."""


class SignerError(SessionCAError):
    """The signer answered with an error (its JSON ``{"error": {"code", "message"}}``).

    ``status`` is the HTTP status, ``code`` the service's stable error code
    (``unauthenticated``, ``ttl_too_long``, ...; ``None`` when the body was not
    the service's error JSON, e.g. a gateway's answer), ``message`` its text,
    ``request_id`` the ``X-Request-Id`` of the response, if any, and
    ``retry_after`` its ``Retry-After`` in seconds, if any (what to wait
    before trying again, when the retry policy gave up: e.g. a wait longer
    than it allows).
    """

    def __init__(
        self,
        status: int,
        code: Optional[str],
        message: str,
        request_id: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        text = f"the signer refused the request: HTTP {status}"
        if code:
            text += f" {code}"
        text += f": {message}"
        if request_id:
            text += f" (request id {request_id})"
        super().__init__(text)


class SignerUnreachable(SessionCAError):
    """The signer could not be reached or did not answer (connection, TLS or timeout)."""


class UnexpectedResponse(SessionCAError):
    """The signer answered with something that is not the API's response."""


class AuthError(SessionCAError):
    """A request could not be signed (no AWS credentials or region, botocore missing, short HMAC secret)."""


class InMemoryKeyUnsupported(SessionCAError):
    """This platform cannot load a private key into an ``ssl.SSLContext`` without a file path.

    Raised instead of writing the key to a temporary file: the package never
    puts a private key on a filesystem path.
    """
