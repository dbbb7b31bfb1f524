//! The CA store: every configured CA, loaded once before serving and
//! swapped atomically on refresh, so a request sees a whole CA, never half
//! of one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::kms::{self, ChainSpec};
use super::{file, ssm, CaError, CaSource, SigningCa};
use super::{CaConfig, CaSourceSpec};
use crate::metrics::Metrics;
use crate::SharedClock;

/// One CA's slot: its source and the current checked material (none until
/// a first load succeeds).
#[derive(Debug)]
struct CaSlot {
    source: Arc<dyn CaSource>,
    refresh: Duration,
    current: ArcSwapOption<SigningCa>,
    /// Unix time at which [`CaStore::refresh_due`] next reloads this CA.
    next_due: AtomicI64,
    /// Set while one request reloads this CA, so others do not pile on.
    refreshing: AtomicBool,
}

/// Clears an "in progress" flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2)
}

/// What to do when a CA cannot be loaded at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLoadFailure {
    /// Refuse to start (a local server: the operator is watching).
    Fail,
    /// Start without it: requests get 503 `ca_unavailable`, `/healthz` says
    /// so, and the refresh task keeps retrying (Lambda: an init failure
    /// would surface as an opaque 502).
    ServeUnavailable,
}

/// When a loaded CA is next due: after its refresh interval, or when its
/// delegation is due for renewal if that is sooner (unix seconds).
fn due_after(ca: &SigningCa, clock: &SharedClock, refresh: Duration) -> i64 {
    clock.now().unix_timestamp() + secs(until_due(ca, clock, refresh))
}

/// How long until a loaded CA is next due (see [`due_after`]).
fn until_due(ca: &SigningCa, clock: &SharedClock, refresh: Duration) -> Duration {
    match ca.renew_by() {
        Some(renew_by) => {
            let left = (renew_by - clock.now()).max(time::Duration::ZERO);
            refresh.min(Duration::try_from(left).unwrap_or(Duration::ZERO))
        }
        None => refresh,
    }
}

fn retry_after_failure(loaded: bool) -> Duration {
    if loaded {
        RETRY_LOADED
    } else {
        RETRY_UNLOADED
    }
}

/// Retry interval while a CA has never loaded.
const RETRY_UNLOADED: Duration = Duration::from_secs(5);
/// Retry interval after a failed reload of a CA that is serving.
const RETRY_LOADED: Duration = Duration::from_secs(30);
/// Longest a request waits for an on-request reload before using what it has.
pub const ON_REQUEST_REFRESH_TIMEOUT: Duration = Duration::from_secs(3);

/// Every configured CA, each swappable atomically on refresh.
#[derive(Debug, Clone, Default)]
pub struct CaStore {
    slots: Arc<BTreeMap<String, CaSlot>>,
}

impl CaStore {
    /// Builds the source for each configured CA (one SSM client for all
    /// Parameter Store CAs, one KMS client for all KMS keys) and loads each once.
    pub async fn load(
        cas: &BTreeMap<String, CaConfig>,
        clock: &SharedClock,
        ssm_settings: &ssm::SsmSettings,
        on_failure: OnLoadFailure,
    ) -> Result<CaStore, CaError> {
        CaStore::load_measured(cas, clock, ssm_settings, on_failure, &Metrics::Off).await
    }

    /// [`load`](Self::load), the KMS keys' calls (`GetPublicKey`, `Sign`)
    /// reported to `metrics`.
    pub async fn load_measured(
        cas: &BTreeMap<String, CaConfig>,
        clock: &SharedClock,
        ssm_settings: &ssm::SsmSettings,
        on_failure: OnLoadFailure,
        metrics: &Metrics,
    ) -> Result<CaStore, CaError> {
        let mut ssm_client = None;
        let mut kms_client = None;
        let mut sources = Vec::new();
        for (name, ca) in cas {
            let source: Arc<dyn CaSource> = match &ca.source {
                CaSourceSpec::File(dir) => Arc::new(file::FileCaSource::new(dir.clone())),
                CaSourceSpec::Ssm(prefix) => {
                    let client = Self::ssm_client(&mut ssm_client, ssm_settings).await;
                    Arc::new(ssm::SsmCaSource::new(client, prefix.clone()))
                }
                CaSourceSpec::Kms {
                    key_id,
                    chain,
                    mode,
                } => {
                    let certificates: Arc<dyn CaSource> = match chain {
                        ChainSpec::File(dir) => {
                            Arc::new(file::FileCaSource::certificates(dir.clone()))
                        }
                        ChainSpec::Ssm(prefix) => {
                            let client = Self::ssm_client(&mut ssm_client, ssm_settings).await;
                            Arc::new(ssm::SsmCaSource::certificates(client, prefix.clone()))
                        }
                    };
                    if kms_client.is_none() {
                        kms_client = Some(kms::client(ssm_settings).await);
                        tracing::debug!("KMS client built");
                    }
                    let client = kms_client.clone().unwrap_or_else(|| unreachable!());
                    Arc::new(
                        kms::KmsCaSource::new(client, key_id.clone(), certificates, *mode)
                            .measured(metrics.clone()),
                    )
                }
            };
            sources.push((name.clone(), source, ca.refresh));
        }
        Self::from_sources_with(sources, clock, on_failure).await
    }

