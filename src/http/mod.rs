//! The HTTP API: one axum `Router`, served by the local TCP server and by the Lambda runtime.

pub mod error;
pub mod lambda;
pub mod server;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Extension, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

pub use error::AppError;

use crate::audit::{self, rfc3339};
use crate::auth::{AuthMode, Caller};
use crate::ca::CaStore;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::issuer;
use crate::request::IssueRequest;
use lambda_http::request::RequestContext;

/// Header carrying the correlation id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Media type of `GET /v1/ca` (RFC 8555 §9.1).
pub const PEM_CHAIN_MEDIA_TYPE: &str = "application/pem-certificate-chain";
/// Media type of `GET /v1/ca?format=pkcs12` (RFC 7292 Appendix D).
pub const PKCS12_MEDIA_TYPE: &str = "application/pkcs12";
/// The profile used when a request names none.
pub const DEFAULT_PROFILE: &str = "default";

/// Shared, read-only state of the service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The CAs.
    pub cas: CaStore,
    /// The clock certificates are stamped with.
    pub clock: SharedClock,
}

/// Reloads due CAs before a request is handled (Lambda mode; see
/// [`CaStore::refresh_due`]).
async fn refresh_due_cas(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.cas.refresh_due(&state.clock).await;
    next.run(request).await
}

/// Enforces the header-size limit and the request timeout (body upload
/// included), each with a JSON error naming the limit.
async fn enforce_limits(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let server = &state.config.server;
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let issuing = request.uri().path() == "/v1/certificates";
    let refused = |e: AppError| {
        if issuing {
            // Still an issuance decision: it gets its audit event.
            let (status, code) = e.status_and_code();
            audit::issuance_denied(code, status.as_u16(), "", "unknown", "");
        }
        e.into_response()
    };
    if header_bytes > server.max_header_bytes {
        return refused(AppError::HeadersTooLarge {
            limit: server.max_header_bytes,
        });
    }
    match tokio::time::timeout(server.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refused(AppError::RequestTimeout {
            limit: server.request_timeout,
        }),
    }
}

/// The service's routes.
pub fn app(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    let limits = axum::middleware::from_fn_with_state(state.clone(), enforce_limits);
    Router::new()
        .route("/v1/certificates", post(issue_certificate))
        .route("/v1/ca", get(ca_chain))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(limits)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .with_state(state)
}

/// The service of a Lambda whose configuration is invalid: every request gets
/// 500 `internal_error` (the cause was logged once at start-up).
pub fn misconfigured() -> Router {
    Router::new().fallback(|| async {
        AppError::Internal("the signer's configuration is invalid (see its start-up log)".into())
    })
}

/// The methods each route answers, for the `Allow` header of a 405.
pub(crate) fn allowed_methods(path: &str) -> &'static str {
    match path {
        "/v1/certificates" => "POST",
        _ => "GET, HEAD",
    }
}

/// The response body of a successful issuance. Its `Debug` elides the key.
#[derive(Serialize, Deserialize)]
pub struct IssueResponse {
    /// Serial number, lower-case hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate: String,
    /// The private key, PKCS#8 PEM; absent in CSR mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The CA chain, issuing CA first, PEM each.
    pub ca_chain: Vec<String>,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// RFC 3339: renew after this.
    pub renew_after: String,
    /// The certified key's type (`ecdsa-p256`, ..., `rsa-2048` for CSRs).
    pub key_type: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint_sha256: String,
    /// The profile that issued it.
    pub profile: String,
    /// The session id in the certificate (generated when the request had none).
    pub session_id: String,
    /// The correlation id in the certificate's `request_id` claim.
    pub request_id: String,
    /// The key store, when the request set `pkcs12: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Pkcs12Body>,
}

/// A PKCS#12 key store in a response. Its `Debug` elides the password.
#[derive(Serialize, Deserialize)]
pub struct Pkcs12Body {
    /// The PKCS#12 file, base64 (standard alphabet, padded).
    pub base64: String,
    /// Its password (also the key entry's password).
    pub password: String,
}

impl std::fmt::Debug for Pkcs12Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Body")
            .field("base64_len", &self.base64.len())
            .field("password", &"[password elided]")
            .finish()
    }
}

impl std::fmt::Debug for IssueResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueResponse")
            .field("serial", &self.serial)
            .field("private_key", &"[secret key elided]")
            .field("pkcs12", &self.pkcs12)
            .field("not_after", &self.not_after)
            .field("profile", &self.profile)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// The correlation id: the Lambda request id, else the gateway's request id,
