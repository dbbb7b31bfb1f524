//! The HTTP API: one axum `Router` ([`app`]), served by the local TCP
//! server ([`server`]) and by the Lambda runtime ([`lambda`]).
//!
//! A request passes, outermost first: [`layers::observe`] (correlation id,
//! the audit event of every issuance decision, the log line of every 5xx),
//! the panic catcher, [`layers::enforce_limits`], the body limit, then the
//! route's handler in [`handlers`], whose authenticated caller comes from
//! the [`extract::Authenticated`] extractor. Handlers return
//! `Result<_, AppError>`; [`error`] maps every error to its status and code
//! in one match.

pub mod error;
mod extract;
mod handlers;
mod idempotency;
pub mod lambda;
mod layers;
mod ledger;
mod rate_limit;
mod revocations;
pub mod server;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use error::AppError;
pub use revocations::CRL_MEDIA_TYPE;

use crate::ca::CaStore;
use crate::config::Config;
use crate::metrics::Metrics;
use session_ca_verify::SharedClock;

/// Header carrying the correlation id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Media type of `GET /v1/ca` (RFC 8555 §9.1).
pub const PEM_CHAIN_MEDIA_TYPE: &str = "application/pem-certificate-chain";
/// The media type of a CRL as PEM (`GET /v1/crl?format=pem`).
pub const PEM_FILE_MEDIA_TYPE: &str = "application/x-pem-file";
/// Media type of `GET /v1/ca?format=pkcs12` (RFC 7292 Appendix D).
pub const PKCS12_MEDIA_TYPE: &str = "application/pkcs12";
/// The profile used when a request names none.
pub const DEFAULT_PROFILE: &str = "default";
/// The path of issuance, whose every outcome is audited.
pub(crate) const ISSUE_PATH: &str = "/v1/certificates";
/// The path of revocations.
pub(crate) const REVOCATIONS_PATH: &str = "/v1/revocations";
/// The path of the Prometheus exposition.
pub const METRICS_PATH: &str = "/metrics";

/// Shared, read-only state of the service.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The CAs.
    pub cas: CaStore,
    /// The clock certificates are stamped with.
    pub clock: SharedClock,
    /// Where metrics go (Prometheus in `serve`, EMF in Lambda, or off).
    pub metrics: Metrics,
    /// Where every issued certificate is recorded before it is returned (or off).
    pub ledger: crate::store::Ledger,
}

/// The service's routes.
pub fn app(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    let limits = axum::middleware::from_fn_with_state(state.clone(), layers::enforce_limits);
    let mut router = Router::new()
        .route(
            ISSUE_PATH,
            post(handlers::issue_certificate).get(ledger::list_certificates),
        )
        .route("/v1/ca", get(handlers::ca_chain))
        .route("/v1/crl", get(revocations::current_crl))
        .route(REVOCATIONS_PATH, post(revocations::create_revocation))
        .route("/healthz", get(handlers::healthz));
    // Prometheus metrics on the main listener, unless they have their own.
    if matches!(state.metrics, Metrics::Prometheus(_))
        && state.config.server.metrics_listen.is_none()
    {
        router = router.route(METRICS_PATH, get(handlers::metrics));
    }
    router
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(limits)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            error::panic_response,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            layers::observe,
        ))
        .with_state(state)
}

/// The router of `server.metrics_listen`: `GET /metrics` alone.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, get(handlers::metrics))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Metrics::Off,
            layers::observe,
        ))
        .with_state(state)
}

/// The service of a Lambda whose configuration was refused at start-up
/// (`reason`, which names the setting): every request gets 503
/// `not_configured` with that reason, and `GET /healthz` says it too.
/// Each refusal is counted in `metrics` (`Refusals`, `ErrorCode =
/// not_configured`), so that an alarm sees a function that answers but
/// issues nothing.
pub fn misconfigured(reason: &str, metrics: Metrics) -> Router {
    let reason: Arc<str> = reason.into();
    let health = {
        let reason = reason.clone();
        move || handlers::healthz_not_configured(reason.clone())
    };
    Router::new()
        .route("/healthz", get(health))
        .fallback(move || {
            let reason = reason.clone();
            async move { AppError::NotConfigured(reason.to_string()) }
        })
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            layers::observe,
        ))
}

/// The methods each route answers, for the `Allow` header of a 405.
pub(crate) fn allowed_methods(path: &str) -> &'static str {
    match path {
        ISSUE_PATH => "GET, HEAD, POST",
        REVOCATIONS_PATH => "POST",
        _ => "GET, HEAD",
    }
}
