//! What a verified certificate says: [`SessionClaims`], read from the
//! leaf's claim extensions.

use std::collections::{BTreeMap, BTreeSet};

use rustls_pki_types::CertificateDer;
use serde_json::Value;
use time::OffsetDateTime;
use x509_parser::prelude::X509Certificate;

use crate::claims::{decode_claim_text, ObjectId, StandardClaim};
use crate::fmt::hex;
use crate::verifier::ClaimSpec;
use crate::{Verifier, VerifyError};

/// What a verified client certificate says about the session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionClaims {
    /// Standard claim `.1`: the caller's session id.
    pub session_id: Option<String>,
    /// Standard claim `.2`: the caller's transaction id.
    pub transaction_id: Option<String>,
    /// Standard claim `.3`: the identity the signer authenticated.
    pub requester: Option<String>,
    /// Standard claim `.4`: the correlation id of the issuing request.
    pub request_id: Option<String>,
    /// The claims named with [`VerifierBuilder::claim`](crate::VerifierBuilder::claim) that are present,
    /// by name: `string` claims as JSON strings, `json` claims parsed.
    pub claims: BTreeMap<String, Value>,
    /// Extensions under the claim arc the verifier was not told about, by
    /// dotted OID, as text.
    pub other: BTreeMap<String, String>,
    /// The leaf's subject, RFC 4514 text.
    pub subject: String,
    /// The leaf's issuer, RFC 4514 text.
    pub issuer: String,
    /// The leaf's serial number, lower-case hex of the DER INTEGER.
    pub serial: String,
    /// Start of the leaf's validity.
    pub not_before: OffsetDateTime,
    /// End of the leaf's validity.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the leaf's DER, lower-case hex.
    pub fingerprint_sha256: String,
}

impl SessionClaims {
    /// The claims as one JSON object, for a backend to log or answer with:
    /// `session_id`, `transaction_id`, `requester`, `request_id` (null when
    /// absent), `claims`, `other`, `subject`, `issuer`, `serial`,
    /// `not_before` and `not_after` (RFC 3339, UTC) and
    /// `fingerprint_sha256`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "session_id": self.session_id,
            "transaction_id": self.transaction_id,
            "requester": self.requester,
            "request_id": self.request_id,
            "claims": self.claims,
            "other": self.other,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": crate::fmt::rfc3339(self.not_before),
            "not_after": crate::fmt::rfc3339(self.not_after),
            "fingerprint_sha256": self.fingerprint_sha256,
        })
    }
}

/// Where a claim OID belongs.
enum Known<'a> {
    Standard(StandardClaim),
    Profile(&'a ClaimSpec),
    /// Under the arc, not named.
    Other,
}

