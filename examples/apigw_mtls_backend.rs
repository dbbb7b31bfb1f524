//! A backend Lambda function behind API Gateway with mutual TLS: API
//! Gateway checks the client certificate against its truststore at the
//! handshake and puts it into the event (`requestContext.identity.clientCert`
//! for a REST API, `requestContext.authentication.clientCert` for an HTTP
//! API); the function verifies it again against the signer's CA chain and
//! answers with the caller's session claims (401 without a certificate,
//! 403 when it is refused).
//!
//! Configuration, from the environment:
//! - `SIGNER_CA_PEM`: the signer's CA chain as PEM text (from its
//!   `GET /v1/ca`), or `SIGNER_CA_FILE`: a file holding it (bundled with
//!   the function);
//! - `SIGNER_CLAIMS` (optional): profile claims to decode,
//!   `name=oid:type` separated by commas, type `string` or `json`.
//!
//! The client can reach the function only through API Gateway's custom
//! domain with mutual TLS (disable the default `execute-api` endpoint),
//! so the certificate in the event is the one from the handshake.
//!
//! ```text
//! cargo lambda build --release --example apigw_mtls_backend
//! ```

use lambda_http::lambda_runtime::{self, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use session_ca_verify::{Forwarded, Verifier};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let verifier = verifier_from_env()?;
    let verifier = &verifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(respond(verifier, &event.payload))
    }))
    .await
}

fn verifier_from_env() -> Result<Verifier, Error> {
    let ca_pem = match (
        std::env::var("SIGNER_CA_PEM"),
        std::env::var("SIGNER_CA_FILE"),
    ) {
        (Ok(pem), _) => pem.into_bytes(),
        (_, Ok(path)) => std::fs::read(&path).map_err(|e| format!("SIGNER_CA_FILE {path}: {e}"))?,
        _ => return Err("set SIGNER_CA_PEM or SIGNER_CA_FILE to the signer's CA chain".into()),
    };
    let mut builder = Verifier::builder().ca_pem(ca_pem);
    for spec in std::env::var("SIGNER_CLAIMS")
        .unwrap_or_default()
        .split(',')
    {
        if !spec.trim().is_empty() {
            builder = builder.claim_spec(spec.trim());
        }
    }
    Ok(builder.build()?)
}

/// The API Gateway proxy response for one event.
fn respond(verifier: &Verifier, event: &Value) -> Value {
    let pem = [
        "/requestContext/identity/clientCert/clientCertPem",
        "/requestContext/authentication/clientCert/clientCertPem",
    ]
    .iter()
    .find_map(|pointer| event.pointer(pointer).and_then(Value::as_str));
    let (status, body) = match pem {
        None => (
            401,
            json!({"error": "no client certificate in the event: is mutual TLS on for the API's custom domain?"}),
        ),
        Some(pem) => match verifier.verify_forwarded(Forwarded::ApiGatewayPem(pem)) {
            Ok(session) => (200, session.to_json()),
            Err(e) => (403, json!({"error": e.to_string()})),
        },
    };
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
        "isBase64Encoded": false,
    })
}
