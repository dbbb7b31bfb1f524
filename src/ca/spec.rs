//! How a CA is configured: where its material comes from (`cas.NAME.source`,
//! spelled `file:DIR`, `ssm:/PREFIX` or `kms:KEY` with `chain`) and how
//! often it is reloaded. A new CA source is a variant here, its parsing in
//! [`CaSourceSpec::parse`], and its [`super::CaSource`] in its own file of
//! this module.

use std::path::PathBuf;
use std::time::Duration;

use super::kms::{ChainSpec, KmsMode};

/// The shortest delegation period (`cas.NAME.delegate`).
pub const MIN_DELEGATION: Duration = Duration::from_secs(15 * 60);
/// The longest delegation period.
pub const MAX_DELEGATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where a CA's key and certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSourceSpec {
    /// A directory holding `ca-key.pem`, `ca-cert.pem` and optionally `chain.pem`.
    File(PathBuf),
    /// AWS Systems Manager Parameter Store: `PREFIX/key` (SecureString),
    /// `PREFIX/cert` and `PREFIX/chain`.
    Ssm(String),
    /// An asymmetric key in AWS KMS (key id, ARN or `alias/...`), with the
    /// CA certificate and chain read from `chain`.
    Kms {
        /// The key id, ARN or alias.
        key_id: String,
        /// Where the CA certificate and chain are.
        chain: ChainSpec,
        /// Direct or delegated signing.
        mode: KmsMode,
    },
}

impl CaSourceSpec {
    /// Parses a CA's `source`, `chain` and `delegate` settings; the error
    /// names the setting (`source`, `chain` or `delegate`) and says what is
    /// allowed.
    pub fn parse_ca(
        source: &str,
        chain: Option<&str>,
        delegate: Option<Duration>,
    ) -> Result<CaSourceSpec, (&'static str, String)> {
        let Some(key_id) = source.strip_prefix("kms:") else {
            if chain.is_some() {
                return Err((
                    "chain",
                    "only a \"kms:KEY\" source takes a chain setting (file and Parameter Store \
                     sources hold their own chain)"
                        .into(),
                ));
            }
            if delegate.is_some() {
                return Err(("delegate", "only a \"kms:KEY\" source delegates".into()));
            }
            return Self::parse(source).map_err(|m| ("source", m));
        };
        let key_valid = !key_id.is_empty()
            && key_id.len() <= 2048
            && key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-:".contains(&b));
        if !key_valid {
            return Err((
                "source",
                format!(
                    "invalid KMS key {key_id:?}; write the key id, its ARN or \"alias/NAME\", \
                     e.g. \"kms:alias/session-ca\""
                ),
            ));
        }
        let chain = match chain {
            None => {
                return Err((
                    "chain",
                    "required with a \"kms:KEY\" source: where the CA certificate and chain \
                     are, \"ssm:/PREFIX\" (PREFIX/cert and PREFIX/chain) or \"file:DIR\" \
                     (DIR/ca-cert.pem and DIR/chain.pem)"
                        .into(),
                ))
            }
            Some(text) => match Self::parse(text).map_err(|m| ("chain", m))? {
                CaSourceSpec::File(dir) => ChainSpec::File(dir),
                CaSourceSpec::Ssm(prefix) => ChainSpec::Ssm(prefix),
                CaSourceSpec::Kms { .. } => unreachable!("parse does not read kms:"),
            },
        };
        let mode = match delegate {
            None => KmsMode::Direct,
            Some(period) if (MIN_DELEGATION..=MAX_DELEGATION).contains(&period) => {
                KmsMode::Delegated(period)
            }
            Some(_) => {
                return Err((
                    "delegate",
                    "must be between 15m and 7d (the life of each delegated issuing CA)".into(),
                ))
            }
        };
        Ok(CaSourceSpec::Kms {
            key_id: key_id.to_owned(),
            chain,
            mode,
        })
    }

    /// Who holds the key and how it signs, in words (`inspect`, logs).
    pub fn describe_holder(&self) -> String {
        let chain = |chain: &ChainSpec| match chain {
            ChainSpec::File(dir) => format!("file:{}", dir.display()),
            ChainSpec::Ssm(prefix) => format!("ssm:{prefix}"),
        };
        match self {
            CaSourceSpec::File(dir) => {
                format!(
                    "key in this process's memory, read from file:{}",
                    dir.display()
                )
            }
            CaSourceSpec::Ssm(prefix) => {
                format!("key in this process's memory, read from Parameter Store ssm:{prefix}/key")
            }
            CaSourceSpec::Kms {
                key_id,
                chain: certificates,
                mode: KmsMode::Direct,
            } => format!(
                "key in AWS KMS kms:{key_id}, direct mode (one KMS Sign per certificate); \
                 certificates from {}",
                chain(certificates)
            ),
            CaSourceSpec::Kms {
                key_id,
                chain: certificates,
                mode: KmsMode::Delegated(period),
            } => format!(
                "key in AWS KMS kms:{key_id}, delegated mode (KMS certifies an in-memory \
                 issuing CA for {} at a time); certificates from {}",
                humantime::format_duration(*period),
                chain(certificates)
            ),
        }
    }

    /// Parses a `file:DIR` or `ssm:/PREFIX` setting; the error says what is allowed.
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
                 `session-ca init`), \"ssm:/PREFIX\" (Parameter Store) or \"kms:KEY\" (a KMS \
                 signing key, with chain = ...)"
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
