"""Signs a request with botocore's SigV4Auth, independently of the Rust
client, for tests/service/rust_client.rs.

Reads one JSON object from stdin:
  method, url, body (text), headers (the headers to sign besides host,
  x-amz-date and x-amz-security-token, which botocore adds itself),
  region, service, access_key, secret_key, token (or null), amz_date
  (YYYYMMDDTHHMMSSZ, the signing time)
and prints a JSON object of the headers botocore puts on the request:
authorization, x-amz-date, x-amz-security-token (when a token was given)
and the x-amz-content-sha256 this script computed itself with hashlib.
"""

import datetime
import hashlib
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

spec = json.load(sys.stdin)
body = spec["body"].encode()
signing_time = datetime.datetime.strptime(spec["amz_date"], "%Y%m%dT%H%M%SZ").replace(
    tzinfo=datetime.timezone.utc
)
# SigV4Auth reads the clock through this function; the signing time is the
# recorded one, not now.
botocore.auth.get_current_datetime = lambda: signing_time

headers = dict(spec["headers"])
headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
request = AWSRequest(method=spec["method"], url=spec["url"], data=body, headers=headers)
credentials = Credentials(spec["access_key"], spec["secret_key"], spec["token"])
botocore.auth.SigV4Auth(credentials, spec["service"], spec["region"]).add_auth(request)
out = {
    "authorization": request.headers["Authorization"],
    "x-amz-date": request.headers["X-Amz-Date"],
    "x-amz-content-sha256": headers["X-Amz-Content-SHA256"],
}
if spec["token"] is not None:
    out["x-amz-security-token"] = request.headers["X-Amz-Security-Token"]
json.dump(out, sys.stdout)
