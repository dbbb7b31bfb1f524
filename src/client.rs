//! A client of the signer's HTTP API, for `session-ca request` and for
//! programs that want a certificate in memory (see `examples/mtls_client.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::files::{self, FileKind};
use crate::hmac::{self, Secret};
use crate::http::IssueResponse;

/// How long to wait for a TCP/TLS connection to the signer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take (RSA CSRs and Lambda cold starts included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `POST /v1/certificates`; absent fields take the profile's defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CertificateRequest {
    /// Profile name (`default` when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Session id (subject CN); a fresh UUID when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Transaction id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Lifetime in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// Key type for a server-generated key (`ecdsa-p256`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<String>,
    /// Profile-defined claims.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, Value>,
    /// A PEM PKCS#10 request (CSR mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Whether to ask for a PKCS#12 key store too.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pkcs12: bool,
}

/// A client of one signer.
#[derive(Clone)]
pub struct SignerClient {
    base: reqwest::Url,
    http: reqwest::Client,
    hmac: Option<(String, Secret)>,
}

impl fmt::Debug for SignerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerClient")
            .field("base", &self.base.as_str())
            .field("hmac_key_id", &self.hmac.as_ref().map(|(id, _)| id))
            .finish_non_exhaustive()
    }
}

impl SignerClient {
    /// A client of the signer at `base_url` (`http://127.0.0.1:8080`,
    /// `https://signer.example`), trusting the system's roots for HTTPS and,
    /// when given, the PEM certificates in `extra_roots`.
    pub fn new(base_url: &str, extra_roots: Option<&[u8]>) -> Result<SignerClient, ClientError> {
        let mut base = reqwest::Url::parse(base_url)
            .map_err(|e| ClientError::InvalidUrl(format!("{base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl(format!(
                "{base_url:?}: the scheme must be http or https"
            )));
        }
        // The API paths are relative to the base, which may carry a stage prefix.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        crate::crypto::install_rustls_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("session-ca/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_roots {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::InvalidCa(e.to_string()))?;
            if roots.is_empty() {
                return Err(ClientError::InvalidCa(
                    "no PEM CERTIFICATE block in the CA file".into(),
                ));
            }
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Network(describe(&e)))?;
        Ok(SignerClient {
            base,
            http,
            hmac: None,
        })
    }

    /// Signs every request with an HMAC key (for a signer with `auth = "hmac"`).
    pub fn with_hmac(mut self, key_id: &str, secret: Secret) -> SignerClient {
        self.hmac = Some((key_id.to_owned(), secret));
        self
    }

    /// Asks for a certificate.
    pub async fn issue(&self, request: &CertificateRequest) -> Result<IssueResponse, ClientError> {
        let url = self.url("v1/certificates")?;
        // Serialising this struct of strings and JSON values cannot fail.
        let body = serde_json::to_vec(request).unwrap_or_default();
        let mut post = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some((key_id, secret)) = &self.hmac {
            let path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            };
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let signature = hmac::authorization(key_id, secret, "POST", &path, now, &body)
                .map_err(|e| ClientError::Signing(e.to_string()))?;
            post = post.header(reqwest::header::AUTHORIZATION, signature);
        }
        let body = exchange(post.body(body), "POST", &url, reqwest::StatusCode::CREATED).await?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::UnexpectedResponse(format!(
                "POST {url} answered 201 with a body that is not an issuance response: {e}"
            ))
        })
    }

    /// The PEM CA chain of a profile (`GET /v1/ca`).
    pub async fn ca_chain(&self, profile: Option<&str>) -> Result<String, ClientError> {
        let mut url = self.url("v1/ca")?;
        if let Some(profile) = profile {
            url.query_pairs_mut().append_pair("profile", profile);
        }
        let body = exchange(
            self.http.get(url.clone()),
            "GET",
            &url,
            reqwest::StatusCode::OK,
        )
        .await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| ClientError::UnexpectedResponse(format!("GET {url}: not PEM text")))
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))
    }
}

/// The certificate file written by [`write_pem_files`].
pub const CERT_FILE: &str = "cert.pem";
/// The private key file (mode 0600) written by [`write_pem_files`].
pub const KEY_FILE: &str = "key.pem";
/// The CA chain file written by [`write_pem_files`].
pub const CHAIN_FILE: &str = "chain.pem";

