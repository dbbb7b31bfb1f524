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
pub use error::{VerifyError, VerifyErrorKind};
pub use forwarded::Forwarded;
pub use session::SessionClaims;
pub use tls::RustlsClientVerifier;
pub use verifier::{Verifier, DEFAULT_SKEW};
