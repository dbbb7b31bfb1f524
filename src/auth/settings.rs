//! The authentication settings of the configuration file (`server.auth`,
//! `server.hmac_max_skew`, `[hmac_keys.ID]`), turned into an [`Auth`].
//! The configuration loader deserializes them and calls [`Auth::from_settings`];
//! errors come back as (field, message) for it to place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use session_ca_client::hmac::{trim_line_end, Secret, DEFAULT_MAX_SKEW};

use super::{Auth, AuthMode, HmacAuth};
use crate::fmt::is_valid_name;

/// Where an HMAC key's secret comes from; the secret itself is never in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename = "RawHmacKey")]
pub struct HmacKeySettings {
    /// The environment variable holding the secret.
    pub secret_env: Option<String>,
    /// The file holding the secret (a trailing line end is not part of it).
    pub secret_file: Option<PathBuf>,
}

/// A settings error: the dotted field and what is wrong with it.
pub type SettingError = (String, String);

impl Auth {
    /// The authentication for `mode`, with the HMAC keys (their secrets read
    /// through `env` or from files) and the HMAC clock-skew window.
    pub fn from_settings(
        mode: AuthMode,
        hmac_keys: &BTreeMap<String, HmacKeySettings>,
        hmac_max_skew: Option<Duration>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Auth, SettingError> {
        if mode != AuthMode::Hmac {
            if !hmac_keys.is_empty() {
                return Err((
                    "hmac_keys".into(),
                    format!(
                        "HMAC keys are configured but server.auth is \"{mode}\"; set auth = \"hmac\" \
                         or remove them"
                    ),
                ));
            }
            if hmac_max_skew.is_some() {
                return Err((
                    "server.hmac_max_skew".into(),
                    "only used with auth = \"hmac\"".into(),
                ));
            }
            return Ok(match mode {
                AuthMode::Iam => Auth::Iam,
                _ => Auth::None,
            });
        }
        if hmac_keys.is_empty() {
            return Err((
                "hmac_keys".into(),
                "auth \"hmac\" needs at least one [hmac_keys.KEY_ID] with secret_env or secret_file"
                    .into(),
            ));
        }
        let max_skew = hmac_max_skew.unwrap_or(DEFAULT_MAX_SKEW);
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&max_skew)
            || max_skew.subsec_nanos() != 0
        {
            return Err((
                "server.hmac_max_skew".into(),
                "must be whole seconds between 1s and 1h".into(),
            ));
        }
        let mut keys = BTreeMap::new();
        for (id, raw) in hmac_keys {
            let field = |suffix: &str| format!("hmac_keys.{id}{suffix}");
            if !is_valid_name(id) {
                return Err((field(""), "key ids are letters, digits, '_' and '-'".into()));
            }
            let bytes = match (&raw.secret_env, &raw.secret_file) {
                (Some(var), None) => env(var)
                    .ok_or_else(|| {
                        (
                            field(".secret_env"),
                            format!("the environment variable {var} is not set"),
                        )
                    })?
                    .into_bytes(),
                (None, Some(path)) => {
                    let bytes = std::fs::read(path).map_err(|e| {
                        (
                            field(".secret_file"),
                            format!("cannot read {}: {e}", path.display()),
                        )
                    })?;
                    trim_line_end(&bytes).to_vec()
                }
                _ => {
                    return Err((
                        field(""),
                        "set exactly one of secret_env and secret_file".into(),
                    ))
                }
            };
            let secret = Secret::new(&bytes).map_err(|e| {
                (
                    field(""),
                    format!("{e} (e.g. `openssl rand -hex 32` gives 64 characters)"),
                )
            })?;
            keys.insert(id.clone(), secret);
        }
        Ok(Auth::Hmac(Arc::new(HmacAuth::new(keys, max_skew))))
    }
}
