//! A client of the signer's HTTP API: `POST /v1/certificates` and `GET /v1/ca`.

use std::fmt;
use std::time::Duration;

use crate::error_text::error_chain;
use crate::hmac::{self, Secret, SigningError};
use crate::idempotency::{self, KeyError};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::wire::{CertificateRequest, ErrorBody, IssuePlan, IssueResponse};

/// How long to wait for a TCP/TLS connection to the signer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take (RSA CSRs and Lambda cold starts included).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one signer.
#[derive(Clone)]
pub struct SignerClient {
    base: reqwest::Url,
    http: reqwest::Client,
    auth: Auth,
    retry: RetryPolicy,
}

/// An issuance and how it came about (see [`SignerClient::issue_detailed`]).
/// Its `Debug` leaves out the idempotency key (with the caller's identity,
/// it opens the response the signer keeps sealed) and, as
/// [`IssueResponse`]'s does, the private key.
#[non_exhaustive]
pub struct IssueOutcome {
    /// The certificate and its key.
    pub response: IssueResponse,
    /// Whether the signer answered with the response it had already given
    /// for this idempotency key (`Idempotent-Replayed: true`) rather than
    /// issuing now: an earlier attempt, or an earlier call with the same
    /// key, got this certificate issued.
    pub replayed: bool,
    /// The `Idempotency-Key` every attempt carried.
    pub idempotency_key: String,
    /// How many requests were sent, the first included.
    pub attempts: u32,
}

impl fmt::Debug for IssueOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssueOutcome")
            .field("response", &self.response)
            .field("replayed", &self.replayed)
            .field("idempotency_key", &"[elided]")
            .field("attempts", &self.attempts)
            .finish()
    }
}

/// How requests are authenticated.
#[derive(Clone)]
enum Auth {
    /// No `Authorization` header (a loopback signer with `auth = "none"`).
    None,
    /// HMAC request signing: key id and secret (boxed: aws-lc's HMAC key is large).
    Hmac(String, Box<Secret>),
    /// AWS SigV4 (a Function URL or API Gateway with IAM auth).
    #[cfg(feature = "sigv4")]
    SigV4(crate::sigv4::AwsSigV4),
}

impl fmt::Debug for SignerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SignerClient");
        debug.field("base", &self.base.as_str());
        debug.field("retry", &self.retry);
        match &self.auth {
            Auth::None => {}
            Auth::Hmac(key_id, _) => {
                debug.field("hmac_key_id", key_id);
            }
            #[cfg(feature = "sigv4")]
            Auth::SigV4(sigv4) => {
                debug.field("sigv4", sigv4);
            }
        }
        debug.finish_non_exhaustive()
    }
}

