//! For backend owners: verify a session-ca client certificate and read its claims.
//!
//! A [`Verifier`] holds the CA chain served by `GET /v1/ca`, a clock and the
//! profile's claim names. [`Verifier::verify`] takes the peer's chain from the
//! TLS handshake (leaf first), lets rustls-webpki decide whether it is trusted
//! for TLS client authentication, and decodes the claims into
//! [`SessionClaims`]. [`RustlsClientVerifier`] plugs the same check into a
//! rustls server, so a bad certificate fails the handshake itself.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let peer_chain: Vec<rustls_pki_types::CertificateDer<'static>> = Vec::new();
//! use session_ca::verify::{ClaimType, Verifier};
//! let verifier = Verifier::builder().ca_pem(std::fs::read("ca.pem")?)
//!     .claim("agent", "1.3.6.1.4.1.32473.1.100", ClaimType::String).build()?;
//! let session = verifier.verify(&peer_chain)?; // leaf first, as TLS presents it
//! println!("{:?} {:?}", session.session_id, session.claims.get("agent"));
//! # Ok(()) }
//! ```
//!
//! Claim extensions are read strictly: a claim the verifier knows (the four
//! standard ones and those named with [`VerifierBuilder::claim`]) that is not
//! a DER `UTF8String`, a `json` claim that is not JSON, and any claim OID
//! present twice (RFC 5280 §4.2 allows one instance of an extension) are
//! errors, because a backend that authorises on a claim must not act on a
//! guess. Extensions under the claim arc that the verifier was not told about
//! are returned as text in [`SessionClaims::other`], keyed by OID, so a new
//! profile claim does not break existing backends; they are held to the same
//! encoding rule, since everything under the arc is a `UTF8String` claim by
//! design. Extensions outside the arc are left to rustls-webpki (which
//! refuses unknown critical ones, RFC 5280 §4.2).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use serde_json::Value;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::audit::rfc3339;
pub use crate::claims::ClaimType;
use crate::claims::{self, ObjectId, StandardClaim, DEFAULT_OID_ARC};
use crate::clock::{SharedClock, SystemClock};
use crate::issuer::hex;

/// The clock skew allowed by default: issuer and backend clocks may differ
/// by this much before a fresh certificate looks not yet valid.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);

/// What a verified client certificate says about the session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionClaims {
    /// Standard claim `.1`: the caller's session id.
    pub session_id: Option<String>,
    /// Standard claim `.2`: the caller's transaction id.
    pub transaction_id: Option<String>,
    /// Standard claim `.3`: the identity the signer authenticated.
    pub requester: Option<String>,
    /// Standard claim `.4`: the correlation id of the issuing request.
    pub request_id: Option<String>,
    /// The claims named with [`VerifierBuilder::claim`] that are present,
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

/// Verifies session-ca client certificates against a fixed set of CAs.
///
/// Cheap to clone and shareable across threads: the state is behind an `Arc`.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    anchors: Vec<TrustAnchor<'static>>,
    /// For each anchor, its index in `cas`.
    anchor_cas: Vec<usize>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Every configured CA, for root hints and for naming the certificate a
    /// validity error is about.
    cas: Vec<CaInfo>,
    clock: SharedClock,
    skew: Duration,
    oid_arc: ObjectId,
    standard: [(StandardClaim, ObjectId); 4],
    claims: Vec<ClaimSpec>,
}

struct CaInfo {
    subject: String,
    subject_der: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl CaInfo {
    fn of(cert: &X509Certificate<'_>) -> CaInfo {
        CaInfo {
            subject: cert.subject().to_string(),
            subject_der: cert.subject().as_raw().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        }
    }
}

#[derive(Debug, Clone)]
struct ClaimSpec {
    name: String,
    oid: ObjectId,
    kind: ClaimType,
}

/// Where a claim OID belongs.
enum Known<'a> {
    Standard(StandardClaim),
    Profile(&'a ClaimSpec),
    /// Under the arc, not named.
    Other,
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
            .finish()
    }
}

/// Collects a [`Verifier`]'s settings; [`VerifierBuilder::build`] checks them all.
#[derive(Debug)]
pub struct VerifierBuilder {
    ca_pem: Vec<Vec<u8>>,
    ca_der: Vec<CertificateDer<'static>>,
    claims: Vec<(String, String, ClaimType)>,
    oid_arc: String,
    clock: SharedClock,
    skew: Duration,
}

