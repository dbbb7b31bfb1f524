//! A session's certificate, kept while it is fresh and renewed at its
//! `renew_after`: what a long-running caller (a warm Lambda execution
//! environment, a server) holds instead of asking the signer per call.

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::signer::{ClientError, SignerClient};
use crate::wire::{CertificateRequest, IssueResponse};

/// One session's certificate from one signer, renewed when due.
///
/// [`get`](Self::get) returns the certificate held while the clock is
/// before its `renew_after` (the signer sets it at 70 % of the time from
/// issuance to `notAfter`), and asks the signer for a new one with the same request
/// after it. Without a `session_id` in the request, the one the signer
/// generated first is kept for renewals, so every certificate names the
/// same session. Concurrent callers share one renewal. If a renewal fails
/// while the held certificate is still valid, the held one is returned
/// and the next call tries again; once it has expired, the error is.
/// Each renewal is one [`SignerClient::issue`] call: one fresh
/// idempotency key, retried under it by the client's
/// [`RetryPolicy`](crate::RetryPolicy): its retries get at most one
/// certificate issued.
///
/// ```no_run
/// # async fn run(signer: session_ca_client::SignerClient) -> Result<(), session_ca_client::ClientError> {
/// use session_ca_client::{CachedCertificate, CertificateRequest};
/// let certificate = CachedCertificate::new(signer, CertificateRequest::default());
/// let issued = certificate.get().await?; // the signer is called at most once per renew_after
/// let identity_pem = issued.identity_pem(); // for reqwest::Identity::from_pem
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct CachedCertificate {
    signer: SignerClient,
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug)]
struct State {
    request: CertificateRequest,
    held: Option<Held>,
}

#[derive(Debug)]
struct Held {
    issued: Arc<IssueResponse>,
    renew_after: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl CachedCertificate {
    /// Holds the certificates that `signer` issues for `request`.
    pub fn new(signer: SignerClient, request: CertificateRequest) -> CachedCertificate {
        CachedCertificate {
            signer,
            state: tokio::sync::Mutex::new(State {
                request,
                held: None,
            }),
        }
    }

    /// The current certificate, renewed first when the system clock is at
    /// or past its `renew_after`.
    pub async fn get(&self) -> Result<Arc<IssueResponse>, ClientError> {
        self.get_by(OffsetDateTime::now_utc).await
    }

    /// [`get`](Self::get) with the clock reading `now`.
    pub async fn get_at(&self, now: OffsetDateTime) -> Result<Arc<IssueResponse>, ClientError> {
        self.get_by(|| now).await
    }

    /// [`get`](Self::get) with the clock `clock`, read once the renewal
    /// lock is held (a caller may have waited on another's renewal) and
    /// again when a renewal failed (its retries take time): a certificate
    /// that expired meanwhile is never handed back.
    async fn get_by(
        &self,
        clock: impl Fn() -> OffsetDateTime,
    ) -> Result<Arc<IssueResponse>, ClientError> {
        let mut state = self.state.lock().await;
        if let Some(current) = state.held.as_ref() {
            if clock() < current.renew_after {
                return Ok(Arc::clone(&current.issued));
            }
        }
        match self.signer.issue(&state.request).await {
            Ok(issued) => {
                let fresh = Held::new(issued)?;
                let issued = Arc::clone(&fresh.issued);
                if state.request.session_id.is_none() {
                    state.request.session_id = Some(issued.session_id.clone());
                }
                state.held = Some(fresh);
                Ok(issued)
            }
            Err(error) => match state.held.as_ref() {
                Some(current) if clock() < current.not_after => Ok(Arc::clone(&current.issued)),
                _ => Err(error),
            },
        }
    }
}

impl Held {
    fn new(issued: IssueResponse) -> Result<Held, ClientError> {
        let parse = |name: &str, text: &str| {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
                ClientError::UnexpectedResponse(format!(
                    "the issuance response's {name} {text:?} is not an RFC 3339 time: {e}"
                ))
            })
        };
        Ok(Held {
            renew_after: parse("renew_after", &issued.renew_after)?,
            not_after: parse("not_after", &issued.not_after)?,
            issued: Arc::new(issued),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::RetryPolicy;

    /// A held certificate renewed after `renew_after`, with a signer that
    /// cannot be reached: the clock read before the renewal says it is
    /// still valid, the one read after it says it has expired.
    #[tokio::test]
    async fn a_failed_renewal_never_returns_a_certificate_that_expired_meanwhile() {
        let signer = SignerClient::new("http://127.0.0.1:9/", None)
            .unwrap()
            .with_retry_policy(RetryPolicy::none());
        let cached = CachedCertificate::new(signer, CertificateRequest::default());
        let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_767_225_600 + s).unwrap();
        let issued: IssueResponse = serde_json::from_value(serde_json::json!({
            "serial": "01", "certificate": "", "ca_chain": [],
            "not_before": "2026-01-01T00:00:00Z", "not_after": "2026-01-01T00:05:00Z",
            "renew_after": "2026-01-01T00:03:30Z", "key_type": "ecdsa-p256",
            "fingerprint_sha256": "", "profile": "default",
            "session_id": "s", "request_id": "r"
        }))
        .unwrap();
        cached.state.lock().await.held = Some(Held::new(issued).unwrap());
        // Still valid while renewing (t+240 s, renew_after at 210 s):
        // the held certificate is kept.
        let kept = cached.get_by(|| t(240)).await;
        assert_eq!(kept.unwrap().serial, "01");
        // Due at 290 s, expired (300 s) once the renewal has failed.
        let reads = AtomicUsize::new(0);
        let clock = || match reads.fetch_add(1, Ordering::SeqCst) {
            0 => t(290),
            _ => t(301),
        };
        let outcome = cached.get_by(clock).await;
        assert!(outcome.is_err(), "an expired certificate was returned");
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
