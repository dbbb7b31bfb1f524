"""Request authentication: AWS SigV4 (through botocore) and session-ca's HMAC scheme."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Any, Callable, Dict, Optional, Union
from urllib.parse import urlsplit

from ._errors import AuthError

#: The HMAC scheme's name, in the ``Authorization`` header and the string to sign.
HMAC_SCHEME = "SESSION-CA-HMAC-SHA256"
#: The shortest HMAC secret the service accepts, in bytes.
HMAC_MIN_SECRET_BYTES = 32


class Auth:
    """How a request to the signer is authenticated. Subclasses add headers."""

    def headers(self, method: str, url: str, body: bytes, base_headers: Dict[str, str]) -> Dict[str, str]:
        """The headers to send with a request of ``method`` to ``url`` carrying ``body``."""
        raise NotImplementedError


def _hmac_string_to_sign(method: str, path_and_query: str, timestamp: int, nonce: str, body: bytes) -> str:
    """The six lines an HMAC signature covers (see the service's ``hmac.rs``)."""
    return "\n".join(
        [HMAC_SCHEME, method, path_and_query, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]
    )


class HmacAuth(Auth):
    """``server.auth = "hmac"``: requests signed with a key id and a shared secret.

    ``Authorization: SESSION-CA-HMAC-SHA256 KeyId=<id>, Timestamp=<unix>,
    Nonce=<32 hex>, Signature=<hex>``, the signature being HMAC-SHA256 with the
    secret over the scheme, the method, the path with its query as sent, the
    timestamp, the nonce and the hex SHA-256 of the body, joined by ``\\n``.
    The secret (at least 32 bytes) never appears in ``repr`` or errors.
    """

    def __init__(
        self,
        key_id: str,
        secret: Union[bytes, str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        if len(secret) < HMAC_MIN_SECRET_BYTES:
            raise AuthError(f"an HMAC secret must be at least {HMAC_MIN_SECRET_BYTES} bytes, got {len(secret)}")
        if not key_id or any(c in key_id for c in " ,=\r\n"):
            raise AuthError(f"invalid HMAC key id {key_id!r}")
        self.key_id = key_id
        self._secret = bytes(secret)
        self._clock = clock

    def __repr__(self) -> str:
        return f"HmacAuth(key_id={self.key_id!r}, secret=[elided])"

    def authorization(self, method: str, path_and_query: str, timestamp: int, nonce: str, body: bytes) -> str:
        """The ``Authorization`` value for these fields (deterministic; for tests and other transports)."""
        to_sign = _hmac_string_to_sign(method, path_and_query, timestamp, nonce, body)
        signature = hmac.new(self._secret, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        return f"{HMAC_SCHEME} KeyId={self.key_id}, Timestamp={timestamp}, Nonce={nonce}, Signature={signature}"

    def headers(self, method: str, url: str, body: bytes, base_headers: Dict[str, str]) -> Dict[str, str]:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        nonce = secrets.token_hex(16)
        return {"Authorization": self.authorization(method, path, int(self._clock()), nonce, body)}


class SigV4Auth(Auth):
    """AWS Signature Version 4 with botocore, for the Lambda behind a Function URL or API Gateway (IAM auth).

    ``service`` is ``"lambda"`` for a Function URL and ``"execute-api"`` for API
    Gateway. ``region`` defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` or
    botocore's configuration. ``credentials`` is a botocore ``Credentials`` (or
    anything with ``access_key``, ``secret_key`` and ``token``); by default
    botocore's chain (environment, which in Lambda holds the function's role,
    profiles, container and instance metadata), refreshed as botocore sees fit.
    The exact body bytes are signed and their SHA-256 sent as
    ``X-Amz-Content-Sha256``; a session token goes in ``X-Amz-Security-Token``.
    """

    def __init__(
        self,
        region: Optional[str] = None,
        service: str = "lambda",
        credentials: Optional[Any] = None,
    ) -> None:
        try:
            import botocore.session  # noqa: F401  (checked here, used lazily)
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise AuthError(
                "SigV4 signing needs botocore: pip install 'session-ca[aws]' (or botocore)"
            ) from e
        self.service = service
        self._credentials = credentials
        self._session: Any = None
        self.region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not self.region:
            self.region = self._botocore_session().get_config_variable("region")
        if not self.region:
            raise AuthError("SigV4 signing needs a region: pass region= or set AWS_REGION")

    def __repr__(self) -> str:
        return f"SigV4Auth(region={self.region!r}, service={self.service!r})"

    def _botocore_session(self) -> Any:
        if self._session is None:
            import botocore.session

            self._session = botocore.session.Session()
        return self._session

    def _frozen_credentials(self) -> Any:
        credentials = self._credentials
        if credentials is None:
            credentials = self._botocore_session().get_credentials()
            if credentials is None:
                raise AuthError("no AWS credentials found (botocore's default chain found none)")
        if hasattr(credentials, "get_frozen_credentials"):
            return credentials.get_frozen_credentials()
        return credentials

    def headers(self, method: str, url: str, body: bytes, base_headers: Dict[str, str]) -> Dict[str, str]:
        from botocore.auth import SigV4Auth as BotoSigV4
        from botocore.awsrequest import AWSRequest

        headers = dict(base_headers)
        headers["X-Amz-Content-Sha256"] = hashlib.sha256(body).hexdigest()
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        BotoSigV4(self._frozen_credentials(), self.service, self.region).add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() not in {h.lower() for h in base_headers}}
