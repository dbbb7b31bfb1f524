//! The middleware of every request: [`observe`] (correlation id, the audit
//! event of every issuance decision, the log line of every server fault),
//! [`enforce_limits`] (header size, request timeout) and, in Lambda mode,
//! [`refresh_due_cas`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;

use super::error::ErrorRecord;
use super::{lambda, AppError, AppState, ISSUE_PATH, REQUEST_ID_HEADER};
use crate::audit;
use crate::metrics::{IssuedSample, Metrics, RateLimitHit};

/// The correlation id of the request being handled (set by [`observe`]).
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) Arc<str>);

/// What the audit event of an issuance decision says about the request,
/// filled in as the request goes: the caller by the [`super::extract::Authenticated`]
/// extractor, the profile by the handler. [`observe`] reads it at the end.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditTrail(Arc<Mutex<Trail>>);

#[derive(Debug, Default)]
struct Trail {
    profile: String,
    requester: Option<String>,
    /// When the handler began (the request read and authenticated): the
    /// audit event's latency is the issuance's, not the upload's.
    handling_since: Option<Instant>,
}

impl AuditTrail {
    /// Records that the handler begins.
    pub(crate) fn set_handling_started(&self) {
        self.lock().handling_since = Some(Instant::now());
    }

    /// Records the profile the request asked for.
    pub(crate) fn set_profile(&self, profile: &str) {
        profile.clone_into(&mut self.lock().profile);
    }

    /// Records who is calling (an audit label: an identity, `anonymous` or
    /// `unauthenticated`).
    pub(crate) fn set_requester(&self, requester: &str) {
        self.lock().requester = Some(requester.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trail> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The outermost layer. Every request gets its correlation id (the
/// `x-request-id` response header, on every response). Every response whose
/// [`ErrorRecord`] carries a cause (a server fault) is logged with it here,
/// once; the response itself says nothing of the cause. For
/// `POST /v1/certificates` it writes one audit event for whatever the
/// outcome: `certificate_issued` when the handler attached an
/// [`audit::Issued`] (its latency counted from the start of the handler),
/// `issuance_checked` for a dry run ([`audit::Checked`]), `issuance_denied`
/// with the error's code otherwise, refusals by the limits and panics
/// included.
pub(crate) async fn observe(
    State(metrics): State<Metrics>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let started = Instant::now();
    let id: Arc<str> = request_id(
        request.headers(),
        request.extensions().get::<lambda_http::Context>(),
        request.extensions().get::<RequestContext>(),
    )
    .into();
    let issuing = request.uri().path() == ISSUE_PATH && request.method() == Method::POST;
    let trail = AuditTrail::default();
    request.extensions_mut().insert(RequestId(id.clone()));
    if issuing {
        request.extensions_mut().insert(trail.clone());
    }
    let mut response = next.run(request).await;
    log_server_fault(&response);
    if issuing {
        audit_issuance(&response, &trail, &id, started, &metrics);
    } else {
        metrics.flush();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// The audit event, and the metrics, of an issuance decision.
fn audit_issuance(
    response: &Response,
    trail: &AuditTrail,
    id: &str,
    started: Instant,
    metrics: &Metrics,
) {
    let trail = std::mem::take(&mut *trail.lock());
    let requester = trail.requester.as_deref().unwrap_or("unknown");
    if let Some(checked) = response.extensions().get::<audit::Checked>() {
        audit::issuance_checked(checked, requester, id);
        metrics.checked(&checked.profile);
        return;
    }
    if let Some(replayed) = response.extensions().get::<audit::Replayed>() {
        audit::issuance_replayed(replayed, &trail.profile, requester, id);
        metrics.flush();
        return;
    }
    match response.extensions().get::<audit::Issued>() {
        Some(issued) => {
            let latency = trail.handling_since.unwrap_or(started).elapsed();
            audit::certificate_issued(issued, requester, id, latency);
            metrics.issued(&IssuedSample {
                profile: &issued.profile,
                key_type: issued.key_type,
                ca: &issued.ca,
                latency,
                ca_not_after: issued.ca_not_after,
                delegation_not_after: issued.delegation_not_after,
                now: issued.issued_at,
            });
        }
        None => {
            let record = response.extensions().get::<ErrorRecord>();
            let code = record.map_or("unknown", |e| e.code);
            audit::issuance_denied(
                code,
                response.status().as_u16(),
                &trail.profile,
                requester,
                id,
            );
            let rate_limit = record
                .and_then(|e| e.rate_limit.as_ref())
                .map(|(profile, limit)| RateLimitHit { profile, limit });
            metrics.refused(code, rate_limit);
        }
    }
}

fn log_server_fault(response: &Response) {
    if let Some(ErrorRecord {
        code,
        cause: Some(cause),
        ..
    }) = response.extensions().get::<ErrorRecord>()
    {
        tracing::error!(code, error = %cause, "request failed");
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

/// Enforces the header-size limit and the request timeout (body upload
/// included), each with a JSON error naming the limit.
pub(crate) async fn enforce_limits(
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
    if header_bytes > server.max_header_bytes {
        return AppError::HeadersTooLarge {
            limit: server.max_header_bytes,
        }
        .into_response();
    }
    match tokio::time::timeout(server.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::RequestTimeout {
            limit: server.request_timeout,
        }
        .into_response(),
    }
}

/// Reloads due CAs before a request is handled (Lambda mode; see
/// [`crate::ca::CaStore::refresh_due`]).
pub(crate) async fn refresh_due_cas(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    state.cas.refresh_due(&state.clock, &state.metrics).await;
    next.run(request).await
}
