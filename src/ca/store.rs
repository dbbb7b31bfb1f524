//! The CA store: every configured CA, loaded once before serving and
//! swapped atomically on refresh, so a request sees a whole CA, never half
//! of one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;

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
    /// Parameter Store CAs) and loads each once.
    pub async fn load(
        cas: &BTreeMap<String, CaConfig>,
        clock: &SharedClock,
        ssm_settings: &ssm::SsmSettings,
        on_failure: OnLoadFailure,
    ) -> Result<CaStore, CaError> {
        let mut ssm_client = None;
        let mut sources = Vec::new();
        for (name, ca) in cas {
            let source: Arc<dyn CaSource> = match &ca.source {
                CaSourceSpec::File(dir) => Arc::new(file::FileCaSource::new(dir.clone())),
                CaSourceSpec::Ssm(prefix) => {
                    if ssm_client.is_none() {
                        ssm_client = Some(ssm::client(ssm_settings).await);
                        tracing::debug!("SSM client built");
                    }
                    let client = ssm_client.clone().unwrap_or_else(|| unreachable!());
                    Arc::new(ssm::SsmCaSource::new(client, prefix.clone()))
                }
            };
            sources.push((name.clone(), source, ca.refresh));
        }
        Self::from_sources_with(sources, clock, on_failure).await
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
                    SigningCa::from_material(&name, &material, clock.now())
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
                Some(_) => clock.now().unix_timestamp() + secs(refresh),
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

    /// Reloads CA `name` from its source now. On failure the last good
    /// material stays in service and the error is returned. Returns whether
    /// the material changed.
    pub async fn refresh(&self, name: &str, clock: &SharedClock) -> Result<bool, CaError> {
        let Some(slot) = self.slots.get(name) else {
            return Ok(false);
        };
        let material = slot.source.load().await?;
        let fresh = SigningCa::from_material(name, &material, clock.now())?;
        let changed = match slot.current.load().as_ref() {
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
            let retry_in = match outcome {
                Ok(Ok(changed)) => {
                    metrics.ca_reloaded(name, true);
                    if changed {
                        tracing::info!(ca = %name, %source, "CA material loaded; signing with it now");
                    }
                    slot.refresh
                }
                Ok(Err(e)) => {
                    metrics.ca_reloaded(name, false);
                    tracing::warn!(ca = %name, %source, error = %e, loaded, "CA reload failed; keeping what is loaded");
                    if loaded {
                        RETRY_LOADED
                    } else {
                        RETRY_UNLOADED
                    }
                }
                Err(_) => {
                    metrics.ca_reloaded(name, false);
                    tracing::warn!(ca = %name, %source, loaded, "CA reload timed out; keeping what is loaded");
                    if loaded {
                        RETRY_LOADED
                    } else {
                        RETRY_UNLOADED
                    }
                }
            };
            slot.next_due.store(
                clock.now().unix_timestamp() + secs(retry_in),
                Ordering::Release,
            );
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
                    loop {
                        let loaded = store.get(&name).is_some();
                        tokio::time::sleep(if loaded { every } else { every.min(RETRY_UNLOADED) })
                            .await;
                        let outcome = store.refresh(&name, &clock).await;
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
