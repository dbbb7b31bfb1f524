//! A CA kept in AWS Systems Manager Parameter Store: `PREFIX/key`
//! (SecureString, PKCS#8 PEM), `PREFIX/cert` and `PREFIX/chain` (String, PEM).
//!
//! All three are read in one `GetParameters` call with decryption, so SSM
//! sees one call per cold start and per refresh interval. The SDK's HTTPS
//! client is rustls on the build's one crypto library ([`crate::crypto`]).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssm::error::DisplayErrorContext;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_sdk_ssm::Client;

use super::{BoxFuture, CaError, CaMaterial, CaSource, KeyMaterial};
use crate::keys::SecretPem;

/// Per-attempt timeout of an SSM call: far below a Lambda timeout of seconds.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of one SSM operation, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts per operation (standard retry mode: exponential backoff with jitter,
/// throttling errors retried).
pub const MAX_ATTEMPTS: u32 = 3;

/// How to reach SSM (and KMS). Everything not set comes from the standard
/// AWS environment (`AWS_REGION`, credentials chain, `AWS_ENDPOINT_URL_SSM`,
/// `AWS_ENDPOINT_URL_KMS`).
#[derive(Clone, Default)]
pub struct SsmSettings {
    /// Endpoint override (an emulator in tests).
    pub endpoint_url: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Static credentials (access key id, secret), for tests against an emulator.
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for SsmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsmSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|_| "[elided]"),
            )
            .finish()
    }
}

/// Builds an SSM client with explicit timeouts and retries, on rustls and the build's crypto library.
pub async fn client(settings: &SsmSettings) -> Client {
    Client::new(&sdk_config(settings).await)
}

/// The AWS SDK configuration of the signer's clients (SSM and KMS): the
/// timeouts and retries above, rustls on the build's crypto library, and
/// `settings`' overrides (the same endpoint serves both in tests, where it
/// is one emulator).
pub async fn sdk_config(settings: &SsmSettings) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(session_ca_client::sigv4::https_client())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &settings.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some((id, secret)) = &settings.static_credentials {
        loader = loader.credentials_provider(aws_sdk_ssm::config::Credentials::new(
            id,
            secret,
            None,
            None,
            "session-ca-static",
        ));
    }
    loader.load().await
}

/// The parameter names of a CA under `prefix`: (key, cert, chain).
pub fn parameter_names(prefix: &str) -> (String, String, String) {
    (
        format!("{prefix}/key"),
        format!("{prefix}/cert"),
        format!("{prefix}/chain"),
    )
}

/// Reads a CA from Parameter Store.
#[derive(Debug, Clone)]
pub struct SsmCaSource {
    client: Client,
    prefix: String,
    with_key: bool,
}

impl SsmCaSource {
    /// A source reading the key, certificate and chain under `prefix` with `client`.
    pub fn new(client: Client, prefix: String) -> Self {
        SsmCaSource {
            client,
            prefix,
            with_key: true,
        }
    }

    /// A source reading only `PREFIX/cert` and `PREFIX/chain` (the CA key
    /// is held in KMS; Parameter Store holds no key parameter).
    pub fn certificates(client: Client, prefix: String) -> Self {
        SsmCaSource {
            client,
            prefix,
            with_key: false,
        }
    }

    async fn load_now(&self) -> Result<CaMaterial, CaError> {
        let (key, cert, chain) = parameter_names(&self.prefix);
        let mut names = vec![cert, chain];
        if self.with_key {
            names.push(key);
        }
        let output = self
            .client
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(self.with_key)
            .send()
            .await
            .map_err(|e| CaError::Unreadable {
                origin: format!("ssm:{}", self.prefix),
                reason: format!("GetParameters failed: {}", DisplayErrorContext(&e)),
            })?;
        material_from_parameters(
            &self.prefix,
            output.parameters(),
            output.invalid_parameters(),
            self.with_key,
        )
    }
}

impl CaSource for SsmCaSource {
    fn describe(&self) -> String {
        format!("ssm:{}", self.prefix)
    }

    fn load(&self) -> BoxFuture<'_, Result<CaMaterial, CaError>> {
        Box::pin(self.load_now())
    }
}

