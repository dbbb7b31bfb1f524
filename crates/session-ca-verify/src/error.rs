//! Why a verifier could not be built or a certificate was refused, and the
//! TLS view of a refusal.

use std::sync::Arc;
use std::time::Duration;

use rustls::CertificateError;
use time::OffsetDateTime;

use crate::fmt::{rfc3339, unix_time};

/// Whose fault a [`VerifyError`] is, for callers that only need the category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyErrorKind {
    /// The peer's certificate is not trusted (or not a certificate).
    NotTrusted,
    /// The certificate is trusted but its claims cannot be read.
    MalformedClaims,
    /// The verifier was configured wrongly by its caller.
    Misuse,
    /// The certificate's revocation status cannot be established: the CRL
    /// for its issuer is missing or stale, or could not be fetched. Not
    /// the peer's fault; the backend's CRL supply needs attention (a
    /// refresh), and the certificate is refused meanwhile. (A document
    /// that arrived but is not a usable CRL of a configured CA is
    /// [`VerifyError::UnusableCrl`], [`Misuse`](Self::Misuse): the URL or
    /// the CA set is wrong, and retrying will not help.)
    RevocationUnavailable,
}

/// Why a verifier could not be built or a certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Misuse: the CA PEM text is malformed.
    #[error("CA certificates: {0}")]
    CaPem(String),
    /// Misuse: no CA certificate was given, so nothing could be trusted.
    #[error("no CA certificate given (expected PEM CERTIFICATE blocks, as served by GET /v1/ca)")]
    NoCaCertificates,
    /// Misuse: a CA certificate cannot be parsed or used as a trust anchor.
    #[error("CA certificate {index}: {why}")]
    UnusableCa {
        /// Position of the certificate among those given, from 1.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Misuse: a claim name or OID, or the OID arc, is invalid or repeated.
    #[error("claim configuration: {0}")]
    ClaimConfig(String),
    /// Misuse: a CRL given to the builder or to a [`CrlSet`](crate::CrlSet)
    /// is malformed, not issued by a configured CA, or its signature does
    /// not verify with that CA's key; it was not loaded.
    #[error("CRL {index}: {why}")]
    UnusableCrl {
        /// Position of the CRL among those given together, from 1.
        index: usize,
        /// What is wrong with it.
        why: String,
    },

    /// Not trusted: the peer presented no certificate.
    #[error("no client certificate was presented")]
    NoCertificate,
    /// Not trusted: the certificate (or an intermediate sent with it) is not well-formed X.509.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// Not trusted: no path from the certificate to a configured CA.
    #[error("the certificate's issuer {issuer:?} is not a trusted CA and does not chain to one")]
    UntrustedIssuer {
        /// The leaf's issuer, RFC 4514.
        issuer: String,
    },
    /// Not trusted: a signature on the path does not verify.
    #[error(
        "the certificate names {issuer:?} as its issuer, but its signature does not verify \
         with that trusted CA's key (signed by another CA with the same name, or forged)"
    )]
    BadSignature {
        /// The leaf's issuer, RFC 4514.
        issuer: String,
    },
    /// Not trusted: the certificate or a CA in its path has expired.
    #[error(
        "{certificate} expired at {}, checked at {} (allowed clock skew {} s)",
        rfc3339(*not_after), rfc3339(*checked_at), skew.as_secs()
    )]
    Expired {
        /// Which certificate: the leaf or a named CA.
        certificate: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// The verifier clock's time.
        checked_at: OffsetDateTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// Not trusted: the certificate or a CA in its path is not valid yet.
    #[error(
        "{certificate} is not valid before {}, checked at {} (allowed clock skew {} s)",
        rfc3339(*not_before), rfc3339(*checked_at), skew.as_secs()
    )]
    NotYetValid {
        /// Which certificate: the leaf or a named CA.
        certificate: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// The verifier clock's time.
        checked_at: OffsetDateTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// Not trusted: the certificate is not for TLS client authentication.
    #[error("the certificate is not a TLS client certificate: {0}")]
    NotClientAuth(String),
    /// Not trusted: a value a proxy forwarded is not what that proxy sends
    /// (not URL-encoded PEM, encoded twice, truncated, no certificate).
    #[error("the forwarded client certificate cannot be read: {0}")]
    MalformedForwarded(String),
    /// Not trusted: the certificate is listed in its issuer's CRL.
    #[error(
        "the certificate (serial {serial}) was revoked by {issuer:?}{}{}",
        revoked_at.map(|t| format!(" at {}", rfc3339(t))).unwrap_or_default(),
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Revoked {
        /// The certificate's serial number, lower-case hex of the DER INTEGER.
        serial: String,
        /// The certificate's issuer (the CRL's issuer), RFC 4514.
        issuer: String,
        /// The CRL entry's reasonCode in RFC 5280 §5.3.1 spelling
        /// (`keyCompromise`, `superseded`, ...), when the entry has one.
        reason: Option<&'static str>,
        /// The CRL entry's revocationDate.
        revoked_at: Option<OffsetDateTime>,
    },
    /// Revocation unavailable: the CRL for the certificate's issuer is past
    /// its nextUpdate at the verifier's clock. Refused rather than accepted
    /// on old news: a certificate revoked since then would pass.
    #[error(
        "the CRL of {issuer:?} is stale: its nextUpdate was {}, checked at {}; \
         refresh the CRL",
        rfc3339(*next_update), rfc3339(*checked_at)
    )]
    StaleCrl {
        /// The certificate's issuer, RFC 4514.
        issuer: String,
        /// The CRL's nextUpdate.
        next_update: OffsetDateTime,
        /// The verifier clock's time.
        checked_at: OffsetDateTime,
    },
    /// Revocation unavailable: CRLs are loaded, but none of them can say
    /// whether the certificate is revoked (none is from its issuer, or the
    /// one that is cannot be used for it).
    #[error("the revocation status of the certificate from {issuer:?} is unknown: {why}")]
    RevocationUnknown {
        /// The certificate's issuer, RFC 4514.
        issuer: String,
        /// Why no loaded CRL answers.
        why: String,
    },
    /// Revocation unavailable: a CRL could not be fetched (`crl-fetch`
    /// feature); the CRLs in place were kept.
    #[error("fetching the CRL from {url}: {why}")]
    CrlFetch {
        /// The URL, without any user information.
        url: String,
        /// What went wrong.
        why: String,
        /// The HTTP client's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Not trusted: rustls-webpki refused the path for another reason (its error named).
    #[error("the certificate is not trusted: {0}")]
    NotTrusted(String),

    /// Malformed claims: a claim extension appears more than once.
    #[error("claim {claim} ({oid}) appears more than once in the certificate")]
    DuplicateClaim {
        /// The claim's name, or "(unnamed)" under the arc.
        claim: String,
        /// Its OID.
        oid: String,
    },
    /// Malformed claims: a claim value is not a DER UTF8String, or a JSON claim is not JSON.
    #[error("claim {claim} ({oid}) is malformed: {why}")]
    MalformedClaim {
        /// The claim's name, or "(unnamed)" under the arc.
        claim: String,
        /// Its OID.
        oid: String,
        /// What is wrong with the value.
        why: String,
    },
}

