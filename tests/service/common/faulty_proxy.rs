//! A failure-injecting HTTP proxy in front of moto_server: the signer's SSM
//! client talks to it, and a test decides what it does with each attempt.
//!
//! - [`Fault::None`]: forward the request to the emulator unchanged.
//! - [`Fault::Throttle`]: answer the next N requests as SSM does when it
//!   throttles (HTTP 400, `x-amzn-ErrorType: ThrottlingException`, the AWS
//!   JSON 1.1 error body), then forward again.
//! - [`Fault::Reset`]: accept each TCP connection and close it at once,
//!   before any byte of a response (an endpoint that is going away).
//! - [`Fault::Hang`]: accept each TCP connection and never answer (a black
//!   hole: only the client's timeouts end the attempt).
//!
//! Every attempt is counted (HTTP requests, and connections for the
//! connection-level faults), so a test can check the SDK's retry policy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::{TcpListener, TcpStream};

/// The body SSM sends with a throttling error (AWS JSON 1.1 protocol).
pub const THROTTLING_BODY: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

/// What the proxy does with what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward every request.
    None,
    /// Answer the next `remaining` requests with ThrottlingException, then forward.
    Throttle { remaining: usize },
    /// Close every new connection at once.
    Reset,
    /// Hold every new connection open without reading or answering.
    Hang,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    fault: Mutex<Fault>,
    client: reqwest::Client,
    /// HTTP requests received (throttled or forwarded).
    requests: AtomicUsize,
    throttled: AtomicUsize,
    forwarded: AtomicUsize,
    /// Connections closed at once ([`Fault::Reset`]).
    reset: AtomicUsize,
    /// Connections left hanging ([`Fault::Hang`]).
    hung: AtomicUsize,
    /// The `X-Amz-Target` of every HTTP request, in order.
    targets: Mutex<Vec<String>>,
}

/// A running proxy on a loopback port; stopped when dropped.
pub struct FaultyProxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts of what the proxy saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    /// HTTP requests, throttled ones included.
    pub requests: usize,
    pub throttled: usize,
    pub forwarded: usize,
    /// Connections closed at once.
    pub reset: usize,
    /// Connections left hanging.
    pub hung: usize,
}

impl FaultyProxy {
    /// Starts a proxy to `upstream` (e.g. `http://127.0.0.1:PORT`) on a free
    /// loopback port, with `fault` in force from the first connection.
    pub async fn start(upstream: &str, fault: Fault) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // reqwest takes the process's rustls provider (the build's crypto library).
        session_ca::crypto::install_rustls_provider();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            fault: Mutex::new(fault),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            requests: AtomicUsize::new(0),
            throttled: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
            reset: AtomicUsize::new(0),
            hung: AtomicUsize::new(0),
            targets: Mutex::new(Vec::new()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = FaultyListener {
            inner: listener,
            shared: shared.clone(),
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FaultyProxy { port, shared, task }
    }

    /// Changes what the proxy does from now on (connection faults apply to
    /// new connections only).
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    pub fn seen(&self) -> Seen {
        Seen {
            requests: self.shared.requests.load(Ordering::SeqCst),
            throttled: self.shared.throttled.load(Ordering::SeqCst),
            forwarded: self.shared.forwarded.load(Ordering::SeqCst),
            reset: self.shared.reset.load(Ordering::SeqCst),
            hung: self.shared.hung.load(Ordering::SeqCst),
        }
    }

    /// The `X-Amz-Target` header of every HTTP request so far.
    pub fn targets(&self) -> Vec<String> {
        self.shared.targets.lock().unwrap().clone()
    }
}

/// A TCP listener that applies the connection-level faults before axum
/// sees a connection.
struct FaultyListener {
    inner: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for FaultyListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let fault = *self.shared.fault.lock().unwrap();
            match fault {
                Fault::Reset => {
                    self.shared.reset.fetch_add(1, Ordering::SeqCst);
                    // RST instead of FIN: the client sees the connection fail.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                }
                Fault::Hang => {
                    self.shared.hung.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        drop(stream);
                    });
                }
                Fault::None | Fault::Throttle { .. } => return (stream, addr),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    shared.targets.lock().unwrap().push(target);

    let throttle = {
        let mut fault = shared.fault.lock().unwrap();
        match *fault {
            Fault::Throttle { remaining } if remaining > 0 => {
                *fault = if remaining == 1 {
                    Fault::None
                } else {
                    Fault::Throttle {
                        remaining: remaining - 1,
                    }
                };
                true
            }
            _ => false,
        }
    };
    if throttle {
        shared.throttled.fetch_add(1, Ordering::SeqCst);
        let mut response = (StatusCode::BAD_REQUEST, THROTTLING_BODY).into_response();
        let h = response.headers_mut();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static("ThrottlingException"),
        );
        h.insert(
            "x-amzn-requestid",
            HeaderValue::from_static("00000000-0000-4000-8000-000000000000"),
        );
        return response;
    }

    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.body(body).send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let upstream_headers = upstream.headers().clone();
            let bytes = upstream.bytes().await.unwrap_or_default();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            for (name, value) in &upstream_headers {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    response.headers_mut().append(name, value.clone());
                }
            }
            response
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("faulty proxy: upstream failed: {e}"),
        )
            .into_response(),
    }
}