impl Verifier {
    /// Verifies a peer's certificate chain (leaf first; the rest are
    /// intermediates the peer sent, which may be none) at the verifier's
    /// clock, and decodes the leaf's claims.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<SessionClaims, VerifyError> {
        let (leaf, presented) = chain.split_first().ok_or(VerifyError::NoCertificate)?;
        self.verify_parts(leaf, presented)
    }

    /// [`Verifier::verify`] with the chain already split into leaf and the rest.
    pub(crate) fn verify_parts(
        &self,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
    ) -> Result<SessionClaims, VerifyError> {
        let cert = self.trusted_leaf(leaf, presented)?;
        self.read_claims(leaf, &cert)
    }

    /// [`Verifier::verify_trust`], returning the parsed leaf for the claims.
    fn known(&self, oid: &ObjectId) -> Option<Known<'_>> {
        if let Some((c, _)) = self.inner.standard.iter().find(|(_, o)| o == oid) {
            return Some(Known::Standard(*c));
        }
        if let Some(spec) = self.inner.claims.iter().find(|c| &c.oid == oid) {
            return Some(Known::Profile(spec));
        }
        oid.is_below(&self.inner.oid_arc).then_some(Known::Other)
    }

    pub(crate) fn read_claims(
        &self,
        der: &CertificateDer<'_>,
        cert: &X509Certificate<'_>,
    ) -> Result<SessionClaims, VerifyError> {
        let mut out = SessionClaims {
            session_id: None,
            transaction_id: None,
            requester: None,
            request_id: None,
            claims: BTreeMap::new(),
            other: BTreeMap::new(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: hex(cert.raw_serial()),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            fingerprint_sha256: hex(&crate::crypto::sha256(der.as_ref())),
        };
        let mut seen = BTreeSet::new();
        for ext in cert.extensions() {
            let Ok(oid) = ext.oid.to_id_string().parse::<ObjectId>() else {
                continue;
            };
            let Some(known) = self.known(&oid) else {
                continue;
            };
            let claim = match &known {
                Known::Standard(c) => c.name().to_owned(),
                Known::Profile(spec) => spec.name.clone(),
                Known::Other => "(unnamed)".to_owned(),
            };
            if !seen.insert(oid.clone()) {
                return Err(VerifyError::DuplicateClaim {
                    claim,
                    oid: oid.to_string(),
                });
            }
            let malformed = |why: String| VerifyError::MalformedClaim {
                claim: claim.clone(),
                oid: oid.to_string(),
                why,
            };
            match known {
                Known::Standard(c) => {
                    let slot = match c {
                        StandardClaim::SessionId => &mut out.session_id,
                        StandardClaim::TransactionId => &mut out.transaction_id,
                        StandardClaim::Requester => &mut out.requester,
                        StandardClaim::RequestId => &mut out.request_id,
                    };
                    *slot = Some(decode_claim_text(ext.value).map_err(malformed)?);
                }
                Known::Profile(spec) => {
                    let value = spec
                        .kind
                        .decode(ext.value)
                        .map_err(|e| malformed(e.to_string()))?;
                    out.claims.insert(spec.name.clone(), value);
                }
                Known::Other => {
                    let text = decode_claim_text(ext.value).map_err(malformed)?;
                    out.other.insert(oid.to_string(), text);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::fixtures::{der, ISSUING_PEM, LEAF_PEM, ROOT_PEM};
    use crate::{ClaimType, FixedClock, VerifierBuilder, VerifyErrorKind};

    /// The leaf fixture's notBefore and notAfter.
    fn leaf_validity() -> (OffsetDateTime, OffsetDateTime) {
        let leaf = der(LEAF_PEM);
        let (_, cert) = X509Certificate::from_der(leaf.as_ref()).unwrap();
        let validity = cert.validity();
        (
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        )
    }

    /// A verifier trusting the fixture root, at `at`.
    fn at(at: OffsetDateTime) -> VerifierBuilder {
        Verifier::builder()
            .ca_pem(ROOT_PEM)
            .clock(Arc::new(FixedClock::new(at)))
    }

    fn chain() -> [CertificateDer<'static>; 2] {
        [der(LEAF_PEM), der(ISSUING_PEM)]
    }

    #[test]
    fn a_client_certificate_is_trusted_and_its_claims_read() {
        let (not_before, not_after) = leaf_validity();
        let verifier = at(not_before + Duration::from_secs(86_400))
            .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::Json)
            .build()
            .unwrap();
        let [leaf, issuing] = chain();
        verifier
            .verify_trust(&leaf, std::slice::from_ref(&issuing))
            .unwrap();
        let session = verifier.verify(&chain()).unwrap();
        assert_eq!(session.session_id.as_deref(), Some("s-1"));
        assert_eq!(session.transaction_id, None);
        assert_eq!(session.requester.as_deref(), Some("alice"));
        assert_eq!(session.request_id, None);
        assert_eq!(session.claims["agent"], serde_json::json!({"a": 1}));
        assert_eq!(session.claims.len(), 1);
        assert_eq!(session.other["1.3.6.1.4.1.32473.1.200"], "x");
        assert_eq!(session.other.len(), 1);
        assert_eq!(session.subject, "CN=s-1");
        assert_eq!(session.issuer, "CN=Issuing");
        assert_eq!(session.serial, "0102");
        assert_eq!(
            (session.not_before, session.not_after),
            (not_before, not_after)
        );
        assert_eq!(
            session.fingerprint_sha256,
            hex(&crate::crypto::sha256(leaf.as_ref()))
        );

        // Untold, the profile claim is text under `other`; as a string claim,
        // its JSON text.
        let plain = at(not_before).build().unwrap().verify(&chain()).unwrap();
        assert_eq!(plain.other["1.3.6.1.4.1.32473.1.100"], r#"{"a":1}"#);
        assert!(plain.claims.is_empty());
        let string = at(not_before)
            .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::String)
            .build()
            .unwrap()
            .verify(&chain())
            .unwrap();
        assert_eq!(string.claims["agent"], r#"{"a":1}"#);

        // An intermediate configured as a CA need not be sent.
        let verifier = at(not_before).ca_pem(ISSUING_PEM).build().unwrap();
        verifier.verify_trust(&leaf, &[]).unwrap();
        verifier.verify(&chain()[..1]).unwrap();
    }

    #[test]
    fn refusals_say_why() {
        let (not_before, not_after) = leaf_validity();
        let verifier = at(not_before).build().unwrap();
        let [leaf, _] = chain();

        let err = verifier.verify_trust(&leaf, &[]).unwrap_err();
        assert!(
            matches!(&err, VerifyError::UntrustedIssuer { issuer } if issuer == "CN=Issuing"),
            "{err:?}"
        );
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted);
        assert!(matches!(
            rustls::Error::from(err),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ));
        let err = verifier.verify(&[]).unwrap_err();
        assert!(matches!(err, VerifyError::NoCertificate), "{err:?}");

        // Within the skew on either side, and no further.
        let skew = Duration::from_secs(60);
        at(not_after + skew)
            .build()
            .unwrap()
            .verify(&chain())
            .unwrap();
        at(not_before - skew)
            .build()
            .unwrap()
            .verify(&chain())
            .unwrap();
        let late = not_after + Duration::from_secs(120);
        let err = at(late).build().unwrap().verify(&chain()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "the certificate expired at {}, checked at {} (allowed clock skew 60 s)",
                crate::fmt::rfc3339(not_after),
                crate::fmt::rfc3339(late)
            )
        );
        let early = not_before - Duration::from_secs(120);
        let err = at(early).build().unwrap().verify(&chain()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the certificate is not valid before "),
            "{err}"
        );
        assert!(matches!(
            rustls::Error::from(err),
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidYetContext { .. })
        ));

        // A CA certificate is not a client certificate.
        let err = at(not_before)
            .build()
            .unwrap()
            .verify(&[der(ISSUING_PEM)])
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{err:?}");
    }
}
