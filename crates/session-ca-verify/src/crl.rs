//! Certificate revocation lists (RFC 5280 §5): the [`CrlSet`] a verifier
//! checks every leaf against, replaceable at run time.
//!
//! rustls-webpki parses the CRLs and does the revocation check during path
//! building; this module decides which CRLs get in. A CRL is loaded only
//! when its issuer is one of the verifier's configured CAs, that CA's
//! keyUsage (if any) allows cRLSign, and its signature verifies with that
//! CA's key, so a forged or foreign CRL (say, one served by an attacker on
//! the plain-http path it was fetched over) is refused before it could
//! refuse every certificate, and the CRLs in place are kept.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use time::OffsetDateTime;
use webpki::{CertRevocationList, OwnedCertRevocationList, RevocationReason};
use x509_parser::prelude::{CertificateRevocationList as ParsedCrl, FromDer, X509Certificate};

use crate::error::VerifyError;

/// The CRLs a [`Verifier`](crate::Verifier) checks client certificates
/// against, shared by the verifier and its clones: replacing them here
/// takes effect on the next verification, without rebuilding the verifier.
///
/// Obtained from [`Verifier::crls`](crate::Verifier::crls); cheap to clone
/// (an `Arc`). Each verification takes a snapshot under a read lock held for
/// an `Arc` clone; a replacement builds the new set first and swaps it in
/// under the write lock.
///
/// With no CRL loaded there is no revocation check. With at least one, the
/// leaf's issuer must have one: a certificate whose revocation status no
/// loaded CRL gives is refused ([`VerifyError::RevocationUnknown`]), and so
/// is one checked after its issuer's CRL's nextUpdate
/// ([`VerifyError::StaleCrl`]), because failing open would accept a
/// certificate revoked since. Only the leaf is checked (webpki's
/// `RevocationCheckDepth::EndEntity`): session-ca revokes the short-lived
/// client certificates, not its CAs.
#[derive(Clone)]
pub struct CrlSet {
    shared: Arc<Shared>,
}

struct Shared {
    /// The verifier's CAs, which alone may issue a loaded CRL.
    issuers: Vec<CrlIssuer>,
    current: RwLock<Arc<[Arc<LoadedCrl>]>>,
}

/// What a CA contributes to checking a CRL it issued.
pub(crate) struct CrlIssuer {
    subject_der: Vec<u8>,
    /// The contents of the SubjectPublicKeyInfo's AlgorithmIdentifier.
    key_algorithm: Vec<u8>,
    key: Vec<u8>,
    /// Whether its keyUsage, if present, includes cRLSign (RFC 5280 §4.2.1.3).
    may_sign_crls: bool,
}

impl CrlIssuer {
    pub(crate) fn of(cert: &X509Certificate<'_>) -> CrlIssuer {
        let (key_algorithm, key) = split_spki(cert.public_key().raw).unwrap_or_default();
        CrlIssuer {
            subject_der: cert.subject().as_raw().to_vec(),
            key_algorithm,
            key,
            may_sign_crls: match cert.key_usage() {
                Ok(Some(ku)) => ku.value.crl_sign(),
                Ok(None) => true,
                Err(_) => false,
            },
        }
    }
}

/// A CRL that passed the checks, with what the verifier reports of it.
pub(crate) struct LoadedCrl {
    pub(crate) crl: CertRevocationList<'static>,
    pub(crate) issuer_der: Vec<u8>,
    issuer: String,
    this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
    revoked: usize,
    /// The CRL number's magnitude, big-endian without leading zeros.
    number: Option<Vec<u8>>,
    der: Vec<u8>,
}

impl LoadedCrl {
    /// Whether `self` is older than `other` of the same issuer: by CRL
    /// number when both have one (RFC 5280 §5.2.3: it only grows), else by
    /// thisUpdate.
    fn older_than(&self, other: &LoadedCrl) -> bool {
        match (&self.number, &other.number) {
            (Some(a), Some(b)) => (a.len(), a) < (b.len(), b),
            _ => self.this_update < other.this_update,
        }
    }

    /// Whether `self` says something else than `other` under the same
    /// number (a CRL number names one CRL of its issuer).
    fn conflicts_with(&self, other: &LoadedCrl) -> bool {
        self.number.is_some() && self.number == other.number && self.der != other.der
    }
}

