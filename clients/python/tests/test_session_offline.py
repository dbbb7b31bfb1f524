"""SessionCertificate against a fake signer and a fake clock: no session-ca binary, openssl or network."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Callable, List

import pytest

from session_ca import InMemoryKeyUnsupported, IssuedCertificate, SessionCertificate, SignerUnreachable


@pytest.fixture(autouse=True)
def requirements() -> None:
    """Overrides conftest's check for SESSION_CA_BIN, openssl and strace, none of which these tests use."""


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _certificate(serial: str, not_before: float, renew_after: float, not_after: float) -> IssuedCertificate:
    return IssuedCertificate(
        serial=serial,
        certificate="-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n",
        private_key="-----BEGIN PRIVATE KEY-----\nfake\n-----END PRIVATE KEY-----\n",
        ca_chain=(),
        not_before=_at(not_before),
        not_after=_at(not_after),
        renew_after=_at(renew_after),
        key_type="ec-p256",
        fingerprint_sha256="00",
        x5t_s256="",
        profile="default",
        session_id="session-1",
        request_id="request-1",
    )


class FakeSigner:
    """Stands in for SignerClient: ``issue`` runs the next scripted step (a certificate to return, or a callable)."""

    def __init__(self, *steps: Any) -> None:
        self.steps: List[Any] = list(steps)
        self.calls: List[dict] = []

    def issue(self, **kwargs: Any) -> IssuedCertificate:
        self.calls.append(kwargs)
        step = self.steps.pop(0)
        return step() if callable(step) else step


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _failing_renewal(clock: FakeClock, takes: float) -> Callable[[], IssuedCertificate]:
    """A renewal that fails after ``takes`` seconds (its retries and timeouts) have passed on ``clock``."""

    def renewal() -> IssuedCertificate:
        clock.now += takes
        raise SignerUnreachable("the signer is down (scripted)")

    return renewal


def test_a_renewal_failing_after_the_certificate_expired_raises():
    clock = FakeClock(1000.0)
    first = _certificate("01", not_before=1000, renew_after=1200, not_after=1300)
    signer = FakeSigner(first, _failing_renewal(clock, takes=150))
    certificate = SessionCertificate(signer, clock=clock)  # type: ignore[arg-type]
    assert certificate.current() is first

    clock.now = 1250.0  # due for renewal, still valid when the renewal starts...
    with pytest.raises(SignerUnreachable):
        certificate.current()  # ...but expired (1400 > 1300) when it has failed
    assert len(signer.calls) == 2


def test_a_renewal_failing_while_the_certificate_is_still_valid_keeps_it():
    clock = FakeClock(1000.0)
    first = _certificate("01", not_before=1000, renew_after=1200, not_after=1300)
    signer = FakeSigner(first, _failing_renewal(clock, takes=30))
    certificate = SessionCertificate(signer, clock=clock)  # type: ignore[arg-type]
    certificate.current()

    clock.now = 1250.0
    assert certificate.current() is first  # failed at 1280, before not_after: kept
    assert len(signer.calls) == 2


@pytest.mark.parametrize("method", ["ssl_context", "session"])
def test_without_memfd_nothing_is_issued(method, monkeypatch):
    signer = FakeSigner(_certificate("01", not_before=1000, renew_after=1200, not_after=1300))
    certificate = SessionCertificate(signer, clock=FakeClock(1000.0))  # type: ignore[arg-type]
    monkeypatch.delattr(os, "memfd_create", raising=False)
    with pytest.raises(InMemoryKeyUnsupported, match="memfd_create is not available"):
        getattr(certificate, method)()
    assert signer.calls == []  # no certificate signed (and recorded) only to be thrown away
