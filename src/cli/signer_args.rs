//! The options every command that calls a signer shares: its URL, the
//! extra roots for HTTPS, and how to authenticate (HMAC or AWS SigV4).
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use session_ca_client::SignerClient;

#[derive(Debug, Args)]
pub(super) struct SignerArgs {
    /// The signer's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "SESSION_CA_URL")]
    url: String,
    /// Extra CA certificates (PEM) to trust for an https:// signer URL.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Sign the request with this HMAC key id (for a signer with auth "hmac").
    #[arg(long, value_name = "ID", env = "SESSION_CA_HMAC_KEY_ID")]
    hmac_key_id: Option<String>,
    /// Read the HMAC secret from this file (default: the environment variable SESSION_CA_HMAC_SECRET).
    #[arg(long, value_name = "FILE", requires = "hmac_key_id")]
    hmac_secret_file: Option<PathBuf>,
    /// Sign the request with AWS SigV4 (a signer behind a Function URL or API Gateway with IAM auth), with credentials from the AWS SDK's default chain (environment, ~/.aws profile, web identity, ECS or EC2 metadata).
    #[arg(long, conflicts_with = "hmac_key_id")]
    aws_sigv4: bool,
    /// The region of the signer's endpoint for SigV4 (default: AWS_REGION or the profile's region).
    #[arg(long, value_name = "REGION", requires = "aws_sigv4")]
    aws_region: Option<String>,
    /// The service of the signer's endpoint for SigV4: lambda (a Function URL) or execute-api (API Gateway).
    #[arg(
        long,
        value_name = "SERVICE",
        default_value = "lambda",
        requires = "aws_sigv4"
    )]
    aws_service: session_ca_client::sigv4::AwsService,
}

impl SignerArgs {
    /// The client these options describe.
    pub(super) async fn client(&self) -> Result<SignerClient> {
        let extra_roots = match &self.cacert {
            Some(path) => Some(
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            ),
            None => None,
        };
        let mut signer = SignerClient::new(&self.url, extra_roots.as_deref())?;
        if let Some(key_id) = &self.hmac_key_id {
            let secret = match &self.hmac_secret_file {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read the HMAC secret {}", path.display()))?,
            None => std::env::var("SESSION_CA_HMAC_SECRET")
                .map(String::into_bytes)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "--hmac-key-id needs the secret: set SESSION_CA_HMAC_SECRET or pass --hmac-secret-file"
                    )
                })?,
        };
            let secret = session_ca_client::hmac::Secret::new(
                session_ca_client::hmac::trim_line_end(&secret),
            )?;
            signer = signer.with_hmac(key_id, secret);
        }
        if self.aws_sigv4 {
            let sigv4 = session_ca_client::sigv4::AwsSigV4::from_environment(
                self.aws_region.clone(),
                self.aws_service,
            )
            .await?;
            signer = signer.with_aws_sigv4(sigv4);
        }
        Ok(signer)
    }
}