/// The newest CRL of each issuer among `crls`: rustls-webpki checks a
/// certificate against the first CRL of its issuer it finds, so an older
/// one must not stay beside a newer one.
fn newest_per_issuer(crls: Vec<Arc<LoadedCrl>>) -> Vec<Arc<LoadedCrl>> {
    let mut newest: Vec<Arc<LoadedCrl>> = Vec::with_capacity(crls.len());
    for crl in crls {
        match newest
            .iter_mut()
            .find(|kept| kept.issuer_der == crl.issuer_der)
        {
            Some(kept) if kept.older_than(&crl) => *kept = crl,
            Some(_) => {}
            None => newest.push(crl),
        }
    }
    newest
}

/// What a loaded CRL says about itself, for monitoring its freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CrlSummary {
    /// The CRL's issuer (one of the verifier's CAs), RFC 4514.
    pub issuer: String,
    /// Its thisUpdate.
    pub this_update: OffsetDateTime,
    /// Its nextUpdate: after this, certificates from `issuer` are refused
    /// until a newer CRL is loaded.
    pub next_update: OffsetDateTime,
    /// How many certificates it lists as revoked.
    pub revoked: usize,
}

impl fmt::Debug for CrlSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.loaded()).finish()
    }
}

impl CrlSet {
    pub(crate) fn new(issuers: Vec<CrlIssuer>) -> CrlSet {
        CrlSet {
            shared: Arc::new(Shared {
                issuers,
                current: RwLock::new(Arc::from(Vec::new())),
            }),
        }
    }

