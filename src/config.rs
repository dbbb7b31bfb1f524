//! Configuration: TOML file (or the embedded default), overridden by
//! `SESSION_CA_*` environment variables, validated once at start-up.
//!
//! Environment variables name a setting by its TOML path with `__` between
//! levels: `SESSION_CA_SERVER__LISTEN`, `SESSION_CA_PROFILES__DEFAULT__MAX_TTL`.
//! Values are read as TOML values when they parse as one (`300`, `["a","b"]`,
//! `true`) and as strings otherwise (`5m`, `127.0.0.1:8080`). The environment is
//! read through [`EnvSource`] so tests never touch the process environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::auth::{AuthMode, CallerPattern};
use crate::claims::{ClaimType, ObjectId, StandardClaim, DEFAULT_OID_ARC};
use crate::csr::CsrKeyType;
use crate::hmac::{HmacAuth, Secret, DEFAULT_MAX_SKEW};
use crate::keys::KeyType;
use crate::policy::{ClaimSpec, Profile, SubjectAttribute};

/// Prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "SESSION_CA_";
/// Environment variable naming the configuration file.
pub const ENV_CONFIG_FILE: &str = "SESSION_CA_CONFIG";
/// Longest certificate lifetime any profile may allow.
pub const MAX_TTL_CAP: Duration = Duration::from_secs(24 * 3600);
/// Longest backdate any profile may use.
pub const MAX_BACKDATE: Duration = Duration::from_secs(3600);
/// Largest `max_len` a claim may declare, in bytes.
pub const MAX_CLAIM_LEN_CAP: usize = 8192;
/// Deepest `max_json_depth` allowed.
pub const MAX_JSON_DEPTH_CAP: usize = 32;

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
"#;

/// The configuration of Lambda mode when no file is given: like
/// [`DEFAULT_CONFIG`], with IAM callers and the CA in Parameter Store under
/// `/session-ca/default` (set `SESSION_CA_CAS__DEFAULT__SOURCE` to change it).
pub fn lambda_default_config() -> String {
    DEFAULT_CONFIG
        .replace("auth = \"none\"", "auth = \"iam\"")
        .replace(
            "source = \"file:signer-key\"",
            "source = \"ssm:/session-ca/default\"",
        )
}

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
    /// How callers are authenticated.
    pub auth: AuthMode,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Largest total size of the request headers (names and values), in bytes.
    pub max_header_bytes: usize,
    /// Longest a request may take, body upload included.
    pub request_timeout: Duration,
}

/// Where a CA's key and certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSourceSpec {
    /// A directory holding `ca-key.pem`, `ca-cert.pem` and optionally `chain.pem`.
    File(PathBuf),
    /// AWS Systems Manager Parameter Store: `PREFIX/key` (SecureString),
    /// `PREFIX/cert` and `PREFIX/chain`.
    Ssm(String),
}

/// A configured CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// Its name, referred to by profiles.
    pub name: String,
    /// Where its material comes from.
    pub source: CaSourceSpec,
    /// How often the material is reloaded.
    pub refresh: Duration,
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
    /// The HMAC keys and replay window under `auth = "hmac"` (shared by
    /// clones, so one process keeps one window).
    pub hmac: Option<Arc<HmacAuth>>,
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
        let raw: RawConfig =
            serde_path_to_error::deserialize(table).map_err(|e| ConfigError::Invalid {
                origin: origin.to_string(),
                field: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        raw.validate(origin, env)
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

/// A duration written as text (`"5m"`, `"30s"`, `"1h 30m"`) or whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DurationSetting(Duration);

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"5m\", \"30s\" or whole seconds")
        })? {
            Raw::Seconds(s) => Ok(DurationSetting(Duration::from_secs(s))),
            Raw::Text(t) => humantime::parse_duration(&t)
                .map(DurationSetting)
                .map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {t:?} ({e}); write e.g. \"5m\", \"30s\" or \"1h\""
                    ))
                }),
        }
    }
}

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
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    claims: RawClaims,
    #[serde(default)]
    cas: BTreeMap<String, RawCa>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    hmac_keys: BTreeMap<String, RawHmacKey>,
}

