//! The client side of session-ca, a signing service that issues
//! short-lived mTLS client certificates per session.
//!
//! This crate is what a program needs to get a certificate from a signer,
//! without the service itself (no axum, no AWS SDK):
//!
//! - the API's wire types: the request body [`CertificateRequest`] (with
//!   its [`Claims`]), the response bodies [`IssueResponse`], [`Health`]
//!   and the error body [`ErrorBody`]. They are the one definition of the
//!   API: the service reads and writes the same types;
//! - [`SignerClient`], an HTTP(S) client of one signer, which signs its
//!   requests with [`hmac`] when the signer wants that, or with AWS SigV4
//!   (`sigv4`, the `sigv4` feature) for a signer behind a Lambda Function
//!   URL or API Gateway with IAM auth;
//! - idempotent retries: [`SignerClient::issue`] sends an
//!   `Idempotency-Key` ([`idempotency`]) and, after a transport error, HTTP
//!   502/503/504, 409 `idempotency_in_progress` or 429, tries again with
//!   the same key and a fresh signature, by a [`RetryPolicy`] (3 attempts,
//!   backoff from 200 ms, at most 2 s, `Retry-After` honoured). The signer
//!   issues one certificate for all the attempts;
//!   [`SignerClient::issue_detailed`] tells whether the answer was a replay,
//!   and [`SignerClient::issue_with_idempotency_key`] takes a key the
//!   caller keeps across its own restarts;
//! - [`CachedCertificate`], one session's certificate held while it is
//!   fresh and renewed at its `renew_after`;
//! - [`write_pem_files`] and [`write_pkcs12_file`], which write the issued
//!   credentials so that no reader sees a partial file and secrets are
//!   0600 from the start (built on [`files`]).
//!
//! ```no_run
//! use session_ca_client::{CertificateRequest, Claims, SignerClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let signer = SignerClient::new("https://signer.example", None)?;
//! let mut claims = Claims::default();
//! claims.insert("agent", &serde_json::json!("example"));
//! let issued = signer
//!     .issue(&CertificateRequest {
//!         transaction_id: Some("tx-0001".into()),
//!         claims: Some(claims),
//!         ..CertificateRequest::default()
//!     })
//!     .await?;
//! println!("{} until {}", issued.serial, issued.not_after);
//! session_ca_client::write_pem_files("creds".as_ref(), &issued)?;
//! # Ok(())
//! # }
//! ```
//!
//! A Rust Lambda function calling a signer deployed behind a Function URL
//! with IAM auth signs with its role's credentials (the `sigv4` feature):
//!
//! ```no_run
//! # #[cfg(feature = "sigv4")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use session_ca_client::sigv4::{AwsService, AwsSigV4};
//! use session_ca_client::{CachedCertificate, CertificateRequest, SignerClient};
//!
//! let sigv4 = AwsSigV4::from_environment(None, AwsService::Lambda).await?;
//! let signer = SignerClient::new("https://abc.lambda-url.eu-west-1.on.aws", None)?
//!     .with_aws_sigv4(sigv4);
//! let certificate = CachedCertificate::new(signer, CertificateRequest::default());
//! let identity = reqwest::Identity::from_pem(
//!     certificate.get().await?.identity_pem().unwrap_or_default().as_bytes(),
//! )?;
//! # Ok(())
//! # }
//! ```
//!
//! # Crypto library
//!
//! As in the service, a build links exactly one crypto library, chosen by
//! feature: `ring` (the default), `aws-lc` (aws-lc-rs; build with
//! `--no-default-features --features aws-lc`) or `fips` (aws-lc-rs on the
//! AWS-LC FIPS module, with rustls's FIPS provider). TLS goes through
//! rustls on that library, installed as the process default by
//! [`install_rustls_provider`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod credentials;
mod crypto;
mod error_text;
pub mod files;
pub mod hmac;
pub mod idempotency;
mod retry;
mod signer;
#[cfg(feature = "sigv4")]
pub mod sigv4;
mod wire;

pub use cache::CachedCertificate;
pub use credentials::{write_pem_files, write_pkcs12_file, CERT_FILE, CHAIN_FILE, KEY_FILE};
pub use crypto::install_rustls_provider;
pub use retry::RetryPolicy;
pub use signer::{ClientError, IssueOutcome, SignerClient, CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use wire::{
    CaHealth, CertificateRequest, Claims, ErrorBody, ErrorDetail, Health, IssuePlan, IssueResponse,
    Pkcs12Body, PlannedClaim,
};
