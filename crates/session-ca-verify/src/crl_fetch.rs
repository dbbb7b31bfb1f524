//! Fetching CRLs over http (the `crl-fetch` feature): once with
//! [`CrlSet::refresh_from`], or every so often on a background thread with
//! [`CrlRefresher`].
//!
//! Plain http only: the HTTP client (ureq) is built without TLS, so the
//! build keeps its one crypto library. That is how CRLs are conventionally
//! published (RFC 5280 §4.2.1.13 names http and ldap URIs; a CRL fetched
//! over https would make checking the server's certificate depend on a
//! CRL). A CRL needs no secure channel: it is signed, and [`CrlSet`]
//! loads one only if its signature verifies with the key of one of the
//! verifier's CAs and it is not older than the one in place, so what an
//! attacker on the path can do is withhold a fresh CRL, which ends in
//! [`VerifyError::StaleCrl`] rather than in acceptance.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{CrlSet, VerifyError};

/// How long one fetch may take, connection to last byte.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest CRL accepted: CRLs of short-lived certificates are small.
const MAX_CRL_BYTES: u64 = 16 * 1024 * 1024;

impl CrlSet {
    /// Fetches the CRL at `url` (`http://` only; DER, or PEM) and loads it
    /// in place of the one from the same issuer, as
    /// [`update`](Self::update) does; returns how many CRLs it loaded. On
    /// any failure ([`VerifyError::CrlFetch`], or
    /// [`VerifyError::UnusableCrl`] for a body that is not a usable CRL) the
    /// CRLs in place are kept.
    pub fn refresh_from(&self, url: &str) -> Result<usize, VerifyError> {
        self.refresh_with(&agent(), url)
    }

    fn refresh_with(&self, agent: &ureq::Agent, url: &str) -> Result<usize, VerifyError> {
        check_url(url)?;
        let fetch_error = |why: &str, source: ureq::Error| VerifyError::CrlFetch {
            url: shown(url).to_owned(),
            why: format!("{why}: {source}"),
            source: Some(Box::new(source)),
        };
        let mut response = agent
            .get(url)
            .call()
            .map_err(|e| fetch_error("request failed", e))?;
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_CRL_BYTES)
            .read_to_vec()
            .map_err(|e| fetch_error("reading the response failed", e))?;
        self.update(body)
    }
}

/// Refreshes a [`CrlSet`] from a URL on a background thread: at once, then
/// every `every`, until stopped. A failed fetch keeps the CRLs in place
/// (the next attempt comes after the same interval); once they pass their
/// nextUpdate, verification refuses certificates with
/// [`VerifyError::StaleCrl`], so pick `every` well below the CRL's update
/// interval.
///
/// Each outcome is handed to the `report` callback (to log or count); the
/// refresher logs nothing itself. Errors name the URL without its query
/// or user information.
#[derive(Debug)]
pub struct CrlRefresher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CrlRefresher {
    /// Starts refreshing `crls` from `url` (`http://` only, checked here)
    /// every `every`; `report` gets each attempt's outcome: how many CRLs
    /// were loaded, or why none was.
    pub fn spawn(
        crls: CrlSet,
        url: impl Into<String>,
        every: Duration,
        mut report: impl FnMut(Result<usize, VerifyError>) + Send + 'static,
    ) -> Result<CrlRefresher, VerifyError> {
        let url = url.into();
        check_url(&url)?;
        // At most one fetch a second, whatever `every` says.
        let every = every.max(Duration::from_secs(1));
        let (stop, stopped) = mpsc::channel::<()>();
        let shown_url = shown(&url).to_owned();
        let thread = std::thread::Builder::new()
            .name("crl-refresh".into())
            .spawn(move || {
                let agent = agent();
                loop {
                    report(crls.refresh_with(&agent, &url));
                    match stopped.recv_timeout(every) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        // Stopped, or the refresher was dropped.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| VerifyError::CrlFetch {
                url: shown_url,
                why: format!("cannot start the refresh thread: {e}"),
                source: Some(Box::new(e)),
            })?;
        Ok(CrlRefresher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops refreshing and waits for the thread to end (at most one fetch
    /// in flight, bounded by its 30 s timeout). Dropping the refresher
    /// stops it too, without waiting.
    pub fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // A panic in `report` ended the thread already; nothing to undo.
            let _ = thread.join();
        }
    }
}

impl Drop for CrlRefresher {
    fn drop(&mut self) {
        // Disconnecting the channel wakes the thread, which then ends.
        self.stop.take();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(true)
        .build()
        .into()
}

/// Refuses what this client cannot or should not fetch: anything but
/// `http://`, and URLs with user information (credentials that would end
/// up in errors and logs).
fn check_url(url: &str) -> Result<(), VerifyError> {
    let refuse = |why: &str| VerifyError::CrlFetch {
        url: shown(url).to_owned(),
        why: why.to_owned(),
        source: None,
    };
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
        .map(|_| &url[7..])
        .ok_or_else(|| {
            refuse(
                "only http:// URLs are fetched (CRLs are signed and served over http; this \
                 client has no TLS, so the build keeps one crypto library)",
            )
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(refuse("user information in a CRL URL is not supported"));
    }
    if authority.is_empty() {
        return Err(refuse("no host"));
    }
    Ok(())
}

/// The URL as errors show it: without query or fragment, and without user
/// information (which `check_url` refuses anyway).
fn shown(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.find("://") {
        Some(at) if url[at + 3..].split('/').next().unwrap_or("").contains('@') => "(URL elided)",
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_without_credentials_are_fetched() {
        check_url("http://crl.example/issuing.crl").unwrap();
        check_url("HTTP://crl.example:8080/x?y=1").unwrap();
        for (url, why) in [
            ("https://crl.example/x.crl", "only http://"),
            ("ldap://crl.example/x", "only http://"),
            ("http://user:pw@crl.example/x", "user information"),
            ("http:///x", "no host"),
            ("", "only http://"),
        ] {
            let err = check_url(url).unwrap_err();
            assert!(err.to_string().contains(why), "{url}: {err}");
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn shown_urls_drop_queries_and_credentials() {
        assert_eq!(shown("http://h/x.crl?token=s3cret"), "http://h/x.crl");
        assert_eq!(shown("http://u:p@h/x"), "(URL elided)");
        assert_eq!(shown("http://h/a@b"), "http://h/a@b");
    }
}