/// Checks a `GetParameters` result and turns it into CA material: every
/// parameter present, the key (when `with_key`) a decrypted SecureString,
/// the certificates Strings.
pub fn material_from_parameters(
    prefix: &str,
    parameters: &[Parameter],
    invalid: &[String],
    with_key: bool,
) -> Result<CaMaterial, CaError> {
    let (key_name, cert_name, chain_name) = parameter_names(prefix);
    if let Some(missing) = invalid.first() {
        return Err(CaError::Unreadable {
            origin: format!("ssm:{missing}"),
            reason: "no such parameter; upload the CA with `session-ca publish-ssm`".into(),
        });
    }
    let find = |name: &str, want: ParameterType| -> Result<String, CaError> {
        let origin = format!("ssm:{name}");
        let parameter = parameters
            .iter()
            .find(|p| p.name() == Some(name))
            .ok_or_else(|| CaError::Unreadable {
                origin: origin.clone(),
                reason: "not returned by GetParameters".into(),
            })?;
        match parameter.r#type() {
            Some(t) if *t == want => {}
            other => {
                return Err(CaError::Invalid {
                    origin,
                    reason: format!(
                        "is of type {}, expected {}",
                        other.map_or("(none)", |t| t.as_str()),
                        want.as_str()
                    ),
                })
            }
        }
        parameter
            .value()
            .map(str::to_owned)
            .ok_or_else(|| CaError::Unreadable {
                origin,
                reason: "has no value".into(),
            })
    };
    let key = if with_key {
        let key = find(&key_name, ParameterType::SecureString)?;
        if !key.trim_start().starts_with("-----BEGIN") {
            return Err(CaError::Invalid {
                origin: format!("ssm:{key_name}"),
                reason: "the value is not PEM: it was not decrypted (check kms:Decrypt on the \
                         parameter's KMS key and that it is read WithDecryption)"
                    .into(),
            });
        }
        KeyMaterial::Pem(SecretPem::new(key))
    } else {
        KeyMaterial::None
    };
    let cert_pem = find(&cert_name, ParameterType::String)?;
    let chain_pem = find(&chain_name, ParameterType::String)?;
    Ok(CaMaterial {
        key,
        key_origin: format!("ssm:{key_name}"),
        cert_pem,
        cert_origin: format!("ssm:{cert_name}"),
        chain_pem: Some(chain_pem),
        chain_origin: format!("ssm:{chain_name}"),
    })
}

