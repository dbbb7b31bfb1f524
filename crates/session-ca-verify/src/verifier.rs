//! The verifier and its trust decision: a path to a configured CA, at the
//! verifier's clock within the allowed skew, for TLS client authentication.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::DistinguishedName;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::claims::{ClaimType, ObjectId, StandardClaim};
use crate::crl::{reason_name, CrlSet, LoadedCrl};
use crate::error::VerifyError;
use crate::fmt::unix_time;
use crate::SharedClock;

/// The clock skew allowed by default: issuer and backend clocks may differ
/// by this much before a fresh certificate looks not yet valid.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// Verifies session-ca client certificates against a fixed set of CAs.
///
/// Cheap to clone and shareable across threads: the state is behind an `Arc`.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

/// A verifier's state, checked and prepared by [`VerifierBuilder::build`].
pub(crate) struct Inner {
    pub(crate) anchors: Vec<TrustAnchor<'static>>,
    /// For each anchor, its index in `cas`.
    pub(crate) anchor_cas: Vec<usize>,
    pub(crate) intermediates: Vec<CertificateDer<'static>>,
    /// Every configured CA, for root hints and for naming the certificate a
    /// validity error is about.
    pub(crate) cas: Vec<CaInfo>,
    pub(crate) clock: SharedClock,
    pub(crate) skew: Duration,
    pub(crate) oid_arc: ObjectId,
    pub(crate) standard: [(StandardClaim, ObjectId); 4],
    pub(crate) claims: Vec<ClaimSpec>,
    pub(crate) crls: CrlSet,
    /// Refuse every certificate while no CRL is loaded.
    pub(crate) require_crls: bool,
}

/// What the verifier keeps of a configured CA certificate.
pub(crate) struct CaInfo {
    pub(crate) subject: String,
    pub(crate) subject_der: Vec<u8>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl CaInfo {
    pub(crate) fn of(cert: &X509Certificate<'_>) -> CaInfo {
        CaInfo {
            subject: cert.subject().to_string(),
            subject_der: cert.subject().as_raw().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        }
    }
}

/// A profile claim named with [`VerifierBuilder::claim`].
#[derive(Debug, Clone)]
pub(crate) struct ClaimSpec {
    pub(crate) name: String,
    pub(crate) oid: ObjectId,
    pub(crate) kind: ClaimType,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Verifier")
            .field(
                "cas",
                &inner.cas.iter().map(|c| &c.subject).collect::<Vec<_>>(),
            )
            .field("anchors", &inner.anchors.len())
            .field("clock", &inner.clock)
            .field("skew", &inner.skew)
            .field("oid_arc", &inner.oid_arc)
            .field("claims", &inner.claims)
            .field("crls", &inner.crls)
            .finish()
    }
}

impl Verifier {
    /// The CRLs this verifier (and its clones, and the rustls adapters made
    /// from it) checks leaves against; replace them through this handle at
    /// run time (see [`CrlSet`]).
    pub fn crls(&self) -> &CrlSet {
        &self.inner.crls
    }

    /// The DER subjects of the configured CAs, as a server offers them in
    /// its certificate request so a client picks a matching certificate.
    pub fn ca_subjects(&self) -> Vec<DistinguishedName> {
        self.inner
            .cas
            .iter()
            .map(|c| DistinguishedName::from(c.subject_der.clone()))
            .collect()
    }

    /// The trust decision alone, without reading the claims: rustls-webpki
    /// builds a path from `leaf` to a configured CA, through `presented`
    /// (intermediates the peer sent, which may be none) and the configured
    /// intermediates, at the clock's time (within the skew); the CA the
    /// path ends in must be within its validity too; the leaf must not be
    /// revoked by the CRLs in place, if any (see [`CrlSet`]); and the leaf
    /// must name clientAuth in its ExtendedKeyUsage.
    pub fn verify_trust(
        &self,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
    ) -> Result<(), VerifyError> {
        self.trusted_leaf(leaf, presented).map(|_| ())
    }

