//! `session-ca init`: create a CA in a directory.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use session_ca::{create_ca, Clock, InitOptions, KeyType, SystemClock, DEFAULT_CA_SUBJECT};

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
    #[arg(long)]
    intermediate: bool,
    /// Replace an existing CA in the directory.
    #[arg(long)]
    force: bool,
}

pub(super) fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: session_ca::KeyError| e.to_string())
}

pub(super) fn init(args: InitArgs) -> Result<()> {
    let options = InitOptions {
        dir: args.dir,
        key_type: args.key_type,
        subject: args.subject,
        validity_days: args.validity_days,
        intermediate: args.intermediate,
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