    /// The one SSM client, built on first use.
    async fn ssm_client(
        client: &mut Option<aws_sdk_ssm::Client>,
        settings: &ssm::SsmSettings,
    ) -> aws_sdk_ssm::Client {
        if client.is_none() {
            *client = Some(ssm::client(settings).await);
            tracing::debug!("SSM client built");
        }
        client.clone().unwrap_or_else(|| unreachable!())
    }

    /// Loads CAs from explicit sources: (name, source, refresh interval),
    /// failing if any cannot be loaded.
    pub async fn from_sources(
        sources: Vec<(String, Arc<dyn CaSource>, Duration)>,
        clock: &SharedClock,
    ) -> Result<CaStore, CaError> {
        Self::from_sources_with(sources, clock, OnLoadFailure::Fail).await
    }

    /// Loads CAs from explicit sources with the given start-up policy.
    pub async fn from_sources_with(
        sources: Vec<(String, Arc<dyn CaSource>, Duration)>,
        clock: &SharedClock,
        on_failure: OnLoadFailure,
    ) -> Result<CaStore, CaError> {
        let mut slots = BTreeMap::new();
        for (name, source, refresh) in sources {
            let loaded = match source.load().await {
                Ok(material) => {
                    tracing::debug!(ca = %name, source = %source.describe(), "CA material fetched");
                    SigningCa::from_material(&name, &material, clock.now()).await
                }
                Err(e) => Err(e),
            };
            let current = match (loaded, on_failure) {
                (Ok(ca), _) => Some(Arc::new(ca)),
                (Err(e), OnLoadFailure::Fail) => return Err(e),
                (Err(e), OnLoadFailure::ServeUnavailable) => {
                    tracing::error!(ca = %name, source = %source.describe(), error = %e,
                        "CA not loaded; answering 503 ca_unavailable and retrying");
                    None
                }
            };
            let next_due = match &current {
                Some(ca) => due_after(ca, clock, refresh),
                None => clock.now().unix_timestamp(),
            };
            slots.insert(
                name,
                CaSlot {
                    source,
                    refresh,
                    current: ArcSwapOption::new(current),
                    next_due: AtomicI64::new(next_due),
                    refreshing: AtomicBool::new(false),
                },
            );
        }
        Ok(CaStore {
            slots: Arc::new(slots),
        })
    }

    /// The current material of CA `name`, if it is configured and loaded.
    pub fn get(&self, name: &str) -> Option<Arc<SigningCa>> {
        self.slots
            .get(name)
            .and_then(|slot| slot.current.load_full())
    }

    /// Every configured CA by name, with its material when loaded.
    pub fn all(&self) -> Vec<(String, Option<Arc<SigningCa>>)> {
        self.slots
            .iter()
            .map(|(name, s)| (name.clone(), s.current.load_full()))
            .collect()
    }