impl VerifyError {
    /// Whose fault the error is.
    pub fn kind(&self) -> VerifyErrorKind {
        match self {
            VerifyError::CaPem(_)
            | VerifyError::NoCaCertificates
            | VerifyError::UnusableCa { .. }
            | VerifyError::ClaimConfig(_)
            | VerifyError::UnusableCrl { .. } => VerifyErrorKind::Misuse,
            VerifyError::NoCertificate
            | VerifyError::MalformedCertificate(_)
            | VerifyError::UntrustedIssuer { .. }
            | VerifyError::BadSignature { .. }
            | VerifyError::Expired { .. }
            | VerifyError::NotYetValid { .. }
            | VerifyError::NotClientAuth(_)
            | VerifyError::NotTrusted(_)
            | VerifyError::Revoked { .. }
            | VerifyError::MalformedForwarded(_) => VerifyErrorKind::NotTrusted,
            VerifyError::StaleCrl { .. }
            | VerifyError::RevocationUnknown { .. }
            | VerifyError::CrlFetch { .. } => VerifyErrorKind::RevocationUnavailable,
            VerifyError::DuplicateClaim { .. } | VerifyError::MalformedClaim { .. } => {
                VerifyErrorKind::MalformedClaims
            }
        }
    }
}

/// The TLS view of a refusal: the variants rustls turns into the matching
/// alert (unknown_ca, certificate_expired, ...), and `Other` carrying our
/// message where TLS has no closer alert.
impl From<VerifyError> for rustls::Error {
    fn from(error: VerifyError) -> Self {
        let certificate = match &error {
            VerifyError::NoCertificate => return rustls::Error::NoCertificatesPresented,
            VerifyError::MalformedCertificate(_) => CertificateError::BadEncoding,
            VerifyError::UntrustedIssuer { .. } => CertificateError::UnknownIssuer,
            VerifyError::BadSignature { .. } => CertificateError::BadSignature,
            VerifyError::Expired {
                not_after,
                checked_at,
                ..
            } => CertificateError::ExpiredContext {
                time: unix_time(*checked_at),
                not_after: unix_time(*not_after),
            },
            VerifyError::NotYetValid {
                not_before,
                checked_at,
                ..
            } => CertificateError::NotValidYetContext {
                time: unix_time(*checked_at),
                not_before: unix_time(*not_before),
            },
            VerifyError::NotClientAuth(_) => CertificateError::InvalidPurpose,
            VerifyError::Revoked { .. } => CertificateError::Revoked,
            VerifyError::StaleCrl {
                next_update,
                checked_at,
                ..
            } => CertificateError::ExpiredRevocationListContext {
                time: unix_time(*checked_at),
                next_update: unix_time(*next_update),
            },
            VerifyError::RevocationUnknown { .. } => CertificateError::UnknownRevocationStatus,
            _ => CertificateError::Other(rustls::OtherError(Arc::new(error))),
        };
        rustls::Error::InvalidCertificate(certificate)
    }
}
