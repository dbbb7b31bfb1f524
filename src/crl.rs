//! Certificate revocation lists: each CA's v2 CRL (RFC 5280 §5), built
//! from the ledger's revocation rules and the certificates they match,
//! signed by the CA that issued them.
//!
//! A CRL lists every unexpired certificate of its CA that a rule matches
//! (issued before the rule's `expires`), with the rule's reason and the
//! time of the revocation. It carries the CA's key identifier (AKI), a CRL
//! number from the store's counter (greater than every number before, from
//! any instance), `thisUpdate` now and `nextUpdate` `crl.next_update`
//! later. A signed CRL is reused until half of that has passed, until the
//! store's revision shows a new rule (from any instance), or until the CA
//! is reloaded with other certificates; one signed within [`INDEX_LAG`] of
//! its newest rule only until that has passed since the rule. It lists only the certificates
//! of the CA's current key (a CA rotated under the same name has its old
//! key's certificates in the ledger too).

use std::collections::BTreeMap;
use std::sync::Arc;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::ca::{SignError, SigningCa};
use crate::config::Config;
use crate::store::revocation::CRL_HORIZON_MARGIN;
use crate::store::{
    CachedCrl, LedgerKey, LedgerQuery, LedgerRecord, Revocation, Store, StoreError, MAX_PAGE,
};

/// Why no CRL could be given.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// The store could not be read or the CRL number not advanced.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The CA cannot sign a CRL for its certificates: a delegated KMS CA,
    /// or a CA certificate without cRLSign or a key identifier.
    #[error("{0}")]
    Unsupported(String),
    /// The CA's key did not sign (KMS unreachable, ...).
    #[error("the CRL could not be signed: {0}")]
    Sign(String),
}

impl From<SignError> for CrlError {
    fn from(e: SignError) -> CrlError {
        match e {
            SignError::NoCrl(reason) => CrlError::Unsupported(reason),
            // KMS did not sign this time (throttled, unreachable, disabled).
            SignError::Kms(e) => CrlError::Sign(e.to_string()),
            // What the CA is, not a passing fault: retrying will not help.
            SignError::Rcgen(rcgen::Error::IssuerNotCrlSigner) => CrlError::Unsupported(
                "the CA certificate's keyUsage lacks cRLSign, so it cannot sign CRLs (RFC 5280 \
                 §4.2.1.3); re-issue it (session-ca init makes CAs with cRLSign)"
                    .into(),
            ),
            other => CrlError::Unsupported(format!("the CA cannot sign a CRL: {other}")),
        }
    }
}

/// How far back rules and certificates matter to a CRL at all: the longest
/// lifetime a profile allows, plus [`CRL_HORIZON_MARGIN`].
pub fn horizon(config: &Config) -> i64 {
    i64::try_from(config.longest_ttl().as_secs()).unwrap_or(i64::MAX / 2) + CRL_HORIZON_MARGIN
}

/// The certificates of CA `ca` that `rules` revoke at `now`, by serial:
/// those that expired after `expired_after` (unexpired ones, and on a CRL
/// also those that expired within one `nextUpdate` period, see [`sign`]),
/// issued before each rule's end. When several rules match one
/// certificate, a compromise (`keyCompromise`, `cACompromise`,
/// `aACompromise`) outranks any other reason, so that a key found
/// compromised after a milder revocation says so (as the CA/Browser
/// Forum's rules ask); otherwise the earliest rule gives the reason. The
/// revocation time is always the earliest of them: a later rule never
/// moves a certificate's revocation date forward.
pub async fn revoked_certificates(
    store: &dyn Store,
    ca: &str,
    rules: &[Revocation],
    now: i64,
    since: i64,
    expired_after: i64,
) -> Result<BTreeMap<String, (LedgerRecord, Revocation)>, StoreError> {
    let rank = |rule: &Revocation| (!rule.reason.is_compromise(), rule.revoked_at);
    let mut revoked: BTreeMap<String, (LedgerRecord, Revocation)> = BTreeMap::new();
    for rule in rules {
        for record in matching(store, &rule.key, now, since).await? {
            if record.ca != ca
                || record.not_after <= expired_after
                || !rule.covers_issued_at(record.issued_at)
            {
                continue;
            }
            match revoked.get_mut(&record.serial) {
                // The reason is the top-ranked rule's; the time stays the
                // earliest any rule gave (a date never moves later).
                Some((_, seen)) if rank(seen) <= rank(rule) => {
                    seen.revoked_at = seen.revoked_at.min(rule.revoked_at);
                }
                Some((_, seen)) => {
                    let earliest = seen.revoked_at.min(rule.revoked_at);
                    *seen = Revocation {
                        revoked_at: earliest,
                        ..rule.clone()
                    };
                }
                None => {
                    revoked.insert(record.serial.clone(), (record, rule.clone()));
                }
            }
        }
    }
    Ok(revoked)
}

