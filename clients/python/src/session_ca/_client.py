"""``SignerClient``: asks a session-ca signer for certificates."""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlencode, urlsplit

import requests

from ._auth import Auth, SigV4Auth
from ._errors import SignerError, SignerUnreachable, UnexpectedResponse
from ._tls import ContextAdapter

PemOrPath = Union[str, bytes]

IDEMPOTENCY_HEADER = "Idempotency-Key"
"""The request header of an idempotency key (see :meth:`SignerClient.issue`)."""
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")


def new_idempotency_key() -> str:
    """A fresh idempotency key: 24 random bytes (``secrets``), base64url without padding (32 characters)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently :meth:`SignerClient.issue` retries.

    A request is retried when it failed for a reason that may pass: the
    signer unreachable (connection refused or reset, TLS, timeout), HTTP 502,
    503 or 504, 409 ``idempotency_in_progress`` or 429. Every attempt carries
    the same ``Idempotency-Key`` (and a fresh signature), so the signer issues
    at most one certificate for them all.

    Before attempt ``n + 1`` it waits the answer's ``Retry-After`` (integer
    seconds) when there is one, else a random time between zero and
    ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds ("full jitter"). A
    ``Retry-After`` longer than ``max_delay`` ends the retries at once: the
    error is raised rather than slept on. The same policy as the Rust client's.

    Each attempt may take up to the client's ``timeout`` to connect and as
    much for each read, so the worst case is about ``max_attempts`` times
    that, plus the waits: a caller with a deadline (a Lambda handler) sizes
    ``timeout`` and ``max_attempts`` to fit it.
    """

    max_attempts: int = 3
    """Attempts in all, the first included (0 counts as 1: no retry)."""
    base_delay: float = 0.2
    """The cap of the first backoff, in seconds; it doubles with every attempt."""
    max_delay: float = 2.0
    """The longest wait before an attempt, backoff or ``Retry-After``, in seconds."""

    @classmethod
    def none(cls) -> "RetryPolicy":
        """One attempt, no retry."""
        return cls(max_attempts=1)

    def delay(self, attempts: int, retry_after: Optional[float]) -> Optional[float]:
        """Seconds to wait after ``attempts`` failed, the last with ``retry_after``; ``None`` to give up."""
        if attempts >= max(self.max_attempts, 1):
            return None
        if retry_after is not None:
            return None if retry_after > self.max_delay else retry_after
        cap = min(self.max_delay, self.base_delay * 2 ** min(max(attempts - 1, 0), 31))
        return random.uniform(0.0, cap)


