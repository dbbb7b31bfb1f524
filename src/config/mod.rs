//! Configuration: TOML file (or the embedded default), overridden by
//! `SESSION_CA_*` environment variables, validated once at start-up.
//!
//! Environment variables name a setting by its TOML path with `__` between
//! levels: `SESSION_CA_SERVER__LISTEN`, `SESSION_CA_PROFILES__DEFAULT__MAX_TTL`.
//! Values are read as TOML values when they parse as one (`300`, `["a","b"]`,
//! `true`) and as strings otherwise (`5m`, `127.0.0.1:8080`). The environment is
//! read through [`EnvSource`] so tests never touch the process environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use session_ca_verify::{ObjectId, StandardClaim};

use crate::auth::{Auth, AuthMode};
use crate::ca::CaStore;
pub use crate::ca::{CaConfig, CaSourceSpec};
use crate::profile::Profile;

mod settings;
#[cfg(test)]
mod tests;

pub use settings::MAX_JSON_DEPTH_CAP;

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "SESSION_CA_";
/// Environment variable naming the configuration file.
pub const ENV_CONFIG_FILE: &str = "SESSION_CA_CONFIG";

/// The configuration `serve` runs with when given none: a development CA in
/// `signer-key/`, loopback only, no authentication.
pub const DEFAULT_CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:8080"]
auth = "none"

[claims]
oid_arc = "1.3.6.1.4.1.32473.1"

[cas.default]
source = "file:signer-key"
refresh = "5m"

[profiles.default]
ca = "default"
allow_server_keys = true
allow_csr = true
csr_key_types = ["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]
default_ttl = "5m"
max_ttl = "15m"
backdate = "30s"
subject = { C = "NL", ST = "ZH", L = "Rotterdam", O = "session-ca development" }
uri_san = "urn:uuid:{session_id}"

[profiles.default.claims]
agent = { oid = "1.3.6.1.4.1.32473.1.100", type = "string", max_len = 256 }
geo   = { oid = "1.3.6.1.4.1.32473.1.101", type = "json",   max_len = 256 }

[store]
url = "sqlite:signer-key/ledger.sqlite3"
retention = "400d"
"#;

/// The configuration of Lambda mode when no file is given: like
/// [`DEFAULT_CONFIG`], with IAM callers, the CA in Parameter Store under
/// `/session-ca/default` (set `SESSION_CA_CAS__DEFAULT__SOURCE` to change it)
/// and no certificate subject: the development subject must never reach a
/// production certificate, so [`Config::load_lambda`] requires the
/// operator's (`SESSION_CA_PROFILES__DEFAULT__SUBJECT`).
pub fn lambda_default_config() -> String {
    DEFAULT_CONFIG
        .replace(DEVELOPMENT_SUBJECT_LINE, "")
        .replace("auth = \"none\"", "auth = \"iam\"")
        .replace(
            "source = \"file:signer-key\"",
            "source = \"ssm:/session-ca/default\"",
        )
        // No ledger unless configured: a Lambda file system is not durable.
        .replace(
            "url = \"sqlite:signer-key/ledger.sqlite3\"",
            "url = \"none\"",
        )
}

/// The development subject of [`DEFAULT_CONFIG`]'s profile, which Lambda
/// mode's default leaves out.
const DEVELOPMENT_SUBJECT_LINE: &str =
    "subject = { C = \"NL\", ST = \"ZH\", L = \"Rotterdam\", O = \"session-ca development\" }\n";

/// A read-only view of environment variables.
pub trait EnvSource {
    /// Every variable as (name, value).
    fn vars(&self) -> Vec<(String, String)>;

    /// One variable's value.
    fn var(&self, name: &str) -> Option<String> {
        self.vars()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// The embedded default ([`DEFAULT_CONFIG`]).
    Embedded,
    /// A TOML file.
    File(PathBuf),
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Embedded => f.write_str("the embedded default configuration"),
            ConfigOrigin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Listener and request-handling settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest total size of the request headers (names and values), in bytes.
    pub max_header_bytes: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
    /// Where `serve` exposes `GET /metrics` when not on the main listener.
    pub metrics_listen: Option<SocketAddr>,
}

/// What the service measures and where it reports (`[metrics]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Whether to keep metrics at all (Prometheus in `serve`, EMF in Lambda).
    pub enabled: bool,
    /// The CloudWatch namespace of Lambda mode's EMF lines.
    pub namespace: String,
}

impl Config {
    /// The longest `max_ttl` of any profile: no certificate lives longer.
    pub fn longest_ttl(&self) -> Duration {
        self.profiles
            .values()
            .map(|p| p.max_ttl)
            .max()
            .unwrap_or_default()
    }

    /// Whether `caller` is an administrator: with `auth = "none"` (loopback
    /// only) the local user is; otherwise a caller matching `admin.callers`.
    pub fn is_admin(&self, caller: &crate::auth::Caller) -> bool {
        match caller.identity() {
            None => self.auth.mode() == crate::auth::AuthMode::None,
            Some(id) => self.admin_callers.iter().any(|p| p.matches(id)),
        }
    }
}

/// How long a CRL is valid by default (`crl.next_update`): 5 minutes.
pub const DEFAULT_CRL_NEXT_UPDATE: Duration = Duration::from_secs(300);

/// The CRLs' settings (`[crl]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlConfig {
    /// `crl.next_update`: how far `nextUpdate` lies after `thisUpdate`. A
    /// CRL is signed afresh when half of that has passed, or at once after
    /// a revocation.
    pub next_update: Duration,
}