/// Writes `cert.pem`, `key.pem` (0600; not in CSR mode, where the caller
/// holds the key) and `chain.pem` into `dir` (created 0700 if absent). All
/// files are first written to temporary files beside their targets and
/// renamed into place only when every one is complete, so a failure leaves
/// the previous files untouched rather than a mix of old and new.
pub fn write_pem_files(dir: &Path, response: &IssueResponse) -> std::io::Result<Vec<PathBuf>> {
    if !dir.exists() {
        files::create_private_dir(dir)?;
    }
    let chain: String = response.ca_chain.concat();
    let mut parts: Vec<(PathBuf, &[u8], FileKind)> = Vec::new();
    if let Some(key) = &response.private_key {
        parts.push((dir.join(KEY_FILE), key.as_bytes(), FileKind::Secret));
    }
    parts.push((
        dir.join(CERT_FILE),
        response.certificate.as_bytes(),
        FileKind::Public,
    ));
    parts.push((dir.join(CHAIN_FILE), chain.as_bytes(), FileKind::Public));
    persist_all(parts)
}

/// Writes the PKCS#12 key store of `response` to `path` and its password to
/// `path` + `.password`, both 0600, with the same all-or-nothing staging as
/// [`write_pem_files`].
pub fn write_pkcs12_file(path: &Path, response: &IssueResponse) -> std::io::Result<Vec<PathBuf>> {
    use base64::Engine as _;
    let Some(store) = &response.pkcs12 else {
        return Err(std::io::Error::other(
            "the signer's response carries no PKCS#12 key store",
        ));
    };
    let der = base64::engine::general_purpose::STANDARD
        .decode(&store.base64)
        .map_err(|e| std::io::Error::other(format!("the PKCS#12 key store is not base64: {e}")))?;
    let mut password_path = path.as_os_str().to_owned();
    password_path.push(".password");
    let password_line = format!("{}\n", store.password);
    persist_all(vec![
        (path.to_path_buf(), &der, FileKind::Secret),
        (
            PathBuf::from(password_path),
            password_line.as_bytes(),
            FileKind::Secret,
        ),
    ])
}

fn persist_all(parts: Vec<(PathBuf, &[u8], FileKind)>) -> std::io::Result<Vec<PathBuf>> {
    let mut staged = Vec::with_capacity(parts.len());
    for (path, contents, kind) in parts {
        let tmp = files::stage(&path, contents, kind)?;
        staged.push((path, tmp));
    }
    let mut written = Vec::with_capacity(staged.len());
    for (path, tmp) in staged {
        tmp.persist(&path).map_err(|e| e.error)?;
        files::sync_dir(path.parent().unwrap_or(Path::new(".")));
        written.push(path);
    }
    Ok(written)
}

/// Sends a request and reads the whole body, which must come with
/// `expected`; otherwise the signer's error (or a network error naming
/// `method` and `url`).
async fn exchange(
    request: reqwest::RequestBuilder,
    method: &str,
    url: &reqwest::Url,
    expected: reqwest::StatusCode,
) -> Result<axum::body::Bytes, ClientError> {
    let network =
        |e: reqwest::Error| ClientError::Network(format!("{method} {url}: {}", describe(&e)));
    let response = request.send().await.map_err(network)?;
    let status = response.status();
    let body = response.bytes().await.map_err(network)?;
    if status != expected {
        return Err(rejection(status, &body));
    }
    Ok(body)
}

/// The signer's error, from its JSON error body when it sent one.
fn rejection(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let error = v.get("error")?;
            Some((
                error.get("code")?.as_str()?.to_owned(),
                error.get("message")?.as_str()?.to_owned(),
            ))
        });
    match parsed {
        Some((code, message)) => ClientError::Rejected {
            status: status.as_u16(),
            code,
            message,
        },
        None => {
            let text: String = String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .filter(|c| !c.is_control())
                .collect();
            ClientError::UnexpectedResponse(format!("HTTP {status} with body {text:?}"))
        }
    }
}

/// A reqwest error with its causes ("error sending request: ... connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if error.is_timeout() {
        text.push_str(" (timed out)");
    }
    text
}

/// Errors of the signer client, by whose fault they are.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The signer URL cannot be used.
    #[error("invalid signer URL {0}")]
    InvalidUrl(String),
    /// The extra CA certificates cannot be used.
    #[error("invalid CA certificates: {0}")]
    InvalidCa(String),
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Signing(String),
    /// The signer could not be reached or the exchange broke off.
    #[error("cannot reach the signer: {0}")]
    Network(String),
    /// The signer refused the request (its error code and message).
    #[error("the signer refused the request: HTTP {status} {code}: {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// What was wrong.
        message: String,
    },
    /// The signer answered something that is not this API.
    #[error("unexpected answer from the signer: {0}")]
    UnexpectedResponse(String),
}
