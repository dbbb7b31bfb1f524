//! The service's integration tests, one binary: every route through
//! `app().oneshot(...)`, the command line, and the real peers (openssl,
//! curl, pkilint, Java, moto_server, cargo-lambda, nginx) of the tests
//! marked `#[ignore = "needs ...; run scripts/test"]`. One binary links the
//! dependency tree once; `common` holds the shared set-up.

mod common;

mod api;
mod cli;
mod conformance;
mod end_to_end;
mod fleet;
mod fleet_processes;
mod front_doors;
mod hmac;
mod hostile;
mod interop;
mod java;
mod kms;
mod kms_crl;
mod lambda;
mod lambda_runtime;
mod ledger;
mod ledger_sqlite;
mod metrics;
mod mtls_backend;
mod properties;
mod proxies;
mod readme;
mod request_cli;
mod revocation;
mod rust_client;
mod secrets;
mod ssm;
mod verify;