impl Default for VerifierBuilder {
    fn default() -> Self {
        Self {
            ca_pem: Vec::new(),
            ca_der: Vec::new(),
            claims: Vec::new(),
            oid_arc: DEFAULT_OID_ARC.to_owned(),
            clock: Arc::new(SystemClock),
            skew: DEFAULT_SKEW,
        }
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

    /// Names a profile claim: its extension OID (dotted) and how its value is typed.
    pub fn claim(mut self, name: impl Into<String>, oid: &str, kind: ClaimType) -> Self {
        self.claims.push((name.into(), oid.to_owned(), kind));
        self
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
            }),
        })
    }
}

impl Verifier {
    /// Starts a verifier with the defaults: system clock, [`DEFAULT_SKEW`],
    /// [`DEFAULT_OID_ARC`], no profile claims and no CA yet.
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

    /// Verifies a peer's certificate chain (leaf first; the rest are
    /// intermediates the peer sent, which may be none) at the verifier's
    /// clock, and decodes the leaf's claims.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<SessionClaims, VerifyError> {
        let (leaf, presented) = chain.split_first().ok_or(VerifyError::NoCertificate)?;
        self.verify_parts(leaf, presented)
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

    /// A rustls client-certificate verifier backed by this verifier.
    pub fn rustls_client_verifier(&self) -> Arc<RustlsClientVerifier> {
        Arc::new(RustlsClientVerifier::new(self.clone()))
    }