impl SignerClient {
    /// A client of the signer at `base_url` (`http://127.0.0.1:8080`,
    /// `https://signer.example`, `https://api.example/stage`), trusting the
    /// system's roots for HTTPS and, when given, the PEM certificates in
    /// `extra_roots`.
    ///
    /// Installs this build's rustls provider as the process default if
    /// there is none (see [`install_rustls_provider`](crate::install_rustls_provider)).
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
        // No redirects: a 3xx is an unexpected answer, never followed. reqwest
        // would re-send the body, the Idempotency-Key and the SigV4 headers
        // to wherever it points (stripping only Authorization), and turn a
        // POST into a GET on a 301/302; the Python and Node clients do not
        // follow either.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
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
            auth: Auth::None,
            retry: RetryPolicy::DEFAULT,
        })
    }

    /// Retries [`issue`](Self::issue) by `policy` ([`RetryPolicy::DEFAULT`]
    /// unless set; [`RetryPolicy::none`] for a single attempt).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> SignerClient {
        self.retry = policy;
        self
    }

    /// The retry policy of [`issue`](Self::issue).
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Signs every request with an HMAC key (for a signer with `auth = "hmac"`).
    pub fn with_hmac(mut self, key_id: &str, secret: Secret) -> SignerClient {
        self.auth = Auth::Hmac(key_id.to_owned(), Box::new(secret));
        self
    }

    /// Signs every request with AWS SigV4 (for a signer behind a Function
    /// URL or API Gateway with IAM auth; the `sigv4` feature).
    #[cfg(feature = "sigv4")]
    pub fn with_aws_sigv4(mut self, sigv4: crate::sigv4::AwsSigV4) -> SignerClient {
        self.auth = Auth::SigV4(sigv4);
        self
    }

    /// Asks for a certificate (`POST /v1/certificates`), with a fresh
    /// idempotency key ([`idempotency::new_key`]) sent on every attempt,
    /// retried by the client's [`RetryPolicy`]: however many attempts it
    /// takes, the signer issues at most one certificate for the call.
    ///
    /// Each attempt is authenticated anew (a fresh HMAC nonce and
    /// timestamp, a fresh SigV4 signature). Retried: transport errors
    /// (connection refused or reset, timeouts), HTTP 502, 503 and 504,
    /// 409 `idempotency_in_progress` and 429; any other answer is
    /// returned at once.
    pub async fn issue(&self, request: &CertificateRequest) -> Result<IssueResponse, ClientError> {
        Ok(self.issue_detailed(request, None).await?.response)
    }

    /// [`issue`](Self::issue) with the caller's idempotency `key` (16 to
    /// 128 characters of `A-Z a-z 0-9 - _`; [`ClientError::InvalidIdempotencyKey`]
    /// otherwise, and nothing is sent): for a caller that keeps its key
    /// across its own restarts, so that asking again after a crash gets
    /// the certificate already issued (within the signer's window) rather
    /// than a second one. The same key with a different request is
    /// refused (422 `idempotency_key_reused`).
    pub async fn issue_with_idempotency_key(
        &self,
        request: &CertificateRequest,
        key: &str,
    ) -> Result<IssueResponse, ClientError> {
        Ok(self.issue_detailed(request, Some(key)).await?.response)
    }

    /// [`issue`](Self::issue) (`key: None`, a fresh key) or
    /// [`issue_with_idempotency_key`](Self::issue_with_idempotency_key)
    /// (`Some(key)`), telling also whether the answer was a replay, the
    /// key sent and how many attempts it took.
    pub async fn issue_detailed(
        &self,
        request: &CertificateRequest,
        key: Option<&str>,
    ) -> Result<IssueOutcome, ClientError> {
        let key = match key {
            Some(key) => {
                idempotency::check_key(key).map_err(ClientError::InvalidIdempotencyKey)?;
                key.to_owned()
            }
            None => idempotency::new_key().map_err(ClientError::Signing)?,
        };
        let url = self.url("v1/certificates")?;
        // Serialising these structs of strings and JSON texts cannot fail.
        let body = serde_json::to_vec(request).unwrap_or_default();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let failure = match self.issue_once(&url, &body, &key).await {
                Ok((response, replayed)) => {
                    return Ok(IssueOutcome {
                        response,
                        replayed,
                        idempotency_key: key,
                        attempts,
                    })
                }
                Err(failure) => failure,
            };
            let delay = if failure.transient {
                self.retry.delay(attempts, failure.retry_after)
            } else {
                None
            };
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(failure.error.after(attempts)),
            }
        }
    }

    /// One attempt of [`issue_detailed`](Self::issue_detailed): the
    /// certificate and whether it was a replay.
    async fn issue_once(
        &self,
        url: &reqwest::Url,
        body: &[u8],
        key: &str,
    ) -> Result<(IssueResponse, bool), Failure> {
        let post = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(idempotency::HEADER, key);
        let post = self
            .authorize(post, "POST", url, Some("application/json"), body, true)
            .await
            .map_err(Failure::permanent)?;
        let answer = fetch(post.body(body.to_vec()), "POST", url).await?;
        if answer.status != reqwest::StatusCode::CREATED {
            return Err(answer.failure());
        }
        let replayed = answer
            .headers
            .get(idempotency::REPLAYED_HEADER)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        let response = serde_json::from_slice(&answer.body).map_err(|e| {
            Failure::permanent(ClientError::UnexpectedResponse(format!(
                "POST {url} answered 201 with a body that is not an issuance response: {e}"
            )))
        })?;
        Ok((response, replayed))
    }

    /// What the signer would issue for `request` (`POST
    /// /v1/certificates?dry_run=true`): authentication and the whole
    /// profile run, no key is made and nothing is signed. For checking a
    /// request against a profile in CI.
    ///
    /// Sent once, without an idempotency key: nothing is issued, so there
    /// is nothing to deduplicate, and a caller may simply ask again.
    pub async fn dry_run(&self, request: &CertificateRequest) -> Result<IssuePlan, ClientError> {
        let mut url = self.url("v1/certificates")?;
        url.set_query(Some("dry_run=true"));
        let body = self.post(&url, request, reqwest::StatusCode::OK).await?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::UnexpectedResponse(format!(
                "POST {url} answered 200 with a body that is not a dry-run plan: {e}"
            ))
        })
    }

    /// POSTs `request` to `url` (HMAC-signed when configured) and returns
    /// the body, which must come with `expected`.
    async fn post(
        &self,
        url: &reqwest::Url,
        request: &impl serde::Serialize,
        expected: reqwest::StatusCode,
    ) -> Result<Vec<u8>, ClientError> {
        // Serialising these structs of strings and JSON texts cannot fail.
        let body = serde_json::to_vec(request).unwrap_or_default();
        let post = self
            .http
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let post = self
            .authorize(post, "POST", url, Some("application/json"), &body, true)
            .await?;
        exchange(post.body(body), "POST", url, expected).await
    }

    /// The PEM CA chain of a profile (`GET /v1/ca`; the default profile's
    /// when `profile` is `None`). Signed with SigV4 when configured (a
    /// Function URL with IAM auth authenticates every path); HMAC signs
    /// only issuance.
    pub async fn ca_chain(&self, profile: Option<&str>) -> Result<String, ClientError> {
        let mut url = self.url("v1/ca")?;
        if let Some(profile) = profile {
            url.query_pairs_mut().append_pair("profile", profile);
        }
        let get = self
            .authorize(self.http.get(url.clone()), "GET", &url, None, b"", false)
            .await?;
        let body = exchange(get, "GET", &url, reqwest::StatusCode::OK).await?;
        String::from_utf8(body)
            .map_err(|_| ClientError::UnexpectedResponse(format!("GET {url}: not PEM text")))
    }

    /// Revokes by fact (`POST /v1/revocations`, for administrators):
    /// `revocation` holds exactly one of `session_id`, `transaction_id`,
    /// `serial`, `requester`, a `reason` (an RFC 5280 CRLReason name such as
    /// `keyCompromise`) and optionally `expires` (RFC 3339). Returns the
    /// signer's answer: the stored rule and the unexpired certificates it
    /// matched. Signed with HMAC or SigV4 when configured.
    pub async fn revoke(
        &self,
        revocation: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let url = self.url("v1/revocations")?;
        let body = self
            .post(&url, revocation, reqwest::StatusCode::CREATED)
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            ClientError::UnexpectedResponse(format!("POST {url}: not a revocation answer: {e}"))
        })
    }

    /// The current CRL (DER) of the CA `ca` (`GET /v1/crl`; the default
    /// profile's CA when `None`). Signed with SigV4 when configured.
    pub async fn crl(&self, ca: Option<&str>) -> Result<Vec<u8>, ClientError> {
        let mut url = self.url("v1/crl")?;
        if let Some(ca) = ca {
            url.query_pairs_mut().append_pair("ca", ca);
        }
        let get = self
            .authorize(self.http.get(url.clone()), "GET", &url, None, b"", false)
            .await?;
        exchange(get, "GET", &url, reqwest::StatusCode::OK).await
    }

    /// One page of the signer's ledger (`GET /v1/certificates`, for
    /// administrators): `query` holds exactly one of `session_id`,
    /// `transaction_id`, `serial`, `requester`, and optionally `since`,
    /// `until`, `limit`, `cursor`. Returns the records (JSON objects, oldest
    /// first) and the cursor of the next page. Signed with HMAC or SigV4
    /// when configured.
    pub async fn ledger_page(
        &self,
        query: &[(&str, &str)],
    ) -> Result<(Vec<serde_json::Value>, Option<String>), ClientError> {
        let mut url = self.url("v1/certificates")?;
        // Sent in canonical order (the encoding is `form_urlencoded`'s
        // already), so that the HMAC signature covers the query a REST API
        // or an ALB passes on whatever order it rebuilds it in.
        let mut sorted = query.to_vec();
        sorted.sort();
        url.query_pairs_mut().extend_pairs(sorted);
        let get = self
            .authorize(self.http.get(url.clone()), "GET", &url, None, b"", true)
            .await?;
        let body = exchange(get, "GET", &url, reqwest::StatusCode::OK).await?;
        #[derive(serde::Deserialize)]
        struct Page {
            certificates: Vec<serde_json::Value>,
            next: Option<String>,
        }
        let page: Page = serde_json::from_slice(&body).map_err(|e| {
            ClientError::UnexpectedResponse(format!("GET {url}: not a ledger page: {e}"))
        })?;
        Ok((page.certificates, page.next))
    }

    /// Adds the configured authentication to `request` (`method` to `url`
    /// with `content_type` and `body`, exactly as it will be sent): SigV4
    /// always, HMAC when `with_hmac` (the signer checks HMAC only where it
    /// authenticates callers, not on `GET /v1/ca`).
    async fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &reqwest::Url,
        content_type: Option<&str>,
        body: &[u8],
        with_hmac: bool,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        #[cfg(not(feature = "sigv4"))]
        let _ = content_type;
        match &self.auth {
            Auth::Hmac(key_id, secret) if with_hmac => {
                let path = match url.query() {
                    Some(query) => format!("{}?{query}", url.path()),
                    None => url.path().to_owned(),
                };
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let signature = hmac::authorization(key_id, secret, method, &path, now, body)
                    .map_err(ClientError::Signing)?;
                Ok(request.header(reqwest::header::AUTHORIZATION, signature))
            }
            #[cfg(feature = "sigv4")]
            Auth::SigV4(sigv4) => {
                let headers = sigv4
                    .headers(
                        method,
                        url.as_str(),
                        content_type,
                        body,
                        std::time::SystemTime::now(),
                    )
                    .await
                    .map_err(ClientError::SigV4)?;
                Ok(headers.into_iter().fold(request, |request, (name, value)| {
                    request.header(name, value)
                }))
            }
            _ => Ok(request),
        }
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::InvalidUrl(e.to_string()))
    }
}

