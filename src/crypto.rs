//! The build's one crypto library: ring (the default) or aws-lc-rs (the
//! `aws-lc` feature, built with `--no-default-features --features aws-lc`).
//!
//! Everything in the crate that hashes, signs, generates keys or random
//! bytes, or speaks TLS goes through this module, so a build links exactly
//! one of the two. aws-lc-rs mirrors ring's API for what is used here
//! (`digest`, `hmac`, `rand`, `signature`); it also generates RSA keys,
//! which ring cannot.

#[cfg(all(feature = "ring", feature = "aws-lc"))]
compile_error!(
    "features `ring` and `aws-lc` both select the crypto library; \
     build with `--no-default-features --features aws-lc` for aws-lc-rs"
);
#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!("no crypto library: enable the `ring` (default) or the `aws-lc` feature");

use std::sync::Arc;

#[cfg(feature = "aws-lc")]
pub use aws_lc_rs::{digest, hmac, rand, signature};
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub use ring::{digest, hmac, rand, signature};

/// The crypto library of this build, as `--version` and the start-up log name it.
#[cfg(feature = "aws-lc")]
pub const LIBRARY: &str = "aws-lc-rs";
/// The crypto library of this build, as `--version` and the start-up log name it.
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub const LIBRARY: &str = "ring";

/// rustls on this build's crypto library.
pub fn rustls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(provider())
}

fn provider() -> rustls::crypto::CryptoProvider {
    #[cfg(feature = "aws-lc")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let provider = rustls::crypto::ring::default_provider();
    provider
}

/// Makes [`rustls_provider`] the process default, for TLS clients (reqwest)
/// that take the default instead of a provider of their own. Calling it
/// again, or after another part of the program did, changes nothing.
pub fn install_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = provider().install_default();
    }
}

/// The TLS mode of the AWS SDK's HTTPS client on this build's library.
pub(crate) fn smithy_crypto_mode() -> aws_smithy_http_client::tls::rustls_provider::CryptoMode {
    use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
    #[cfg(feature = "aws-lc")]
    let mode = CryptoMode::AwsLc;
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let mode = CryptoMode::Ring;
    mode
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_sha256() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256(b"abc").as_ref()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "{LIBRARY}"
        );
    }

    #[test]
    fn the_process_default_is_this_builds_provider() {
        install_rustls_provider();
        install_rustls_provider();
        let default = rustls::crypto::CryptoProvider::get_default().expect("installed");
        let ours = rustls_provider();
        assert_eq!(
            format!("{:?}", default.key_provider),
            format!("{:?}", ours.key_provider)
        );
    }
}