/// Every record `key` selects issued at or after `since` (all pages).
pub async fn matching(
    store: &dyn Store,
    key: &LedgerKey,
    now: i64,
    since: i64,
) -> Result<Vec<LedgerRecord>, StoreError> {
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .query(&LedgerQuery {
                key: key.clone(),
                since: Some(since),
                until: None,
                limit: MAX_PAGE,
                cursor: cursor.take(),
                now,
            })
            .await?;
        records.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(records),
        }
    }
}

/// A CA found able to sign CRLs, with the key identifier its CRLs name.
#[derive(Debug)]
pub struct Signable<'a> {
    ca: &'a SigningCa,
    key_identifier: Vec<u8>,
}

/// Whether `ca` can sign a CRL at all: its key is not a delegation made per
/// instance, and its certificate allows CRL signing and has the key
/// identifier a CRL names. Answered without the store.
pub fn signable(ca: &SigningCa) -> Result<Signable<'_>, CrlError> {
    ca.can_sign_crl()?;
    Ok(Signable {
        ca,
        key_identifier: crl_key_identifier(ca)?,
    })
}

/// The CA certificate's subject key identifier (the CRL's AKI must match
/// the AKI of the certificates it covers, which is this), once the
/// certificate is known to allow CRL signing (RFC 5280 §4.2.1.3).
fn crl_key_identifier(ca: &SigningCa) -> Result<Vec<u8>, CrlError> {
    let (_, cert) = X509Certificate::from_der(ca.cert_der.as_ref())
        .map_err(|_| CrlError::Unsupported("the CA certificate does not parse".into()))?;
    let mut key_id = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => key_id = Some(id.0.to_vec()),
            ParsedExtension::KeyUsage(usage) if !usage.crl_sign() => {
                return Err(SignError::Rcgen(rcgen::Error::IssuerNotCrlSigner).into())
            }
            _ => {}
        }
    }
    key_id.ok_or_else(|| {
        CrlError::Unsupported(
            "the CA certificate has no subject key identifier, which a CRL's authority key \
             identifier must name (RFC 5280 §5.2.1)"
                .into(),
        )
    })
}

/// Whether `record`'s certificate names the key `key_identifier` as its
/// issuer's (its authority key identifier). A CA reloaded with another
/// key keeps its name, so the ledger holds certificates of both keys under
/// it. A certificate that cannot be read, or names no key, is kept (listed
/// rather than silently dropped), with a warning.
fn issued_by(record: &LedgerRecord, key_identifier: &[u8]) -> bool {
    let named = x509_parser::pem::parse_x509_pem(record.certificate.as_bytes())
        .ok()
        .and_then(|(_, pem)| {
            let (_, cert) = X509Certificate::from_der(&pem.contents).ok()?;
            cert.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| id.0.to_vec())
                    }
                    _ => None,
                })
        });
    match named {
        Some(id) => id == key_identifier,
        None => {
            tracing::warn!(
                serial = %record.serial,
                "a ledger certificate names no issuing key; listed on its CA's CRL"
            );
            true
        }
    }
}

fn serial_number(hex: &str) -> Option<SerialNumber> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    bytes.map(SerialNumber::from)
}

