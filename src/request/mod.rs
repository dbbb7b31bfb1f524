//! The `POST /v1/certificates` request body: strict JSON parsing into typed
//! fields, and the public key of a CSR ([`csr`]).
//!
//! The body's shape is `session_ca_client::CertificateRequest`, the one
//! definition the client sends; this module reads it strictly. Parsing is
//! strict on purpose: unknown fields, duplicate keys (at any depth inside
//! claims) and wrong types are refused instead of being guessed at, so a
//! caller never gets a certificate that says something other than what it
//! asked for.

mod csr;

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use session_ca_client::CertificateRequest;

pub use csr::{CsrError, CsrKey, CsrKeyType};

use crate::keys::KeyType;

/// A request for a certificate, as sent by the client, its claims parsed.
#[derive(Debug, Clone, Default)]
pub struct IssueRequest {
    /// Profile name; `default` when absent.
    pub profile: Option<String>,
    /// Session id (the subject CN); a fresh UUID v4 when absent and not required.
    pub session_id: Option<String>,
    /// Transaction id.
    pub transaction_id: Option<String>,
    /// Requested lifetime in seconds; the profile's `default_ttl` when absent.
    pub ttl_seconds: Option<u64>,
    /// Key type to generate; `ecdsa-p256` when absent.
    pub key_type: Option<KeyType>,
    /// Profile-defined claims by name.
    pub claims: Option<ClaimValues>,
    /// A PEM PKCS#10 request whose public key is to be certified (CSR
    /// mode: no key is generated and none is returned).
    pub csr: Option<String>,
    /// Whether to also return the key, certificate and chain as a PKCS#12
    /// key store with a fresh password.
    pub pkcs12: bool,
}

impl IssueRequest {
    /// Parses a request body, telling syntax errors apart from shape errors.
    pub fn from_json(body: &[u8]) -> Result<Self, RequestError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError::InvalidJson(
                "the body is empty; send a JSON object such as {\"profile\": \"default\"}".into(),
            ));
        }
        // Syntax first, so `{"a":}` is reported as broken JSON rather than as
        // an unknown field `a` found before the parser reached the break.
        serde_json::from_slice::<de::IgnoredAny>(body)
            .map_err(|e| RequestError::InvalidJson(e.to_string()))?;
        // serde's derived structs also accept arrays; the API takes objects only.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(RequestError::InvalidRequest(
                "the body must be a JSON object, such as {\"profile\": \"default\"}".into(),
            ));
        }
        // The path of a shape error names the field: "ttl_seconds: invalid
        // type: ...". (Trailing characters were refused by the syntax pass.)
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let request: CertificateRequest<KeyType> =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let message = if path == "." || path.is_empty() {
                    inner.to_string()
                } else {
                    format!("{path}: {inner}")
                };
                if inner.is_data() {
                    RequestError::InvalidRequest(message)
                } else {
                    RequestError::InvalidJson(message)
                }
            })?;
        if request.csr.is_some() && request.key_type.is_some() {
            return Err(RequestError::InvalidRequest(
                "send either `key_type` (the signer generates the key) or `csr` (your own key), \
                 not both"
                    .into(),
            ));
        }
        if request.csr.is_some() && request.pkcs12 {
            return Err(RequestError::InvalidRequest(
                "`pkcs12: true` needs the private key, which CSR mode never sees; build the \
                 PKCS#12 file where the key is, or omit `csr`"
                    .into(),
            ));
        }
        let mut claims = None;
        if let Some(raw) = request.claims {
            let mut values = BTreeMap::new();
            for (name, text) in raw.into_inner() {
                let StrictValue(value) = serde_json::from_str(text.get()).map_err(|e| {
                    let message = format!("claims.{name}: {e}");
                    if e.is_data() {
                        RequestError::InvalidRequest(message)
                    } else {
                        RequestError::InvalidJson(message)
                    }
                })?;
                let json = compact(text.get());
                values.insert(name, ClaimValue { value, json });
            }
            claims = Some(ClaimValues(values));
        }
        Ok(IssueRequest {
            profile: request.profile,
            session_id: request.session_id,
            transaction_id: request.transaction_id,
            ttl_seconds: request.ttl_seconds,
            key_type: request.key_type,
            claims,
            csr: request.csr,
            pkcs12: request.pkcs12,
        })
    }
}

/// Claim values by name; duplicate names are refused.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimValues(pub BTreeMap<String, ClaimValue>);

