//! The refusals of a profile: a request that is well-formed but not allowed.

use session_ca_verify::ClaimType;

use crate::keys::KeyType;
use crate::request::{CsrError, CsrKeyType};

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
    /// `pkcs12: true` for a certificate whose subject holds a character
    /// outside the Basic Multilingual Plane: the key store names each
    /// certificate by its subject in a BMPString, which cannot carry it.
    #[error(
        "pkcs12: the certificate's subject ({field}) holds a character outside the Basic \
         Multilingual Plane (above U+FFFE, such as an emoji), which a PKCS#12 friendly name \
         (a BMPString) cannot carry; take private_key (PEM), or use another {field}"
    )]
    Pkcs12SubjectNotBmp {
        /// The field the character is in: `session_id`, or the profile's
        /// subject attribute.
        field: String,
    },
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
            | PolicyError::Pkcs12NotInFipsBuild
            | PolicyError::Pkcs12SubjectNotBmp { .. } => "invalid_field",
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
