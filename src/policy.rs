//! Profiles: the CA owner's rules, and turning a request into a certificate plan.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::auth::{Caller, CallerPattern};
use crate::claims::{self, ClaimType, ObjectId, StandardClaim};
use crate::csr::{CsrError, CsrKey, CsrKeyType};
use crate::keys::KeyType;
use crate::request::{json_depth, IssueRequest};

/// Longest session id: it becomes the subject CN, whose upper bound is 64
/// characters (RFC 5280 Appendix A, `ub-common-name`).
pub const MAX_SESSION_ID_CHARS: usize = 64;
/// Longest transaction id, in characters.
pub const MAX_TRANSACTION_ID_CHARS: usize = 256;

/// A subject attribute a profile may fix (CN is always the session id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectAttribute {
    /// countryName (C), two letters, ISO 3166.
    Country,
    /// stateOrProvinceName (ST).
    State,
    /// localityName (L).
    Locality,
    /// organizationName (O).
    Organization,
    /// organizationalUnitName (OU).
    OrganizationalUnit,
}

impl SubjectAttribute {
    /// The attributes in the order they appear in the subject.
    pub const ALL: [SubjectAttribute; 5] = [
        SubjectAttribute::Country,
        SubjectAttribute::State,
        SubjectAttribute::Locality,
        SubjectAttribute::Organization,
        SubjectAttribute::OrganizationalUnit,
    ];

    /// The short name used in configuration (`C`, `ST`, `L`, `O`, `OU`).
    pub fn short_name(self) -> &'static str {
        match self {
            SubjectAttribute::Country => "C",
            SubjectAttribute::State => "ST",
            SubjectAttribute::Locality => "L",
            SubjectAttribute::Organization => "O",
            SubjectAttribute::OrganizationalUnit => "OU",
        }
    }

    /// Looks an attribute up by short name.
    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.short_name() == name)
    }
}

/// A profile-defined claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSpec {
    /// The extension's OID.
    pub oid: ObjectId,
    /// How the value is typed.
    pub kind: ClaimType,
    /// Largest encoded value, in bytes of UTF-8.
    pub max_len: usize,
    /// Whether every request must carry it.
    pub required: bool,
}

/// A validated profile, built by the configuration loader.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile's name.
    pub name: String,
    /// The name of the CA that signs for this profile.
    pub ca: String,
    /// Key types callers may ask for; the first is used when they do not say.
    pub key_types: Vec<KeyType>,
    /// Whether the signer may generate keys (`allow_server_keys`).
    pub allow_server_keys: bool,
    /// Whether callers may send a CSR for their own key (`allow_csr`).
    pub allow_csr: bool,
    /// Key types a CSR may carry.
    pub csr_key_types: Vec<CsrKeyType>,
    /// Lifetime when the request names none.
    pub default_ttl: Duration,
    /// Longest lifetime a request may ask for.
    pub max_ttl: Duration,
    /// How far `not_before` lies before the issuing instant (clock skew).
    pub backdate: Duration,
    /// Fixed subject attributes, in subject order.
    pub subject: Vec<(SubjectAttribute, String)>,
    /// URI SAN template with `{session_id}`, `{transaction_id}`, `{profile}` placeholders.
    pub uri_san: Option<String>,
    /// Whether `session_id` must be sent.
    pub require_session_id: bool,
    /// Whether `transaction_id` must be sent.
    pub require_transaction_id: bool,
    /// Callers admitted; `None` admits every caller, including anonymous ones.
    pub allowed_callers: Option<Vec<CallerPattern>>,
    /// Profile-defined claims by name.
    pub claims: BTreeMap<String, ClaimSpec>,
    /// The OID arc of the standard claims.
    pub oid_arc: ObjectId,
    /// Deepest nesting allowed in a `json` claim.
    pub max_json_depth: usize,
}

