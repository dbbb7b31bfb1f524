//! The API's request and response bodies, shared by the client and the service.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The body of `POST /v1/certificates`; absent fields take the profile's defaults.
///
/// `K` is how the key type is held: the client sends its name as a string
/// (`ecdsa-p256`, ...), the service reads the same field into its own key
/// type enum, so an unknown name is refused by that enum's deserializer.
/// Unknown fields are refused. Serialising leaves out the fields that are
/// `None`, and `pkcs12` when it is `false`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(serialize = "K: Serialize", deserialize = "K: Deserialize<'de>")
)]
pub struct CertificateRequest<K = String> {
    /// Profile name (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Session id (the subject CN); a fresh UUID when absent and not required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Transaction id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Requested lifetime in seconds; the profile's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Key type for a server-generated key (`ecdsa-p256` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<K>,
    /// Profile-defined claims by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Claims>,
    /// A PEM PKCS#10 request whose public key is to be certified (CSR
    /// mode: no key is generated and none is returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Whether to also get the key, certificate and chain as a PKCS#12 key
    /// store with a fresh password.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pkcs12: bool,
}

// Not derived: that would need `K: Default`, which a key type enum need not be.
impl<K> Default for CertificateRequest<K> {
    fn default() -> Self {
        CertificateRequest {
            profile: None,
            session_id: None,
            transaction_id: None,
            ttl_seconds: None,
            key_type: None,
            claims: None,
            csr: None,
            pkcs12: false,
        }
    }
}

/// The `claims` object of a request: each claim's value as its JSON text,
/// by name.
///
/// Deserialising refuses a name that appears twice (`duplicate key "name"`)
/// rather than keeping either value; the values are kept as sent, for the
/// service to parse strictly. Serialises as a JSON object.
#[derive(Debug, Clone, Default)]
pub struct Claims(BTreeMap<String, Box<RawValue>>);

impl Claims {
    /// Adds a claim, its value stored as compact JSON text. Returns `false`,
    /// leaving the claim as it was, when a claim of that name is already there.
    pub fn insert(&mut self, name: impl Into<String>, value: &serde_json::Value) -> bool {
        use std::collections::btree_map::Entry;
        match self.0.entry(name.into()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                // A `Value` is JSON by construction: its text is always valid.
                let text = serde_json::value::to_raw_value(value)
                    .expect("a serde_json::Value always serialises");
                slot.insert(text);
                true
            }
        }
    }

    /// The JSON text of the claim `name`.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.get(name).map(Box::as_ref)
    }

    /// The claims, by name in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> + '_ {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_ref()))
    }

    /// How many claims there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The claims as a map of names to JSON texts.
    pub fn into_inner(self) -> BTreeMap<String, Box<RawValue>> {
        self.0
    }
}

impl IntoIterator for Claims {
    type Item = (String, Box<RawValue>);
    type IntoIter = std::collections::btree_map::IntoIter<String, Box<RawValue>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl From<Claims> for BTreeMap<String, Box<RawValue>> {
    fn from(claims: Claims) -> Self {
        claims.0
    }
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Claims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawClaimsVisitor)
    }
}

struct RawClaimsVisitor;

impl<'de> Visitor<'de> for RawClaimsVisitor {
    type Value = Claims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object mapping claim names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claims, A::Error> {
        let mut claims = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if claims.contains_key(&name) {
                return Err(de::Error::custom(format_args!("duplicate key {name:?}")));
            }
            claims.insert(name, map.next_value()?);
        }
        Ok(Claims(claims))
    }
}

