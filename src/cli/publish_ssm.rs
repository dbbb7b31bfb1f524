//! `session-ca publish-ssm`: upload a CA directory to Parameter Store.
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use session_ca::{Clock, SsmSettings, SystemClock};

#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    /// Parameter name prefix, e.g. /session-ca/prod (writes PREFIX/key, /cert, /chain;
    /// for a CA whose key is in KMS, made by `init --kms-key-id`, only /cert and /chain).
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
    let kms_key_file = args.dir.join(session_ca::KMS_KEY_FILE);
    let kms_key_id = match std::fs::read_to_string(&kms_key_file) {
        Ok(text) => Some(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("cannot read {}: {e}", kms_key_file.display()),
    };
    let material = match &kms_key_id {
        None => {
            let source = session_ca::FileCaSource::new(args.dir.clone());
            session_ca::CaSource::load(&source).await?
        }
        Some(key_id) => {
            // A KMS-backed CA: only its certificates are published.
            let key_file = args.dir.join(session_ca::CA_KEY_FILE);
            if key_file.exists() {
                bail!(
                    "{} holds a private key beside {}: a KMS-backed CA keeps no key on disk, \
                     and publish-ssm will not upload one for it; remove the key file",
                    key_file.display(),
                    kms_key_file.display()
                );
            }
            let source = session_ca::FileCaSource::certificates(args.dir.clone());
            let mut material = session_ca::CaSource::load(&source).await?;
            let key = session_ca::KmsKey::load(
                session_ca::kms_client(&session_ca::SsmSettings::default()).await,
                key_id,
            )
            .await?;
            material.key = session_ca::KeyMaterial::Kms {
                key: std::sync::Arc::new(key),
                mode: session_ca::KmsMode::Direct,
            };
            material.key_origin = format!("kms:{key_id}");
            material
        }
    };
    // Check it exactly as the signer will before anything leaves this machine.
    session_ca::SigningCa::from_material("publish", &material, SystemClock.now()).await?;
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
    match kms_key_id {
        None => println!(
            "configure the signer with SESSION_CA_CAS__DEFAULT__SOURCE=ssm:{}",
            args.prefix
        ),
        Some(key_id) => println!(
            "configure the signer with SESSION_CA_CAS__DEFAULT__SOURCE=kms:{key_id} and \
             SESSION_CA_CAS__DEFAULT__CHAIN=ssm:{}",
            args.prefix
        ),
    }
    Ok(())
}
