//! A profile's settings as written in the configuration file
//! (`[profiles.NAME]`), and their validation into a [`Profile`]: the CA
//! owner's rules are checked where they are applied.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use session_ca_verify::{ClaimType, ObjectId, StandardClaim};

use super::{ClaimSpec, Profile, SubjectAttribute};
use crate::auth::CallerPattern;
use crate::fmt::{is_safe_char, is_valid_name, DurationSetting};
use crate::keys::KeyType;
use crate::request::CsrKeyType;

/// Longest certificate lifetime any profile may allow.
pub const MAX_TTL_CAP: Duration = Duration::from_secs(24 * 3600);
/// Longest backdate any profile may use.
pub const MAX_BACKDATE: Duration = Duration::from_secs(3600);
/// Largest `max_len` a claim may declare, in bytes.
pub const MAX_CLAIM_LEN_CAP: usize = 8192;

/// Extension arcs a claim must never use: a claim there would forge or
/// duplicate a standard extension (RFC 5280 §4.2.1 id-ce, §4.2.2 id-pe).
pub const RESERVED_ARCS: [&str; 2] = ["2.5.29", "1.3.6.1.5.5.7.1"];

pub fn reserved_arcs() -> Vec<ObjectId> {
    RESERVED_ARCS
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// One `[profiles.NAME]` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "RawProfile")]
pub struct ProfileSettings {
    /// The CA that signs (default `default`).
    #[serde(default = "default_ca_name")]
    pub ca: String,
    /// Key types callers may ask for (default: every type this build generates).
    pub key_types: Option<Vec<KeyType>>,
    /// Whether the signer may generate keys (default true).
    pub allow_server_keys: Option<bool>,
    /// Whether callers may send a CSR (default true).
    pub allow_csr: Option<bool>,
    /// Key types a CSR may carry (default: all).
    pub csr_key_types: Option<Vec<CsrKeyType>>,
    /// Lifetime when a request names none (default 5m).
    pub default_ttl: Option<DurationSetting>,
    /// Longest lifetime a request may ask for (default 15m).
    pub max_ttl: Option<DurationSetting>,
    /// How far `not_before` lies before issuance (default 30s).
    pub backdate: Option<DurationSetting>,
    /// Fixed subject attributes by short name (C, ST, L, O, OU), as a
    /// table or as text (`"O=Example Bank,C=NL"`).
    #[serde(default)]
    pub subject: SubjectSetting,
    /// URI SAN template.
    pub uri_san: Option<String>,
    /// A CRL distribution point (an http or https URL, such as the
    /// service's own `/v1/crl?ca=NAME`) put into every certificate.
    pub crl_url: Option<String>,
    /// Request fields that must be sent (`session_id`, `transaction_id`).
    #[serde(default)]
    pub require: Vec<String>,
    /// Caller patterns admitted (none: every caller).
    pub allowed_callers: Option<Vec<String>>,
    /// Profile-defined claims by name.
    #[serde(default)]
    pub claims: BTreeMap<String, ClaimSettings>,
    /// Rate limits, counted in the store (`{ per_caller = "600/min", ... }`).
    #[serde(default)]
    pub rate_limit: super::rate_limit::RateLimitSettings,
}

/// A profile's subject as written: `{ O = "Example Bank", C = "NL" }`, or
/// the same as text, `"O=Example Bank,C=NL"` (handy in an environment
/// variable or a CloudFormation parameter; a value with a comma needs the
/// table form).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SubjectSetting {
    /// `KEY=VALUE` pairs separated by commas.
    Text(String),
    /// A table by attribute.
    Table(BTreeMap<String, String>),
}

impl Default for SubjectSetting {
    fn default() -> Self {
        SubjectSetting::Table(BTreeMap::new())
    }
}

impl SubjectSetting {
    /// The attributes by short name; errors are (field suffix, message).
    fn attributes(self) -> Result<BTreeMap<String, String>, (String, String)> {
        let text = match self {
            SubjectSetting::Table(table) => return Ok(table),
            SubjectSetting::Text(text) => text,
        };
        let mut table = BTreeMap::new();
        if text.trim().is_empty() {
            return Ok(table);
        }
        for part in text.split(',') {
            let Some((key, value)) = part.split_once('=') else {
                return Err((
                    ".subject".into(),
                    format!(
                        "{part:?} is not KEY=VALUE; write e.g. \"O=Example Bank,C=NL\" \
                         (attributes C, ST, L, O, OU)"
                    ),
                ));
            };
            let key = key.trim().to_owned();
            if table.insert(key.clone(), value.trim().to_owned()).is_some() {
                return Err((format!(".subject.{key}"), "is given twice".into()));
            }
        }
        Ok(table)
    }
}

fn default_ca_name() -> String {
    "default".into()
}