    fn verify_parts(
        &self,
        leaf: &CertificateDer<'_>,
        presented: &[CertificateDer<'_>],
    ) -> Result<SessionClaims, VerifyError> {
        let cert = self.check_trust(leaf, presented)?;
        self.read_claims(leaf, &cert)
    }

    /// The trust decision alone: rustls-webpki builds a path to an anchor
    /// at the clock's time (within the skew), then the leaf must name
    /// clientAuth. Returns the parsed leaf for the claims.
    pub(crate) fn check_trust<'a>(
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
        let path_at = |at: OffsetDateTime| {
            end_entity
                .verify_for_usage(
                    webpki::ALL_VERIFICATION_ALGS,
                    &self.inner.anchors,
                    &intermediates,
                    unix_time(at),
                    webpki::KeyUsage::client_auth(),
                    None,
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

        let now = self.inner.clock.now();
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
        let anchor = result.map_err(|e| self.trust_error(e, &cert, presented, now))?;

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
        now: OffsetDateTime,
    ) -> VerifyError {
        let skew = self.inner.skew;
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

    fn known(&self, oid: &ObjectId) -> Option<Known<'_>> {
        if let Some((c, _)) = self.inner.standard.iter().find(|(_, o)| o == oid) {
            return Some(Known::Standard(*c));
        }
        if let Some(spec) = self.inner.claims.iter().find(|c| &c.oid == oid) {
            return Some(Known::Profile(spec));
        }
        oid.is_below(&self.inner.oid_arc).then_some(Known::Other)
    }

    fn read_claims(
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
            fingerprint_sha256: hex(crate::crypto::sha256(der.as_ref()).as_ref()),
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
            let text = claim_text(ext.value).map_err(malformed)?;
            match known {
                Known::Standard(c) => {
                    let slot = match c {
                        StandardClaim::SessionId => &mut out.session_id,
                        StandardClaim::TransactionId => &mut out.transaction_id,
                        StandardClaim::Requester => &mut out.requester,
                        StandardClaim::RequestId => &mut out.request_id,
                    };
                    *slot = Some(text);
                }
                Known::Profile(spec) => {
                    let value = match spec.kind {
                        ClaimType::String => Value::String(text),
                        ClaimType::Json => serde_json::from_str(&text)
                            .map_err(|e| malformed(format!("not valid JSON: {e}")))?,
                    };
                    out.claims.insert(spec.name.clone(), value);
                }
                Known::Other => {
                    out.other.insert(oid.to_string(), text);
                }
            }
        }
        Ok(out)
    }
}

/// Decodes a claim extension value, saying precisely what is wrong with one
/// that is not a DER `UTF8String`.
fn claim_text(der: &[u8]) -> Result<String, String> {
    if let Ok(text) = claims::decode_value(der) {
        return Ok(text);
    }
    use x509_parser::asn1_rs::{Any, FromDer as _, Tag};
    let why = match Any::from_der(der) {
        Err(e) => format!("not DER: {e}"),
        Ok((rest, any)) if any.tag() == Tag::Utf8String => match std::str::from_utf8(any.data) {
            Err(e) => format!("a UTF8String whose bytes are not UTF-8: {e}"),
            Ok(_) if !rest.is_empty() => "trailing bytes after the UTF8String".into(),
            Ok(_) => "a UTF8String that is not DER-encoded".into(),
        },
        Ok((_, any)) => format!("a {} where a DER UTF8String is expected", any.tag()),
    };
    Err(why)
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

fn unix_time(at: OffsetDateTime) -> UnixTime {
    // Times before 1970 cannot be expressed; no certificate we check is that old.
    let secs = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    UnixTime::since_unix_epoch(Duration::from_secs(secs))
}

fn seconds(t: UnixTime) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

fn datetime(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Whose fault a [`VerifyError`] is, for callers that only need the category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyErrorKind {
    /// The peer's certificate is not trusted (or not a certificate).
    NotTrusted,
    /// The certificate is trusted but its claims cannot be read.
    MalformedClaims,
    /// The verifier was configured wrongly by its caller.
    Misuse,
}

/// Why a verifier could not be built or a certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Misuse: the CA PEM text is malformed.
    #[error("CA certificates: {0}")]
    CaPem(String),
    /// Misuse: no CA certificate was given, so nothing could be trusted.
    #[error("no CA certificate given (expected PEM CERTIFICATE blocks, as served by GET /v1/ca)")]
    NoCaCertificates,
    /// Misuse: a CA certificate cannot be parsed or used as a trust anchor.
    #[error("CA certificate {index}: {why}")]
    UnusableCa {
        /// Position of the certificate among those given, from 1.
        index: usize,
        /// What is wrong with it.
        why: String,
    },
    /// Misuse: a claim name or OID, or the OID arc, is invalid or repeated.
    #[error("claim configuration: {0}")]
    ClaimConfig(String),

    /// Not trusted: the peer presented no certificate.
    #[error("no client certificate was presented")]
    NoCertificate,
    /// Not trusted: the certificate (or an intermediate sent with it) is not well-formed X.509.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// Not trusted: no path from the certificate to a configured CA.
    #[error("the certificate's issuer {issuer:?} is not a trusted CA and does not chain to one")]
    UntrustedIssuer {
        /// The leaf's issuer, RFC 4514.
        issuer: String,
    },
    /// Not trusted: a signature on the path does not verify.
    #[error(
        "the certificate names {issuer:?} as its issuer, but its signature does not verify \
         with that trusted CA's key (signed by another CA with the same name, or forged)"
    )]
    BadSignature {
        /// The leaf's issuer, RFC 4514.
        issuer: String,
    },
    /// Not trusted: the certificate or a CA in its path has expired.
    #[error(
        "{certificate} expired at {}, checked at {} (allowed clock skew {} s)",
        rfc3339(*not_after), rfc3339(*checked_at), skew.as_secs()
    )]
    Expired {
        /// Which certificate: the leaf or a named CA.
        certificate: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
        /// The verifier clock's time.
        checked_at: OffsetDateTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// Not trusted: the certificate or a CA in its path is not valid yet.
    #[error(
        "{certificate} is not valid before {}, checked at {} (allowed clock skew {} s)",
        rfc3339(*not_before), rfc3339(*checked_at), skew.as_secs()
    )]
    NotYetValid {
        /// Which certificate: the leaf or a named CA.
        certificate: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// The verifier clock's time.
        checked_at: OffsetDateTime,
        /// The allowed skew.
        skew: Duration,
    },
    /// Not trusted: the certificate is not for TLS client authentication.
    #[error("the certificate is not a TLS client certificate: {0}")]
    NotClientAuth(String),
    /// Not trusted: rustls-webpki refused the path for another reason (its error named).
    #[error("the certificate is not trusted: {0}")]
    NotTrusted(String),

    /// Malformed claims: a claim extension appears more than once.
    #[error("claim {claim} ({oid}) appears more than once in the certificate")]
    DuplicateClaim {
        /// The claim's name, or "(unnamed)" under the arc.
        claim: String,
        /// Its OID.
        oid: String,
    },
    /// Malformed claims: a claim value is not a DER UTF8String, or a JSON claim is not JSON.
    #[error("claim {claim} ({oid}) is malformed: {why}")]
    MalformedClaim {
        /// The claim's name, or "(unnamed)" under the arc.
        claim: String,
        /// Its OID.
        oid: String,
        /// What is wrong with the value.
        why: String,
    },
}

