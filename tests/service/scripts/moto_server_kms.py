"""moto_server with behaviours of AWS that moto 5.2.5 lacks: two of KMS, as
the AWS KMS API reference specifies them (Sign, GetPublicKey), and one of
DynamoDB:

1. `Sign` with `MessageType=DIGEST` signs the given digest as it is. moto
   reads `MessageType` but always signs the message as RAW, hashing the
   digest a second time, so every signature over a digest would be wrong
   (https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html:
   "DIGEST - ... KMS skips the hashing step and signs the supplied message
   digest").
2. `Sign` and `GetPublicKey` on a key that is not enabled fail, with
   `DisabledException` for a disabled key and `KMSInvalidStateException` for
   one pending deletion (moto signs with either).
3. DynamoDB requests are atomic: an `UpdateItem` `ADD` is an atomic counter
   and a conditional write checks and writes as one step
   (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html:
   "Atomic counters", "Conditional writes"). moto_server serves requests
   on threads and its DynamoDB backend reads, changes and writes an item
   without a lock, so two concurrent `ADD`s can return the same count.
   Here every DynamoDB request runs under one lock.

Everything else is moto's: the key store, the key specs and algorithms, the
other services (SSM, DynamoDB). The signer's tests start this instead of
`moto_server`, with the same arguments (`-H HOST -p PORT`).
"""

import base64
import json
import sys
import threading

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from moto.core.exceptions import JsonRESTError
from moto.dynamodb.responses import DynamoHandler
from moto.kms import responses
from moto.server import main

HASH_OF = {
    "ECDSA_SHA_256": hashes.SHA256,
    "ECDSA_SHA_384": hashes.SHA384,
    "ECDSA_SHA_512": hashes.SHA512,
    "RSASSA_PKCS1_V1_5_SHA_256": hashes.SHA256,
    "RSASSA_PKCS1_V1_5_SHA_384": hashes.SHA384,
    "RSASSA_PKCS1_V1_5_SHA_512": hashes.SHA512,
    "RSASSA_PSS_SHA_256": hashes.SHA256,
    "RSASSA_PSS_SHA_384": hashes.SHA384,
    "RSASSA_PSS_SHA_512": hashes.SHA512,
}


def _enabled_key(response):
    key = response.kms_backend.describe_key(response._get_param("KeyId"))
    if key.key_state == "Disabled":
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise JsonRESTError(
            "KMSInvalidStateException", f"{key.arn} is {key.key_state}."
        )
    return key


_sign = responses.KmsResponse.sign
_get_public_key = responses.KmsResponse.get_public_key


def sign(self):
    key = _enabled_key(self)
    if self._get_param("MessageType") != "DIGEST":
        return _sign(self)
    algorithm = self._get_param("SigningAlgorithm")
    digest = self._get_param("Message")
    if algorithm not in key.signing_algorithms or algorithm not in HASH_OF:
        raise JsonRESTError(
            "ValidationException", f"{algorithm} is not valid for this key."
        )
    hash_algorithm = HASH_OF[algorithm]()
    if len(digest) != hash_algorithm.digest_size:
        raise JsonRESTError(
            "ValidationException",
            f"Digest is invalid length for algorithm {algorithm}.",
        )
    private = key.private_key.private_key
    prehashed = utils.Prehashed(hash_algorithm)
    if algorithm.startswith("ECDSA"):
        signature = private.sign(digest, ec.ECDSA(prehashed))
    elif algorithm.startswith("RSASSA_PSS"):
        pss = padding.PSS(
            mgf=padding.MGF1(hash_algorithm),
            salt_length=hash_algorithm.digest_size,
        )
        signature = private.sign(digest, pss, prehashed)
    else:
        signature = private.sign(digest, padding.PKCS1v15(), prehashed)
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode("ascii"),
            "SigningAlgorithm": algorithm,
        }
    )


def get_public_key(self):
    _enabled_key(self)
    return _get_public_key(self)


responses.KmsResponse.sign = sign
responses.KmsResponse.get_public_key = get_public_key

_dynamodb_lock = threading.Lock()
_dynamodb_call_action = DynamoHandler.call_action


def dynamodb_call_action(self):
    with _dynamodb_lock:
        return _dynamodb_call_action(self)


DynamoHandler.call_action = dynamodb_call_action

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