/// One `[profiles.NAME.claims]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "RawClaimSpec")]
pub struct ClaimSettings {
    /// The claim extension's OID.
    pub oid: String,
    /// `string` or `json`.
    #[serde(rename = "type")]
    pub kind: ClaimType,
    /// Largest value in bytes.
    pub max_len: usize,
    /// Whether every request must carry it.
    #[serde(default)]
    pub required: bool,
}

impl Profile {
    /// Validates one profile's settings; `cas` are the names of the configured
    /// CAs. Errors are (field suffix, message).
    pub fn from_settings(
        name: &str,
        raw: ProfileSettings,
        oid_arc: &ObjectId,
        max_json_depth: usize,
        cas: &BTreeSet<&str>,
    ) -> Result<Profile, (String, String)> {
        let err = |field: &str, message: String| (field.to_owned(), message);
        if !is_valid_name(name) {
            return Err(err(
                "",
                "profile names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
            ));
        }
        if !cas.contains(raw.ca.as_str()) {
            let known: Vec<&str> = cas.iter().copied().collect();
            return Err(err(
                ".ca",
                format!(
                    "no CA named {:?}; configured CAs: {}",
                    raw.ca,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }

        let key_types = raw.key_types.unwrap_or_else(|| KeyType::ALL.to_vec());
        if key_types.is_empty() {
            return Err(err(".key_types", "must list at least one key type".into()));
        }
        if key_types.iter().collect::<BTreeSet<_>>().len() != key_types.len() {
            return Err(err(".key_types", "lists a key type twice".into()));
        }
        if let Some(missing) = key_types.iter().find(|k| !k.generated_by_this_build()) {
            return Err(err(
                ".key_types",
                crate::keys::KeyError::NotInThisBuild(*missing).to_string(),
            ));
        }
        let allow_server_keys = raw.allow_server_keys.unwrap_or(true);
        let allow_csr = raw.allow_csr.unwrap_or(true);
        if !allow_server_keys && !allow_csr {
            return Err(err(
                ".allow_csr",
                "and allow_server_keys are both false, so the profile could issue nothing".into(),
            ));
        }
        let csr_key_types = raw
            .csr_key_types
            .unwrap_or_else(|| CsrKeyType::ALL.to_vec());
        if csr_key_types.is_empty() {
            return Err(err(
                ".csr_key_types",
                "must list at least one key type (set allow_csr = false to refuse CSRs)".into(),
            ));
        }
        if csr_key_types.iter().collect::<BTreeSet<_>>().len() != csr_key_types.len() {
            return Err(err(".csr_key_types", "lists a key type twice".into()));
        }

        let rate_limit = super::rate_limit::RateLimits::from_settings(raw.rate_limit)
            .map_err(|(field, message)| err(&field, message))?;
        let default_ttl = raw.default_ttl.map_or(Duration::from_secs(300), |d| d.0);
        let max_ttl = raw.max_ttl.map_or(Duration::from_secs(900), |d| d.0);
        let backdate = raw.backdate.map_or(Duration::from_secs(30), |d| d.0);
        let whole = |field: &str, d: Duration| {
            if d.subsec_nanos() != 0 {
                Err(err(field, "must be whole seconds".into()))
            } else {
                Ok(())
            }
        };
        whole(".default_ttl", default_ttl)?;
        whole(".max_ttl", max_ttl)?;
        whole(".backdate", backdate)?;
        if max_ttl > MAX_TTL_CAP {
            return Err(err(
                ".max_ttl",
                format!(
                    "{} is above the hard cap of 24h; session certificates are short-lived",
                    humantime::format_duration(max_ttl)
                ),
            ));
        }
        if default_ttl.is_zero() || default_ttl > max_ttl {
            return Err(err(
                ".default_ttl",
                format!(
                    "must be at least 1s and at most max_ttl ({})",
                    humantime::format_duration(max_ttl)
                ),
            ));
        }
        if backdate > MAX_BACKDATE {
            return Err(err(".backdate", "must be at most 1h".into()));
        }

        let mut subject = Vec::new();
        let attributes = raw.subject.attributes()?;
        for (key, value) in &attributes {
            let attribute = SubjectAttribute::from_short_name(key).ok_or_else(|| {
                err(
                    &format!(".subject.{key}"),
                    "unknown subject attribute; allowed: C, ST, L, O, OU (CN is the session id)"
                        .into(),
                )
            })?;
            let ok = match attribute {
                SubjectAttribute::Country => {
                    value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())
                }
                _ => {
                    let chars = value.chars().count();
                    (1..=64).contains(&chars) && value.chars().all(is_safe_char)
                }
            };
            if !ok {
                return Err(err(
                    &format!(".subject.{key}"),
                    match attribute {
                        SubjectAttribute::Country => {
                            "C must be a two-letter upper-case ISO 3166 code such as \"NL\"".into()
                        }
                        _ => "must be 1-64 characters with no control characters".into(),
                    },
                ));
            }
            subject.push((attribute, value.clone()));
        }
        subject.sort_by_key(|(a, _)| *a);

        if let Some(template) = &raw.uri_san {
            let probe = template
                .replace("{session_id}", "")
                .replace("{transaction_id}", "")
                .replace("{profile}", "");
            let scheme_ok = probe.split_once(':').is_some_and(|(scheme, _)| {
                scheme
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic())
                    && scheme
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            });
            if probe.contains('{') || probe.contains('}') {
                return Err(err(
                    ".uri_san",
                    "unknown placeholder; allowed: {session_id}, {transaction_id}, {profile}"
                        .into(),
                ));
            }
            if let Some(rest) = template.strip_prefix("urn:uuid:") {
                if rest != "{session_id}" && rest != "{transaction_id}" {
                    return Err(err(
                        ".uri_san",
                        "a urn:uuid: template must be exactly \"urn:uuid:{session_id}\" or \
                     \"urn:uuid:{transaction_id}\" (RFC 4122 §3)"
                            .into(),
                    ));
                }
            }
            if template.contains("{transaction_id}")
                && !raw.require.iter().any(|r| r == "transaction_id")
            {
                return Err(err(
                    ".uri_san",
                    "uses {transaction_id}, so add \"transaction_id\" to require".into(),
                ));
            }
            if !scheme_ok || !probe.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(err(
                    ".uri_san",
                    "must be an absolute URI of printable ASCII, such as \"urn:uuid:{session_id}\""
                        .into(),
                ));
            }
        }

        if let Some(url) = &raw.crl_url {
            let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
            if !scheme_ok
                || url.len() > 1024
                || url.len() <= "https://".len()
                || !url.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(err(
                    ".crl_url",
                    "must be an http:// or https:// URL of printable ASCII, at most 1024 \
                     characters, such as \"https://ca.example.com/v1/crl?ca=default\""
                        .into(),
                ));
            }
        }