impl VerifyError {
    /// Whose fault the error is.
    pub fn kind(&self) -> VerifyErrorKind {
        match self {
            VerifyError::CaPem(_)
            | VerifyError::NoCaCertificates
            | VerifyError::UnusableCa { .. }
            | VerifyError::ClaimConfig(_) => VerifyErrorKind::Misuse,
            VerifyError::NoCertificate
            | VerifyError::MalformedCertificate(_)
            | VerifyError::UntrustedIssuer { .. }
            | VerifyError::BadSignature { .. }
            | VerifyError::Expired { .. }
            | VerifyError::NotYetValid { .. }
            | VerifyError::NotClientAuth(_)
            | VerifyError::NotTrusted(_) => VerifyErrorKind::NotTrusted,
            VerifyError::DuplicateClaim { .. } | VerifyError::MalformedClaim { .. } => {
                VerifyErrorKind::MalformedClaims
            }
        }
    }
}

/// The TLS view of a refusal: the variants rustls turns into the matching
/// alert (unknown_ca, certificate_expired, ...), and `Other` carrying our
/// message where TLS has no closer alert.
impl From<VerifyError> for rustls::Error {
    fn from(error: VerifyError) -> Self {
        let certificate = match &error {
            VerifyError::NoCertificate => return rustls::Error::NoCertificatesPresented,
            VerifyError::MalformedCertificate(_) => CertificateError::BadEncoding,
            VerifyError::UntrustedIssuer { .. } => CertificateError::UnknownIssuer,
            VerifyError::BadSignature { .. } => CertificateError::BadSignature,
            VerifyError::Expired {
                not_after,
                checked_at,
                ..
            } => CertificateError::ExpiredContext {
                time: unix_time(*checked_at),
                not_after: unix_time(*not_after),
            },
            VerifyError::NotYetValid {
                not_before,
                checked_at,
                ..
            } => CertificateError::NotValidYetContext {
                time: unix_time(*checked_at),
                not_before: unix_time(*not_before),
            },
            VerifyError::NotClientAuth(_) => CertificateError::InvalidPurpose,
            _ => CertificateError::Other(rustls::OtherError(Arc::new(error))),
        };
        rustls::Error::InvalidCertificate(certificate)
    }
}

/// A rustls [`ClientCertVerifier`] that requires a client certificate and
/// accepts only those the [`Verifier`] accepts, claims included.
///
/// The verifier's own clock decides validity, not the time rustls passes
/// in, so a fixed clock governs the handshake as it governs
/// [`Verifier::verify`].
#[derive(Debug, Clone)]
pub struct RustlsClientVerifier {
    verifier: Verifier,
    root_hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RustlsClientVerifier {
    /// Wraps a verifier; handshake signatures are checked with ring's algorithms.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            root_hints: verifier.ca_subjects(),
            verifier,
            algorithms: crate::crypto::rustls_provider().signature_verification_algorithms,
        }
    }

    /// The wrapped verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

impl ClientCertVerifier for RustlsClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier.verify_parts(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn ca(
        name: &str,
        issuer: Option<(&CertificateParams, &KeyPair)>,
    ) -> (CertificateParams, KeyPair, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some((p, k)) => params
                .signed_by(&key, &rcgen::Issuer::from_params(p, k))
                .unwrap(),
        };
        let der = cert.der().clone();
        (params, key, der)
    }

    fn root_der() -> CertificateDer<'static> {
        ca("Root", None).2
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
        let (root_params, root_key, root) = ca("Root", None);
        let (_, _, intermediate) = ca("Issuing", Some((&root_params, &root_key)));
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
    fn bad_claim_values_are_explained() {
        assert_eq!(claim_text(&claims::encode_value("ok ✓")).unwrap(), "ok ✓");
        for (der, want) in [
            (&[][..], "not DER"),
            (
                &[0x13, 0x01, b'a'][..],
                "a PrintableString where a DER UTF8String is expected",
            ),
            (&[0x0c, 0x02, 0xc3, 0x28][..], "not UTF-8"),
            (&[0x0c, 0x05, b'a'][..], "not DER"),
            (&[0x0c, 0x01, b'a', 0x00][..], "trailing bytes"),
            (&[0x30, 0x00][..], "a Sequence where"),
        ] {
            let got = claim_text(der).unwrap_err();
            assert!(got.contains(want), "{der:02x?}: want {want:?}, got {got:?}");
        }
    }

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