def _parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp (``2026-11-22T08:24:17Z``) as an aware UTC datetime (Python 3.8-safe)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:  # fromisoformat before 3.11 takes 3 or 6 fraction digits only
        head, rest = value.split(".", 1)
        digits = "".join(c for c in rest if c.isdigit())
        value = f"{head}.{(digits + '000000')[:6]}{rest[len(digits):]}"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate issued by the signer, with its private key (PEM). ``repr`` never shows the key."""

    serial: str
    certificate: str
    private_key: Optional[str] = field(repr=False)
    ca_chain: Tuple[str, ...]
    not_before: datetime
    not_after: datetime
    renew_after: datetime
    key_type: str
    fingerprint_sha256: str
    x5t_s256: str
    profile: str
    session_id: str
    request_id: str

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> "IssuedCertificate":
        """Build from the JSON body of a 201 ``POST /v1/certificates``."""
        return cls(
            serial=str(body["serial"]),
            certificate=str(body["certificate"]),
            private_key=body.get("private_key"),
            ca_chain=tuple(str(c) for c in body["ca_chain"]),
            not_before=_parse_time(body["not_before"]),
            not_after=_parse_time(body["not_after"]),
            renew_after=_parse_time(body["renew_after"]),
            key_type=str(body["key_type"]),
            fingerprint_sha256=str(body["fingerprint_sha256"]),
            x5t_s256=str(body.get("x5t#S256", "")),
            profile=str(body["profile"]),
            session_id=str(body["session_id"]),
            request_id=str(body["request_id"]),
        )

    def __str__(self) -> str:
        return repr(self)


def _is_pem(value: PemOrPath) -> bool:
    """Whether ``value`` is PEM text rather than a path: a PEM block anywhere in it (a
    bundle may open with comments, as certifi's does, or with ``Bag Attributes``)."""
    return (b"-----BEGIN" in value) if isinstance(value, bytes) else ("-----BEGIN" in value)


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """The session's own ``auth``, which changes nothing: requests looks up ``~/.netrc``
    only when no auth is set, and a netrc entry for the signer's host would replace the
    signature's ``Authorization`` header with Basic auth (and send that password)."""
    return request


def trust_context(trust: Optional[PemOrPath]) -> ssl.SSLContext:
    """A TLS client context (verification and hostname checks on) trusting ``trust``.

    ``trust`` is PEM text or bytes (loaded in memory), a path to a PEM file, or
    ``None`` for the system's default roots.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH) if trust is None else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if trust is not None:
        if _is_pem(trust):
            text = trust.decode("ascii") if isinstance(trust, bytes) else trust
            context.load_verify_locations(cadata=text)
        else:
            context.load_verify_locations(cafile=os.fsdecode(trust))
    return context


class SignerClient:
    """A client of the session-ca signer at ``url``.

    ``url`` is the service's base URL, which may carry a path prefix (an API
    Gateway stage, ``https://abc.execute-api.eu-west-1.amazonaws.com/prod``).
    ``auth`` is ``None`` (a local ``serve`` without authentication),
    :class:`~session_ca.SigV4Auth` or :class:`~session_ca.HmacAuth`.
    ``ca_bundle`` is what an ``https://`` signer's certificate is checked
    against, instead of the system's roots: PEM text/bytes (kept in memory) or
    a path; ``None`` uses the system's roots. ``timeout`` is in
    seconds, for connecting and for each read. ``retry`` is the
    :class:`RetryPolicy` of :meth:`issue` (default: 3 attempts, backoff from
    0.2 s, at most 2 s; ``RetryPolicy.none()`` for a single attempt).
    """

    def __init__(
        self,
        url: str,
        auth: Optional[Auth] = None,
        ca_bundle: Optional[PemOrPath] = None,
        timeout: float = 10.0,
        retry: Optional[RetryPolicy] = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r}: the signer URL must be http:// or https:// with a host")
        if parts.query or parts.fragment:
            raise ValueError(f"{url!r}: the signer URL must not have a query or fragment")
        self.url = url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._http = requests.Session()
        self._http.auth = _no_netrc
        # Passed with every request, so that REQUESTS_CA_BUNDLE cannot override a given bundle.
        self._verify: Union[bool, str] = True
        if ca_bundle is not None:
            if _is_pem(ca_bundle):
                context = trust_context(ca_bundle)
                self._http.mount("https://", ContextAdapter(lambda: context))
            else:
                self._verify = os.fsdecode(ca_bundle)

    def __repr__(self) -> str:
        return f"SignerClient(url={self.url!r}, auth={self.auth!r})"

    def close(self) -> None:
        """Close the pooled connections to the signer."""
        self._http.close()

    def __enter__(self) -> "SignerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def issue(
        self,
        profile: Optional[str] = None,
        session_id: Optional[str] = None,
        transaction_id: Optional[str] = None,
        claims: Optional[Mapping[str, Any]] = None,
        key_type: Optional[str] = None,
        ttl: Optional[int] = None,
        request_id: Optional[str] = None,
        idempotency_key: Optional[str] = None,
    ) -> IssuedCertificate:
        """Ask for a certificate (``POST /v1/certificates``); the signer generates the key.

        ``ttl`` is in whole seconds (the profile's ``default_ttl`` when absent).
        ``request_id`` is sent as ``X-Request-Id``.

        Every call sends an ``Idempotency-Key``: ``idempotency_key`` (16 to 128
        characters of ``A-Z a-z 0-9 - _``; a :class:`ValueError` before anything
        is sent otherwise), or a fresh one (:func:`new_idempotency_key`). The
        call's retries (:class:`RetryPolicy`) reuse it, so a signer with a store
        issues one certificate for all of them; a caller that must not get two
        certificates across its own restarts keeps a key and passes it again.

        Raises :class:`SignerError` for the service's refusals,
        :class:`SignerUnreachable` for network and TLS failures and
        :class:`UnexpectedResponse` for anything else, once the retries (if the
        failure allows them) are spent.
        """
        if idempotency_key is not None and not (
            isinstance(idempotency_key, str) and _KEY_SHAPE.fullmatch(idempotency_key)
        ):
            raise ValueError("an idempotency key must be 16 to 128 characters of A-Z a-z 0-9 - _")
        key = idempotency_key if idempotency_key is not None else new_idempotency_key()
        request: Dict[str, Any] = {}
        for name, value in (
            ("profile", profile),
            ("session_id", session_id),
            ("transaction_id", transaction_id),
            ("claims", dict(claims) if claims is not None else None),
            ("key_type", key_type),
            ("ttl_seconds", ttl),
        ):
            if value is not None:
                request[name] = value
        body = json.dumps(request, separators=(",", ":")).encode("utf-8")
        url = self.url + "/v1/certificates"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if request_id is not None:
            headers["X-Request-Id"] = request_id
        attempts = 0
        while True:
            attempts += 1
            sent = dict(headers)
            if self.auth is not None:
                # A fresh signature (timestamp, nonce) on every attempt; the key
                # is not signed, as in the Rust client: the signer scopes keys
                # to the authenticated caller.
                sent.update(self.auth.headers("POST", url, body, dict(headers)))
            sent[IDEMPOTENCY_HEADER] = key
            retry_after: Optional[float] = None
            try:
                response = self._send("POST", url, headers=sent, data=body)
            except SignerUnreachable as e:
                error: Exception = e
            else:
                if response.status_code == 201:
                    break
                error = _rejection(response)
                if not _retryable(response.status_code, error):
                    raise error
                retry_after = _retry_after(response)
            wait = self.retry.delay(attempts, retry_after)
            if wait is None:
                raise error
            time.sleep(wait)
        try:
            return IssuedCertificate.from_response(response.json())
        except (ValueError, KeyError, TypeError) as e:
            raise UnexpectedResponse(
                f"POST {url} answered 201 with a body that is not an issuance response ({type(e).__name__})"
            ) from None

    def ca_chain(self, profile: Optional[str] = None) -> List[str]:
        """The profile's CA chain (``GET /v1/ca``) as PEM certificates, issuing CA first.

        Signed with SigV4 when that is the client's auth (a Function URL or an API Gateway
        with IAM auth checks every path), as the Rust client does; the signer itself does not
        authenticate this route, so an HMAC signature is not sent.
        """
        url = self.url + "/v1/ca"
        if profile:
            url += "?" + urlencode({"profile": profile})
        headers: Dict[str, str] = {}
        if isinstance(self.auth, SigV4Auth):
            headers.update(self.auth.headers("GET", url, b"", dict(headers)))
        response = self._send("GET", url, headers=headers)
        if response.status_code != 200:
            raise _rejection(response)
        return _split_pem(response.text)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._http.request(
                method, url, timeout=self.timeout, verify=self._verify, allow_redirects=False, **kwargs
            )
        except requests.RequestException as e:
            raise SignerUnreachable(f"{method} {url}: {type(e).__name__}: {e}") from e


def _retryable(status: int, error: Exception) -> bool:
    """Whether a refusal may pass: 502, 503, 504, 429 or 409 ``idempotency_in_progress``."""
    if status in (502, 503, 504, 429):
        return True
    return status == 409 and isinstance(error, SignerError) and error.code == "idempotency_in_progress"


def _retry_after(response: requests.Response) -> Optional[float]:
    """``Retry-After`` in integer seconds (the HTTP-date form, which the signer does not send, is ignored)."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if re.fullmatch(r"[0-9]+", value) else None


def _split_pem(text: str) -> List[str]:
    end = "-----END CERTIFICATE-----"
    return [block.strip() + "\n" + end + "\n" for block in text.split(end) if "-----BEGIN" in block]


def _rejection(response: requests.Response) -> Exception:
    request_id = response.headers.get("X-Request-Id")
    retry_after = _retry_after(response)
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        # Another party's answer (a gateway's): its start, with no control characters.
        text = "".join(c if c.isprintable() else " " for c in response.text[:200])
        return SignerError(response.status_code, None, text or response.reason or "no body", request_id, retry_after)
    return SignerError(response.status_code, code, message, request_id, retry_after)
