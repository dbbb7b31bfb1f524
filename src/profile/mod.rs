//! Profiles: the CA owner's rules, and turning a request into a
//! certificate plan ([`Profile::plan`]). A profile's settings are validated
//! here too ([`settings`]), so a rule and its checks live side by side.

mod error;
pub mod rate_limit;
pub mod settings;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use session_ca_verify::{ClaimType, ObjectId, StandardClaim};

pub use error::PolicyError;

use crate::auth::{Caller, CallerPattern};
use crate::fmt::is_safe_char;
use crate::keys::KeyType;
use crate::request::{json_depth, CsrKey, CsrKeyType, IssueRequest};

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
    /// The CRL distribution point put into every certificate (`crl_url`).
    pub crl_url: Option<String>,
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
    /// Rate limits, counted in the store (`rate_limit`).
    pub rate_limit: rate_limit::RateLimits,
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
    /// The CRL distribution point, when the profile names one.
    pub crl_url: Option<String>,
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
        if request.pkcs12 {
            // The key store names each certificate by its subject in a
            // BMPString: refused here, before anything is signed. (The der
            // crate refuses U+FFFF too, a noncharacter.)
            let outside_bmp = |text: &str| text.chars().any(|c| u32::from(c) > 0xFFFE);
            if outside_bmp(&session_id) {
                return Err(PolicyError::Pkcs12SubjectNotBmp {
                    field: "session_id".into(),
                });
            }
            if let Some((attribute, _)) = self.subject.iter().find(|(_, v)| outside_bmp(v)) {
                return Err(PolicyError::Pkcs12SubjectNotBmp {
                    field: format!("profiles.{}.subject.{}", self.name, attribute.short_name()),
                });
            }
        }
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
            crl_url: self.crl_url.clone(),
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

    /// The name of the claim at `oid`: a standard claim's, or one of this
    /// profile's.
    pub fn claim_name(&self, oid: &ObjectId) -> Option<&str> {
        StandardClaim::ALL
            .iter()
            .find(|c| c.oid(&self.oid_arc) == *oid)
            .map(|c| c.name())
            .or_else(|| {
                self.claims
                    .iter()
                    .find(|(_, spec)| spec.oid == *oid)
                    .map(|(name, _)| name.as_str())
            })
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
    if chars == 0 || chars > max_chars || !value.chars().all(is_safe_char) {
        return Err(PolicyError::InvalidField { field, max_chars });
    }
    Ok(())
}

/// Whether every string in a JSON value (keys included) is free of control
/// and bidi-override characters.
fn json_strings_are_safe(value: &Value) -> bool {
    let safe = |s: &str| s.chars().all(is_safe_char);
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

/// Everything but RFC 3986's unreserved characters (ALPHA, DIGIT, `-`,
/// `.`, `_`, `~`) is percent-encoded.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, NOT_UNRESERVED).to_string()
}
