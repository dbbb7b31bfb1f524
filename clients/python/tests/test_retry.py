"""Idempotency keys and retries of SignerClient.issue.

The replay is checked against a real `session-ca serve` with an SQLite store;
the retry decisions against a scripted HTTP server on loopback that answers
each request with the next step of its script (a refusal, a dropped
connection, or a 201 whose body a real signer produced), and records what it
received.
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from session_ca import (
    HmacAuth,
    RetryPolicy,
    SignerClient,
    SignerError,
    new_idempotency_key,
)

from conftest import HMAC_SECRET, Step, _start_signer, refusal

QUICK = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=2.0)


@pytest.fixture(scope="module")
def issued(signer) -> Step:
    """A 201 as a real signer answers it."""
    response = requests.post(signer.url + "/v1/certificates", json={}, timeout=10)
    assert response.status_code == 201, response.text
    return 201, {"Content-Type": "application/json"}, response.content


@pytest.fixture(scope="module")
def ledger_signer(tmp_path_factory):
    """A signer with an SQLite store, so that idempotency keys take effect."""
    directory = tmp_path_factory.mktemp("ledger-signer")
    s = _start_signer(directory, f'[store]\nurl = "sqlite:{directory / "ledger.sqlite3"}"\n')
    yield s
    s.process.stop()


def test_a_given_key_is_replayed_by_the_signer_and_fresh_keys_are_not(ledger_signer):
    client = SignerClient(ledger_signer.url)
    session_id = str(uuid.uuid4())
    key = new_idempotency_key()
    first = client.issue(session_id=session_id, idempotency_key=key)
    again = client.issue(session_id=session_id, idempotency_key=key)
    assert again.serial == first.serial
    assert again.certificate == first.certificate
    # Without a key of the caller's, every call is a new request.
    one = client.issue(session_id=session_id)
    two = client.issue(session_id=session_id)
    assert len({first.serial, one.serial, two.serial}) == 3
    # The same key with another body is the signer's 422, not retried into a certificate.
    with pytest.raises(SignerError) as reused:
        client.issue(session_id=str(uuid.uuid4()), idempotency_key=key)
    assert (reused.value.status, reused.value.code) == (422, "idempotency_key_reused")


def test_a_bad_key_is_refused_before_anything_is_sent():
    # Nothing listens on port 9: sending would be SignerUnreachable, not ValueError.
    client = SignerClient("http://127.0.0.1:9", timeout=2)
    for bad in ("short", "x" * 129, "has space in it, sixteen+", "equals=sign-is-not-allowed"):
        with pytest.raises(ValueError, match="idempotency key"):
            client.issue(idempotency_key=bad)


def test_new_keys_are_fresh_32_character_base64url():
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    for key in keys:
        assert len(key) == 32 and all(c.isalnum() or c in "-_" for c in key)


def test_a_503_is_retried_with_the_same_key_and_a_fresh_signature(scripted, issued):
    server = scripted(refusal(503, "ledger_unavailable"), issued)
    client = SignerClient(server.url, auth=HmacAuth("payments", HMAC_SECRET), retry=QUICK)
    cert = client.issue(transaction_id="tx-1")
    assert cert.serial == json.loads(issued[2])["serial"]
    assert len(server.received) == 2
    first, second = server.received
    assert len(first.headers["Idempotency-Key"]) == 32
    assert second.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert second.headers["Authorization"] != first.headers["Authorization"]  # a fresh nonce


def test_each_call_has_its_own_key(scripted, issued):
    server = scripted(issued, issued)
    client = SignerClient(server.url, retry=QUICK)
    client.issue()
    client.issue()
    assert server.received[0].headers["Idempotency-Key"] != server.received[1].headers["Idempotency-Key"]


def test_in_progress_is_retried_after_retry_after(scripted, issued):
    server = scripted(refusal(409, "idempotency_in_progress", {"Retry-After": "0"}), issued)
    SignerClient(server.url, retry=QUICK).issue()
    assert len(server.received) == 2


def test_a_dropped_connection_and_gateway_errors_are_retried(scripted, issued):
    server = scripted(None, refusal(502, "http_502"), issued)
    client = SignerClient(server.url, retry=QUICK)
    client.issue()
    assert len(server.received) == 3
    assert len({r.headers["Idempotency-Key"] for r in server.received}) == 1


def test_other_refusals_are_not_retried(scripted):
    for status, code in ((409, "crl_unavailable"), (422, "ttl_too_long"), (403, "revoked"), (401, "unauthenticated")):
        server = scripted(refusal(status, code))
        with pytest.raises(SignerError) as refused:
            SignerClient(server.url, retry=QUICK).issue()
        assert (refused.value.status, refused.value.code) == (status, code)
        assert len(server.received) == 1


def test_a_retry_after_beyond_max_delay_is_raised_not_slept(scripted):
    server = scripted(refusal(429, "rate_limited", {"Retry-After": "30"}))
    with pytest.raises(SignerError) as limited:
        SignerClient(server.url, retry=QUICK).issue()
    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (429, "rate_limited", 30.0)
    assert len(server.received) == 1


def test_a_gateways_refusal_keeps_its_text_without_control_characters(scripted):
    server = scripted((403, {"Content-Type": "text/plain"}, b"Forbidden\r\n\x1b[31mby the gateway\x07"))
    with pytest.raises(SignerError) as refused:
        SignerClient(server.url, retry=QUICK).issue()
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (403, None, None)
    assert refused.value.message == "Forbidden   [31mby the gateway "


def test_retries_end_at_max_attempts(scripted):
    server = scripted(*[refusal(503, "ca_unavailable")] * 5)
    with pytest.raises(SignerError) as unavailable:
        SignerClient(server.url, retry=QUICK).issue()
    assert (unavailable.value.status, unavailable.value.code) == (503, "ca_unavailable")
    assert len(server.received) == 3
    server = scripted(refusal(503, "ca_unavailable"), refusal(503, "ca_unavailable"))
    with pytest.raises(SignerError):
        SignerClient(server.url, retry=RetryPolicy.none()).issue()
    assert len(server.received) == 1


def test_backoff_doubles_up_to_max_delay_with_full_jitter():
    policy = RetryPolicy(max_attempts=10, base_delay=0.2, max_delay=2.0)
    for attempts, cap in ((1, 0.2), (2, 0.4), (3, 0.8), (4, 1.6), (5, 2.0), (9, 2.0)):
        waits = [policy.delay(attempts, None) for _ in range(200)]
        assert all(w is not None and 0.0 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > cap / 2  # jitter spans the range
    assert policy.delay(10, None) is None
    assert policy.delay(1, 1.5) == 1.5
    assert policy.delay(1, 2.5) is None
