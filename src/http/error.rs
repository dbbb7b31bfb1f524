//! The one error type of the HTTP layer and its mapping to status codes and
//! JSON bodies. Turning an error into a response has no side effect: a
//! server fault's cause travels in the response's [`ErrorRecord`] and the
//! outermost layer logs it.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use session_ca_client::{ErrorBody, ErrorDetail};

use crate::auth::AuthError;
use crate::issuer::IssueError;
use crate::profile::PolicyError;
use crate::request::RequestError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The body is not JSON, or not a request.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The caller is not authenticated (no IAM principal, a bad HMAC signature).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The request breaks the profile's policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// No profile by that name (the name is shortened to 64 characters).
    #[error("unknown profile {0:?}")]
    UnknownProfile(String),
    /// The body is larger than allowed.
    #[error("the request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request headers are larger than allowed.
    #[error("the request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The request (body upload included) took longer than allowed.
    #[error("the request took longer than the limit of {} ms", limit.as_millis())]
    RequestTimeout {
        /// The limit.
        limit: std::time::Duration,
    },
    /// The body could not be read.
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The content type is not JSON.
    #[error("Content-Type must be application/json, got {0}")]
    UnsupportedMediaType(String),
    /// A query parameter is malformed.
    #[error("invalid query string: {0}")]
    InvalidQuery(String),
    /// No route at this path.
    #[error("no route {method} {path}; see api-spec/openapi.yaml")]
    NotFound {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The route exists but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path asked for.
        path: String,
    },
    /// The CA cannot sign (expired, not yet valid, not loaded); the detail is
    /// logged, the client is told only that the CA is unavailable.
    #[error("no usable CA for this profile: {0}")]
    CaUnavailable(String),
    /// The caller may not query the ledger (not in `admin.callers`).
    #[error("caller {0:?} is not an administrator: admin.callers does not name it")]
    NotAdmin(String),
    /// The session, transaction or requester of the request is revoked.
    #[error("{0}")]
    Revoked(String),
    /// No CA by that name (the name is shortened to 64 characters).
    #[error("unknown CA {0:?}")]
    UnknownCa(String),
    /// The CA cannot give a CRL (a KMS-delegated CA); the message says why.
    #[error("{0}")]
    CrlUnavailable(String),
    /// The ledger was asked for, and none is configured.
    #[error("no ledger is configured (store.url is \"none\")")]
    NoLedger,
    /// The ledger could not record the certificate, so it is not returned;
    /// the cause, for the log.
    #[error("the ledger could not record the certificate: {0}")]
    LedgerUnavailable(String),
    /// The CA key's holder (AWS KMS) did not sign; the cause, for the log.
    #[error("the CA key's holder did not sign: {0}")]
    KeyHolderUnavailable(String),
    /// The service is not configured to sign (Lambda mode refused its
    /// configuration at start-up); the message names the setting to fix.
    #[error("the signer is not configured: {0}")]
    NotConfigured(String),
    /// The `Idempotency-Key` header is malformed.
    #[error(
        "the Idempotency-Key header must be given once, 16 to 128 characters of A-Z, a-z, 0-9, \
         '-' and '_'"
    )]
    InvalidIdempotencyKey,
    /// The `Idempotency-Key` was used by this caller for another request.
    #[error(
        "this Idempotency-Key was used for a different request body; use a fresh key for a new \
         request and the same body for a retry"
    )]
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being served.
    #[error(
        "a request with this Idempotency-Key is still being served; retry after {retry_after} s \
         with the same key"
    )]
    IdempotencyInProgress {
        /// Seconds to wait (`Retry-After`).
        retry_after: u64,
    },
    /// A rate limit of the profile is exhausted for this window.
    #[error(
        "rate limit {limit} = \"{rate}\" of profile {profile:?} is exhausted; retry after \
         {retry_after} s"
    )]
    RateLimited {
        /// The profile.
        profile: String,
        /// The limit's setting name (`per_caller`, ...).
        limit: &'static str,
        /// The limit, as configured (`600/min`).
        rate: String,
        /// Seconds until its window ends (`Retry-After`).
        retry_after: u64,
    },
    /// The store (rate counters, nonces, idempotent responses) could not
    /// be reached; the cause, for the log.
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// A fault that is not the caller's; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<IssueError> for AppError {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::CaExpired(_) | IssueError::CaNotYetValid(_) => {
                AppError::CaUnavailable(e.to_string())
            }
            IssueError::KeyUnavailable(_) => AppError::KeyHolderUnavailable(e.to_string()),
            IssueError::KeyGeneration(_)
            | IssueError::Random(_)
            | IssueError::UriSanNotIa5
            | IssueError::Signing(_)
            | IssueError::Pkcs12(_) => AppError::Internal(e.to_string()),
        }
    }
}

impl AppError {
    /// An unknown-profile error echoing at most 64 characters of the name.
    pub fn unknown_profile(name: &str) -> AppError {
        AppError::UnknownProfile(shortened(name))
    }

    /// An unknown-CA error echoing at most 64 characters of the name.
    pub fn unknown_ca(name: &str) -> AppError {
        AppError::UnknownCa(shortened(name))
    }

