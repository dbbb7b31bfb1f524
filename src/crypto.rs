//! The build's one crypto library: ring (the default) or aws-lc-rs (the
//! `aws-lc` feature, built with `--no-default-features --features aws-lc`).
//!
//! Everything in the crate that hashes, signs, generates keys or random
//! bytes, or speaks TLS goes through this module, so a build links exactly
//! one of the two. aws-lc-rs mirrors ring's API for what is used here
//! (`digest`, `hmac`, `rand`, `signature`); it also generates RSA keys,
//! which ring cannot.
//!
//! The `fips` feature (implies `aws-lc`) puts aws-lc-rs on the AWS-LC FIPS
//! module: rustls then uses its FIPS provider, and [`self_check`] refuses
//! to run unless the module reports FIPS mode.

#[cfg(all(feature = "ring", feature = "aws-lc"))]
compile_error!(
    "features `ring` and `aws-lc` both select the crypto library; \
     build with `--no-default-features --features aws-lc` for aws-lc-rs"
);
#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!("no crypto library: enable the `ring` (default) or the `aws-lc` feature");

use std::sync::Arc;

#[cfg(feature = "aws-lc")]
pub use aws_lc_rs::{aead, digest, hkdf, hmac, rand, signature};
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub use ring::{aead, digest, hkdf, hmac, rand, signature};

/// The crypto library of this build, as `--version` and the start-up log name it.
#[cfg(feature = "fips")]
pub const LIBRARY: &str = "aws-lc-rs FIPS";
/// The crypto library of this build, as `--version` and the start-up log name it.
#[cfg(all(feature = "aws-lc", not(feature = "fips")))]
pub const LIBRARY: &str = "aws-lc-rs";
/// The crypto library of this build, as `--version` and the start-up log name it.
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
pub const LIBRARY: &str = "ring";

/// rustls on this build's crypto library.
pub fn rustls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(provider())
}

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

/// Makes [`rustls_provider`] the process default, for TLS clients (reqwest)
/// that take the default instead of a provider of their own. Calling it
/// again, or after another part of the program did, changes nothing.
pub fn install_rustls_provider() {
    // The client crate selects the same library through the same features.
    session_ca_client::install_rustls_provider();
}

/// Checks, before any key is touched, that the build's crypto library is
/// what it claims to be: on `fips` builds, that AWS-LC runs as the FIPS
/// module (its power-on self-tests passed, or the process would have been
/// aborted) and that rustls's provider is FIPS-only. Other builds have
/// nothing to check.
pub fn self_check() -> Result<(), String> {
    #[cfg(feature = "fips")]
    {
        aws_lc_rs::try_fips_mode().map_err(|e| {
            format!("this is a FIPS build, but AWS-LC is not in FIPS mode ({e}); refusing to run")
        })?;
        if !provider().fips() {
            return Err(
                "this is a FIPS build, but the TLS provider is not FIPS-only; refusing to run"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The version of the AWS-LC library linked in (`"4.2.0"`, say; a FIPS
/// build links the FIPS branch), for `--version`; `None` on ring builds.
pub fn aws_lc_version() -> Option<&'static str> {
    #[cfg(feature = "aws-lc")]
    let version = Some(aws_lc_rs::awslc_version());
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let version = None;
    version
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, data)
}

/// SHA-384 of `data` (the digest a P-384 KMS key signs).
pub fn sha384(data: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA384, data)
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
    fn the_self_check_passes() {
        assert_eq!(self_check(), Ok(()));
    }

    #[cfg(feature = "fips")]
    #[test]
    fn a_fips_build_runs_the_fips_module() {
        // The non-FIPS AWS-LC reports FIPS mode off, so this fails if a
        // feature change links aws-lc-sys instead of aws-lc-fips-sys.
        assert_eq!(aws_lc_rs::try_fips_mode(), Ok(()));
        assert!(rustls_provider().fips());
        assert!(aws_lc_rs::fips_version().is_some());
    }

    #[cfg(not(feature = "fips"))]
    #[test]
    fn a_build_without_fips_says_so() {
        assert!(!LIBRARY.contains("FIPS"));
        #[cfg(feature = "aws-lc")]
        assert!(aws_lc_rs::try_fips_mode().is_err());
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
