//! `session-ca serve`: the HTTP signer on a local TCP listener.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use session_ca::{
    app, ca_exists, create_ca, metrics_app, AppState, AuthMode, CaSourceSpec, CaStore, Clock,
    Config, ConfigOrigin, InitOptions, KeyType, Metrics, OnLoadFailure, ProcessEnv,
    PrometheusRegistry, SharedClock, SsmSettings, SystemClock, DEFAULT_CA_SUBJECT,
};

use super::rfc3339;

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Configuration file (TOML); also SESSION_CA_CONFIG.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on (repeatable); overrides server.listen.
    #[arg(long, value_name = "IP:PORT")]
    listen: Vec<String>,
}

pub(super) async fn serve(args: ServeArgs) -> Result<()> {
    let overrides = if args.listen.is_empty() {
        Vec::new()
    } else {
        vec![(
            "server.listen".to_owned(),
            toml::Value::Array(
                args.listen
                    .iter()
                    .cloned()
                    .map(toml::Value::String)
                    .collect(),
            ),
        )]
    };
    let config = Config::load(args.config.as_deref(), &ProcessEnv, &overrides)?;
    if config.auth.mode() == AuthMode::Iam {
        bail!(
            "auth \"iam\" takes the caller from the Lambda request context, which `serve` does \
             not have; use it in Lambda mode"
        );
    }
    let clock: SharedClock = Arc::new(SystemClock);

    if config.origin == ConfigOrigin::Embedded {
        for ca in config.cas.values() {
            if let CaSourceSpec::File(dir) = &ca.source {
                if !ca_exists(dir) {
                    create_development_ca(dir, &*clock)?;
                }
            }
        }
    }

    let metrics = if config.metrics.enabled {
        Metrics::Prometheus(Arc::new(PrometheusRegistry::new()))
    } else {
        Metrics::Off
    };
    let cas = CaStore::load_measured(
        &config.cas,
        &clock,
        &SsmSettings::default(),
        OnLoadFailure::Fail,
        &metrics,
    )
    .await?;
    log_loaded(&cas, &config, clock.now());
    cas.spawn_refresh(clock.clone(), metrics.clone());

    let listen = config.server.listen.clone();
    let metrics_listen = config
        .server
        .metrics_listen
        .filter(|_| config.metrics.enabled);
    let header_read_timeout = config.server.request_timeout;
    let auth = config.auth.mode();
    let ledger = session_ca::open_ledger(
        &config.store.spec,
        config.store.retention,
        config.store.sync,
        &SsmSettings::default(),
        &metrics,
    )
    .await
    .context("cannot open the ledger (store.url)")?;
    if let Some(store) = ledger.store() {
        tracing::info!(store = %store.describe(), "recording every certificate in the ledger");
    }
    let state = AppState {
        config: Arc::new(config),
        cas,
        clock,
        metrics,
        ledger,
    };
    let router = app(state.clone());

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for addr in listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local: SocketAddr = listener.local_addr()?;
        tracing::info!(address = %local, %auth, crypto = session_ca::crypto::LIBRARY, "session-ca listening");
        let router = router.clone();
        let mut stop = stop_rx.clone();
        servers.spawn(session_ca::serve_tcp(
            listener,
            router,
            header_read_timeout,
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
        ));
    }

    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        let local: SocketAddr = listener.local_addr()?;
        tracing::info!(address = %local, "session-ca metrics listening");
        let mut stop = stop_rx.clone();
        servers.spawn(session_ca::serve_tcp(
            listener,
            metrics_app(state),
            header_read_timeout,
            async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            },
        ));
    }

    tokio::select! {
        () = shutdown_signal() => {
            tracing::info!("shutting down: finishing requests in flight");
        }
        Some(result) = servers.join_next() => {
            result.context("a listener task failed")?.context("a listener failed")?;
        }
    }
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        result
            .context("a listener task failed")?
            .context("a listener failed")?;
    }
    Ok(())
}

pub(super) fn create_development_ca(dir: &Path, clock: &dyn Clock) -> Result<()> {
    let created = create_ca(
        &InitOptions {
            dir: dir.to_path_buf(),
            key_type: KeyType::EcdsaP256,
            subject: DEFAULT_CA_SUBJECT.to_owned(),
            validity_days: 3650,
            intermediate: false,
            path_len: 0,
            force: false,
        },
        clock.now(),
    )?;
    tracing::warn!(
        dir = %dir.display(),
        "created a DEVELOPMENT CA because none existed; do not trust it beyond this machine \
         (production CAs come from `session-ca init` and a configuration file)"
    );
    for file in created.files {
        tracing::debug!(file = %file.display(), "wrote");
    }
    Ok(())
}

pub(super) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

pub(super) fn log_loaded(cas: &CaStore, config: &Config, now: time::OffsetDateTime) {
    for (name, ca) in cas.all() {
        if let Some(ca) = ca {
            tracing::info!(ca = %name, subject = %ca.subject, not_after = %rfc3339(ca.not_after), "CA loaded");
        }
    }
    for expiring in session_ca::expiring_cas(config, cas, now) {
        tracing::warn!(
            ca = %expiring.name,
            not_after = %rfc3339(expiring.not_after),
            max_ttl_seconds = expiring.max_ttl.as_secs(),
            "CA expires within the max_ttl of its profiles: certificates are shortened to its expiry; rotate it"
        );
    }
}
