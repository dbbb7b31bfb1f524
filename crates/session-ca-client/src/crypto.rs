//! The build's one crypto library: ring (the default) or aws-lc-rs (the
//! `aws-lc` feature, built with `--no-default-features --features aws-lc`).
//!
//! Everything in the crate that hashes, computes an HMAC, draws random
//! bytes or speaks TLS goes through this module, so a build links exactly
//! one of the two. aws-lc-rs mirrors ring's API for what is used here
//! (`digest`, `hmac`, `rand`).
//!
//! The `fips` feature (implies `aws-lc`) puts aws-lc-rs on the AWS-LC FIPS
//! module, and rustls on its FIPS provider.

#[cfg(all(feature = "ring", feature = "aws-lc"))]
compile_error!(
    "features `ring` and `aws-lc` both select the crypto library; \
     build with `--no-default-features --features aws-lc` for aws-lc-rs"
);
#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!("no crypto library: enable the `ring` (default) or the `aws-lc` feature");

#[cfg(feature = "aws-lc")]
pub(crate) use aws_lc_rs::{digest, hmac, rand};
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub(crate) use ring::{digest, hmac, rand};

/// rustls on this build's crypto library.
fn provider() -> rustls::crypto::CryptoProvider {
    // Only FIPS-approved suites, key exchanges and signature schemes.
    #[cfg(feature = "fips")]
    let provider = rustls::crypto::default_fips_provider();
    #[cfg(all(feature = "aws-lc", not(feature = "fips")))]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let provider = rustls::crypto::ring::default_provider();
    provider
}

/// Makes rustls on this build's crypto library (ring, aws-lc-rs, or on
/// `fips` builds `rustls::crypto::default_fips_provider()`) the process
/// default [`rustls::crypto::CryptoProvider`].
///
/// reqwest is built here without a provider of its own and takes the
/// process default; [`SignerClient::new`](crate::SignerClient::new) calls
/// this, and so may a program that makes other rustls clients or servers
/// before it. Calling it again, or after another part of the program
/// installed a default, changes nothing.
pub fn install_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing a provider is fine.
        let _ = provider().install_default();
    }
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_sha256() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(sha256(b"abc").as_ref()[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn the_process_default_is_this_builds_provider() {
        install_rustls_provider();
        install_rustls_provider();
        let default = rustls::crypto::CryptoProvider::get_default().expect("installed");
        assert_eq!(
            format!("{:?}", default.key_provider),
            format!("{:?}", provider().key_provider)
        );
        #[cfg(feature = "fips")]
        assert!(default.fips());
    }
}