/// Everything needed to sign one certificate, after policy has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePlan {
    /// The profile that admitted the request.
    pub profile: String,
    /// The CA to sign with.
    pub ca: String,
    /// Where the certificate's key comes from.
    pub key: KeySource,
    /// Whether to return a PKCS#12 key store as well.
    pub pkcs12: bool,
    /// Session id (subject CN).
    pub session_id: String,
    /// Transaction id, when sent.
    pub transaction_id: Option<String>,
    /// Requested lifetime.
    pub ttl: Duration,
    /// How far `not_before` is backdated.
    pub backdate: Duration,
    /// Subject attributes before the CN.
    pub subject: Vec<(SubjectAttribute, String)>,
    /// The URI SAN, when the profile has a template.
    pub uri_san: Option<String>,
    /// Claim extensions, OID and text, in OID order.
    pub extensions: Vec<(ObjectId, String)>,
    /// The caller's identity, when authenticated.
    pub requester: Option<String>,
}

/// Where a certificate's key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key pair the signer generates and returns.
    Generate(KeyType),
    /// The verified public key of the caller's CSR; the private key never
    /// reaches the signer.
    Csr(CsrKey),
}

impl KeySource {
    /// The key type's wire name (`ecdsa-p256`, `rsa-3072`, ...).
    pub fn key_type_name(&self) -> &'static str {
        match self {
            KeySource::Generate(k) => k.as_str(),
            KeySource::Csr(csr) => csr.key_type().as_str(),
        }
    }
}