    /// Status and stable code, in one exhaustive match.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Request(RequestError::InvalidJson(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_json")
            }
            AppError::Request(RequestError::InvalidRequest(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            AppError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "invalid_query"),
            AppError::BodyUnreadable(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            AppError::Auth(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::Policy(PolicyError::CallerNotAllowed { .. }) => {
                (StatusCode::FORBIDDEN, "caller_not_allowed")
            }
            AppError::Policy(PolicyError::InvalidCsr(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_csr")
            }
            AppError::Policy(p) => (StatusCode::UNPROCESSABLE_ENTITY, p.code()),
            AppError::UnknownProfile(_) => (StatusCode::NOT_FOUND, "unknown_profile"),
            AppError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AppError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            AppError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            AppError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            AppError::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            AppError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::CaUnavailable(_) | AppError::KeyHolderUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ca_unavailable")
            }
            AppError::LedgerUnavailable(_) | AppError::StoreUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "ledger_unavailable")
            }
            AppError::InvalidIdempotencyKey => (StatusCode::BAD_REQUEST, "invalid_request"),
            AppError::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            AppError::IdempotencyInProgress { .. } => {
                (StatusCode::CONFLICT, "idempotency_in_progress")
            }
            AppError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::NotAdmin(_) => (StatusCode::FORBIDDEN, "caller_not_allowed"),
            AppError::Revoked(_) => (StatusCode::FORBIDDEN, "revoked"),
            AppError::UnknownCa(_) => (StatusCode::NOT_FOUND, "unknown_ca"),
            AppError::CrlUnavailable(_) => (StatusCode::CONFLICT, "crl_unavailable"),
            AppError::NoLedger => (StatusCode::NOT_FOUND, "not_found"),
            AppError::NotConfigured(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_configured"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The message sent to the client: precise for client errors, generic for server faults.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => INTERNAL_MESSAGE.into(),
            AppError::CaUnavailable(_) => "the CA for this profile cannot sign right now \
                (expired, not yet valid or not loaded); the cause is in the signer's logs"
                .into(),
            AppError::LedgerUnavailable(_) => "the ledger is unavailable: nothing is issued or \
                revoked unless it is recorded; retry later, the cause is in the signer's logs"
                .into(),
            AppError::StoreUnavailable(_) => "the signer's store (rate limits, replay \
                protection, idempotent responses) is unavailable, so nothing is issued; retry \
                later, the cause is in the signer's logs"
                .into(),
            AppError::KeyHolderUnavailable(_) => "the CA key held in AWS KMS cannot sign right \
                now (throttled, disabled or unreachable); retry later, the cause is in the \
                signer's logs"
                .into(),
            other => other.to_string(),
        }
    }
}

/// At most 64 characters of `name`, marked when cut.
fn shortened(name: &str) -> String {
    let mut shown: String = name.chars().take(64).collect();
    if shown.len() < name.len() {
        shown.push('…');
    }
    shown
}

const INTERNAL_MESSAGE: &str = "the signer hit an internal error; the cause is in its logs";

/// The response for a handler that panicked (it should never happen; the
/// panic message stays in the log, never in the response).
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into());
    AppError::Internal(format!("handler panicked: {detail}")).into_response()
}

/// What a response says of the error it carries, for the outermost layer:
/// the stable code (for the audit event) and, for a server fault, the cause
/// to log (never sent to the client).
#[derive(Debug, Clone)]
pub(crate) struct ErrorRecord {
    /// The error's stable code.
    pub(crate) code: &'static str,
    /// The full error text of a 5xx, for the log.
    pub(crate) cause: Option<String>,
    /// For a refusal by a rate limit: the profile and the limit's name,
    /// for the metrics.
    pub(crate) rate_limit: Option<(String, &'static str)>,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.public_message(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorRecord {
            code,
            cause: status.is_server_error().then(|| self.to_string()),
            rate_limit: match &self {
                AppError::RateLimited { profile, limit, .. } => Some((profile.clone(), *limit)),
                _ => None,
            },
        });
        if status == StatusCode::METHOD_NOT_ALLOWED {
            if let AppError::MethodNotAllowed { path, .. } = &self {
                let allow = super::allowed_methods(path);
                if let Ok(v) = allow.parse() {
                    response.headers_mut().insert(header::ALLOW, v);
                }
            }
        }
        if let AppError::RateLimited { retry_after, .. }
        | AppError::IdempotencyInProgress { retry_after } = &self
        {
            // RFC 9110 §10.2.3: when to try again, in seconds.
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from(*retry_after),
            );
        }
        if let AppError::Auth(AuthError::Hmac(_)) = &self {
            // RFC 9110 §11.6.1: a 401 names the scheme to authenticate with.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(session_ca_client::hmac::SCHEME),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn server_faults_say_nothing_of_their_cause() {
        let response = AppError::Internal("rcgen exploded at /secret/path".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("secret"), "{body}");

        let response = panic_response(Box::new("index out of bounds: private detail"));
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("private detail"), "{body}");

        let response =
            AppError::CaUnavailable("CA \"payments-ca\" expired at 2026".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!body_of(response).await.to_string().contains("payments-ca"));
    }

    #[test]
    fn only_server_faults_carry_their_cause_for_the_log() {
        let response = AppError::Internal("rcgen exploded".into()).into_response();
        let record = response.extensions().get::<ErrorRecord>().unwrap();
        assert_eq!(record.code, "internal_error");
        assert_eq!(
            record.cause.as_deref(),
            Some("internal error: rcgen exploded")
        );
        let response = AppError::unknown_profile("nope").into_response();
        let record = response.extensions().get::<ErrorRecord>().unwrap();
        assert_eq!(record.code, "unknown_profile");
        assert_eq!(record.cause, None);
    }

    #[test]
    fn unknown_profile_names_are_shortened() {
        let long = "p".repeat(10_000);
        let message = AppError::unknown_profile(&long).public_message();
        assert!(message.len() < 100, "{message}");
        assert_eq!(
            AppError::unknown_profile("x").public_message(),
            "unknown profile \"x\""
        );
    }
}