    /// The CRLs in place, for one verification.
    pub(crate) fn snapshot(&self) -> Arc<[Arc<LoadedCrl>]> {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current)
    }

    fn swap(&self, crls: Vec<Arc<LoadedCrl>>) {
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::from(crls);
    }

    /// Replaces all the CRLs with `crls` (DER), all or nothing: if one is
    /// refused ([`VerifyError::UnusableCrl`]) the CRLs in place are kept.
    /// An empty slice removes them all, which turns revocation checking off.
    /// Of several CRLs of one issuer, only the newest (by CRL number, else
    /// thisUpdate) is kept.
    pub fn replace(&self, crls: &[CertificateRevocationListDer<'_>]) -> Result<(), VerifyError> {
        let loaded = self.load_all(crls)?;
        self.swap(newest_per_issuer(loaded));
        Ok(())
    }

    /// Replaces all the CRLs with those of a PEM document (`X509 CRL`
    /// blocks, one or more), as [`replace`](Self::replace) does; a document
    /// without a CRL is refused.
    pub fn replace_pem(&self, pem: impl AsRef<[u8]>) -> Result<(), VerifyError> {
        let crls = crls_of_pem(pem.as_ref())?;
        self.replace(&crls)
    }

    /// Loads the CRLs of a document (DER, as CRL distribution points serve
    /// it, or PEM) in place of those in the set from the same issuers,
    /// keeping the CRLs of other issuers; returns how many it loaded.
    ///
    /// All or nothing, as [`replace`](Self::replace); besides, a CRL older
    /// than the one in place for its issuer (a lower CRL number; without
    /// numbers, an earlier thisUpdate), or another CRL under the same
    /// number, is refused, so a replayed old CRL cannot bring back a
    /// revoked certificate.
    pub fn update(&self, document: impl AsRef<[u8]>) -> Result<usize, VerifyError> {
        let document = document.as_ref();
        // PEM when it holds a PEM block anywhere (text may come first, as
        // `openssl crl -text` writes it; RFC 7468 §2), else DER.
        let crls = if document
            .windows(b"-----BEGIN".len())
            .any(|w| w == b"-----BEGIN")
        {
            crls_of_pem(document)?
        } else {
            vec![CertificateRevocationListDer::from(document)]
        };
        let fresh = newest_per_issuer(self.load_all(&crls)?);
        // The write lock is held from the comparison to the swap, so two
        // concurrent updates cannot both pass the rollback check.
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (index, crl) in fresh.iter().enumerate() {
            if let Some(old) = current.iter().find(|old| {
                old.issuer_der == crl.issuer_der && (crl.older_than(old) || crl.conflicts_with(old))
            }) {
                return Err(VerifyError::UnusableCrl {
                    index: index + 1,
                    why: format!(
                        "it is older than the CRL of {1:?} in place, or another CRL under its \
                         number (thisUpdate {0}, in place {2}); kept the one in place",
                        crate::fmt::rfc3339(crl.this_update),
                        old.issuer,
                        crate::fmt::rfc3339(old.this_update)
                    ),
                });
            }
        }
        let count = fresh.len();
        let mut next: Vec<Arc<LoadedCrl>> = current
            .iter()
            .filter(|old| !fresh.iter().any(|crl| crl.issuer_der == old.issuer_der))
            .cloned()
            .collect();
        next.extend(fresh);
        *current = Arc::from(next);
        Ok(count)
    }

    /// The CRLs in place.
    pub fn loaded(&self) -> Vec<CrlSummary> {
        self.snapshot()
            .iter()
            .map(|crl| CrlSummary {
                issuer: crl.issuer.clone(),
                this_update: crl.this_update,
                next_update: crl.next_update,
                revoked: crl.revoked,
            })
            .collect()
    }

    /// How many CRLs are in place.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether no CRL is in place (no revocation checking).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn load_all(
        &self,
        crls: &[CertificateRevocationListDer<'_>],
    ) -> Result<Vec<Arc<LoadedCrl>>, VerifyError> {
        crls.iter()
            .enumerate()
            .map(|(index, der)| {
                self.load(der.as_ref())
                    .map(Arc::new)
                    .map_err(|why| VerifyError::UnusableCrl {
                        index: index + 1,
                        why,
                    })
            })
            .collect()
    }

    /// Parses and checks one CRL.
    fn load(&self, der: &[u8]) -> Result<LoadedCrl, String> {
        let crl = OwnedCertRevocationList::from_der(der).map_err(|e| {
            format!("not a CRL rustls-webpki accepts (a v2 CRL with nextUpdate): {e:?}")
        })?;
        let (rest, parsed) =
            ParsedCrl::from_der(der).map_err(|e| format!("not an X.509 CRL: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the CRL".into());
        }
        let issuer_der = parsed.issuer().as_raw().to_vec();
        let issuer = parsed.issuer().to_string();
        let (tbs, algorithm, signature) = split_signed(der)
            .ok_or("not a DER SEQUENCE of tbsCertList, algorithm and signature")?;
        let candidates: Vec<&CrlIssuer> = self
            .shared
            .issuers
            .iter()
            .filter(|ca| ca.subject_der == issuer_der)
            .collect();
        if candidates.is_empty() {
            return Err(format!(
                "issued by {issuer:?}, which is not one of the verifier's CAs"
            ));
        }
        if !candidates.iter().any(|ca| ca.may_sign_crls) {
            return Err(format!(
                "the CA {issuer:?} has a keyUsage without cRLSign (RFC 5280 §4.2.1.3), so it \
                 cannot issue CRLs"
            ));
        }
        let verified = candidates
            .iter()
            .filter(|ca| ca.may_sign_crls)
            .any(|ca| signature_verifies(ca, &tbs, &algorithm, &signature));
        if !verified {
            return Err(format!(
                "its signature does not verify with the key of the CA {issuer:?} (signed by \
                 another CA with the same name, altered, or an unsupported algorithm)"
            ));
        }
        let time = |t: x509_parser::time::ASN1Time| t.to_datetime();
        let next_update = parsed
            .next_update()
            .ok_or("it has no nextUpdate")
            .map(time)?;
        let number = parsed
            .crl_number()
            .map(|n| n.to_bytes_be())
            .map(|mut bytes| {
                let zeros = bytes.iter().take_while(|&&b| b == 0).count();
                bytes.drain(..zeros);
                bytes
            });
        Ok(LoadedCrl {
            number,
            der: der.to_vec(),
            revoked: parsed.iter_revoked_certificates().count(),
            crl: crl.into(),
            issuer_der,
            issuer,
            this_update: time(parsed.last_update()),
            next_update,
        })
    }
}

