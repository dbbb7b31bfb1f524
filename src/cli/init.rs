//! `session-ca init`: create a CA in a directory.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use session_ca::{
    create_ca, create_kms_ca, Clock, InitOptions, KeyType, KmsInitOptions, SystemClock,
    DEFAULT_CA_SUBJECT,
};

use super::rfc3339;

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// Directory to write the CA into.
    #[arg(long, default_value = "signer-key")]
    dir: PathBuf,
    /// Key type of the CA key(s).
    #[arg(long, default_value = "ecdsa-p256", value_parser = parse_key_type)]
    key_type: KeyType,
    /// Subject as "CN=...,O=..." (attributes CN, C, ST, L, O, OU).
    #[arg(long, default_value = DEFAULT_CA_SUBJECT)]
    subject: String,
    /// Lifetime of the CA certificate(s) in days.
    #[arg(long, default_value_t = 3650)]
    validity_days: u32,
    /// Create a root and an intermediate; the intermediate signs.
    #[arg(long, conflicts_with = "kms_key_id")]
    intermediate: bool,
    /// The pathLenConstraint of a single-level CA: 0 (it signs only leaves),
    /// or 2 for a root that will sign a KMS CA which delegates.
    #[arg(long, default_value_t = 0, conflicts_with_all = ["intermediate", "kms_key_id"])]
    path_len: u8,
    /// Make the CA certificate of this AWS KMS signing key (id, ARN or
    /// alias/...) instead of a key on disk: the directory gets ca-cert.pem,
    /// chain.pem and kms-key-id, never a private key. KMS self-signs it as a
    /// root unless --issuer-dir is given.
    #[arg(long, value_name = "KEY", conflicts_with = "key_type")]
    kms_key_id: Option<String>,
    /// With --kms-key-id: a CA directory (made by `init`) whose root signs
    /// the KMS CA as an intermediate.
    #[arg(long, value_name = "ROOT_DIR", requires = "kms_key_id")]
    issuer_dir: Option<PathBuf>,
    /// Replace an existing CA in the directory.
    #[arg(long)]
    force: bool,
}

pub(super) fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: session_ca::KeyError| e.to_string())
}

pub(super) fn init(args: InitArgs) -> Result<()> {
    if let Some(key_id) = args.kms_key_id {
        let options = KmsInitOptions {
            dir: args.dir,
            key_id,
            subject: args.subject,
            validity_days: args.validity_days,
            issuer_dir: args.issuer_dir,
            force: args.force,
        };
        let created = super::runtime()?.block_on(async {
            let client = session_ca::kms_client(&session_ca::SsmSettings::default()).await;
            create_kms_ca(client, &options, SystemClock.now()).await
        })?;
        for file in &created.files {
            println!("wrote {}", file.display());
        }
        println!(
            "CA valid until {}; its key stays in KMS ({})",
            rfc3339(created.not_after),
            options.key_id
        );
        return Ok(());
    }
    let options = InitOptions {
        dir: args.dir,
        key_type: args.key_type,
        subject: args.subject,
        validity_days: args.validity_days,
        intermediate: args.intermediate,
        path_len: args.path_len,
        force: args.force,
    };
    let created = create_ca(&options, SystemClock.now())?;
    for file in &created.files {
        println!("wrote {}", file.display());
    }
    println!("CA valid until {}", rfc3339(created.not_after));
    if options.intermediate {
        println!(
            "the root key ({}) is not needed to sign; move it offline",
            options.dir.join(session_ca::ROOT_KEY_FILE).display()
        );
    }
    Ok(())
}