/// One claim's value: parsed, for the profile's checks, and as the client
/// wrote it, minus insignificant whitespace, for the certificate. Keeping
/// the text means a `json` claim carries exactly the numbers that were sent
/// (`18446744073709551616`, `1E2`, `0.1000`), never a double's rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimValue {
    /// The parsed value (numbers as doubles where they do not fit 64 bits).
    pub value: Value,
    /// The compact JSON text as sent.
    pub json: String,
}

/// Valid JSON text without its insignificant whitespace (RFC 8259 §2:
/// space, tab, line feed, carriage return outside strings).
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Builds a `serde_json::Value`, refusing duplicate object keys (which
/// `serde_json::Value` would silently resolve to the last one).
struct StrictValueVisitor;

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(StrictValueVisitor)
            .map(StrictValue)
    }
}

impl<'de> Visitor<'de> for StrictValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Nesting depth of a JSON value: scalars are 0, `[]` and `{}` are 1.
pub fn json_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(json_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(json_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Errors in the request body itself (as opposed to policy violations).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The body is not syntactically valid JSON.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// The body is JSON but does not have the request's shape.
    #[error("the request does not match the schema: {0}")]
    InvalidRequest(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_request_parses() {
        let r = IssueRequest::from_json(
            br#"{"profile":"default","session_id":"s","transaction_id":"t","ttl_seconds":60,
                "key_type":"ed25519","claims":{"agent":"x","geo":{"lat":"1"}},"csr":null,"pkcs12":false}"#,
        )
        .unwrap();
        assert_eq!(r.key_type, Some(KeyType::Ed25519));
        assert_eq!(r.ttl_seconds, Some(60));
        let claims = r.claims.unwrap().0;
        assert_eq!(claims["geo"].value["lat"], "1");
        assert_eq!(claims["geo"].json, r#"{"lat":"1"}"#);
    }

    #[test]
    fn syntax_and_shape_errors_are_told_apart() {
        for body in [
            &b""[..],
            b"  ",
            b"{",
            b"{\"a\":}",
            b"nul",
            b"{\"session_id\":\"\\ud800\"}",
        ] {
            assert!(
                matches!(
                    IssueRequest::from_json(body),
                    Err(RequestError::InvalidJson(_))
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        for body in [
            &b"[]"[..],
            b"\"x\"",
            b"{\"nope\":1}",
            b"{\"ttl_seconds\":-1}",
            b"{\"ttl_seconds\":18446744073709551616}",
            b"{\"ttl_seconds\":1.5}",
            b"{\"ttl_seconds\":\"60\"}",
            b"{\"key_type\":\"rsa-1024\"}",
            b"{\"profile\":\"a\",\"profile\":\"b\"}",
            b"{\"claims\":[]}",
            b"{\"csr\":\"x\",\"key_type\":\"ed25519\"}",
            b"{\"csr\":\"x\",\"pkcs12\":true}",
        ] {
            assert!(
                matches!(
                    IssueRequest::from_json(body),
                    Err(RequestError::InvalidRequest(_))
                ),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn duplicate_claim_keys_are_refused_at_every_depth() {
        for body in [
            &br#"{"claims":{"a":"1","a":"2"}}"#[..],
            br#"{"claims":{"geo":{"lat":"1","lat":"2"}}}"#,
            br#"{"claims":{"geo":[{"k":1,"k":1}]}}"#,
        ] {
            let err = IssueRequest::from_json(body).unwrap_err().to_string();
            assert!(err.contains("duplicate key"), "{err}");
        }
    }

    #[test]
    fn json_claims_keep_the_text_that_was_sent() {
        let r = IssueRequest::from_json(
            br#"{"claims":{"geo": { "n" : 18446744073709551616, "f":9007199254740993.0,
                "e":1E2, "s":"a b\" }\u0041", "z":[ 0.1000 , -0 ] } }}"#,
        )
        .unwrap();
        let geo = &r.claims.unwrap().0["geo"];
        assert_eq!(
            geo.json,
            r#"{"n":18446744073709551616,"f":9007199254740993.0,"e":1E2,"s":"a b\" }\u0041","z":[0.1000,-0]}"#
        );
        assert_eq!(geo.value["s"], "a b\" }A");
        assert_eq!(compact(" [ \"\\\\\" , 1 ] "), r#"["\\",1]"#);
    }

    #[test]
    fn depth_is_counted() {
        assert_eq!(json_depth(&serde_json::json!("x")), 0);
        assert_eq!(json_depth(&serde_json::json!({})), 1);
        assert_eq!(json_depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
    }
}
