"""HMAC authentication against a real signer with `server.auth = "hmac"`."""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess

import pytest

from conftest import HMAC_KEY_ID, HMAC_SECRET, refusal
from session_ca import AuthError, HmacAuth, SessionCertificate, SignerClient, SignerError
from session_ca._auth import _hmac_string_to_sign
from session_ca._client import trust_context


def test_string_to_sign_matches_the_rust_client():
    # The vector of crates/session-ca-client/src/hmac.rs (the_string_to_sign_is_six_lines).
    assert _hmac_string_to_sign("POST", "/v1/certificates?x=1", 1_763_800_000, "n0nce-n0nce-n0nce", b"") == (
        "SESSION-CA-HMAC-SHA256\nPOST\n/v1/certificates?x=1\n1763800000\nn0nce-n0nce-n0nce\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_header_format_and_fresh_nonces():
    auth = HmacAuth("payments", bytes([7]) * 32, clock=lambda: 1_763_800_000.9)
    one = auth.headers("POST", "http://h/prod/v1/certificates", b"{}", {})["Authorization"]
    two = auth.headers("POST", "http://h/prod/v1/certificates", b"{}", {})["Authorization"]
    pattern = (r"^SESSION-CA-HMAC-SHA256 KeyId=payments, Timestamp=1763800000, "
               r"Nonce=([0-9a-f]{32}), Signature=([0-9a-f]{64})$")
    nonce = re.match(pattern, one).group(1)
    assert re.match(pattern, two) and one != two
    expected = hmac.new(bytes([7]) * 32, _hmac_string_to_sign("POST", "/prod/v1/certificates", 1_763_800_000,
                                                              nonce, b"{}").encode(), hashlib.sha256).hexdigest()
    assert one.endswith("Signature=" + expected)
    assert "\\x07" not in repr(auth) and "elided" in repr(auth)


def test_short_secrets_are_refused():
    with pytest.raises(AuthError, match="at least 32 bytes"):
        HmacAuth("k", b"x" * 31)


def test_signed_requests_are_accepted(hmac_signer):
    client = SignerClient(hmac_signer.url, auth=HmacAuth(HMAC_KEY_ID, HMAC_SECRET))
    first = client.issue(transaction_id="tx-hmac")
    second = client.issue(transaction_id="tx-hmac")  # same second, same body: a fresh nonce, no replay refusal
    assert first.serial != second.serial
    assert SessionCertificate(client).current().profile == "default"


def test_a_wrong_secret_gets_the_services_401(hmac_signer):
    client = SignerClient(hmac_signer.url, auth=HmacAuth(HMAC_KEY_ID, b"w" * 32))
    with pytest.raises(SignerError) as refused:
        client.issue()
    assert refused.value.status == 401
    assert refused.value.code == "unauthenticated"


def test_no_signature_gets_the_services_401(hmac_signer):
    with pytest.raises(SignerError) as refused:
        SignerClient(hmac_signer.url).issue()
    assert (refused.value.status, refused.value.code) == (401, "unauthenticated")


def test_a_netrc_entry_for_the_signer_does_not_replace_the_signature(scripted, monkeypatch, tmp_path):
    # requests would otherwise put Basic auth from ~/.netrc over the Authorization header.
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    server = scripted(refusal(403, "caller_not_allowed"))
    with pytest.raises(SignerError):
        SignerClient(server.url, auth=HmacAuth(HMAC_KEY_ID, HMAC_SECRET)).issue(transaction_id="tx-netrc")
    (received,) = server.received
    assert received.headers["Authorization"].startswith("SESSION-CA-HMAC-SHA256 KeyId=test-client, ")


def test_pem_text_with_comments_before_its_blocks_is_pem_not_a_path(tmp_path):
    # As certifi's bundle and `openssl pkcs12` output open: text before the first block.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "ca.pem"), "-subj", "/CN=Commented CA",
         "-days", "1"],
        check=True, capture_output=True,
    )
    pem = (tmp_path / "ca.pem").read_text()
    commented = "# Issuer: CN=Commented CA\n# Label: \"Commented CA\"\n" * 3 + "Bag Attributes\n" + pem
    assert trust_context(commented).cert_store_stats()["x509_ca"] == 1
    assert trust_context(commented.encode()).cert_store_stats()["x509_ca"] == 1
    client = SignerClient("https://signer.example", ca_bundle=commented)
    assert client._verify is True  # kept in memory, not handed to requests as a path
    assert trust_context(str(tmp_path / "ca.pem")).cert_store_stats()["x509_ca"] == 1
