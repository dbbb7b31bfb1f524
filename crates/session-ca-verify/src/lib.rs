//! Verify a session-ca client certificate and read its claims.
//!
//! session-ca issues short-lived mTLS client certificates that carry the
//! session's facts (session id, transaction id, requester, request id and
//! the profile's own claims) in custom X.509 extensions. This crate is what
//! a backend needs to trust such a certificate and act on those facts,
//! without the signing service's own dependencies.
//!
//! A [`Verifier`] holds the CA chain served by `GET /v1/ca`, a [`Clock`] and
//! the profile's claim names. [`Verifier::verify`] takes the peer's chain
//! from the TLS handshake (leaf first), lets rustls-webpki decide whether it
//! is trusted for TLS client authentication, and decodes the claims into
//! [`SessionClaims`]. [`Verifier::verify_trust`] makes the trust decision
//! alone. [`RustlsClientVerifier`] plugs the same check into a rustls
//! server, so a bad certificate fails the handshake itself.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let peer_chain: Vec<rustls_pki_types::CertificateDer<'static>> = Vec::new();
//! use session_ca_verify::{ClaimType, Verifier};
//! let verifier = Verifier::builder().ca_pem(std::fs::read("ca.pem")?)
//!     .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::String).build()?;
//! let session = verifier.verify(&peer_chain)?; // leaf first, as TLS presents it
//! println!("{:?} {:?}", session.session_id, session.claims.get("agent"));
//! # Ok(()) }
//! ```
//!
//! Claim extensions are read strictly: a claim the verifier knows (the four
//! [`StandardClaim`]s and those named with [`VerifierBuilder::claim`]) that
//! is not a DER `UTF8String`, a `json` claim that is not JSON, and any claim
//! OID present twice (RFC 5280 §4.2 allows one instance of an extension) are
//! errors, because a backend that authorises on a claim must not act on a
//! guess. Extensions under the claim arc that the verifier was not told
//! about are returned as text in [`SessionClaims::other`], keyed by OID, so
//! a new profile claim does not break existing backends; they are held to
//! the same encoding rule, since everything under the arc is a `UTF8String`
//! claim by design. Extensions outside the arc are left to rustls-webpki
//! (which refuses unknown critical ones, RFC 5280 §4.2).
//!
//! # Revocation
//!
//! Give the verifier the CRLs of its CAs ([`VerifierBuilder::crl_pem`],
//! [`VerifierBuilder::crl_der`]) and it refuses a revoked leaf with
//! [`VerifyError::Revoked`], in [`Verifier::verify`], in the rustls adapter
//! and in [`Verifier::verify_forwarded`] alike: rustls-webpki checks the
//! leaf against its issuer's CRL while building the path. A CRL is loaded
//! only if one of the configured CAs issued it and its signature verifies
//! with that CA's key ([`VerifyError::UnusableCrl`] otherwise). Once any CRL
//! is loaded, a leaf whose issuer has no CRL
//! ([`VerifyError::RevocationUnknown`]) or whose issuer's CRL is past its
//! nextUpdate ([`VerifyError::StaleCrl`]) is refused: failing open would
//! accept a certificate revoked since. Both are of kind
//! [`VerifyErrorKind::RevocationUnavailable`]: the backend's CRL supply, not
//! the peer, is at fault.
//!
//! [`Verifier::crls`] is the verifier's [`CrlSet`], shared with its clones:
//! [`CrlSet::replace_pem`] or [`CrlSet::update`] swap CRLs in at run time.
//! With the `crl-fetch` feature, `CrlSet::refresh_from` fetches one over
//! http and `CrlRefresher` does so every so often on a thread, keeping the
//! last good CRL when a fetch fails.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use session_ca_verify::Verifier;
//! let verifier = Verifier::builder()
//!     .ca_pem(std::fs::read("ca.pem")?)
//!     .crl_pem(std::fs::read("issuing.crl.pem")?)
//!     .build()?;
//! // Later, when the CA publishes a new CRL (DER or PEM):
//! verifier.crls().update(std::fs::read("issuing.crl")?)?;
//! # #[cfg(feature = "crl-fetch")]
//! // Or fetch it every 10 minutes (the `crl-fetch` feature):
//! let refresher = session_ca_verify::CrlRefresher::spawn(
//!     verifier.crls().clone(),
//!     "http://pki.example.com/issuing.crl",
//!     std::time::Duration::from_secs(600),
//!     |outcome| if let Err(e) = outcome { eprintln!("CRL refresh: {e}") },
//! )?;
//! # Ok(()) }
//! ```
//!
//! # Crypto library
//!
//! Exactly one per build, as in the service: ring (the default feature
//! `ring`) or aws-lc-rs (`--no-default-features --features aws-lc`, or
//! `fips` for the AWS-LC FIPS module). It checks the certificate path and
//! computes fingerprints; the TLS handshake signatures are checked with the
//! algorithms of the rustls `CryptoProvider` given to
//! [`Verifier::rustls_client_verifier`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod claims;
mod clock;
mod crl;
#[cfg(feature = "crl-fetch")]
mod crl_fetch;
mod crypto;
mod error;
#[cfg(test)]
mod fixtures;
mod fmt;
mod forwarded;
mod session;
mod tls;
mod verifier;

pub use builder::VerifierBuilder;
pub use claims::{
    decode_claim_value, encode_claim_value, ClaimError, ClaimType, ObjectId, StandardClaim,
    DEFAULT_OID_ARC,
};
pub use clock::{Clock, FixedClock, SharedClock, SystemClock};
pub use crl::{CrlSet, CrlSummary};
#[cfg(feature = "crl-fetch")]
pub use crl_fetch::CrlRefresher;
pub use error::{VerifyError, VerifyErrorKind};
pub use forwarded::Forwarded;
pub use session::SessionClaims;
pub use tls::RustlsClientVerifier;
pub use verifier::{Verifier, DEFAULT_SKEW};
