//! [`VerifierBuilder`]: a verifier's settings, all checked at [`VerifierBuilder::build`].

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::claims::{ClaimType, ObjectId, StandardClaim, DEFAULT_OID_ARC};
use crate::clock::{SharedClock, SystemClock};
use crate::crl::{crls_of_pem, CrlIssuer, CrlSet};
use crate::verifier::{CaInfo, ClaimSpec, Inner};
use crate::{Verifier, VerifyError, DEFAULT_SKEW};

/// Collects a [`Verifier`]'s settings; [`VerifierBuilder::build`] checks them all.
#[derive(Debug)]
pub struct VerifierBuilder {
    ca_pem: Vec<Vec<u8>>,
    ca_der: Vec<CertificateDer<'static>>,
    crl_pem: Vec<Vec<u8>>,
    crl_der: Vec<CertificateRevocationListDer<'static>>,
    require_crls: bool,
    claims: Vec<(String, String, ClaimType)>,
    /// `claim_spec` texts that do not parse, reported by `build`.
    bad_specs: Vec<VerifyError>,
    oid_arc: String,
    clock: SharedClock,
    skew: Duration,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            ca_pem: Vec::new(),
            ca_der: Vec::new(),
            crl_pem: Vec::new(),
            crl_der: Vec::new(),
            require_crls: false,
            claims: Vec::new(),
            bad_specs: Vec::new(),
            oid_arc: DEFAULT_OID_ARC.to_owned(),
            clock: Arc::new(SystemClock),
            skew: DEFAULT_SKEW,
        }
    }
}

impl Verifier {
    /// Starts a verifier with the defaults: system clock, [`DEFAULT_SKEW`],
    /// [`DEFAULT_OID_ARC`](crate::DEFAULT_OID_ARC), no profile claims and no CA yet.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// A verifier with the defaults trusting the CAs in a PEM document (the
    /// body of `GET /v1/ca`).
    pub fn from_pem(ca_pem: impl AsRef<[u8]>) -> Result<Verifier, VerifyError> {
        Self::builder().ca_pem(ca_pem).build()
    }

    /// A verifier with the defaults trusting DER CA certificates.
    pub fn from_der(cas: &[CertificateDer<'_>]) -> Result<Verifier, VerifyError> {
        cas.iter()
            .fold(Self::builder(), |b, c| b.ca_der(c.clone()))
            .build()
    }
}

impl VerifierBuilder {
    /// Adds the CA certificates in a PEM document, such as the body of `GET /v1/ca`.
    pub fn ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.ca_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Adds one CA certificate, DER.
    pub fn ca_der(mut self, der: CertificateDer<'_>) -> Self {
        self.ca_der.push(der.into_owned());
        self
    }

    /// Adds one CRL, DER (as a CRL distribution point serves it). Its
    /// issuer must be one of the CAs given, its signature must verify with
    /// that CA's key and the CA's keyUsage, if any, must include cRLSign;
    /// [`build`](Self::build) refuses it otherwise. With a CRL, a leaf whose
    /// issuer has no CRL, or whose issuer's CRL is past its nextUpdate, is
    /// refused (see [`CrlSet`]).
    pub fn crl_der(mut self, der: CertificateRevocationListDer<'_>) -> Self {
        self.crl_der
            .push(CertificateRevocationListDer::from(der.as_ref().to_vec()));
        self
    }

    /// Refuses every certificate while no CRL is loaded
    /// ([`VerifyError::RevocationUnknown`]), instead of checking no
    /// revocation at all: for a backend that gets its CRLs at run time (a
    /// `CrlRefresher`, or [`CrlSet::replace`](crate::CrlSet::replace)) and
    /// must not accept anything before the first arrives.
    pub fn require_crls(mut self) -> Self {
        self.require_crls = true;
        self
    }

    /// Adds the CRLs of a PEM document (one or more `X509 CRL` blocks), as
    /// [`crl_der`](Self::crl_der) does; a document without one is refused
    /// by [`build`](Self::build).
    pub fn crl_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.crl_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Names a profile claim: its extension OID (dotted) and how its value is typed.
    pub fn claim(mut self, name: impl Into<String>, oid: &str, kind: ClaimType) -> Self {
        self.claims.push((name.into(), oid.to_owned(), kind));
        self
    }

