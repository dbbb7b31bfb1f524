//! Revocation by fact: a rule that names one session, transaction, serial
//! or requester, with an RFC 5280 reason and an optional end.
//!
//! A rule does two things from the moment it is stored:
//!
//! - issuance for a revoked session, transaction or requester is refused
//!   (403 `revoked`) while the rule is in force (until its `expires`);
//! - every unexpired certificate it matches (issued before its `expires`)
//!   is listed on its issuing CA's CRL, with the rule's reason.
//!
//! Certificates live minutes, so a rule matters for CRLs only until the
//! certificates issued before it (or while it raced with them) have
//! expired: CRLs read the rules stored within the longest `max_ttl` of the
//! profiles, plus [`CRL_HORIZON_MARGIN`].

use std::fmt;
use std::str::FromStr;

use super::LedgerKey;

/// Added to the longest `max_ttl` for the rules and certificates a CRL
/// reads: requests in flight when a rule was stored, and clock skew.
pub const CRL_HORIZON_MARGIN: i64 = 600;

/// The reasons of RFC 5280 §5.3.1, by their ASN.1 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `unspecified` (0).
    Unspecified,
    /// `keyCompromise` (1).
    KeyCompromise,
    /// `cACompromise` (2).
    CaCompromise,
    /// `affiliationChanged` (3).
    AffiliationChanged,
    /// `superseded` (4).
    Superseded,
    /// `cessationOfOperation` (5).
    CessationOfOperation,
    /// `certificateHold` (6).
    CertificateHold,
    /// `privilegeWithdrawn` (9).
    PrivilegeWithdrawn,
    /// `aACompromise` (10).
    AaCompromise,
}

/// Every reason a revocation may give, for error messages and the spec.
pub const REASON_NAMES: [&str; 9] = [
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
    "aACompromise",
];

impl Reason {
    const ALL: [Reason; 9] = [
        Reason::Unspecified,
        Reason::KeyCompromise,
        Reason::CaCompromise,
        Reason::AffiliationChanged,
        Reason::Superseded,
        Reason::CessationOfOperation,
        Reason::CertificateHold,
        Reason::PrivilegeWithdrawn,
        Reason::AaCompromise,
    ];

    /// The ASN.1 name (`keyCompromise`).
    pub fn name(self) -> &'static str {
        REASON_NAMES[Reason::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()]
    }

    /// The CRLReason code (RFC 5280 §5.3.1).
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::CaCompromise => 2,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::PrivilegeWithdrawn => 9,
            Reason::AaCompromise => 10,
        }
    }

    /// Whether it says a key was compromised (`keyCompromise`,
    /// `cACompromise`, `aACompromise`).
    pub fn is_compromise(self) -> bool {
        matches!(
            self,
            Reason::KeyCompromise | Reason::CaCompromise | Reason::AaCompromise
        )
    }

    /// rcgen's name for it.
    pub fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Reason::Unspecified => R::Unspecified,
            Reason::KeyCompromise => R::KeyCompromise,
            Reason::CaCompromise => R::CaCompromise,
            Reason::AffiliationChanged => R::AffiliationChanged,
            Reason::Superseded => R::Superseded,
            Reason::CessationOfOperation => R::CessationOfOperation,
            Reason::CertificateHold => R::CertificateHold,
            Reason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Reason::AaCompromise => R::AaCompromise,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Reason {
    type Err = String;

    fn from_str(text: &str) -> Result<Reason, String> {
        if text == "removeFromCRL" {
            return Err(
                "removeFromCRL belongs to delta CRLs, which this CA does not issue; a rule \
                 with an `expires` ends by itself"
                    .into(),
            );
        }
        Reason::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not an RFC 5280 reason; use one of {}",
                    REASON_NAMES.join(", ")
                )
            })
    }
}

/// One revocation rule, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// What it revokes.
    pub key: LedgerKey,
    /// Why.
    pub reason: Reason,
    /// When it was made (Unix seconds).
    pub revoked_at: i64,
    /// When it stops refusing issuance (Unix seconds); none: never.
    /// Certificates issued before then stay revoked until they expire.
    pub expires: Option<i64>,
    /// The administrator who made it (their caller label).
    pub revoked_by: String,
    /// The correlation id of the request that made it.
    pub request_id: String,
}

impl Revocation {
    /// Whether it refuses issuance at `now`: from the moment it is stored
    /// (whatever the clock of the instance asking says of `revoked_at`)
    /// until `expires`.
    pub fn in_force(&self, now: i64) -> bool {
        self.expires.is_none_or(|at| now < at)
    }

    /// Whether a certificate issued at `issued_at` falls under it.
    pub fn covers_issued_at(&self, issued_at: i64) -> bool {
        self.expires.is_none_or(|at| issued_at < at)
    }
}

impl LedgerKey {
    /// The key's kind, as the API and the stores name it.
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerKey::SessionId(_) => "session_id",
            LedgerKey::TransactionId(_) => "transaction_id",
            LedgerKey::Serial(_) => "serial",
            LedgerKey::Requester(_) => "requester",
        }
    }

    /// The key's value.
    pub fn value(&self) -> &str {
        match self {
            LedgerKey::SessionId(v)
            | LedgerKey::TransactionId(v)
            | LedgerKey::Serial(v)
            | LedgerKey::Requester(v) => v,
        }
    }

    /// The key of `kind` (as [`kind`](Self::kind) names it) and `value`.
    pub fn from_parts(kind: &str, value: String) -> Option<LedgerKey> {
        Some(match kind {
            "session_id" => LedgerKey::SessionId(value),
            "transaction_id" => LedgerKey::TransactionId(value),
            "serial" => LedgerKey::Serial(value),
            "requester" => LedgerKey::Requester(value),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_and_write_their_rfc_5280_names_and_codes() {
        for (name, code) in REASON_NAMES.iter().zip([0u8, 1, 2, 3, 4, 5, 6, 9, 10]) {
            let reason: Reason = name.parse().unwrap();
            assert_eq!(reason.name(), *name);
            assert_eq!(reason.code(), code);
            assert_eq!(reason.to_rcgen() as u8, code);
        }
        assert!("removeFromCRL"
            .parse::<Reason>()
            .unwrap_err()
            .contains("delta"));
        assert!("KeyCompromise"
            .parse::<Reason>()
            .unwrap_err()
            .contains("keyCompromise"));
    }

    #[test]
    fn a_rule_is_in_force_until_it_expires_and_covers_what_came_before() {
        let rule = Revocation {
            key: LedgerKey::SessionId("s".into()),
            reason: Reason::KeyCompromise,
            revoked_at: 100,
            expires: Some(200),
            revoked_by: "admin".into(),
            request_id: "r".into(),
        };
        // An instance whose clock is behind the one that revoked refuses too.
        assert!(rule.in_force(99));
        assert!(rule.in_force(100) && rule.in_force(199));
        assert!(!rule.in_force(200));
        assert!(rule.covers_issued_at(50) && rule.covers_issued_at(199));
        assert!(!rule.covers_issued_at(200));
    }
}