/// The response body of a successful issuance (201). Its `Debug` elides the key.
#[derive(Serialize, Deserialize)]
pub struct IssueResponse {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The private key, PKCS#8 PEM; absent in CSR mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The CA chain, issuing CA first, PEM each.
    pub ca_chain: Vec<String>,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 3339: renew after this.
    pub renew_after: String,
    /// The certified key's type (`ecdsa-p256`, ..., `rsa-2048` for CSRs).
    pub key_type: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
    /// The same SHA-256 as RFC 8705's certificate thumbprint `x5t#S256`
    /// (base64url, no padding), for binding OAuth tokens to the certificate.
    #[serde(rename = "x5t#S256", default)]
    pub x5t_s256: String,
    /// The profile that issued it.
    pub profile: String,
    /// The session id in the certificate (generated when the request had none).
    pub session_id: String,
    /// The correlation id in the certificate's `request_id` claim.
    pub request_id: String,
    /// The key store, when the request set `pkcs12: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Body>,
}

impl fmt::Debug for IssueResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueResponse")
            .field("serial", &self.serial)
            .field("private_key", &"[secret key elided]")
            .field("pkcs12", &self.pkcs12)
            .field("not_after", &self.not_after)
            .field("profile", &self.profile)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl IssueResponse {
    /// The certificate, then the CA chain, then the private key, as one PEM
    /// text: what a TLS client presents (`reqwest::Identity::from_pem`,
    /// rustls's `with_client_auth_cert` after parsing), the chain included
    /// so that a backend can build the path to its trust anchor. `None` in
    /// CSR mode, where the caller holds the key.
    pub fn identity_pem(&self) -> Option<String> {
        let key = self.private_key.as_deref()?;
        let mut pem = String::with_capacity(
            self.certificate.len()
                + self.ca_chain.iter().map(String::len).sum::<usize>()
                + key.len(),
        );
        pem.push_str(&self.certificate);
        self.ca_chain.iter().for_each(|c| pem.push_str(c));
        pem.push_str(key);
        Some(pem)
    }
}

/// A PKCS#12 key store in a response. Its `Debug` elides the password.
#[derive(Serialize, Deserialize)]
pub struct Pkcs12Body {
    /// The PKCS#12 file, base64 (standard alphabet, padded).
    pub base64: String,
    /// Its password (also the key entry's password).
    pub password: String,
}

impl fmt::Debug for Pkcs12Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs12Body")
            .field("base64_len", &self.base64.len())
            .field("password", &"[password elided]")
            .finish()
    }
}

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Every CA.
    pub cas: Vec<CaHealth>,
    /// Why the service cannot sign at all, when that is not about a CA (a
    /// configuration refused at start-up, naming the setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The body of `POST /v1/certificates?dry_run=true`: what the signer would
/// issue for the request, after authentication and the whole profile, with
/// no key generated and nothing signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuePlan {
    /// Always `true`: nothing was issued.
    pub dry_run: bool,
    /// The profile that admitted the request.
    pub profile: String,
    /// The CA that would sign.
    pub ca: String,
    /// The certificate's subject in encoding order, C first and the CN
    /// last (`C=NL, O=Example Bank, CN=<session id>`, as openssl's and
    /// x509-parser's default output; RFC 4514 strings list the RDNs the
    /// other way round), values escaped as RFC 4514 §2.4 says.
    pub subject: String,
    /// The session id (the subject CN; generated when the request had none).
    pub session_id: String,
    /// The transaction id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// The key's type (`ecdsa-p256`, ...; a CSR's key type in CSR mode).
    pub key_type: String,
    /// `generated` (the signer would make the key) or `csr` (the CSR's key).
    pub key_source: String,
    /// RFC 3339: `notBefore` if issued now.
    pub not_before: String,
    /// RFC 3339: `notAfter` if issued now.
    pub not_after: String,
    /// RFC 3339: when a client should renew.
    pub renew_after: String,
    /// The URI SAN, when the profile has a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_san: Option<String>,
    /// The claim extensions as they would be encoded, in OID order.
    pub claims: Vec<PlannedClaim>,
    /// Whether a PKCS#12 key store would be returned too.
    pub pkcs12: bool,
    /// The correlation id (it would be the certificate's `request_id` claim).
    pub request_id: String,
}

