//! The `session-ca` binary: everything is in `cli/`, which parses the
//! arguments and dispatches to one module per command.

#![forbid(unsafe_code)]

mod cli;

/// mimalloc rather than glibc's malloc. A request makes a few hundred small
/// allocations (headers, JSON, DER, PEM), many freed on another thread than
/// the one that made them (the ledger's writer, tokio's workers); glibc
/// spent about a fifth of an issuance's instructions in malloc and free.
/// Measured at 2026-12-02 against the same code on glibc, one sitting:
/// `serve` at concurrency 64 with the ledger +19 % req/s (CPU per request
/// 110 -> 90 µs), without it 63 -> 60 µs; a warm Lambda invocation
/// 255 -> 236 µs; cold start and RSS unchanged (see `Cargo.toml` on
/// `no_thp`). The instruction guard's probe (benches/instructions.rs)
/// uses it too, so that it counts what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    cli::main()
}