impl Profile {
    /// Applies this profile to a request from `caller`, producing a plan or
    /// the first rule the request breaks.
    pub fn plan(
        &self,
        request: &IssueRequest,
        caller: &Caller,
        request_id: &str,
    ) -> Result<CertificatePlan, PolicyError> {
        self.admit(caller)?;
        let key = self.key_source(request)?;
        if request.pkcs12 && cfg!(feature = "fips") {
            return Err(PolicyError::Pkcs12NotInFipsBuild);
        }

        let ttl = match request.ttl_seconds {
            None => self.default_ttl,
            Some(0) => return Err(PolicyError::TtlTooShort),
            Some(s) if s > self.max_ttl.as_secs() => {
                return Err(PolicyError::TtlTooLong {
                    requested: s,
                    max: self.max_ttl.as_secs(),
                })
            }
            Some(s) => Duration::from_secs(s),
        };

        let session_id = match &request.session_id {
            Some(id) => {
                check_identifier("session_id", id, MAX_SESSION_ID_CHARS)?;
                id.clone()
            }
            None if self.require_session_id => return Err(PolicyError::MissingField("session_id")),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let transaction_id = match &request.transaction_id {
            Some(id) => {
                check_identifier("transaction_id", id, MAX_TRANSACTION_ID_CHARS)?;
                Some(id.clone())
            }
            None if self.require_transaction_id => {
                return Err(PolicyError::MissingField("transaction_id"))
            }
            None => None,
        };

        let mut extensions = vec![(
            StandardClaim::SessionId.oid(&self.oid_arc),
            session_id.clone(),
        )];
        if let Some(tx) = &transaction_id {
            extensions.push((StandardClaim::TransactionId.oid(&self.oid_arc), tx.clone()));
        }
        if let Some(requester) = caller.identity() {
            extensions.push((
                StandardClaim::Requester.oid(&self.oid_arc),
                requester.to_owned(),
            ));
        }
        extensions.push((
            StandardClaim::RequestId.oid(&self.oid_arc),
            request_id.to_owned(),
        ));
        extensions.extend(self.profile_claims(request)?);
        extensions.sort();

        let uri_san = match &self.uri_san {
            None => None,
            Some(template) => {
                let uri = expand_uri_template(
                    template,
                    &session_id,
                    transaction_id.as_deref(),
                    &self.name,
                );
                // RFC 4122 §3: a urn:uuid: URI holds exactly one UUID.
                if let Some(value) = uri.strip_prefix("urn:uuid:") {
                    if value.len() != 36 || uuid::Uuid::try_parse(value).is_err() {
                        let field = if template.contains("{transaction_id}") {
                            "transaction_id"
                        } else {
                            "session_id"
                        };
                        return Err(PolicyError::NotAUuid { field });
                    }
                }
                Some(uri)
            }
        };

        Ok(CertificatePlan {
            profile: self.name.clone(),
            ca: self.ca.clone(),
            key,
            pkcs12: request.pkcs12,
            session_id,
            transaction_id,
            ttl,
            backdate: self.backdate,
            subject: self.subject.clone(),
            uri_san,
            extensions,
            requester: caller.identity().map(str::to_owned),
        })
    }

    /// The key the certificate will certify: a CSR's (verified) or a fresh
    /// one of the requested type, as far as the profile allows either.
    fn key_source(&self, request: &IssueRequest) -> Result<KeySource, PolicyError> {
        if let Some(pem) = &request.csr {
            if !self.allow_csr {
                return Err(PolicyError::CsrNotAllowed {
                    profile: self.name.clone(),
                });
            }
            let csr = CsrKey::from_pem(pem).map_err(PolicyError::InvalidCsr)?;
            if !self.csr_key_types.contains(&csr.key_type()) {
                return Err(PolicyError::CsrKeyTypeNotAllowed {
                    requested: csr.key_type(),
                    allowed: self.csr_key_types.clone(),
                });
            }
            return Ok(KeySource::Csr(csr));
        }
        if !self.allow_server_keys {
            return Err(PolicyError::ServerKeysNotAllowed {
                profile: self.name.clone(),
            });
        }
        match request.key_type {
            None => Ok(KeySource::Generate(self.key_types[0])),
            Some(k) if self.key_types.contains(&k) => Ok(KeySource::Generate(k)),
            Some(k) => Err(PolicyError::KeyTypeNotAllowed {
                requested: k,
                allowed: self.key_types.clone(),
            }),
        }
    }

    /// Checks that `caller` may use this profile.
    pub fn admit(&self, caller: &Caller) -> Result<(), PolicyError> {
        let Some(patterns) = &self.allowed_callers else {
            return Ok(());
        };
        let allowed = caller
            .identity()
            .is_some_and(|id| patterns.iter().any(|p| p.matches(id)));
        if allowed {
            Ok(())
        } else {
            Err(PolicyError::CallerNotAllowed {
                caller: caller.audit_label().to_owned(),
                profile: self.name.clone(),
            })
        }
    }

    fn profile_claims(
        &self,
        request: &IssueRequest,
    ) -> Result<Vec<(ObjectId, String)>, PolicyError> {
        let empty = BTreeMap::new();
        let values = request.claims.as_ref().map(|c| &c.0).unwrap_or(&empty);
        for name in values.keys() {
            if !self.claims.contains_key(name) {
                return Err(PolicyError::UnknownClaim {
                    name: name.clone(),
                    allowed: self.claims.keys().cloned().collect(),
                });
            }
        }
        let mut out = Vec::with_capacity(values.len());
        for (name, spec) in &self.claims {
            let Some(claim) = values.get(name) else {
                if spec.required {
                    return Err(PolicyError::MissingClaim(name.clone()));
                }
                continue;
            };
            let value = &claim.value;
            let text = match (spec.kind, value) {
                (ClaimType::String, Value::String(s)) => s.clone(),
                (ClaimType::String, _) => {
                    return Err(PolicyError::ClaimWrongType {
                        name: name.clone(),
                        expected: ClaimType::String,
                    })
                }
                (ClaimType::Json, v) => {
                    let depth = json_depth(v);
                    if depth > self.max_json_depth {
                        return Err(PolicyError::ClaimTooDeep {
                            name: name.clone(),
                            depth,
                            max: self.max_json_depth,
                        });
                    }
                    // As sent (compacted), so numbers are exactly the client's.
                    claim.json.clone()
                }
            };
            if !json_strings_are_safe(value) {
                return Err(PolicyError::InvalidClaimValue(name.clone()));
            }
            if text.len() > spec.max_len {
                return Err(PolicyError::ClaimTooLong {
                    name: name.clone(),
                    len: text.len(),
                    max: spec.max_len,
                });
            }
            out.push((spec.oid.clone(), text));
        }
        Ok(out)
    }
}

fn check_identifier(field: &'static str, value: &str, max_chars: usize) -> Result<(), PolicyError> {
    let chars = value.chars().count();
    if chars == 0 || chars > max_chars || !value.chars().all(claims::is_safe_char) {
        return Err(PolicyError::InvalidField { field, max_chars });
    }
    Ok(())
}

/// Whether every string in a JSON value (keys included) is free of control
/// and bidi-override characters.
fn json_strings_are_safe(value: &Value) -> bool {
    let safe = |s: &str| s.chars().all(claims::is_safe_char);
    match value {
        Value::String(s) => safe(s),
        Value::Array(items) => items.iter().all(json_strings_are_safe),
        Value::Object(map) => map.iter().all(|(k, v)| safe(k) && json_strings_are_safe(v)),
        _ => true,
    }
}

/// Fills a URI SAN template, percent-encoding the substituted values
/// (RFC 3986 §2.1) so the result is always a valid IA5String URI.
pub fn expand_uri_template(
    template: &str,
    session_id: &str,
    transaction_id: Option<&str>,
    profile: &str,
) -> String {
    template
        .replace("{session_id}", &percent_encode(session_id))
        .replace(
            "{transaction_id}",
            &percent_encode(transaction_id.unwrap_or("")),
        )
        .replace("{profile}", &percent_encode(profile))
}

fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request that is well-formed but that the profile does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The caller matches none of the profile's `allowed_callers`.
    #[error("caller {caller:?} is not allowed to use profile {profile:?}")]
    CallerNotAllowed {
        /// The caller's identity or "anonymous".
        caller: String,
        /// The profile asked for.
        profile: String,
    },
    /// The CSR cannot be used (malformed, bad signature, unsupported or weak
    /// key): a 400, like other malformed input.
    #[error(transparent)]
    InvalidCsr(CsrError),
    /// The profile does not take CSRs.
    #[error(
        "profile {profile:?} does not accept CSRs; omit `csr` to have the signer generate the key"
    )]
    CsrNotAllowed {
        /// The profile's name.
        profile: String,
    },
    /// The profile does not generate keys.
    #[error("profile {profile:?} does not generate keys; send a PEM PKCS#10 request in `csr`")]
    ServerKeysNotAllowed {
        /// The profile's name.
        profile: String,
    },
    /// The CSR's key type is not in the profile's `csr_key_types`.
    #[error("the CSR's key is {requested}, which this profile does not certify; allowed: {}", csr_list(.allowed))]
    CsrKeyTypeNotAllowed {
        /// The CSR's key type.
        requested: CsrKeyType,
        /// What the profile allows.
        allowed: Vec<CsrKeyType>,
    },
    /// The key type is not in the profile's `key_types`.
    #[error("key_type {requested} is not allowed by this profile; allowed: {}", list(.allowed))]
    KeyTypeNotAllowed {
        /// What was asked for.
        requested: KeyType,
        /// What the profile allows.
        allowed: Vec<KeyType>,
    },
    /// `pkcs12: true` on a `fips` build: the key store's encryption would
    /// run outside the FIPS module.
    #[error(
        "pkcs12 is not available on this FIPS build: the key store's encryption (PBKDF2, \
         AES-256-CBC) would run outside the FIPS module; take private_key (PEM) and build \
         the key store with a FIPS-validated tool"
    )]
    Pkcs12NotInFipsBuild,
    /// `ttl_seconds` is zero.
    #[error("ttl_seconds must be at least 1")]
    TtlTooShort,
    /// `ttl_seconds` is above the profile's `max_ttl`.
    #[error("ttl_seconds {requested} is above this profile's max_ttl of {max} seconds")]
    TtlTooLong {
        /// What was asked for.
        requested: u64,
        /// The profile's limit in seconds.
        max: u64,
    },
    /// A field the profile requires is absent.
    #[error("{0} is required by this profile")]
    MissingField(&'static str),
    /// An identifier is empty, too long or holds control characters.
    #[error(
        "{field} must be 1 to {max_chars} characters with no control or bidi-override characters"
    )]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// Its length limit in characters.
        max_chars: usize,
    },
    /// An identifier that must be a UUID (it fills a `urn:uuid:` SAN) is not one.
    #[error(
        "{field} must be a UUID such as 92fea10a-0905-40cc-aca1-54ee52e89c71, because this \
         profile writes it into a urn:uuid: URI SAN (RFC 4122 §3)"
    )]
    NotAUuid {
        /// The field's name.
        field: &'static str,
    },
    /// A claim name the profile does not define.
    #[error("unknown claim {name:?}; this profile defines: {}", if allowed.is_empty() { "no claims".to_owned() } else { allowed.join(", ") })]
    UnknownClaim {
        /// The name sent.
        name: String,
        /// The names the profile defines.
        allowed: Vec<String>,
    },
    /// A required profile claim is absent.
    #[error("claim {0:?} is required by this profile")]
    MissingClaim(String),
    /// A claim's value has the wrong JSON type.
    #[error("claim {name:?} must be a JSON {expected}")]
    ClaimWrongType {
        /// The claim's name.
        name: String,
        /// The type the profile declares.
        expected: ClaimType,
    },
    /// A claim's encoded value is longer than its `max_len`.
    #[error("claim {name:?} is {len} bytes long; at most {max} allowed")]
    ClaimTooLong {
        /// The claim's name.
        name: String,
        /// Its encoded length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A JSON claim is nested deeper than allowed.
    #[error("claim {name:?} is nested {depth} levels deep; at most {max} allowed")]
    ClaimTooDeep {
        /// The claim's name.
        name: String,
        /// Its depth.
        depth: usize,
        /// The limit.
        max: usize,
    },
    /// A claim holds control or bidi-override characters.
    #[error("claim {0:?} contains control or bidi-override characters (NUL included), which are not allowed")]
    InvalidClaimValue(String),
}