/// else a well-formed `X-Request-Id` header, else a fresh UUID.
fn request_id(
    headers: &HeaderMap,
    lambda: Option<&lambda_http::Context>,
    gateway: Option<&RequestContext>,
) -> String {
    let trusted = lambda
        .map(|c| c.request_id.as_str())
        .or_else(|| gateway.and_then(lambda::gateway_request_id))
        .filter(|id| (1..=128).contains(&id.len()) && id.chars().all(|c| c.is_ascii_graphic()));
    if let Some(id) = trusted {
        return id.to_owned();
    }
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn is_json(headers: &HeaderMap) -> Result<(), AppError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(AppError::UnsupportedMediaType(
            "no Content-Type header".into(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType(format!("{text:?}")))
    }
}

fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// What authentication looks at in a request.
struct Credentials<'a> {
    gateway: Option<&'a RequestContext>,
    headers: &'a HeaderMap,
    method: &'a Method,
    uri: &'a Uri,
    body: &'a Result<Bytes, BytesRejection>,
}

/// Who is calling, per the configured auth mode.
fn authenticate(state: &AppState, request: Credentials<'_>) -> Result<Caller, AppError> {
    match state.config.server.auth {
        AuthMode::None => Ok(Caller::Anonymous),
        AuthMode::Iam => request
            .gateway
            .and_then(lambda::iam_principal)
            .map(|arn| Caller::Principal(arn.to_owned()))
            .ok_or(AppError::Unauthenticated(
                "no IAM principal in the request context; call through a Function URL or API \
                 Gateway route with AWS_IAM auth, signing the request with SigV4",
            )),
        AuthMode::Hmac => {
            let Some(hmac) = &state.config.hmac else {
                return Err(AppError::Internal("auth hmac without keys".into()));
            };
            // The signature covers the body: it must have arrived whole.
            let body = match request.body {
                Ok(body) => body,
                Err(rejection) => return Err(body_error(rejection, &state.config)),
            };
            let authorization = request
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"));
            let path = request
                .uri
                .path_and_query()
                .map_or(request.uri.path(), |p| p.as_str());
            let now = state.clock.now().unix_timestamp();
            hmac.verify(authorization, request.method.as_str(), path, body, now)
                .map(Caller::Principal)
                .map_err(AppError::Hmac)
        }
    }
}

/// The error for a body that could not be read whole.
fn body_error(rejection: &BytesRejection, config: &Config) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::BodyTooLarge {
            limit: config.server.max_body_bytes,
        }
    } else {
        AppError::BodyUnreadable(rejection.body_text())
    }
}

async fn issue_certificate(
    State(state): State<AppState>,
    gateway: Option<Extension<RequestContext>>,
    lambda_context: Option<Extension<lambda_http::Context>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let gateway = gateway.as_ref().map(|Extension(c)| c);
    let id = request_id(
        &headers,
        lambda_context.as_ref().map(|Extension(c)| c),
        gateway,
    );
    let mut profile_name = String::new();
    let credentials = Credentials {
        gateway,
        headers: &headers,
        method: &method,
        uri: &uri,
        body: &body,
    };
    let caller = match authenticate(&state, credentials) {
        Ok(caller) => caller,
        Err(e) => {
            let (status, code) = e.status_and_code();
            audit::issuance_denied(code, status.as_u16(), "", "unauthenticated", &id);
            return with_request_id(e.into_response(), &id);
        }
    };
    let result = issue_for(
        &state,
        &headers,
        body,
        &caller,
        &id,
        &mut profile_name,
        started,
    );
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            let (status, code) = e.status_and_code();
            audit::issuance_denied(
                code,
                status.as_u16(),
                &profile_name,
                caller.audit_label(),
                &id,
            );
            e.into_response()
        }
    };
    with_request_id(response, &id)
}

