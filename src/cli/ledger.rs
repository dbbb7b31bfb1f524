//! `session-ca ledger`: the records a signer's ledger holds for a session,
//! transaction, serial or requester, as JSON lines (every page).
use std::io::Write as _;

use anyhow::{bail, Context as _, Result};
use clap::Args;

use super::signer_args::SignerArgs;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["session_id", "transaction_id", "serial", "requester"])))]
pub(super) struct LedgerArgs {
    #[command(flatten)]
    signer: SignerArgs,
    /// The certificates of this session.
    #[arg(long)]
    session_id: Option<String>,
    /// The certificates of this transaction.
    #[arg(long)]
    transaction_id: Option<String>,
    /// The certificate with this serial (hex).
    #[arg(long)]
    serial: Option<String>,
    /// The certificates issued to this caller (IAM principal ARN or HMAC key id).
    #[arg(long)]
    requester: Option<String>,
    /// Only certificates issued at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    since: Option<String>,
    /// Only certificates issued before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    until: Option<String>,
    /// Records per request (1 to 1000); every page is printed.
    #[arg(long, default_value_t = 500)]
    page_size: u32,
}

pub(super) async fn ledger(args: LedgerArgs) -> Result<()> {
    if !(1..=1000).contains(&args.page_size) {
        bail!("--page-size must be between 1 and 1000");
    }
    let signer = args.signer.client().await?;
    let page_size = args.page_size.to_string();
    let mut query: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        ("session_id", &args.session_id),
        ("transaction_id", &args.transaction_id),
        ("serial", &args.serial),
        ("requester", &args.requester),
        ("since", &args.since),
        ("until", &args.until),
    ] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    query.push(("limit", &page_size));
    let mut cursor: Option<String> = None;
    loop {
        let mut this_page = query.clone();
        if let Some(cursor) = &cursor {
            this_page.push(("cursor", cursor));
        }
        let (records, next) = signer.ledger_page(&this_page).await?;
        let mut out = std::io::stdout().lock();
        for record in records {
            match writeln!(out, "{record}") {
                Ok(()) => {}
                // The reader has what it wanted (`| head`): stop asking.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(e).context("writing the records to standard output"),
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}
