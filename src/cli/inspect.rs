//! `session-ca inspect`: decode a certificate and verify it against a chain.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use session_ca::{
    inspect, read_certificate, verify_client_certificate, Clock, Config, ProcessEnv, SystemClock,
};

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// Certificate file (PEM or DER).
    file: PathBuf,
    /// CA certificates (PEM) to verify against, e.g. the chain from GET /v1/ca.
    #[arg(long, value_name = "CHAIN")]
    ca: Option<PathBuf>,
    /// Configuration whose claim names to use (default: as for serve).
    #[arg(long)]
    config: Option<PathBuf>,
}

pub(super) fn inspect_command(args: InspectArgs) -> Result<()> {
    let input = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let der = read_certificate(&input).with_context(|| args.file.display().to_string())?;
    let config = Config::load(args.config.as_deref(), &ProcessEnv, &[])?;
    let report = inspect(&der, &config.claim_names(), &config.oid_arc)
        .with_context(|| args.file.display().to_string())?;
    print!("{report}");
    if let Some(ca) = args.ca {
        let ca_pem = std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let now = SystemClock.now();
        match verify_client_certificate(&der, &ca_pem, now) {
            Ok(()) => {
                println!(
                    "verified:     yes, a valid TLS client certificate under {} now",
                    ca.display()
                );
                // The configured CAs' key holders, for the operator comparing.
                for (name, ca) in &config.cas {
                    println!("ca {name}:  {}", ca.source.describe_holder());
                }
            }
            Err(e) => {
                println!("verified:     NO");
                bail!("{e}");
            }
        }
    }
    Ok(())
}