/// Where the ledger is kept (`[store]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `store.url`: none, SQLite or DynamoDB.
    pub spec: crate::store::StoreSpec,
    /// `store.retention`: how long records are kept after their certificate expires.
    pub retention: std::time::Duration,
    /// `store.sync`: when an SQLite ledger's records are on disk.
    pub sync: crate::store::StoreSync,
}

/// A loaded CA that expires sooner than a profile it signs for may ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringCa {
    /// The CA's configured name.
    pub name: String,
    /// Its certificate's (or chain's) `notAfter`.
    pub not_after: time::OffsetDateTime,
    /// The longest `max_ttl` among the profiles it signs for.
    pub max_ttl: Duration,
}

/// The loaded CAs that expire within the longest `max_ttl` of their
/// profiles at `now`: their certificates are being shortened to the CA's
/// expiry, and it is time to rotate them.
pub fn expiring_cas(config: &Config, cas: &CaStore, now: time::OffsetDateTime) -> Vec<ExpiringCa> {
    cas.all()
        .into_iter()
        .filter_map(|(name, ca)| {
            let ca = ca?;
            let max_ttl = config
                .profiles
                .values()
                .filter(|p| p.ca == name)
                .map(|p| p.max_ttl)
                .max()?;
            (ca.expires() < now + max_ttl).then(|| ExpiringCa {
                name,
                not_after: ca.expires(),
                max_ttl,
            })
        })
        .collect()
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: ConfigOrigin,
    /// Listener settings.
    pub server: ServerConfig,
    /// The arc under which the standard claims live.
    pub oid_arc: ObjectId,
    /// CAs by name.
    pub cas: BTreeMap<String, CaConfig>,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
    /// Metrics settings.
    pub metrics: MetricsConfig,
    /// Where the ledger is kept.
    pub store: StoreConfig,
    /// The CRLs' settings.
    pub crl: CrlConfig,
    /// `admin.callers`: the callers that may query the ledger (and revoke).
    /// With `auth = "none"` (loopback only) the local user is the administrator.
    pub admin_callers: Vec<crate::auth::CallerPattern>,
    /// The authentication requests are checked with (for `auth = "hmac"`,
    /// its keys and replay window, shared by clones).
    pub auth: Auth,
}

