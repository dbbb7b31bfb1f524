//! How a CA is configured: where its material comes from (`cas.NAME.source`,
//! spelled `file:DIR` or `ssm:/PREFIX`) and how often it is reloaded. A new
//! CA source is a variant here, its parsing in [`CaSourceSpec::parse`], and
//! its [`super::CaSource`] in its own file of this module.

use std::path::PathBuf;
use std::time::Duration;

/// Where a CA's key and certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSourceSpec {
    /// A directory holding `ca-key.pem`, `ca-cert.pem` and optionally `chain.pem`.
    File(PathBuf),
    /// AWS Systems Manager Parameter Store: `PREFIX/key` (SecureString),
    /// `PREFIX/cert` and `PREFIX/chain`.
    Ssm(String),
}

impl CaSourceSpec {
    /// Parses a `source` setting; the error says what is allowed.
    pub fn parse(text: &str) -> Result<CaSourceSpec, String> {
        match text.split_once(':') {
            Some(("file", dir)) if !dir.is_empty() => Ok(CaSourceSpec::File(PathBuf::from(dir))),
            Some(("ssm", prefix)) => {
                let valid = prefix.len() > 1
                    && prefix.len() <= 1000
                    && prefix.starts_with('/')
                    && !prefix.ends_with('/')
                    && !prefix.contains("//")
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
                if !valid {
                    return Err(format!(
                        "invalid Parameter Store prefix {prefix:?}; write e.g. \
                         \"ssm:/session-ca/prod\" (a path of letters, digits, '_', '.', \
                         '-' and '/', starting with '/', no trailing '/')"
                    ));
                }
                Ok(CaSourceSpec::Ssm(prefix.to_owned()))
            }
            _ => Err(format!(
                "unsupported CA source {text:?}; write \"file:DIR\" (a directory made by \
                 `session-ca init`) or \"ssm:/PREFIX\" (Parameter Store)"
            )),
        }
    }
}

/// A configured CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// Its name, referred to by profiles.
    pub name: String,
    /// Where its material comes from.
    pub source: CaSourceSpec,
    /// How often the material is reloaded.
    pub refresh: Duration,
}