    /// Reloads CA `name` from its source now. Material identical to what
    /// is in service keeps the CA in service (no rebuild, no KMS `Sign`),
    /// unless it is a delegated CA due for renewal. On failure the last good
    /// material stays in service and the error is returned. Returns whether
    /// the CA changed.
    pub async fn refresh(&self, name: &str, clock: &SharedClock) -> Result<bool, CaError> {
        let Some(slot) = self.slots.get(name) else {
            return Ok(false);
        };
        let material = slot.source.load().await?;
        let current = slot.current.load_full();
        if let Some(current) = &current {
            if current.is_current_for(&material, clock.now()) {
                return Ok(false);
            }
        }
        let fresh = SigningCa::from_material(name, &material, clock.now()).await?;
        let changed = match &current {
            Some(current) => {
                current.cert_der != fresh.cert_der || current.chain_der != fresh.chain_der
            }
            None => true,
        };
        if changed {
            slot.current.store(Some(Arc::new(fresh)));
        }
        Ok(changed)
    }

    /// Reloads every CA whose refresh interval has passed (or that has never
    /// loaded), waiting at most [`ON_REQUEST_REFRESH_TIMEOUT`]. This is the
    /// refresh of Lambda mode: Lambda freezes the execution environment
    /// between events, so a background timer would fire late and its SSM
    /// call would be frozen mid-flight; a request is the only time the
    /// environment runs. On failure the current CA stays in service and the
    /// next attempt is a little later.
    pub async fn refresh_due(&self, clock: &SharedClock, metrics: &Metrics) {
        for (name, slot) in self.slots.iter() {
            let now = clock.now().unix_timestamp();
            if now < slot.next_due.load(Ordering::Acquire)
                || slot.refreshing.swap(true, Ordering::AcqRel)
            {
                continue;
            }
            // Cleared however this ends, even if the request future is dropped mid-reload.
            let _reloading = ClearOnDrop(&slot.refreshing);
            let loaded = slot.current.load().is_some();
            let outcome =
                tokio::time::timeout(ON_REQUEST_REFRESH_TIMEOUT, self.refresh(name, clock)).await;
            let source = slot.source.describe();
            let next_due = match outcome {
                Ok(Ok(changed)) => {
                    metrics.ca_reloaded(name, true);
                    if changed {
                        tracing::info!(ca = %name, %source, "CA material loaded; signing with it now");
                    }
                    match slot.current.load_full() {
                        Some(ca) => due_after(&ca, clock, slot.refresh),
                        None => clock.now().unix_timestamp() + secs(RETRY_UNLOADED),
                    }
                }
                Ok(Err(e)) => {
                    metrics.ca_reloaded(name, false);
                    tracing::warn!(ca = %name, %source, error = %e, loaded, "CA reload failed; keeping what is loaded");
                    clock.now().unix_timestamp() + secs(retry_after_failure(loaded))
                }
                Err(_) => {
                    metrics.ca_reloaded(name, false);
                    tracing::warn!(ca = %name, %source, loaded, "CA reload timed out; keeping what is loaded");
                    clock.now().unix_timestamp() + secs(retry_after_failure(loaded))
                }
            };
            slot.next_due.store(next_due, Ordering::Release);
        }
    }

    /// Spawns one task per CA that reloads it at its refresh interval (every
    /// few seconds while it has never loaded), logging, never panicking on,
    /// failures.
    pub fn spawn_refresh(
        &self,
        clock: SharedClock,
        metrics: Metrics,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        self.slots
            .iter()
            .map(|(name, slot)| {
                let store = self.clone();
                let name = name.clone();
                let clock = clock.clone();
                let every = slot.refresh;
                let source = slot.source.describe();
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let mut failed = false;
                    loop {
                        let current = store.get(&name);
                        let loaded = current.is_some();
                        let wait = match &current {
                            // After a failure, back off even if a renewal is overdue.
                            Some(_) if failed => every.min(RETRY_LOADED),
                            Some(ca) => until_due(ca, &clock, every),
                            None => every.min(RETRY_UNLOADED),
                        };
                        drop(current);
                        tokio::time::sleep(wait).await;
                        let outcome = store.refresh(&name, &clock).await;
                        failed = outcome.is_err();
                        metrics.ca_reloaded(&name, outcome.is_ok());
                        match outcome {
                            Ok(true) => tracing::info!(ca = %name, %source, "CA material loaded; signing with it now"),
                            Ok(false) => tracing::debug!(ca = %name, "CA material unchanged"),
                            Err(e) if loaded => tracing::warn!(ca = %name, %source, error = %e, "CA refresh failed; still signing with the last good CA"),
                            Err(e) => tracing::error!(ca = %name, %source, error = %e, "CA still not loaded"),
                        }
                    }
                })
            })
            .collect()
    }
}
