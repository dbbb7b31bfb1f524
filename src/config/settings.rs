//! The configuration file's shape (what serde reads) and its validation
//! into a [`Config`]; defaults are given here, once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use session_ca_verify::{ObjectId, DEFAULT_OID_ARC};

use super::{
    CaConfig, CaSourceSpec, Config, ConfigError, ConfigOrigin, CrlConfig, EnvSource, MetricsConfig,
    ServerConfig, StoreConfig,
};
use crate::auth::settings::HmacKeySettings;
use crate::auth::{Auth, AuthMode};
use crate::ca::kms::KmsMode;
use crate::fmt::{is_valid_name, DurationSetting};
use crate::profile::settings::{reserved_arcs, ProfileSettings};
use crate::profile::Profile;
use crate::store::StoreSpec;

/// Deepest `max_json_depth` allowed.
pub const MAX_JSON_DEPTH_CAP: usize = 32;

/// One string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    claims: RawClaims,
    #[serde(default)]
    cas: BTreeMap<String, RawCa>,
    #[serde(default)]
    profiles: BTreeMap<String, ProfileSettings>,
    #[serde(default)]
    hmac_keys: BTreeMap<String, HmacKeySettings>,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    crl: RawCrl,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCrl {
    next_update: Option<DurationSetting>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default)]
    callers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    retention: Option<DurationSetting>,
    sync: Option<crate::store::StoreSync>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_namespace")]
    namespace: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics {
            enabled: true,
            namespace: default_namespace(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_namespace() -> String {
    crate::metrics::emf::DEFAULT_NAMESPACE.to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: OneOrMany,
    #[serde(default)]
    auth: AuthMode,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: usize,
    #[serde(default = "default_max_header_bytes")]
    max_header_bytes: usize,
    request_timeout: Option<DurationSetting>,
    hmac_max_skew: Option<DurationSetting>,
    metrics_listen: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            auth: AuthMode::default(),
            max_body_bytes: default_max_body_bytes(),
            max_header_bytes: default_max_header_bytes(),
            request_timeout: None,
            hmac_max_skew: None,
            metrics_listen: None,
        }
    }
}

fn default_listen() -> OneOrMany {
    OneOrMany::One("127.0.0.1:8080".into())
}

fn default_max_header_bytes() -> usize {
    16 * 1024
}

