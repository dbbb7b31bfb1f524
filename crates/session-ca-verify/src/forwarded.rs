//! Certificates a TLS-terminating proxy forwards: an ALB, API Gateway,
//! nginx or Envoy checks the client's certificate at the handshake and
//! hands it to the backend in a header or in the event. The backend then
//! verifies and reads it exactly as it would a certificate from its own
//! handshake ([`Verifier::verify_forwarded`]).
//!
//! **The value is trustworthy only when the proxy strips that header from
//! every incoming request**, so a client cannot send it itself, and only
//! when nothing but the proxy can reach the backend. ALB and API Gateway do
//! set their headers and fields themselves; nginx and Envoy must be
//! configured to (`proxy_set_header`, `forward_client_cert_details:
//! SANITIZE_SET`). Verifying the forwarded certificate against the CA chain
//! still refuses one the proxy should not have accepted.

use percent_encoding::percent_decode_str;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::VerifyError;
use crate::verifier::Verifier;
use crate::SessionClaims;

/// A client certificate as a proxy forwarded it, by where it came from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Forwarded<'a> {
    /// ALB mutual TLS in passthrough mode: the `X-Amzn-Mtls-Clientcert`
    /// header, the client's chain as URL-encoded PEM, leaf first.
    AlbPassthrough(&'a str),
    /// ALB mutual TLS in verify mode: the `X-Amzn-Mtls-Clientcert-Leaf`
    /// header, the leaf as URL-encoded PEM.
    AlbVerifyLeaf(&'a str),
    /// nginx's `$ssl_client_escaped_cert` (set by `proxy_set_header`): the
    /// leaf as URL-encoded PEM.
    Nginx(&'a str),
    /// Envoy's `x-forwarded-client-cert`: its last element (the one the
    /// proxy next to this backend added), `Chain="…"` or else `Cert="…"`,
    /// URL-encoded PEM.
    Envoy(&'a str),
    /// API Gateway mutual TLS: `requestContext.identity.clientCert.clientCertPem`
    /// of a REST API event, or `requestContext.authentication.clientCert.clientCertPem`
    /// of an HTTP API event: the leaf as PEM.
    ApiGatewayPem(&'a str),
}

impl Verifier {
    /// Verifies a certificate a TLS-terminating proxy forwarded (see the
    /// module's caveat on trusting it) and reads its claims, exactly as
    /// [`Verifier::verify`] does for a handshake's chain. A value that is
    /// not what that proxy sends (not URL-encoded PEM, encoded twice,
    /// truncated, no certificate) is refused with
    /// [`VerifyError::MalformedForwarded`].
    pub fn verify_forwarded(&self, forwarded: Forwarded<'_>) -> Result<SessionClaims, VerifyError> {
        let pem = match forwarded {
            Forwarded::AlbPassthrough(value)
            | Forwarded::AlbVerifyLeaf(value)
            | Forwarded::Nginx(value) => url_decoded(value)?,
            Forwarded::Envoy(value) => url_decoded(envoy_certificate(value)?)?,
            Forwarded::ApiGatewayPem(value) => value.to_owned(),
        };
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| VerifyError::MalformedForwarded(format!("malformed PEM: {e}")))?;
        if chain.is_empty() {
            return Err(VerifyError::MalformedForwarded(
                "no PEM CERTIFICATE block in the forwarded value".into(),
            ));
        }
        self.verify(&chain)
    }
}

/// The text of a URL-encoded value; a `%` sequence that does not decode to
/// UTF-8 is refused.
fn url_decoded(value: &str) -> Result<String, VerifyError> {
    percent_decode_str(value.trim())
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| {
            VerifyError::MalformedForwarded("the URL-encoded value is not UTF-8 text".into())
        })
}

/// The `Chain` (else `Cert`) value of the last element of an Envoy
/// `x-forwarded-client-cert` header: elements are separated by `,`, pairs
/// by `;`, and a value may be quoted (the separators count only outside
/// quotes).
fn envoy_certificate(header: &str) -> Result<&str, VerifyError> {
    let elements = split_outside_quotes(header, ',');
    let last = elements.last().copied().unwrap_or_default();
    let mut cert = None;
    let mut chain = None;
    for pair in split_outside_quotes(last, ';') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        match key.trim() {
            k if k.eq_ignore_ascii_case("Chain") => chain = Some(value),
            k if k.eq_ignore_ascii_case("Cert") => cert = Some(value),
            _ => {}
        }
    }
    chain.or(cert).filter(|v| !v.is_empty()).ok_or_else(|| {
        VerifyError::MalformedForwarded(
            "the last element of x-forwarded-client-cert has no Cert or Chain (configure Envoy \
             with set_current_client_cert_details: cert: true or chain: true)"
                .into(),
        )
    })
}

/// `text` split at `separator` where it is not inside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use time::OffsetDateTime;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::fixtures::{der, ISSUING_PEM, LEAF_PEM, ROOT_PEM};
    use crate::{FixedClock, VerifyErrorKind};

    const ALB_PASSTHROUGH: &str = include_str!("../tests/fixtures/forwarded/alb-passthrough.txt");
    const ALB_LEAF: &str = include_str!("../tests/fixtures/forwarded/alb-verify-leaf.txt");
    const NGINX: &str = include_str!("../tests/fixtures/forwarded/nginx-escaped.txt");
    const ENVOY: &str = include_str!("../tests/fixtures/forwarded/envoy-xfcc.txt");
    const DOUBLE: &str = include_str!("../tests/fixtures/forwarded/double-encoded.txt");

    /// A verifier trusting `ca_pem`, at a day into the leaf's validity.
    fn verifier(ca_pem: &str) -> Verifier {
        let leaf = der(LEAF_PEM);
        let (_, cert) = X509Certificate::from_der(leaf.as_ref()).unwrap();
        let at: OffsetDateTime =
            cert.validity().not_before.to_datetime() + Duration::from_secs(86_400);
        Verifier::builder()
            .ca_pem(ca_pem)
            .clock(Arc::new(FixedClock::new(at)))
            .build()
            .unwrap()
    }

    #[test]
    fn every_proxys_shape_verifies_and_reads_the_claims() {
        // The root alone: the intermediate must come with the forwarded chain.
        let root_only = verifier(ROOT_PEM);
        let with_issuing = verifier(&format!("{ROOT_PEM}{ISSUING_PEM}"));
        for (name, verifier, forwarded) in [
            (
                "ALB passthrough",
                &root_only,
                Forwarded::AlbPassthrough(ALB_PASSTHROUGH),
            ),
            ("Envoy chain", &root_only, Forwarded::Envoy(ENVOY)),
            (
                "ALB verify",
                &with_issuing,
                Forwarded::AlbVerifyLeaf(ALB_LEAF),
            ),
            ("nginx", &with_issuing, Forwarded::Nginx(NGINX)),
            (
                "API Gateway",
                &with_issuing,
                Forwarded::ApiGatewayPem(LEAF_PEM),
            ),
        ] {
            let session = verifier
                .verify_forwarded(forwarded)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(session.session_id.as_deref(), Some("s-1"), "{name}");
            assert_eq!(session.requester.as_deref(), Some("alice"), "{name}");
        }
        // Without the intermediate, a leaf alone does not chain to the root.
        let err = root_only
            .verify_forwarded(Forwarded::Nginx(NGINX))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{err}");
    }

    #[test]
    fn forged_and_broken_values_are_refused() {
        let verifier = verifier(&format!("{ROOT_PEM}{ISSUING_PEM}"));
        let truncated = &NGINX[..NGINX.len() / 2];
        for (name, forwarded, want) in [
            (
                "double-encoded",
                Forwarded::Nginx(DOUBLE),
                "no PEM CERTIFICATE",
            ),
            ("truncated", Forwarded::Nginx(truncated), "malformed PEM"),
            ("empty", Forwarded::AlbVerifyLeaf(""), "no PEM CERTIFICATE"),
            ("bad escape", Forwarded::Nginx("%C3%28"), "not UTF-8"),
            (
                "Envoy without a certificate",
                Forwarded::Envoy("By=spiffe://x;Hash=00;Subject=\"CN=a,b\""),
                "no Cert or Chain",
            ),
        ] {
            let err = verifier.verify_forwarded(forwarded).unwrap_err();
            assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{name}");
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        // A CA certificate is not a client certificate, however forwarded.
        let err = verifier
            .verify_forwarded(Forwarded::ApiGatewayPem(ROOT_PEM))
            .unwrap_err();
        assert_eq!(err.kind(), VerifyErrorKind::NotTrusted, "{err}");
    }

    #[test]
    fn envoy_elements_and_pairs_split_outside_quotes() {
        assert_eq!(
            split_outside_quotes(r#"a="x,y";b=1,c=2"#, ','),
            vec![r#"a="x,y";b=1"#, "c=2"]
        );
        assert_eq!(
            envoy_certificate(r#"Cert="old",By=z;Cert="new";Subject="CN=a;b""#).unwrap(),
            "new"
        );
        assert_eq!(
            envoy_certificate(r#"By=z;Cert="leaf";Chain="chain""#).unwrap(),
            "chain"
        );
    }
}
