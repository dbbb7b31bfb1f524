"""SignerClient against a real `session-ca serve`."""

from __future__ import annotations

import uuid
from datetime import timezone

import pytest

from session_ca import IssuedCertificate, SignerClient, SignerError, SignerUnreachable


def test_issue_returns_a_typed_certificate(signer):
    session_id = str(uuid.uuid4())
    cert = SignerClient(signer.url).issue(session_id=session_id, transaction_id="tx-0001", ttl=120,
                                          key_type="ed25519", request_id="py-test-1")
    assert isinstance(cert, IssuedCertificate)
    assert cert.session_id == session_id
    assert cert.profile == "default"
    assert cert.key_type == "ed25519"
    assert cert.request_id == "py-test-1"
    assert cert.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert cert.private_key and "PRIVATE KEY" in cert.private_key
    assert len(cert.ca_chain) >= 1 and cert.ca_chain[0].startswith("-----BEGIN CERTIFICATE-----")
    assert cert.not_before.tzinfo is timezone.utc
    assert cert.not_before < cert.renew_after < cert.not_after
    assert (cert.not_after - cert.not_before).total_seconds() <= 120 + 60
    assert len(cert.fingerprint_sha256) == 64
    with pytest.raises(Exception):
        cert.serial = "x"  # frozen


def test_repr_never_shows_the_private_key(signer):
    cert = SignerClient(signer.url).issue()
    assert cert.private_key is not None
    body = cert.private_key.splitlines()[1]
    for text in (repr(cert), str(cert), f"{cert}"):
        assert "PRIVATE KEY" not in text and body not in text
        assert cert.serial in text


def test_refusals_are_signer_errors_with_the_service_code(signer):
    client = SignerClient(signer.url)
    with pytest.raises(SignerError) as refused:
        client.issue(ttl=100_000)
    assert refused.value.status == 422
    assert refused.value.code == "ttl_too_long"
    assert "max_ttl" in refused.value.message
    assert refused.value.request_id
    with pytest.raises(SignerError) as unknown:
        client.issue(profile="no-such-profile")
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_profile")


def test_ca_chain_is_the_served_chain(signer):
    chain = SignerClient(signer.url + "/").ca_chain()
    assert "".join(chain).split() == signer.ca_chain_pem.split()


def test_network_errors_are_wrapped():
    with pytest.raises(SignerUnreachable, match=r"POST http://127\.0\.0\.1:9/v1/certificates"):
        SignerClient("http://127.0.0.1:9", timeout=2).issue()


def test_bad_urls_are_refused():
    for url in ("ftp://signer.example", "signer.example", "http://x/?a=1"):
        with pytest.raises(ValueError):
            SignerClient(url)


def test_an_https_signer_is_verified_with_the_given_bundle(make_backend, server_identity):
    # A plain TLS server stands in for an https:// signer (s_server -www answers any GET with 200).
    tls = make_backend(None)
    url = tls.url.rstrip("/")
    with pytest.raises(SignerUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        SignerClient(url, timeout=5).ca_chain()
    for bundle in (tls.server_cert_pem, tls.server_cert_pem.encode(), str(server_identity["cert"])):
        SignerClient(url, ca_bundle=bundle, timeout=5).ca_chain()  # verified: no exception
