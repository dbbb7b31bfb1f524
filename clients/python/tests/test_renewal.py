"""Renewal at renew_after, with an injected clock."""

from __future__ import annotations

import threading

import pytest

from session_ca import SessionCertificate, SignerClient, SignerUnreachable


def test_the_session_renews_before_a_request_when_due(signer, backend):
    issued = []

    class CountingClient(SignerClient):
        def issue(self, **kwargs):
            cert = super().issue(**kwargs)
            issued.append(cert)
            return cert

    clock = [0.0]
    certificate = SessionCertificate(CountingClient(signer.url), transaction_id="tx-renew", ttl=300,
                                     clock=lambda: clock[0])
    first = certificate.current()
    clock[0] = first.not_before.timestamp() + 1
    session = certificate.session(trust=backend.server_cert_pem)

    response = session.get(backend.url, timeout=10)
    assert response.status_code == 200 and first.certificate.strip() in response.text

    clock[0] = first.renew_after.timestamp() - 1  # not yet due: same certificate, no issuance
    response = session.get(backend.url, timeout=10)
    assert first.certificate.strip() in response.text
    assert len(issued) == 1

    clock[0] = first.renew_after.timestamp()  # due: the next request carries a new certificate
    response = session.get(backend.url, timeout=10)
    assert len(issued) == 2
    second = issued[-1]
    # (The fake clock is ahead of the signer's, so put it back inside the new
    # certificate's window before asking for the current one again.)
    clock[0] = second.not_before.timestamp() + 1
    assert certificate.current() is second and len(issued) == 2
    assert second.serial != first.serial
    assert response.status_code == 200
    assert second.certificate.strip() in response.text and first.certificate.strip() not in response.text
    assert second.session_id == first.session_id  # the signer's generated session id is kept

    clock[0] = second.renew_after.timestamp() + 1
    assert certificate.ssl_context(trust=backend.server_cert_pem) is not None
    assert certificate.current().serial not in (first.serial, second.serial)


def test_concurrent_callers_share_one_issuance(signer):
    certificate = SessionCertificate(SignerClient(signer.url))
    serials = []
    threads = [threading.Thread(target=lambda: serials.append(certificate.current().serial)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(serials)) == 1


def test_a_failed_renewal_keeps_the_certificate_held(signer):
    class FlakyClient(SignerClient):
        down = False

        def issue(self, **kwargs):
            if self.down:
                raise SignerUnreachable("the signer is down (scripted)")
            return super().issue(**kwargs)

    client = FlakyClient(signer.url)
    certificate = SessionCertificate(client, transaction_id="tx-renew-fails")
    first = certificate.current()
    client.down = True
    with pytest.raises(SignerUnreachable):
        certificate.renew()
    assert certificate.current() is first  # still valid, still served
    client.down = False
    renewed = certificate.renew()
    assert renewed.serial != first.serial and certificate.current() is renewed