    pub(crate) fn trusted_leaf<'a>(
        &self,
        leaf: &'a CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
    ) -> Result<X509Certificate<'a>, VerifyError> {
        let (rest, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| VerifyError::MalformedCertificate(format!("not X.509: {e}")))?;
        if !rest.is_empty() {
            return Err(VerifyError::MalformedCertificate(
                "trailing bytes after the certificate".into(),
            ));
        }
        let end_entity = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| VerifyError::MalformedCertificate(format!("{e:?}")))?;
        // Peer-sent intermediates first: they are the likelier issuers.
        let intermediates: Vec<CertificateDer<'_>> = presented
            .iter()
            .chain(&self.inner.intermediates)
            .map(|c| CertificateDer::from(c.as_ref()))
            .collect();
        // One snapshot of the CRLs for the whole decision, so a concurrent
        // replacement cannot mix two sets.
        let crls = self.inner.crls.snapshot();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> =
            crls.iter().map(|crl| &crl.crl).collect();
        if crl_refs.is_empty() && self.inner.require_crls {
            return Err(VerifyError::RevocationUnknown {
                issuer: cert.issuer().to_string(),
                why: "no CRL is loaded yet, and this verifier requires one (require_crls)".into(),
            });
        }
        let now = self.inner.clock.now();
        let revocation_with = |expiration: webpki::ExpirationPolicy| {
            webpki::RevocationOptionsBuilder::new(&crl_refs)
                .ok()
                .map(|options| {
                    options
                        .with_depth(webpki::RevocationCheckDepth::EndEntity)
                        .with_status_policy(webpki::UnknownStatusPolicy::Deny)
                        .with_expiration_policy(expiration)
                        .build()
                })
        };
        // At the real time webpki checks each CRL's nextUpdate; at an
        // instant shifted by the skew it must not (a CRL's validity is not
        // stretched, nor cut short), and freshness is checked at the real
        // time below instead.
        let enforced = revocation_with(webpki::ExpirationPolicy::Enforce);
        let unexpired_checked_apart = revocation_with(webpki::ExpirationPolicy::Ignore);
        let path_at = |at: OffsetDateTime| {
            let revocation = if at == now {
                enforced
            } else {
                unexpired_checked_apart
            };
            end_entity
                .verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &self.inner.anchors,
                    &intermediates,
                    unix_time(at),
                    webpki::KeyUsage::client_auth(),
                    revocation,
                    None,
                )
                .map(|path| {
                    let used = path.anchor();
                    self.inner.anchors.iter().position(|a| {
                        a.subject == used.subject
                            && a.subject_public_key_info == used.subject_public_key_info
                    })
                })
        };

        let skew = self.inner.skew;
        let (early, late) = skewed(now, skew);
        // webpki checks one instant; the skew is applied by checking again
        // at the shifted instant only when the first check failed on time
        // and the shift would cover the gap.
        let first = path_at(now);
        let retry_at = match &first {
            Err(webpki::Error::CertExpired { not_after, .. })
                if seconds(*not_after) >= early.unix_timestamp() =>
            {
                Some(early)
            }
            Err(webpki::Error::CertNotValidYet { not_before, .. })
                if seconds(*not_before) <= late.unix_timestamp() =>
            {
                Some(late)
            }
            _ => None,
        };
        let result = match retry_at.map(path_at) {
            None => first,
            // A time error at the shifted instant is about the other end of
            // some validity; the error at the real time is the one to report.
            Some(Err(
                webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. },
            )) => first,
            Some(retried) => retried,
        };
        let anchor = result.map_err(|e| self.trust_error(e, &cert, presented, &crls, now))?;
        // The skew widens the certificates' validity, never a CRL's: the
        // path checked at the shifted instant did not check the CRL's
        // nextUpdate, which is checked here at the real time.
        if retry_at.is_some() {
            if let Some(stale) = crls
                .iter()
                .find(|crl| crl.issuer_der == cert.issuer().as_raw() && crl.next_update < now)
            {
                return Err(VerifyError::StaleCrl {
                    issuer: cert.issuer().to_string(),
                    next_update: stale.next_update,
                    checked_at: now,
                });
            }
        }

        // webpki takes a trust anchor as a bare name and key, without its
        // validity; like OpenSSL, refuse a path that ends in an anchor past
        // its notAfter (or before its notBefore).
        let anchor = anchor
            .and_then(|i| self.inner.anchor_cas.get(i))
            .and_then(|&i| self.inner.cas.get(i));
        if let Some(ca) = anchor {
            if ca.not_after < early.unix_timestamp() {
                return Err(VerifyError::Expired {
                    certificate: format!("the CA certificate {:?}", ca.subject),
                    not_after: datetime(ca.not_after),
                    checked_at: now,
                    skew,
                });
            }
            if ca.not_before > late.unix_timestamp() {
                return Err(VerifyError::NotYetValid {
                    certificate: format!("the CA certificate {:?}", ca.subject),
                    not_before: datetime(ca.not_before),
                    checked_at: now,
                    skew,
                });
            }
        }

        // webpki applies one EKU rule to the whole path and CA certificates
        // usually have no EKU, so it accepts "clientAuth if an EKU is
        // present"; a client certificate must name clientAuth itself.
        match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.client_auth => Ok(cert),
            Ok(Some(eku)) => Err(VerifyError::NotClientAuth(format!(
                "its ExtendedKeyUsage ({}) does not include clientAuth",
                describe_eku(eku.value)
            ))),
            Ok(None) => Err(VerifyError::NotClientAuth(
                "it has no ExtendedKeyUsage extension, and a client certificate must name clientAuth"
                    .into(),
            )),
            Err(e) => Err(VerifyError::MalformedCertificate(format!(
                "malformed or repeated ExtendedKeyUsage extension: {e}"
            ))),
        }
    }

    fn trust_error(
        &self,
        error: webpki::Error,
        leaf: &X509Certificate<'_>,
        presented: &[CertificateDer<'_>],
        crls: &[Arc<LoadedCrl>],
        now: OffsetDateTime,
    ) -> VerifyError {
        let skew = self.inner.skew;
        let issuer = || leaf.issuer().to_string();
        #[allow(deprecated)] // webpki still returns the context-free variants in places
        match error {
            webpki::Error::CertExpired { not_after, .. } => VerifyError::Expired {
                certificate: self
                    .name_by_time(leaf, presented, seconds(not_after), |c| c.not_after),
                not_after: datetime(seconds(not_after)),
                checked_at: now,
                skew,
            },
            webpki::Error::CertNotValidYet { not_before, .. } => VerifyError::NotYetValid {
                certificate: self
                    .name_by_time(leaf, presented, seconds(not_before), |c| c.not_before),
                not_before: datetime(seconds(not_before)),
                checked_at: now,
                skew,
            },
            webpki::Error::UnknownIssuer => VerifyError::UntrustedIssuer {
                issuer: leaf.issuer().to_string(),
            },
            webpki::Error::InvalidSignatureForPublicKey
            | webpki::Error::UnsupportedSignatureAlgorithm
            | webpki::Error::UnsupportedSignatureAlgorithmContext(_)
            | webpki::Error::UnsupportedSignatureAlgorithmForPublicKey
            | webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
                VerifyError::BadSignature {
                    issuer: leaf.issuer().to_string(),
                }
            }
            webpki::Error::RequiredEkuNotFound | webpki::Error::RequiredEkuNotFoundContext(_) => {
                match leaf.extended_key_usage() {
                    Ok(Some(eku)) if !eku.value.client_auth && !eku.value.any => {
                        VerifyError::NotClientAuth(format!(
                            "its ExtendedKeyUsage ({}) does not include clientAuth",
                            describe_eku(eku.value)
                        ))
                    }
                    _ => VerifyError::NotTrusted(
                        "the ExtendedKeyUsage of a CA certificate in the path excludes clientAuth"
                            .into(),
                    ),
                }
            }
            webpki::Error::CertRevoked => {
                // Only the leaf is checked, so the entry is the leaf's.
                let entry = crls
                    .iter()
                    .filter(|crl| crl.issuer_der == leaf.issuer().as_raw())
                    .find_map(|crl| crl.crl.find_serial(leaf.raw_serial()).ok().flatten());
                VerifyError::Revoked {
                    serial: crate::fmt::hex(leaf.raw_serial()),
                    issuer: issuer(),
                    reason: entry.as_ref().and_then(|e| e.reason_code).map(reason_name),
                    revoked_at: entry.map(|e| datetime(seconds(e.revocation_date))),
                }
            }
            webpki::Error::CrlExpired { next_update, .. } => VerifyError::StaleCrl {
                issuer: issuer(),
                next_update: datetime(seconds(next_update)),
                checked_at: now,
            },
            webpki::Error::UnknownRevocationStatus => VerifyError::RevocationUnknown {
                issuer: issuer(),
                why: format!(
                    "none of the {} CRLs in place is from this issuer (or covers this \
                     certificate's CRL distribution points)",
                    crls.len()
                ),
            },
            webpki::Error::InvalidCrlSignatureForPublicKey
            | webpki::Error::UnsupportedCrlSignatureAlgorithm
            | webpki::Error::UnsupportedCrlSignatureAlgorithmContext(_)
            | webpki::Error::UnsupportedCrlSignatureAlgorithmForPublicKey
            | webpki::Error::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_)
            | webpki::Error::IssuerNotCrlSigner
            | webpki::Error::UnsupportedIndirectCrl
            | webpki::Error::UnsupportedRevocationReasonsPartitioning
            | webpki::Error::UnsupportedCrlIssuingDistributionPoint => {
                VerifyError::RevocationUnknown {
                    issuer: issuer(),
                    why: format!("its CRL cannot be used for this certificate: {error:?}"),
                }
            }
            webpki::Error::BadDer
            | webpki::Error::BadDerTime
            | webpki::Error::TrailingData(_)
            | webpki::Error::MalformedExtensions
            | webpki::Error::ExtensionValueInvalid
            | webpki::Error::InvalidCertValidity
            | webpki::Error::InvalidSerialNumber => VerifyError::MalformedCertificate(format!(
                "{error:?} (in the certificate or an intermediate it was sent with)"
            )),
            other => VerifyError::NotTrusted(format!("{other:?}")),
        }
    }

    /// Names the certificate whose validity bound is `at`: the leaf, a
    /// configured CA or a presented intermediate, so a validity error says
    /// whose clock ran out.
    fn name_by_time(
        &self,
        leaf: &X509Certificate<'_>,
        presented: &[CertificateDer<'_>],
        at: i64,
        bound: impl Fn(&CaInfo) -> i64,
    ) -> String {
        if bound(&CaInfo::of(leaf)) == at {
            return "the certificate".into();
        }
        let configured = self.inner.cas.iter().find(|c| bound(c) == at);
        let subject = configured.map(|c| c.subject.clone()).or_else(|| {
            presented
                .iter()
                .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
                .map(|(_, c)| CaInfo::of(&c))
                .find(|c| bound(c) == at)
                .map(|c| c.subject)
        });
        match subject {
            Some(subject) => format!("the CA certificate {subject:?}"),
            None => "a CA certificate in its chain".into(),
        }
    }
}

