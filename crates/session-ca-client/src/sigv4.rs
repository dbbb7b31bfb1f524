//! AWS Signature Version 4 for a signer behind IAM auth: a Lambda Function
//! URL (`AuthType: AWS_IAM`, service `lambda`) or API Gateway with IAM
//! authorization (service `execute-api`).
//!
//! The signature is computed by AWS's own `aws-sigv4` crate over the
//! method, the URL, the `Content-Type` and `Host` headers and the body;
//! the request then carries `Authorization`, `X-Amz-Date`,
//! `X-Amz-Content-Sha256` and, with temporary credentials,
//! `X-Amz-Security-Token`.
//!
//! Credentials come from [`AwsSigV4::from_environment`] (the AWS SDK's
//! default chain: the environment variables a Lambda function runs with,
//! `~/.aws` profiles, web identity, ECS and EC2 instance metadata) or are
//! given explicitly with [`AwsSigV4::new`]. Temporary credentials are
//! cached by the provider and refreshed before they expire.
//!
//! Available with the `sigv4` feature.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
pub use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::error_text::error_chain;

/// How long the credential chain may take to answer (instance metadata included).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);

/// The AWS service whose IAM authorization fronts the signer: the signing
/// name in the credential scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    /// A Lambda Function URL with `AuthType: AWS_IAM` (signing name `lambda`).
    Lambda,
    /// API Gateway (REST or HTTP API) with IAM authorization (signing name `execute-api`).
    ExecuteApi,
}

impl AwsService {
    /// The signing name: `lambda` or `execute-api`.
    pub fn signing_name(self) -> &'static str {
        match self {
            AwsService::Lambda => "lambda",
            AwsService::ExecuteApi => "execute-api",
        }
    }
}

impl std::str::FromStr for AwsService {
    type Err = SigV4Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "lambda" => Ok(AwsService::Lambda),
            "execute-api" => Ok(AwsService::ExecuteApi),
            other => Err(SigV4Error::Config(format!(
                "unknown AWS service {other:?}: expected lambda (a Function URL) or execute-api (API Gateway)"
            ))),
        }
    }
}

/// Signs requests with SigV4 for one region and service.
#[derive(Clone)]
pub struct AwsSigV4 {
    credentials: SharedCredentialsProvider,
    region: String,
    service: AwsService,
}

impl fmt::Debug for AwsSigV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The provider's Debug shows no secret, but say nothing of it anyway.
        f.debug_struct("AwsSigV4")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl AwsSigV4 {
    /// Signing with fixed credentials (or any credentials provider, such as
    /// one from `aws-config`) for `region` and `service`.
    pub fn new(
        credentials: impl ProvideCredentials + 'static,
        region: impl Into<String>,
        service: AwsService,
    ) -> AwsSigV4 {
        AwsSigV4 {
            credentials: SharedCredentialsProvider::new(credentials),
            region: region.into(),
            service,
        }
    }

    /// Signing with the AWS SDK's default credential chain, for `region`
    /// or, when `None`, the chain's region (`AWS_REGION`, which Lambda
    /// sets, or the profile's). HTTPS to the metadata and STS endpoints goes
    /// through rustls on this build's crypto library.
    pub async fn from_environment(
        region: Option<String>,
        service: AwsService,
    ) -> Result<AwsSigV4, SigV4Error> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .load()
            .await;
        let region = match region {
            Some(region) => region,
            None => config.region().map(|r| r.to_string()).ok_or_else(|| {
                SigV4Error::Config(
                    "no AWS region: set AWS_REGION or give the region explicitly".into(),
                )
            })?,
        };
        let credentials = config.credentials_provider().ok_or_else(|| {
            SigV4Error::Config("the AWS SDK configuration has no credentials provider".into())
        })?;
        Ok(AwsSigV4 {
            credentials,
            region,
            service,
        })
    }

    /// The region in the credential scope.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The service in the credential scope.
    pub fn service(&self) -> AwsService {
        self.service
    }

    /// The headers that sign a request of `method` to `url` with
    /// `content_type` and `body`, at `time`: `authorization`,
    /// `x-amz-date`, `x-amz-content-sha256` and, for temporary
    /// credentials, `x-amz-security-token`. The request must be sent with
    /// exactly this method, URL, `Content-Type` and body.
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, SigV4Error> {
        let credentials =
            tokio::time::timeout(CREDENTIALS_TIMEOUT, self.credentials.provide_credentials())
                .await
                .map_err(|_| {
                    SigV4Error::Credentials(format!(
                        "the credential chain did not answer within {CREDENTIALS_TIMEOUT:?}"
                    ))
                })?
                .map_err(|e| SigV4Error::Credentials(error_chain(&e)))?;
        self.headers_with(credentials, method, url, content_type, body, time)
    }

    fn headers_with(
        &self,
        credentials: Credentials,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(String, String)>, SigV4Error> {
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| SigV4Error::Signing(e.to_string()))?
            .into();
        let headers = content_type.map(|value| ("content-type", value));
        let request =
            SignableRequest::new(method, url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| SigV4Error::Signing(error_chain(&e)))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| SigV4Error::Signing(error_chain(&e)))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }
}