impl Config {
    /// Loads the configuration: `file` if given, else the file named by
    /// `SESSION_CA_CONFIG`, else the embedded default; then applies the
    /// environment's `SESSION_CA_*__*` overrides and `overrides` (dotted path,
    /// TOML value) from the command line, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: &dyn EnvSource,
        overrides: &[(String, toml::Value)],
    ) -> Result<Config, ConfigError> {
        Self::load_with_default(file, env, overrides, DEFAULT_CONFIG)
    }

    /// As [`Config::load`], with `default` as the text used when no file is named.
    pub fn load_with_default(
        file: Option<&Path>,
        env: &dyn EnvSource,
        overrides: &[(String, toml::Value)],
        default: &str,
    ) -> Result<Config, ConfigError> {
        let path = file
            .map(Path::to_path_buf)
            .or_else(|| env.var(ENV_CONFIG_FILE).map(PathBuf::from));
        let (origin, text) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                (ConfigOrigin::File(path), text)
            }
            None => (ConfigOrigin::Embedded, default.to_owned()),
        };
        Self::from_toml(origin, &text, env, overrides)
    }

    /// Parses and validates configuration text (see [`Config::load`]).
    pub fn from_toml(
        origin: ConfigOrigin,
        text: &str,
        env: &dyn EnvSource,
        overrides: &[(String, toml::Value)],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_string(),
                    message: e.to_string(),
                })?;
        let mut env_settings: Vec<(String, Vec<String>, String)> = env
            .vars()
            .into_iter()
            .filter_map(|(name, value)| {
                let rest = name.strip_prefix(ENV_PREFIX)?;
                // SESSION_CA_CONFIG, SESSION_CA_LOG, ...: not settings paths.
                rest.contains("__").then(|| {
                    let path = rest.split("__").map(str::to_ascii_lowercase).collect();
                    (name.clone(), path, value)
                })
            })
            .collect();
        // Whole tables first, then the keys inside them, whatever the environment's order.
        env_settings.sort_by(|a, b| a.1.len().cmp(&b.1.len()).then_with(|| a.1.cmp(&b.1)));
        for (name, path, value) in env_settings {
            set_path(&mut table, &path, env_value(&value)).map_err(|why| ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                field: path.join("."),
                message: why,
            })?;
        }
        for (dotted, value) in overrides {
            let path: Vec<String> = dotted.split('.').map(str::to_owned).collect();
            set_path(&mut table, &path, value.clone()).map_err(|why| ConfigError::Invalid {
                origin: "the command line".into(),
                field: dotted.clone(),
                message: why,
            })?;
        }
        let raw: settings::RawConfig =
            serde_path_to_error::deserialize(table).map_err(|e| ConfigError::Invalid {
                origin: origin.to_string(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        raw.validate(origin, env)
    }

    /// Lambda mode's configuration: the file named by `SESSION_CA_CONFIG`,
    /// else [`lambda_default_config`], with the environment's overrides;
    /// then what Lambda mode requires besides: auth `iam`, or `hmac` with a
    /// store (a function runs in many execution environments, so HMAC's
    /// replay refusal must be shared through the store; `none` is for
    /// loopback development), rate limits only with that store too, and an
    /// explicit certificate subject for every profile of the embedded
    /// default.
    pub fn load_lambda(env: &dyn EnvSource) -> Result<Config, ConfigError> {
        let config = Self::load_with_default(None, env, &[], &lambda_default_config())?;
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: config.origin.to_string(),
            field,
            message,
        };
        match config.auth.mode() {
            AuthMode::Iam => {}
            AuthMode::None => {
                return Err(invalid(
                    "server.auth".into(),
                    "\"none\" is for local development only; Lambda mode needs \"iam\"".into(),
                ))
            }
            // Every execution environment refuses a replay only when they
            // share a store of HMAC nonces.
            AuthMode::Hmac if matches!(config.store.spec, crate::store::StoreSpec::DynamoDb(_)) => {
            }
            AuthMode::Hmac => {
                return Err(invalid(
                    "server.auth".into(),
                    "\"hmac\" in Lambda mode needs a store shared by every execution \
                     environment, so that a replayed request is refused by all of them: set \
                     store.url = \"dynamodb:TABLE\" (an SQLite file is each environment's \
                     own), or use \"iam\", the recommended default"
                        .into(),
                ))
            }
        }
        // Likewise a rate limit holds across the function only when every
        // environment counts in one store.
        if !matches!(config.store.spec, crate::store::StoreSpec::DynamoDb(_)) {
            if let Some(profile) = config.profiles.values().find(|p| p.rate_limit.any()) {
                return Err(invalid(
                    format!("profiles.{}.rate_limit", profile.name),
                    "a rate limit in Lambda mode must be counted in a store shared by every \
                     execution environment: set store.url = \"dynamodb:TABLE\" (an SQLite \
                     file is each environment's own, so each would count alone)"
                        .into(),
                ));
            }
        }
        if config.origin == ConfigOrigin::Embedded {
            if let Some(profile) = config.profiles.values().find(|p| p.subject.is_empty()) {
                let name = &profile.name;
                return Err(invalid(
                    format!("profiles.{name}.subject"),
                    format!(
                        "not set: certificates need your organisation's subject; set \
                         {ENV_PREFIX}PROFILES__{}__SUBJECT, e.g. \"O=Example Bank,C=NL\" \
                         (deploy/template.yaml's CertificateSubject parameter)",
                        name.to_ascii_uppercase()
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// Names of every claim OID this configuration knows (for `inspect`).
    pub fn claim_names(&self) -> BTreeMap<ObjectId, String> {
        let mut names: BTreeMap<ObjectId, String> = StandardClaim::ALL
            .iter()
            .map(|c| (c.oid(&self.oid_arc), c.name().to_owned()))
            .collect();
        for profile in self.profiles.values() {
            for (name, spec) in &profile.claims {
                names
                    .entry(spec.oid.clone())
                    .or_insert_with(|| name.clone());
            }
        }
        names
    }
}

fn env_value(text: &str) -> toml::Value {
    let wrapped = format!("v = {text}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(text.to_owned())),
        Err(_) => toml::Value::String(text.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| "an empty settings path".to_owned())?;
    if path.iter().any(String::is_empty) {
        return Err("a settings path has an empty segment".into());
    }
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("{segment} is not a table, so it has no sub-settings"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

impl ConfigError {
    /// What a service refusing this configuration may tell its callers:
    /// the setting, never its value, file paths or the origin (those are in
    /// the log, which the operator reads).
    pub fn public_summary(&self) -> String {
        match self {
            ConfigError::Invalid { field, .. } => {
                format!("the setting {field} is missing or invalid; the function's log says why")
            }
            ConfigError::Read { .. } => {
                "the configuration file cannot be read; the function's log says why".into()
            }
            ConfigError::Syntax { .. } => {
                "the configuration file is not valid TOML; the function's log says why".into()
            }
        }
    }
}

/// Errors in the configuration, each naming where it came from and which field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// The file is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// Where the text came from.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A setting has a bad value.
    #[error("{origin}: {field}: {message}")]
    Invalid {
        /// Where the setting came from.
        origin: String,
        /// The setting's dotted path.
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}
