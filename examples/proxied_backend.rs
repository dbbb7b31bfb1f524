//! A backend behind a TLS-terminating proxy: nginx, an ALB with mutual TLS
//! or Envoy checks the client certificate at the handshake and forwards it
//! in a header; this plain-HTTP backend verifies it again against the
//! signer's CA chain, exactly as for a handshake of its own, and answers
//! with the caller's claims as JSON (401 without the header, 403 when the
//! certificate is refused).
//!
//! ```text
//! cargo run --example proxied_backend -- --ca ca.pem --proxy nginx \
//!     --header x-ssl-client-cert --listen 127.0.0.1:8081
//! ```
//!
//! The header is trustworthy only when the proxy sets it on every request
//! (replacing what a client sent) and only the proxy can reach this
//! backend: bind it to loopback or a private subnet. The first line on
//! stdout is the bound address.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use clap::{Parser, ValueEnum};
use serde_json::json;
use session_ca_verify::{Forwarded, Verifier};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Proxy {
    /// nginx `proxy_set_header NAME $ssl_client_escaped_cert;`
    Nginx,
    /// ALB mutual TLS, passthrough mode: `X-Amzn-Mtls-Clientcert`.
    Alb,
    /// ALB mutual TLS, verify mode: `X-Amzn-Mtls-Clientcert-Leaf`.
    AlbVerify,
    /// Envoy `x-forwarded-client-cert`.
    Envoy,
}

impl Proxy {
    fn default_header(self) -> &'static str {
        match self {
            Proxy::Nginx => "x-ssl-client-cert",
            Proxy::Alb => "x-amzn-mtls-clientcert",
            Proxy::AlbVerify => "x-amzn-mtls-clientcert-leaf",
            Proxy::Envoy => "x-forwarded-client-cert",
        }
    }

    fn forwarded(self, value: &str) -> Forwarded<'_> {
        match self {
            Proxy::Nginx => Forwarded::Nginx(value),
            Proxy::Alb => Forwarded::AlbPassthrough(value),
            Proxy::AlbVerify => Forwarded::AlbVerifyLeaf(value),
            Proxy::Envoy => Forwarded::Envoy(value),
        }
    }
}

#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The CA chain to trust, PEM, as served by the signer's `GET /v1/ca`.
    #[arg(long)]
    ca: PathBuf,
    /// The proxy in front, which decides how the header is read.
    #[arg(long, value_enum)]
    proxy: Proxy,
    /// The header carrying the certificate (default: the proxy's usual one).
    #[arg(long)]
    header: Option<String>,
    /// A profile claim to decode, `name=oid:type` with type `string` or `json`; repeatable.
    #[arg(long = "claim", value_name = "NAME=OID:TYPE")]
    claims: Vec<String>,
}

#[derive(Clone)]
struct Backend {
    verifier: Verifier,
    proxy: Proxy,
    header: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let ca_pem =
        std::fs::read(&args.ca).with_context(|| format!("reading {}", args.ca.display()))?;
    let mut verifier = Verifier::builder().ca_pem(ca_pem);
    for spec in &args.claims {
        verifier = verifier.claim_spec(spec);
    }
    let backend = Backend {
        verifier: verifier
            .build()
            .with_context(|| args.ca.display().to_string())?,
        header: args
            .header
            .unwrap_or_else(|| args.proxy.default_header().to_owned()),
        proxy: args.proxy,
    };
    let tcp = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("{}", tcp.local_addr()?);
    let app = Router::new().fallback(claims).with_state(backend);
    axum::serve(tcp, app).await?;
    Ok(())
}

/// Answers with the verified claims of the certificate the proxy forwarded.
async fn claims(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let Some(value) = headers.get(&backend.header).and_then(|v| v.to_str().ok()) else {
        let error = format!("no {} header from the proxy", backend.header);
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": error }))).into_response();
    };
    match backend
        .verifier
        .verify_forwarded(backend.proxy.forwarded(value))
    {
        Ok(session) => Json(session.to_json()).into_response(),
        Err(e) => (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
