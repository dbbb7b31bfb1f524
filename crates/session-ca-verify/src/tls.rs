//! The rustls adapter: a client-certificate verifier for rustls servers.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::Verifier;

/// A rustls [`ClientCertVerifier`] that requires a client certificate and
/// accepts only those the [`Verifier`] accepts, claims included.
///
/// The verifier's own clock decides validity, not the time rustls passes
/// in, so a fixed clock governs the handshake as it governs
/// [`Verifier::verify`]. The certificate path is checked by the
/// [`Verifier`] (on this crate's crypto library); the handshake signatures
/// (the client's `CertificateVerify`) with the signature verification
/// algorithms of the [`CryptoProvider`] given to [`RustlsClientVerifier::new`].
#[derive(Debug, Clone)]
pub struct RustlsClientVerifier {
    verifier: Verifier,
    root_hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    /// A rustls client-certificate verifier backed by this verifier, which
    /// checks handshake signatures with `provider`'s signature verification
    /// algorithms (see [`RustlsClientVerifier::new`]).
    pub fn rustls_client_verifier(
        &self,
        provider: &Arc<CryptoProvider>,
    ) -> Arc<RustlsClientVerifier> {
        Arc::new(RustlsClientVerifier::new(self.clone(), provider))
    }
}

impl RustlsClientVerifier {
    /// Wraps a verifier; handshake signatures are checked with the
    /// signature verification algorithms of `provider` (normally the one the
    /// rustls `ServerConfig` is built with), as rustls's own
    /// `WebPkiClientVerifier::builder_with_provider` does.
    pub fn new(verifier: Verifier, provider: &Arc<CryptoProvider>) -> Self {
        Self {
            root_hints: verifier.ca_subjects(),
            verifier,
            algorithms: provider.signature_verification_algorithms,
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
    use std::time::Duration;

    use rustls::crypto::{GetRandomFailed, KeyProvider, SecureRandom};
    use rustls::sign::SigningKey;
    use rustls_pki_types::PrivateKeyDer;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::fixtures::{der, ISSUING_PEM, LEAF_PEM, ROOT_PEM};
    use crate::FixedClock;

    /// A provider that only verifies signatures (this crate's rustls has
    /// no provider of its own), with one scheme, to see that the adapter
    /// takes the provider's algorithms.
    fn provider() -> Arc<CryptoProvider> {
        #[derive(Debug)]
        struct Nothing;
        impl SecureRandom for Nothing {
            fn fill(&self, _: &mut [u8]) -> Result<(), GetRandomFailed> {
                Err(GetRandomFailed)
            }
        }
        impl KeyProvider for Nothing {
            fn load_private_key(
                &self,
                _: PrivateKeyDer<'static>,
            ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
                Err(rustls::Error::General("no keys".into()))
            }
        }
        static MAPPING: &[(
            SignatureScheme,
            &[&dyn rustls_pki_types::SignatureVerificationAlgorithm],
        )] = &[(
            SignatureScheme::ECDSA_NISTP256_SHA256,
            webpki::ALL_VERIFICATION_ALGS,
        )];
        Arc::new(CryptoProvider {
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
            signature_verification_algorithms: WebPkiSupportedAlgorithms {
                all: webpki::ALL_VERIFICATION_ALGS,
                mapping: MAPPING,
            },
            secure_random: &Nothing,
            key_provider: &Nothing,
        })
    }

    #[test]
    fn the_adapter_requires_what_the_verifier_accepts() {
        let (leaf, issuing) = (der(LEAF_PEM), der(ISSUING_PEM));
        let (_, cert) = X509Certificate::from_der(leaf.as_ref()).unwrap();
        let not_before = cert.validity().not_before.to_datetime();
        let verifier = Verifier::builder()
            .ca_pem(ROOT_PEM)
            .clock(Arc::new(FixedClock::new(not_before)))
            .build()
            .unwrap();
        let adapter = verifier.rustls_client_verifier(&provider());
        assert!(adapter.client_auth_mandatory());
        let hints = |names: &[DistinguishedName]| -> Vec<Vec<u8>> {
            names.iter().map(|n| n.as_ref().to_vec()).collect()
        };
        assert_eq!(
            hints(adapter.root_hint_subjects()),
            hints(&verifier.ca_subjects())
        );
        assert_eq!(
            adapter.supported_verify_schemes(),
            [SignatureScheme::ECDSA_NISTP256_SHA256]
        );
        // The verifier's clock decides, not the time rustls passes in.
        let long_ago = UnixTime::since_unix_epoch(Duration::from_secs(1));
        adapter
            .verify_client_cert(&leaf, std::slice::from_ref(&issuing), long_ago)
            .unwrap();
        assert_eq!(
            adapter
                .verify_client_cert(&leaf, &[], long_ago)
                .unwrap_err(),
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
        assert_eq!(adapter.verifier().ca_subjects().len(), 1);
    }
}
