"""SigV4: the signed headers are on the request the signer actually receives.

A local HTTP server records the request (path, headers, body) and answers
with the service's 403 error; the test then checks the received
Authorization's credential scope, the session token and the payload hash,
and recomputes the signature over the *received* request, with botocore and
independently with hashlib/hmac as the SigV4 specification describes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re

import pytest
from botocore.auth import SigV4Auth as BotoSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from session_ca import SigV4Auth, SignerClient, SignerError

from conftest import Scripted, refusal

ACCESS_KEY, SECRET_KEY, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-1"


@pytest.fixture
def recorder(scripted) -> Scripted:
    """Answers a request with the service's 403, as for a caller not allowed."""
    return scripted(refusal(403, "caller_not_allowed", {"X-Request-Id": "req-123"}))


def _independent_signature(method, path, headers, signed, body, amz_date, scope, secret):
    canonical_headers = "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed)
    canonical = "\n".join([method, path, "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _check(sent, base_url, access_key, secret_key, token, region, service):
    (received,) = sent  # one request: a 403 is not retried
    headers = received.headers
    body = received.body
    assert (received.method, received.path) == ("POST", "/prod/v1/certificates")
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        headers["Authorization"],
    )
    assert match, headers["Authorization"]
    key, day, got_region, got_service, signed_text, signature = match.groups()
    assert (key, got_region, got_service) == (access_key, region, service)
    amz_date = headers["X-Amz-Date"]
    assert day == amz_date[:8]
    assert headers["X-Amz-Security-Token"] == token
    assert headers["X-Amz-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert json.loads(body) == {"transaction_id": "tx-sigv4"}
    signed = signed_text.split(";")
    assert {"host", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "content-type"} <= set(signed)

    # botocore over the received request
    request = AWSRequest(method="POST", url=base_url + "/v1/certificates", data=body,
                         headers={h: headers[h] for h in signed})
    request.context["timestamp"] = amz_date
    boto = BotoSigV4(Credentials(access_key, secret_key, token), service, region)
    assert boto.signature(boto.string_to_sign(request, boto.canonical_request(request)), request) == signature

    # and from the specification, without botocore
    lowered = {h.lower(): v for h, v in headers.items()}
    scope = f"{day}/{region}/{service}/aws4_request"
    assert _independent_signature("POST", received.path, lowered, signed, body, amz_date, scope,
                                  secret_key) == signature


def test_explicit_credentials_sign_the_sent_request(recorder):
    base_url = recorder.url + "/prod"
    auth = SigV4Auth(region="eu-west-1", service="execute-api",
                     credentials=Credentials(ACCESS_KEY, SECRET_KEY, TOKEN))
    with pytest.raises(SignerError) as refused:
        SignerClient(base_url, auth=auth).issue(transaction_id="tx-sigv4")
    assert (refused.value.status, refused.value.code, refused.value.request_id) == (403, "caller_not_allowed", "req-123")
    _check(recorder.received, base_url, ACCESS_KEY, SECRET_KEY, TOKEN, "eu-west-1", "execute-api")


def test_the_default_chain_and_aws_region(recorder, monkeypatch, tmp_path):
    # As in a Lambda: the role's credentials and the region are in the environment.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAROLEKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "role-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "role-token")
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    base_url = recorder.url + "/prod"
    with pytest.raises(SignerError):
        SignerClient(base_url, auth=SigV4Auth()).issue(transaction_id="tx-sigv4")
    _check(recorder.received, base_url, "ASIAROLEKEY", "role-secret", "role-token", "us-east-2", "lambda")


def test_the_ca_chain_is_signed_too(scripted):
    # A Function URL or an API Gateway with IAM auth checks every path, /v1/ca too.
    chain = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    server = scripted((200, {"Content-Type": "application/x-pem-file"}, chain.encode()))
    base_url = server.url + "/prod"
    auth = SigV4Auth(region="eu-west-1", service="lambda", credentials=Credentials(ACCESS_KEY, SECRET_KEY, TOKEN))
    assert SignerClient(base_url, auth=auth).ca_chain(profile="payments") == [chain]
    (received,) = server.received
    assert (received.method, received.path) == ("GET", "/prod/v1/ca?profile=payments")
    headers = received.headers
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/eu-west-1/lambda/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        headers["Authorization"],
    )
    assert match, headers["Authorization"]
    signed = match.group(1).split(";")
    request = AWSRequest(method="GET", url=base_url + "/v1/ca?profile=payments", data=b"",
                         headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["X-Amz-Date"]
    boto = BotoSigV4(Credentials(ACCESS_KEY, SECRET_KEY, TOKEN), "lambda", "eu-west-1")
    assert boto.signature(boto.string_to_sign(request, boto.canonical_request(request)), request) == match.group(2)