fn describe_eku(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> String {
    let mut names: Vec<String> = [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_owned())
    .collect();
    names.extend(eku.other.iter().map(|oid| oid.to_id_string()));
    if names.is_empty() {
        "empty".into()
    } else {
        names.join(", ")
    }
}

/// `now` moved back and forward by the skew, saturating so that no skew,
/// however large, can make the arithmetic panic.
fn skewed(now: OffsetDateTime, skew: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let skew = time::Duration::try_from(skew).unwrap_or(time::Duration::MAX);
    (
        now.checked_sub(skew)
            .unwrap_or(time::macros::datetime!(1970-01-01 0:00 UTC)),
        now.checked_add(skew)
            .unwrap_or(time::macros::datetime!(9999-12-31 23:59:59 UTC)),
    )
}

fn seconds(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

fn datetime(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_skew_is_safe_arithmetic() {
        let now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        let (early, late) = skewed(now, Duration::from_secs(60));
        assert_eq!((now - early).whole_seconds(), 60);
        assert_eq!((late - now).whole_seconds(), 60);
        let (early, late) = skewed(now, Duration::MAX);
        assert!(early < now && late > now);
    }

    #[test]
    fn ekus_are_named() {
        let der = yasna::construct_der(|w| {
            w.write_sequence(|w| {
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[
                        1, 3, 6, 1, 5, 5, 7, 3, 1,
                    ]));
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(&[1, 2, 3]));
            })
        });
        let (_, eku) = x509_parser::extensions::ExtendedKeyUsage::from_der(&der).unwrap();
        assert_eq!(describe_eku(&eku), "serverAuth, 1.2.3");
    }
}