/// Uploads a CA to Parameter Store: the key as a SecureString (with
/// `kms_key_id`, else the account's `alias/aws/ssm`), the certificate and
/// chain as Strings. Refuses to replace an existing CA unless `overwrite`.
/// A CA whose key is in KMS publishes only its certificate and chain, and
/// is refused while a key parameter exists under the prefix.
pub async fn publish(
    client: &Client,
    prefix: &str,
    material: &CaMaterial,
    kms_key_id: Option<&str>,
    overwrite: bool,
) -> Result<Vec<String>, CaError> {
    let (key, cert, chain) = parameter_names(prefix);
    let origin = format!("ssm:{prefix}");
    let sdk_err = |what: &str, e: &dyn std::fmt::Display| CaError::Unreadable {
        origin: origin.clone(),
        reason: format!("{what} failed: {e}"),
    };
    let with_key = matches!(material.key, KeyMaterial::Pem(_));
    if !overwrite || !with_key {
        let existing = client
            .get_parameters()
            .names(&key)
            .names(&cert)
            .names(&chain)
            .send()
            .await
            .map_err(|e| sdk_err("GetParameters", &DisplayErrorContext(&e)))?;
        let mut names: Vec<&str> = existing
            .parameters()
            .iter()
            .filter_map(|p| p.name())
            .collect();
        names.sort_unstable();
        if !with_key && names.contains(&key.as_str()) {
            // A key left in Parameter Store beside a KMS-backed CA's
            // certificates would undo the point of keeping it in KMS.
            return Err(CaError::Invalid {
                origin: format!("ssm:{key}"),
                reason: "exists, but this CA's key is held in KMS: Parameter Store must hold no \
                         key for it; delete the parameter (aws ssm delete-parameter --name ...) \
                         and publish again"
                    .into(),
            });
        }
        if !overwrite && !names.is_empty() {
            return Err(CaError::AlreadyPublished(names.join(", ")));
        }
    }
    if !with_key && kms_key_id.is_some() {
        return Err(CaError::Invalid {
            origin: origin.clone(),
            reason: "--kms-key-id encrypts a key parameter, and this CA's key is held in KMS: \
                     only its certificates are published"
                .into(),
        });
    }
    if overwrite && with_key && kms_key_id.is_none() {
        // Replacing a key encrypted with a customer key must not silently
        // fall back to alias/aws/ssm (and widen who can decrypt it).
        let described = client
            .describe_parameters()
            .parameter_filters(
                aws_sdk_ssm::types::ParameterStringFilter::builder()
                    .key("Name")
                    .option("Equals")
                    .values(&key)
                    .build()
                    .map_err(|e| sdk_err("DescribeParameters", &e))?,
            )
            .send()
            .await
            .map_err(|e| sdk_err("DescribeParameters", &DisplayErrorContext(&e)))?;
        if let Some(existing) = described
            .parameters()
            .iter()
            .filter_map(|p| p.key_id())
            .find(|id| *id != "alias/aws/ssm")
        {
            return Err(CaError::Invalid {
                origin: format!("ssm:{key}"),
                reason: format!(
                    "is encrypted with the KMS key {existing}; pass --kms-key-id to choose the \
                     key for the replacement (without it the new key would be encrypted with \
                     alias/aws/ssm)"
                ),
            });
        }
    }
    let chain_pem = material
        .chain_pem
        .clone()
        .unwrap_or_else(|| material.cert_pem.clone());
    if let KeyMaterial::Pem(key_pem) = &material.key {
        let mut put_key = client
            .put_parameter()
            .name(&key)
            .value(key_pem.expose())
            .r#type(ParameterType::SecureString)
            .description("session-ca issuing CA private key (PKCS#8 PEM)")
            .overwrite(overwrite);
        if let Some(kms) = kms_key_id {
            put_key = put_key.key_id(kms);
        }
        put_key
            .send()
            .await
            .map_err(|e| sdk_err(&format!("PutParameter {key}"), &DisplayErrorContext(&e)))?;
    }
    for (name, value, description) in [
        (
            &cert,
            &material.cert_pem,
            "session-ca issuing CA certificate (PEM)",
        ),
        (
            &chain,
            &chain_pem,
            "session-ca CA chain, issuing CA first (PEM)",
        ),
    ] {
        client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .description(description)
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|e| {
                sdk_err(
                    &format!(
                        "PutParameter {name} (the key is already replaced, so the CA under \
                         {prefix} is incomplete until this succeeds; rerun with --overwrite)"
                    ),
                    &DisplayErrorContext(&e),
                )
            })?;
    }
    Ok(if with_key {
        vec![key, cert, chain]
    } else {
        vec![cert, chain]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, t: ParameterType, value: &str) -> Parameter {
        Parameter::builder()
            .name(name)
            .r#type(t)
            .value(value)
            .build()
    }

    #[test]
    fn parameter_results_are_checked() {
        let ok_key = "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n";
        let good = vec![
            param("/p/key", ParameterType::SecureString, ok_key),
            param("/p/cert", ParameterType::String, "CERT"),
            param("/p/chain", ParameterType::String, "CHAIN"),
        ];
        let m = material_from_parameters("/p", &good, &[], true).unwrap();
        assert_eq!(m.cert_pem, "CERT");
        assert_eq!(m.key_origin, "ssm:/p/key");
        assert!(!format!("{m:?}").contains("PRIVATE"));

        let err = material_from_parameters("/p", &good[1..], &["/p/key".into()], true).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ssm:/p/key: cannot read: no such parameter"),
            "{err}"
        );

        let mut plain_key = good.clone();
        plain_key[0] = param("/p/key", ParameterType::String, ok_key);
        let err = material_from_parameters("/p", &plain_key, &[], true).unwrap_err();
        assert!(
            err.to_string()
                .contains("is of type String, expected SecureString"),
            "{err}"
        );

        let mut encrypted = good.clone();
        encrypted[0] = param("/p/key", ParameterType::SecureString, "AQICAHh...base64");
        let err = material_from_parameters("/p", &encrypted, &[], true).unwrap_err();
        assert!(err.to_string().contains("not decrypted"), "{err}");
        assert!(
            !err.to_string().contains("AQICAHh"),
            "the value is never echoed"
        );

        let mut list = good.clone();
        list[2] = param("/p/chain", ParameterType::StringList, "a,b");
        let err = material_from_parameters("/p", &list, &[], true).unwrap_err();
        assert!(
            err.to_string()
                .contains("ssm:/p/chain: is of type StringList"),
            "{err}"
        );
    }
}
