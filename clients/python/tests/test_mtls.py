"""mTLS against `openssl s_server` requiring a client certificate from the signer's chain."""

from __future__ import annotations

import time
import urllib.request

import pytest
import requests

from session_ca import SessionCertificate, SignerClient


def test_the_session_presents_the_certificate(signer, backend):
    certificate = SessionCertificate(SignerClient(signer.url), transaction_id="tx-mtls")
    response = certificate.session(trust=backend.server_cert_pem).get(backend.url, timeout=10)
    assert response.status_code == 200
    # s_server -www writes the client certificate it verified into the page.
    assert certificate.current().certificate.strip() in response.text


def test_the_ssl_context_works_with_other_libraries(signer, backend):
    certificate = SessionCertificate(SignerClient(signer.url))
    context = certificate.ssl_context(trust=backend.server_cert_pem.encode())
    with urllib.request.urlopen(backend.url, context=context, timeout=10) as response:
        assert response.status == 200
        assert certificate.current().certificate.strip() in response.read().decode()


def test_the_backend_must_be_trusted(signer, backend):
    session = SessionCertificate(SignerClient(signer.url)).session()  # system roots: not this backend
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        session.get(backend.url, timeout=10)


def test_a_foreign_signers_certificate_is_refused(foreign_signer, backend):
    session = SessionCertificate(SignerClient(foreign_signer.url)).session(trust=backend.server_cert_pem)
    with pytest.raises(requests.exceptions.SSLError, match="UNKNOWN_CA"):
        session.get(backend.url, timeout=10)


def test_an_expired_certificate_is_refused(signer, make_backend, backend):
    # The same chain, but the backend verifies as if a day had passed: the
    # five-minute certificate has expired by then.
    expired_backend = make_backend(signer.ca_chain_file, attime=int(time.time()) + 86_400)
    certificate = SessionCertificate(SignerClient(signer.url))
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_EXPIRED"):
        certificate.session(trust=expired_backend.server_cert_pem).get(expired_backend.url, timeout=10)
    # and the very same certificate is accepted by the backend that checks at the current time
    assert certificate.session(trust=backend.server_cert_pem).get(backend.url, timeout=10).status_code == 200
    assert any("certificate has expired" in line for line in expired_backend.process.lines)
