//! The `session-ca` command line: one file per command; this module parses
//! the arguments and dispatches. Lambda mode (no arguments and
//! `AWS_LAMBDA_RUNTIME_API` set) is the `lambda` module.

mod init;
mod inspect;
mod lambda;
mod ledger;
mod logging;
mod publish_ssm;
mod request;
mod revoke;
mod serve;
mod signer_args;

use std::sync::LazyLock;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use init::{init, InitArgs};
use inspect::{inspect_command, InspectArgs};
use ledger::{ledger, LedgerArgs};
use logging::init_logging;
use publish_ssm::{publish_ssm, PublishArgs};
use request::{request, RequestArgs};
use revoke::{revoke, RevokeArgs};
use serve::{serve, ServeArgs};

/// RFC 3339 text of a time, as the commands print it.
fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// `--version`: the version, the build's one crypto library and, on
/// aws-lc builds, the AWS-LC version linked in.
static LONG_VERSION: LazyLock<String> = LazyLock::new(|| {
    let library = session_ca::crypto::LIBRARY;
    match session_ca::crypto::aws_lc_version() {
        Some(aws_lc) => format!(
            "{} (crypto: {library}, AWS-LC {aws_lc})",
            env!("CARGO_PKG_VERSION")
        ),
        None => format!("{} (crypto: {library})", env!("CARGO_PKG_VERSION")),
    }
});

/// A lightweight signer of short-lived mTLS client certificates.
#[derive(Debug, Parser)]
#[command(name = "session-ca", version, long_version = LONG_VERSION.as_str(), about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP signer (with no configuration: a development CA in
    /// signer-key/, 127.0.0.1:8080, no authentication).
    Serve(ServeArgs),
    /// Create a CA: a key and certificate, optionally under a root.
    Init(InitArgs),
    /// Show a certificate's validity, subject and claims; verify it with --ca.
    Inspect(InspectArgs),
    /// Upload the CA in a directory to AWS Systems Manager Parameter Store.
    PublishSsm(PublishArgs),
    /// Ask a signer for a certificate and write cert.pem, key.pem and
    /// chain.pem (or a PKCS#12 file).
    Request(Box<RequestArgs>),
    /// Print a signer's ledger records (for administrators) of a session,
    /// transaction, serial or requester, as JSON lines.
    Ledger(Box<LedgerArgs>),
    /// Revoke a session, transaction, serial or requester on a signer (for
    /// administrators): its certificates go on the CRL and its requests
    /// are refused.
    Revoke(Box<RevokeArgs>),
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn main() -> Result<()> {
    // Lambda runs the binary with no arguments and AWS_LAMBDA_RUNTIME_API set.
    if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        init_logging();
        session_ca::crypto::self_check().map_err(anyhow::Error::msg)?;
        // One event at a time per execution environment: one thread, so
        // an event never hops between worker threads (those wake-ups were
        // most of the CPU of a warm invocation).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        return runtime.block_on(lambda::run());
    }
    let cli = Cli::parse();
    init_logging();
    session_ca::crypto::self_check().map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Serve(args) => runtime()?.block_on(serve(args)),
        Command::Init(args) => init(args),
        Command::Inspect(args) => inspect_command(args),
        Command::PublishSsm(args) => runtime()?.block_on(publish_ssm(args)),
        Command::Request(args) => runtime()?.block_on(request(*args)),
        Command::Ledger(args) => runtime()?.block_on(ledger(*args)),
        Command::Revoke(args) => runtime()?.block_on(revoke(*args)),
    }
}