fn default_max_body_bytes() -> usize {
    64 * 1024
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaims {
    #[serde(default = "default_oid_arc")]
    oid_arc: String,
    #[serde(default = "default_max_json_depth")]
    max_json_depth: usize,
}

impl Default for RawClaims {
    fn default() -> Self {
        RawClaims {
            oid_arc: default_oid_arc(),
            max_json_depth: default_max_json_depth(),
        }
    }
}

fn default_oid_arc() -> String {
    DEFAULT_OID_ARC.into()
}

fn default_max_json_depth() -> usize {
    8
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCa {
    source: String,
    chain: Option<String>,
    delegate: Option<DurationSetting>,
    refresh: Option<DurationSetting>,
}

impl RawConfig {
    pub(super) fn validate(
        self,
        origin: ConfigOrigin,
        env: &dyn EnvSource,
    ) -> Result<Config, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };

        let auth = Auth::from_settings(
            self.server.auth,
            &self.hmac_keys,
            self.server.hmac_max_skew.map(|d| d.0),
            &|name| env.var(name),
        )
        .map_err(|(field, message)| invalid(field, message))?;

        let mut listen = Vec::new();
        for addr in self.server.listen.into_vec() {
            let parsed: SocketAddr = addr.parse().map_err(|_| {
                invalid(
                    "server.listen".into(),
                    format!("{addr:?} is not an IP:port address such as \"127.0.0.1:8080\""),
                )
            })?;
            listen.push(parsed);
        }
        if listen.is_empty() {
            return Err(invalid("server.listen".into(), "no listen address".into()));
        }
        if self.server.auth == AuthMode::None {
            if let Some(open) = listen.iter().find(|a| !a.ip().is_loopback()) {
                return Err(invalid(
                    "server.auth".into(),
                    format!(
                        "auth \"none\" is only allowed on loopback addresses, but server.listen \
                         has {open}; listen on 127.0.0.1 or [::1], or configure authentication"
                    ),
                ));
            }
        }
        // hyper answers a bare 431 on its own above about 400 KiB of headers.
        if !(1024..=256 * 1024).contains(&self.server.max_header_bytes) {
            return Err(invalid(
                "server.max_header_bytes".into(),
                "must be between 1024 and 262144".into(),
            ));
        }
        let request_timeout = self
            .server
            .request_timeout
            .map_or(Duration::from_secs(10), |d| d.0);
        if request_timeout < Duration::from_millis(100)
            || request_timeout > Duration::from_secs(300)
        {
            return Err(invalid(
                "server.request_timeout".into(),
                "must be between 100ms and 5m".into(),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes".into(),
                "must be between 1024 and 16777216".into(),
            ));
        }

        let oid_arc: ObjectId = self
            .claims
            .oid_arc
            .parse()
            .map_err(|e| invalid("claims.oid_arc".into(), format!("{e}")))?;
        if let Some(clash) = reserved_arcs()
            .iter()
            .find(|r| oid_arc == **r || oid_arc.is_below(r) || r.is_below(&oid_arc))
        {
            return Err(invalid(
                "claims.oid_arc".into(),
                format!("{oid_arc} overlaps the standard X.509 extension arc {clash}; use your own arc (a PEN)"),
            ));
        }
        if self.claims.max_json_depth == 0 || self.claims.max_json_depth > MAX_JSON_DEPTH_CAP {
            return Err(invalid(
                "claims.max_json_depth".into(),
                format!("must be between 1 and {MAX_JSON_DEPTH_CAP}"),
            ));
        }

        let mut cas = BTreeMap::new();
        for (name, raw) in self.cas {
            let field = |f: &str| format!("cas.{name}.{f}");
            if !is_valid_name(&name) {
                return Err(invalid(
                    format!("cas.{name}"),
                    "CA names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
                ));
            }
            let source = CaSourceSpec::parse_ca(
                &raw.source,
                raw.chain.as_deref(),
                raw.delegate.map(|d| d.0),
            )
            .map_err(|(setting, message)| invalid(field(setting), message))?;
            let refresh = raw.refresh.map_or(Duration::from_secs(300), |d| d.0);
            if refresh < Duration::from_secs(1) {
                return Err(invalid(field("refresh"), "must be at least 1s".into()));
            }
            cas.insert(
                name.clone(),
                CaConfig {
                    name,
                    source,
                    refresh,
                },
            );
        }

        if self.profiles.is_empty() {
            return Err(invalid(
                "profiles".into(),
                "at least one [profiles.NAME] section is needed".into(),
            ));
        }
        let mut profiles = BTreeMap::new();
        let ca_names: BTreeSet<&str> = cas.keys().map(String::as_str).collect();
        for (name, raw) in self.profiles {
            if self.server.auth == AuthMode::Iam && raw.allowed_callers.is_none() {
                return Err(invalid(
                    format!("profiles.{name}.allowed_callers"),
                    "required with auth \"iam\": list the principal ARN patterns that may use \
                     this profile (e.g. [\"arn:aws:sts::123456789012:assumed-role/payments-*/*\"]), \
                     or [\"*\"] to admit every principal that can invoke the function"
                        .into(),
                ));
            }
            let profile =
                Profile::from_settings(&name, raw, &oid_arc, self.claims.max_json_depth, &ca_names)
                    .map_err(|(field, message)| {
                        invalid(format!("profiles.{name}{field}"), message)
                    })?;
            profiles.insert(name, profile);
        }

        // A delegated CA is renewed when a third of its period is left; a
        // certificate issued then must still fit, or it is cut short.
        for (name, profile) in &profiles {
            if let Some(CaConfig {
                source:
                    CaSourceSpec::Kms {
                        mode: KmsMode::Delegated(period),
                        ..
                    },
                ..
            }) = cas.get(&profile.ca)
            {
                if profile.crl_url.is_some() {
                    // Each instance certifies an issuing key of its own, so
                    // no one CRL is signed by these certificates' issuer: a
                    // distribution point would name a CRL that never
                    // verifies, and relying parties that fetch it and fail
                    // closed would refuse every certificate.
                    return Err(invalid(
                        format!("profiles.{name}.crl_url"),
                        format!(
                            "CA {:?} is KMS-delegated (cas.{}.delegate): each instance signs \
                             with an issuing key of its own, so no CRL can cover its \
                             certificates; remove crl_url (revocation is enforced at issuance) \
                             or use KMS direct custody",
                            profile.ca, profile.ca
                        ),
                    ));
                }
                if profile.max_ttl * 3 > *period {
                    return Err(invalid(
                        format!("cas.{}.delegate", profile.ca),
                        format!(
                            "{} is less than 3 × profiles.{name}.max_ttl ({}): a delegation is \
                             renewed when a third of it is left, and certificates must fit in \
                             that third",
                            humantime::format_duration(*period),
                            humantime::format_duration(profile.max_ttl)
                        ),
                    ));
                }
            }
        }

        let metrics_listen = match &self.server.metrics_listen {
            None => None,
            Some(addr) => Some(addr.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "server.metrics_listen".into(),
                    format!("{addr:?} is not an IP:port address such as \"127.0.0.1:9100\""),
                )
            })?),
        };
        let namespace = &self.metrics.namespace;
        if !crate::metrics::emf::is_valid_namespace(namespace) {
            return Err(invalid(
                "metrics.namespace".into(),
                "must be 1-255 characters of A-Z, a-z, 0-9 and . _ - / # :, not starting \
                 with AWS/ (reserved for AWS services)"
                    .into(),
            ));
        }

        let store = StoreConfig {
            spec: match &self.store.url {
                None => StoreSpec::None,
                Some(url) => {
                    StoreSpec::parse(url).map_err(|message| invalid("store.url".into(), message))?
                }
            },
            retention: self
                .store
                .retention
                .map_or(crate::store::DEFAULT_RETENTION, |d| d.0),
            sync: self.store.sync.unwrap_or_default(),
        };
        if store.sync != crate::store::StoreSync::Full
            && !matches!(store.spec, StoreSpec::Sqlite(_))
        {
            return Err(invalid(
                "store.sync".into(),
                "applies to an SQLite ledger (store.url = \"sqlite:PATH\") only; DynamoDB \
                 writes are durable when they are answered"
                    .into(),
            ));
        }
        if store.retention < Duration::from_secs(86_400) {
            return Err(invalid(
                "store.retention".into(),
                "must be at least 1d (records are kept this long after their certificate expires)"
                    .into(),
            ));
        }

        if store.spec == StoreSpec::None {
            if let Some((name, _)) = profiles.iter().find(|(_, p)| p.rate_limit.any()) {
                return Err(invalid(
                    format!("profiles.{name}.rate_limit"),
                    "rate limits are counted in the store, and store.url is \"none\"; set \
                     store.url (\"sqlite:PATH\" or \"dynamodb:TABLE\") or remove the limits"
                        .into(),
                ));
            }
        }

        let crl = CrlConfig {
            next_update: self
                .crl
                .next_update
                .map_or(super::DEFAULT_CRL_NEXT_UPDATE, |d| d.0),
        };
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 86_400)).contains(&crl.next_update) {
            return Err(invalid(
                "crl.next_update".into(),
                "must be between 1m and 7d (how long a CRL is valid after it is signed)".into(),
            ));
        }

        if let Some(i) = self.admin.callers.iter().position(|p| p.is_empty()) {
            return Err(invalid(
                format!("admin.callers[{i}]"),
                "an empty pattern matches nobody; remove it".into(),
            ));
        }
        let admin_callers = self
            .admin
            .callers
            .into_iter()
            .map(crate::auth::CallerPattern::new)
            .collect();

        Ok(Config {
            admin_callers,
            crl,
            store,
            origin,
            server: ServerConfig {
                listen,
                max_body_bytes: self.server.max_body_bytes,
                max_header_bytes: self.server.max_header_bytes,
                request_timeout,
                metrics_listen,
            },
            metrics: MetricsConfig {
                enabled: self.metrics.enabled,
                namespace: self.metrics.namespace,
            },
            oid_arc,
            cas,
            profiles,
            auth,
        })
    }
}
