//! Caller identity: who is asking for a certificate, and whether a profile admits them.

use std::fmt;

use serde::{Deserialize, Serialize};

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