        let mut claims = BTreeMap::new();
        let mut seen_oids: BTreeMap<ObjectId, String> = StandardClaim::ALL
            .iter()
            .map(|c| (c.oid(oid_arc), c.name().to_owned()))
            .collect();
        let reserved = reserved_arcs();
        for (claim, spec) in raw.claims {
            let field = |f: &str| format!(".claims.{claim}{f}");
            if !is_valid_name(&claim) || StandardClaim::ALL.iter().any(|c| c.name() == claim) {
                return Err(err(
                &field(""),
                "claim names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-', and not one of \
                 session_id, transaction_id, requester, request_id"
                    .into(),
            ));
            }
            let oid: ObjectId = spec
                .oid
                .parse()
                .map_err(|e| err(&field(".oid"), format!("{e}")))?;
            if reserved.iter().any(|r| oid.is_below(r)) {
                return Err(err(
                    &field(".oid"),
                    format!("{oid} is a standard X.509 extension OID; claims need their own arc"),
                ));
            }
            if let Some(other) = seen_oids.insert(oid.clone(), claim.clone()) {
                return Err(err(
                    &field(".oid"),
                    format!("{oid} is already used by claim {other:?}"),
                ));
            }
            if spec.max_len == 0 || spec.max_len > MAX_CLAIM_LEN_CAP {
                return Err(err(
                    &field(".max_len"),
                    format!("must be between 1 and {MAX_CLAIM_LEN_CAP} bytes"),
                ));
            }
            claims.insert(
                claim,
                ClaimSpec {
                    oid,
                    kind: spec.kind,
                    max_len: spec.max_len,
                    required: spec.required,
                },
            );
        }

        let (mut require_session_id, mut require_transaction_id) = (false, false);
        for (i, required) in raw.require.iter().enumerate() {
            match required.as_str() {
            "session_id" => require_session_id = true,
            "transaction_id" => require_transaction_id = true,
            other => match claims.get_mut(other) {
                Some(spec) => spec.required = true,
                None => {
                    return Err(err(
                        &format!(".require[{i}]"),
                        format!(
                            "{other:?} is neither session_id, transaction_id nor a claim of this profile"
                        ),
                    ))
                }
            },
        }
        }

        let allowed_callers = match raw.allowed_callers {
            None => None,
            Some(patterns) => {
                if let Some(i) = patterns.iter().position(|p| p.is_empty()) {
                    return Err(err(
                        &format!(".allowed_callers[{i}]"),
                        "an empty pattern matches nobody; remove it".into(),
                    ));
                }
                Some(patterns.into_iter().map(CallerPattern::new).collect())
            }
        };

        Ok(Profile {
            name: name.to_owned(),
            ca: raw.ca,
            key_types,
            allow_server_keys,
            allow_csr,
            csr_key_types,
            default_ttl,
            max_ttl,
            backdate,
            subject,
            uri_san: raw.uri_san,
            crl_url: raw.crl_url,
            require_session_id,
            require_transaction_id,
            allowed_callers,
            claims,
            oid_arc: oid_arc.clone(),
            max_json_depth,
            rate_limit,
        })
    }
}
