//! The build's one crypto library: ring (the default) or aws-lc-rs (the
//! `aws-lc` feature, built with `--no-default-features --features aws-lc`;
//! `fips` puts it on the AWS-LC FIPS module).
//!
//! rustls-webpki checks certificate paths on the same library (the features
//! select its `ring` or `aws-lc-rs` algorithms); this module gives the rest
//! of the crate its hash.

#[cfg(all(feature = "ring", feature = "aws-lc"))]
compile_error!(
    "features `ring` and `aws-lc` both select the crypto library; \
     build with `--no-default-features --features aws-lc` for aws-lc-rs"
);
#[cfg(not(any(feature = "ring", feature = "aws-lc")))]
compile_error!("no crypto library: enable the `ring` (default) or the `aws-lc` feature");

#[cfg(feature = "aws-lc")]
use aws_lc_rs::digest;
#[cfg(all(feature = "ring", not(feature = "aws-lc")))]
use ring::digest;

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, data);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_sha256() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(sha256(b"abc")[..4], [0xba, 0x78, 0x16, 0xbf]);
    }

    #[cfg(feature = "fips")]
    #[test]
    fn a_fips_build_runs_the_fips_module() {
        assert_eq!(aws_lc_rs::try_fips_mode(), Ok(()));
    }
}