/// Where an HMAC key's secret comes from; the secret itself is never in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHmacKey {
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
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
    refresh: Option<DurationSetting>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    #[serde(default = "default_ca_name")]
    ca: String,
    key_types: Option<Vec<KeyType>>,
    allow_server_keys: Option<bool>,
    allow_csr: Option<bool>,
    csr_key_types: Option<Vec<CsrKeyType>>,
    default_ttl: Option<DurationSetting>,
    max_ttl: Option<DurationSetting>,
    backdate: Option<DurationSetting>,
    #[serde(default)]
    subject: BTreeMap<String, String>,
    uri_san: Option<String>,
    #[serde(default)]
    require: Vec<String>,
    allowed_callers: Option<Vec<String>>,
    #[serde(default)]
    claims: BTreeMap<String, RawClaimSpec>,
}

fn default_ca_name() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaimSpec {
    oid: String,
    #[serde(rename = "type")]
    kind: ClaimType,
    max_len: usize,
    #[serde(default)]
    required: bool,
}

/// Extension arcs a claim must never use: a claim there would forge or
/// duplicate a standard extension (RFC 5280 §4.2.1 id-ce, §4.2.2 id-pe).
const RESERVED_ARCS: [&str; 2] = ["2.5.29", "1.3.6.1.5.5.7.1"];