impl PolicyError {
    /// The stable error code sent to clients.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::CallerNotAllowed { .. } => "caller_not_allowed",
            PolicyError::InvalidCsr(_) => "invalid_csr",
            PolicyError::CsrNotAllowed { .. } => "csr_not_allowed",
            PolicyError::ServerKeysNotAllowed { .. } => "server_keys_not_allowed",
            PolicyError::KeyTypeNotAllowed { .. } | PolicyError::CsrKeyTypeNotAllowed { .. } => {
                "key_type_not_allowed"
            }
            PolicyError::TtlTooShort => "ttl_too_short",
            PolicyError::TtlTooLong { .. } => "ttl_too_long",
            PolicyError::MissingField(_) => "missing_field",
            PolicyError::InvalidField { .. }
            | PolicyError::NotAUuid { .. }
            | PolicyError::Pkcs12NotInFipsBuild => "invalid_field",
            PolicyError::UnknownClaim { .. } => "unknown_claim",
            PolicyError::MissingClaim(_) => "missing_claim",
            PolicyError::ClaimWrongType { .. } => "claim_wrong_type",
            PolicyError::ClaimTooLong { .. } => "claim_too_long",
            PolicyError::ClaimTooDeep { .. } => "claim_too_deep",
            PolicyError::InvalidClaimValue(_) => "invalid_claim_value",
        }
    }
}

