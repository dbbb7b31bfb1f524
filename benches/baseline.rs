//! The two floors `benches/compare.sh` sets `session-ca serve` against
//! (issue 18): what the cheapest HTTP JSON endpoint costs on this stack, and
//! what the crypto of one P-256 issuance costs at the least.
//!
//!   baseline serve ADDR   a trivial axum endpoint: `POST /v1/certificates`
//!                         reads the JSON body, parses it (serde_json) and
//!                         answers 201 with a small JSON object; the same
//!                         tokio multi-thread runtime, axum and hyper as
//!                         `serve`, built the same way (release profile)
//!   baseline floor        CPU per P-256 key generation (a PKCS#8 key pair,
//!                         what the issuer asks the crypto library for) plus
//!                         one ECDSA P-256 SHA-256 signature by a parsed CA
//!                         key over a leaf's to-be-signed size (500 octets);
//!                         prints `RESULT keygen_us=… sign_us=… floor_us=…`
//!
//! Built by `cargo build --release --locked --example baseline`. The floor
//! is measured on one thread from its own CPU clock
//! (`/proc/thread-self/schedstat`, nanoseconds on the CPU), over at least
//! FLOOR_SECONDS (default 2) of work per operation, median of 5 rounds.

use std::time::{Duration, Instant};

use session_ca::crypto::rand::SystemRandom;
use session_ca::crypto::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", address] => serve(address),
        ["floor"] => floor(),
        // `cargo test --all-targets` builds examples without running them;
        // anything else is a usage error.
        _ => {
            eprintln!("usage: baseline serve ADDR | baseline floor");
            std::process::exit(2);
        }
    }
}

fn serve(address: &str) {
    use axum::{http::StatusCode, routing::post, Json, Router};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let app = Router::new().route(
            "/v1/certificates",
            post(|Json(body): Json<serde_json::Value>| async move {
                let fields = body.as_object().map_or(0, |o| o.len());
                (
                    StatusCode::CREATED,
                    Json(serde_json::json!({ "ok": true, "fields": fields })),
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {address}: {e}"));
        axum::serve(listener, app).await.expect("serve");
    });
}

/// This thread's time on the CPU so far.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("/proc/thread-self/schedstat (Linux)");
    let nanos: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a schedstat line");
    Duration::from_nanos(nanos)
}

/// The median CPU time of one `op`, over rounds of at least `seconds`.
fn per_op(seconds: f64, mut op: impl FnMut()) -> f64 {
    let mut rounds = Vec::new();
    for _ in 0..5 {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let mut n = 0u64;
        while wall.elapsed().as_secs_f64() < seconds / 5.0 {
            for _ in 0..100 {
                op();
            }
            n += 100;
        }
        rounds.push((thread_cpu() - cpu).as_secs_f64() * 1e6 / n as f64);
    }
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

fn floor() {
    let seconds: f64 = std::env::var("FLOOR_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let rng = SystemRandom::new();
    let alg = &ECDSA_P256_SHA256_ASN1_SIGNING;
    let ca_pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a CA key");
    #[cfg(feature = "aws-lc")]
    let ca = EcdsaKeyPair::from_pkcs8(alg, ca_pkcs8.as_ref()).expect("the CA key parsed");
    #[cfg(not(feature = "aws-lc"))]
    let ca = EcdsaKeyPair::from_pkcs8(alg, ca_pkcs8.as_ref(), &rng).expect("the CA key parsed");
    let tbs = [0x5au8; 500];
    let mut sink = 0usize;
    let keygen_us = per_op(seconds, || {
        let leaf = EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("a leaf key");
        sink = sink.wrapping_add(leaf.as_ref().len());
    });
    let sign_us = per_op(seconds, || {
        let signature = ca.sign(&rng, &tbs).expect("a signature");
        sink = sink.wrapping_add(signature.as_ref().len());
    });
    assert!(sink > 0 && !ca.public_key().as_ref().is_empty());
    println!(
        "RESULT keygen_us={keygen_us:.2} sign_us={sign_us:.2} floor_us={:.2} library={}",
        keygen_us + sign_us,
        session_ca::crypto::LIBRARY
    );
}
