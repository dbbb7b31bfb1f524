//! `session-ca revoke`: revokes a session, transaction, serial or
//! requester on a signer (for administrators) and prints the signer's
//! answer (the rule and the unexpired certificates it matched) as JSON.
use anyhow::Result;
use clap::Args;
use serde_json::{Map, Value};

use super::signer_args::SignerArgs;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["session_id", "transaction_id", "serial", "requester"])))]
pub(super) struct RevokeArgs {
    #[command(flatten)]
    signer: SignerArgs,
    /// Revoke this session: its certificates, and every request for it.
    #[arg(long)]
    session_id: Option<String>,
    /// Revoke this transaction: its certificates, and every request for it.
    #[arg(long)]
    transaction_id: Option<String>,
    /// Revoke the one certificate with this serial (hex).
    #[arg(long)]
    serial: Option<String>,
    /// Revoke this caller (IAM principal ARN or HMAC key id): its
    /// certificates, and every request it makes.
    #[arg(long)]
    requester: Option<String>,
    /// The RFC 5280 reason: unspecified, keyCompromise, cACompromise,
    /// affiliationChanged, superseded, cessationOfOperation,
    /// certificateHold, privilegeWithdrawn or aACompromise.
    #[arg(long)]
    reason: String,
    /// When the rule stops refusing requests (RFC 3339); certificates
    /// issued before then stay revoked. Without it: for good.
    #[arg(long, value_name = "RFC3339")]
    expires: Option<String>,
}

pub(super) async fn revoke(args: RevokeArgs) -> Result<()> {
    let signer = args.signer.client().await?;
    let mut body = Map::new();
    for (name, value) in [
        ("session_id", args.session_id),
        ("transaction_id", args.transaction_id),
        ("serial", args.serial),
        ("requester", args.requester),
        ("reason", Some(args.reason)),
        ("expires", args.expires),
    ] {
        if let Some(value) = value {
            body.insert(name.to_owned(), Value::String(value));
        }
    }
    let answer = signer.revoke(&Value::Object(body)).await?;
    println!("{answer}");
    Ok(())
}
