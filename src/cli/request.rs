//! `session-ca request`: ask a signer for a certificate and write the files.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use session_ca_client::{write_pem_files, write_pkcs12_file, CertificateRequest};

use super::signer_args::SignerArgs;

#[derive(Debug, Args)]
pub(super) struct RequestArgs {
    #[command(flatten)]
    signer: SignerArgs,
    /// Profile to issue under (default: the signer's `default`).
    #[arg(long)]
    profile: Option<String>,
    /// Session id (the subject CN); the signer makes a UUID when absent.
    #[arg(long)]
    session_id: Option<String>,
    /// Transaction id.
    #[arg(long)]
    transaction_id: Option<String>,
    /// Lifetime in seconds (default: the profile's).
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
    /// Key type for the signer to generate (ecdsa-p256, ecdsa-p384, ed25519; rsa-2048 and rsa-3072 from signers built with the `aws-lc` feature).
    #[arg(long)]
    key_type: Option<String>,
    /// A claim: NAME=TEXT for a string, NAME:=JSON for a JSON value (repeatable).
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// Certify the key of this PEM CSR instead of having one generated (no key.pem is written).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_type", "pkcs12"])]
    csr: Option<PathBuf>,
    /// Directory for cert.pem, key.pem (0600) and chain.pem.
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "pkcs12"
    )]
    out: PathBuf,
    /// Write a PKCS#12 key store to FILE (0600) and its password to FILE.password (0600).
    #[arg(long, value_name = "FILE")]
    pkcs12: Option<PathBuf>,
}

/// `NAME=TEXT` (a string claim) or `NAME:=JSON` (any JSON value).
pub(super) fn parse_claim(arg: &str) -> Result<(String, serde_json::Value)> {
    if let Some((name, json)) = arg.split_once(":=") {
        if !name.contains('=') {
            let value = serde_json::from_str(json)
                .with_context(|| format!("--claim {arg:?}: the value after := is not JSON"))?;
            return Ok((name.to_owned(), value));
        }
    }
    match arg.split_once('=') {
        Some((name, text)) if !name.is_empty() => {
            Ok((name.to_owned(), serde_json::Value::String(text.to_owned())))
        }
        _ => bail!("--claim {arg:?}: expected NAME=TEXT or NAME:=JSON"),
    }
}

pub(super) async fn request(args: RequestArgs) -> Result<()> {
    let mut claims = session_ca_client::Claims::default();
    for arg in &args.claims {
        let (name, value) = parse_claim(arg)?;
        if !claims.insert(name.clone(), &value) {
            bail!("--claim {name:?} is given twice");
        }
    }
    let csr = match &args.csr {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CSR {}", path.display()))?,
        ),
        None => None,
    };
    let signer = args.signer.client().await?;
    let issued = signer
        .issue(&CertificateRequest {
            profile: args.profile,
            session_id: args.session_id,
            transaction_id: args.transaction_id,
            ttl_seconds: args.ttl,
            key_type: args.key_type,
            claims: (!claims.is_empty()).then_some(claims),
            csr,
            pkcs12: args.pkcs12.is_some(),
        })
        .await?;
    let written = match &args.pkcs12 {
        Some(path) => write_pkcs12_file(path, &issued)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => write_pem_files(&args.out, &issued)
            .with_context(|| format!("cannot write into {}", args.out.display()))?,
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    println!("serial       {}", issued.serial);
    println!("session_id   {}", issued.session_id);
    println!("not_after    {}", issued.not_after);
    println!("renew_after  {}", issued.renew_after);
    Ok(())
}
