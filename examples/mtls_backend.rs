//! An HTTPS backend that admits only session-ca client certificates and
//! answers every request with the caller's verified claims as JSON.
//!
//! ```text
//! curl -s http://127.0.0.1:8080/v1/ca > ca.pem        # the signer's CA chain
//! cargo run --example mtls_backend -- --ca ca.pem \
//!     --cert server.pem --key server-key.pem \
//!     --claim agent=1.3.6.1.4.1.32473.1.100:string \
//!     --claim geo=1.3.6.1.4.1.32473.1.101:json
//! curl --cacert server-ca.pem --cert cert.pem --key key.pem https://localhost:8443/
//! ```
//!
//! The first line on stdout is the bound address (so `--listen
//! 127.0.0.1:0` works in tests); refused handshakes are logged on stderr.
//! The listen address, files and OID arc can also come from environment
//! variables (`MTLS_BACKEND_CA`, ...; see `--help`).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::{Json, Router};
use clap::Parser;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use session_ca::FixedClock;
use session_ca_verify::Verifier;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// An mTLS backend that trusts a session-ca signer's client certificates.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MTLS_BACKEND_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The CA chain to trust, PEM, as served by the signer's `GET /v1/ca`.
    #[arg(long, env = "MTLS_BACKEND_CA")]
    ca: PathBuf,
    /// This server's certificate chain, PEM.
    #[arg(long, env = "MTLS_BACKEND_CERT")]
    cert: PathBuf,
    /// This server's private key, PEM.
    #[arg(long, env = "MTLS_BACKEND_KEY")]
    key: PathBuf,
    /// A profile claim to decode, `name=oid:type` with type `string` or `json`; repeatable.
    #[arg(long = "claim", value_name = "NAME=OID:TYPE")]
    claims: Vec<String>,
    /// The OID arc of the standard claims, if the signer uses its own.
    #[arg(long, env = "MTLS_BACKEND_OID_ARC", default_value = session_ca_verify::DEFAULT_OID_ARC)]
    oid_arc: String,
    /// Check certificates at this fixed time (RFC 3339, UTC) instead of the system clock.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    now: Option<OffsetDateTime>,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    humantime::parse_rfc3339(text)
        .map(OffsetDateTime::from)
        .map_err(|e| format!("{text:?}: {e} (expected e.g. 2026-01-01T00:00:00Z)"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();

    let ca_pem =
        std::fs::read(&args.ca).with_context(|| format!("reading {}", args.ca.display()))?;
    let mut verifier = Verifier::builder().ca_pem(ca_pem).oid_arc(&args.oid_arc);
    for spec in &args.claims {
        verifier = verifier.claim_spec(spec);
    }
    if let Some(now) = args.now {
        verifier = verifier.clock(Arc::new(FixedClock::new(now)));
    }
    let verifier = verifier
        .build()
        .with_context(|| args.ca.display().to_string())?;

    // TLS 1.3 only, on the build's crypto library; the adapter refuses bad
    // client certificates inside the handshake, so no request from an
    // untrusted caller reaches the router.
    let provider = session_ca::crypto::rustls_provider();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(
            verifier.rustls_client_verifier(&session_ca::crypto::rustls_provider()),
        )
        .with_single_cert(read_certs(&args.cert)?, read_key(&args.key)?)
        .context("the server certificate and key do not form a usable identity")?;

    let tcp = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("{}", tcp.local_addr()?);

    let app = Router::new().fallback(claims).with_state(verifier);
    let listener = MtlsListener::spawn(tcp, TlsAcceptor::from(Arc::new(tls)))?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientChain>(),
    )
    .await?;
    Ok(())
}

/// Answers with the verified claims of the certificate the caller presented.
async fn claims(
    State(verifier): State<Verifier>,
    ConnectInfo(chain): ConnectInfo<ClientChain>,
) -> Response {
    // The handshake verified this chain already; verifying again per request
    // yields the claims and stops a kept-alive connection from outliving its
    // short-lived certificate.
    match verifier.verify(&chain.0) {
        Ok(session) => Json(session.to_json()).into_response(),
        Err(e) => (StatusCode::FORBIDDEN, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no PEM CERTIFICATE block",
        path.display()
    );
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading a private key from {}", path.display()))
}

/// The client's certificate chain, taken from the TLS connection for the handler.
#[derive(Clone)]
struct ClientChain(Arc<Vec<CertificateDer<'static>>>);

impl Connected<IncomingStream<'_, MtlsListener>> for ClientChain {
    fn connect_info(stream: IncomingStream<'_, MtlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        let chain = connection.peer_certificates().unwrap_or_default();
        ClientChain(Arc::new(
            chain.iter().map(|c| c.clone().into_owned()).collect(),
        ))
    }
}

/// Hands axum connections whose TLS handshake (client certificate
/// included) has completed.
struct MtlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl MtlsListener {
    fn spawn(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (socket, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off, keep serving.
                        eprintln!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                // Each handshake in its own task, bounded in time, so a slow
                // or silent client cannot hold up the others.
                tokio::spawn(async move {
                    let handshake = acceptor.accept(socket).into_fallible();
                    match tokio::time::timeout(Duration::from_secs(10), handshake).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err((e, socket))) => {
                            eprintln!("{peer}: handshake refused: {e}");
                            close_after_alert(socket).await;
                        }
                        Err(_) => eprintln!("{peer}: handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

/// Closes a refused connection so that the client reads the alert.
///
/// A TLS 1.3 client sends its request right after its certificate, before
/// it can learn that the certificate was refused. Closing a socket with
/// those bytes unread makes the kernel answer with a reset, which can
/// discard the alert on its way, and the client sees a bare end of stream.
/// So: end our side after the alert, read what the client still sends
/// until it closes (for at most two seconds), then close.
async fn close_after_alert(mut socket: TcpStream) {
    if socket.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let drain = async { while let Ok(1..) = socket.read(&mut sink).await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

impl Listener for MtlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task never ends; if it did, there is nothing more to serve.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