fn issue_for(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    caller: &Caller,
    request_id: &str,
    profile_name: &mut String,
    started: Instant,
) -> Result<Response, AppError> {
    is_json(headers)?;
    let body = body.map_err(|rejection| body_error(&rejection, &state.config))?;
    let request = IssueRequest::from_json(&body)?;
    *profile_name = request
        .profile
        .clone()
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let profile = state
        .config
        .profile(profile_name)
        .ok_or_else(|| AppError::unknown_profile(profile_name))?;
    let plan = profile.plan(&request, caller, request_id)?;
    let ca = state
        .cas
        .get(&plan.ca)
        .ok_or_else(|| AppError::CaUnavailable(format!("CA {:?} is not loaded", plan.ca)))?;
    let now = state.clock.now();
    let issued = issuer::issue(&ca, &plan, now)?;
    if issued.not_after < now + plan.ttl {
        audit::certificate_shortened(&plan.ca, ca.not_after, now);
    }
    audit::certificate_issued(
        &plan,
        &issued,
        caller.audit_label(),
        request_id,
        started.elapsed(),
    );
    let body = IssueResponse {
        serial: issued.serial_hex,
        certificate: issued.certificate_pem,
        private_key: issued
            .private_key_pem
            .as_ref()
            .map(|pem| pem.expose().to_owned()),
        ca_chain: ca.chain_pem.clone(),
        not_before: rfc3339(issued.not_before),
        not_after: rfc3339(issued.not_after),
        renew_after: rfc3339(issued.renew_after),
        key_type: issued.key_type.to_owned(),
        fingerprint_sha256: issued.fingerprint_sha256,
        profile: plan.profile,
        session_id: plan.session_id,
        request_id: request_id.to_owned(),
        pkcs12: issued.pkcs12.map(|file| Pkcs12Body {
            base64: crate::pkcs12::to_base64(&file.der),
            password: file.password.expose().to_owned(),
        }),
    };
    // Sized for the PEMs (plus one escape per line) and the short fields,
    // so the buffer is allocated once instead of doubling from 128 bytes.
    let pem_bytes = body.certificate.len()
        + body.private_key.as_ref().map_or(0, String::len)
        + body.ca_chain.iter().map(String::len).sum::<usize>()
        + body.pkcs12.as_ref().map_or(0, |p12| p12.base64.len());
    let mut json = Vec::with_capacity(pem_bytes + pem_bytes / 32 + 1024);
    serde_json::to_writer(&mut json, &body).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/json"),
            // The body holds a private key: no cache may keep it (RFC 9111 §5.2.2.5).
            (header::CACHE_CONTROL, "no-store"),
        ],
        json,
    )
        .into_response())
}

/// Query of `GET /v1/ca`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaQuery {
    profile: Option<String>,
    format: Option<CaFormat>,
}

/// The forms `GET /v1/ca` serves the chain in.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CaFormat {
    /// PEM certificates, issuing CA first.
    #[default]
    Pem,
    /// A PKCS#12 trust store for Java (password [`crate::pkcs12::TRUSTSTORE_PASSWORD`]).
    Pkcs12,
}

async fn ca_chain(
    State(state): State<AppState>,
    query: Result<Query<CaQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query.map_err(|e| AppError::InvalidQuery(e.body_text()))?;
    let name = query.profile.unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let profile = state
        .config
        .profile(&name)
        .ok_or_else(|| AppError::unknown_profile(&name))?;
    let ca = state
        .cas
        .get(&profile.ca)
        .ok_or_else(|| AppError::CaUnavailable(format!("CA {:?} is not loaded", profile.ca)))?;
    match query.format.unwrap_or_default() {
        CaFormat::Pem => Ok((
            [(header::CONTENT_TYPE, PEM_CHAIN_MEDIA_TYPE)],
            ca.chain_pem_bundle.clone(),
        )
            .into_response()),
        CaFormat::Pkcs12 => {
            let chain: Vec<&[u8]> = ca.chain_der.iter().map(|c| c.as_ref()).collect();
            let store = crate::pkcs12::trust_store(&chain)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            Ok((
                [
                    (header::CONTENT_TYPE, PKCS12_MEDIA_TYPE),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"truststore.p12\"",
                    ),
                ],
                store,
            )
                .into_response())
        }
    }
}

/// One CA's entry in `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CaHealth {
    /// The CA's configured name.
    pub name: String,
    /// Its subject (none while it has not loaded).
    pub subject: Option<String>,
    /// RFC 3339 (none while it has not loaded).
    pub not_after: Option<String>,
    /// Whether it can sign now.
    pub usable: bool,
}

/// The body of `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Every CA.
    pub cas: Vec<CaHealth>,
}

async fn healthz(State(state): State<AppState>) -> Response {
    let now = state.clock.now();
    let cas: Vec<CaHealth> = state
        .cas
        .all()
        .into_iter()
        .map(|(name, ca)| CaHealth {
            name,
            subject: ca.as_ref().map(|ca| ca.subject.clone()),
            not_after: ca.as_ref().map(|ca| rfc3339(ca.not_after)),
            usable: ca.is_some_and(|ca| ca.not_before <= now && now < ca.not_after),
        })
        .collect();
    let ok = !cas.is_empty() && cas.iter().all(|c| c.usable);
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if ok { "ok" } else { "unavailable" }.into(),
        cas,
    };
    (status, Json(body)).into_response()
}

async fn not_found(method: Method, uri: Uri) -> AppError {
    AppError::NotFound {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