/// The AWS SDK's HTTPS client on rustls and this build's crypto library
/// (ring, aws-lc-rs or the AWS-LC FIPS module), for SDK clients and
/// credential providers.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    #[cfg(feature = "fips")]
    let mode = CryptoMode::AwsLcFips;
    #[cfg(all(feature = "aws-lc", not(feature = "fips")))]
    let mode = CryptoMode::AwsLc;
    #[cfg(all(feature = "ring", not(feature = "aws-lc")))]
    let mode = CryptoMode::Ring;
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(mode))
        .build_https()
}

/// Why a request could not be signed with SigV4.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    /// The region or service is missing or unknown.
    #[error("{0}")]
    Config(String),
    /// No credentials could be had from the provider.
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    /// The request cannot be signed (an unusable URL or header).
    #[error("cannot sign the request with SigV4: {0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(token: Option<&str>) -> AwsSigV4 {
        AwsSigV4::new(
            Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                token.map(str::to_owned),
                None,
                "test",
            ),
            "eu-west-1",
            AwsService::Lambda,
        )
    }

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn the_headers_name_the_scope_and_sign_the_body() {
        let body = br#"{"transaction_id":"tx-1"}"#;
        let headers = signer(Some("TOKEN"))
            .headers(
                "POST",
                "https://abc.lambda-url.eu-west-1.on.aws/v1/certificates",
                Some("application/json"),
                body,
                at(1_764_590_400), // 2025-12-01T12:00:00Z
            )
            .await
            .unwrap();
        let authorization = header(&headers, "authorization").unwrap();
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251201/eu-west-1/lambda/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
            ),
            "{authorization}"
        );
        assert_eq!(header(&headers, "x-amz-date"), Some("20251201T120000Z"));
        assert_eq!(header(&headers, "x-amz-security-token"), Some("TOKEN"));
        // SHA-256 of the body, as `printf '%s' '{"transaction_id":"tx-1"}' | sha256sum` prints it.
        assert_eq!(
            header(&headers, "x-amz-content-sha256"),
            Some("4a1e8f2a8595744707df14c03500aed5627b6b414dd5b38a34845ffd35ae061a")
        );
    }

    #[tokio::test]
    async fn long_lived_keys_send_no_token_and_another_body_signs_differently() {
        let url = "https://api.example/prod/v1/certificates";
        let one = signer(None)
            .headers("POST", url, None, b"{}", at(1_764_590_400))
            .await
            .unwrap();
        assert_eq!(header(&one, "x-amz-security-token"), None);
        let two = signer(None)
            .headers("POST", url, None, b"{ }", at(1_764_590_400))
            .await
            .unwrap();
        assert_ne!(header(&one, "authorization"), header(&two, "authorization"));
    }

    #[test]
    fn services_parse_by_signing_name() {
        assert_eq!("lambda".parse::<AwsService>().unwrap(), AwsService::Lambda);
        assert_eq!(
            "execute-api".parse::<AwsService>().unwrap().signing_name(),
            "execute-api"
        );
        let err = "s3".parse::<AwsService>().unwrap_err();
        assert!(err.to_string().contains("expected lambda"), "{err}");
    }

    #[test]
    fn debug_shows_no_credentials() {
        let shown = format!("{:?}", signer(Some("TOKEN")));
        assert!(
            !shown.contains("EXAMPLEKEY") && !shown.contains("TOKEN") && !shown.contains("AKID"),
            "{shown}"
        );
    }
}
