//! The `session-ca` binary: everything is in `cli/`, which parses the
//! arguments and dispatches to one module per command.

#![forbid(unsafe_code)]

mod cli;

fn main() -> anyhow::Result<()> {
    cli::main()
}