/// Sends a request and reads the whole body, which must come with
/// `expected`; otherwise the signer's error (or a network error naming
/// `method` and `url`).
async fn exchange(
    request: reqwest::RequestBuilder,
    method: &str,
    url: &reqwest::Url,
    expected: reqwest::StatusCode,
) -> Result<Vec<u8>, ClientError> {
    let answer = fetch(request, method, url).await.map_err(|f| f.error)?;
    if answer.status != expected {
        return Err(answer.failure().error);
    }
    Ok(answer.body)
}

/// An HTTP answer, read whole.
struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// This answer as an error: the signer's, and whether to try again
    /// (502, 503, 504, 429, 409 `idempotency_in_progress`) and when.
    fn failure(&self) -> Failure {
        let retry_after = self
            .headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v.as_bytes()));
        let error = rejection(self.status, &self.body, retry_after);
        let transient = match self.status.as_u16() {
            502..=504 | 429 => true,
            409 => {
                matches!(&error, ClientError::Rejected { code, .. } if code == "idempotency_in_progress")
            }
            _ => false,
        };
        Failure {
            error,
            transient,
            retry_after,
        }
    }
}

/// An attempt that failed, and whether another may succeed.
struct Failure {
    error: ClientError,
    /// A transport error or an answer that says "later".
    transient: bool,
    /// The answer's `Retry-After` (integer seconds).
    retry_after: Option<Duration>,
}

