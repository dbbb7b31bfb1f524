//! Authentication: how callers prove who they are ([`Auth`]: none, IAM or
//! HMAC), the identity that results ([`Caller`]), and patterns over
//! identities ([`CallerPattern`]) that profiles admit.
//!
//! This module knows nothing of HTTP: the HTTP layer's extractor hands it
//! the parts of a request it needs ([`Credentials`]) and gets a [`Caller`]
//! or an [`AuthError`]. A new authentication method is a variant of
//! [`AuthMode`] and [`Auth`], its settings in [`settings`], and its check in
//! [`Auth::authenticate`].

pub mod hmac;
pub mod settings;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use hmac::{HmacAuth, HmacError};

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication: every caller is anonymous. Only allowed when every
    /// listen address is loopback, for local development.
    #[default]
    None,
    /// AWS IAM (Lambda behind a Function URL or API Gateway with `AWS_IAM`
    /// auth): the caller is the principal ARN from the request context.
    Iam,
    /// HMAC-signed requests (standalone servers): the caller is the key id
    /// (see [`crate::hmac`]).
    Hmac,
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::None => "none",
            AuthMode::Iam => "iam",
            AuthMode::Hmac => "hmac",
        })
    }
}

/// The configured authentication, ready to check requests.
#[derive(Debug, Clone)]
pub enum Auth {
    /// Every caller is anonymous (loopback development only).
    None,
    /// The caller is the IAM principal of the Lambda request context.
    Iam,
    /// HMAC-signed requests; the keys and replay window are shared by
    /// clones, so one process keeps one window.
    Hmac(Arc<HmacAuth>),
}

/// What authentication looks at in a request, taken from it by the HTTP layer.
/// Its `Debug` leaves out the `Authorization` header and the body.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The IAM principal ARN from the Lambda request context, if any.
    pub iam_principal: Option<&'a str>,
    /// The `Authorization` header (`None` when absent; non-UTF-8 text is
    /// passed as U+FFFD so it fails to parse).
    pub authorization: Option<&'a str>,
    /// The request method.
    pub method: &'a str,
    /// The path with its query, as routed (relative to the API behind an
    /// API Gateway stage or base path).
    pub path_and_query: &'a str,
    /// The path of the client's URL, when a front door routed the request
    /// on another (an API Gateway stage or a custom domain's base path in
    /// front of the route).
    pub client_path: Option<&'a str>,
    /// The whole body.
    pub body: &'a [u8],
    /// The signer's clock, unix seconds.
    pub now: i64,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("iam_principal", &self.iam_principal)
            .field("authorization", &self.authorization.map(|_| "[elided]"))
            .field("method", &self.method)
            .field("path_and_query", &self.path_and_query)
            .field("client_path", &self.client_path)
            .field("body_len", &self.body.len())
            .field("now", &self.now)
            .finish()
    }
}

impl Auth {
    /// The mode this authentication implements.
    pub fn mode(&self) -> AuthMode {
        match self {
            Auth::None => AuthMode::None,
            Auth::Iam => AuthMode::Iam,
            Auth::Hmac(_) => AuthMode::Hmac,
        }
    }

    /// Whether checking a request needs its whole body (a signature covers it).
    pub fn needs_body(&self) -> bool {
        matches!(self, Auth::Hmac(_))
    }

    /// Who is calling, or why the request is not authenticated.
    pub fn authenticate(&self, request: Credentials<'_>) -> Result<Caller, AuthError> {
        match self {
            Auth::None => Ok(Caller::Anonymous),
            Auth::Iam => request
                .iam_principal
                .map(|arn| Caller::Principal(arn.to_owned()))
                .ok_or(AuthError::NoIamPrincipal),
            Auth::Hmac(hmac) => hmac
                .verify_at(
                    request.authorization,
                    request.method,
                    request.path_and_query,
                    request.client_path,
                    request.body,
                    request.now,
                )
                .map(Caller::Principal)
                .map_err(AuthError::Hmac),
        }
    }
}

/// Why a request is not authenticated (always the caller's fault: 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `auth = "iam"`, but the request context carries no IAM principal.
    #[error(
        "no IAM principal in the request context; call through a Function URL or API \
         Gateway route with AWS_IAM auth, signing the request with SigV4"
    )]
    NoIamPrincipal,
    /// The request's HMAC authentication failed.
    #[error(transparent)]
    Hmac(#[from] HmacError),
}

/// The authenticated identity of a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No identity (auth mode `none`).
    Anonymous,
    /// An authenticated principal (an IAM ARN or an HMAC key id).
    Principal(String),
}

impl Caller {
    /// The identity written into the certificate's `requester` claim, if any.
    pub fn identity(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Principal(p) => Some(p),
        }
    }

    /// A label for audit logs.
    pub fn audit_label(&self) -> &str {
        self.identity().unwrap_or("anonymous")
    }
}

/// A pattern over caller identities: `*` matches any run of characters
/// (including `/` and `:`, as in IAM policies) and `?` any one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerPattern(String);

impl CallerPattern {
    /// A pattern from its text.
    pub fn new(pattern: impl Into<String>) -> Self {
        CallerPattern(pattern.into())
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `identity` matches the whole pattern.
    pub fn matches(&self, identity: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = identity.chars().collect();
        // Iterative wildcard matching with single-star backtracking: linear
        // in practice and never recursive, so a hostile pattern cannot blow the stack.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((sp, st)) = star {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_iam() {
        let p = CallerPattern::new("arn:aws:sts::123456789012:assumed-role/payments-*/*");
        assert!(p.matches("arn:aws:sts::123456789012:assumed-role/payments-api/session-1"));
        assert!(p.matches("arn:aws:sts::123456789012:assumed-role/payments-/x/y"));
        assert!(!p.matches("arn:aws:sts::123456789012:assumed-role/ledger-api/s"));
        assert!(!p.matches("arn:aws:sts::999999999999:assumed-role/payments-api/s"));
        assert!(CallerPattern::new("*").matches(""));
        assert!(CallerPattern::new("a?c").matches("abc"));
        assert!(!CallerPattern::new("a?c").matches("ac"));
        assert!(!CallerPattern::new("abc").matches("abcd"));
        assert!(CallerPattern::new("a*b*c").matches("aXbYbZc"));
    }

    #[test]
    fn anonymous_has_no_identity() {
        assert_eq!(Caller::Anonymous.identity(), None);
        assert_eq!(Caller::Anonymous.audit_label(), "anonymous");
        assert_eq!(Caller::Principal("k1".into()).identity(), Some("k1"));
    }
}