fn reserved_arcs() -> Vec<ObjectId> {
    RESERVED_ARCS
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl RawConfig {
    fn validate(self, origin: ConfigOrigin, env: &dyn EnvSource) -> Result<Config, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };

        let hmac = self.hmac_auth(&origin, env)?;

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
            let source = match raw.source.split_once(':') {
                Some(("file", dir)) if !dir.is_empty() => CaSourceSpec::File(PathBuf::from(dir)),
                Some(("ssm", prefix)) => {
                    let valid = prefix.len() > 1
                        && prefix.len() <= 1000
                        && prefix.starts_with('/')
                        && !prefix.ends_with('/')
                        && !prefix.contains("//")
                        && prefix
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
                    if !valid {
                        return Err(invalid(
                            field("source"),
                            format!(
                                "invalid Parameter Store prefix {prefix:?}; write e.g. \
                                 \"ssm:/session-ca/prod\" (a path of letters, digits, '_', '.', \
                                 '-' and '/', starting with '/', no trailing '/')"
                            ),
                        ));
                    }
                    CaSourceSpec::Ssm(prefix.to_owned())
                }
                _ => {
                    return Err(invalid(
                        field("source"),
                        format!(
                            "unsupported CA source {:?}; write \"file:DIR\" (a directory made by \
                             `session-ca init`) or \"ssm:/PREFIX\" (Parameter Store)",
                            raw.source
                        ),
                    ))
                }
            };
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
        let auth = self.server.auth;
        for (name, raw) in self.profiles {
            if auth == AuthMode::Iam && raw.allowed_callers.is_none() {
                return Err(invalid(
                    format!("profiles.{name}.allowed_callers"),
                    "required with auth \"iam\": list the principal ARN patterns that may use \
                     this profile (e.g. [\"arn:aws:sts::123456789012:assumed-role/payments-*/*\"]), \
                     or [\"*\"] to admit every principal that can invoke the function"
                        .into(),
                ));
            }
            let profile = validate_profile(&name, raw, &oid_arc, self.claims.max_json_depth, &cas)
                .map_err(|(field, message)| invalid(format!("profiles.{name}{field}"), message))?;
            profiles.insert(name, profile);
        }

        Ok(Config {
            origin,
            server: ServerConfig {
                listen,
                auth: self.server.auth,
                max_body_bytes: self.server.max_body_bytes,
                max_header_bytes: self.server.max_header_bytes,
                request_timeout,
            },
            oid_arc,
            cas,
            profiles,
            hmac,
        })
    }

    /// The HMAC keys, their secrets read from the environment or from files.
    fn hmac_auth(
        &self,
        origin: &ConfigOrigin,
        env: &dyn EnvSource,
    ) -> Result<Option<Arc<HmacAuth>>, ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        if self.server.auth != AuthMode::Hmac {
            if !self.hmac_keys.is_empty() {
                return Err(invalid(
                    "hmac_keys".into(),
                    format!(
                        "HMAC keys are configured but server.auth is \"{}\"; set auth = \"hmac\" \
                         or remove them",
                        self.server.auth
                    ),
                ));
            }
            if self.server.hmac_max_skew.is_some() {
                return Err(invalid(
                    "server.hmac_max_skew".into(),
                    "only used with auth = \"hmac\"".into(),
                ));
            }
            return Ok(None);
        }
        if self.hmac_keys.is_empty() {
            return Err(invalid(
                "hmac_keys".into(),
                "auth \"hmac\" needs at least one [hmac_keys.KEY_ID] with secret_env or secret_file"
                    .into(),
            ));
        }
        let max_skew = self
            .server
            .hmac_max_skew
            .as_ref()
            .map_or(DEFAULT_MAX_SKEW, |d| d.0);
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&max_skew)
            || max_skew.subsec_nanos() != 0
        {
            return Err(invalid(
                "server.hmac_max_skew".into(),
                "must be whole seconds between 1s and 1h".into(),
            ));
        }
        let mut keys = BTreeMap::new();
        for (id, raw) in &self.hmac_keys {
            let field = |suffix: &str| format!("hmac_keys.{id}{suffix}");
            if !is_valid_name(id) {
                return Err(invalid(
                    field(""),
                    "key ids are letters, digits, '_' and '-'".into(),
                ));
            }
            let bytes = match (&raw.secret_env, &raw.secret_file) {
                (Some(var), None) => env
                    .var(var)
                    .ok_or_else(|| {
                        invalid(
                            field(".secret_env"),
                            format!("the environment variable {var} is not set"),
                        )
                    })?
                    .into_bytes(),
                (None, Some(path)) => {
                    let bytes = std::fs::read(path).map_err(|e| {
                        invalid(
                            field(".secret_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    crate::hmac::trim_line_end(&bytes).to_vec()
                }
                _ => {
                    return Err(invalid(
                        field(""),
                        "set exactly one of secret_env and secret_file".into(),
                    ))
                }
            };
            let secret = Secret::new(&bytes).map_err(|e| {
                invalid(
                    field(""),
                    format!("{e} (e.g. `openssl rand -hex 32` gives 64 characters)"),
                )
            })?;
            keys.insert(id.clone(), secret);
        }
        Ok(Some(Arc::new(HmacAuth::new(keys, max_skew))))
    }
}

/// Validates one profile; errors are (field suffix, message).
fn validate_profile(
    name: &str,
    raw: RawProfile,
    oid_arc: &ObjectId,
    max_json_depth: usize,
    cas: &BTreeMap<String, CaConfig>,
) -> Result<Profile, (String, String)> {
    let err = |field: &str, message: String| (field.to_owned(), message);
    if !is_valid_name(name) {
        return Err(err(
            "",
            "profile names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'".into(),
        ));
    }
    if !cas.contains_key(&raw.ca) {
        let known: Vec<&str> = cas.keys().map(String::as_str).collect();
        return Err(err(
            ".ca",
            format!(
                "no CA named {:?}; configured CAs: {}",
                raw.ca,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    }

    let key_types = raw.key_types.unwrap_or_else(|| KeyType::ALL.to_vec());
    if key_types.is_empty() {
        return Err(err(".key_types", "must list at least one key type".into()));
    }
    if key_types.iter().collect::<BTreeSet<_>>().len() != key_types.len() {
        return Err(err(".key_types", "lists a key type twice".into()));
    }
    if let Some(missing) = key_types.iter().find(|k| !k.generated_by_this_build()) {
        return Err(err(
            ".key_types",
            crate::keys::KeyError::NotInThisBuild(*missing).to_string(),
        ));
    }
    let allow_server_keys = raw.allow_server_keys.unwrap_or(true);
    let allow_csr = raw.allow_csr.unwrap_or(true);
    if !allow_server_keys && !allow_csr {
        return Err(err(
            ".allow_csr",
            "and allow_server_keys are both false, so the profile could issue nothing".into(),
        ));
    }
    let csr_key_types = raw
        .csr_key_types
        .unwrap_or_else(|| CsrKeyType::ALL.to_vec());
    if csr_key_types.is_empty() {
        return Err(err(
            ".csr_key_types",
            "must list at least one key type (set allow_csr = false to refuse CSRs)".into(),
        ));
    }
    if csr_key_types.iter().collect::<BTreeSet<_>>().len() != csr_key_types.len() {
        return Err(err(".csr_key_types", "lists a key type twice".into()));
    }

    let default_ttl = raw.default_ttl.map_or(Duration::from_secs(300), |d| d.0);
    let max_ttl = raw.max_ttl.map_or(Duration::from_secs(900), |d| d.0);
    let backdate = raw.backdate.map_or(Duration::from_secs(30), |d| d.0);
    let whole = |field: &str, d: Duration| {
        if d.subsec_nanos() != 0 {
            Err(err(field, "must be whole seconds".into()))
        } else {
            Ok(())
        }
    };
    whole(".default_ttl", default_ttl)?;
    whole(".max_ttl", max_ttl)?;
    whole(".backdate", backdate)?;
    if max_ttl > MAX_TTL_CAP {
        return Err(err(
            ".max_ttl",
            format!(
                "{} is above the hard cap of 24h; session certificates are short-lived",
                humantime::format_duration(max_ttl)
            ),
        ));
    }
    if default_ttl.is_zero() || default_ttl > max_ttl {
        return Err(err(
            ".default_ttl",
            format!(
                "must be at least 1s and at most max_ttl ({})",
                humantime::format_duration(max_ttl)
            ),
        ));
    }
    if backdate > MAX_BACKDATE {
        return Err(err(".backdate", "must be at most 1h".into()));
    }

    let mut subject = Vec::new();
    for (key, value) in &raw.subject {
        let attribute = SubjectAttribute::from_short_name(key).ok_or_else(|| {
            err(
                &format!(".subject.{key}"),
                "unknown subject attribute; allowed: C, ST, L, O, OU (CN is the session id)".into(),
            )
        })?;
        let ok = match attribute {
            SubjectAttribute::Country => {
                value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase())
            }
            _ => {
                let chars = value.chars().count();
                (1..=64).contains(&chars) && value.chars().all(crate::claims::is_safe_char)
            }
        };
        if !ok {
            return Err(err(
                &format!(".subject.{key}"),
                match attribute {
                    SubjectAttribute::Country => {
                        "C must be a two-letter upper-case ISO 3166 code such as \"NL\"".into()
                    }
                    _ => "must be 1-64 characters with no control characters".into(),
                },
            ));
        }
        subject.push((attribute, value.clone()));
    }
    subject.sort_by_key(|(a, _)| *a);

    if let Some(template) = &raw.uri_san {
        let probe = template
            .replace("{session_id}", "")
            .replace("{transaction_id}", "")
            .replace("{profile}", "");
        let scheme_ok = probe.split_once(':').is_some_and(|(scheme, _)| {
            scheme
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        });
        if probe.contains('{') || probe.contains('}') {
            return Err(err(
                ".uri_san",
                "unknown placeholder; allowed: {session_id}, {transaction_id}, {profile}".into(),
            ));
        }
        if let Some(rest) = template.strip_prefix("urn:uuid:") {
            if rest != "{session_id}" && rest != "{transaction_id}" {
                return Err(err(
                    ".uri_san",
                    "a urn:uuid: template must be exactly \"urn:uuid:{session_id}\" or \
                     \"urn:uuid:{transaction_id}\" (RFC 4122 §3)"
                        .into(),
                ));
            }
        }
        if template.contains("{transaction_id}")
            && !raw.require.iter().any(|r| r == "transaction_id")
        {
            return Err(err(
                ".uri_san",
                "uses {transaction_id}, so add \"transaction_id\" to require".into(),
            ));
        }
        if !scheme_ok || !probe.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(err(
                ".uri_san",
                "must be an absolute URI of printable ASCII, such as \"urn:uuid:{session_id}\""
                    .into(),
            ));
        }
    }

    let mut claims = BTreeMap::new();
    let mut seen_oids: BTreeMap<ObjectId, String> = StandardClaim::ALL
        .iter()
        .map(|c| (c.oid(oid_arc), c.name().to_owned()))
        .collect();
    let reserved = reserved_arcs();
    for (claim, spec) in raw.claims {
        let field = |f: &str| format!(".claims.{claim}{f}");
        if !is_valid_name(&claim) || StandardClaim::ALL.iter().any(|c| c.name() == claim) {
            return Err(err(
                &field(""),
                "claim names are 1-64 characters of A-Z, a-z, 0-9, '_' and '-', and not one of \
                 session_id, transaction_id, requester, request_id"
                    .into(),
            ));
        }
        let oid: ObjectId = spec
            .oid
            .parse()
            .map_err(|e| err(&field(".oid"), format!("{e}")))?;
        if reserved.iter().any(|r| oid.is_below(r)) {
            return Err(err(
                &field(".oid"),
                format!("{oid} is a standard X.509 extension OID; claims need their own arc"),
            ));
        }
        if let Some(other) = seen_oids.insert(oid.clone(), claim.clone()) {
            return Err(err(
                &field(".oid"),
                format!("{oid} is already used by claim {other:?}"),
            ));
        }
        if spec.max_len == 0 || spec.max_len > MAX_CLAIM_LEN_CAP {
            return Err(err(
                &field(".max_len"),
                format!("must be between 1 and {MAX_CLAIM_LEN_CAP} bytes"),
            ));
        }
        claims.insert(
            claim,
            ClaimSpec {
                oid,
                kind: spec.kind,
                max_len: spec.max_len,
                required: spec.required,
            },
        );
    }

    let (mut require_session_id, mut require_transaction_id) = (false, false);
    for (i, required) in raw.require.iter().enumerate() {
        match required.as_str() {
            "session_id" => require_session_id = true,
            "transaction_id" => require_transaction_id = true,
            other => match claims.get_mut(other) {
                Some(spec) => spec.required = true,
                None => {
                    return Err(err(
                        &format!(".require[{i}]"),
                        format!(
                            "{other:?} is neither session_id, transaction_id nor a claim of this profile"
                        ),
                    ))
                }
            },
        }
    }

    let allowed_callers = match raw.allowed_callers {
        None => None,
        Some(patterns) => {
            if let Some(i) = patterns.iter().position(|p| p.is_empty()) {
                return Err(err(
                    &format!(".allowed_callers[{i}]"),
                    "an empty pattern matches nobody; remove it".into(),
                ));
            }
            Some(patterns.into_iter().map(CallerPattern::new).collect())
        }
    };

    Ok(Profile {
        name: name.to_owned(),
        ca: raw.ca,
        key_types,
        allow_server_keys,
        allow_csr,
        csr_key_types,
        default_ttl,
        max_ttl,
        backdate,
        subject,
        uri_san: raw.uri_san,
        require_session_id,
        require_transaction_id,
        allowed_callers,
        claims,
        oid_arc: oid_arc.clone(),
        max_json_depth,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(ConfigOrigin::File("test.toml".into()), text, &no_env(), &[])
    }

    const MINIMAL: &str = r#"
        [cas.default]
        source = "file:signer-key"
        [profiles.default]
    "#;

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::load(None, &no_env(), &[]).unwrap();
        assert_eq!(config.origin, ConfigOrigin::Embedded);
        let p = config.profile("default").unwrap();
        assert_eq!(p.max_ttl, Duration::from_secs(900));
        assert_eq!(p.default_ttl, Duration::from_secs(300));
        assert_eq!(p.backdate, Duration::from_secs(30));
        assert_eq!(p.claims.len(), 2);
        assert_eq!(config.server.listen, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(config.server.max_body_bytes, 65536);
        assert_eq!(config.server.max_header_bytes, 16384);
        assert_eq!(config.server.request_timeout, Duration::from_secs(10));
        let names = config.claim_names();
        assert_eq!(names[&"1.3.6.1.4.1.32473.1.101".parse().unwrap()], "geo");
        assert_eq!(
            names[&"1.3.6.1.4.1.32473.1.3".parse().unwrap()],
            "requester"
        );
    }

    #[test]
    fn lambda_default_uses_iam_and_parameter_store() {
        let err = Config::from_toml(
            ConfigOrigin::Embedded,
            &lambda_default_config(),
            &no_env(),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("profiles.default.allowed_callers: required with auth"),
            "{err}"
        );
        let env: BTreeMap<String, String> = [(
            "SESSION_CA_PROFILES__DEFAULT__ALLOWED_CALLERS".to_owned(),
            r#"["arn:aws:sts::123456789012:assumed-role/payments-*/*"]"#.to_owned(),
        )]
        .into();
        let c =
            Config::from_toml(ConfigOrigin::Embedded, &lambda_default_config(), &env, &[]).unwrap();
        assert_eq!(c.server.auth, AuthMode::Iam);
        assert_eq!(
            c.cas["default"].source,
            CaSourceSpec::Ssm("/session-ca/default".into())
        );
        for bad in [
            "ssm:",
            "ssm:/",
            "ssm:relative",
            "ssm:/a/",
            "ssm:/a//b",
            "ssm:/a b",
        ] {
            let text = format!("[cas.default]\nsource = \"{bad}\"\n[profiles.default]\n");
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains("cas.default.source"), "{bad}: {err}");
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(MINIMAL).unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.key_types, KeyType::ALL);
        assert!(p.allowed_callers.is_none());
        assert_eq!(c.cas["default"].refresh, Duration::from_secs(300));
    }

    #[test]
    fn environment_overrides_settings() {
        let env: BTreeMap<String, String> = [
            ("SESSION_CA_PROFILES__DEFAULT__MAX_TTL", "20m"),
            ("SESSION_CA_PROFILES__DEFAULT__KEY_TYPES", r#"["ed25519"]"#),
            ("SESSION_CA_SERVER__LISTEN", "127.0.0.1:9999"),
            ("SESSION_CA_SERVER__MAX_BODY_BYTES", "2048"),
            ("SESSION_CA_LOG", "debug"),
            ("OTHER__THING", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &env, &[]).unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.max_ttl, Duration::from_secs(1200));
        assert_eq!(p.key_types, [KeyType::Ed25519]);
        assert_eq!(c.server.listen, ["127.0.0.1:9999".parse().unwrap()]);
        assert_eq!(c.server.max_body_bytes, 2048);
    }

    #[test]
    fn a_table_from_the_environment_is_applied_before_its_keys() {
        /// An environment listing the key before its table (as a real one may).
        struct KeyFirst;
        impl EnvSource for KeyFirst {
            fn vars(&self) -> Vec<(String, String)> {
                vec![
                    (
                        "SESSION_CA_PROFILES__DEFAULT__BACKDATE".into(),
                        "10s".into(),
                    ),
                    (
                        "SESSION_CA_PROFILES__DEFAULT".into(),
                        r#"{ ca = "default", backdate = "50s", subject = { O = "Env Bank" } }"#
                            .into(),
                    ),
                ]
            }
        }
        let env = KeyFirst;
        let c = Config::from_toml(ConfigOrigin::Embedded, DEFAULT_CONFIG, &env, &[]).unwrap();
        let p = c.profile("default").unwrap();
        assert_eq!(p.backdate, Duration::from_secs(10));
        assert_eq!(
            p.subject,
            [(SubjectAttribute::Organization, "Env Bank".to_owned())]
        );
    }

    #[test]
    fn environment_names_the_file_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-ca.toml");
        std::fs::write(
            &path,
            MINIMAL.replace("[profiles.default]", "[profiles.other]"),
        )
        .unwrap();
        let env: BTreeMap<String, String> =
            [(ENV_CONFIG_FILE.to_owned(), path.display().to_string())].into();
        let c = Config::load(None, &env, &[]).unwrap();
        assert!(c.profile("other").is_some());
        assert_eq!(c.origin, ConfigOrigin::File(path));

        let missing: BTreeMap<String, String> =
            [(ENV_CONFIG_FILE.to_owned(), "/nonexistent/x.toml".to_owned())].into();
        let err = Config::load(None, &missing, &[]).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/x.toml"), "{err}");
    }

    #[test]
    fn command_line_overrides_win() {
        let c = Config::from_toml(
            ConfigOrigin::Embedded,
            DEFAULT_CONFIG,
            &no_env(),
            &[(
                "server.listen".into(),
                toml::Value::Array(vec!["[::1]:8443".into()]),
            )],
        )
        .unwrap();
        assert_eq!(c.server.listen, ["[::1]:8443".parse().unwrap()]);
    }

    /// Each bad configuration is refused with a message naming the file and the field.
    #[test]
    fn bad_settings_name_file_and_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("[server]\nlisten = \"0.0.0.0:8080\"\n", "server.auth", "loopback"),
            ("[server]\nlisten = \"localhost\"\n", "server.listen", "IP:port"),
            ("[server]\nauth = \"magic\"\n", "server.auth", "unknown variant"),
            ("[server]\nmax_body_bytes = 10\n", "server.max_body_bytes", "between"),
            ("[server]\nmax_header_bytes = 10\n", "server.max_header_bytes", "between"),
            ("[server]\nrequest_timeout = \"1h\"\n", "server.request_timeout", "between"),
            ("[server]\nport = 1\n", "server", "unknown field"),
            ("[claims]\noid_arc = \"1.99\"\n", "claims.oid_arc", "at most 39"),
            ("[claims]\noid_arc = \"1.3.6.1.5.5.7.1\"\n", "claims.oid_arc", "overlaps"),
            ("[claims]\noid_arc = \"2.5.29.7\"\n", "claims.oid_arc", "overlaps"),
            ("[claims]\noid_arc = \"2.5\"\n", "claims.oid_arc", "overlaps"),
            ("[profiles.default]\nmax_ttl = \"25h\"\n", "profiles.default.max_ttl", "24h"),
            ("[profiles.default]\nmax_ttl = \"five\"\n", "profiles.default.max_ttl", "invalid duration"),
            ("[profiles.default]\ndefault_ttl = \"1h\"\n", "profiles.default.default_ttl", "max_ttl"),
            ("[profiles.default]\nbackdate = \"2h\"\n", "profiles.default.backdate", "1h"),
            ("[profiles.default]\nbackdate = \"1500ms\"\n", "profiles.default.backdate", "whole"),
            ("[profiles.default]\nca = \"nope\"\n", "profiles.default.ca", "no CA named"),
            ("[profiles.default]\nkey_types = []\n", "profiles.default.key_types", "at least one"),
            ("[profiles.default]\nallow_csr = false\nallow_server_keys = false\n", "profiles.default.allow_csr", "issue nothing"),
            ("[profiles.default]\ncsr_key_types = []\n", "profiles.default.csr_key_types", "at least one"),
            ("[profiles.default]\ncsr_key_types = [\"rsa-1024\"]\n", "profiles.default.csr_key_types", "unknown variant"),
            ("[profiles.default]\ncsr_key_types = [\"ed25519\", \"ed25519\"]\n", "profiles.default.csr_key_types", "twice"),
            ("[profiles.default]\nkey_types = [\"rsa-1024\"]\n", "profiles.default.key_types", "unknown variant"),
            ("[profiles.default]\nsubject = { CN = \"x\" }\n", "profiles.default.subject.CN", "CN is the session id"),
            ("[profiles.default]\nsubject = { C = \"Netherlands\" }\n", "profiles.default.subject.C", "two-letter"),
            ("[profiles.default]\nuri_san = \"urn:{nope}\"\n", "profiles.default.uri_san", "placeholder"),
            ("[profiles.default]\nuri_san = \"no scheme here\"\n", "profiles.default.uri_san", "absolute URI"),
            ("[profiles.default]\nuri_san = \"urn:uuid:x-{session_id}\"\n", "profiles.default.uri_san", "RFC 4122"),
            ("[profiles.default]\nuri_san = \"urn:tx:{transaction_id}\"\n", "profiles.default.uri_san", "add \"transaction_id\" to require"),
            ("[profiles.default]\nrequire = [\"agent\"]\n", "profiles.default.require[0]", "neither"),
            ("[profiles.default]\nallowed_callers = [\"\"]\n", "profiles.default.allowed_callers[0]", "empty"),
            ("[profiles.default]\nsurprise = 1\n", "profiles.default", "unknown field"),
            ("[profiles.default.claims]\na = { oid = \"1.2.x\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "decimal"),
            ("[profiles.default.claims]\na = { oid = \"2.5.29.19\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "standard X.509"),
            ("[profiles.default.claims]\na = { oid = \"1.3.6.1.4.1.32473.1.1\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.a.oid", "session_id"),
            ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"string\", max_len = 5 }\nb = { oid = \"1.2.3\", type = \"json\", max_len = 5 }\n", "profiles.default.claims.b.oid", "already used"),
            ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"xml\", max_len = 5 }\n", "profiles.default.claims.a.type", "unknown variant"),
            ("[profiles.default.claims]\na = { oid = \"1.2.3\", type = \"string\", max_len = 0 }\n", "profiles.default.claims.a.max_len", "between"),
            ("[profiles.default.claims]\nrequester = { oid = \"1.2.3\", type = \"string\", max_len = 5 }\n", "profiles.default.claims.requester", "not one of"),
            ("[cas.default]\nrefresh = \"0s\"\n", "cas.default.refresh", "at least 1s"),
        ];
        for (extra, field, needle) in cases {
            let mut text = extra.replace("[cas.default]\n", "[cas.default]\nsource = \"file:k\"\n");
            if !extra.contains("[cas.default]") {
                text.push_str("\n[cas.default]\nsource = \"file:signer-key\"\n");
            }
            if !extra.contains("[profiles.default") {
                text.push_str("\n[profiles.default]\n");
            }
            let err = load(&text).expect_err(extra).to_string();
            assert!(err.starts_with("test.toml: "), "{extra}: {err}");
            assert!(err.contains(field), "{extra}: want field {field} in: {err}");
            assert!(err.contains(needle), "{extra}: want {needle:?} in: {err}");
        }
    }

    #[test]
    fn rsa_server_keys_need_the_aws_lc_build() {
        let text = "[cas.default]\nsource = \"file:signer-key\"\n\
                    [profiles.default]\nkey_types = [\"ecdsa-p256\", \"rsa-3072\"]\n";
        let loaded = load(text);
        #[cfg(feature = "aws-lc")]
        {
            let config = loaded.unwrap();
            let profile = config.profile("default").unwrap();
            assert_eq!(profile.key_types, [KeyType::EcdsaP256, KeyType::Rsa3072]);
        }
        #[cfg(not(feature = "aws-lc"))]
        {
            let e = loaded.unwrap_err().to_string();
            assert!(e.contains("profiles.default.key_types"), "{e}");
            assert!(
                e.contains(
                    "rsa-3072 keys are generated only by signers built with the `aws-lc` feature"
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = load("[server\n").unwrap_err().to_string();
        assert!(err.contains("test.toml is not valid TOML"), "{err}");
        let err = load("[cas.default]\nsource = \"s3:bucket\"\n[profiles.default]\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cas.default.source") && err.contains("file:DIR"),
            "{err}"
        );
        let err = load("[cas.default]\nsource = \"file:k\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one [profiles.NAME]"), "{err}");
    }
}