    /// Names a profile claim from its text form `NAME=OID:TYPE`, e.g.
    /// `agent=1.3.6.1.4.1.32473.1.100:string` (as a backend's command line
    /// or environment gives it); a text that does not parse is reported by
    /// [`build`](Self::build).
    pub fn claim_spec(mut self, spec: &str) -> Self {
        let parsed = spec
            .split_once('=')
            .and_then(|(name, rest)| rest.rsplit_once(':').map(|(oid, kind)| (name, oid, kind)))
            .ok_or_else(|| VerifyError::ClaimConfig(format!("{spec:?}: expected NAME=OID:TYPE")))
            .and_then(|(name, oid, kind)| Ok((name, oid, kind.parse::<ClaimType>()?)));
        match parsed {
            Ok((name, oid, kind)) => self.claim(name, oid, kind),
            Err(error) => {
                self.bad_specs.push(error);
                self
            }
        }
    }

    /// The OID arc of the standard claims (default [`DEFAULT_OID_ARC`]).
    pub fn oid_arc(mut self, arc: &str) -> Self {
        arc.clone_into(&mut self.oid_arc);
        self
    }

    /// The clock certificates are checked against (default the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How far a certificate may be outside its validity and still be
    /// accepted, on either side (default [`DEFAULT_SKEW`]).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Checks the settings and builds the verifier.
    ///
    /// Self-signed CA certificates become trust anchors and the others
    /// intermediates; when none is self-signed (a chain that stops below its
    /// root), every one is an anchor.
    pub fn build(self) -> Result<Verifier, VerifyError> {
        if let Some(error) = self.bad_specs.into_iter().next() {
            return Err(error);
        }
        let mut cas = self.ca_der;
        for pem in &self.ca_pem {
            for (index, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
                cas.push(cert.map_err(|e| {
                    VerifyError::CaPem(format!("certificate {}: malformed PEM: {e}", index + 1))
                })?);
            }
        }
        if cas.is_empty() {
            return Err(VerifyError::NoCaCertificates);
        }

        let mut infos = Vec::with_capacity(cas.len());
        let mut crl_issuers = Vec::with_capacity(cas.len());
        let mut anchors_der = Vec::new();
        let mut intermediates = Vec::new();
        for (index, der) in cas.into_iter().enumerate() {
            let unusable = |why: String| VerifyError::UnusableCa {
                index: index + 1,
                why,
            };
            let (rest, parsed) = X509Certificate::from_der(der.as_ref())
                .map_err(|e| unusable(format!("not an X.509 certificate: {e}")))?;
            if !rest.is_empty() {
                return Err(unusable("trailing bytes after the certificate".into()));
            }
            infos.push(CaInfo::of(&parsed));
            crl_issuers.push(CrlIssuer::of(&parsed));
            let self_signed = parsed.subject().as_raw() == parsed.issuer().as_raw();
            if self_signed {
                anchors_der.push((index, der));
            } else {
                intermediates.push((index, der));
            }
        }
        if anchors_der.is_empty() {
            anchors_der = std::mem::take(&mut intermediates);
        }
        let anchors = anchors_der
            .iter()
            .map(|(index, der)| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| VerifyError::UnusableCa {
                        index: index + 1,
                        why: format!("not usable as a trust anchor: {e:?}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let config = |why: String| VerifyError::ClaimConfig(why);
        let oid_arc: ObjectId = self
            .oid_arc
            .parse()
            .map_err(|e| config(format!("OID arc: {e}")))?;
        let standard = StandardClaim::ALL.map(|c| (c, c.oid(&oid_arc)));
        let mut claims: Vec<ClaimSpec> = Vec::with_capacity(self.claims.len());
        for (name, oid, kind) in self.claims {
            let oid: ObjectId = oid
                .parse()
                .map_err(|e| config(format!("claim {name:?}: {e}")))?;
            if let Some((c, _)) = standard.iter().find(|(_, o)| *o == oid) {
                return Err(config(format!(
                    "claim {name:?}: {oid} is the OID of the standard claim {}",
                    c.name()
                )));
            }
            if let Some(other) = claims.iter().find(|c| c.name == name || c.oid == oid) {
                return Err(config(format!(
                    "claim {name:?} ({oid}) repeats the name or OID of claim {:?} ({})",
                    other.name, other.oid
                )));
            }
            claims.push(ClaimSpec { name, oid, kind });
        }

        let mut crls = self.crl_der;
        for pem in &self.crl_pem {
            crls.extend(crls_of_pem(pem)?);
        }
        let crl_set = CrlSet::new(crl_issuers);
        crl_set.replace(&crls)?;

        Ok(Verifier {
            inner: Arc::new(Inner {
                anchor_cas: anchors_der.iter().map(|(index, _)| *index).collect(),
                anchors,
                intermediates: intermediates.into_iter().map(|(_, der)| der).collect(),
                cas: infos,
                clock: self.clock,
                skew: self.skew,
                oid_arc,
                standard,
                claims,
                crls: crl_set,
                require_crls: self.require_crls,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{der, ISSUING_PEM, ROOT_PEM};
    use crate::VerifyErrorKind;

    fn root_der() -> CertificateDer<'static> {
        der(ROOT_PEM)
    }

    fn config_error(builder: VerifierBuilder) -> String {
        let err = builder.build().unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::Misuse, "{err:?}");
        err.to_string()
    }

    #[test]
    fn claim_configuration_is_checked_at_build() {
        let base = || Verifier::builder().ca_der(root_der());
        for (builder, want) in [
            (
                base().claim("agent", "1.3.x", ClaimType::String),
                "claim \"agent\": invalid OID",
            ),
            (base().oid_arc("3.1"), "OID arc: invalid OID \"3.1\""),
            (
                base().claim("sid", "1.3.6.1.4.1.32473.1.1", ClaimType::String),
                "is the OID of the standard claim session_id",
            ),
            (
                base()
                    .oid_arc("1.2.3")
                    .claim("agent", "1.2.3.4", ClaimType::String),
                "standard claim request_id",
            ),
            (
                base().claim("agent", "1.2.3.100", ClaimType::String).claim(
                    "agent",
                    "1.2.3.101",
                    ClaimType::Json,
                ),
                "repeats the name or OID of claim \"agent\"",
            ),
            (
                base().claim("a", "1.2.3.100", ClaimType::String).claim(
                    "b",
                    "1.2.3.100",
                    ClaimType::Json,
                ),
                "repeats the name or OID of claim \"a\"",
            ),
        ] {
            let got = config_error(builder);
            assert!(got.contains(want), "want {want:?}, got {got:?}");
        }
        // The standard arcs move with the configured arc.
        base()
            .oid_arc("1.2.3")
            .claim("agent", "1.3.6.1.4.1.32473.1.1", ClaimType::String)
            .build()
            .unwrap();
    }

    #[test]
    fn self_signed_cas_are_anchors_and_the_rest_intermediates() {
        let (root, intermediate) = (der(ROOT_PEM), der(ISSUING_PEM));
        let verifier = Verifier::from_der(&[intermediate.clone(), root.clone()]).unwrap();
        assert_eq!(verifier.inner.anchors.len(), 1);
        assert_eq!(verifier.inner.intermediates.len(), 1);
        assert_eq!(verifier.ca_subjects().len(), 2, "both are hinted");
        // Without a self-signed certificate, the chain's top is trusted as given.
        let verifier = Verifier::from_der(&[intermediate]).unwrap();
        assert_eq!(verifier.inner.anchors.len(), 1);
        assert!(verifier.inner.intermediates.is_empty());
        let debug = format!("{verifier:?}");
        assert!(debug.contains("CN=Issuing"), "{debug}");
        // The same from one PEM document, as GET /v1/ca serves it.
        let verifier = Verifier::from_pem(format!("{ISSUING_PEM}{ROOT_PEM}")).unwrap();
        assert_eq!(verifier.inner.anchors.len(), 1);
        assert_eq!(verifier.inner.intermediates.len(), 1);
    }

    #[test]
    fn a_verifier_without_cas_is_misuse() {
        assert!(config_error(Verifier::builder()).starts_with("no CA certificate given"));
        assert!(config_error(Verifier::builder().ca_pem("just text")).starts_with("no CA"));
        assert!(matches!(
            Verifier::from_der(&[]),
            Err(VerifyError::NoCaCertificates)
        ));
    }

    #[test]
    fn claim_specs_name_claims_or_fail_the_build() {
        let verifier = Verifier::builder()
            .ca_der(root_der())
            .claim_spec("agent=1.3.6.1.4.1.32473.1.100:string")
            .claim_spec("geo=1.3.6.1.4.1.32473.1.101:json")
            .build();
        assert!(verifier.is_ok(), "{verifier:?}");
        for (spec, why) in [
            ("agent", "expected NAME=OID:TYPE"),
            ("agent=1.3.6.1.4.1.32473.1.100", "expected NAME=OID:TYPE"),
            (
                "agent=1.3.6.1.4.1.32473.1.100:number",
                "expected string or json",
            ),
        ] {
            let err = Verifier::builder()
                .ca_der(root_der())
                .claim_spec(spec)
                .build()
                .unwrap_err();
            assert!(
                matches!(&err, VerifyError::ClaimConfig(m) if m.contains(why)),
                "{spec}: {err}"
            );
        }
    }
}
