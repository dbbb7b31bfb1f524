//! `session-ca request`: ask a signer for a certificate and write the files.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use session_ca_client::{
    idempotency, write_pem_files, write_pkcs12_file, CertificateRequest, ClientError, RetryPolicy,
};

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
    /// Idempotency key (16-128 characters of A-Z a-z 0-9 - _): the same key with the same request within the signer's window gets the certificate already issued, not a second one (default: a fresh key per run, reused on its retries).
    #[arg(long, value_name = "KEY", value_parser = parse_idempotency_key)]
    idempotency_key: Option<String>,
    /// Retries after a transport error, HTTP 502/503/504, 409 idempotency_in_progress or 429, with the same idempotency key (0: one attempt).
    #[arg(long, value_name = "N", default_value_t = RetryPolicy::DEFAULT.max_attempts - 1)]
    retries: u32,
}

fn parse_idempotency_key(key: &str) -> Result<String, idempotency::KeyError> {
    idempotency::check_key(key).map(|()| key.to_owned())
}

/// Whether the signer may have issued a certificate for a request that
/// failed with `error` (the answer was lost, or it said "later").
fn outcome_unknown(error: &ClientError) -> bool {
    match error {
        ClientError::Network(_) | ClientError::UnexpectedResponse(_) => true,
        ClientError::Rejected { status, code, .. } => {
            // 408: the signer gave up on the request, perhaps after recording it.
            *status >= 500
                || *status == 408
                || (*status == 409 && code == "idempotency_in_progress")
        }
        _ => false,
    }
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
    let signer = args.signer.client().await?.with_retry_policy(RetryPolicy {
        max_attempts: args.retries.saturating_add(1),
        ..RetryPolicy::DEFAULT
    });
    let key = match args.idempotency_key {
        Some(key) => key,
        None => idempotency::new_key()?,
    };
    let request = CertificateRequest {
        profile: args.profile,
        session_id: args.session_id,
        transaction_id: args.transaction_id,
        ttl_seconds: args.ttl,
        key_type: args.key_type,
        claims: (!claims.is_empty()).then_some(claims),
        csr,
        pkcs12: args.pkcs12.is_some(),
    };
    let outcome = match signer.issue_detailed(&request, Some(&key)).await {
        Ok(outcome) => outcome,
        Err(error) => {
            if outcome_unknown(&error) {
                eprintln!(
                    "to get the certificate the signer may have issued rather than a second one, \
                     run again soon with the same arguments and --idempotency-key {key}"
                );
            }
            return Err(error.into());
        }
    };
    let issued = outcome.response;
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
    if outcome.replayed {
        println!("replayed     true (issued earlier for --idempotency-key {key})");
    }
    Ok(())
}
