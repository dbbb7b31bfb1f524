//! session-ca: per-session mTLS client certificates, signed on request.
//!
//! A client POSTs its session facts; the service checks them against a
//! profile ([`policy`]), generates a key pair ([`keys`]), signs a short-lived
//! certificate carrying the facts as X.509 extensions ([`issuer`],
//! [`claims`]) with a CA loaded by a [`ca::CaSource`], and returns PEM
//! certificate, key and chain. The same [`http::app`] router serves a local
//! TCP listener and AWS Lambda ([`http::lambda`]), with the CA in a local
//! directory or in AWS Systems Manager Parameter Store ([`ca::ssm`]).
//!
//! The architecture is described in `DESIGN.md`; the HTTP contract is
//! `api-spec/openapi.yaml`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod auth;
pub mod ca;
pub mod claims;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod csr;
pub mod files;
pub mod hmac;
pub mod http;
pub mod inspect;
pub mod issuer;
pub mod keys;
pub mod pkcs12;
pub mod policy;
pub mod request;
pub mod verify;

pub use ca::{CaSource, CaStore, SigningCa};
pub use clock::{Clock, FixedClock, SharedClock, SystemClock};
pub use config::Config;
pub use http::{app, AppState};
pub use keys::KeyType;
