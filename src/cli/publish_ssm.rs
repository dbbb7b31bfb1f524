//! `session-ca publish-ssm`: upload a CA directory to Parameter Store.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use session_ca::{Clock, SsmSettings, SystemClock};

#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    /// Parameter name prefix, e.g. /session-ca/prod (writes PREFIX/key, /cert, /chain).
    #[arg(long)]
    prefix: String,
    /// KMS key (id, ARN or alias) for the SecureString key; default: alias/aws/ssm.
    #[arg(long)]
    kms_key_id: Option<String>,
    /// Replace an existing CA under the prefix.
    #[arg(long)]
    overwrite: bool,
    /// Directory holding the CA (as written by `init`).
    #[arg(long, default_value = "signer-key")]
    dir: PathBuf,
    /// AWS region (default: from the AWS environment).
    #[arg(long)]
    region: Option<String>,
    /// SSM endpoint override (default: from the AWS environment, e.g. AWS_ENDPOINT_URL_SSM).
    #[arg(long)]
    endpoint_url: Option<String>,
}

pub(super) async fn publish_ssm(args: PublishArgs) -> Result<()> {
    let source = session_ca::FileCaSource::new(args.dir.clone());
    let material = session_ca::CaSource::load(&source).await?;
    // Check it exactly as the signer will before anything leaves this machine.
    session_ca::SigningCa::from_material("publish", &material, SystemClock.now())?;
    let client = session_ca::ssm_client(&SsmSettings {
        endpoint_url: args.endpoint_url,
        region: args.region,
        static_credentials: None,
    })
    .await;
    let written = session_ca::publish_ssm(
        &client,
        &args.prefix,
        &material,
        args.kms_key_id.as_deref(),
        args.overwrite,
    )
    .await?;
    for name in written {
        println!("wrote {name}");
    }
    println!(
        "configure the signer with SESSION_CA_CAS__DEFAULT__SOURCE=ssm:{}",
        args.prefix
    );
    Ok(())
}