fn csr_list(keys: &[CsrKeyType]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(keys: &[KeyType]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn profile() -> Profile {
        let arc: ObjectId = claims::DEFAULT_OID_ARC.parse().unwrap();
        let mut claims = BTreeMap::new();
        claims.insert(
            "agent".to_owned(),
            ClaimSpec {
                oid: arc.child(100),
                kind: ClaimType::String,
                max_len: 16,
                required: false,
            },
        );
        claims.insert(
            "geo".to_owned(),
            ClaimSpec {
                oid: arc.child(101),
                kind: ClaimType::Json,
                max_len: 64,
                required: false,
            },
        );
        Profile {
            name: "default".into(),
            ca: "default".into(),
            key_types: vec![KeyType::EcdsaP256, KeyType::Ed25519],
            allow_server_keys: true,
            allow_csr: true,
            csr_key_types: CsrKeyType::ALL.to_vec(),
            default_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(900),
            backdate: Duration::from_secs(30),
            subject: vec![(SubjectAttribute::Organization, "Bank".into())],
            uri_san: Some("urn:uuid:{session_id}".into()),
            require_session_id: false,
            require_transaction_id: false,
            allowed_callers: None,
            claims,
            oid_arc: arc,
            max_json_depth: 3,
        }
    }

    const SID: &str = "92fea10a-0905-40cc-aca1-54ee52e89c71";

    fn request(body: serde_json::Value) -> IssueRequest {
        IssueRequest::from_json(body.to_string().as_bytes()).unwrap()
    }

    fn plan(p: &Profile, body: serde_json::Value) -> Result<CertificatePlan, PolicyError> {
        p.plan(&request(body), &Caller::Anonymous, "req-1")
    }

    #[test]
    fn defaults_fill_in() {
        let plan = plan(&profile(), json!({})).unwrap();
        assert_eq!(plan.key, KeySource::Generate(KeyType::EcdsaP256));
        assert!(!plan.pkcs12);
        assert_eq!(plan.ttl, Duration::from_secs(300));
        let uuid = uuid::Uuid::parse_str(&plan.session_id).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(plan.uri_san, Some(format!("urn:uuid:{}", plan.session_id)));
        let oids: Vec<String> = plan.extensions.iter().map(|(o, _)| o.to_string()).collect();
        assert_eq!(oids, ["1.3.6.1.4.1.32473.1.1", "1.3.6.1.4.1.32473.1.4"]);
        assert_eq!(plan.extensions[1].1, "req-1");
    }

    #[test]
    fn claims_are_encoded_by_type() {
        let plan = plan(
            &profile(),
            json!({"session_id": SID, "transaction_id": "t",
                   "claims": {"agent": "iOS", "geo": {"lat": "52.15", "lon": "4.49"}}}),
        )
        .unwrap();
        let by_oid: BTreeMap<String, String> = plan
            .extensions
            .iter()
            .map(|(o, v)| (o.to_string(), v.clone()))
            .collect();
        assert_eq!(by_oid["1.3.6.1.4.1.32473.1.2"], "t");
        assert_eq!(by_oid["1.3.6.1.4.1.32473.1.100"], "iOS");
        assert_eq!(
            by_oid["1.3.6.1.4.1.32473.1.101"],
            r#"{"lat":"52.15","lon":"4.49"}"#
        );
    }

    #[test]
    fn pkcs12_is_refused_on_fips_builds_only() {
        let result = plan(&profile(), json!({"pkcs12": true}));
        if cfg!(feature = "fips") {
            let e = result.unwrap_err();
            assert_eq!(e.code(), "invalid_field");
            assert!(e.to_string().contains("FIPS module"), "{e}");
        } else {
            assert!(result.unwrap().pkcs12);
        }
    }

    #[test]
    fn each_rule_has_its_code() {
        let p = profile();
        for (body, code) in [
            (json!({"ttl_seconds": 0}), "ttl_too_short"),
            (json!({"ttl_seconds": 901}), "ttl_too_long"),
            (json!({"key_type": "ecdsa-p384"}), "key_type_not_allowed"),
            (json!({"claims": {"nope": "x"}}), "unknown_claim"),
            (json!({"claims": {"session_id": "x"}}), "unknown_claim"),
            (json!({"claims": {"agent": 5}}), "claim_wrong_type"),
            (
                json!({"claims": {"agent": "x".repeat(17)}}),
                "claim_too_long",
            ),
            (json!({"claims": {"geo": [[[["deep"]]]]}}), "claim_too_deep"),
            (
                json!({"claims": {"agent": "a\u{0}b"}}),
                "invalid_claim_value",
            ),
            (
                json!({"claims": {"geo": {"k\u{1b}": 1}}}),
                "invalid_claim_value",
            ),
            (
                json!({"claims": {"agent": "\u{202e}gnp"}}),
                "invalid_claim_value",
            ),
            (json!({"session_id": ""}), "invalid_field"),
            (json!({"session_id": "x".repeat(65)}), "invalid_field"),
            (json!({"transaction_id": "a\nb"}), "invalid_field"),
            (json!({"csr": "-----BEGIN"}), "invalid_csr"),
            (json!({"csr": ""}), "invalid_csr"),
        ] {
            let err = plan(&p, body.clone()).unwrap_err();
            assert_eq!(err.code(), code, "{body}: {err}");
        }
        assert!(plan(&p, json!({"claims": {"agent": "x".repeat(16)}})).is_ok());
        assert_eq!(
            plan(&p, json!({"session_id": "not-a-uuid"})).unwrap_err(),
            PolicyError::NotAUuid {
                field: "session_id"
            }
        );
        let mut csr_only = p.clone();
        csr_only.allow_server_keys = false;
        assert_eq!(
            plan(&csr_only, json!({})).unwrap_err().code(),
            "server_keys_not_allowed"
        );
        let mut keys_only = p.clone();
        keys_only.allow_csr = false;
        assert_eq!(
            plan(&keys_only, json!({"csr": "x"})).unwrap_err().code(),
            "csr_not_allowed",
            "the profile refuses before the CSR is parsed"
        );
        let mut free = p.clone();
        free.uri_san = Some("urn:example:{session_id}".into());
        let ok = plan(&free, json!({"session_id": "é".repeat(64)})).unwrap();
        assert_eq!(
            ok.uri_san.unwrap(),
            format!("urn:example:{}", "%C3%A9".repeat(64))
        );
        assert!(plan(&p, json!({"ttl_seconds": 900})).is_ok());
    }

    #[test]
    fn required_fields_and_claims() {
        let mut p = profile();
        p.require_session_id = true;
        p.require_transaction_id = true;
        p.claims.get_mut("agent").unwrap().required = true;
        let e = plan(&p, json!({"transaction_id": "t", "claims": {"agent": "a"}})).unwrap_err();
        assert_eq!(e, PolicyError::MissingField("session_id"));
        let e = plan(&p, json!({"session_id": SID, "claims": {"agent": "a"}})).unwrap_err();
        assert_eq!(e, PolicyError::MissingField("transaction_id"));
        let e = plan(&p, json!({"session_id": SID, "transaction_id": "t"})).unwrap_err();
        assert_eq!(e.code(), "missing_claim");
        assert!(plan(
            &p,
            json!({"session_id": SID, "transaction_id": "t", "claims": {"agent": "a"}})
        )
        .is_ok());
    }

    #[test]
    fn allowed_callers_are_enforced() {
        let mut p = profile();
        p.allowed_callers = Some(vec![CallerPattern::new("role/payments-*")]);
        let req = request(json!({}));
        let err = p.plan(&req, &Caller::Anonymous, "r").unwrap_err();
        assert_eq!(err.code(), "caller_not_allowed");
        let ok = p
            .plan(&req, &Caller::Principal("role/payments-api".into()), "r")
            .unwrap();
        assert_eq!(ok.requester.as_deref(), Some("role/payments-api"));
        assert!(ok
            .extensions
            .iter()
            .any(|(o, v)| o.to_string() == "1.3.6.1.4.1.32473.1.3" && v == "role/payments-api"));
        let err = p
            .plan(&req, &Caller::Principal("role/ledger".into()), "r")
            .unwrap_err();
        assert_eq!(err.code(), "caller_not_allowed");
    }

    #[test]
    fn uri_san_values_are_percent_encoded() {
        assert_eq!(
            expand_uri_template("urn:x:{profile}:{session_id}", "a b/ü", None, "p"),
            "urn:x:p:a%20b%2F%C3%BC"
        );
    }
}