/// The `X509 CRL` blocks of a PEM document; none is an error.
pub(crate) fn crls_of_pem(
    pem: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, VerifyError> {
    let crls = CertificateRevocationListDer::pem_slice_iter(pem)
        .enumerate()
        .map(|(index, crl)| {
            crl.map_err(|e| VerifyError::UnusableCrl {
                index: index + 1,
                why: format!("malformed PEM: {e}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if crls.is_empty() {
        return Err(VerifyError::UnusableCrl {
            index: 1,
            why: "no PEM X509 CRL block in the document".into(),
        });
    }
    Ok(crls)
}

/// RFC 5280 §5.3.1 spelling of a reasonCode.
pub(crate) fn reason_name(reason: RevocationReason) -> &'static str {
    match reason {
        RevocationReason::Unspecified => "unspecified",
        RevocationReason::KeyCompromise => "keyCompromise",
        RevocationReason::CaCompromise => "cACompromise",
        RevocationReason::AffiliationChanged => "affiliationChanged",
        RevocationReason::Superseded => "superseded",
        RevocationReason::CessationOfOperation => "cessationOfOperation",
        RevocationReason::CertificateHold => "certificateHold",
        RevocationReason::RemoveFromCrl => "removeFromCRL",
        RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
        RevocationReason::AaCompromise => "aACompromise",
    }
}

/// Whether `signature` over `tbs` verifies with the CA's key, by the
/// rustls-webpki algorithm (on the build's crypto library) that matches the
/// signature algorithm and the key's algorithm, as webpki itself picks it.
fn signature_verifies(ca: &CrlIssuer, tbs: &[u8], algorithm: &[u8], signature: &[u8]) -> bool {
    webpki::ALL_VERIFICATION_ALGS.iter().any(|alg| {
        alg.signature_alg_id().as_ref() == algorithm
            && alg.public_key_alg_id().as_ref() == ca.key_algorithm.as_slice()
            && alg.verify_signature(&ca.key, tbs, signature).is_ok()
    })
}

/// A signed structure (`SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING }`,
/// RFC 5280 §5.1) split into the DER of `tbs`, the contents of the
/// AlgorithmIdentifier and the signature bytes.
fn split_signed(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let algorithm = r.next().read_der()?;
            let (signature, _bits) = r.next().read_bitvec_bytes()?;
            Ok((tbs, algorithm, signature))
        })
    })
    .ok()
    .and_then(|(tbs, algorithm, signature)| {
        Some((tbs, der_contents(&algorithm)?.to_vec(), signature))
    })
}

/// A SubjectPublicKeyInfo split into its AlgorithmIdentifier's contents and
/// the key bytes.
fn split_spki(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (algorithm, key) = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let algorithm = r.next().read_der()?;
            let (key, _bits) = r.next().read_bitvec_bytes()?;
            Ok((algorithm, key))
        })
    })
    .ok()?;
    Some((der_contents(&algorithm)?.to_vec(), key))
}

/// The contents of a DER TLV already checked by a parser.
fn der_contents(tlv: &[u8]) -> Option<&[u8]> {
    let length = *tlv.get(1)?;
    let header = if length < 0x80 {
        2
    } else {
        2 + usize::from(length & 0x7f)
    };
    tlv.get(header..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_contents_skip_short_and_long_headers() {
        assert_eq!(
            der_contents(&[0x30, 0x02, 0x05, 0x00]),
            Some(&[0x05, 0x00][..])
        );
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([7; 0x80]);
        assert_eq!(der_contents(&long).map(<[u8]>::len), Some(0x80));
        assert_eq!(der_contents(&[0x30]), None);
    }

    #[test]
    fn reasons_have_their_rfc_names() {
        assert_eq!(
            reason_name(RevocationReason::KeyCompromise),
            "keyCompromise"
        );
        assert_eq!(RevocationReason::iter().map(reason_name).count(), 10);
    }

    #[test]
    fn a_set_without_issuers_refuses_everything() {
        let set = CrlSet::new(Vec::new());
        assert!(set.is_empty());
        let err = set.replace_pem("no pem here").unwrap_err();
        assert!(err.to_string().contains("no PEM X509 CRL block"), "{err}");
        let err = set.update(b"\x30\x00").unwrap_err();
        assert!(err.to_string().starts_with("CRL 1: not a CRL"), "{err}");
        set.replace(&[]).unwrap();
        assert_eq!(format!("{set:?}"), "[]");
    }
}