/// One claim extension of an [`IssuePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedClaim {
    /// The extension's OID, dotted.
    pub oid: String,
    /// The claim's name (`session_id`, a profile claim's name).
    pub name: String,
    /// The text its DER `UTF8String` would hold (a `json` claim's compact JSON).
    pub value: String,
}

/// One CA's entry in `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaHealth {
    /// The CA's configured name.
    pub name: String,
    /// Its subject (none while it has not loaded).
    pub subject: Option<String>,
    /// RFC 3339 (none while it has not loaded). For a KMS-delegated CA,
    /// the end of the current delegation.
    pub not_after: Option<String>,
    /// Who holds the key: `memory`, or `kms:ARN` (none while it has not loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_holder: Option<String>,
    /// How it signs: `in-memory`, `kms-direct` or `kms-delegated` (none while
    /// it has not loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_mode: Option<String>,
    /// Whether it can sign now.
    pub usable: bool,
}

/// The body of every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The `error` object of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable, machine-readable error code (`invalid_request`, ...).
    pub code: String,
    /// What was wrong and how to fix it, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(json: &str) -> Result<CertificateRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn duplicate_claim_names_are_refused() {
        let err = request(r#"{"claims": {"agent": "a", "tier": 1, "agent": "b"}}"#).unwrap_err();
        assert!(
            err.to_string().starts_with(r#"duplicate key "agent""#),
            "{err}"
        );
        assert!(err.is_data(), "{err}");
        // Only the claims object's own names: nested values are kept as text.
        let ok = request(r#"{"claims": {"a": {"x": 1, "x": 2}}}"#).unwrap();
        assert_eq!(
            ok.claims.unwrap().get("a").unwrap().get(),
            r#"{"x": 1, "x": 2}"#
        );
    }

    #[test]
    fn claims_must_be_an_object() {
        let err = request(r#"{"claims": [1]}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an object mapping claim names to values"),
            "{err}"
        );
    }

    #[test]
    fn null_claims_are_none() {
        assert!(request(r#"{"claims": null}"#).unwrap().claims.is_none());
        assert!(request("{}").unwrap().claims.is_none());
        let empty = request(r#"{"claims": {}}"#).unwrap().claims.unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn claims_insert_get_and_round_trip() {
        let mut claims = Claims::default();
        assert!(claims.insert("agent", &json!("example")));
        assert!(claims.insert(String::from("limits"), &json!({"b": [1, 2.5], "a": null})));
        assert!(claims.insert("big", &json!(18446744073709551615u64)));
        assert!(!claims.insert("agent", &json!("other")), "a second agent");
        assert_eq!(claims.len(), 3);
        assert!(!claims.is_empty());
        assert_eq!(claims.get("agent").unwrap().get(), r#""example""#);
        // Compact text; serde_json's maps are sorted.
        assert_eq!(
            claims.get("limits").unwrap().get(),
            r#"{"a":null,"b":[1,2.5]}"#
        );
        assert!(claims.get("missing").is_none());
        let names: Vec<&str> = claims.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["agent", "big", "limits"]);

        let text = serde_json::to_string(&claims).unwrap();
        assert_eq!(
            text,
            r#"{"agent":"example","big":18446744073709551615,"limits":{"a":null,"b":[1,2.5]}}"#
        );
        let back: Claims = serde_json::from_str(&text).unwrap();
        let back: Vec<(String, String)> = back
            .into_iter()
            .map(|(name, value)| (name, value.get().to_owned()))
            .collect();
        let original: Vec<(String, String)> = claims
            .into_inner()
            .into_iter()
            .map(|(name, value)| (name, value.get().to_owned()))
            .collect();
        assert_eq!(back, original);
    }

    #[test]
    fn claim_values_are_kept_as_sent() {
        let request = request(r#"{"claims": {"n": 1E2, "f": 0.1000, "s": "\u00e9"}}"#).unwrap();
        let claims = request.claims.unwrap();
        assert_eq!(claims.get("n").unwrap().get(), "1E2");
        assert_eq!(claims.get("f").unwrap().get(), "0.1000");
        assert_eq!(claims.get("s").unwrap().get(), r#""\u00e9""#);
    }

    #[test]
    fn absent_fields_are_not_sent() {
        let empty = CertificateRequest::<String>::default();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");

        let mut claims = Claims::default();
        claims.insert("agent", &json!("example"));
        let some = CertificateRequest {
            profile: Some("default".into()),
            transaction_id: Some("tx-1".into()),
            claims: Some(claims),
            ..CertificateRequest::<String>::default()
        };
        assert_eq!(
            serde_json::to_string(&some).unwrap(),
            r#"{"profile":"default","transaction_id":"tx-1","claims":{"agent":"example"}}"#
        );

        let all = CertificateRequest {
            profile: Some("p".into()),
            session_id: Some("s".into()),
            transaction_id: Some("t".into()),
            ttl_seconds: Some(300),
            key_type: Some("ed25519".to_owned()),
            claims: Some(Claims::default()),
            csr: Some("PEM".into()),
            pkcs12: true,
        };
        let text = serde_json::to_string(&all).unwrap();
        assert_eq!(
            text,
            r#"{"profile":"p","session_id":"s","transaction_id":"t","ttl_seconds":300,"key_type":"ed25519","claims":{},"csr":"PEM","pkcs12":true}"#
        );
        // What is sent is read back the same.
        let back: CertificateRequest = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    /// A key type as the service holds it: an enum without `Default`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        #[serde(rename = "ecdsa-p256")]
        EcdsaP256,
    }

    #[test]
    fn the_key_type_is_the_users_type() {
        let request: CertificateRequest<Kind> =
            serde_json::from_str(r#"{"key_type": "ecdsa-p256", "pkcs12": true}"#).unwrap();
        assert_eq!(request.key_type, Some(Kind::EcdsaP256));
        assert!(request.pkcs12);
        let err = serde_json::from_str::<CertificateRequest<Kind>>(r#"{"key_type": "rsa-1024"}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown variant `rsa-1024`, expected `ecdsa-p256`"),
            "{err}"
        );
        assert!(CertificateRequest::<Kind>::default().key_type.is_none());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        let err = request(r#"{"profle": "default"}"#).unwrap_err();
        assert!(
            err.to_string().starts_with("unknown field `profle`"),
            "{err}"
        );
        let err = request(r#"{"ttl_seconds": "300"}"#).unwrap_err();
        assert!(err.to_string().starts_with("invalid type: string"), "{err}");
        assert!(!request(r#"{"pkcs12": false}"#).unwrap().pkcs12);
    }

    #[test]
    fn error_bodies_round_trip() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: "invalid_request".into(),
                message: "ttl_seconds: too long".into(),
            },
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(
            text,
            r#"{"error":{"code":"invalid_request","message":"ttl_seconds: too long"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&text).unwrap(), body);
    }

    #[test]
    fn debug_elides_secrets() {
        let response = IssueResponse {
            serial: "01".into(),
            certificate: "CERT".into(),
            private_key: Some("SECRET-KEY".into()),
            ca_chain: vec![],
            not_before: String::new(),
            not_after: String::new(),
            renew_after: String::new(),
            key_type: "ecdsa-p256".into(),
            fingerprint_sha256: String::new(),
            x5t_s256: String::new(),
            profile: "default".into(),
            session_id: "s".into(),
            request_id: "r".into(),
            pkcs12: Some(Pkcs12Body {
                base64: "AAAA".into(),
                password: "SECRET-PASSWORD".into(),
            }),
        };
        let shown = format!("{response:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("AAAA"),
            "{shown}"
        );
        assert!(shown.contains("elided"), "{shown}");
    }
}