impl Failure {
    /// An error that another attempt would not change.
    fn permanent(error: ClientError) -> Failure {
        Failure {
            error,
            transient: false,
            retry_after: None,
        }
    }
}

/// Sends a request and reads the whole answer; a transport error names
/// `method` and `url`, and is transient unless the request could not be
/// built or was redirected.
async fn fetch(
    request: reqwest::RequestBuilder,
    method: &str,
    url: &reqwest::Url,
) -> Result<Answer, Failure> {
    let network = |e: reqwest::Error| Failure {
        transient: e.is_connect()
            || e.is_timeout()
            || e.is_request()
            || e.is_body()
            || e.is_decode(),
        error: ClientError::Network(format!("{method} {url}: {}", describe(&e))),
        retry_after: None,
    };
    let response = request.send().await.map_err(network)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(network)?;
    Ok(Answer {
        status,
        headers,
        body: Vec::from(body),
    })
}

/// The signer's error, from its JSON error body when it sent one.
fn rejection(
    status: reqwest::StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Rejected {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            retry_after,
        },
        Err(_) => {
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
    let mut text = error_chain(error);
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
    /// The idempotency key given is not one the signer accepts.
    #[error("{0}")]
    InvalidIdempotencyKey(KeyError),
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Signing(SigningError),
    /// The request could not be signed with AWS SigV4 (no credentials, no region).
    #[cfg(feature = "sigv4")]
    #[error("{0}")]
    SigV4(crate::sigv4::SigV4Error),
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
        /// The answer's `Retry-After` (integer seconds) when it had one
        /// (429 `rate_limited`, 409 `idempotency_in_progress`, some 503s):
        /// how long to wait before asking again. [`SignerClient::issue`]
        /// returns the error rather than wait longer than
        /// [`RetryPolicy::max_delay`].
        retry_after: Option<Duration>,
    },
    /// The signer answered something that is not this API.
    #[error("unexpected answer from the signer: {0}")]
    UnexpectedResponse(String),
}

impl ClientError {
    /// A network error after several attempts says how many.
    fn after(self, attempts: u32) -> ClientError {
        match self {
            ClientError::Network(text) if attempts > 1 => {
                ClientError::Network(format!("{text} ({attempts} attempts)"))
            }
            other => other,
        }
    }
}

#[cfg(test)]
#[path = "signer_tests.rs"]
mod tests;