/// Builds and signs the CRL of `ca` at `now` (advancing its CRL number).
///
/// A revoked certificate stays listed for one `crl.next_update` period
/// after it expires: RFC 5280 §3.3 says an entry must not be removed
/// before it has appeared on one regularly scheduled CRL issued beyond
/// the certificate's validity period, and a CRL is signed again at least
/// every half period while it is asked for.
pub async fn sign(
    store: &dyn Store,
    ca: &SigningCa,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CrlError> {
    // Refused before the store is read or a CRL number spent: what the CA
    // cannot sign, it cannot sign on any request (`GET /v1/crl` is public).
    let signable = signable(ca)?;
    Ok(sign_noting_newest_rule(store, &signable, config, now)
        .await?
        .0)
}

/// [`sign`], and when the newest rule read was made (Unix seconds).
async fn sign_noting_newest_rule(
    store: &dyn Store,
    signable: &Signable<'_>,
    config: &Config,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, Option<i64>), CrlError> {
    let Signable { ca, key_identifier } = signable;
    let at = now.unix_timestamp();
    let listed_for = i64::try_from(config.crl.next_update.as_secs()).unwrap_or(i64::MAX / 4);
    let since = at
        .saturating_sub(horizon(config))
        .saturating_sub(listed_for);
    let rules = store.revocations_since(since).await?;
    let newest_rule = rules.iter().map(|rule| rule.revoked_at).max();
    let expired_after = at.saturating_sub(listed_for);
    let revoked = revoked_certificates(store, &ca.name, &rules, at, since, expired_after).await?;
    let mut revoked_certs = Vec::with_capacity(revoked.len());
    for (serial, (record, rule)) in &revoked {
        if !issued_by(record, key_identifier) {
            // Issued under this name by a CA since rotated (another key):
            // a CRL lists only its issuer's certificates (RFC 5280 §5).
            continue;
        }
        let Some(serial_number) = serial_number(serial) else {
            tracing::warn!(serial = %serial, "a ledger serial is not hex; left off the CRL");
            continue;
        };
        revoked_certs.push(RevokedCertParams {
            serial_number,
            revocation_time: OffsetDateTime::from_unix_timestamp(
                rule.revoked_at.max(record.issued_at),
            )
            .unwrap_or(now),
            // RFC 5280 §5.3.1: the code unspecified SHOULD be absent.
            reason_code: (rule.reason.code() != 0).then(|| rule.reason.to_rcgen()),
            invalidity_date: None,
        });
    }
    let number = store.next_crl_number(&ca.name).await?;
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + config.crl.next_update,
        crl_number: SerialNumber::from(number.to_be_bytes().to_vec()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(key_identifier.clone()),
    };
    Ok((ca.sign_crl(&params).await?.der().to_vec(), newest_rule))
}

/// How long after a rule is made its matches may still be missing from a
/// store's indexes: DynamoDB's global secondary indexes are read eventually
/// consistently (typically within a second). A CRL signed within this of
/// its newest rule is reused only until this has passed since the rule,
/// then signed again.
pub const INDEX_LAG: i64 = 10;

/// The current CRL of `signable`'s CA: the cached one while it is current
/// (see the module's comment), else a freshly signed one.
pub async fn current(
    store: &dyn Store,
    cache: &crate::store::CrlCache,
    signable: &Signable<'_>,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Arc<[u8]>, CrlError> {
    let ca = signable.ca;
    let revision = store.revision().await?;
    let mut cached = cache.lock().await;
    let at = now.unix_timestamp();
    if let Some(crl) = cached.get(&ca.name) {
        if crl.revision == revision
            && crl.issuer_der == ca.cert_der.as_ref()
            && (crl.this_update..crl.fresh_until).contains(&at)
        {
            return Ok(Arc::clone(&crl.der));
        }
    }
    let (der, newest_rule) = sign_noting_newest_rule(store, signable, config, now).await?;
    let der: Arc<[u8]> = der.into();
    let half_period = i64::try_from(config.crl.next_update.as_secs() / 2).unwrap_or(i64::MAX);
    // A rule younger than the store's index lag may not have reached its
    // indexes: the CRL is signed again once the lag has passed.
    let fresh_until = match newest_rule {
        Some(made) if made > at - INDEX_LAG => made + INDEX_LAG,
        _ => at.saturating_add(half_period),
    };
    cached.insert(
        ca.name.clone(),
        CachedCrl {
            revision,
            issuer_der: ca.cert_der.to_vec(),
            this_update: at,
            fresh_until,
            der: Arc::clone(&der),
        },
    );
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_read_as_their_bytes() {
        assert_eq!(
            serial_number("0a7f").map(|s| s.to_bytes()),
            Some(vec![0x0a, 0x7f])
        );
        assert!(serial_number("abc").is_none());
        assert!(serial_number("zz").is_none());
    }
}
