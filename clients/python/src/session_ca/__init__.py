"""Python client of session-ca: per-session mTLS client certificates, held in memory only.

>>> from session_ca import SignerClient, SessionCertificate
>>> signer = SignerClient("http://127.0.0.1:8080")                # doctest: +SKIP
>>> cert = SessionCertificate(signer, transaction_id="tx-0001")   # doctest: +SKIP
>>> cert.session(trust=backend_ca_pem).get("https://backend.example/")  # doctest: +SKIP
"""

from ._auth import Auth, HmacAuth, SigV4Auth
from ._client import IDEMPOTENCY_HEADER, IssuedCertificate, RetryPolicy, SignerClient, new_idempotency_key, trust_context
from ._errors import (
    AuthError,
    InMemoryKeyUnsupported,
    SessionCAError,
    SignerError,
    SignerUnreachable,
    UnexpectedResponse,
)
from ._memfd import load_cert_chain_from_memory
from ._session import SessionCertificate

__all__ = [
    "IDEMPOTENCY_HEADER",
    "Auth",
    "AuthError",
    "HmacAuth",
    "InMemoryKeyUnsupported",
    "IssuedCertificate",
    "SessionCAError",
    "SessionCertificate",
    "SigV4Auth",
    "SignerClient",
    "SignerError",
    "SignerUnreachable",
    "UnexpectedResponse",
    "RetryPolicy",
    "load_cert_chain_from_memory",
    "new_idempotency_key",
    "trust_context",
]

__version__ = "0.1.0"
