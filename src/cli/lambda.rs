//! Lambda mode: the router under `lambda_http`, configuration from the environment.
use std::sync::Arc;

use anyhow::Result;
use session_ca::{
    AppState, CaStore, Config, Emf, Metrics, OnLoadFailure, ProcessEnv, SharedClock, SsmSettings,
    SystemClock,
};

use super::serve::log_loaded;

/// Lambda mode: configuration from the environment, CA loaded once per
/// execution environment before the first event, IAM callers. A CA that
/// cannot be loaded yields 503s (and retries), never an init failure that
/// API Gateway would turn into an opaque 502.
pub(super) async fn run() -> Result<()> {
    let config = match Config::load_lambda(&ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            // Answer every event with a 503 naming the setting rather than
            // failing the init, which callers would only see as an opaque 502.
            tracing::error!(error = %e, "invalid configuration; answering every request with 503 not_configured");
            return session_ca::run_lambda_misconfigured(
                &e.public_summary(),
                metrics_despite_the_configuration(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"));
        }
    };
    tracing::debug!("configuration loaded");
    let clock: SharedClock = Arc::new(SystemClock);
    // Metrics: EMF lines on stdout, which CloudWatch Logs extracts.
    let metrics = if config.metrics.enabled {
        Metrics::Emf(Arc::new(Emf::stdout(&config.metrics.namespace)))
    } else {
        Metrics::Off
    };
    let cas = CaStore::load_measured(
        &config.cas,
        &clock,
        &SsmSettings::default(),
        OnLoadFailure::ServeUnavailable,
        &metrics,
    )
    .await?;
    log_loaded(&cas, &config, clock.now());
    // No background refresh: Lambda freezes the environment between events,
    // so the router reloads due CAs at the start of requests instead.
    let refusals_counted = metrics.clone();
    let ledger = match session_ca::open_ledger(
        &config.store.spec,
        config.store.retention,
        config.store.sync,
        &SsmSettings::default(),
        &metrics,
    )
    .await
    {
        Ok(ledger) => ledger,
        Err(e) => {
            // Fail closed: no certificate without its record.
            tracing::error!(error = %e, "cannot open the ledger; answering every request with 503 not_configured");
            // The cause (a path, an endpoint, the SDK's words) stays in
            // the log: the reason is answered to any caller.
            let reason = "the ledger (store.url) cannot be opened; the function's log says why";
            return session_ca::run_lambda_misconfigured(reason, refusals_counted)
                .await
                .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"));
        }
    };
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics,
        ledger,
    };
    tracing::info!(
        crypto = session_ca::crypto::LIBRARY,
        "session-ca ready for Lambda events"
    );
    session_ca::run_lambda(state)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))
}

/// The EMF metrics of a Lambda whose configuration was refused: its
/// `not_configured` refusals are still counted, under the namespace the
/// environment names when that one is valid (else the default), unless
/// metrics are turned off there.
fn metrics_despite_the_configuration() -> Metrics {
    let enabled = std::env::var("SESSION_CA_METRICS__ENABLED").ok();
    if enabled.as_deref().map(str::trim) == Some("false") {
        return Metrics::Off;
    }
    let namespace = std::env::var("SESSION_CA_METRICS__NAMESPACE")
        .ok()
        .filter(|ns| session_ca::is_valid_metrics_namespace(ns))
        .unwrap_or_else(|| session_ca::DEFAULT_METRICS_NAMESPACE.to_owned());
    Metrics::Emf(Arc::new(Emf::stdout(&namespace)))
}
